//! The bodies of the POP3 fuzz targets (`fuzz/fuzz_targets/pop3_*.rs`),
//! shared with the `fuzz_corpus_replay` test, which runs them over the
//! committed corpus in `cargo test`. Each function panics when an invariant
//! breaks; see `mailroom_core::fuzzing` for the scheme.
//!
//! Not part of the API: hidden from the docs, free to change.

use mailroom_core::fuzzing::Input;

use crate::client::{ClientConfig, ClientError, ClientEvent, ClientSession, SendError};
use crate::session::{Credential, Event, LoginFailure, ServerConfig, ServerSession};
use crate::{ByteStuffer, MessageEntry, TopFilter};

/// `pop3_session`: a [`ServerSession`] driven by a client that sends what
/// the input says, with a driver that answers logins, retrievals, QUIT and
/// STLS as the input says and streams messages through [`TopFilter`] and
/// [`ByteStuffer`]. It never panics; every response starts with a status
/// line of at most 512 octets (RFC 2449 §4); the wire never holds a bare
/// CR or LF; events keep their promises (indices in the listing, deletions
/// sorted and unique, passwords only where plaintext is allowed); nothing
/// comes out once the session closed.
///
/// Input layout (see [`Input`]): the data is one byte of configuration
/// flags, one byte for the listing, then operations; each driver decision
/// takes one decision byte. An operation byte `op` is: `op % 8` in 0..=3, the next
/// `op / 8 + 1` bytes each mapped to a client fragment, as one read; 4 or
/// 5, the next `op / 8 + 1` bytes raw; 6, the next `op / 8 + 1` fragments
/// one byte per read; 7, by `op / 8 % 4`: the idle timer fires, the server
/// shuts down, or an empty read. A decision byte of 0xFF defers the answer
/// to after the next read.
pub fn fuzz_pop3_session(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte().unwrap_or(0);
    let listing_byte = input.byte().unwrap_or(0);
    let config = ServerConfig {
        greeting_timestamp: if flags & 8 == 0 {
            "<1896.697170952@mx.fuzz.example>".to_owned()
        } else {
            String::new()
        },
        implementation: "mailroom".to_owned(),
        plaintext_login_allowed: flags & 1 == 0,
        stls: flags & 2 == 0,
        tls_active: flags & 4 != 0,
        apop: flags & 16 == 0,
        max_errors: if flags & 32 != 0 { 3 } else { 100 },
    };
    let listing: Vec<MessageEntry> = (0..usize::from(listing_byte % 6))
        .map(|i| MessageEntry {
            // One id breaks RFC 1939 §7 (a space, a control): the session
            // must not let it break a line.
            uid: if listing_byte & 0x80 != 0 && i == 1 {
                "bad uid\r\n".to_owned()
            } else {
                format!("uid-{i}")
            },
            size: message(i).len() as u64,
        })
        .collect();
    let mut driver = ServerDriver {
        session: ServerSession::new(config.clone()),
        config,
        listing,
        wire: Vec::new(),
        deferred: None,
        gone: false,
    };
    let greeting = driver.session.take_output();
    check_response_start(&greeting);
    driver.wire.extend(greeting);
    while let Some(op) = input.byte() {
        if driver.gone {
            break;
        }
        let count = usize::from(op >> 3) + 1;
        match op % 8 {
            0..=3 => {
                let bytes = remap(input.bytes(count), &CLIENT_FRAGMENTS);
                driver.read(&bytes, &mut input);
            }
            4 | 5 => {
                let bytes = input.bytes(count);
                driver.read(bytes, &mut input);
            }
            6 => {
                for byte in remap(input.bytes(count), &CLIENT_FRAGMENTS) {
                    driver.read(&[byte], &mut input);
                }
            }
            _ => match (op >> 3) % 4 {
                0 => driver.stop(ServerSession::timed_out),
                1 => driver.stop(ServerSession::shutdown),
                _ => driver.read(b"", &mut input),
            },
        }
    }
    check_wire(&driver.wire, usize::MAX);
}

