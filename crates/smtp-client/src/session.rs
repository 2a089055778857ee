//! The client session: one connection, from the greeting to QUIT.

use std::collections::VecDeque;
use std::fmt;

use mailroom_core::{Address, Domain};

use crate::encoding;
use crate::error::{ClientError, ConfigError, UsageError};
use crate::extensions::Extensions;
use crate::reply::{Reply, ReplyParser};
use crate::timeout::ClientTimeout;
use crate::transaction::{Failure, LocalReason, Outcome, Transaction, TransactionResult};

/// How one connection is set up. Built by the driver (the MTA per
/// destination domain, `mailroom send` from its flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The name sent in EHLO/HELO: this host's fully qualified domain name,
    /// or an address literal such as `[192.0.2.1]` (RFC 5321 §4.1.1.1).
    pub helo_name: String,
    /// Whether to use STARTTLS. Default: [`TlsPolicy::Opportunistic`].
    pub tls: TlsPolicy,
    /// Credentials for AUTH (RFC 4954), used right after EHLO (and
    /// STARTTLS). Default: none, as an MTA relaying to MX hosts needs none.
    pub auth: Option<Credentials>,
    /// Allow AUTH on a connection without TLS. Default: `false`, so that a
    /// password never crosses the network in the clear; a driver may set it
    /// for a loopback server.
    pub allow_plaintext_auth: bool,
}

impl ClientConfig {
    /// The defaults: opportunistic TLS, no AUTH.
    pub fn new(helo_name: impl Into<String>) -> ClientConfig {
        ClientConfig {
            helo_name: helo_name.into(),
            tls: TlsPolicy::default(),
            auth: None,
            allow_plaintext_auth: false,
        }
    }
}

/// Whether and how the connection uses TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TlsPolicy {
    /// Never send STARTTLS.
    Disabled,
    /// STARTTLS when the server offers it, plaintext otherwise or when the
    /// server refuses it (RFC 3207 §4 leaves that choice to the client).
    /// The default for MX delivery: most servers offer TLS, and refusing
    /// the rest would lose mail.
    #[default]
    Opportunistic,
    /// STARTTLS or fail the connection ([`ClientError::TlsNotOffered`],
    /// [`ClientError::StartTlsRejected`]). Configured per destination
    /// domain, and used by `mailroom send` on the submission port.
    Required,
    /// The connection is TLS from its first byte (RFC 8314 implicit TLS,
    /// port 465): the driver does the handshake before creating the
    /// session, and STARTTLS is never sent.
    Implicit,
}

/// A user name and password for AUTH PLAIN or LOGIN. `Debug` hides the
/// password, so a config can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The authentication identity (RFC 4616 `authcid`).
    pub username: String,
    /// The password.
    pub password: String,
}

impl Credentials {
    /// Credentials from a user name and password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What the session tells its driver, from [`ClientSession::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// Greeting, EHLO, STARTTLS and AUTH are done, or the previous
    /// transaction is finished: [`ClientSession::submit`] or
    /// [`ClientSession::quit`] may be called now.
    Ready,
    /// The server said 220 to STARTTLS. The driver writes any pending
    /// output, performs the TLS handshake on the same socket, then calls
    /// [`ClientSession::tls_established`]. Bytes read before the handshake
    /// are discarded. If the handshake fails, the driver calls
    /// [`ClientSession::connection_lost`].
    StartTls,
    /// The server said 354 to DATA. The driver streams the message through
    /// a [`crate::DataEncoder`] (ending with [`crate::DataEncoder::finish`]),
    /// then calls [`ClientSession::data_sent`].
    SendData,
    /// A transaction is finished: every recipient has an outcome.
    TransactionDone(TransactionResult),
    /// QUIT was answered, or the connection closed after QUIT was sent.
    /// The driver closes the socket.
    Closed,
    /// The connection failed. The driver writes any pending output (best
    /// effort: it may hold a QUIT) and closes the socket. A transaction in
    /// progress has already been reported, its undecided recipients as
    /// temporary failures.
    Failed(ClientError),
}

