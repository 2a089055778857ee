//! The POP3 server session (RFC 1939 §3–§7 with RFC 2449, 2595, 5034, 3206).

use std::fmt;

use crate::apop::is_valid_timestamp;
use crate::command::{Command, CommandError};
use crate::line::{COMMAND_LINE_LIMIT, LineError, LineReader, SASL_LINE_LIMIT};
use crate::maildrop::{Maildrop, MessageEntry, wire_uid};
use crate::response::{Response, Status, push_decimal, write_data_line, write_terminator};
use crate::sasl::{decode_base64, parse_plain};

/// Output buffer capacity the session keeps between responses.
const KEPT_OUTPUT: usize = 4096;

/// The settings of one session. The driver builds it per connection: the
/// greeting timestamp and whether the connection is TLS or trusted differ
/// from one connection to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The APOP timestamp, `<pid.counter.clock@hostname>`, unique per
    /// connection (RFC 1939 §7). Sent in the greeting when [`apop`] is on.
    /// Default: empty, which turns APOP off, since only the driver can make
    /// a unique one. A value that is not `<...>` of printable ASCII is
    /// treated as empty.
    ///
    /// [`apop`]: ServerConfig::apop
    pub greeting_timestamp: String,
    /// The value of CAPA's `IMPLEMENTATION` line (RFC 2449 §6.9). Default
    /// `mailroom`: no version number, which would only help attackers.
    /// Control characters are dropped; an empty value omits the line.
    pub implementation: String,
    /// Allow USER/PASS and AUTH PLAIN without TLS. Default `false`: a
    /// password never crosses the network in clear (DESIGN.md, secure by
    /// default); the driver sets it for loopback and configured plaintext
    /// networks.
    pub plaintext_login_allowed: bool,
    /// Offer STLS (RFC 2595 §4) while the connection is not TLS. Default
    /// `false`, because it needs a certificate the driver must have.
    pub stls: bool,
    /// The connection is TLS from the start (pop3s, RFC 8314). Default
    /// `false`.
    pub tls_active: bool,
    /// Offer APOP (RFC 1939 §7): the greeting carries the timestamp and the
    /// APOP command is accepted. Default `true`: it costs nothing for users
    /// without a shared secret, whose APOP logins simply fail.
    pub apop: bool,
    /// Bad commands (unknown, syntax, wrong state, bad line ends, failed
    /// logins) before the session closes, the last one's error saying so
    /// (`-ERR …; too many errors, closing`).
    /// Default 10: a real client makes one or two mistakes, a password
    /// guesser or a client of another protocol many. 0 behaves as 1.
    pub max_errors: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            greeting_timestamp: String::new(),
            implementation: "mailroom".to_owned(),
            plaintext_login_allowed: false,
            stls: false,
            tls_active: false,
            apop: true,
            max_errors: 10,
        }
    }
}

/// How the client proved who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A password, from PASS or AUTH PLAIN. The driver checks it against the
    /// stored hash.
    Password(String),
    /// An APOP digest (32 lowercase hex digits). The driver checks it with
    /// [`apop_verify`](crate::apop_verify) against the user's shared secret
    /// and [`ServerConfig::greeting_timestamp`].
    Apop {
        /// The digest the client sent.
        digest: String,
    },
}

// A password must never reach a log, even through `{:?}` of an event.
impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Password(_) => f.write_str("Password(<redacted>)"),
            Credential::Apop { digest } => f.debug_struct("Apop").field("digest", digest).finish(),
        }
    }
}

/// Why the driver refused a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// Unknown user or wrong credential: one answer for both, so logins never
    /// reveal which users exist (`-ERR [AUTH]`, RFC 3206 §5).
    BadCredentials,
    /// Another session holds the maildrop lock (`-ERR [IN-USE]`, RFC 2449
    /// §8.1.1).
    InUse,
    /// The user directory or the store failed (`-ERR [SYS/TEMP]`, RFC 3206
    /// §4).
    TemporaryFailure,
}

