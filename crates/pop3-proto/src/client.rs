//! The POP3 client session (RFC 1939, with RFC 2449 CAPA and response codes,
//! RFC 2595 STLS, RFC 5034 AUTH PLAIN): the protocol half of `mailroom
//! fetch`, with no I/O.
//!
//! The driver asks for a command with a method ([`ClientSession::retr`],
//! ...), writes [`ClientSession::take_output`] to the socket, feeds what it
//! reads to [`ClientSession::handle_input`] and drains
//! [`ClientSession::poll_event`]. One command is outstanding at a time: the
//! session refuses a second one ([`SendError::Busy`]) until the first one's
//! response was polled, so the driver's loop is "send, then poll until the
//! answer".
//!
//! Strict on input, as the server side is: every line ends in CRLF, a bare
//! CR or LF anywhere (message content included) is a protocol error, and
//! status lines are held to RFC 2449 §4's 512 octets. Message content is
//! streamed: [`ClientEvent::MessageData`] carries un-stuffed bytes as they
//! arrive, so a message of any size costs no more memory than one read.

use std::collections::VecDeque;
use std::fmt;

use crate::response::{RespCode, Response, Status};

/// The settings of one client session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The most entries a LIST or UIDL response may have before the session
    /// gives up with [`ClientError::TooManyEntries`]. Default 1,000,000: far
    /// more than any real maildrop, and it bounds what a hostile server can
    /// make the client hold (about 100 MB).
    pub max_listing_entries: usize,
    /// The longest line, CRLF included, of a multi-line CAPA, LIST or UIDL
    /// response. Default 1,000 octets: RFC 2449 §4 bounds only the first
    /// line of a response (512), and real listing lines are under 100. Lines
    /// of message content have no limit: they are streamed, never buffered.
    pub max_listing_line: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            max_listing_entries: 1_000_000,
            max_listing_line: 1_000,
        }
    }
}

/// Where a client session is (RFC 1939 §3–§6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Waiting for the server's greeting.
    Greeting,
    /// RFC 1939 §4: not logged in yet.
    Authorization,
    /// `+OK` to STLS was received; the driver runs the TLS handshake and
    /// calls [`ClientSession::tls_established`].
    TlsHandshake,
    /// RFC 1939 §5: logged in, the maildrop is ours.
    Transaction,
    /// QUIT was answered, the greeting refused, or a protocol error ended
    /// the session.
    Closed,
}

/// Which command a response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// Not a command: the server's greeting (RFC 1939 §4).
    Greeting,
    /// `CAPA` (RFC 2449 §5).
    Capa,
    /// `STLS` (RFC 2595 §4).
    Stls,
    /// `USER name` (RFC 1939 §7).
    User,
    /// `PASS string` (RFC 1939 §7).
    Pass,
    /// `AUTH PLAIN` (RFC 5034 §4, RFC 4616).
    AuthPlain,
    /// `STAT` (RFC 1939 §5).
    Stat,
    /// `LIST` (RFC 1939 §5).
    List,
    /// `UIDL` (RFC 1939 §7).
    Uidl,
    /// `RETR msg` (RFC 1939 §5).
    Retr,
    /// `DELE msg` (RFC 1939 §5).
    Dele,
    /// `NOOP` (RFC 1939 §5).
    Noop,
    /// `RSET` (RFC 1939 §5).
    Rset,
    /// `QUIT` (RFC 1939 §4, §6).
    Quit,
}

/// One line of a LIST response: a message and its size (RFC 1939 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListEntry {
    /// The message number, 1-based.
    pub msg: u64,
    /// The size in octets, as the server counts it (CRLF line ends, before
    /// byte-stuffing).
    pub size: u64,
}

/// One line of a UIDL response (RFC 1939 §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UidEntry {
    /// The message number, 1-based.
    pub msg: u64,
    /// The unique id: 1–70 characters in 0x21–0x7E, checked.
    pub uid: String,
}

/// The capabilities a CAPA response listed (RFC 2449 §5): one keyword per
/// line, with its arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Each line as (keyword upper-cased, arguments as sent).
    entries: Vec<(String, Vec<String>)>,
}

impl Capabilities {
    /// Whether `keyword` (case-insensitive, RFC 2449 §5) was listed.
    pub fn has(&self, keyword: &str) -> bool {
        self.arguments(keyword).is_some()
    }

    /// The arguments of `keyword`, if it was listed.
    pub fn arguments(&self, keyword: &str) -> Option<&[String]> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(keyword))
            .map(|(_, args)| args.as_slice())
    }

    /// `STLS` was listed (RFC 2595 §4).
    pub fn stls(&self) -> bool {
        self.has("STLS")
    }

    /// `USER` was listed (RFC 2449 §6.2): USER/PASS works on this
    /// connection.
    pub fn user(&self) -> bool {
        self.has("USER")
    }

    /// `SASL` lists `mechanism` (RFC 2449 §6.3, case-insensitive).
    pub fn sasl(&self, mechanism: &str) -> bool {
        self.arguments("SASL")
            .is_some_and(|m| m.iter().any(|m| m.eq_ignore_ascii_case(mechanism)))
    }

    /// `UIDL` was listed (RFC 2449 §6.5).
    pub fn uidl(&self) -> bool {
        self.has("UIDL")
    }

    /// Every keyword, upper-cased, in the order listed.
    pub fn keywords(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }
}

/// What the session learned from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The `+OK` greeting (RFC 1939 §4). `apop_timestamp` is the `<...>`
    /// part of its text when there is one (RFC 1939 §7). A `-ERR` greeting
    /// comes as [`ClientEvent::Rejected`] with [`CommandKind::Greeting`].
    Greeting {
        /// The whole status line.
        response: Response,
        /// The APOP timestamp, brackets included.
        apop_timestamp: Option<String>,
    },
    /// The CAPA list (RFC 2449 §5).
    Capabilities(Capabilities),
    /// STLS was accepted (RFC 2595 §4). Run the TLS handshake on the
    /// connection, then call [`ClientSession::tls_established`]. Forget the
    /// capabilities: RFC 2595 §4 says the client "MUST discard cached
    /// information about server capabilities" and should send CAPA again.
    TlsReady,
    /// A `+OK` that carries nothing more: USER, PASS and AUTH (logged in:
    /// the session is in the TRANSACTION state), DELE, NOOP, RSET.
    Accepted {
        /// The command it answers.
        command: CommandKind,
        /// The status line.
        response: Response,
    },
    /// The answer to STAT (RFC 1939 §5).
    Stat {
        /// Messages in the maildrop, not counting those marked deleted.
        count: u64,
        /// Their total size in octets.
        size: u64,
    },
    /// The answer to LIST: every message not marked deleted.
    Listing(Vec<ListEntry>),
    /// The answer to UIDL: every message not marked deleted.
    UidListing(Vec<UidEntry>),
    /// RETR succeeded; the message's content follows in
    /// [`ClientEvent::MessageData`] events, then [`ClientEvent::MessageEnd`].
    MessageStart {
        /// The message number.
        msg: u64,
        /// The size the server announced (`+OK 120 octets`), when it did.
        /// Informative only: RFC 1939 leaves the text free.
        size: Option<u64>,
    },
    /// Message content, byte-stuffing undone, exactly as the server holds
    /// it (CRLF line ends). Chunks split lines anywhere.
    MessageData(Vec<u8>),
    /// The termination line of the message arrived: all of its content was
    /// delivered in `MessageData`. Only now is the message complete.
    MessageEnd {
        /// The message number.
        msg: u64,
    },
    /// `+OK` to QUIT: in the TRANSACTION state this means the messages
    /// marked deleted are gone (RFC 1939 §6). The session is closed.
    SignedOff {
        /// The status line.
        response: Response,
    },
    /// `-ERR` to a command (or a `-ERR` greeting). The session stays in its
    /// state, except after a greeting or QUIT (closed: RFC 1939 §6 says a
    /// `-ERR` to QUIT means some deleted messages were not removed).
    Rejected {
        /// The command it answers.
        command: CommandKind,
        /// The status line, with its RFC 2449/3206 response code if any.
        response: Response,
    },
}