/// The SMTP client side of one connection (RFC 5321 §3, §4), as a state
/// machine without I/O: the driver feeds it the server's bytes and writes
/// the bytes it produces.
///
/// It moves through greeting → EHLO (HELO when EHLO is refused) →
/// STARTTLS and EHLO again, per the [`TlsPolicy`] → AUTH, when
/// credentials are configured → any number of transactions → QUIT.
///
/// # Method families
///
/// - getters: [`extensions`](Self::extensions),
///   [`is_tls`](Self::is_tls), [`is_ready`](Self::is_ready), …
/// - input: [`handle_input`](Self::handle_input),
///   [`tls_established`](Self::tls_established),
///   [`data_sent`](Self::data_sent),
///   [`connection_lost`](Self::connection_lost),
///   [`timed_out`](Self::timed_out);
/// - decisions: [`submit`](Self::submit), [`quit`](Self::quit), each
///   allowed after [`ClientEvent::Ready`];
/// - output: [`poll_event`](Self::poll_event),
///   [`take_output`](Self::take_output),
///   [`next_timeout`](Self::next_timeout).
///
/// # Poll order
///
/// After creating the session, and after every input or decision call:
///
/// 1. drain [`poll_event`](Self::poll_event) until `None`, handling each
///    event (which may call a decision method, adding more events);
/// 2. write everything from [`take_output`](Self::take_output) to the
///    socket — always before acting on `StartTls` (the handshake) or
///    `SendData` (the message), and before closing on `Failed`;
/// 3. arm the timer named by [`next_timeout`](Self::next_timeout), then
///    read: bytes go to [`handle_input`](Self::handle_input), end of file
///    or an error to [`connection_lost`](Self::connection_lost), an expiry
///    to [`timed_out`](Self::timed_out).
///
/// Until `Closed` or `Failed`, the session always waits on something: a
/// reply, the driver's handshake or message, or a decision after `Ready`.
/// Output during AUTH holds the credentials (base64): never log it.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    parser: ReplyParser,
    phase: Phase,
    /// Replies owed by the server, oldest first. More than one only while
    /// a PIPELINING group is outstanding (RFC 2920 §3.1: replies come in
    /// command order).
    pending: VecDeque<Expect>,
    extensions: Extensions,
    tls_active: bool,
    /// STARTTLS was refused on this connection; do not ask again.
    starttls_refused: bool,
    authenticated: bool,
    tx: Option<ActiveTransaction>,
    output: Vec<u8>,
    events: VecDeque<ClientEvent>,
}

impl ClientSession {
    /// A session for a freshly opened connection, waiting for the
    /// greeting.
    pub fn new(config: ClientConfig) -> Result<ClientSession, ConfigError> {
        Domain::parse(&config.helo_name, false).map_err(ConfigError::InvalidHeloName)?;
        if let Some(credentials) = &config.auth {
            if credentials.username.is_empty() {
                return Err(ConfigError::EmptyUsername);
            }
            if credentials.username.contains('\0') || credentials.password.contains('\0') {
                return Err(ConfigError::CredentialsContainNul);
            }
        }
        Ok(ClientSession {
            tls_active: config.tls == TlsPolicy::Implicit,
            config,
            parser: ReplyParser::new(),
            phase: Phase::Greeting,
            pending: VecDeque::from([Expect::Greeting]),
            extensions: Extensions::default(),
            starttls_refused: false,
            authenticated: false,
            tx: None,
            output: Vec::new(),
            events: VecDeque::new(),
        })
    }

    /// The extensions of the last EHLO reply (empty after HELO, and between
    /// STARTTLS and the EHLO that follows it).
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// True when the connection is under TLS (STARTTLS done, or implicit).
    pub fn is_tls(&self) -> bool {
        self.tls_active
    }

