//! Line length, error count, recipient and size limits; bare CR/LF in
//! command lines.

use mailroom_smtp_proto::{Event, ServerConfig, ServerSession};
use mailroom_testkit::splittings;

use crate::harness::*;

const OK: &str = "250 2.0.0 Ok\r\n";
const TOO_LONG: &str = "500 5.5.6 Line too long\r\n";
const BARE: &str = "500 5.5.2 Bare CR or LF in command line: lines must end with CRLF\r\n";
const TOO_BIG: &str = "552 5.3.4 Message size exceeds fixed limit\r\n";
const TRANSACTION: &str = "EHLO c\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<u@local.example>\r\n";

/// `NOOP x…x` CR LF of exactly `len` octets.
fn noop_line(len: usize) -> String {
    format!("NOOP {}\r\n", "x".repeat(len - 7))
}

#[test]
fn command_line_limit_is_512_with_crlf() {
    assert_eq!(reply_after(config(), "", &noop_line(512)), OK);
    assert_eq!(
        reply_after(config(), "", &format!("{}NOOP\r\n", noop_line(513))),
        format!("{TOO_LONG}{OK}")
    );
    // MAIL and RCPT have 500 octets more for parameters (RFC 5321 §4.5.3.1.4).
    let mail = |len: usize| {
        format!(
            "MAIL FROM:<s@remote.example> ENVID={}\r\n",
            "x".repeat(len - 37)
        )
    };
    assert_eq!(mail(1012).len(), 1012);
    // ENVID over 100 is a syntax error, but not a line length error.
    assert_eq!(
        reply_after(config(), "EHLO c\r\n", &mail(1012)),
        "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]\r\n"
    );
    assert_eq!(reply_after(config(), "EHLO c\r\n", &mail(1013)), TOO_LONG);
}

#[test]
fn overlong_line_in_pieces_is_discarded_with_one_reply() {
    // 100 kB without a line end, then its end and a good command, in every
    // kind of chunking of the tail.
    let mut session = ServerSession::new(config());
    session.take_output();
    let chunk = vec![b'a'; 1000];
    for _ in 0..100 {
        session.handle_input(&chunk);
        assert_eq!(session.poll_event(), None);
        assert_eq!(session.take_output(), b"");
    }
    session.handle_input(b"\r");
    assert_eq!(session.poll_event(), None);
    session.handle_input(b"\nNOOP\r\n");
    assert_eq!(session.poll_event(), None);
    assert_eq!(
        String::from_utf8(session.take_output()).unwrap(),
        format!("{TOO_LONG}{OK}")
    );

    let input = format!("{}\r\nNOOP\r\n", "b".repeat(600));
    for pieces in splittings(input.as_bytes(), 30) {
        let t = run(config(), &pieces);
        assert_eq!(
            t.text(),
            format!("{GREETING}{TOO_LONG}{OK}"),
            "{:?}",
            pieces.iter().map(|p| p.len()).collect::<Vec<_>>()
        );
    }
}

#[test]
fn auth_lines_may_be_12288_octets() {
    let config = ServerConfig {
        auth_mechanisms: vec!["PLAIN".into()],
        auth_without_tls: true,
        ..config()
    };
    let long = |len: usize| format!("AUTH PLAIN {}\r\n", "A".repeat(len - 13));
    assert_eq!(long(12288).len(), 12288);
    let t = run(config.clone(), &[b"EHLO c\r\n", long(12288).as_bytes()]);
    assert!(matches!(t.events.last(), Some(Event::Auth { .. })));
    let t = run(config.clone(), &[b"EHLO c\r\n", long(12289).as_bytes()]);
    assert!(t.text().ends_with(TOO_LONG));
    // The SASL response line too.
    let response = |len: usize| format!("{}\r\n", "A".repeat(len - 2));
    let t = run(
        config.clone(),
        &[b"EHLO c\r\nAUTH PLAIN\r\n", response(12288).as_bytes()],
    );
    assert!(matches!(t.events.last(), Some(Event::AuthResponse { line }) if line.len() == 12286));
    let t = run(
        config,
        &[
            b"EHLO c\r\nAUTH PLAIN\r\n",
            response(12289).as_bytes(),
            b"NOOP\r\n",
        ],
    );
    assert!(
        t.text().ends_with(&format!("334 \r\n{TOO_LONG}{OK}")),
        "{}",
        t.text()
    );
}

