//! The SMTP server session state machine (RFC 5321 §4.1.4 sequencing,
//! §4.5.3 limits), sans I/O.

use std::{fmt, mem};

use mailroom_core::Address;

use crate::bdat::{Chunk, Disposition};
use crate::codes;
use crate::command::{self, Auth, Bdat, Command, ForwardPath, Mail, MailParams, Recipient};
use crate::config::{ServerConfig, Timeout};
use crate::data::{self, DataDecoder};
use crate::event::{Envelope, Event};
use crate::reply::Reply;

/// One SMTP server connection's protocol state: bytes in, replies and
/// events out. It owns no socket, clock or file.
///
/// # Poll order for the driver
///
/// 1. After [`ServerSession::new`], send [`ServerSession::take_output`]
///    (the 220 greeting).
/// 2. Loop:
///    * call [`ServerSession::poll_event`] until it returns `None`,
///      answering each event that needs a decision (see [`Event`]) before
///      polling again: `accept`/`respond`/`auth_challenge`/`auth_succeeded`
///      for decisions, `tls_established` after [`Event::StartTls`];
///    * write [`ServerSession::take_output`] to the peer;
///    * if [`ServerSession::is_closed`], close the connection;
///    * read with the timeout [`ServerSession::next_timeout`] names and pass
///      the bytes to [`ServerSession::handle_input`]; on a timeout call
///      [`ServerSession::timed_out`]; to stop, [`ServerSession::shutdown`].
///
/// Pipelined commands (RFC 2920) are processed in order; their replies
/// accumulate in the output until it is taken. Input that arrives while a
/// decision is pending is buffered.
pub struct ServerSession {
    config: ServerConfig,
    /// Received, not yet processed bytes start at `input[pos]`.
    input: Vec<u8>,
    pos: usize,
    /// Octets of the current partial command line already searched for CR LF.
    scanned: usize,
    /// Discarding an over-long command line; the flag says whether the last
    /// discarded byte was a CR.
    discarding: Option<bool>,
    mode: Mode,
    pending: Option<Pending>,
    output: Vec<u8>,
    helo: Option<String>,
    esmtp: bool,
    tls: bool,
    authenticated: Option<String>,
    transaction: Option<Transaction>,
    errors: u32,
    closed: bool,
}

impl ServerSession {
    /// A new session; the 220 greeting is queued.
    pub fn new(config: ServerConfig) -> Self {
        let mut session = ServerSession {
            tls: config.tls_active,
            config,
            input: Vec::new(),
            pos: 0,
            scanned: 0,
            discarding: None,
            mode: Mode::Command,
            pending: None,
            output: Vec::new(),
            helo: None,
            esmtp: false,
            authenticated: None,
            transaction: None,
            errors: 0,
            closed: false,
        };
        // RFC 5321 §4.3.1 / RFC 2034 §3: no enhanced code on the greeting.
        session.queue(codes::greeting(&session.config.hostname));
        session
    }

    // ------------------------------------------------------------ getters

    /// True after QUIT or a 421: flush the output, then close.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The timeout for the next read.
    pub fn next_timeout(&self) -> Timeout {
        if self.in_data() {
            Timeout::DataBlock
        } else {
            Timeout::Command
        }
    }