    /// True once AUTH succeeded.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// True when [`submit`](Self::submit) and [`quit`](Self::quit) may be
    /// called.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// True after `Closed` or `Failed`: the connection is done.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Closed | Phase::Failed)
    }

    /// Feeds bytes read from the server. Any number of replies, or part of
    /// one, may arrive in one call. Bytes are ignored while the TLS
    /// handshake is pending and after the session is finished.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        if !self.phase.reads_replies() {
            return;
        }
        self.parser.push(bytes);
        loop {
            match self.parser.next_reply() {
                Ok(Some(reply)) => {
                    self.on_reply(reply);
                    if !self.phase.reads_replies() {
                        // After STARTTLS's 220, anything already received
                        // was sent in plaintext and must not be read as if
                        // it came over TLS (RFC 3207 §4.2).
                        self.parser.clear();
                        return;
                    }
                }
                Ok(None) => return,
                Err(error) => return self.fail(ClientError::Protocol(error)),
            }
        }
    }

    /// The driver finished the TLS handshake after
    /// [`ClientEvent::StartTls`]. Everything learnt before is forgotten and
    /// EHLO is sent again (RFC 3207 §4.2).
    pub fn tls_established(&mut self) -> Result<(), UsageError> {
        if self.phase != Phase::TlsHandshake {
            return Err(UsageError::NotInTlsHandshake);
        }
        self.tls_active = true;
        self.extensions = Extensions::default();
        self.authenticated = false;
        self.parser.clear();
        self.send_ehlo();
        Ok(())
    }

    /// The driver wrote the whole message, terminator included, after
    /// [`ClientEvent::SendData`]. The session now waits for the reply to
    /// the final `.`.
    pub fn data_sent(&mut self) -> Result<(), UsageError> {
        if self.phase != Phase::SendingData {
            return Err(UsageError::NotSendingData);
        }
        self.phase = Phase::Transaction;
        self.pending.push_back(Expect::DataEnd);
        Ok(())
    }

    /// The connection closed or broke. Undecided recipients become
    /// temporary failures and `Failed(ConnectionLost)` follows, unless QUIT
    /// was already sent (then `Closed`).
    pub fn connection_lost(&mut self) {
        self.end_abruptly(ClientError::ConnectionLost);
    }

    /// The timer from [`next_timeout`](Self::next_timeout) expired. Like
    /// [`connection_lost`](Self::connection_lost), with
    /// `Failed(TimedOut(..))`; the driver then closes the socket.
    pub fn timed_out(&mut self) {
        let timeout = self.next_timeout();
        self.end_abruptly(ClientError::TimedOut(timeout));
    }

    /// Starts a mail transaction. Allowed only after [`ClientEvent::Ready`].
    ///
    /// Needs the server cannot meet fail the whole transaction permanently
    /// before anything is sent: SMTPUTF8 (RFC 6531 §3.2), 8BITMIME
    /// (RFC 6152 §3: never send 8-bit data to a server without it; this
    /// client does not downgrade), a SIZE over the server's limit
    /// (RFC 1870 §4). Addresses that are not valid mailboxes fail
    /// permanently and are never sent, which also keeps CR, LF and `>` out
    /// of the command lines.
    ///
    /// With PIPELINING, MAIL, every RCPT and DATA go out as one group
    /// (RFC 2920 §3.1); without it, one command per reply.
    pub fn submit(&mut self, tx: Transaction) -> Result<(), UsageError> {
        if self.phase != Phase::Ready {
            return Err(UsageError::NotReady);
        }
        if tx.recipients.is_empty() {
            return Err(UsageError::NoRecipients);
        }
        let mut active = ActiveTransaction::new(&tx, self.extensions.pipelining);
        let sender = match tx.reverse_path.as_deref() {
            None | Some("") => None,
            Some(path) => match Address::parse(path, true) {
                Ok(address) => Some(address),
                Err(_) => {
                    active.decide_undecided(&permanent(LocalReason::InvalidSender));
                    self.finish_transaction(active, false);
                    return Ok(());
                }
            },
        };
        let mut recipients = Vec::new();
        for (index, spec) in tx.recipients.iter().enumerate() {
            match Address::parse(&spec.address, true) {
                Ok(address) => recipients.push((index, address, spec)),
                Err(_) => active.decide(index, permanent(LocalReason::InvalidRecipient)),
            }
        }
        let utf8_address = sender.as_ref().is_some_and(Address::is_utf8)
            || recipients.iter().any(|(_, a, _)| a.is_utf8());
        let smtputf8 = tx.needs_smtputf8 || utf8_address;
        // RFC 6531 §3.1: a UTF-8 header is 8-bit content too.
        let eight_bit = tx.needs_8bit || tx.needs_smtputf8;
        let ext = &self.extensions;
        let refusal = if recipients.is_empty() {
            None
        } else if smtputf8 && !ext.smtputf8 {
            Some(if utf8_address {
                LocalReason::NeedsSmtpUtf8Address
            } else {
                LocalReason::NeedsSmtpUtf8Message
            })
        } else if eight_bit && !ext.eight_bit_mime {
            Some(LocalReason::Needs8BitMime)
        } else {
            ext.max_size
                .filter(|&limit| tx.size > limit)
                .map(|limit| LocalReason::MessageTooBig {
                    size: tx.size,
                    limit,
                })
        };
        if let Some(reason) = refusal {
            active.decide_undecided(&permanent(reason));
        }
        if recipients.is_empty() || active.all_decided() {
            self.finish_transaction(active, false);
            return Ok(());
        }

        let mut mail = format!(
            "MAIL FROM:<{}>",
            sender.map(|a| a.to_string()).unwrap_or_default()
        );
        if ext.size {
            mail.push_str(&format!(" SIZE={}", tx.size));
        }
        if eight_bit {
            mail.push_str(" BODY=8BITMIME");
        }
        if smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        if ext.dsn {
            if let Some(ret) = tx.ret {
                mail.push_str(&format!(" RET={}", ret.as_str()));
            }
            if let Some(envid) = &tx.envid {
                mail.push_str(&format!(" ENVID={}", encoding::xtext(envid)));
            }
        }
        let rcpt_lines = recipients.iter().map(|(index, address, spec)| {
            let mut line = format!("RCPT TO:<{address}>");
            if ext.dsn {
                if let Some(notify) = spec.notify {
                    line.push_str(&format!(" NOTIFY={notify}"));
                }
                if let Some(orcpt) = &spec.orcpt {
                    line.push_str(&format!(" ORCPT={}", encoding::orcpt(orcpt)));
                }
            }
            (*index, line)
        });
        active.queued_rcpts = rcpt_lines.collect();

        self.phase = Phase::Transaction;
        self.send(&mail);
        self.pending.push_back(Expect::Mail);
        if active.pipelined {
            // RFC 2920 §3.1: DATA may end a group, so the whole envelope
            // goes in one write.
            for (index, line) in std::mem::take(&mut active.queued_rcpts) {
                self.send(&line);
                self.pending.push_back(Expect::Rcpt(index));
            }
            self.send("DATA");
            self.pending.push_back(Expect::Data);
        }
        self.tx = Some(active);
        Ok(())
    }

    /// Sends QUIT (RFC 5321 §4.1.1.10). Allowed only after
    /// [`ClientEvent::Ready`]; `Closed` follows the reply.
    pub fn quit(&mut self) -> Result<(), UsageError> {
        if self.phase != Phase::Ready {
            return Err(UsageError::NotReady);
        }
        self.send("QUIT");
        self.pending.push_back(Expect::Quit);
        self.phase = Phase::Quitting;
        Ok(())
    }

    /// The next event, or `None` when the session waits for input or a
    /// decision.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Bytes to write to the server, emptying the buffer.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// The RFC 5321 §4.5.3.2 timeout that applies now. With a PIPELINING
    /// group outstanding it is the one of the oldest command still owed a
    /// reply.
    pub fn next_timeout(&self) -> ClientTimeout {
        match self.phase {
            Phase::SendingData => ClientTimeout::DataBlock,
            Phase::TlsHandshake => ClientTimeout::Command,
            Phase::Closed | Phase::Failed => ClientTimeout::Idle,
            _ => match self.pending.front() {
                None => ClientTimeout::Idle,
                Some(Expect::Greeting) => ClientTimeout::Initial,
                Some(Expect::Mail) => ClientTimeout::Mail,
                Some(Expect::Rcpt(_)) => ClientTimeout::Rcpt,
                Some(Expect::Data) => ClientTimeout::DataInit,
                Some(Expect::DataEnd) => ClientTimeout::DataTermination,
                Some(_) => ClientTimeout::Command,
            },
        }
    }

    fn on_reply(&mut self, reply: Reply) {
        let Some(expect) = self.pending.pop_front() else {
            // A server may say 421 at any time before closing, e.g. when its
            // idle timer fires while we hold the connection (RFC 5321 §3.8).
            if reply.code == SERVICE_NOT_AVAILABLE {
                return self.fail(ClientError::ServiceClosing(reply));
            }
            return self.fail(ClientError::UnexpectedReply {
                context: "no command outstanding",
                reply,
            });
        };
        // RFC 5321 §3.8: 421 may answer any command, and the server then
        // closes the connection.
        if reply.code == SERVICE_NOT_AVAILABLE && expect != Expect::Quit {
            return self.fail(ClientError::ServiceClosing(reply));
        }
        match expect {
            Expect::Greeting => self.on_greeting(reply),
            Expect::Ehlo => self.on_ehlo(reply),
            Expect::Helo => self.on_helo(reply),
            Expect::StartTls => self.on_starttls(reply),
            Expect::AuthPlain
            | Expect::AuthLoginUser
            | Expect::AuthLoginPassword
            | Expect::AuthLoginDone => self.on_auth(expect, reply),
            Expect::Mail => self.on_mail(reply),
            Expect::Rcpt(index) => self.on_rcpt(index, reply),
            Expect::Data => self.on_data(reply),
            Expect::DataEnd => self.on_data_end(reply),
            Expect::Rset => self.on_rset(reply),
            Expect::Quit => {
                self.phase = Phase::Closed;
                self.events.push_back(ClientEvent::Closed);
            }
        }
    }

    fn on_greeting(&mut self, reply: Reply) {
        if reply.code == SERVICE_READY {
            self.send_ehlo();
        } else if reply.is_permanent() {
            // RFC 5321 §3.1: after a 554 greeting the server waits for QUIT.
            self.fail_with_quit(ClientError::GreetingRefused(reply));
        } else {
            self.fail(ClientError::GreetingRefused(reply));
        }
    }

    fn send_ehlo(&mut self) {
        let line = format!("EHLO {}", self.config.helo_name);
        self.send(&line);
        self.pending.push_back(Expect::Ehlo);
        self.phase = Phase::Hello;
    }

    fn on_ehlo(&mut self, reply: Reply) {
        if reply.is_positive_completion() {
            self.extensions = Extensions::from_ehlo(&reply);
            self.after_hello();
        } else if reply.is_permanent() {
            // RFC 5321 §3.2: a server that does not know EHLO answers 5yz
            // (500, 501, 502 or 550), and the client falls back to HELO.
            let line = format!("HELO {}", self.config.helo_name);
            self.send(&line);
            self.pending.push_back(Expect::Helo);
        } else if reply.is_transient() {
            self.fail_with_quit(ClientError::EhloRejected(reply));
        } else {
            self.fail(ClientError::UnexpectedReply {
                context: "EHLO reply",
                reply,
            });
        }
    }

    fn on_helo(&mut self, reply: Reply) {
        if reply.is_positive_completion() {
            self.extensions = Extensions::default();
            self.after_hello();
        } else if reply.is_transient() || reply.is_permanent() {
            self.fail_with_quit(ClientError::HeloRejected(reply));
        } else {
            self.fail(ClientError::UnexpectedReply {
                context: "HELO reply",
                reply,
            });
        }
    }

    /// After a successful EHLO/HELO: STARTTLS, AUTH or ready.
    fn after_hello(&mut self) {
        let wants_tls = matches!(
            self.config.tls,
            TlsPolicy::Opportunistic | TlsPolicy::Required
        );
        if wants_tls && !self.tls_active && !self.starttls_refused {
            if self.extensions.starttls {
                self.send("STARTTLS");
                self.pending.push_back(Expect::StartTls);
                self.phase = Phase::StartTls;
                return;
            }
            if self.config.tls == TlsPolicy::Required {
                return self.fail_with_quit(ClientError::TlsNotOffered);
            }
        }
        if self.config.auth.is_some() && !self.authenticated {
            return self.start_auth();
        }
        self.become_ready();
    }

    fn on_starttls(&mut self, reply: Reply) {
        if reply.code == SERVICE_READY {
            self.parser.clear();
            self.phase = Phase::TlsHandshake;
            self.events.push_back(ClientEvent::StartTls);
        } else if reply.is_transient() || reply.is_permanent() {
            // RFC 3207 §4: after a refusal the client decides whether to go
            // on without TLS; the policy decides for us.
            if self.config.tls == TlsPolicy::Required {
                return self.fail_with_quit(ClientError::StartTlsRejected(reply));
            }
            self.starttls_refused = true;
            self.after_hello();
        } else {
            self.fail(ClientError::UnexpectedReply {
                context: "STARTTLS reply",
                reply,
            });
        }
    }

    fn start_auth(&mut self) {
        if !self.tls_active && !self.config.allow_plaintext_auth {
            return self.fail_with_quit(ClientError::AuthWithoutTls);
        }
        if self.extensions.auth.is_empty() {
            return self.fail_with_quit(ClientError::AuthNotOffered);
        }
        let Some(credentials) = &self.config.auth else {
            return self.become_ready();
        };
        let line = if self.extensions.supports_auth("PLAIN") {
            // RFC 4616 §2: [authzid] NUL authcid NUL passwd, sent as the
            // initial response (RFC 4954 §4).
            let message = format!("\0{}\0{}", credentials.username, credentials.password);
            self.pending.push_back(Expect::AuthPlain);
            format!("AUTH PLAIN {}", encoding::base64(message.as_bytes()))
        } else if self.extensions.supports_auth("LOGIN") {
            self.pending.push_back(Expect::AuthLoginUser);
            "AUTH LOGIN".to_string()
        } else {
            let offered = self.extensions.auth.clone();
            return self.fail_with_quit(ClientError::NoSupportedAuthMechanism(offered));
        };
        self.phase = Phase::Auth;
        self.send(&line);
    }

    fn on_auth(&mut self, step: Expect, reply: Reply) {
        if reply.is_transient() || reply.is_permanent() {
            return self.fail_with_quit(ClientError::AuthFailed(reply));
        }
        let Some(credentials) = &self.config.auth else {
            return self.fail(ClientError::UnexpectedReply {
                context: "AUTH reply",
                reply,
            });
        };
        match step {
            Expect::AuthPlain | Expect::AuthLoginDone if reply.is_positive_completion() => {
                self.authenticated = true;
                self.become_ready();
            }
            // LOGIN (draft-murchison-sasl-login): the server asks for the
            // user name, then the password, each a base64 line.
            Expect::AuthLoginUser if reply.code == AUTH_CONTINUE => {
                let line = encoding::base64(credentials.username.as_bytes());
                self.send(&line);
                self.pending.push_back(Expect::AuthLoginPassword);
            }
            Expect::AuthLoginPassword if reply.code == AUTH_CONTINUE => {
                let line = encoding::base64(credentials.password.as_bytes());
                self.send(&line);
                self.pending.push_back(Expect::AuthLoginDone);
            }
            _ => self.fail(ClientError::UnexpectedReply {
                context: "AUTH reply",
                reply,
            }),
        }
    }

    fn on_mail(&mut self, reply: Reply) {
        let Some(tx) = self.tx.as_mut() else {
            return self.fail(ClientError::UnexpectedReply {
                context: "no transaction",
                reply,
            });
        };
        if reply.is_positive_completion() {
            tx.mail_accepted = true;
            if !tx.pipelined {
                self.send_next_rcpt();
            }
        } else if reply.is_transient() || reply.is_permanent() {
            tx.decide_undecided(&classify(reply));
            // With PIPELINING the RCPT and DATA replies are still on their
            // way; they are read and the transaction ends at DATA's.
            if !tx.pipelined {
                self.end_transaction(false);
            }
        } else {
            self.fail(ClientError::UnexpectedReply {
                context: "MAIL reply",
                reply,
            });
        }
    }

    fn on_rcpt(&mut self, index: usize, reply: Reply) {
        let Some(tx) = self.tx.as_mut() else {
            return self.fail(ClientError::UnexpectedReply {
                context: "no transaction",
                reply,
            });
        };
        if !tx.mail_accepted {
            // MAIL failed within a PIPELINING group: these replies (503
            // "need MAIL") say nothing about the recipient, which already
            // carries MAIL's failure (RFC 2920 §3.1).
            return;
        }
        if reply.is_positive_completion() {
            tx.accepted += 1;
        } else if reply.code == EXCEEDED_STORAGE {
            // RFC 5321 §4.5.3.1.10: 552 at RCPT is the old "too many
            // recipients"; clients SHOULD treat it as temporary.
            tx.decide(index, Outcome::TemporaryFailure(Failure::Remote(reply)));
        } else if reply.is_transient() || reply.is_permanent() {
            tx.decide(index, classify(reply));
        } else {
            return self.fail(ClientError::UnexpectedReply {
                context: "RCPT reply",
                reply,
            });
        }
        if !tx.pipelined {
            self.send_next_rcpt();
        }
    }

    /// Without PIPELINING: the next RCPT, else DATA, else (no recipient
    /// accepted) RSET.
    fn send_next_rcpt(&mut self) {
        let Some(tx) = self.tx.as_mut() else { return };
        if let Some((index, line)) = tx.queued_rcpts.pop_front() {
            self.send(&line);
            self.pending.push_back(Expect::Rcpt(index));
        } else if tx.accepted == 0 {
            // RFC 5321 §3.3: no DATA without an accepted recipient; RSET
            // ends the transaction the server opened at MAIL.
            self.end_transaction(true);
        } else {
            self.send("DATA");
            self.pending.push_back(Expect::Data);
        }
    }

    fn on_data(&mut self, reply: Reply) {
        let Some(tx) = self.tx.as_mut() else {
            return self.fail(ClientError::UnexpectedReply {
                context: "no transaction",
                reply,
            });
        };
        if reply.code == START_MAIL_INPUT {
            if tx.mail_accepted && tx.accepted > 0 {
                self.phase = Phase::SendingData;
                self.events.push_back(ClientEvent::SendData);
            } else {
                // RFC 2920 §3.1: "if the DATA command was accepted the SMTP
                // client should send a single dot" — an empty message the
                // server will refuse or drop, never the real one.
                tx.discarding = true;
                self.send(".");
                self.pending.push_back(Expect::DataEnd);
            }
        } else if reply.is_transient() || reply.is_permanent() {
            // Recipients accepted at RCPT share DATA's fate. If MAIL was
            // accepted the server has an open transaction: RSET it.
            let rset = tx.mail_accepted;
            if tx.mail_accepted {
                tx.decide_undecided(&classify(reply));
            }
            self.end_transaction(rset);
        } else {
            self.fail(ClientError::UnexpectedReply {
                context: "DATA reply",
                reply,
            });
        }
    }

    fn on_data_end(&mut self, reply: Reply) {
        let Some(tx) = self.tx.as_mut() else {
            return self.fail(ClientError::UnexpectedReply {
                context: "no transaction",
                reply,
            });
        };
        let outcome = if reply.is_positive_completion() {
            Outcome::Delivered(reply)
        } else if reply.is_transient() || reply.is_permanent() {
            classify(reply)
        } else {
            return self.fail(ClientError::UnexpectedReply {
                context: "reply to end of data",
                reply,
            });
        };
        if !tx.discarding {
            tx.decide_undecided(&outcome);
        }
        // RFC 5321 §4.1.1.4: the end of data clears the transaction
        // whatever the reply, so no RSET.
        self.end_transaction(false);
    }

    fn on_rset(&mut self, reply: Reply) {
        if reply.is_positive_completion() {
            self.become_ready();
        } else {
            self.fail_with_quit(ClientError::RsetRejected(reply));
        }
    }

    fn end_transaction(&mut self, rset: bool) {
        if let Some(tx) = self.tx.take() {
            self.finish_transaction(tx, rset);
        }
    }

    /// Reports the transaction, then RSETs or becomes ready.
    fn finish_transaction(&mut self, tx: ActiveTransaction, rset: bool) {
        self.events
            .push_back(ClientEvent::TransactionDone(tx.into_result()));
        if rset {
            self.send("RSET");
            self.pending.push_back(Expect::Rset);
            self.phase = Phase::Resetting;
        } else {
            self.become_ready();
        }
    }

    fn become_ready(&mut self) {
        self.phase = Phase::Ready;
        self.events.push_back(ClientEvent::Ready);
    }

    fn end_abruptly(&mut self, error: ClientError) {
        match self.phase {
            Phase::Closed | Phase::Failed => {}
            Phase::Quitting => {
                self.pending.clear();
                self.phase = Phase::Closed;
                self.events.push_back(ClientEvent::Closed);
            }
            _ => self.fail(error),
        }
    }

    /// A refusal the server made in good order: say QUIT before going.
    fn fail_with_quit(&mut self, error: ClientError) {
        self.send("QUIT");
        self.fail(error);
    }

    /// Ends the connection: undecided recipients become temporary
    /// failures, then `Failed`.
    fn fail(&mut self, error: ClientError) {
        if let Some(mut tx) = self.tx.take() {
            let failure = match &error {
                ClientError::ServiceClosing(reply) => Failure::Remote(reply.clone()),
                ClientError::ConnectionLost => Failure::Local(LocalReason::ConnectionLost),
                ClientError::TimedOut(timeout) => Failure::Local(LocalReason::TimedOut(*timeout)),
                _ => Failure::Local(LocalReason::ProtocolError),
            };
            tx.decide_undecided(&Outcome::TemporaryFailure(failure));
            self.events
                .push_back(ClientEvent::TransactionDone(tx.into_result()));
        }
        self.pending.clear();
        self.parser.clear();
        self.phase = Phase::Failed;
        self.events.push_back(ClientEvent::Failed(error));
    }

    /// Queues one command line. Every line is built from validated parts
    /// (addresses parsed, parameters xtext- or base64-encoded), so none
    /// holds CR or LF.
    fn send(&mut self, line: &str) {
        self.output.extend_from_slice(line.as_bytes());
        self.output.extend_from_slice(b"\r\n");
    }
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Greeting,
    Hello,
    StartTls,
    TlsHandshake,
    Auth,
    Ready,
    Transaction,
    SendingData,
    Resetting,
    Quitting,
    Closed,
    Failed,
}

