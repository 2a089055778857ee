//! Fuzzes the SMTP server session: arbitrary bytes in arbitrary chunks,
//! with a driver that accepts every decision. The session must never panic
//! and must only ever write well-formed reply lines.
//!
//! The first input byte picks the mode and the chunking: with its low bit
//! set, every further byte is mapped to an SMTP fragment (a command, a line
//! end, a dot) so the fuzzer reaches DATA, BDAT, AUTH and STARTTLS quickly,
//! as smtp-proto's own target remaps its input.
//!
//! Run with `cargo fuzz run -s none smtp_session` from this folder.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mailroom_smtp_proto::{Event, ServerConfig, ServerSession};

fuzz_target!(|input: &[u8]| {
    let Some((&control, rest)) = input.split_first() else {
        return;
    };
    let bytes = if control & 1 == 1 {
        remap(rest)
    } else {
        rest.to_vec()
    };
    let mut session = ServerSession::new(config());
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
            decide(&mut session, &event);
        }
        output.extend(session.take_output());
        if session.is_closed() {
            break;
        }
    }
    check_replies(&output);
});

fn config() -> ServerConfig {
    ServerConfig {
        hostname: "fuzz.example".to_string(),
        max_message_size: 1000,
        max_recipients: 3,
        max_errors: 50,
        max_command_line: 80,
        max_text_line: 100,
        vrfy: true,
        expn: true,
        starttls: true,
        auth_mechanisms: vec!["PLAIN".to_string(), "LOGIN".to_string()],
        auth_without_tls: true,
        require_auth: false,
        tls_active: false,
    }
}

fn decide(session: &mut ServerSession, event: &Event) {
    match event {
        Event::StartTls => session.tls_established(),
        Event::Auth {
            initial_response: None,
            ..
        } => session.auth_challenge("Y2hhbGxlbmdl"),
        Event::Auth { .. } | Event::AuthResponse { .. } => session.auth_succeeded("fuzzer"),
        _ => session.accept(),
    }
}

/// Every byte becomes one fragment of an SMTP conversation.
fn remap(input: &[u8]) -> Vec<u8> {
    const FRAGMENTS: [&[u8]; 24] = [
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
    input
        .iter()
        .flat_map(|&b| FRAGMENTS[usize::from(b) % FRAGMENTS.len()].iter().copied())
        .collect()
}

/// RFC 5321 §4.2: `ddd-text` lines with one code, then `ddd text` or `ddd`,
/// each ending in CR LF, no other CR or LF, valid UTF-8.
fn check_replies(output: &[u8]) {
    let text = std::str::from_utf8(output).expect("replies are UTF-8");
    assert!(
        text.is_empty() || text.ends_with("\r\n"),
        "unterminated reply"
    );
    let mut continuing: Option<&str> = None;
    for line in text.split_terminator("\r\n") {
        assert!(!line.contains(['\r', '\n']), "bare CR/LF in a reply");
        let code = line.get(..3).expect("reply code");
        assert!(
            code.bytes().all(|b| b.is_ascii_digit()) && (b'2'..=b'5').contains(&code.as_bytes()[0])
        );
        if let Some(c) = continuing {
            assert_eq!(c, code, "continuation with another code");
        }
        continuing = match line.as_bytes().get(3) {
            None | Some(b' ') => None,
            Some(b'-') => Some(code),
            Some(_) => panic!("bad separator"),
        };
    }
    assert!(continuing.is_none(), "unfinished multi-line reply");
}