#[test]
fn bare_cr_and_lf_in_commands() {
    let table = [
        ("NOOP\nNOOP\r\n", BARE.to_string()),
        ("NOOP\rNOOP\r\n", BARE.to_string()),
        ("NOOP\r\rNOOP\r\n", BARE.to_string()),
        ("\n\r\n", BARE.to_string()),
        ("NOOP\r\r\n", BARE.to_string()),
        ("NOOP\n\r\nNOOP\r\n", format!("{BARE}{OK}")),
        ("\r\n", "500 5.5.2 Command unrecognized\r\n".to_string()),
        ("NOOP\r\nNOOP\n", OK.to_string()),
    ];
    for (input, want) in table {
        for pieces in splittings(input.as_bytes(), 5) {
            let t = run(config(), &pieces);
            assert_eq!(
                t.text(),
                format!("{GREETING}{want}"),
                "{input:?} as {pieces:?}"
            );
        }
    }
}

#[test]
fn error_limit_closes_with_421() {
    let config = ServerConfig {
        max_errors: 3,
        ..config()
    };
    let t = run(
        config,
        &[
            b"FOO\r\nBAR\r\nNOOP\r\nMAIL FROM:<a@b.example>\r\nNOOP\r\n",
            b"NOOP\r\n",
        ],
    );
    assert_eq!(
        t.text(),
        format!(
            "{GREETING}500 5.5.2 Command unrecognized\r\n500 5.5.2 Command unrecognized\r\n{OK}\
             503 5.5.1 Send HELO/EHLO first\r\n421 4.7.0 mx.local.example Too many errors, closing connection\r\n"
        )
    );
    assert!(t.closed);

    // The default is 20.
    let t = run(crate::harness::config(), &["FOO\r\n".repeat(25).as_bytes()]);
    assert_eq!(t.text().matches("500 5.5.2").count(), 20);
    assert!(
        t.text()
            .ends_with("421 4.7.0 mx.local.example Too many errors, closing connection\r\n")
    );
}

#[test]
fn recipient_limit() {
    let config = ServerConfig {
        max_recipients: 2,
        ..config()
    };
    let t = run(
        config,
        &[format!(
            "{TRANSACTION}RCPT TO:<v@local.example>\r\nRCPT TO:<w@local.example>\r\nDATA\r\n.\r\n"
        )
        .as_bytes()],
    );
    assert!(
        t.text().ends_with(
            "250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n452 4.5.3 Too many recipients\r\n354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as Q1\r\n"
        ),
        "{}",
        t.text()
    );
    let Some(Event::Message { envelope, .. }) = t.events.last() else {
        panic!()
    };
    assert_eq!(envelope.recipients.len(), 2);
}