/// `pop3_client`: a [`ClientSession`] fed whatever a hostile server sends,
/// with a driver that sends the commands the input names whenever the
/// session is idle. It never panics; its commands are CR LF lines of at
/// most 255 octets (RFC 2449 §4); message content comes out un-stuffed
/// with CR LF line ends only; listings keep RFC 1939's rules; an error
/// closes the session for good.
///
/// Input layout (see [`Input`]): the data is one byte of flags (bit 0:
/// implicit TLS, bit 1: small listing limits), then operations; each
/// decision (which command to send next, whether a TLS handshake works)
/// takes one decision byte. An operation byte `op` is: `op % 4`
/// in 0..=1, the next `op / 4 + 1` bytes each mapped to a server fragment;
/// 2, the next `op / 4 + 1` bytes raw; 3, an empty read.
pub fn fuzz_pop3_client(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte().unwrap_or(0);
    let config = if flags & 2 != 0 {
        ClientConfig {
            max_listing_entries: 3,
            max_listing_line: 20,
        }
    } else {
        ClientConfig::default()
    };
    let max_entries = config.max_listing_entries;
    let session = if flags & 1 != 0 {
        ClientSession::new_tls(config)
    } else {
        ClientSession::new(config)
    };
    let mut driver = ClientDriver {
        session,
        max_entries,
        wire: Vec::new(),
        content: None,
        greeted: false,
        failed: false,
    };
    while let Some(op) = input.byte() {
        let count = usize::from(op >> 2) + 1;
        match op % 4 {
            0 | 1 => {
                let bytes = remap(input.bytes(count), &SERVER_FRAGMENTS);
                driver.session.handle_input(&bytes);
            }
            2 => {
                let bytes = input.bytes(count);
                driver.session.handle_input(bytes);
            }
            _ => driver.session.handle_input(b""),
        }
        driver.drain(&mut input);
    }
    // Command lines are at most 255 octets (RFC 2449 §4); a SASL response
    // alone on its line (no space) may take 12,288 (RFC 5034 §4).
    check_wire(&driver.wire, 12_288);
    for line in driver.wire.split(|&b| b == b'\n') {
        assert!(
            !line.contains(&b' ') || line.len() < 255,
            "command line over 255 octets"
        );
    }
}

/// Plays the server's driver: answers events, streams messages.
struct ServerDriver {
    session: ServerSession,
    config: ServerConfig,
    listing: Vec<MessageEntry>,
    /// Everything sent to the client.
    wire: Vec<u8>,
    /// An event whose answer waits for the next read.
    deferred: Option<Event>,
    /// The connection was dropped (a failed TLS handshake).
    gone: bool,
}

impl ServerDriver {
    fn read(&mut self, bytes: &[u8], input: &mut Input<'_>) {
        let was_closed = self.session.is_closed();
        self.session.handle_input(bytes);
        if let Some(event) = self.deferred.take() {
            let decision = input.decision();
            self.answer(event, decision);
        }
        while !self.gone
            && let Some(event) = self.session.poll_event()
        {
            self.check(&event);
            let decision = input.decision();
            if decision == DEFER {
                self.deferred = Some(event);
                break;
            }
            self.answer(event, decision);
        }
        let output = self.session.take_output();
        assert!(
            !was_closed || output.is_empty(),
            "output after the session closed"
        );
        check_response_start(&output);
        self.wire.extend(output);
        if self.session.is_closed() {
            assert!(self.session.poll_event().is_none(), "event after close");
        }
    }

    fn stop(&mut self, how: fn(&mut ServerSession)) {
        let was_closed = self.session.is_closed();
        how(&mut self.session);
        assert!(self.session.is_closed(), "still open after a stop");
        self.deferred = None;
        let output = self.session.take_output();
        assert!(!was_closed || output.is_empty(), "output after close");
        check_response_start(&output);
        self.wire.extend(output);
    }