    /// True when the connection is TLS (implicit, or after STARTTLS).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The identity from a successful AUTH.
    pub fn authenticated(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    /// The HELO/EHLO name, once greeted.
    pub fn helo(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// True while DATA or BDAT octets are being received (a graceful
    /// shutdown lets these finish).
    pub fn in_data(&self) -> bool {
        matches!(self.mode, Mode::Data(_) | Mode::Bdat(_))
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    // ------------------------------------------------------------ input

    /// Buffers bytes from the peer. Never panics, whatever the bytes. Input
    /// after the session closed, or while a STARTTLS handshake is pending
    /// (plaintext injection, RFC 3207 §4.2), is dropped.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        if self.closed || matches!(self.pending, Some(Pending::StartTls)) {
            return;
        }
        if self.pos > 0 {
            self.input.drain(..self.pos.min(self.input.len()));
            self.pos = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// The driver's STARTTLS handshake finished: start afresh in TLS
    /// (RFC 3207 §4.2: "the server MUST discard any knowledge obtained from
    /// the client, such as the argument to the EHLO command"). The client
    /// must greet again. Ignored unless [`Event::StartTls`] is pending.
    pub fn tls_established(&mut self) {
        if !matches!(self.pending, Some(Pending::StartTls)) {
            return;
        }
        self.pending = None;
        self.tls = true;
        self.helo = None;
        self.esmtp = false;
        self.authenticated = None;
        self.transaction = None;
        self.mode = Mode::Command;
        self.clear_input();
    }

    /// Graceful stop: queue 421 4.3.2 and close.
    pub fn shutdown(&mut self) {
        if !self.closed {
            self.queue(codes::service_shutting_down(&self.config.hostname));
            self.close();
        }
    }

    /// The read timed out: queue 421 4.4.2 and close.
    pub fn timed_out(&mut self) {
        if !self.closed {
            self.queue(codes::timeout(&self.config.hostname));
            self.close();
        }
    }

    // ------------------------------------------------------------ decisions

    /// Answers the pending event with its default positive reply: MAIL 250
    /// 2.1.0, RCPT 250 2.1.5, a message 250 2.0.0, VRFY/EXPN 252 2.5.0.
    /// `accept` never authenticates: for AUTH it answers 535 5.7.8 (use
    /// [`ServerSession::auth_succeeded`]). Does nothing when no decision is
    /// pending, or while a STARTTLS handshake is.
    pub fn accept(&mut self) {
        let reply = match &self.pending {
            None | Some(Pending::StartTls) => return,
            Some(Pending::MailFrom { .. }) => codes::sender_ok(),
            Some(Pending::RcptTo(_)) => codes::recipient_ok(),
            Some(Pending::Message) => codes::ok(),
            Some(Pending::Vrfy | Pending::Expn) => codes::vrfy_cannot_verify(),
            Some(Pending::Auth) => codes::auth_failed(),
        };
        self.respond(reply);
    }

    /// Answers the pending event with `reply`. For MAIL and RCPT a 2xx
    /// accepts (starts the transaction, adds the recipient) and anything
    /// else rejects; for a message the transaction is over whatever the
    /// reply; for VRFY/EXPN it is just the reply; for AUTH it ends the
    /// exchange without authenticating. For a pending STARTTLS it means the
    /// handshake will not happen: the reply is queued and the session
    /// closes. Does nothing when no decision is pending.
    pub fn respond(&mut self, reply: Reply) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let success = reply.is_success();
        self.queue(reply);
        match pending {
            Pending::MailFrom {
                reverse_path,
                params,
            } => {
                if success {
                    self.transaction = Some(Transaction::new(reverse_path, params));
                }
            }
            Pending::RcptTo(recipient) => {
                if let (true, Some(tx)) = (success, self.transaction.as_mut()) {
                    tx.recipients.push(recipient);
                }
            }
            Pending::Message | Pending::Vrfy | Pending::Expn => {}
            Pending::Auth => self.mode = Mode::Command,
            Pending::StartTls => self.close(),
        }
    }

    /// Continues a pending AUTH exchange with `334 <challenge>`; the
    /// client's next line becomes [`Event::AuthResponse`]. Ignored unless
    /// AUTH is pending.
    pub fn auth_challenge(&mut self, challenge_base64: &str) {
        if matches!(self.pending, Some(Pending::Auth)) {
            self.pending = None;
            self.queue(codes::auth_challenge(challenge_base64));
            self.mode = Mode::AuthResponse;
        }
    }

    /// Ends a pending AUTH exchange successfully: 235 2.7.0, and the
    /// session is authenticated as `identity`. Ignored unless AUTH is
    /// pending.
    pub fn auth_succeeded(&mut self, identity: &str) {
        if matches!(self.pending, Some(Pending::Auth)) {
            self.pending = None;
            self.authenticated = Some(identity.to_string());
            self.queue(codes::auth_succeeded());
            self.mode = Mode::Command;
        }
    }

    // ------------------------------------------------------------ output

    /// Processes buffered input until an event is ready or nothing complete
    /// is left. Returns `None` while a decision is pending and after the
    /// session closed.
    pub fn poll_event(&mut self) -> Option<Event> {
        loop {
            if self.closed || self.pending.is_some() {
                return None;
            }
            let step = match self.mode {
                Mode::Command => self.command_step(),
                Mode::Data(_) => self.data_step(),
                Mode::Bdat(_) => self.bdat_step(),
                Mode::AuthResponse => self.auth_response_step(),
            };
            match step {
                Step::Event(event) => return Some(event),
                Step::Continue => {}
                Step::NeedInput => return None,
            }
        }
    }

    /// The bytes to send: every reply queued so far. Empties the buffer.
    pub fn take_output(&mut self) -> Vec<u8> {
        mem::take(&mut self.output)
    }

    // ------------------------------------------------------------ steps

    fn command_step(&mut self) -> Step {
        match self.read_line(false) {
            LineRead::Incomplete => Step::NeedInput,
            LineRead::TooLong => {
                self.fail(codes::line_too_long());
                Step::Continue
            }
            LineRead::BareLineEnding => {
                self.fail(codes::bare_line_ending_in_command());
                Step::Continue
            }
            LineRead::Line(line) => match Command::parse(&line) {
                Ok(command) => self.command(command).map_or(Step::Continue, Step::Event),
                Err(err) => {
                    self.fail(err.reply());
                    Step::Continue
                }
            },
        }
    }

    fn data_step(&mut self) -> Step {
        let Mode::Data(decoder) = &mut self.mode else {
            return Step::Continue;
        };
        let available = self.input.get(self.pos..).unwrap_or_default();
        let Some(finished) = decoder.feed(available) else {
            self.pos = self.input.len();
            return Step::NeedInput;
        };
        self.pos += finished.consumed;
        self.mode = Mode::Command;
        self.message(finished.result)
    }

    fn bdat_step(&mut self) -> Step {
        let Mode::Bdat(chunk) = &mut self.mode else {
            return Step::Continue;
        };
        let available = self.input.get(self.pos..).unwrap_or_default();
        let n = chunk.take(available.len());
        if let (Disposition::Store, Some(tx)) = (&chunk.disposition, self.transaction.as_mut()) {
            tx.bdat
                .get_or_insert_default()
                .extend_from_slice(available.get(..n).unwrap_or_default());
        }
        self.pos += n;
        if chunk.remaining > 0 {
            return Step::NeedInput;
        }
        let Mode::Bdat(chunk) = mem::replace(&mut self.mode, Mode::Command) else {
            return Step::Continue;
        };
        match chunk.disposition {
            Disposition::Discard {
                reply,
                error,
                reset,
            } => {
                if reset {
                    self.transaction = None;
                }
                if error {
                    self.fail(reply)
                } else {
                    self.queue(reply)
                }
                Step::Continue
            }
            Disposition::Store if !chunk.last => {
                // RFC 3030 §2: each non-last chunk gets its own 250.
                self.queue(codes::chunk_received(chunk.size));
                Step::Continue
            }
            Disposition::Store => {
                let body = self
                    .transaction
                    .as_mut()
                    .and_then(|tx| tx.bdat.take())
                    .unwrap_or_default();
                // We offer no BINARYMIME, so a BDAT message is text: the
                // same line rules as DATA apply (RFC 3030 §3).
                let result = data::check_text(&body, self.config.max_text_line).map(|()| body);
                self.message(result)
            }
        }
    }

    fn auth_response_step(&mut self) -> Step {
        let line = match self.read_line(true) {
            LineRead::Incomplete => return Step::NeedInput,
            LineRead::TooLong => Err(codes::line_too_long()),
            LineRead::BareLineEnding => Err(codes::bare_line_ending_in_command()),
            LineRead::Line(line) => Ok(line),
        };
        self.mode = Mode::Command;
        let line = match line {
            Ok(line) => line,
            Err(reply) => {
                self.fail(reply);
                return Step::Continue;
            }
        };
        // RFC 4954 §4: "*" cancels; the server "MUST reject the AUTH
        // command by sending a 501 reply".
        if line == b"*" {
            self.queue(codes::auth_cancelled());
            return Step::Continue;
        }
        match String::from_utf8(line) {
            Ok(line) if command::is_base64(&line) => {
                self.pending = Some(Pending::Auth);
                Step::Event(Event::AuthResponse { line })
            }
            _ => {
                self.fail(codes::auth_bad_base64());
                Step::Continue
            }
        }
    }

    /// The end of a DATA or BDAT message.
    fn message(&mut self, result: Result<Vec<u8>, data::DataError>) -> Step {
        let transaction = self.transaction.take();
        match (result, transaction) {
            (Ok(data), Some(tx)) => {
                let envelope = Envelope {
                    helo: self.helo.clone().unwrap_or_default(),
                    esmtp: self.esmtp,
                    reverse_path: tx.reverse_path,
                    mail_params: tx.params,
                    recipients: tx.recipients,
                };
                self.pending = Some(Pending::Message);
                Step::Event(Event::Message { envelope, data })
            }
            (Ok(_), None) => {
                // Not reachable: DATA/BDAT only store inside a transaction.
                self.queue(codes::local_error());
                Step::Continue
            }
            // Over the size limit is policy (the client was told the limit
            // in EHLO); bad line endings, NUL and long lines are errors.
            (Err(err @ data::DataError::TooBig), _) => {
                self.queue(err.reply());
                Step::Continue
            }
            (Err(err), _) => {
                self.fail(err.reply());
                Step::Continue
            }
        }
    }

    // ------------------------------------------------------------ commands

    fn command(&mut self, command: Command) -> Option<Event> {
        match command {
            Command::Helo { domain } => Some(self.hello(domain, false)),
            Command::Ehlo { domain } => Some(self.hello(domain, true)),
            Command::Mail(mail) => self.mail(mail),
            Command::Rcpt(recipient) => self.rcpt(recipient),
            Command::Data => {
                self.data();
                None
            }
            Command::Bdat(bdat) => {
                self.bdat(bdat);
                None
            }
            Command::Rset => {
                // RFC 5321 §4.1.1.5: RSET aborts the transaction, keeps HELO.
                self.transaction = None;
                self.queue(codes::ok());
                None
            }
            Command::Noop => {
                self.queue(codes::ok());
                None
            }
            Command::Quit => {
                self.queue(codes::closing(&self.config.hostname));
                self.close();
                Some(Event::Quit)
            }
            Command::Help { .. } => {
                self.queue(codes::help());
                None
            }
            Command::Vrfy { argument } => {
                if self.config.vrfy || self.authenticated.is_some() {
                    self.pending = Some(Pending::Vrfy);
                    Some(Event::Vrfy { argument })
                } else {
                    // RFC 5321 §3.5.3: 252 when we will not verify.
                    self.queue(codes::vrfy_cannot_verify());
                    None
                }
            }
            Command::Expn { argument } => {
                if self.config.expn || self.authenticated.is_some() {
                    self.pending = Some(Pending::Expn);
                    Some(Event::Expn { argument })
                } else {
                    self.queue(codes::not_implemented());
                    None
                }
            }
            Command::StartTls => self.starttls(),
            Command::Auth(auth) => self.auth(auth),
        }
    }

    fn hello(&mut self, domain: String, extended: bool) -> Event {
        // RFC 5321 §4.1.4: HELO/EHLO reset any transaction in progress.
        self.transaction = None;
        self.helo = Some(domain.clone());
        self.esmtp = extended;
        let host = &self.config.hostname;
        let reply = if extended {
            codes::ehlo_ok(host, self.extensions())
        } else {
            codes::helo_ok(host)
        };
        self.queue(reply);
        Event::Helo { domain, extended }
    }

    /// The EHLO keywords (RFC 5321 §4.1.1.1), in a fixed order.
    fn extensions(&self) -> Vec<String> {
        let mut out = vec![
            "PIPELINING".to_string(),                         // RFC 2920
            format!("SIZE {}", self.config.max_message_size), // RFC 1870
            "8BITMIME".to_string(),                           // RFC 6152
            "ENHANCEDSTATUSCODES".to_string(),                // RFC 2034
            "SMTPUTF8".to_string(),                           // RFC 6531
            "CHUNKING".to_string(),                           // RFC 3030
            "DSN".to_string(),                                // RFC 3461
        ];
        if self.config.starttls && !self.tls {
            out.push("STARTTLS".to_string()); // RFC 3207
        }
        if self.auth_offered() && self.auth_allowed_here() && self.authenticated.is_none() {
            out.push(format!("AUTH {}", self.config.auth_mechanisms.join(" "))); // RFC 4954
        }
        out.push("HELP".to_string());
        out
    }

    fn mail(&mut self, mail: Mail) -> Option<Event> {
        if self.helo.is_none() {
            self.fail(codes::bad_sequence("Send HELO/EHLO first"));
        } else if self.transaction.is_some() {
            self.fail(codes::bad_sequence("Nested MAIL command"));
        } else if self.config.require_auth && self.authenticated.is_none() {
            // RFC 6409 §4.3 / RFC 4954 §6.
            self.fail(codes::auth_required());
        } else if mail
            .params
            .size
            .is_some_and(|size| size > self.config.max_message_size)
        {
            // RFC 1870 §6.
            self.queue(codes::message_too_big());
        } else {
            self.pending = Some(Pending::MailFrom {
                reverse_path: mail.reverse_path.clone(),
                params: mail.params.clone(),
            });
            return Some(Event::MailFrom {
                reverse_path: mail.reverse_path,
                params: mail.params,
            });
        }
        None
    }

    fn rcpt(&mut self, recipient: Recipient) -> Option<Event> {
        let max_recipients = self.config.max_recipients;
        let Some(tx) = self.transaction.as_mut() else {
            self.fail(codes::bad_sequence("Need MAIL command"));
            return None;
        };
        if tx.bdat.is_some() {
            self.fail(codes::bad_sequence("RCPT not allowed after BDAT"));
            return None;
        }
        tx.rcpt_commands += 1;
        if tx.recipients.len() >= max_recipients {
            // RFC 5321 §4.5.3.1.10: 452, the client sends the rest later.
            self.queue(codes::too_many_recipients());
            return None;
        }
        let utf8 = matches!(&recipient.path, ForwardPath::Mailbox(a) if a.is_utf8());
        if utf8 && !tx.params.smtputf8 {
            // RFC 6531 §3.5.
            self.fail(codes::utf8_required());
            return None;
        }
        self.pending = Some(Pending::RcptTo(recipient.clone()));
        Some(Event::RcptTo { recipient })
    }

    fn data(&mut self) {
        match self.transaction_readiness() {
            Err((reply, true)) => self.fail(reply),
            Err((reply, false)) => self.queue(reply),
            Ok(tx) if tx.bdat.is_some() => {
                // RFC 3030 §2: DATA and BDAT cannot be mixed in one transaction.
                self.fail(codes::bad_sequence("DATA not allowed after BDAT"));
            }
            Ok(_) => {
                self.queue(codes::start_data());
                self.mode = Mode::Data(DataDecoder::new(
                    self.config.max_message_size,
                    self.config.max_text_line,
                ));
            }
        }
    }

    fn bdat(&mut self, bdat: Bdat) {
        let max = self.config.max_message_size;
        let disposition = match self.transaction_readiness() {
            // RFC 3030 §2: chunks pipelined after a failed BDAT are "accepted
            // and discarded"; their 503s do not count as client errors.
            Err((reply, _)) => Disposition::Discard {
                reply,
                error: false,
                reset: false,
            },
            Ok(tx) => {
                let so_far = tx.bdat.as_ref().map_or(0, |b| b.len() as u64);
                if so_far.saturating_add(bdat.size) > max {
                    // RFC 3030 §2 / RFC 1870: the message is too big.
                    Disposition::Discard {
                        reply: codes::message_too_big(),
                        error: false,
                        reset: true,
                    }
                } else {
                    tx.bdat.get_or_insert_default();
                    Disposition::Store
                }
            }
        };
        self.mode = Mode::Bdat(Chunk::new(bdat.size, bdat.last, disposition));
    }

    /// Whether the transaction may send its message now (RFC 5321 §3.3):
    /// the reply refusing it and whether that counts as an error otherwise.
    fn transaction_readiness(&mut self) -> Result<&mut Transaction, (Reply, bool)> {
        match self.transaction.as_mut() {
            None => Err((codes::bad_sequence("Need MAIL command"), true)),
            Some(tx) if tx.rcpt_commands == 0 => {
                Err((codes::bad_sequence("Need RCPT command"), true))
            }
            Some(tx) if tx.recipients.is_empty() => Err((codes::no_valid_recipients(), false)),
            Some(tx) => Ok(tx),
        }
    }

    fn starttls(&mut self) -> Option<Event> {
        if self.tls {
            self.fail(codes::bad_sequence("TLS already active"));
        } else if !self.config.starttls {
            self.fail(codes::not_implemented());
        } else if self.transaction.is_some() {
            self.fail(codes::bad_sequence(
                "STARTTLS not allowed during a mail transaction",
            ));
        } else {
            self.queue(codes::ready_to_start_tls());
            // RFC 3207 §4.2 (CVE-2011-0411): nothing sent in plaintext after
            // STARTTLS may be executed after the handshake.
            self.clear_input();
            self.pending = Some(Pending::StartTls);
            return Some(Event::StartTls);
        }
        None
    }

    fn auth(&mut self, auth: Auth) -> Option<Event> {
        if !self.auth_offered() {
            self.fail(codes::bad_sequence("AUTH not available"));
        } else if self.helo.is_none() {
            self.fail(codes::bad_sequence("Send HELO/EHLO first"));
        } else if self.authenticated.is_some() {
            // RFC 4954 §4: "After a successful AUTH command completes, a
            // server MUST reject any further AUTH commands with a 503 reply."
            self.fail(codes::bad_sequence("Already authenticated"));
        } else if self.transaction.is_some() {
            // RFC 4954 §4: "The AUTH command is not permitted during a mail
            // transaction."
            self.fail(codes::bad_sequence(
                "AUTH not allowed during a mail transaction",
            ));
        } else if !self.auth_allowed_here() {
            self.fail(codes::encryption_required());
        } else if !self
            .config
            .auth_mechanisms
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&auth.mechanism))
        {
            self.fail(codes::auth_mechanism_unsupported());
        } else {
            self.pending = Some(Pending::Auth);
            return Some(Event::Auth {
                mechanism: auth.mechanism,
                initial_response: auth.initial_response,
            });
        }
        None
    }