#[test]
fn size_limit_on_mail_data_and_bdat() {
    let config = ServerConfig {
        max_message_size: 20,
        ..config()
    };
    // SIZE= over the limit (RFC 1870 §6).
    assert_eq!(
        reply_after(
            config.clone(),
            "EHLO c\r\n",
            "MAIL FROM:<s@remote.example> SIZE=21\r\n"
        ),
        TOO_BIG
    );
    assert_eq!(
        reply_after(
            config.clone(),
            "EHLO c\r\n",
            "MAIL FROM:<s@remote.example> SIZE=20\r\n"
        ),
        "250 2.1.0 Ok\r\n"
    );
    // DATA: read to the end, then 552; the session goes on.
    let body = "0123456789\r\n".repeat(1000);
    let t = run(
        config.clone(),
        &[
            format!("{TRANSACTION}DATA\r\n{body}.\r\nRCPT TO:<u@local.example>\r\nNOOP\r\n")
                .as_bytes(),
        ],
    );
    assert!(
        t.text().ends_with(&format!(
            "354 End data with <CR><LF>.<CR><LF>\r\n{TOO_BIG}503 5.5.1 Need MAIL command\r\n{OK}"
        )),
        "{}",
        t.text()
    );
    assert!(!t.events.iter().any(|e| matches!(e, Event::Message { .. })));
    // Exactly at the limit is accepted.
    let t = run(
        config.clone(),
        &[format!("{TRANSACTION}DATA\r\n012345678901234567\r\n.\r\n").as_bytes()],
    );
    assert!(t.text().ends_with("250 2.0.0 Ok: queued as Q1\r\n"));
    // BDAT: the chunk is consumed, 552, and the transaction is over.
    let t = run(
        config,
        &[format!(
            "{TRANSACTION}BDAT 15\r\n012345678901234BDAT 6\r\n567890BDAT 3 LAST\r\nabcNOOP\r\n"
        )
        .as_bytes()],
    );
    assert!(
        t.text().ends_with(&format!(
            "250 2.0.0 15 octets received\r\n{TOO_BIG}503 5.5.1 Need MAIL command\r\n{OK}"
        )),
        "{}",
        t.text()
    );
}

#[test]
fn text_line_limit_in_data() {
    let t = run(
        config(),
        &[format!("{TRANSACTION}DATA\r\n{}\r\n.\r\nNOOP\r\n", "x".repeat(999)).as_bytes()],
    );
    assert!(
        t.text().ends_with(&format!(
            "354 End data with <CR><LF>.<CR><LF>\r\n{TOO_LONG}{OK}"
        )),
        "{}",
        t.text()
    );
    let t = run(
        config(),
        &[format!("{TRANSACTION}DATA\r\n{}\r\n.\r\n", "x".repeat(998)).as_bytes()],
    );
    assert!(t.text().ends_with("250 2.0.0 Ok: queued as Q1\r\n"));
    // BDAT is checked the same way at LAST.
    let line = format!("{}\r\n", "x".repeat(999));
    let t = run(
        config(),
        &[format!("{TRANSACTION}BDAT {} LAST\r\n{line}NOOP\r\n", line.len()).as_bytes()],
    );
    assert!(
        t.text().ends_with(&format!("{TOO_LONG}{OK}")),
        "{}",
        t.text()
    );
}

/// RFC 3030 §2: chunks already pipelined after a failed BDAT are consumed
/// and answered, without counting as client errors.
#[test]
fn pipelined_chunks_after_a_failed_bdat_are_not_errors() {
    let config = ServerConfig {
        max_message_size: 10,
        max_errors: 2,
        ..config()
    };
    let t = run(
        config,
        &[format!("{TRANSACTION}BDAT 11\r\n01234567890BDAT 5\r\nabcdeBDAT 5\r\nabcdeBDAT 1 LAST\r\nxNOOP\r\n").as_bytes()],
    );
    let need_mail = "503 5.5.1 Need MAIL command\r\n";
    assert!(
        t.text()
            .ends_with(&format!("{TOO_BIG}{need_mail}{need_mail}{need_mail}{OK}")),
        "{}",
        t.text()
    );
    assert!(!t.closed);
}

#[test]
fn multi_megabyte_message_in_big_chunks() {
    let line = format!("{}\r\n", "0123456789abcdef".repeat(6));
    let body = line.repeat(50_000); // 4.9 MB
    let mut input = format!("{TRANSACTION}DATA\r\n").into_bytes();
    input.extend_from_slice(body.as_bytes());
    input.extend_from_slice(b".\r\nQUIT\r\n");
    let chunks: Vec<&[u8]> = input.chunks(65_536).collect();
    let t = run(config(), &chunks);
    let Some(Event::Message { data, .. }) =
        t.events.iter().find(|e| matches!(e, Event::Message { .. }))
    else {
        panic!("no message: {}", t.text())
    };
    assert_eq!(data.len(), body.len());
    assert!(data == body.as_bytes());
    assert!(t.closed);
}