    fn check(&self, event: &Event) {
        let session = &self.session;
        assert!(session.is_awaiting_decision(), "event without a decision");
        match event {
            Event::Login { credential, .. } => {
                assert!(session.user().is_none(), "login while logged in");
                match credential {
                    Credential::Password(_) => assert!(
                        session.is_tls() || self.config.plaintext_login_allowed,
                        "password accepted in plaintext"
                    ),
                    Credential::Apop { digest } => {
                        assert!(self.config.apop && !self.config.greeting_timestamp.is_empty());
                        assert!(digest.len() == 32, "APOP digest {digest:?}");
                    }
                }
            }
            Event::Retrieve { index, .. } => {
                assert!(session.in_transaction(), "RETR before login");
                assert!(*index < self.listing.len(), "RETR of message {index}");
            }
            Event::Quit { deletions } => {
                assert!(
                    deletions.windows(2).all(|w| w[0] < w[1]),
                    "deletions not sorted and unique: {deletions:?}"
                );
                assert!(deletions.iter().all(|&i| i < self.listing.len()));
            }
            Event::StartTls => {
                assert!(
                    self.config.stls && !session.is_tls(),
                    "STLS while not offered"
                );
                assert!(session.user().is_none(), "STLS after login");
            }
        }
    }

    fn answer(&mut self, event: Event, decision: u8) {
        let session = &mut self.session;
        match event {
            Event::Login { .. } => match decision % 4 {
                0 | 1 => {
                    session.login_succeeded(self.listing.clone());
                    assert!(session.in_transaction());
                }
                2 => session.login_failed(LoginFailure::BadCredentials),
                _ if decision & 4 == 0 => session.login_failed(LoginFailure::InUse),
                _ => session.login_failed(LoginFailure::TemporaryFailure),
            },
            Event::Retrieve { index, top_lines } => {
                if decision % 8 == 7 {
                    session.retrieve_failed();
                    return;
                }
                session.retrieve_ok();
                let status = session.take_output();
                check_response_start(&status);
                self.wire.extend(status);
                let mut stuffer = ByteStuffer::new();
                let mut top = top_lines.map(TopFilter::new);
                for chunk in message(index).chunks(usize::from(decision % 7) + 1) {
                    let chunk = match &mut top {
                        Some(filter) => filter.push(chunk),
                        None => chunk,
                    };
                    stuffer.push(chunk, &mut self.wire);
                }
                stuffer.finish(&mut self.wire);
            }
            Event::Quit { .. } => {
                session.update_finished(decision % 8 != 7);
                assert!(session.is_closed(), "open after QUIT");
            }
            Event::StartTls => {
                if decision % 8 == 7 {
                    // The handshake failed: the driver drops the connection.
                    self.wire.extend(session.take_output());
                    self.gone = true;
                } else {
                    session.tls_established();
                    assert!(session.is_tls());
                }
            }
        }
    }
}

/// Plays `mailroom fetch`: sends commands, collects what comes back.
struct ClientDriver {
    session: ClientSession,
    max_entries: usize,
    /// Everything sent to the server.
    wire: Vec<u8>,
    /// The content of the message being retrieved.
    content: Option<Vec<u8>>,
    greeted: bool,
    failed: bool,
}

impl ClientDriver {
    fn drain(&mut self, input: &mut Input<'_>) {
        loop {
            match self.session.poll_event() {
                Ok(Some(event)) => {
                    assert!(!self.failed, "event after an error: {event:?}");
                    self.event(event, input);
                }
                Ok(None) => {
                    if !self.session.is_idle() || self.session.is_closed() {
                        break;
                    }
                    if !self.send(input.decision()) {
                        break;
                    }
                }
                Err(error) => {
                    assert!(self.session.is_closed(), "open after {error}");
                    self.failed = true;
                    self.content = None;
                    if error == ClientError::DataAfterStls {
                        assert!(!self.session.is_tls());
                    }
                }
            }
        }
        self.wire.extend(self.session.take_output());
    }