/// Something the session needs the driver to do. Until the driver answers
/// with the matching decision method, the session processes no further
/// input and [`ServerSession::poll_event`] returns `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Check a login, lock the maildrop and list it. Answer with
    /// [`ServerSession::login_succeeded`] or [`ServerSession::login_failed`].
    Login {
        /// The user name as the client sent it (USER, APOP, or PLAIN's
        /// authcid); normalising it is the driver's job.
        user: String,
        /// The password or APOP digest.
        credential: Credential,
    },
    /// RETR (`top_lines: None`) or `TOP msg n` (`Some(n)`) of the message at
    /// 0-based `index` in the login listing. Answer with
    /// [`ServerSession::retrieve_ok`], write [`ServerSession::take_output`],
    /// then stream the message through a [`TopFilter`](crate::TopFilter)
    /// (TOP only) and a [`ByteStuffer`](crate::ByteStuffer), ending with
    /// [`ByteStuffer::finish`](crate::ByteStuffer::finish); or answer with
    /// [`ServerSession::retrieve_failed`] if it cannot be read.
    Retrieve {
        /// 0-based index into the listing given at login.
        index: usize,
        /// `Some(n)` for TOP: send the headers and `n` body lines.
        top_lines: Option<u64>,
    },
    /// QUIT in the TRANSACTION state: the session is in the UPDATE state
    /// (RFC 1939 §6). Remove these messages durably, release the lock, and
    /// answer with [`ServerSession::update_finished`]. Sent even when
    /// nothing is to be deleted.
    Quit {
        /// 0-based indices of the messages marked deleted, ascending.
        deletions: Vec<usize>,
    },
    /// STLS (RFC 2595 §4) was accepted and `+OK` is queued. Write
    /// [`ServerSession::take_output`], run the TLS handshake, then call
    /// [`ServerSession::tls_established`]. Input buffered after STLS was
    /// discarded (CVE-2011-0411); input handed over before
    /// `tls_established` is discarded too. If the handshake fails, close
    /// the connection.
    StartTls,
}

/// A POP3 server session: bytes in, responses and [`Event`]s out, no I/O.
///
/// It has the four method families of a sans-I/O state machine: getters;
/// `handle_input` and the other `handle`-like inputs ([`tls_established`],
/// [`timed_out`]); decision methods answering the pending [`Event`]; and
/// `poll_event` / `take_output` draining what it produced.
///
/// # Poll order
///
/// 1. After [`new`](Self::new), write [`take_output`](Self::take_output)
///    (the greeting).
/// 2. Feed what the socket read to [`handle_input`](Self::handle_input).
/// 3. Call [`poll_event`](Self::poll_event) until it returns `None`,
///    answering each event with its decision method before polling again
///    (for [`Event::Retrieve`] and [`Event::StartTls`], write
///    `take_output()` first and stream or handshake, as each variant says).
/// 4. Write [`take_output`](Self::take_output).
/// 5. If [`is_closed`](Self::is_closed), close the connection; otherwise
///    read again (step 2). A closed socket or an idle timer ends the session
///    without UPDATE: call [`timed_out`](Self::timed_out) and drop it.
///
/// Commands pipelined in one read (RFC 2449 §6.6) are answered in order,
/// one at a time, across steps 3–4.
///
/// [`tls_established`]: Self::tls_established
/// [`timed_out`]: Self::timed_out
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    state: State,
    reader: LineReader,
    output: Vec<u8>,
    maildrop: Maildrop,
    user: Option<String>,
    tls: bool,
    errors: u32,
}