/// A protocol error: the server broke POP3, and the session is closed (the
/// driver closes the connection; nothing can be trusted after it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// A line longer than allowed: a status line over 512 octets (RFC 2449
    /// §4) or a listing line over [`ClientConfig::max_listing_line`]. A
    /// server of another protocol, or a hostile one.
    #[error("the server sent a line longer than {limit} octets")]
    LineTooLong {
        /// The limit, CRLF included.
        limit: usize,
    },
    /// A CR or LF that is not part of a CRLF, in a response or in message
    /// content: a server that does not use CRLF (RFC 1939 §3), or content
    /// that could end the response early.
    #[error("the server sent a bare CR or LF")]
    BareLineEnding,
    /// A line that should be a status line and is neither `+OK` nor `-ERR`
    /// (RFC 1939 §3): not a POP3 server, or out of sync.
    #[error("malformed response from the server: {0:?}")]
    MalformedResponse(String),
    /// A STAT, LIST or UIDL line not in RFC 1939's format (numbers, a
    /// unique-id of 1–70 characters in 0x21–0x7E).
    #[error("malformed listing line from the server: {0:?}")]
    MalformedListing(String),
    /// A LIST or UIDL response longer than
    /// [`ClientConfig::max_listing_entries`].
    #[error("the server listed more than {0} messages")]
    TooManyEntries(usize),
    /// Bytes arrived after the `+OK` to STLS, before TLS started. They were
    /// sent in clear and could be injected by a man in the middle
    /// (CVE-2011-0411 is the server-side twin); the session stops.
    #[error("the server sent data after accepting STLS")]
    DataAfterStls,
}

/// Why a command could not be sent. The session is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// A command is waiting for its response: poll it first.
    #[error("a command is still waiting for its response")]
    Busy,
    /// The command is not valid in this state (RETR before login, STLS on a
    /// TLS connection, anything after the session closed).
    #[error("command not valid in the {0:?} state")]
    WrongState(ClientState),
    /// An argument that cannot be sent: empty, with CR, LF or NUL (or a
    /// space, in a USER name), or making the line longer than the 255
    /// octets of RFC 2449 §4.
    #[error("invalid command argument")]
    InvalidArgument,
}

/// A POP3 client session: commands and bytes in, events and bytes out, no
/// I/O.
///
/// Getters ([`state`](Self::state), [`is_tls`](Self::is_tls),
/// [`is_idle`](Self::is_idle)); `handle_input` and
/// [`tls_established`](Self::tls_established) for input; one method per
/// command; [`poll_event`](Self::poll_event) and
/// [`take_output`](Self::take_output) to drain.
///
/// # Poll order
///
/// 1. After [`new`](Self::new), read from the socket and feed
///    [`handle_input`](Self::handle_input) until `poll_event` returns the
///    [`ClientEvent::Greeting`].
/// 2. Send a command (e.g. [`capa`](Self::capa)) and write
///    [`take_output`](Self::take_output).
/// 3. Feed what the socket reads to `handle_input`, and call `poll_event`
///    until it returns `Ok(None)` (more bytes needed); then write
///    `take_output` if it is not empty (the reply to the server's `+ `
///    after [`auth_plain`](Self::auth_plain) is queued while polling). The
///    command is answered once an event other than
///    `MessageStart`/`MessageData` came ([`is_idle`](Self::is_idle) turns
///    true); then go to 2.
/// 4. An `Err` from `poll_event` is final: close the connection. After
///    [`ClientEvent::SignedOff`] the session is closed too.
///
/// Bytes that arrive while no command is outstanding stay buffered and are
/// read as the next command's response.
pub struct ClientSession {
    config: ClientConfig,
    state: ClientState,
    tls: bool,
    input: Vec<u8>,
    /// `input[..start]` was consumed.
    start: usize,
    /// `input[start..start + scanned]` holds no LF.
    scanned: usize,
    output: Vec<u8>,
    /// What the session expects from the server now.
    expect: Expect,
    /// Events found but not yet polled (message data before its end).
    events: VecDeque<ClientEvent>,
    /// The base64 PLAIN response, kept until the server's `+ ` asks for it.
    /// A password: never shown by `Debug`.
    sasl_response: Option<String>,
}

impl ClientSession {
    /// A session waiting for the greeting.
    pub fn new(config: ClientConfig) -> Self {
        ClientSession {
            config,
            state: ClientState::Greeting,
            tls: false,
            input: Vec::new(),
            start: 0,
            scanned: 0,
            output: Vec::new(),
            expect: Expect::Status(CommandKind::Greeting),
            events: VecDeque::new(),
            sasl_response: None,
        }
    }

    /// A session on a connection that is TLS from the start (pop3s,
    /// RFC 8314): STLS is refused locally.
    pub fn new_tls(config: ClientConfig) -> Self {
        let mut session = ClientSession::new(config);
        session.tls = true;
        session
    }

    /// Where the session is.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// True when the connection is TLS (implicit, or after STLS).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// True when no response is awaited: a command may be sent.
    pub fn is_idle(&self) -> bool {
        matches!(self.expect, Expect::Nothing) && self.events.is_empty()
    }

    /// True once the session is over.
    pub fn is_closed(&self) -> bool {
        self.state == ClientState::Closed
    }