    fn auth_offered(&self) -> bool {
        !self.config.auth_mechanisms.is_empty()
    }

    /// AUTH only over TLS, unless the driver vouches for the network.
    fn auth_allowed_here(&self) -> bool {
        self.tls || self.config.auth_without_tls
    }

    // ------------------------------------------------------------ helpers

    fn queue(&mut self, reply: Reply) {
        reply.write_to(&mut self.output);
    }

    /// Queues a reply to a protocol error, and closes with 421 once the
    /// client has made `max_errors` of them.
    fn fail(&mut self, reply: Reply) {
        self.queue(reply);
        self.errors = self.errors.saturating_add(1);
        if self.errors >= self.config.max_errors {
            self.queue(codes::too_many_errors(&self.config.hostname));
            self.close();
        }
    }

    fn close(&mut self) {
        self.closed = true;
        self.pending = None;
        self.mode = Mode::Command;
        self.clear_input();
    }

    fn clear_input(&mut self) {
        self.input = Vec::new();
        self.pos = 0;
        self.scanned = 0;
        self.discarding = None;
    }

    /// Reads one CR LF-terminated line from the input (RFC 5321 §2.3.8:
    /// CR and LF only ever appear together, as the line end).
    fn read_line(&mut self, auth_response: bool) -> LineRead {
        let buf = self.input.get(self.pos..).unwrap_or_default();
        if let Some(last_was_cr) = self.discarding {
            let end = if last_was_cr && buf.first() == Some(&b'\n') {
                Some(1)
            } else {
                find_crlf(buf, 0).map(|at| at + 2)
            };
            return match end {
                Some(n) => {
                    self.pos += n;
                    self.discarding = None;
                    LineRead::TooLong
                }
                None => {
                    self.discarding = Some(buf.last().map_or(last_was_cr, |&b| b == b'\r'));
                    self.pos += buf.len();
                    LineRead::Incomplete
                }
            };
        }
        let limit = self.line_limit(buf, auth_response);
        match find_crlf(buf, self.scanned) {
            Some(at) => {
                let line = buf.get(..at).unwrap_or_default();
                let result = if at + 2 > limit {
                    LineRead::TooLong
                } else if line.iter().any(|&b| b == b'\r' || b == b'\n') {
                    LineRead::BareLineEnding
                } else {
                    LineRead::Line(line.to_vec())
                };
                self.pos += at + 2;
                self.scanned = 0;
                result
            }
            None if buf.len() >= limit => {
                // The line will be longer than `limit` whatever follows:
                // drop what we have and skip to its end (bounded memory).
                self.discarding = Some(buf.last() == Some(&b'\r'));
                self.pos += buf.len();
                self.scanned = 0;
                LineRead::Incomplete
            }
            None => {
                self.scanned = buf.len();
                LineRead::Incomplete
            }
        }
    }