impl ServerSession {
    /// A session at the start of the AUTHORIZATION state, with the greeting
    /// queued (RFC 1939 §4).
    pub fn new(config: ServerConfig) -> Self {
        let mut session = ServerSession {
            tls: config.tls_active,
            config,
            state: State::Authorization { user: None },
            reader: LineReader::default(),
            output: Vec::new(),
            maildrop: Maildrop::default(),
            user: None,
            errors: 0,
        };
        let greeting = if session.apop_offered() {
            // RFC 1939 §7: the timestamp in the greeting is what tells the
            // client APOP is available.
            format!("{GREETING} {}", session.config.greeting_timestamp)
        } else {
            GREETING.to_owned()
        };
        session.reply(&Response::new(Status::Ok, None, greeting));
        session
    }

    /// Buffers bytes read from the client. Ignored once the session is
    /// closed, and between STLS and [`tls_established`](Self::tls_established):
    /// plaintext sent there must never become a command (CVE-2011-0411).
    ///
    /// The buffer has no cap of its own: a driver that reads only after
    /// [`poll_event`](Self::poll_event) returned `None` with no decision
    /// pending holds at most one read beyond the line being processed.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        match self.state {
            State::TlsPending | State::Closed => {}
            _ => self.reader.push(bytes),
        }
    }

    /// Processes buffered commands, queueing their responses, until one
    /// needs the driver (returned) or no complete line is left (`None`).
    /// Returns `None` while an event is waiting for its decision, and once
    /// the session is closed.
    pub fn poll_event(&mut self) -> Option<Event> {
        loop {
            let limit = match self.state {
                State::Authorization { .. } | State::Transaction => COMMAND_LINE_LIMIT,
                State::SaslPlain => SASL_LINE_LIMIT,
                _ => return None,
            };
            match self.reader.next_line(limit)? {
                Ok(line) => {
                    if let Some(event) = self.line(&line) {
                        return Some(event);
                    }
                }
                Err(error) => self.line_error(error),
            }
        }
    }

    /// Takes the bytes queued for the client.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Appends the responses queued so far to `out`, like
    /// [`ServerSession::take_output`] without allocating a buffer per call:
    /// the session keeps its own buffer unless a large response (a long
    /// LIST or UIDL) grew it.
    pub fn append_output(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.output);
        self.output.clear();
        if self.output.capacity() > KEPT_OUTPUT {
            self.output = Vec::new();
        }
    }

    /// Answers [`Event::Login`]: the credential is good and the maildrop is
    /// locked. `messages` is its listing, fixed for the session (RFC 1939
    /// §5: message numbers do not change). Enters the TRANSACTION state.
    pub fn login_succeeded(&mut self, messages: Vec<MessageEntry>) {
        if let State::LoginPending { user } = &mut self.state {
            self.user = Some(std::mem::take(user));
            self.maildrop = Maildrop::new(messages);
            self.state = State::Transaction;
            let response = self.maildrop_summary();
            self.reply(&response);
        }
    }

    /// Answers [`Event::Login`]: refused. The session stays in the
    /// AUTHORIZATION state, and the failure counts toward
    /// [`ServerConfig::max_errors`].
    pub fn login_failed(&mut self, why: LoginFailure) {
        if matches!(self.state, State::LoginPending { .. }) {
            self.state = State::Authorization { user: None };
            let response = match why {
                LoginFailure::BadCredentials => Response::AUTH_FAILED,
                LoginFailure::InUse => Response::IN_USE,
                LoginFailure::TemporaryFailure => Response::LOGIN_TEMPORARY_FAILURE,
            };
            self.reject(&response);
        }
    }

    /// Answers [`Event::Retrieve`]: queues `+OK <size> octets` (RETR) or
    /// `+OK` (TOP). The driver writes [`take_output`](Self::take_output),
    /// then the stuffed message and its terminator, before polling again.
    pub fn retrieve_ok(&mut self) {
        if let State::RetrievePending { index, top } = self.state {
            self.state = State::Transaction;
            if top {
                self.reply(&Response::OK);
            } else {
                let size = self.maildrop.entry(index).map_or(0, |m| m.size);
                // Written directly: this status line precedes every message.
                self.output.extend_from_slice(b"+OK ");
                push_decimal(&mut self.output, size);
                self.output.extend_from_slice(b" octets\r\n");
            }
        }
    }

    /// Answers [`Event::Retrieve`]: the message could not be read.
    pub fn retrieve_failed(&mut self) {
        if matches!(self.state, State::RetrievePending { .. }) {
            self.state = State::Transaction;
            self.reply(&Response::RETRIEVE_FAILED);
        }
    }

    /// Answers [`Event::Quit`]: `ok` when every deleted message is gone
    /// (RFC 1939 §6). Closes the session either way.
    pub fn update_finished(&mut self, ok: bool) {
        if let State::UpdatePending { deleted } = self.state {
            if ok {
                self.reply(&Response::new(
                    Status::Ok,
                    None,
                    format!("{deleted} messages deleted"),
                ));
            } else {
                self.reply(&Response::UPDATE_FAILED);
            }
            self.close();
        }
    }

    /// Answers [`Event::StartTls`]: the handshake succeeded. The session is
    /// back at the start of the AUTHORIZATION state, now over TLS, and no
    /// longer offers STLS. POP3 sends no second greeting.
    pub fn tls_established(&mut self) {
        if matches!(self.state, State::TlsPending) {
            self.tls = true;
            self.reader.clear();
            self.state = State::Authorization { user: None };
        }
    }

    /// The driver's idle timer fired. RFC 1939 §3: the session "does NOT
    /// enter the UPDATE state--the server should close the TCP connection
    /// without removing any messages or sending any response to the client".
    /// So nothing is queued; the session is closed.
    pub fn timed_out(&mut self) {
        self.close();
    }

    /// The server is shutting down: queues `-ERR [SYS/TEMP] Server shutting
    /// down` and closes, without UPDATE. Call it while no event is pending
    /// (a QUIT whose deletions are running should be let finish).
    pub fn shutdown(&mut self) {
        if !self.is_closed() {
            self.reply(&Response::SHUTTING_DOWN);
            self.close();
        }
    }

    /// True once the session is over: write the last output and close.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The logged-in user, once [`login_succeeded`](Self::login_succeeded)
    /// was called.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// True when the connection is TLS (implicit, or after STLS).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// True in the TRANSACTION state (logged in, QUIT not yet received),
    /// including while a RETR or TOP is pending.
    pub fn in_transaction(&self) -> bool {
        matches!(
            self.state,
            State::Transaction | State::RetrievePending { .. }
        )
    }

    /// True while an [`Event`] waits for its decision method.
    pub fn is_awaiting_decision(&self) -> bool {
        matches!(
            self.state,
            State::LoginPending { .. }
                | State::TlsPending
                | State::RetrievePending { .. }
                | State::UpdatePending { .. }
        )
    }

    /// One complete line of input.
    fn line(&mut self, line: &[u8]) -> Option<Event> {
        let pending_user = match &mut self.state {
            State::SaslPlain => {
                self.state = State::Authorization { user: None };
                return self.sasl_response(line, false);
            }
            // RFC 1939 §7: PASS "may only be given in the AUTHORIZATION
            // state immediately after a successful USER command". Any other
            // line in between forgets the USER.
            State::Authorization { user } => user.take(),
            _ => None,
        };
        let command = match Command::parse(line) {
            Ok(command) => command,
            Err(error) => {
                self.command_error(error);
                return None;
            }
        };
        if matches!(self.state, State::Transaction) {
            self.transaction(command)
        } else {
            self.authorization(command, pending_user)
        }
    }

    /// A command in the AUTHORIZATION state (RFC 1939 §4, §7).
    fn authorization(&mut self, command: Command, pending_user: Option<String>) -> Option<Event> {
        match command {
            Command::User { name } => {
                if !self.plaintext_allowed() {
                    self.reject(&Response::TLS_REQUIRED);
                } else {
                    // Always +OK: USER must not tell which users exist.
                    self.state = State::Authorization { user: Some(name) };
                    self.reply(&Response::USER_ACCEPTED);
                }
                None
            }
            Command::Pass { password } => {
                if !self.plaintext_allowed() {
                    self.reject(&Response::TLS_REQUIRED);
                    return None;
                }
                let Some(user) = pending_user else {
                    self.reject(&Response::USER_FIRST);
                    return None;
                };
                self.login(user, Credential::Password(password.into_inner()))
            }
            Command::Apop { name, digest } => {
                if !self.apop_offered() {
                    self.reject(&Response::APOP_UNAVAILABLE);
                    return None;
                }
                self.login(name, Credential::Apop { digest })
            }
            Command::Auth {
                mechanism: None, ..
            } => {
                self.reply(&Response::MECHANISMS_FOLLOW);
                if self.plaintext_allowed() {
                    write_data_line(&mut self.output, "PLAIN");
                }
                write_terminator(&mut self.output);
                None
            }
            Command::Auth {
                mechanism: Some(mechanism),
                initial_response,
            } => {
                if mechanism != "PLAIN" {
                    self.reject(&Response::UNKNOWN_MECHANISM);
                    return None;
                }
                if !self.plaintext_allowed() {
                    self.reject(&Response::TLS_REQUIRED);
                    return None;
                }
                match initial_response {
                    Some(initial) => self.sasl_response(initial.expose().as_bytes(), true),
                    None => {
                        // RFC 5034 §4: an empty challenge is "+" SP CRLF.
                        self.output.extend_from_slice(b"+ \r\n");
                        self.state = State::SaslPlain;
                        None
                    }
                }
            }
            Command::Capa => {
                self.capabilities();
                None
            }
            Command::Stls => self.stls(),
            Command::Quit => {
                // RFC 1939 §4: QUIT in AUTHORIZATION ends the session; there
                // is nothing to UPDATE.
                self.reply(&Response::SIGNING_OFF);
                self.close();
                None
            }
            Command::Stat
            | Command::List { .. }
            | Command::Retr { .. }
            | Command::Dele { .. }
            | Command::Noop
            | Command::Rset
            | Command::Top { .. }
            | Command::Uidl { .. } => {
                self.reject(&Response::NOT_LOGGED_IN);
                None
            }
        }
    }

    /// A command in the TRANSACTION state (RFC 1939 §5, §7).
    fn transaction(&mut self, command: Command) -> Option<Event> {
        match command {
            Command::Stat => {
                let (count, size) = self.maildrop.stat();
                self.reply(&Response::new(Status::Ok, None, format!("{count} {size}")));
            }
            Command::List { msg: None } => {
                let (count, size) = self.maildrop.stat();
                let first = format!("{count} messages ({size} octets)");
                self.reply(&Response::new(Status::Ok, None, first));
                for (index, message) in self.maildrop.live() {
                    let line = format!("{} {}", index + 1, message.size);
                    write_data_line(&mut self.output, &line);
                }
                write_terminator(&mut self.output);
            }
            Command::List { msg: Some(msg) } => {
                let response = match self.maildrop.get(msg) {
                    Some((index, message)) => {
                        Response::new(Status::Ok, None, format!("{} {}", index + 1, message.size))
                    }
                    None => Response::NO_SUCH_MESSAGE,
                };
                self.reply(&response);
            }
            Command::Uidl { msg: None } => {
                self.reply(&Response::UIDL_FOLLOWS);
                for (index, message) in self.maildrop.live() {
                    let line = format!("{} {}", index + 1, wire_uid(&message.uid));
                    write_data_line(&mut self.output, &line);
                }
                write_terminator(&mut self.output);
            }
            Command::Uidl { msg: Some(msg) } => {
                let response = match self.maildrop.get(msg) {
                    Some((index, message)) => Response::new(
                        Status::Ok,
                        None,
                        format!("{} {}", index + 1, wire_uid(&message.uid)),
                    ),
                    None => Response::NO_SUCH_MESSAGE,
                };
                self.reply(&response);
            }
            Command::Retr { msg } => return self.retrieve(msg, None),
            Command::Top { msg, lines } => return self.retrieve(msg, Some(lines)),
            Command::Dele { msg } => {
                let response = match self.maildrop.get(msg) {
                    Some((index, _)) => {
                        self.maildrop.delete(index);
                        Response::new(Status::Ok, None, format!("message {} deleted", index + 1))
                    }
                    None => Response::NO_SUCH_MESSAGE,
                };
                self.reply(&response);
            }
            Command::Noop => self.reply(&Response::OK),
            Command::Rset => {
                self.maildrop.reset();
                let response = self.maildrop_summary();
                self.reply(&response);
            }
            Command::Capa => self.capabilities(),
            Command::Quit => {
                let deletions = self.maildrop.deletions();
                self.state = State::UpdatePending {
                    deleted: deletions.len(),
                };
                return Some(Event::Quit { deletions });
            }
            Command::User { .. }
            | Command::Pass { .. }
            | Command::Apop { .. }
            | Command::Auth { .. }
            | Command::Stls => self.reject(&Response::ALREADY_LOGGED_IN),
        }
        None
    }

    /// RETR or TOP of a message number.
    fn retrieve(&mut self, msg: u64, top_lines: Option<u64>) -> Option<Event> {
        let Some((index, _)) = self.maildrop.get(msg) else {
            self.reply(&Response::NO_SUCH_MESSAGE);
            return None;
        };
        self.state = State::RetrievePending {
            index,
            top: top_lines.is_some(),
        };
        Some(Event::Retrieve { index, top_lines })
    }

    /// The client's answer to a SASL PLAIN exchange, or the initial response
    /// given with AUTH (RFC 5034 §4, RFC 4616 §2).
    fn sasl_response(&mut self, response: &[u8], initial: bool) -> Option<Event> {
        // RFC 5034 §4: "If the client wishes to cancel the authentication
        // exchange, it issues a line with a single "*". If the server
        // receives such a response, it MUST reject the AUTH command".
        if !initial && response == b"*" {
            self.reject(&Response::AUTH_CANCELLED);
            return None;
        }
        // RFC 5034 §4: an empty initial response is sent as a single "=".
        let decoded = if initial && response == b"=" {
            Ok(Vec::new())
        } else {
            decode_base64(response)
        };
        let Ok(decoded) = decoded else {
            self.reject(&Response::INVALID_BASE64);
            return None;
        };
        let Ok(plain) = parse_plain(&decoded) else {
            self.reject(&Response::MALFORMED_PLAIN);
            return None;
        };
        // RFC 4616 §2: a non-empty authzid asks to act as another user.
        // mailroom has no such proxy rights, so only the user's own name is
        // accepted, and the refusal is the same as for a bad password.
        if !plain.authzid.is_empty() && plain.authzid != plain.authcid {
            self.reject(&Response::AUTH_FAILED);
            return None;
        }
        self.login(plain.authcid, Credential::Password(plain.password))
    }

    fn login(&mut self, user: String, credential: Credential) -> Option<Event> {
        self.state = State::LoginPending { user: user.clone() };
        Some(Event::Login { user, credential })
    }

    /// STLS (RFC 2595 §4).
    fn stls(&mut self) -> Option<Event> {
        if self.tls {
            self.reject(&Response::TLS_ALREADY_ACTIVE);
            return None;
        }
        if !self.config.stls {
            self.reject(&Response::STLS_UNAVAILABLE);
            return None;
        }
        self.reply(&Response::BEGIN_TLS);
        // Anything the client pipelined behind STLS arrived in plaintext
        // and could have been injected by a man in the middle: it is never
        // executed (CVE-2011-0411, the STARTTLS command injection; RFC 3207
        // §4.2 states the rule for SMTP).
        self.reader.clear();
        self.state = State::TlsPending;
        Some(Event::StartTls)
    }

    /// CAPA (RFC 2449 §5). "Capabilities available in the AUTHORIZATION
    /// state MUST be announced in both states", so the list is the same in
    /// AUTHORIZATION and TRANSACTION; it changes only with TLS.
    fn capabilities(&mut self) {
        self.reply(&Response::CAPABILITIES_FOLLOW);
        let mut lines = vec!["TOP", "UIDL"];
        if self.plaintext_allowed() {
            // RFC 2449 §6.2 (USER), §6.3 (SASL): announce only what would
            // work on this connection.
            lines.extend(["USER", "SASL PLAIN"]);
        }
        lines.extend(["RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER"]);
        for line in lines {
            write_data_line(&mut self.output, line);
        }
        let implementation: String = self
            .config
            .implementation
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        if !implementation.trim().is_empty() {
            write_data_line(
                &mut self.output,
                &format!("IMPLEMENTATION {}", implementation.trim()),
            );
        }
        if self.config.stls && !self.tls {
            write_data_line(&mut self.output, "STLS");
        }
        write_terminator(&mut self.output);
    }

    /// `+OK maildrop has n messages (m octets)`: after login and RSET.
    fn maildrop_summary(&self) -> Response {
        let (count, size) = self.maildrop.stat();
        Response::new(
            Status::Ok,
            None,
            format!("maildrop has {count} messages ({size} octets)"),
        )
    }

    fn line_error(&mut self, error: LineError) {
        // A broken line aborts a SASL exchange and forgets a USER.
        if matches!(self.state, State::SaslPlain | State::Authorization { .. }) {
            self.state = State::Authorization { user: None };
        }
        let response = match error {
            LineError::TooLong => Response::LINE_TOO_LONG,
            LineError::BareLineEnding => Response::BARE_LINE_ENDING,
        };
        self.reject(&response);
    }

    fn command_error(&mut self, error: CommandError) {
        match error {
            CommandError::Unknown => self.reject(&Response::UNKNOWN_COMMAND),
            CommandError::InvalidCharacters => self.reject(&Response::INVALID_CHARACTERS),
            CommandError::Syntax { usage } => {
                self.reject(&Response::new(
                    Status::Err,
                    None,
                    format!("Syntax: {usage}"),
                ));
            }
        }
    }

    /// Sends an error that counts toward [`ServerConfig::max_errors`]. The
    /// last one allowed also says the session ends, in the same line:
    /// RFC 1939 §3 has one response per command, and a second line would
    /// read as the answer to the client's next (pipelined) command.
    fn reject(&mut self, response: &Response) {
        self.errors = self.errors.saturating_add(1);
        if self.errors >= self.config.max_errors {
            self.reply(&response.closing());
            self.close();
        } else {
            self.reply(response);
        }
    }

    fn reply(&mut self, response: &Response) {
        response.write_to(&mut self.output);
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.reader.clear();
    }

    /// Whether a password may be sent now: over TLS, or where the driver
    /// trusts the network.
    fn plaintext_allowed(&self) -> bool {
        self.tls || self.config.plaintext_login_allowed
    }

    fn apop_offered(&self) -> bool {
        self.config.apop && is_valid_timestamp(&self.config.greeting_timestamp)
    }
}

/// Where the session is. The `*Pending` states wait for a decision method.
#[derive(Debug)]
enum State {
    /// RFC 1939 §4. `user` is the name of a USER just accepted.
    Authorization {
        user: Option<String>,
    },
    /// `+ ` sent after `AUTH PLAIN`; the next line is the client's response.
    SaslPlain,
    LoginPending {
        user: String,
    },
    TlsPending,
    /// RFC 1939 §5.
    Transaction,
    RetrievePending {
        index: usize,
        top: bool,
    },
    /// RFC 1939 §6: the UPDATE state, deletions running.
    UpdatePending {
        deleted: usize,
    },
    Closed,
}

/// RFC 1939 §4: "+OK" and a greeting; the APOP timestamp follows it.
const GREETING: &str = "mailroom POP3 server ready";