    /// Buffers bytes read from the server. Ignored once closed.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        if self.state == ClientState::Closed {
            return;
        }
        if self.start > 0 {
            self.input.drain(..self.start);
            self.start = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// The next event, `Ok(None)` when more input is needed (or nothing is
    /// awaited). An `Err` closes the session.
    pub fn poll_event(&mut self) -> Result<Option<ClientEvent>, ClientError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(Some(event));
        }
        if self.state == ClientState::Closed {
            return Ok(None);
        }
        match self.step() {
            Ok(()) => Ok(self.events.pop_front()),
            Err(error) => {
                self.close();
                Err(error)
            }
        }
    }

    /// Takes the bytes to write to the server.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// The TLS handshake after [`ClientEvent::TlsReady`] succeeded. The
    /// session is back in the AUTHORIZATION state, over TLS; anything
    /// buffered from before is dropped.
    pub fn tls_established(&mut self) {
        if self.state == ClientState::TlsHandshake {
            self.tls = true;
            self.state = ClientState::Authorization;
            self.input.clear();
            self.start = 0;
            self.scanned = 0;
        }
    }

    /// `CAPA` (RFC 2449 §5), in either state.
    pub fn capa(&mut self) -> Result<(), SendError> {
        self.check(&[ClientState::Authorization, ClientState::Transaction])?;
        self.send(b"CAPA", Expect::Status(CommandKind::Capa))
    }

    /// `STLS` (RFC 2595 §4): not logged in, not yet TLS.
    pub fn stls(&mut self) -> Result<(), SendError> {
        self.check(&[ClientState::Authorization])?;
        if self.tls {
            return Err(SendError::WrongState(self.state));
        }
        self.send(b"STLS", Expect::Status(CommandKind::Stls))
    }

    /// `USER name` (RFC 1939 §7). The name must be printable, without
    /// spaces (use [`auth_plain`](Self::auth_plain) for other names).
    pub fn user(&mut self, name: &str) -> Result<(), SendError> {
        self.check(&[ClientState::Authorization])?;
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(SendError::InvalidArgument);
        }
        self.send(
            format!("USER {name}").as_bytes(),
            Expect::Status(CommandKind::User),
        )
    }

    /// `PASS string` (RFC 1939 §7), right after an accepted USER. The
    /// password may hold spaces but no control characters.
    pub fn pass(&mut self, password: &str) -> Result<(), SendError> {
        self.check(&[ClientState::Authorization])?;
        if password.is_empty() || password.bytes().any(|b| b.is_ascii_control()) {
            return Err(SendError::InvalidArgument);
        }
        self.send(
            format!("PASS {password}").as_bytes(),
            Expect::Status(CommandKind::Pass),
        )
    }

    /// `AUTH PLAIN` (RFC 5034 §4, RFC 4616) with an empty authorization
    /// identity. The response goes with the command when the line stays
    /// within 255 octets (RFC 5034 §4: otherwise the client "MUST NOT
    /// include the initial response"), else after the server's `+ `.
    pub fn auth_plain(&mut self, user: &str, password: &str) -> Result<(), SendError> {
        self.check(&[ClientState::Authorization])?;
        if user.is_empty() || password.is_empty() || user.contains('\0') || password.contains('\0')
        {
            return Err(SendError::InvalidArgument);
        }
        let mut message = Vec::with_capacity(user.len() + password.len() + 2);
        message.push(0);
        message.extend_from_slice(user.as_bytes());
        message.push(0);
        message.extend_from_slice(password.as_bytes());
        let encoded = encode_base64(&message);
        if encoded.len() + 2 > SASL_RESPONSE_LIMIT {
            return Err(SendError::InvalidArgument);
        }
        let line = format!("AUTH PLAIN {encoded}");
        if line.len() + 2 <= COMMAND_LIMIT {
            self.send(line.as_bytes(), Expect::Status(CommandKind::AuthPlain))
        } else {
            self.send(b"AUTH PLAIN", Expect::SaslChallenge)?;
            self.sasl_response = Some(encoded);
            Ok(())
        }
    }

    /// `STAT` (RFC 1939 §5).
    pub fn stat(&mut self) -> Result<(), SendError> {
        self.check(&[ClientState::Transaction])?;
        self.send(b"STAT", Expect::Status(CommandKind::Stat))
    }

    /// `LIST` of every message (RFC 1939 §5).
    pub fn list(&mut self) -> Result<(), SendError> {
        self.check(&[ClientState::Transaction])?;
        self.send(b"LIST", Expect::Status(CommandKind::List))
    }

    /// `UIDL` of every message (RFC 1939 §7).
    pub fn uidl(&mut self) -> Result<(), SendError> {
        self.check(&[ClientState::Transaction])?;
        self.send(b"UIDL", Expect::Status(CommandKind::Uidl))
    }

    /// `RETR msg` (RFC 1939 §5).
    pub fn retr(&mut self, msg: u64) -> Result<(), SendError> {
        self.check(&[ClientState::Transaction])?;
        if msg == 0 {
            return Err(SendError::InvalidArgument);
        }
        self.send(format!("RETR {msg}").as_bytes(), Expect::Retr(msg))
    }

    /// `DELE msg` (RFC 1939 §5): marks it; the server removes it at QUIT.
    pub fn dele(&mut self, msg: u64) -> Result<(), SendError> {
        self.check(&[ClientState::Transaction])?;
        if msg == 0 {
            return Err(SendError::InvalidArgument);
        }
        self.send(
            format!("DELE {msg}").as_bytes(),
            Expect::Status(CommandKind::Dele),
        )
    }

    /// `NOOP` (RFC 1939 §5).
    pub fn noop(&mut self) -> Result<(), SendError> {
        self.check(&[ClientState::Transaction])?;
        self.send(b"NOOP", Expect::Status(CommandKind::Noop))
    }

    /// `RSET` (RFC 1939 §5): unmarks every deleted message.
    pub fn rset(&mut self) -> Result<(), SendError> {
        self.check(&[ClientState::Transaction])?;
        self.send(b"RSET", Expect::Status(CommandKind::Rset))
    }

    /// `QUIT` (RFC 1939 §4, §6). In the TRANSACTION state this is what
    /// commits the deletions.
    pub fn quit(&mut self) -> Result<(), SendError> {
        self.check(&[ClientState::Authorization, ClientState::Transaction])?;
        self.send(b"QUIT", Expect::Status(CommandKind::Quit))
    }

    fn check(&self, states: &[ClientState]) -> Result<(), SendError> {
        if !states.contains(&self.state) {
            return Err(SendError::WrongState(self.state));
        }
        if !self.is_idle() {
            return Err(SendError::Busy);
        }
        Ok(())
    }

    fn send(&mut self, line: &[u8], expect: Expect) -> Result<(), SendError> {
        // RFC 2449 §4: a command line is at most 255 octets with its CRLF.
        if line.len() + 2 > COMMAND_LIMIT || line.iter().any(|&b| b == b'\r' || b == b'\n') {
            return Err(SendError::InvalidArgument);
        }
        self.output.extend_from_slice(line);
        self.output.extend_from_slice(b"\r\n");
        self.expect = expect;
        Ok(())
    }

    /// Parses buffered input until one event is queued, more input is
    /// needed, or nothing is awaited.
    fn step(&mut self) -> Result<(), ClientError> {
        while self.events.is_empty() {
            // Taken out so the parsers below may borrow `self`; every arm
            // puts back what it still waits for.
            match std::mem::replace(&mut self.expect, Expect::Nothing) {
                Expect::Nothing => {
                    if self.state == ClientState::TlsHandshake && self.start < self.input.len() {
                        return Err(ClientError::DataAfterStls);
                    }
                    return Ok(());
                }
                Expect::Status(command) => {
                    let Some(line) = self.next_line(STATUS_LINE_LIMIT)? else {
                        self.expect = Expect::Status(command);
                        return Ok(());
                    };
                    let response = parse_status(&line)?;
                    self.status(command, response)?;
                }
                Expect::SaslChallenge => {
                    let Some(line) = self.next_line(STATUS_LINE_LIMIT)? else {
                        self.expect = Expect::SaslChallenge;
                        return Ok(());
                    };
                    // RFC 5034 §4: a continuation is "+" SP base64, empty
                    // for PLAIN. Some servers send a bare "+".
                    if line == b"+" || line.starts_with(b"+ ") {
                        let encoded = self.sasl_response.take().unwrap_or_default();
                        self.output.extend_from_slice(encoded.as_bytes());
                        self.output.extend_from_slice(b"\r\n");
                        self.expect = Expect::Status(CommandKind::AuthPlain);
                    } else {
                        self.sasl_response = None;
                        let response = parse_status(&line)?;
                        self.status(CommandKind::AuthPlain, response)?;
                    }
                }
                Expect::Lines(mut collected) => {
                    if self.listing_lines(&mut collected)? {
                        self.events.push_back(collected.into_event());
                    } else {
                        self.expect = Expect::Lines(collected);
                        return Ok(());
                    }
                }
                Expect::Retr(msg) => {
                    let Some(line) = self.next_line(STATUS_LINE_LIMIT)? else {
                        self.expect = Expect::Retr(msg);
                        return Ok(());
                    };
                    let response = parse_status(&line)?;
                    if response.status() == Status::Ok {
                        let size = leading_number(response.text());
                        self.events
                            .push_back(ClientEvent::MessageStart { msg, size });
                        self.expect = Expect::Content(msg, ContentState::LineStart);
                    } else {
                        self.events.push_back(ClientEvent::Rejected {
                            command: CommandKind::Retr,
                            response,
                        });
                    }
                }
                Expect::Content(msg, state) => {
                    self.content(msg, state)?;
                    if self.events.is_empty() {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// A status line answering `command`.
    fn status(&mut self, command: CommandKind, response: Response) -> Result<(), ClientError> {
        self.expect = Expect::Nothing;
        if response.status() == Status::Err {
            match command {
                // RFC 1939 §6: -ERR to QUIT in UPDATE: some deletions failed;
                // the server closes anyway. A -ERR greeting refuses us.
                CommandKind::Greeting | CommandKind::Quit => self.close(),
                _ => {}
            }
            self.events
                .push_back(ClientEvent::Rejected { command, response });
            return Ok(());
        }
        let event = match command {
            CommandKind::Greeting => {
                self.state = ClientState::Authorization;
                let apop_timestamp = apop_timestamp(response.text());
                ClientEvent::Greeting {
                    response,
                    apop_timestamp,
                }
            }
            CommandKind::Capa => {
                self.expect = Expect::Lines(Collected::Capa(Vec::new()));
                return Ok(());
            }
            CommandKind::List => {
                self.expect = Expect::Lines(Collected::List(Vec::new()));
                return Ok(());
            }
            CommandKind::Uidl => {
                self.expect = Expect::Lines(Collected::Uidl(Vec::new()));
                return Ok(());
            }
            CommandKind::Stls => {
                self.state = ClientState::TlsHandshake;
                // Plaintext behind the +OK would be read as the first
                // response over TLS: refuse it (CVE-2011-0411's client side).
                if self.start < self.input.len() {
                    return Err(ClientError::DataAfterStls);
                }
                ClientEvent::TlsReady
            }
            CommandKind::Pass | CommandKind::AuthPlain => {
                self.state = ClientState::Transaction;
                ClientEvent::Accepted { command, response }
            }
            CommandKind::Stat => {
                let mut numbers = response.text().splitn(3, ' ');
                match (
                    numbers.next().and_then(parse_number),
                    numbers.next().and_then(parse_number),
                ) {
                    (Some(count), Some(size)) => ClientEvent::Stat { count, size },
                    _ => return Err(ClientError::MalformedListing(printable(response.text()))),
                }
            }
            CommandKind::Quit => {
                self.close();
                ClientEvent::SignedOff { response }
            }
            CommandKind::User
            | CommandKind::Dele
            | CommandKind::Noop
            | CommandKind::Rset
            | CommandKind::Retr => ClientEvent::Accepted { command, response },
        };
        self.events.push_back(event);
        Ok(())
    }

    /// Reads lines of a multi-line CAPA/LIST/UIDL body into `collected`.
    /// True once the termination line was read.
    fn listing_lines(&mut self, collected: &mut Collected) -> Result<bool, ClientError> {
        let limit = self.config.max_listing_line;
        while let Some(line) = self.next_line(limit)? {
            // RFC 1939 §3: a line "." ends the response; otherwise a leading
            // termination octet is stripped.
            let line = match line.as_slice() {
                b"." => return Ok(true),
                [b'.', rest @ ..] => rest,
                all => all,
            };
            let text = std::str::from_utf8(line)
                .map_err(|_| ClientError::MalformedListing(printable_bytes(line)))?;
            let max = self.config.max_listing_entries;
            match collected {
                Collected::Capa(entries) => {
                    if entries.len() >= MAX_CAPABILITIES {
                        return Err(ClientError::TooManyEntries(MAX_CAPABILITIES));
                    }
                    let mut words = text.split(' ').filter(|w| !w.is_empty());
                    if let Some(keyword) = words.next() {
                        let args = words.map(str::to_owned).collect();
                        entries.push((keyword.to_ascii_uppercase(), args));
                    }
                }
                Collected::List(entries) => {
                    if entries.len() >= max {
                        return Err(ClientError::TooManyEntries(max));
                    }
                    entries.push(parse_list_line(text)?);
                }
                Collected::Uidl(entries) => {
                    if entries.len() >= max {
                        return Err(ClientError::TooManyEntries(max));
                    }
                    entries.push(parse_uidl_line(text)?);
                }
            }
        }
        Ok(false)
    }

    /// Streams message content: un-stuffs what is buffered into one
    /// `MessageData` event, and queues `MessageEnd` at the termination line.
    fn content(&mut self, msg: u64, mut state: ContentState) -> Result<(), ClientError> {
        let bytes = &self.input[self.start..];
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        let mut ended = false;
        while i < bytes.len() {
            if state == ContentState::InLine {
                // Copy the run up to the next CR or LF in one go.
                let rest = &bytes[i..];
                let run = rest
                    .iter()
                    .position(|&c| c == b'\r' || c == b'\n')
                    .unwrap_or(rest.len());
                out.extend_from_slice(&rest[..run]);
                i += run;
                match bytes.get(i) {
                    None => {}
                    Some(b'\r') => {
                        i += 1;
                        state = ContentState::Cr;
                    }
                    Some(_) => return Err(ClientError::BareLineEnding),
                }
                continue;
            }
            let b = bytes[i];
            i += 1;
            state = match (state, b) {
                (ContentState::LineStart, b'.') => ContentState::Dot,
                (ContentState::LineStart, b'\r') => ContentState::Cr,
                (ContentState::Dot, b'\r') => ContentState::DotCr,
                (ContentState::DotCr, b'\n') => {
                    ended = true;
                    break;
                }
                (ContentState::Cr, b'\n') => {
                    out.extend_from_slice(b"\r\n");
                    ContentState::LineStart
                }
                // A CR that no LF follows, or an LF that no CR precedes.
                (ContentState::DotCr | ContentState::Cr, _) | (_, b'\n') => {
                    return Err(ClientError::BareLineEnding);
                }
                // RFC 1939 §3: "If so and if octets other than CRLF follow,
                // the first octet of the line (the termination octet) is
                // stripped away." (`..` at a line start becomes `.`.)
                (ContentState::LineStart | ContentState::Dot | ContentState::InLine, _) => {
                    out.push(b);
                    ContentState::InLine
                }
            };
        }
        self.start += i;
        self.scanned = 0;
        if !out.is_empty() {
            self.events.push_back(ClientEvent::MessageData(out));
        }
        if ended {
            self.events.push_back(ClientEvent::MessageEnd { msg });
        } else {
            self.expect = Expect::Content(msg, state);
        }
        Ok(())
    }

    /// The next CRLF-terminated line, without its CRLF.
    fn next_line(&mut self, limit: usize) -> Result<Option<Vec<u8>>, ClientError> {
        let pending = &self.input[self.start..];
        match pending[self.scanned..].iter().position(|&b| b == b'\n') {
            Some(offset) => {
                let end = self.scanned + offset;
                if end + 1 > limit {
                    return Err(ClientError::LineTooLong { limit });
                }
                let line = match pending[..end].split_last() {
                    Some((b'\r', content)) if !content.contains(&b'\r') => content.to_vec(),
                    _ => return Err(ClientError::BareLineEnding),
                };
                self.start += end + 1;
                self.scanned = 0;
                Ok(Some(line))
            }
            None if pending.len() >= limit => Err(ClientError::LineTooLong { limit }),
            None => {
                self.scanned = pending.len();
                Ok(None)
            }
        }
    }

    fn close(&mut self) {
        self.state = ClientState::Closed;
        self.expect = Expect::Nothing;
        self.sasl_response = None;
        self.input.clear();
        self.start = 0;
        self.scanned = 0;
    }
}

// The output may hold a PASS or AUTH line, and `sasl_response` a password:
// show neither.
impl fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSession")
            .field("state", &self.state)
            .field("tls", &self.tls)
            .field("expect", &self.expect)
            .field("buffered_input", &(self.input.len() - self.start))
            .field("buffered_output", &self.output.len())
            .finish_non_exhaustive()
    }
}

/// What the session waits for.
#[derive(Debug)]
enum Expect {
    /// No command is outstanding.
    Nothing,
    /// A status line answering this command.
    Status(CommandKind),
    /// The `+ ` after `AUTH PLAIN` without an initial response.
    SaslChallenge,
    /// The lines of a multi-line response, after its `+OK`.
    Lines(Collected),
    /// The status line of RETR.
    Retr(u64),
    /// The content of a RETR'd message.
    Content(u64, ContentState),
}

#[derive(Debug)]
enum Collected {
    Capa(Vec<(String, Vec<String>)>),
    List(Vec<ListEntry>),
    Uidl(Vec<UidEntry>),
}

impl Collected {
    fn into_event(self) -> ClientEvent {
        match self {
            Collected::Capa(entries) => ClientEvent::Capabilities(Capabilities { entries }),
            Collected::List(entries) => ClientEvent::Listing(entries),
            Collected::Uidl(entries) => ClientEvent::UidListing(entries),
        }
    }
}

/// Where the content parser is within a line (RFC 1939 §3 un-stuffing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContentState {
    /// At the start of a line.
    LineStart,
    /// A line started with the termination octet.
    Dot,
    /// `.` CR at the start of a line: LF ends the message.
    DotCr,
    /// Inside a line.
    InLine,
    /// A CR inside a line: only LF may follow.
    Cr,
}

/// Parses a status line: `+OK[ text]` or `-ERR[ [CODE] text]`.
fn parse_status(line: &[u8]) -> Result<Response, ClientError> {
    let text = String::from_utf8_lossy(line);
    let (status, rest) = if let Some(rest) = text.strip_prefix("+OK") {
        (Status::Ok, rest)
    } else if let Some(rest) = text.strip_prefix("-ERR") {
        (Status::Err, rest)
    } else {
        return Err(ClientError::MalformedResponse(printable(&text)));
    };
    // RFC 1939 §3: the indicator, then optionally a space and text.
    let rest = match rest.strip_prefix(' ') {
        Some(rest) => rest,
        None if rest.is_empty() => rest,
        None => return Err(ClientError::MalformedResponse(printable(&text))),
    };
    let (code, rest) = resp_code(rest);
    Ok(Response::new(status, code, rest.to_owned()))
}

/// Splits a known RFC 2449 §8 / RFC 3206 response code off the text.
/// Unknown codes stay in the text.
fn resp_code(text: &str) -> (Option<RespCode>, &str) {
    let Some(inner) = text.strip_prefix('[') else {
        return (None, text);
    };
    let Some((code, rest)) = inner.split_once(']') else {
        return (None, text);
    };
    let known = [
        RespCode::InUse,
        RespCode::LoginDelay,
        RespCode::SysTemp,
        RespCode::SysPerm,
        RespCode::Auth,
    ];
    // RFC 2449 §8: codes are case-insensitive.
    match known
        .into_iter()
        .find(|k| k.as_str()[1..k.as_str().len() - 1].eq_ignore_ascii_case(code))
    {
        Some(code) => (Some(code), rest.strip_prefix(' ').unwrap_or(rest)),
        None => (None, text),
    }
}

/// The `<...>` of a greeting (RFC 1939 §7).
fn apop_timestamp(text: &str) -> Option<String> {
    let start = text.find('<')?;
    let end = start + text[start..].find('>')?;
    Some(text[start..=end].to_owned())
}

/// `msg size[ anything]` (RFC 1939 §5: "This memo makes no requirement on
/// what follows the message size in the scan listing").
fn parse_list_line(text: &str) -> Result<ListEntry, ClientError> {
    let mut words = text.splitn(3, ' ');
    match (
        words.next().and_then(parse_number),
        words.next().and_then(parse_number),
    ) {
        (Some(msg), Some(size)) if msg > 0 => Ok(ListEntry { msg, size }),
        _ => Err(ClientError::MalformedListing(printable(text))),
    }
}

/// `msg uid` (RFC 1939 §7: "the unique-id of a message is an arbitrary
/// server-determined string, consisting of one to 70 characters in the
/// range 0x21 to 0x7E").
fn parse_uidl_line(text: &str) -> Result<UidEntry, ClientError> {
    let bad = || ClientError::MalformedListing(printable(text));
    let (msg, uid) = text.split_once(' ').ok_or_else(bad)?;
    let msg = parse_number(msg).filter(|&m| m > 0).ok_or_else(bad)?;
    if !(1..=70).contains(&uid.len()) || !uid.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(bad());
    }
    Ok(UidEntry {
        msg,
        uid: uid.to_owned(),
    })
}