    /// Sends the command `decision` names; false when none was sent.
    fn send(&mut self, decision: u8) -> bool {
        let session = &mut self.session;
        let msg = u64::from(decision >> 5);
        let result = match decision % 16 {
            0 => session.capa(),
            1 => session.stls(),
            2 => session.user("alice"),
            3 => session.pass("secret words"),
            4 => session.auth_plain("alice", "secret"),
            5 => session.stat(),
            6 => session.list(),
            7 => session.uidl(),
            8 | 9 => session.retr(msg),
            10 => session.dele(msg),
            11 => session.noop(),
            12 => session.rset(),
            13 => session.quit(),
            14 => session.auth_plain("alice", &"long password ".repeat(20)),
            _ => return false,
        };
        assert_ne!(result, Err(SendError::Busy), "busy while idle");
        result.is_ok()
    }

    fn event(&mut self, event: ClientEvent, input: &mut Input<'_>) {
        match event {
            ClientEvent::Greeting { .. } => {
                assert!(!self.greeted, "two greetings");
                self.greeted = true;
            }
            ClientEvent::TlsReady => {
                if input.decision() % 8 != 7 {
                    self.session.tls_established();
                    assert!(self.session.is_tls());
                }
            }
            ClientEvent::Listing(entries) => {
                assert!(entries.len() <= self.max_entries);
                assert!(entries.iter().all(|e| e.msg > 0));
            }
            ClientEvent::UidListing(entries) => {
                assert!(entries.len() <= self.max_entries);
                for entry in entries {
                    assert!(entry.msg > 0);
                    assert!(
                        (1..=70).contains(&entry.uid.len())
                            && entry.uid.bytes().all(|b| (0x21..=0x7e).contains(&b)),
                        "bad unique id {:?}",
                        entry.uid
                    );
                }
            }
            ClientEvent::MessageStart { .. } => {
                assert!(self.content.is_none(), "message inside a message");
                self.content = Some(Vec::new());
            }
            ClientEvent::MessageData(data) => {
                let Some(content) = &mut self.content else {
                    panic!("message data outside a message");
                };
                content.extend(data);
            }
            ClientEvent::MessageEnd { .. } => {
                let Some(content) = self.content.take() else {
                    panic!("message end outside a message");
                };
                assert!(content.is_empty() || content.ends_with(b"\r\n"));
                check_wire(&content, usize::MAX);
            }
            ClientEvent::SignedOff { .. } => assert!(self.session.is_closed()),
            ClientEvent::Capabilities(_)
            | ClientEvent::Accepted { .. }
            | ClientEvent::Stat { .. }
            | ClientEvent::Rejected { .. } => {}
        }
    }
}

/// A decision byte that defers the answer to after the next read.
const DEFER: u8 = 0xFF;

/// Every chunk of server output starts at a response: a status line
/// (`+OK`, `-ERR`, or a SASL `+ ` continuation) of at most 512 octets.
fn check_response_start(output: &[u8]) {
    if output.is_empty() {
        return;
    }
    assert!(
        output.starts_with(b"+OK") || output.starts_with(b"-ERR") || output.starts_with(b"+ "),
        "output does not start with a status line: {:?}",
        String::from_utf8_lossy(output)
    );
    let first = output
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(output.len(), |at| at + 2);
    assert!(first <= 512, "status line of {first} octets");
}

/// CR LF line ends only, lines of at most `max_line` octets with their CR
/// LF, and a final CR LF.
fn check_wire(wire: &[u8], max_line: usize) {
    let mut line_start = 0;
    for (i, &byte) in wire.iter().enumerate() {
        match byte {
            b'\r' => assert_eq!(wire.get(i + 1), Some(&b'\n'), "bare CR at {i}"),
            b'\n' => {
                assert!(i > 0 && wire.get(i - 1) == Some(&b'\r'), "bare LF at {i}");
                assert!(
                    i + 1 - line_start <= max_line,
                    "line over {max_line} octets"
                );
                line_start = i + 1;
            }
            _ => {}
        }
    }
    assert_eq!(line_start, wire.len(), "unterminated last line");
}

fn remap(input: &[u8], fragments: &[&[u8]]) -> Vec<u8> {
    input
        .iter()
        .flat_map(|&b| {
            fragments
                .get(usize::from(b) % fragments.len())
                .copied()
                .unwrap_or_default()
                .iter()
                .copied()
        })
        .collect()
}

