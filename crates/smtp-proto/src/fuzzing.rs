//! The bodies of the SMTP fuzz targets (`fuzz/fuzz_targets/smtp_*.rs`),
//! shared with the `fuzz_corpus_replay` test, which runs them over the
//! committed corpus in `cargo test`. Each function panics when an invariant
//! breaks; see `mailroom_core::fuzzing` for the scheme.
//!
//! Not part of the API: hidden from the docs, free to change.

use mailroom_core::Address;
use mailroom_core::fuzzing::Input;

use crate::codes;
use crate::command::{Command, ForwardPath};
use crate::data::{DataDecoder, DataError, Finished};
use crate::dot;
use crate::event::Event;
use crate::reply::Reply;
use crate::{ServerConfig, ServerSession};

/// `smtp_session`: arbitrary bytes in arbitrary chunks, with a driver that
/// accepts every decision. The session must never panic and must only ever
/// write well-formed reply lines.
///
/// The first byte picks the mode and the chunking: with its low bit set,
/// every further byte is mapped to an SMTP fragment (a command, a line end,
/// a dot) so the fuzzer reaches DATA, BDAT, AUTH and STARTTLS quickly, as
/// smtp-proto's own target remaps its input.
pub fn fuzz_smtp_session(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let bytes = if control & 1 == 1 {
        remap(rest, &SESSION_FRAGMENTS)
    } else {
        rest.to_vec()
    };
    let mut session = ServerSession::new(session_config());
    let mut output = session.take_output();
    // Chunk sizes cycle through 1..=64, seeded by the control byte.
    let mut size = usize::from(control >> 1) % 64 + 1;
    let mut remaining = bytes.as_slice();
    while !remaining.is_empty() {
        let (chunk, tail) = remaining.split_at(size.min(remaining.len()));
        remaining = tail;
        size = (size * 7 + 3) % 64 + 1;
        session.handle_input(chunk);
        while let Some(event) = session.poll_event() {
            match event {
                Event::StartTls => session.tls_established(),
                Event::Auth {
                    initial_response: None,
                    ..
                } => session.auth_challenge("Y2hhbGxlbmdl"),
                Event::Auth { .. } | Event::AuthResponse { .. } => {
                    session.auth_succeeded("fuzzer");
                }
                _ => session.accept(),
            }
        }
        output.extend(session.take_output());
        if session.is_closed() {
            break;
        }
    }
    check_replies(&output);
}