    /// The longest allowed line, judged from its first octets.
    fn line_limit(&self, line: &[u8], auth_response: bool) -> usize {
        let base = self.config.max_command_line;
        let starts = |verb: &[u8]| {
            line.get(..verb.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(verb))
        };
        if auth_response || starts(b"AUTH ") {
            base.max(AUTH_LINE)
        } else if starts(b"MAIL ") || starts(b"RCPT ") {
            base.saturating_add(PARAMETER_ROOM)
        } else {
            base
        }
    }
}

impl fmt::Debug for ServerSession {
    /// Shows the state, never the buffered input (it may hold AUTH
    /// credentials or message text).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSession")
            .field("helo", &self.helo)
            .field("esmtp", &self.esmtp)
            .field("tls", &self.tls)
            .field("authenticated", &self.authenticated)
            .field("in_transaction", &self.transaction.is_some())
            .field("mode", &self.mode)
            .field("pending", &self.pending)
            .field(
                "buffered",
                &(self.input.len() - self.pos.min(self.input.len())),
            )
            .field("errors", &self.errors)
            .field("closed", &self.closed)
            .finish()
    }
}

/// A mail transaction in progress (RFC 5321 §3.3).
#[derive(Debug)]
struct Transaction {
    reverse_path: Option<Address>,
    params: MailParams,
    recipients: Vec<Recipient>,
    /// RCPT commands seen (accepted or not), to tell "no RCPT yet" (503)
    /// from "no valid recipients" (554).
    rcpt_commands: usize,
    /// The message so far, once a BDAT chunk was accepted.
    bdat: Option<Vec<u8>>,
}

