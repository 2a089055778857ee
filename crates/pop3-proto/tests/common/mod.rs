//! Shared by the integration tests: a fixed maildrop and a scripted driver
//! that answers every event the way `mailroom-server` would, streaming
//! messages through `TopFilter` and `ByteStuffer`.

// Each test binary uses a different part of this module.
#![allow(dead_code, clippy::unwrap_used)]

use mailroom_pop3_proto::{
    ByteStuffer, Credential, Event, LoginFailure, MessageEntry, ServerConfig, ServerSession,
    TopFilter, apop_verify,
};

/// The RFC 1939 §7 example timestamp.
pub(crate) const TIMESTAMP: &str = "<1896.697170952@dbc.mtview.ca.us>";

/// Alice's maildrop. The first holds a line starting with a dot; the third
/// lacks its final CRLF, so `ByteStuffer::finish` must add one.
pub(crate) const MESSAGES: [&[u8]; 3] = [
    b"From: bob@example.com\r\nSubject: one\r\n\r\nHello Alice.\r\n.signature\r\n",
    b"Subject: two\r\n\r\nline 1\r\nline 2\r\nline 3\r\n",
    b"Subject: three\r\n\r\nno final line end",
];

pub(crate) fn listing() -> Vec<MessageEntry> {
    MESSAGES
        .iter()
        .enumerate()
        .map(|(i, m)| MessageEntry {
            uid: format!("uid-{}", i + 1),
            size: m.len() as u64,
        })
        .collect()
}

/// Greeting with the RFC timestamp, plaintext logins allowed (a loopback
/// connection).
pub(crate) fn config() -> ServerConfig {
    ServerConfig {
        greeting_timestamp: TIMESTAMP.into(),
        plaintext_login_allowed: true,
        ..ServerConfig::default()
    }
}

/// The scripted decisions: alice with password `secret` or APOP secret
/// `tanstaaf` gets the three messages; `locked` is [IN-USE]; `broken` is
/// a temporary failure; everyone else has bad credentials.
pub(crate) fn decide(session: &mut ServerSession, event: &Event, wire: &mut Vec<u8>) {
    match event {
        Event::Login { user, credential } => {
            let good = user == "alice"
                && match credential {
                    Credential::Password(password) => password == "secret",
                    Credential::Apop { digest } => apop_verify(TIMESTAMP, "tanstaaf", digest),
                };
            match user.as_str() {
                _ if good => session.login_succeeded(listing()),
                "locked" => session.login_failed(LoginFailure::InUse),
                "broken" => session.login_failed(LoginFailure::TemporaryFailure),
                _ => session.login_failed(LoginFailure::BadCredentials),
            }
        }
        Event::Retrieve { index, top_lines } => {
            session.retrieve_ok();
            wire.extend(session.take_output());
            stream(MESSAGES[*index], *top_lines, wire);
        }
        Event::Quit { .. } => session.update_finished(true),
        Event::StartTls => {
            wire.extend(session.take_output());
            session.tls_established();
        }
    }
}

/// Streams a message the way the driver does: 7-byte reads through the TOP
/// filter (if any) and the stuffer.
pub(crate) fn stream(message: &[u8], top_lines: Option<u64>, wire: &mut Vec<u8>) {
    let mut stuffer = ByteStuffer::new();
    let mut top = top_lines.map(TopFilter::new);
    for chunk in message.chunks(7) {
        let chunk = match &mut top {
            Some(filter) if filter.done() => break,
            Some(filter) => filter.push(chunk),
            None => chunk,
        };
        stuffer.push(chunk, wire);
    }
    stuffer.finish(wire);
}

/// Runs a whole conversation: the input arrives in `chunks`, every event is
/// answered by [`decide`]. Returns everything written and every event.
pub(crate) fn run(config: ServerConfig, chunks: &[&[u8]]) -> (Vec<u8>, Vec<Event>) {
    let mut session = ServerSession::new(config);
    let mut wire = session.take_output();
    let mut events = Vec::new();
    for chunk in chunks {
        if session.is_closed() {
            break;
        }
        session.handle_input(chunk);
        while let Some(event) = session.poll_event() {
            decide(&mut session, &event, &mut wire);
            events.push(event);
        }
        wire.extend(session.take_output());
    }
    (wire, events)
}

/// Checks the server's output is a well-formed sequence of POP3 responses:
/// CRLF lines only, at most 512 octets, each `+OK`, `-ERR` or a SASL `+ `
/// line, and every data block after a `+OK` byte-stuffed and terminated by
/// `.`. Returns the number of status lines.
pub(crate) fn check_well_formed(wire: &[u8]) -> Result<usize, String> {
    let mut rest = wire;
    let mut lines = Vec::new();
    while !rest.is_empty() {
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Err(format!(
                "unterminated line {:?}",
                String::from_utf8_lossy(rest)
            ));
        };
        let line = &rest[..end];
        if line.contains(&b'\r') || line.contains(&b'\n') {
            return Err(format!("bare CR/LF in {:?}", String::from_utf8_lossy(line)));
        }
        if line.len() + 2 > 512 {
            return Err(format!("line of {} octets", line.len() + 2));
        }
        lines.push(line);
        rest = &rest[end + 2..];
    }
    let is_status = |line: &[u8]| {
        line == b"+OK"
            || line.starts_with(b"+OK ")
            || line == b"-ERR"
            || line.starts_with(b"-ERR ")
            || line == b"+ "
    };
    let mut statuses = 0;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if !is_status(line) {
            return Err(format!(
                "not a status line: {:?}",
                String::from_utf8_lossy(line)
            ));
        }
        statuses += 1;
        i += 1;
        // A +OK followed by a non-status line starts a data block.
        if line.starts_with(b"+OK") && i < lines.len() && !is_status(lines[i]) {
            loop {
                let Some(data) = lines.get(i) else {
                    return Err("data block without terminator".into());
                };
                i += 1;
                if *data == b"." {
                    break;
                }
                if data.starts_with(b".") && !data.starts_with(b"..") {
                    return Err(format!(
                        "unstuffed line {:?}",
                        String::from_utf8_lossy(data)
                    ));
                }
            }
        }
    }
    Ok(statuses)
}