/// The content of message `index` of the listing: dot lines, an empty
/// message, one without a final line end, one with bare line ends (which
/// a store should never hold, and the stuffer must still make safe).
fn message(index: usize) -> &'static [u8] {
    const MESSAGES: [&[u8]; 5] = [
        b"Subject: one\r\n\r\nbody\r\n.dot line\r\n..\r\n.\r\n",
        b"",
        b"Subject: two\r\n\r\nline 1\r\nline 2\r\nline 3\r\n",
        b"Subject: three\r\n\r\nno final line end",
        b"Subject: four\r\n\r\nbare\nlf\rcr\r\n.\r\n\r",
    ];
    MESSAGES
        .get(index % MESSAGES.len())
        .copied()
        .unwrap_or_default()
}

/// Client lines for remapped input.
const CLIENT_FRAGMENTS: [&[u8]; 40] = [
    b"USER alice\r\n",
    b"PASS secret\r\n",
    b"APOP alice c4c9334bac560ecc979e58001b3e22fb\r\n",
    b"APOP alice short\r\n",
    b"AUTH\r\n",
    b"AUTH PLAIN\r\n",
    b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
    b"AUTH PLAIN =\r\n",
    b"AGFsaWNlAHNlY3JldA==\r\n",
    b"AHg=\r\n",
    b"*\r\n",
    b"AUTH LOGIN\r\n",
    b"STLS\r\n",
    b"CAPA\r\n",
    b"STAT\r\n",
    b"LIST\r\n",
    b"LIST 1\r\n",
    b"LIST 0\r\n",
    b"LIST 99999999999999999999999\r\n",
    b"UIDL\r\n",
    b"UIDL 2\r\n",
    b"RETR 1\r\n",
    b"RETR 5\r\n",
    b"TOP 1 0\r\n",
    b"TOP 3 1\r\n",
    b"TOP 4 18446744073709551615\r\n",
    b"DELE 1\r\n",
    b"DELE 2\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"QUIT\r\n",
    b"user Bob\r\n",
    b"\r\n",
    b"\r",
    b"\n",
    b" ",
    b"x",
    b"\0",
    b"\xff",
    b"LIST 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78\r\n",
];

/// Server lines for remapped input.
const SERVER_FRAGMENTS: [&[u8]; 36] = [
    b"+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n",
    b"+OK\r\n",
    b"-ERR\r\n",
    b"-ERR [IN-USE] locked\r\n",
    b"-ERR [AUTH] bad\r\n",
    b"-ERR [SYS/TEMP] later\r\n",
    b"-ERR [UNKNOWN-CODE] x\r\n",
    b"+OK 2 320\r\n",
    b"+OK 120 octets\r\n",
    b"+OK Capability list follows\r\n",
    b"STLS\r\n",
    b"USER\r\n",
    b"SASL PLAIN LOGIN\r\n",
    b"UIDL\r\n",
    b"1 120\r\n",
    b"2 200 extra\r\n",
    b"0 5\r\n",
    b"1 uid-a\r\n",
    b"2 \x7f\r\n",
    b"3 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
    b"18446744073709551616 1\r\n",
    b".\r\n",
    b"..\r\n",
    b".dot\r\n",
    b"Subject: x\r\n",
    b"\r\n",
    b"body line\r\n",
    b"+ \r\n",
    b"+\r\n",
    b"+OKAY\r\n",
    b"\r",
    b"\n",
    b".",
    b" ",
    b"\0",
    b"\xff",
];

#[cfg(test)]
mod tests {

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn fuzz_corpus_replay() {
        mailroom_core::fuzzing::replay_corpus("pop3_session", fuzz_pop3_session);
        mailroom_core::fuzzing::replay_corpus("pop3_client", fuzz_pop3_client);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn fuzz_pop3_session_random(data in prop::collection::vec(any::<u8>(), 0..200)) {
            fuzz_pop3_session(&data);
        }

        #[test]
        fn fuzz_pop3_client_random(data in prop::collection::vec(any::<u8>(), 0..200)) {
            fuzz_pop3_client(&data);
        }
    }
}