impl Phase {
    /// Whether server bytes are read now. Not during the TLS handshake
    /// (they are plaintext the driver should not even have read) nor once
    /// finished.
    fn reads_replies(self) -> bool {
        !matches!(self, Phase::TlsHandshake | Phase::Closed | Phase::Failed)
    }
}

/// The reply the server owes, per command sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    AuthPlain,
    AuthLoginUser,
    AuthLoginPassword,
    AuthLoginDone,
    Mail,
    /// RCPT for the recipient at this index of the transaction.
    Rcpt(usize),
    Data,
    DataEnd,
    Rset,
    Quit,
}

/// The transaction in progress.
#[derive(Debug)]
struct ActiveTransaction {
    /// Address as given, and the outcome once decided.
    outcomes: Vec<(String, Option<Outcome>)>,
    /// RCPT lines not yet sent (without PIPELINING), with their index.
    queued_rcpts: VecDeque<(usize, String)>,
    pipelined: bool,
    mail_accepted: bool,
    /// Recipients accepted at RCPT, waiting for the data's outcome.
    accepted: usize,
    /// A lone `.` was sent after an unwanted 354; its reply decides nobody.
    discarding: bool,
}

impl ActiveTransaction {
    fn new(tx: &Transaction, pipelined: bool) -> ActiveTransaction {
        ActiveTransaction {
            outcomes: tx
                .recipients
                .iter()
                .map(|r| (r.address.clone(), None))
                .collect(),
            queued_rcpts: VecDeque::new(),
            pipelined,
            mail_accepted: false,
            accepted: 0,
            discarding: false,
        }
    }