/// `smtp_session_states`: a structured conversation that reaches every
/// state (DATA, BDAT, AUTH, after STARTTLS) and answers each event the way
/// the input says, checking the session's promises along the way.
///
/// Input layout (see [`Input`]): the data is two bytes of configuration
/// flags, then operations; each driver decision takes one decision byte.
/// An operation byte `op` is
///
/// * `op % 8` in 0..=3: the next `op / 8 + 1` bytes, each mapped to a
///   protocol fragment (a whole command, a line end, payload), sent as one
///   read;
/// * 4 or 5: the next `op / 8 + 1` bytes sent raw, as one read;
/// * 6: the next `op / 8 + 1` fragments sent one byte per read;
/// * 7: `op / 8 % 4` = 0 a read timeout, 1 a graceful shutdown, else
///   nothing (an empty read).
///
/// A decision byte of 0xFF defers the answer until after the next read
/// (input arriving while a decision is pending).
pub fn fuzz_smtp_session_states(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = u16::from_le_bytes([input.byte().unwrap_or(0), input.byte().unwrap_or(0)]);
    let mut driver = Driver::new(states_config(flags));
    while let Some(op) = input.byte() {
        let count = usize::from(op >> 3) + 1;
        match op % 8 {
            0..=3 => {
                let bytes = remap(input.bytes(count), &STATE_FRAGMENTS);
                driver.read(&bytes, &mut input);
            }
            4 | 5 => {
                let bytes = input.bytes(count);
                driver.read(bytes, &mut input);
            }
            6 => {
                let bytes = remap(input.bytes(count), &STATE_FRAGMENTS);
                for byte in bytes {
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
    check_replies(&driver.output);
}

/// `smtp_data`: [`DataDecoder`] fed arbitrary chunks. It never panics, it
/// ends exactly where a slow reference decoder finds the first CR LF "."
/// CR LF, with exactly the reference's message or error, and a message it
/// accepts comes back unchanged through [`dot::stuff`] and decoding again.
///
/// Input layout: one byte of limits (bits 0–1 the size limit, 2–3 the line
/// limit), one byte of chunking (0: all at once; else chunk sizes cycling
/// through 1..=64), then the body as sent after the 354 reply.
pub fn fuzz_smtp_data(data: &[u8]) {
    let [limits, chunking, body @ ..] = data else {
        return;
    };
    let (limits, chunking) = (*limits, *chunking);
    let max_size = match limits & 3 {
        0 => u64::MAX,
        1 => 16,
        2 => 256,
        _ => 4096,
    };
    let max_line = match (limits >> 2) & 3 {
        0 => 1000,
        1 => 1,
        2 => 10,
        _ => 80,
    };

    let mut decoder = DataDecoder::new(max_size, max_line);
    let mut offset = 0;
    let mut outcome = None;
    for chunk in chunks(body, chunking) {
        if let Some(finished) = decoder.feed(chunk) {
            assert!(finished.consumed <= chunk.len(), "consumed more than fed");
            outcome = Some((offset + finished.consumed, finished.result));
            break;
        }
        offset += chunk.len();
    }
    assert_eq!(
        outcome,
        reference_data(body, max_size, max_line),
        "DataDecoder disagrees with the reference"
    );
    let Some((_, result)) = outcome else { return };
    assert_eq!(
        decoder.feed(b"QUIT\r\n"),
        Some(Finished {
            consumed: 0,
            result: Ok(Vec::new())
        }),
        "a finished decoder consumed more"
    );
    if let Ok(message) = result {
        // Un-stuffing invariants: CR LF lines only, no NUL, within limits.
        assert!(message.is_empty() || message.ends_with(b"\r\n"));
        assert!(message.len() as u64 <= max_size);
        for line in split_crlf(&message) {
            assert!(!line.contains(&b'\r') && !line.contains(&b'\n') && !line.contains(&0));
            assert!(line.len() + 2 <= max_line);
        }
        // Transparency (RFC 5321 §4.5.2): stuffing and decoding again is
        // the identity on what the decoder accepts.
        let mut again = dot::stuff(&message);
        again.extend_from_slice(dot::END_OF_DATA);
        let mut decoder = DataDecoder::new(max_size, max_line);
        assert_eq!(
            decoder.feed(&again),
            Some(Finished {
                consumed: again.len(),
                result: Ok(message)
            }),
            "stuff then decode is not the identity"
        );
    }
}

/// `smtp_command`: [`Command::parse`] on any line never panics; errors
/// turn into well-formed replies; trailing blanks and the case of the verb
/// change nothing; parsed addresses are in normal form.
pub fn fuzz_smtp_command(data: &[u8]) {
    let parsed = Command::parse(data);
    if let Err(error) = &parsed {
        let reply = error.reply();
        assert!(!reply.is_positive(), "an error with a positive reply");
        check_replies(&reply.to_bytes());
    }

    let mut padded = data.to_vec();
    padded.extend_from_slice(b" \t ");
    assert_eq!(Command::parse(&padded), parsed, "trailing blanks matter");

    let verb_end = data.iter().position(|&b| b == b' ').unwrap_or(data.len());
    let mut swapped = data.to_vec();
    for byte in swapped.iter_mut().take(verb_end) {
        if byte.is_ascii_alphabetic() {
            *byte ^= 0x20;
        }
    }
    assert_eq!(Command::parse(&swapped), parsed, "the verb's case matters");

    match &parsed {
        Ok(Command::Mail(mail)) => {
            if let Some(address) = &mail.reverse_path {
                check_address(address);
                assert!(mail.params.smtputf8 || !address.is_utf8());
            }
        }
        Ok(Command::Rcpt(recipient)) => {
            if let ForwardPath::Mailbox(address) = &recipient.path {
                check_address(address);
            }
        }
        _ => {}
    }
}

/// RFC 5321 §4.2: `ddd-text` lines with one code, then `ddd text` or `ddd`,
/// each ending in CR LF, no other CR or LF, valid UTF-8.
fn check_replies(output: &[u8]) {
    let Ok(text) = std::str::from_utf8(output) else {
        panic!("replies are not UTF-8: {output:?}");
    };
    assert!(
        text.is_empty() || text.ends_with("\r\n"),
        "unterminated reply"
    );
    let mut continuing: Option<&str> = None;
    for line in text.split_terminator("\r\n") {
        assert!(!line.contains(['\r', '\n']), "bare CR/LF in a reply");
        let Some(code) = line.get(..3) else {
            panic!("reply line without a code: {line:?}");
        };
        assert!(
            code.bytes().all(|b| b.is_ascii_digit())
                && matches!(code.as_bytes().first(), Some(b'2'..=b'5')),
            "bad reply code {code:?}"
        );
        if let Some(c) = continuing {
            assert_eq!(c, code, "continuation with another code");
        }
        continuing = match line.as_bytes().get(3) {
            None | Some(b' ') => None,
            Some(b'-') => Some(code),
            Some(_) => panic!("bad separator in {line:?}"),
        };
    }
    assert!(continuing.is_none(), "unfinished multi-line reply");
}

fn check_address(address: &Address) {
    assert_eq!(
        Address::parse(&address.to_string(), true).as_ref(),
        Ok(address),
        "address not in normal form"
    );
}

/// The scripted driver of [`fuzz_smtp_session_states`]: answers events as
/// the input says and checks each event against what the session promised.
struct Driver {
    session: ServerSession,
    config: ServerConfig,
    output: Vec<u8>,
    /// An event whose answer waits for the next read.
    deferred: Option<Event>,
}

impl Driver {
    fn new(config: ServerConfig) -> Self {
        let mut session = ServerSession::new(config.clone());
        let output = session.take_output();
        Driver {
            session,
            config,
            output,
            deferred: None,
        }
    }

    /// One read from the client: feed, answer, drain.
    fn read(&mut self, bytes: &[u8], input: &mut Input<'_>) {
        let was_closed = self.session.is_closed();
        self.session.handle_input(bytes);
        if let Some(event) = self.deferred.take() {
            let decision = input.decision();
            self.answer(&event, decision);
        }
        while let Some(event) = self.session.poll_event() {
            self.check(&event);
            if !needs_decision(&event) {
                continue;
            }
            let decision = input.decision();
            if decision == DEFER {
                self.deferred = Some(event);
                break;
            }
            self.answer(&event, decision);
        }
        self.drain(was_closed);
    }

    /// A timeout or shutdown: 421 and closed.
    fn stop(&mut self, how: fn(&mut ServerSession)) {
        let was_closed = self.session.is_closed();
        how(&mut self.session);
        assert!(self.session.is_closed(), "still open after a stop");
        assert!(self.session.poll_event().is_none());
        self.deferred = None;
        self.drain(was_closed);
    }

    fn drain(&mut self, was_closed: bool) {
        let output = self.session.take_output();
        assert!(
            !was_closed || output.is_empty(),
            "output after the session closed"
        );
        self.output.extend(output);
        if self.session.is_closed() {
            assert!(self.session.poll_event().is_none(), "event after close");
        }
    }

    /// What the session promises about each event, checked before the
    /// answer.
    fn check(&self, event: &Event) {
        let session = &self.session;
        let config = &self.config;
        match event {
            Event::Helo { domain, .. } => {
                assert_eq!(session.helo(), Some(domain.as_str()));
            }
            Event::MailFrom {
                reverse_path,
                params,
            } => {
                assert!(session.helo().is_some(), "MAIL before HELO");
                assert!(
                    !config.require_auth || session.authenticated().is_some(),
                    "MAIL before AUTH on submission"
                );
                assert!(params.size.is_none_or(|s| s <= config.max_message_size));
                if let Some(address) = reverse_path {
                    assert!(params.smtputf8 || !address.is_utf8());
                }
            }
            Event::RcptTo { recipient } => {
                assert!(session.helo().is_some(), "RCPT before HELO");
                if let ForwardPath::Mailbox(address) = &recipient.path {
                    check_address(address);
                }
            }
            Event::Vrfy { .. } => {
                assert!(config.vrfy || session.authenticated().is_some());
            }
            Event::Expn { .. } => {
                assert!(config.expn || session.authenticated().is_some());
            }
            Event::Message { envelope, data } => {
                assert!(!envelope.recipients.is_empty(), "message without RCPT");
                assert!(envelope.recipients.len() <= config.max_recipients);
                assert!(data.len() as u64 <= config.max_message_size, "over SIZE");
                let utf8 = envelope.reverse_path.as_ref().is_some_and(Address::is_utf8)
                    || envelope
                        .recipients
                        .iter()
                        .any(|r| matches!(&r.path, ForwardPath::Mailbox(a) if a.is_utf8()));
                assert!(
                    !utf8 || envelope.mail_params.smtputf8,
                    "UTF-8 envelope without SMTPUTF8"
                );
                // Both DATA and BDAT hold messages to RFC 5321 §2.3.8:
                // no bare CR or LF, no NUL, no over-long line.
                for line in split_crlf(data) {
                    assert!(
                        !line.contains(&b'\r') && !line.contains(&b'\n'),
                        "bare CR/LF in an accepted message"
                    );
                    assert!(!line.contains(&0), "NUL in an accepted message");
                    assert!(line.len() + 2 <= config.max_text_line, "over-long line");
                }
            }
            Event::StartTls => {
                assert!(
                    config.starttls && !session.is_tls(),
                    "STARTTLS offered twice"
                );
            }
            Event::Auth { mechanism, .. } => {
                assert!(
                    config
                        .auth_mechanisms
                        .iter()
                        .any(|m| m.eq_ignore_ascii_case(mechanism)),
                    "AUTH with a mechanism not offered"
                );
                assert!(
                    session.is_tls() || config.auth_without_tls,
                    "AUTH in plaintext"
                );
                assert!(session.authenticated().is_none(), "second AUTH");
                assert!(session.helo().is_some(), "AUTH before HELO");
            }
            Event::AuthResponse { line } => {
                assert!(line != "*", "a cancel reached the driver");
                assert!(crate::command::is_base64(line), "SASL response not base64");
            }
            Event::Quit => assert!(session.is_closed(), "open after QUIT"),
        }
    }

    /// Answers `event` the way `decision` says.
    fn answer(&mut self, event: &Event, decision: u8) {
        let session = &mut self.session;
        match event {
            Event::StartTls => {
                if decision % 8 == 7 {
                    session.respond(codes::tls_not_available());
                    assert!(session.is_closed(), "open after a failed handshake");
                } else {
                    session.tls_established();
                    assert!(session.is_tls());
                    assert!(session.helo().is_none(), "HELO kept across STARTTLS");
                    assert!(
                        session.authenticated().is_none(),
                        "AUTH kept across STARTTLS"
                    );
                }
            }
            Event::Auth { .. } | Event::AuthResponse { .. } => match decision % 4 {
                0 => {
                    session.auth_succeeded("fuzzer");
                    assert_eq!(session.authenticated(), Some("fuzzer"));
                }
                1 => session.auth_challenge("Y2hhbGxlbmdl"),
                2 => session.respond(codes::auth_failed()),
                _ => session.accept(),
            },
            Event::MailFrom { .. }
            | Event::RcptTo { .. }
            | Event::Vrfy { .. }
            | Event::Expn { .. }
            | Event::Message { .. } => match decision % 8 {
                5 => session.respond(codes::local_error()),
                6 => session.respond(match event {
                    Event::MailFrom { .. } => codes::sender_rejected(),
                    Event::RcptTo { .. } => codes::user_unknown(),
                    _ => codes::message_rejected(),
                }),
                7 => session.respond(match event {
                    Event::Message { .. } => codes::message_accepted("Q1"),
                    Event::Vrfy { .. } => codes::vrfy_ok("user@example.org"),
                    Event::Expn { .. } => codes::expn_list(vec![
                        "a@example.org".to_owned(),
                        "b@example.org".to_owned(),
                    ]),
                    _ => Reply::new(250, None, "OK"),
                }),
                _ => session.accept(),
            },
            Event::Helo { .. } | Event::Quit => {}
        }
    }
}

/// Events that leave the session waiting for the driver.
fn needs_decision(event: &Event) -> bool {
    !matches!(event, Event::Helo { .. } | Event::Quit)
}

/// A decision byte that defers the answer to after the next read.
const DEFER: u8 = 0xFF;

fn session_config() -> ServerConfig {
    ServerConfig {
        hostname: "fuzz.example".to_owned(),
        max_message_size: 1000,
        max_recipients: 3,
        max_errors: 50,
        max_command_line: 80,
        max_text_line: 100,
        vrfy: true,
        expn: true,
        starttls: true,
        auth_mechanisms: vec!["PLAIN".to_owned(), "LOGIN".to_owned()],
        auth_without_tls: true,
        require_auth: false,
        tls_active: false,
    }
}

/// The configuration of [`fuzz_smtp_session_states`]. All flags clear is
/// the deepest one: STARTTLS and AUTH offered, AUTH only after STARTTLS.
fn states_config(flags: u16) -> ServerConfig {
    let set = |bit: u16| flags & (1 << bit) != 0;
    let small = set(5);
    ServerConfig {
        hostname: "mx.fuzz.example".to_owned(),
        max_message_size: if small { 64 } else { 4096 },
        max_recipients: if small { 2 } else { 5 },
        max_errors: if set(6) { 3 } else { 100 },
        max_command_line: if small { 64 } else { 512 },
        max_text_line: if small { 32 } else { 1000 },
        vrfy: set(3),
        expn: set(4),
        starttls: !set(0),
        auth_mechanisms: if set(1) {
            Vec::new()
        } else {
            vec!["PLAIN".to_owned(), "LOGIN".to_owned()]
        },
        auth_without_tls: set(2),
        require_auth: set(7),
        tls_active: set(8),
    }
}

/// Every byte becomes one fragment.
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

/// `body` in the pieces `chunking` names (see [`fuzz_smtp_data`]).
fn chunks(body: &[u8], chunking: u8) -> Vec<&[u8]> {
    if chunking == 0 {
        return vec![body];
    }
    let mut out = Vec::new();
    let mut size = usize::from(chunking) % 64 + 1;
    let mut rest = body;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        out.push(chunk);
        rest = tail;
        size = (size * 7 + 3) % 64 + 1;
    }
    out
}

/// The lines of `data` between CR LF pairs (a last line without CR LF
/// included), without their CR LF.
fn split_crlf(data: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        match rest.windows(2).position(|w| w == b"\r\n") {
            Some(at) => {
                lines.push(rest.get(..at).unwrap_or_default());
                rest = rest.get(at + 2..).unwrap_or_default();
            }
            None => {
                lines.push(rest);
                break;
            }
        }
    }
    lines
}

/// What a DATA decoder must make of `input`, the slow and obvious way
/// (RFC 5321 §4.1.1.4, §4.5.2, §2.3.8): the body ends at the first CR LF
/// "." CR LF (or "." CR LF first thing); each line between CR LF pairs
/// loses one leading "."; a CR or LF left inside a line is bare. Returns
/// the octets consumed and the message or the first error in the
/// decoder's order (bare line end, NUL, size, line length).
fn reference_data(
    input: &[u8],
    max_size: u64,
    max_line: usize,
) -> Option<(usize, Result<Vec<u8>, DataError>)> {
    let end = if input.starts_with(b".\r\n") {
        3
    } else {
        input.windows(5).position(|w| w == b"\r\n.\r\n")? + 5
    };
    // Without the final ". CR LF": empty, or ending in CR LF.
    let body = input.get(..end - 3).unwrap_or_default();
    let mut message = Vec::new();
    let (mut bare, mut nul, mut long) = (false, false, false);
    for line in split_crlf(body) {
        let line = line.strip_prefix(b".").unwrap_or(line);
        bare |= line.contains(&b'\r') || line.contains(&b'\n');
        nul |= line.contains(&0);
        long |= line.len() + 2 > max_line;
        message.extend_from_slice(line);
        message.extend_from_slice(b"\r\n");
    }
    let result = if bare {
        Err(DataError::BareLineEnding)
    } else if nul {
        Err(DataError::Nul)
    } else if message.len() as u64 > max_size {
        Err(DataError::TooBig)
    } else if long {
        Err(DataError::LineTooLong)
    } else {
        Ok(message)
    };
    Some((end, result))
}

/// The alphabet of [`fuzz_smtp_session`].
const SESSION_FRAGMENTS: [&[u8]; 24] = [
    b"EHLO x\r\n",
    b"HELO x\r\n",
    b"MAIL FROM:<a@b.example>\r\n",
    b"MAIL FROM:<> SIZE=10 BODY=8BITMIME SMTPUTF8\r\n",
    b"RCPT TO:<c@d.example>\r\n",
    b"RCPT TO:<Postmaster> NOTIFY=SUCCESS ORCPT=rfc822;c+2B@d\r\n",
    b"DATA\r\n",
    b"BDAT 3\r\n",
    b"BDAT 2 LAST\r\n",
    b"AUTH PLAIN\r\n",
    b"AUTH LOGIN dXNlcg==\r\n",
    b"STARTTLS\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"VRFY x\r\n",
    b"QUIT\r\n",
    b"\r\n",
    b"\r",
    b"\n",
    b".",
    b"x",
    b"\0",
    b"*",
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];

/// The alphabet of [`fuzz_smtp_session_states`]: whole commands of every
/// kind (good, bad, pipelined), SASL lines, message text, and the single
/// octets that matter to framing.
const STATE_FRAGMENTS: [&[u8]; 64] = [
    b"EHLO client.example\r\n",
    b"HELO client.example\r\n",
    b"EHLO [192.0.2.1]\r\n",
    b"MAIL FROM:<sender@example.org>\r\n",
    b"MAIL FROM:<>\r\n",
    b"MAIL FROM:<s@example.org> SIZE=100 BODY=8BITMIME\r\n",
    b"MAIL FROM:<j\xc3\xbcrgen@b\xc3\xbccher.example> SMTPUTF8\r\n",
    b"MAIL FROM:<s@example.org> RET=HDRS ENVID=QQ314159 AUTH=<>\r\n",
    b"MAIL FROM:<s@example.org> SIZE=99999999999999999999999\r\n",
    b"RCPT TO:<rcpt@example.net>\r\n",
    b"RCPT TO:<Postmaster>\r\n",
    b"RCPT TO:<r@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;r@example.net\r\n",
    b"RCPT TO:<\xc3\xbc@example.net>\r\n",
    b"RCPT TO:<bad address>\r\n",
    b"RCPT TO:<@relay.example:r@example.net>\r\n",
    b"DATA\r\n",
    b"BDAT 0 LAST\r\n",
    b"BDAT 5\r\n",
    b"BDAT 7 LAST\r\n",
    b"BDAT 18446744073709551615\r\n",
    b"BDAT 2 LAST\r\nab",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"QUIT\r\n",
    b"HELP\r\n",
    b"VRFY postmaster\r\n",
    b"EXPN staff\r\n",
    b"STARTTLS\r\n",
    b"AUTH PLAIN\r\n",
    b"AUTH PLAIN AHVzZXIAcGFzcw==\r\n",
    b"AUTH LOGIN\r\n",
    b"AUTH LOGIN dXNlcg==\r\n",
    b"AUTH CRAM-MD5\r\n",
    b"AUTH PLAIN =\r\n",
    b"AUTH PLAIN not*base64\r\n",
    b"dXNlcg==\r\n",
    b"*\r\n",
    b"=\r\n",
    b"SEND FROM:<a@b.example>\r\n",
    b"MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.net>\r\nDATA\r\n",
    b"Subject: test\r\n",
    b"text of the message\r\n",
    b"8bit \xc3\xa9t\xc3\xa9\r\n",
    b"\r\n",
    b".\r\n",
    b"..\r\n",
    b".hidden\r\n",
    b"\r\n.\r\n",
    b"\r\n.\r\nQUIT\r\n",
    b"\n.\n",
    b"\r.\r",
    b"\r",
    b"\n",
    b".",
    b"\0",
    b" ",
    b"\t",
    b"x",
    b"\xff",
    b"abcde",
    b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
    b"EHLO xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n",
    b"NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n",
    b"mail from:<Lower@Example.ORG> body=7bit\r\n",
];

#[cfg(test)]
mod tests {

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn fuzz_corpus_replay() {
        mailroom_core::fuzzing::replay_corpus("smtp_session", fuzz_smtp_session);
        mailroom_core::fuzzing::replay_corpus("smtp_session_states", fuzz_smtp_session_states);
        mailroom_core::fuzzing::replay_corpus("smtp_data", fuzz_smtp_data);
        mailroom_core::fuzzing::replay_corpus("smtp_command", fuzz_smtp_command);
    }

    #[test]
    fn reference_data_table() {
        let ok = |end, data: &[u8]| Some((end, Ok(data.to_vec())));
        assert_eq!(reference_data(b".\r\n", 100, 100), ok(3, b""));
        assert_eq!(
            reference_data(b"a\r\n..\r\n.\r\n", 100, 100),
            ok(10, b"a\r\n.\r\n")
        );
        assert_eq!(reference_data(b"a\r\n.\r", 100, 100), None);
        assert_eq!(
            reference_data(b"a\n.\nb\r\n.\r\n", 100, 100),
            Some((10, Err(DataError::BareLineEnding)))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn fuzz_smtp_session_states_random(data in prop::collection::vec(any::<u8>(), 0..200)) {
            fuzz_smtp_session_states(&data);
        }

        #[test]
        fn fuzz_smtp_data_random(data in prop::collection::vec(
            prop::sample::select(vec![b'.', b'\r', b'\n', b'a', 0]), 0..40
        ), limits: u8, chunking: u8) {
            let mut input = vec![limits, chunking];
            input.extend(data);
            fuzz_smtp_data(&input);
        }

        #[test]
        fn fuzz_smtp_command_random(line in "[A-Za-z]{4} [ -~]{0,40}") {
            fuzz_smtp_command(line.as_bytes());
        }
    }
}