impl Transaction {
    fn new(reverse_path: Option<Address>, params: MailParams) -> Self {
        Transaction {
            reverse_path,
            params,
            recipients: Vec::new(),
            rcpt_commands: 0,
            bdat: None,
        }
    }
}

/// How the next input octets are read.
enum Mode {
    Command,
    Data(DataDecoder),
    Bdat(Chunk),
    /// The next line answers a 334 challenge.
    AuthResponse,
}

impl fmt::Debug for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Command => "Command",
            Mode::Data(_) => "Data",
            Mode::Bdat(_) => "Bdat",
            Mode::AuthResponse => "AuthResponse",
        })
    }
}

/// The decision the session waits for.
#[derive(Debug)]
enum Pending {
    MailFrom {
        reverse_path: Option<Address>,
        params: MailParams,
    },
    RcptTo(Recipient),
    Vrfy,
    Expn,
    Message,
    /// AUTH or an AUTH response.
    Auth,
    StartTls,
}

enum Step {
    Event(Event),
    Continue,
    NeedInput,
}

enum LineRead {
    Incomplete,
    Line(Vec<u8>),
    TooLong,
    BareLineEnding,
}

/// The index of the CR of the first CR LF at or after `from - 1`.
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut start = from;
    loop {
        let at = start + buf.get(start..)?.iter().position(|&b| b == b'\n')?;
        if at > 0 && buf.get(at - 1) == Some(&b'\r') {
            return Some(at - 1);
        }
        start = at + 1;
    }
}

/// RFC 4954 §4: AUTH lines and SASL responses may be 12,288 octets.
const AUTH_LINE: usize = 12_288;
/// Extra room on MAIL/RCPT lines for extension parameters (RFC 5321
/// §4.5.3.1.4: "the maximum total length of a command line … may be
/// increased by up to … octets for each extension").
const PARAMETER_ROOM: usize = 500;