    fn decide(&mut self, index: usize, outcome: Outcome) {
        if let Some((_, slot @ None)) = self.outcomes.get_mut(index) {
            *slot = Some(outcome);
        }
    }

    fn decide_undecided(&mut self, outcome: &Outcome) {
        for (_, slot) in &mut self.outcomes {
            if slot.is_none() {
                *slot = Some(outcome.clone());
            }
        }
    }

    fn all_decided(&self) -> bool {
        self.outcomes.iter().all(|(_, o)| o.is_some())
    }

    fn into_result(self) -> TransactionResult {
        let per_recipient = self
            .outcomes
            .into_iter()
            .map(|(address, outcome)| {
                // Every path decides every recipient before reporting; a
                // gap would be our bug, and retrying is the safe reading.
                let outcome = outcome.unwrap_or(Outcome::TemporaryFailure(Failure::Local(
                    LocalReason::ProtocolError,
                )));
                (address, outcome)
            })
            .collect();
        TransactionResult { per_recipient }
    }
}

/// 4yz retries, 5yz bounces (RFC 5321 §4.2.1).
fn classify(reply: Reply) -> Outcome {
    if reply.is_transient() {
        Outcome::TemporaryFailure(Failure::Remote(reply))
    } else {
        Outcome::PermanentFailure(Failure::Remote(reply))
    }
}

fn permanent(reason: LocalReason) -> Outcome {
    Outcome::PermanentFailure(Failure::Local(reason))
}

/// 220: greeting, and the go-ahead for the TLS handshake (RFC 3207 §4).
const SERVICE_READY: u16 = 220;
/// 334: the server's SASL challenge (RFC 4954 §4).
const AUTH_CONTINUE: u16 = 334;
/// 354: start mail input (RFC 5321 §4.1.1.4).
const START_MAIL_INPUT: u16 = 354;
/// 421: service not available, closing the connection (RFC 5321 §3.8).
const SERVICE_NOT_AVAILABLE: u16 = 421;
/// 552: exceeded storage allocation; at RCPT, "too many recipients".
const EXCEEDED_STORAGE: u16 = 552;