/// A decimal number of ASCII digits only (no sign, no spaces).
fn parse_number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The number at the start of `+OK 120 octets`, if any.
fn leading_number(text: &str) -> Option<u64> {
    parse_number(text.split(' ').next()?)
}

/// Server text for an error message: control characters replaced, cut to
/// 100 characters.
fn printable(text: &str) -> String {
    text.chars()
        .take(100)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn printable_bytes(bytes: &[u8]) -> String {
    printable(&String::from_utf8_lossy(bytes))
}

/// Base64 with padding (RFC 4648 §4), for the PLAIN response.
fn encode_base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// RFC 2449 §4: "The maximum length of a command line is 255 octets,
/// including the terminating CRLF."
const COMMAND_LIMIT: usize = 255;

/// RFC 2449 §4: "The maximum length of the first line of a command response
/// (including the initial greeting) is 512 octets, including the terminating
/// CRLF."
const STATUS_LINE_LIMIT: usize = 512;

/// The most CAPA lines kept: RFC 2449 defines about a dozen capabilities.
const MAX_CAPABILITIES: usize = 256;

/// The longest SASL response line we send: the 12,288 octets RFC 4954 §4
/// makes servers accept for SMTP AUTH, which mailroom's POP3 server accepts
/// too.
const SASL_RESPONSE_LIMIT: usize = 12_288;

#[cfg(test)]
mod tests {
    // Tests may unwrap: a failure is a bug in the test or the code.
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::{
        ByteStuffer, Credential, Event, LoginFailure, MessageEntry, ServerConfig, ServerSession,
    };

    // -- A simulated pair: our client against our server, in memory -------

    /// The server side of the pair: a [`ServerSession`] with a driver that
    /// answers its events from a vector of messages.
    struct Server {
        session: ServerSession,
        messages: Vec<Vec<u8>>,
        /// Indices removed at QUIT.
        removed: Vec<usize>,
    }

    impl Server {
        fn new(config: ServerConfig, messages: &[&[u8]]) -> Server {
            Server {
                session: ServerSession::new(config),
                messages: messages.iter().map(|m| m.to_vec()).collect(),
                removed: Vec::new(),
            }
        }

        /// Feeds client bytes and returns what the server sends back.
        fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
            let mut out = self.session.take_output();
            self.session.handle_input(bytes);
            while let Some(event) = self.session.poll_event() {
                match event {
                    Event::Login { user, credential } => {
                        if user == USER && credential == Credential::Password(PASSWORD.into()) {
                            let listing = self
                                .messages
                                .iter()
                                .enumerate()
                                .map(|(i, m)| MessageEntry {
                                    uid: format!("uid-{i}"),
                                    size: m.len() as u64,
                                })
                                .collect();
                            self.session.login_succeeded(listing);
                        } else {
                            self.session.login_failed(LoginFailure::BadCredentials);
                        }
                    }
                    Event::Retrieve { index, .. } => {
                        self.session.retrieve_ok();
                        out.extend(self.session.take_output());
                        let mut stuffer = ByteStuffer::new();
                        for chunk in self.messages[index].chunks(7) {
                            stuffer.push(chunk, &mut out);
                        }
                        stuffer.finish(&mut out);
                    }
                    Event::Quit { deletions } => {
                        self.removed = deletions;
                        self.session.update_finished(true);
                    }
                    Event::StartTls => {
                        out.extend(self.session.take_output());
                        // The pair has no real TLS: the handshake is instant.
                        self.session.tls_established();
                    }
                }
            }
            out.extend(self.session.take_output());
            out
        }
    }

    const USER: &str = "alice";
    const PASSWORD: &str = "pass word";

    /// How the scripted client logs in.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Login {
        UserPass,
        AuthPlain,
    }

    /// A fetch, as `mailroom fetch` does it: CAPA, STLS when offered and
    /// wanted, login, STAT, UIDL, LIST, then RETR and DELE of each message,
    /// QUIT. Records every event (message content merged per message), so
    /// two runs can be compared whatever the input splitting was.
    struct Script {
        stls: bool,
        login: Login,
        password: String,
        log: Vec<String>,
        messages: BTreeMap<u64, Vec<u8>>,
        current: Option<(u64, Vec<u8>)>,
        queue: Vec<u64>,
        done: bool,
    }

    impl Script {
        fn new(stls: bool, login: Login) -> Script {
            Script {
                stls,
                login,
                password: PASSWORD.to_owned(),
                log: Vec::new(),
                messages: BTreeMap::new(),
                current: None,
                queue: Vec::new(),
                done: false,
            }
        }

        fn react(&mut self, client: &mut ClientSession, event: ClientEvent) {
            if !matches!(event, ClientEvent::MessageData(_)) {
                self.log.push(format!("{event:?}"));
            }
            match event {
                ClientEvent::Greeting { .. } => client.capa().unwrap(),
                ClientEvent::Capabilities(capa) => {
                    if self.stls && capa.stls() && !client.is_tls() {
                        client.stls().unwrap();
                    } else if self.login == Login::AuthPlain {
                        client.auth_plain(USER, &self.password).unwrap();
                    } else {
                        client.user(USER).unwrap();
                    }
                }
                ClientEvent::TlsReady => {
                    client.tls_established();
                    client.capa().unwrap();
                }
                ClientEvent::Accepted { command, .. } => match command {
                    CommandKind::User => client.pass(&self.password).unwrap(),
                    CommandKind::Pass | CommandKind::AuthPlain => client.stat().unwrap(),
                    CommandKind::Dele => self.next(client),
                    other => panic!("unexpected +OK to {other:?}"),
                },
                ClientEvent::Stat { .. } => client.uidl().unwrap(),
                ClientEvent::UidListing(_) => client.list().unwrap(),
                ClientEvent::Listing(entries) => {
                    self.queue = entries.iter().rev().map(|e| e.msg).collect();
                    self.next(client);
                }
                ClientEvent::MessageStart { msg, .. } => self.current = Some((msg, Vec::new())),
                ClientEvent::MessageData(data) => {
                    self.current.as_mut().unwrap().1.extend_from_slice(&data);
                }
                ClientEvent::MessageEnd { msg } => {
                    let (current, content) = self.current.take().unwrap();
                    assert_eq!(current, msg);
                    self.messages.insert(msg, content);
                    client.dele(msg).unwrap();
                }
                ClientEvent::SignedOff { .. } => self.done = true,
                ClientEvent::Rejected { .. } => {
                    if client.quit().is_err() {
                        self.done = true;
                    }
                }
            }
        }

        fn next(&mut self, client: &mut ClientSession) {
            match self.queue.pop() {
                Some(msg) => client.retr(msg).unwrap(),
                None => client.quit().unwrap(),
            }
        }

        /// Polls every event, reacting to each.
        fn drain(&mut self, client: &mut ClientSession) -> Result<(), ClientError> {
            while let Some(event) = client.poll_event()? {
                self.react(client, event);
            }
            Ok(())
        }
    }

    /// What a pair run produced: the client's events and bytes, and the
    /// server's bytes in segments cut where TLS started (bytes after the
    /// cut would travel inside TLS, a different stream).
    struct PairRun {
        script: Script,
        client_bytes: Vec<u8>,
        server_segments: Vec<Vec<u8>>,
        removed: Vec<usize>,
    }

    fn run_pair(config: ServerConfig, messages: &[&[u8]], mut script: Script) -> PairRun {
        let mut server = Server::new(config, messages);
        let mut client = ClientSession::new(ClientConfig::default());
        let mut client_bytes = Vec::new();
        let mut server_segments = vec![Vec::new()];
        let mut to_client = server.feed(b"");
        for _ in 0..10_000 {
            server_segments
                .last_mut()
                .unwrap()
                .extend_from_slice(&to_client);
            let was_tls = client.is_tls();
            client.handle_input(&to_client);
            script.drain(&mut client).unwrap();
            if client.is_tls() && !was_tls {
                server_segments.push(Vec::new());
            }
            let to_server = client.take_output();
            client_bytes.extend_from_slice(&to_server);
            if script.done || server.session.is_closed() {
                break;
            }
            to_client = server.feed(&to_server);
        }
        assert!(script.done, "the fetch did not finish: {:?}", script.log);
        PairRun {
            script,
            client_bytes,
            server_segments,
            removed: server.removed,
        }
    }

    /// Replays the server's bytes, cut into `pieces`, to a fresh client
    /// with a fresh script.
    fn replay(segments: &[Vec<&[u8]>], mut script: Script) -> (Script, Vec<u8>) {
        let mut client = ClientSession::new(ClientConfig::default());
        let mut client_bytes = Vec::new();
        for pieces in segments {
            for piece in pieces {
                client.handle_input(piece);
                script.drain(&mut client).unwrap();
                client_bytes.extend(client.take_output());
            }
        }
        (script, client_bytes)
    }

    const MESSAGES: [&[u8]; 5] = [
        b"Subject: one\r\n\r\nHello.\r\n",
        b"Subject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\n. \r\nend\r\n",
        b"",
        b"Subject: no final line end\r\n\r\nlast line",
        b"\r\n\r\n.\r\n",
    ];

    /// What the client must end up with: the message as the server holds
    /// it, plus the CRLF the server adds to a last line without one.
    fn expected(message: &[u8]) -> Vec<u8> {
        let mut m = message.to_vec();
        if !m.is_empty() && !m.ends_with(b"\r\n") {
            m.extend_from_slice(b"\r\n");
        }
        m
    }

    fn plaintext_config() -> ServerConfig {
        ServerConfig {
            plaintext_login_allowed: true,
            ..ServerConfig::default()
        }
    }

    fn check_fetched(script: &Script) {
        assert_eq!(script.messages.len(), MESSAGES.len(), "{:?}", script.log);
        for (i, message) in MESSAGES.iter().enumerate() {
            assert_eq!(
                String::from_utf8_lossy(&script.messages[&(i as u64 + 1)]),
                String::from_utf8_lossy(&expected(message)),
                "message {}",
                i + 1
            );
        }
    }

    #[test]
    fn fetches_everything_from_our_server() {
        for login in [Login::UserPass, Login::AuthPlain] {
            let run = run_pair(plaintext_config(), &MESSAGES, Script::new(true, login));
            check_fetched(&run.script);
            assert_eq!(run.removed, vec![0, 1, 2, 3, 4]);
            let log = run.script.log.join("\n");
            assert!(
                log.contains("UidListing([UidEntry { msg: 1, uid: \"uid-0\" }"),
                "{log}"
            );
            assert!(log.contains("Stat { count: 5,"), "{log}");
            assert!(log.contains("SignedOff"), "{log}");
        }
    }

    #[test]
    fn any_splitting_of_the_server_bytes_gives_the_same_fetch() {
        let run = run_pair(
            plaintext_config(),
            &MESSAGES,
            Script::new(false, Login::UserPass),
        );
        assert_eq!(run.server_segments.len(), 1);
        let wire = &run.server_segments[0];
        for pieces in mailroom_testkit::splittings(wire, 50) {
            let (script, client_bytes) = replay(&[pieces], Script::new(false, Login::UserPass));
            assert_eq!(script.log, run.script.log);
            assert_eq!(script.messages, run.script.messages);
            assert_eq!(client_bytes, run.client_bytes);
        }
    }

    #[test]
    fn stls_then_login_over_tls() {
        let config = ServerConfig {
            stls: true,
            ..ServerConfig::default()
        };
        for login in [Login::UserPass, Login::AuthPlain] {
            let run = run_pair(config.clone(), &MESSAGES, Script::new(true, login));
            check_fetched(&run.script);
            assert_eq!(run.server_segments.len(), 2, "TLS started once");
            let sent = String::from_utf8_lossy(&run.client_bytes);
            assert!(sent.starts_with("CAPA\r\nSTLS\r\nCAPA\r\n"), "{sent}");
            // Every splitting of either side of the TLS cut.
            let [plain, tls] = [&run.server_segments[0], &run.server_segments[1]];
            for pieces in mailroom_testkit::splittings(plain, 10) {
                let (script, bytes) = replay(&[pieces, vec![tls]], Script::new(true, login));
                assert_eq!(script.log, run.script.log);
                assert_eq!(bytes, run.client_bytes);
            }
            for pieces in mailroom_testkit::splittings(tls, 10).into_iter().step_by(7) {
                let (script, bytes) = replay(&[vec![plain], pieces], Script::new(true, login));
                assert_eq!(script.messages, run.script.messages);
                assert_eq!(bytes, run.client_bytes);
            }
        }
    }

    #[test]
    fn without_stls_our_server_refuses_the_password_in_clear() {
        let config = ServerConfig {
            stls: true,
            ..ServerConfig::default()
        };
        let run = run_pair(config, &MESSAGES, Script::new(false, Login::UserPass));
        let log = run.script.log.join("\n");
        assert!(log.contains("Rejected { command: User"), "{log}");
        assert!(!String::from_utf8_lossy(&run.client_bytes).contains("PASS"));
        assert!(run.removed.is_empty());
    }

    #[test]
    fn a_long_password_goes_after_the_sasl_challenge() {
        // RFC 5034 §4: the initial response would make the line longer than
        // 255 octets, so it waits for the server's "+ ".
        let mut script = Script::new(false, Login::AuthPlain);
        script.password = "x".repeat(300);
        let mut server = Server::new(plaintext_config(), &MESSAGES);
        let mut client = ClientSession::new(ClientConfig::default());
        client.handle_input(&server.feed(b""));
        script.drain(&mut client).unwrap();
        let capa = client.take_output();
        client.handle_input(&server.feed(&capa));
        script.drain(&mut client).unwrap();
        let auth = client.take_output();
        assert_eq!(auth, b"AUTH PLAIN\r\n");
        client.handle_input(&server.feed(&auth));
        script.drain(&mut client).unwrap();
        let response = client.take_output();
        assert!(response.len() > 255 && response.ends_with(b"\r\n"));
        let decoded = crate::sasl::decode_base64(&response[..response.len() - 2]).unwrap();
        assert_eq!(
            decoded,
            format!("\0{USER}\0{}", script.password).into_bytes()
        );
        // Our server knows another password: a clean -ERR [AUTH].
        client.handle_input(&server.feed(&response));
        script.drain(&mut client).unwrap();
        assert!(
            script
                .log
                .iter()
                .any(|l| l.contains("AuthPlain") && l.contains("Some(Auth)")),
            "{:?}",
            script.log
        );
    }

    #[test]
    fn a_wrong_password_is_rejected_with_the_auth_code() {
        let mut script = Script::new(false, Login::UserPass);
        script.password = "wrong".into();
        let run = run_pair(plaintext_config(), &MESSAGES, script);
        let log = run.script.log.join("\n");
        assert!(
            log.contains(
                "Rejected { command: Pass, response: Response { status: Err, code: Some(Auth)"
            ),
            "{log}"
        );
        assert!(run.script.messages.is_empty());
    }

    // -- Unit tests of the parsers ---------------------------------------

    /// A session that has sent `command` and waits for its response.
    fn session_after(command: impl FnOnce(&mut ClientSession)) -> ClientSession {
        let mut client = ClientSession::new(ClientConfig::default());
        client.handle_input(b"+OK ready\r\n");
        assert!(matches!(
            client.poll_event(),
            Ok(Some(ClientEvent::Greeting { .. }))
        ));
        client.state = ClientState::Transaction;
        command(&mut client);
        client.take_output();
        client
    }

    /// All events (message data merged) or the first error.
    fn events(
        client: &mut ClientSession,
        pieces: &[&[u8]],
    ) -> Result<Vec<ClientEvent>, ClientError> {
        let mut out: Vec<ClientEvent> = Vec::new();
        for piece in pieces {
            client.handle_input(piece);
            while let Some(event) = client.poll_event()? {
                match (out.last_mut(), event) {
                    (Some(ClientEvent::MessageData(data)), ClientEvent::MessageData(more)) => {
                        data.extend_from_slice(&more);
                    }
                    (_, event) => out.push(event),
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn status_lines() {
        let ok = |code, text: &str| Ok(Response::new(Status::Ok, code, text));
        let err = |code, text: &str| Ok(Response::new(Status::Err, code, text));
        let bad = |text: &str| Err(ClientError::MalformedResponse(text.into()));
        let rows: Vec<(&str, Result<Response, ClientError>)> = vec![
            ("+OK", ok(None, "")),
            ("+OK ", ok(None, "")),
            ("+OK 2 320", ok(None, "2 320")),
            ("-ERR", err(None, "")),
            ("-ERR no such message", err(None, "no such message")),
            (
                "-ERR [AUTH] Authentication failed.",
                err(Some(RespCode::Auth), "Authentication failed."),
            ),
            ("-ERR [in-use] locked", err(Some(RespCode::InUse), "locked")),
            (
                "-ERR [SYS/TEMP] later",
                err(Some(RespCode::SysTemp), "later"),
            ),
            ("-ERR [SYS/PERM]", err(Some(RespCode::SysPerm), "")),
            (
                "-ERR [LOGIN-DELAY] wait",
                err(Some(RespCode::LoginDelay), "wait"),
            ),
            ("-ERR [UNKNOWN] x", err(None, "[UNKNOWN] x")),
            ("-ERR [unclosed", err(None, "[unclosed")),
            ("+OKAY", bad("+OKAY")),
            ("+ok", bad("+ok")),
            ("OK", bad("OK")),
            ("", bad("")),
            ("-ERRor", bad("-ERRor")),
            ("* OK IMAP4rev1", bad("* OK IMAP4rev1")),
        ];
        for (line, expected) in rows {
            assert_eq!(parse_status(line.as_bytes()), expected, "{line:?}");
        }
    }

    #[test]
    fn listing_lines() {
        assert_eq!(
            parse_list_line("1 120"),
            Ok(ListEntry { msg: 1, size: 120 })
        );
        assert_eq!(
            parse_list_line("2 5 extra info"),
            Ok(ListEntry { msg: 2, size: 5 })
        );
        for bad in ["0 10", "1", "1  2", "a 2", "1 -2", "1 2x", " 1 2", ""] {
            assert!(parse_list_line(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_uidl_line("3 whqtswO00WBw418f9t5JxYwZ"),
            Ok(UidEntry {
                msg: 3,
                uid: "whqtswO00WBw418f9t5JxYwZ".into()
            })
        );
        let longest = format!("1 {}", "u".repeat(70));
        assert!(parse_uidl_line(&longest).is_ok());
        let too_long = format!("1 {}", "u".repeat(71));
        for bad in [
            "1",
            "1 ",
            "0 abc",
            "1 a b",
            "x abc",
            too_long.as_str(),
            "1 caf\u{e9}",
        ] {
            assert!(parse_uidl_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn greeting_and_apop_timestamp() {
        let mut client = ClientSession::new(ClientConfig::default());
        let got = events(
            &mut client,
            &[b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"],
        );
        assert_eq!(
            got,
            Ok(vec![ClientEvent::Greeting {
                response: Response::new(
                    Status::Ok,
                    None,
                    "POP3 server ready <1896.697170952@dbc.mtview.ca.us>"
                ),
                apop_timestamp: Some("<1896.697170952@dbc.mtview.ca.us>".into()),
            }])
        );
        assert_eq!(client.state(), ClientState::Authorization);
        // A -ERR greeting closes the session.
        let mut client = ClientSession::new(ClientConfig::default());
        let got = events(&mut client, &[b"-ERR [SYS/TEMP] too busy\r\n"]).unwrap();
        assert!(matches!(
            &got[..],
            [ClientEvent::Rejected {
                command: CommandKind::Greeting,
                ..
            }]
        ));
        assert!(client.is_closed());
        assert_eq!(
            client.capa(),
            Err(SendError::WrongState(ClientState::Closed))
        );
    }

    #[test]
    fn message_content_is_unstuffed_on_any_splitting() {
        type Row = (&'static [u8], Result<&'static [u8], ClientError>);
        let rows: &[Row] = &[
            (b"+OK\r\n.\r\n", Ok(b"")),
            (b"+OK 5 octets\r\nabc\r\n.\r\n", Ok(b"abc\r\n")),
            (b"+OK\r\n..\r\n...x\r\n.\r\n", Ok(b".\r\n..x\r\n")),
            (b"+OK\r\n\r\n\r\n.\r\n", Ok(b"\r\n\r\n")),
            (b"+OK\r\na.b\r\n.\r\n", Ok(b"a.b\r\n")),
            // RFC 1939 §3: a dot before anything but CRLF is stripped.
            (b"+OK\r\n.x\r\n.\r\n", Ok(b"x\r\n")),
            (b"+OK\r\na\nb\r\n.\r\n", Err(ClientError::BareLineEnding)),
            (b"+OK\r\na\rb\r\n.\r\n", Err(ClientError::BareLineEnding)),
            (b"+OK\r\n\n.\r\n", Err(ClientError::BareLineEnding)),
            (b"+OK\r\n.\n", Err(ClientError::BareLineEnding)),
            (b"+OK\r\n.\rx", Err(ClientError::BareLineEnding)),
            (b"+OK\r\n.\n\r\n.\r\n", Err(ClientError::BareLineEnding)),
            (b"+OK\n", Err(ClientError::BareLineEnding)),
        ];
        for (wire, expected) in rows {
            for pieces in mailroom_testkit::splittings(wire, 10) {
                let mut client = session_after(|c| c.retr(1).unwrap());
                let got = events(&mut client, &pieces);
                let expected_events = expected.clone().map(|content| {
                    let mut ev = vec![ClientEvent::MessageStart {
                        msg: 1,
                        size: if wire.starts_with(b"+OK 5") {
                            Some(5)
                        } else {
                            None
                        },
                    }];
                    if !content.is_empty() {
                        ev.push(ClientEvent::MessageData(content.to_vec()));
                    }
                    ev.push(ClientEvent::MessageEnd { msg: 1 });
                    ev
                });
                assert_eq!(
                    got,
                    expected_events,
                    "{:?} split as {pieces:?}",
                    String::from_utf8_lossy(wire)
                );
                if got.is_ok() {
                    assert!(client.is_idle());
                } else {
                    assert!(client.is_closed());
                }
            }
        }
    }

    #[test]
    fn a_failed_retr_is_a_rejection() {
        let mut client = session_after(|c| c.retr(9).unwrap());
        let got = events(&mut client, &[b"-ERR no such message\r\n"]).unwrap();
        assert!(matches!(
            &got[..],
            [ClientEvent::Rejected {
                command: CommandKind::Retr,
                ..
            }]
        ));
        assert!(client.is_idle());
        assert_eq!(client.state(), ClientState::Transaction);
    }

    #[test]
    fn the_response_after_a_message_is_read_too() {
        // Pipelined by a server that sends ahead: the bytes wait for the
        // next command.
        let mut client = session_after(|c| c.retr(1).unwrap());
        let got = events(&mut client, &[b"+OK\r\nx\r\n.\r\n+OK 1 deleted\r\n"]).unwrap();
        assert_eq!(got.len(), 3);
        client.dele(1).unwrap();
        let got = events(&mut client, &[b""]).unwrap();
        assert!(matches!(
            &got[..],
            [ClientEvent::Accepted {
                command: CommandKind::Dele,
                ..
            }]
        ));
    }

    #[test]
    fn listings_and_their_limits() {
        let mut client = session_after(|c| c.uidl().unwrap());
        let got = events(&mut client, &[b"+OK\r\n1 a\r\n2 b\r\n.\r\n"]).unwrap();
        assert_eq!(
            got,
            vec![ClientEvent::UidListing(vec![
                UidEntry {
                    msg: 1,
                    uid: "a".into()
                },
                UidEntry {
                    msg: 2,
                    uid: "b".into()
                },
            ])]
        );
        let mut client = session_after(|c| c.list().unwrap());
        let got = events(&mut client, &[b"+OK 2 messages\r\n1 10\r\n2 20\r\n.\r\n"]).unwrap();
        assert_eq!(
            got,
            vec![ClientEvent::Listing(vec![
                ListEntry { msg: 1, size: 10 },
                ListEntry { msg: 2, size: 20 },
            ])]
        );
        let mut client = session_after(|c| c.stat().unwrap());
        assert_eq!(
            events(&mut client, &[b"+OK 2 30\r\n"]),
            Ok(vec![ClientEvent::Stat { count: 2, size: 30 }])
        );
        let mut client = session_after(|c| c.stat().unwrap());
        assert!(matches!(
            events(&mut client, &[b"+OK two\r\n"]),
            Err(ClientError::MalformedListing(_))
        ));
        let mut client = session_after(|c| c.uidl().unwrap());
        assert!(matches!(
            events(&mut client, &[b"+OK\r\n1 a b\r\n.\r\n"]),
            Err(ClientError::MalformedListing(_))
        ));
        // Too many entries.
        let mut client = session_after(|c| c.list().unwrap());
        client.config.max_listing_entries = 2;
        assert_eq!(
            events(&mut client, &[b"+OK\r\n1 1\r\n2 2\r\n3 3\r\n.\r\n"]),
            Err(ClientError::TooManyEntries(2))
        );
        // A listing line over the limit, even without its LF yet.
        let mut client = session_after(|c| c.uidl().unwrap());
        let long = format!("+OK\r\n1 {}", "a".repeat(2000));
        assert_eq!(
            events(&mut client, &[long.as_bytes()]),
            Err(ClientError::LineTooLong { limit: 1000 })
        );
        assert!(client.is_closed());
    }

    #[test]
    fn capabilities() {
        let mut client = session_after(|c| c.capa().unwrap());
        let got = events(
            &mut client,
            &[b"+OK\r\nTOP\r\nuidl\r\nSASL PLAIN LOGIN\r\nSTLS\r\nIMPLEMENTATION x y\r\n.\r\n"],
        )
        .unwrap();
        let [ClientEvent::Capabilities(capa)] = &got[..] else {
            panic!("{got:?}");
        };
        assert!(capa.stls() && capa.uidl() && capa.has("top") && !capa.user());
        assert!(capa.sasl("plain") && capa.sasl("LOGIN") && !capa.sasl("CRAM-MD5"));
        assert_eq!(
            capa.arguments("IMPLEMENTATION"),
            Some(&["x".to_owned(), "y".to_owned()][..])
        );
        assert_eq!(
            capa.keywords().collect::<Vec<_>>(),
            ["TOP", "UIDL", "SASL", "STLS", "IMPLEMENTATION"]
        );
        // A server without CAPA.
        let mut client = session_after(|c| c.capa().unwrap());
        let got = events(&mut client, &[b"-ERR unknown command\r\n"]).unwrap();
        assert!(matches!(
            &got[..],
            [ClientEvent::Rejected {
                command: CommandKind::Capa,
                ..
            }]
        ));
    }

    #[test]
    fn broken_status_lines_end_the_session() {
        let long = format!("+OK {}\r\n", "x".repeat(600));
        let rows: Vec<(&[u8], ClientError)> = vec![
            (b"+OK ready\n", ClientError::BareLineEnding),
            (b"+OK re\rady\r\n", ClientError::BareLineEnding),
            (
                b"220 smtp.example.org ESMTP\r\n",
                ClientError::MalformedResponse("220 smtp.example.org ESMTP".into()),
            ),
            (long.as_bytes(), ClientError::LineTooLong { limit: 512 }),
        ];
        for (wire, error) in rows {
            for pieces in mailroom_testkit::splittings(wire, 5) {
                let mut client = ClientSession::new(ClientConfig::default());
                assert_eq!(
                    events(&mut client, &pieces),
                    Err(error.clone()),
                    "{pieces:?}"
                );
                assert!(client.is_closed());
                assert_eq!(client.poll_event(), Ok(None));
            }
        }
    }

    #[test]
    fn plaintext_after_stls_is_refused() {
        // CVE-2011-0411, client side: a man in the middle appends a fake
        // response to the +OK, hoping it is read after the handshake.
        let mut client = ClientSession::new(ClientConfig::default());
        events(&mut client, &[b"+OK ready\r\n"]).unwrap();
        client.stls().unwrap();
        assert_eq!(
            events(&mut client, &[b"+OK begin TLS\r\n+OK Logged in.\r\n"]),
            Err(ClientError::DataAfterStls)
        );
        // Arriving in a later read, before the handshake: refused too.
        let mut client = ClientSession::new(ClientConfig::default());
        events(&mut client, &[b"+OK ready\r\n"]).unwrap();
        client.stls().unwrap();
        assert_eq!(
            events(&mut client, &[b"+OK begin TLS\r\n", b"+OK"]),
            Err(ClientError::DataAfterStls)
        );
        // The normal case.
        let mut client = ClientSession::new(ClientConfig::default());
        events(&mut client, &[b"+OK ready\r\n"]).unwrap();
        client.stls().unwrap();
        assert_eq!(
            events(&mut client, &[b"+OK begin TLS\r\n"]),
            Ok(vec![ClientEvent::TlsReady])
        );
        assert_eq!(client.state(), ClientState::TlsHandshake);
        assert_eq!(
            client.user("a"),
            Err(SendError::WrongState(ClientState::TlsHandshake))
        );
        client.tls_established();
        assert!(client.is_tls());
        assert_eq!(
            client.stls(),
            Err(SendError::WrongState(ClientState::Authorization))
        );
        // A refused STLS leaves the session in clear.
        let mut client = ClientSession::new(ClientConfig::default());
        events(&mut client, &[b"+OK ready\r\n"]).unwrap();
        client.stls().unwrap();
        let got = events(&mut client, &[b"-ERR not available\r\n"]).unwrap();
        assert!(matches!(
            &got[..],
            [ClientEvent::Rejected {
                command: CommandKind::Stls,
                ..
            }]
        ));
        assert!(!client.is_tls());
        assert_eq!(client.state(), ClientState::Authorization);
    }

    #[test]
    fn commands_are_checked_before_sending() {
        let mut client = ClientSession::new(ClientConfig::default());
        assert_eq!(
            client.capa(),
            Err(SendError::WrongState(ClientState::Greeting))
        );
        events(&mut client, &[b"+OK ready\r\n"]).unwrap();
        assert_eq!(
            client.retr(1),
            Err(SendError::WrongState(ClientState::Authorization))
        );
        assert_eq!(client.user("a b"), Err(SendError::InvalidArgument));
        assert_eq!(client.user(""), Err(SendError::InvalidArgument));
        assert_eq!(client.pass("a\r\nDELE 1"), Err(SendError::InvalidArgument));
        assert_eq!(
            client.pass(&"x".repeat(250)),
            Err(SendError::InvalidArgument)
        );
        assert_eq!(
            client.auth_plain("a\0b", "c"),
            Err(SendError::InvalidArgument)
        );
        assert_eq!(client.take_output(), b"");
        client.user("alice").unwrap();
        assert_eq!(client.pass("x"), Err(SendError::Busy));
        assert_eq!(client.take_output(), b"USER alice\r\n");
        events(&mut client, &[b"+OK\r\n"]).unwrap();
        client.pass("pass word").unwrap();
        assert_eq!(client.take_output(), b"PASS pass word\r\n");
        events(&mut client, &[b"+OK logged in\r\n"]).unwrap();
        assert_eq!(client.state(), ClientState::Transaction);
        assert_eq!(client.retr(0), Err(SendError::InvalidArgument));
        assert_eq!(
            client.user("a"),
            Err(SendError::WrongState(ClientState::Transaction))
        );
        client.quit().unwrap();
        let got = events(&mut client, &[b"+OK bye\r\n"]).unwrap();
        assert!(matches!(&got[..], [ClientEvent::SignedOff { .. }]));
        assert!(client.is_closed());
    }

    #[test]
    fn a_failed_update_is_reported_and_closes() {
        let mut client = session_after(|c| c.quit().unwrap());
        let got = events(
            &mut client,
            &[b"-ERR [SYS/TEMP] some deleted messages not removed\r\n"],
        )
        .unwrap();
        assert!(matches!(
            &got[..],
            [ClientEvent::Rejected { command: CommandKind::Quit, response }] if response.code() == Some(RespCode::SysTemp)
        ));
        assert!(client.is_closed());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let mut client = ClientSession::new(ClientConfig::default());
        events(&mut client, &[b"+OK ready\r\n"]).unwrap();
        client
            .auth_plain("alice", &format!("hunter2{}", "x".repeat(250)))
            .unwrap();
        let debug = format!("{client:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("aHVudGVy"),
            "{debug}"
        );
        let mut client = ClientSession::new(ClientConfig::default());
        events(&mut client, &[b"+OK ready\r\n"]).unwrap();
        client.user("alice").unwrap();
        events(&mut client, &[b"+OK\r\n"]).unwrap();
        client.pass("hunter2").unwrap();
        assert!(!format!("{client:?}").contains("hunter2"));
    }

    /// Every line end (CRLF, bare CR, bare LF) as CRLF, and a CRLF after a
    /// last line without one: what [`ByteStuffer`] promises to send.
    fn crlf_form(message: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < message.len() {
            match message[i] {
                b'\r' if message.get(i + 1) == Some(&b'\n') => {
                    out.extend_from_slice(b"\r\n");
                    i += 1;
                }
                b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
                b => out.push(b),
            }
            i += 1;
        }
        if !out.is_empty() && !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    proptest! {
        #[test]
        fn base64_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(crate::sasl::decode_base64(encode_base64(&bytes).as_bytes()), Ok(bytes));
        }

        #[test]
        fn any_content_round_trips_through_the_server_stuffer(
            message in proptest::collection::vec(
                prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), Just(b'a')], 0..64),
            cut in 0usize..80,
        ) {
            // What our server sends for any stored bytes, our client reads
            // back as the CRLF form of those bytes.
            let mut wire = b"+OK\r\n".to_vec();
            let mut stuffer = ByteStuffer::new();
            stuffer.push(&message, &mut wire);
            stuffer.finish(&mut wire);
            let cut = cut.min(wire.len());
            let mut client = session_after(|c| c.retr(1).unwrap());
            let got = events(&mut client, &[&wire[..cut], &wire[cut..]]);
            prop_assert!(got.is_ok(), "{:?}", got);
            let content: Vec<u8> = got.unwrap().into_iter().filter_map(|e| match e {
                ClientEvent::MessageData(d) => Some(d),
                _ => None,
            }).flatten().collect();
            prop_assert_eq!(content, crlf_form(&message));
        }
    }
}
