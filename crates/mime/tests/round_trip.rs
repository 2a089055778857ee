//! compose → describe/attachments (and mail-parser, and Python's email
//! package) gives back what went in.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use mail_parser::MessageParser;
use mailroom_mime::{Draft, MimeError, attachments, compose, describe};
use proptest::prelude::*;

const SUBJECT: &str = "Grüße — 日本語 ✓";

fn binary() -> Vec<u8> {
    // Every octet value, then the line-end troublemakers in odd places.
    let mut data: Vec<u8> = (0..=255).collect();
    data.extend_from_slice(b"\0\r\n\r\r\n\n\0\x80\xff=\r\n.\r\nFrom x\r\n");
    data
}

fn draft() -> Draft {
    Draft {
        from: "Jürgen Müller <juergen@example.org>".to_owned(),
        to: vec![
            "bob@example.net".to_owned(),
            "\"Doe, Jane\" <jane@example.net>".to_owned(),
        ],
        cc: vec!["Zoë <zoe@example.net>".to_owned()],
        bcc: vec!["secret@example.net".to_owned()],
        subject: SUBJECT.to_owned(),
        body: "Hallo,\nanbei die Datei.\n\nGrüße\n".to_owned(),
        attachments: vec![
            ("blob.bin".to_owned(), binary()),
            ("notes.txt".to_owned(), b"plain\nlines\n".to_vec()),
        ],
        date: 1_776_160_800, // Tue, 14 Apr 2026 10:00:00 +0000
        message_id: "<20260414.abc@example.org>".to_owned(),
    }
}

#[test]
fn draft_round_trips() {
    let draft = draft();
    let raw = compose(&draft).unwrap();
    assert_lines_ok(&raw);
    let text = String::from_utf8(raw.clone()).unwrap();
    assert!(text.is_ascii(), "composed message is not 7-bit:\n{text}");
    assert!(!text.contains("secret@"), "Bcc leaked into the message");
    assert!(text.starts_with(
        "Date: Tue, 14 Apr 2026 10:00:00 +0000\r\n\
         Message-ID: <20260414.abc@example.org>\r\n"
    ));
    assert!(text.contains("\r\nMIME-Version: 1.0\r\n"));

    let summary = describe(&raw).unwrap();
    let header = |name: &str| {
        summary
            .headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.value.clone())
            .unwrap()
    };
    assert_eq!(header("Subject"), SUBJECT);
    assert_eq!(header("From"), "Jürgen Müller <juergen@example.org>");
    assert_eq!(header("Cc"), "Zoë <zoe@example.net>");
    let types: Vec<&str> = summary
        .parts
        .iter()
        .map(|p| p.content_type.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "multipart/mixed",
            "text/plain",
            "application/octet-stream",
            "text/plain"
        ]
    );
    assert_eq!(
        summary.parts[1].transfer_encoding.as_deref(),
        Some("quoted-printable")
    );
    assert_eq!(
        summary.parts[2].transfer_encoding.as_deref(),
        Some("base64")
    );
    assert_eq!(
        summary.parts[3].transfer_encoding.as_deref(),
        Some("base64")
    );

    let found = attachments(&raw).unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].filename, "blob.bin");
    assert_eq!(found[0].content_type, "application/octet-stream");
    assert_eq!(found[0].data, binary());
    assert_eq!(found[1].filename, "notes.txt");
    assert_eq!(found[1].data, b"plain\nlines\n");

    let parsed = MessageParser::new().parse(&raw).unwrap();
    assert_eq!(parsed.subject(), Some(SUBJECT));
    assert_eq!(
        parsed.body_text(0).unwrap(),
        "Hallo,\r\nanbei die Datei.\r\n\r\nGrüße\r\n"
    );
    let to: Vec<_> = parsed.to().unwrap().iter().collect();
    assert_eq!(to[1].name(), Some("Doe, Jane"));
    assert_eq!(to[1].address(), Some("jane@example.net"));
}

#[test]
fn same_draft_same_bytes() {
    assert_eq!(compose(&draft()).unwrap(), compose(&draft()).unwrap());
}

#[test]
fn ascii_body_is_7bit_and_single_part_without_attachments() {
    let draft = Draft {
        from: "a@example.org".to_owned(),
        to: vec!["b@example.org".to_owned()],
        subject: "hello".to_owned(),
        body: "short\r\nlines\rof ascii".to_owned(),
        message_id: "x@y".to_owned(),
        ..Draft::default()
    };
    let raw = compose(&draft).unwrap();
    assert_lines_ok(&raw);
    let text = String::from_utf8(raw.clone()).unwrap();
    assert!(
        text.contains("Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 7bit\r\n\r\nshort\r\nlines\r\nof ascii\r\n"),
        "{text}"
    );
    assert!(text.contains("Message-ID: <x@y>\r\n"));
    let summary = describe(&raw).unwrap();
    assert_eq!(summary.parts.len(), 1);
}

#[test]
fn long_line_goes_quoted_printable() {
    let draft = Draft {
        from: "a@example.org".to_owned(),
        to: vec!["b@example.org".to_owned()],
        body: "x".repeat(5000),
        message_id: "x@y".to_owned(),
        ..Draft::default()
    };
    let raw = compose(&draft).unwrap();
    assert_lines_ok(&raw);
    let parsed = MessageParser::new().parse(&raw).unwrap();
    assert_eq!(
        parsed.body_text(0).unwrap(),
        format!("{}\r\n", "x".repeat(5000))
    );
    let summary = describe(&raw).unwrap();
    assert_eq!(
        summary.parts[0].transfer_encoding.as_deref(),
        Some("quoted-printable")
    );
}

#[test]
fn control_characters_in_body_go_base64() {
    let body = "nul \0 esc \x1b bell \x07 end\n";
    let draft = Draft {
        from: "a@example.org".to_owned(),
        to: vec!["b@example.org".to_owned()],
        body: body.to_owned(),
        message_id: "x@y".to_owned(),
        ..Draft::default()
    };
    let raw = compose(&draft).unwrap();
    let summary = describe(&raw).unwrap();
    assert_eq!(
        summary.parts[0].transfer_encoding.as_deref(),
        Some("base64")
    );
    let parsed = MessageParser::new().parse(&raw).unwrap();
    assert_eq!(
        parsed.body_text(0).unwrap(),
        "nul \0 esc \x1b bell \x07 end\r\n"
    );
}

#[test]
fn bcc_only_gets_undisclosed_recipients() {
    let draft = Draft {
        from: "a@example.org".to_owned(),
        bcc: vec!["hidden@example.org".to_owned()],
        message_id: "x@y".to_owned(),
        ..Draft::default()
    };
    let text = String::from_utf8(compose(&draft).unwrap()).unwrap();
    assert!(
        text.contains("\r\nTo: undisclosed-recipients:;\r\n"),
        "{text}"
    );
    assert!(!text.contains("hidden@"));
}

#[test]
fn eml_attachment_is_message_rfc822_when_canonical() {
    let inner = b"From: x@example.org\r\nSubject: inner\r\n\r\nhello\r\n".to_vec();
    let mut draft = draft();
    draft.attachments = vec![
        ("fwd.eml".to_owned(), inner.clone()),
        ("lf.eml".to_owned(), b"Subject: lf only\n\nbody\n".to_vec()),
    ];
    let raw = compose(&draft).unwrap();
    assert_lines_ok(&raw);
    let summary = describe(&raw).unwrap();
    let types: Vec<&str> = summary
        .parts
        .iter()
        .map(|p| p.content_type.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "multipart/mixed",
            "text/plain",
            "message/rfc822",
            "text/plain",
            "application/octet-stream"
        ]
    );
    let found = attachments(&raw).unwrap();
    assert_eq!(found[0].filename, "fwd.eml");
    assert_eq!(found[0].data, inner);
    assert_eq!(found[1].filename, "lf.eml");
    assert_eq!(found[1].data, b"Subject: lf only\n\nbody\n");
}

#[test]
fn boundary_avoids_the_body() {
    // The boundary derived from this draft, placed in the 7bit body.
    let mut draft = draft();
    draft.body = "ascii only\n".to_owned();
    let raw = compose(&draft).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let boundary = text
        .split("boundary=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    draft.body = format!("--{boundary}\nContent-Type: text/html\n\nspoofed\n--{boundary}--\n");
    let raw = compose(&draft).unwrap();
    let text = String::from_utf8(raw.clone()).unwrap();
    assert!(
        !text.contains(&format!("boundary=\"{boundary}\"")),
        "{text}"
    );
    let summary = describe(&raw).unwrap();
    assert_eq!(summary.parts.len(), 4);
    let found = attachments(&raw).unwrap();
    assert_eq!(found[0].data, binary());
}

#[test]
fn hostile_attachment_names_are_reduced() {
    let mut draft = draft();
    draft.attachments = vec![
        ("../../etc/passwd".to_owned(), b"x".to_vec()),
        ("C:\\Users\\me\\report.PDF".to_owned(), b"y".to_vec()),
        ("..".to_owned(), b"z".to_vec()),
        (
            "Jahresabschluß, 2024 (final).xlsx".to_owned(),
            b"w".to_vec(),
        ),
    ];
    let raw = compose(&draft).unwrap();
    assert_lines_ok(&raw);
    let found = attachments(&raw).unwrap();
    let names: Vec<(&str, &str)> = found
        .iter()
        .map(|a| (a.filename.as_str(), a.content_type.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("passwd", "application/octet-stream"),
            ("report.PDF", "application/pdf"),
            ("attachment", "application/octet-stream"),
            (
                "Jahresabschluß, 2024 (final).xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            ),
        ]
    );
}

#[test]
fn invalid_drafts_are_refused() {
    let cases: Vec<(Draft, MimeError)> = vec![
        (
            Draft {
                subject: "line\r\nBcc: injected@example.org".to_owned(),
                ..draft()
            },
            MimeError::ControlCharacterInHeader("Subject"),
        ),
        (
            Draft {
                from: "not an address".to_owned(),
                ..draft()
            },
            MimeError::InvalidAddress {
                field: "From",
                value: "not an address".to_owned(),
            },
        ),
        (
            Draft {
                to: vec!["Bob <bob@example.net".to_owned()],
                ..draft()
            },
            MimeError::InvalidAddress {
                field: "To",
                value: "Bob <bob@example.net".to_owned(),
            },
        ),
        (
            Draft {
                cc: vec!["Evil\n <x@example.net>".to_owned()],
                ..draft()
            },
            MimeError::ControlCharacterInHeader("Cc"),
        ),
        (
            Draft {
                bcc: vec!["jörg@example.net".to_owned()],
                ..draft()
            },
            MimeError::InvalidAddress {
                field: "Bcc",
                value: "jörg@example.net".to_owned(),
            },
        ),
        (
            Draft {
                message_id: "<no-at-sign>".to_owned(),
                ..draft()
            },
            MimeError::InvalidMessageId("<no-at-sign>".to_owned()),
        ),
        (
            Draft {
                message_id: "<a b@c>".to_owned(),
                ..draft()
            },
            MimeError::InvalidMessageId("<a b@c>".to_owned()),
        ),
    ];
    for (draft, expected) in cases {
        assert_eq!(compose(&draft), Err(expected), "{draft:?}");
    }
}

#[test]
fn overlong_unfoldable_header_is_an_error_not_a_bad_message() {
    // Addresses are at most 64 + 1 + 255 octets, so the candidates for an
    // unfoldable line are a long word in the display name or subject.
    let draft = Draft {
        from: format!("{} <a@example.org>", "x".repeat(2000)),
        to: vec!["b@example.org".to_owned()],
        subject: "y".repeat(2000),
        message_id: "x@y".to_owned(),
        ..Draft::default()
    };
    match compose(&draft) {
        Err(MimeError::LineTooLong { .. }) => {}
        Ok(raw) => {
            assert_lines_ok(&raw);
            let summary = describe(&raw).unwrap();
            let subject = summary
                .headers
                .iter()
                .find(|h| h.name == "Subject")
                .unwrap();
            assert_eq!(subject.value, "y".repeat(2000));
        }
        Err(other) => panic!("unexpected {other:?}"),
    }
}

/// Python's email package reads the composed message the same way.
#[test]
fn python_reads_the_composed_message() {
    let raw = compose(&draft()).unwrap();
    let dir = std::env::temp_dir().join(format!("mailroom-mime-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("composed.eml");
    std::fs::write(&path, &raw).unwrap();
    let script = r#"
import email, email.policy, hashlib, sys
m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)
print(m['subject'])
print(m.get_body(('plain',)).get_content(), end='')
for part in m.iter_attachments():
    print(part.get_filename(), hashlib.sha256(part.get_payload(decode=True)).hexdigest())
print(m.defects, [p.defects for p in m.walk()])
"#;
    let output = match Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
    {
        Ok(output) => output,
        Err(error) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("python3 did not start: {error}");
            }
            println!("SKIP: python3 did not start: {error}");
            return;
        }
    };
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let expected = format!(
        "{SUBJECT}\nHallo,\r\nanbei die Datei.\r\n\r\nGrüße\r\nblob.bin {}\nnotes.txt {}\n[] [[], [], [], []]\n",
        sha256_hex(&binary()),
        sha256_hex(b"plain\nlines\n"),
    );
    assert_eq!(stdout, expected);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_draft_round_trips(
        subject in "\\PC{0,120}",
        body in "(\\PC|[\\r\\n\\t])*",
        name in "\\PC{0,40}",
        data in proptest::collection::vec(any::<u8>(), 0..3000),
    ) {
        let draft = Draft {
            from: "a@example.org".to_owned(),
            to: vec!["b@example.org".to_owned()],
            subject: subject.clone(),
            body: body.clone(),
            attachments: vec![(name.clone(), data.clone())],
            message_id: "<p@example.org>".to_owned(),
            ..Draft::default()
        };
        let raw = compose(&draft).unwrap();
        assert_lines_ok(&raw);

        let summary = describe(&raw).unwrap();
        let decoded = summary.headers.iter().find(|h| h.name == "Subject").unwrap();
        // The unstructured parser folds runs of white space into one.
        prop_assert_eq!(squash(&decoded.value), squash(&subject));

        let found = attachments(&raw).unwrap();
        prop_assert_eq!(found.len(), 1);
        prop_assert_eq!(&found[0].data, &data);
        let saved = &found[0].filename;
        prop_assert!(!saved.is_empty() && !saved.starts_with('.'));
        prop_assert!(!saved.contains(['/', '\\']) && !saved.chars().any(char::is_control));
        if name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        {
            prop_assert_eq!(saved, &name);
        }

        let parsed = MessageParser::new().parse(&raw).unwrap();
        prop_assert_eq!(parsed.body_text(0).unwrap_or_default(), crlf_lines(&body));
    }
}

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What compose does to the body: CRLF line ends, a final CRLF.
fn crlf_lines(text: &str) -> String {
    let normalized = text
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', "\r\n");
    if normalized.is_empty() || normalized.ends_with("\r\n") {
        normalized
    } else {
        normalized + "\r\n"
    }
}

/// RFC 5322 §2.1.1, §2.3: CRLF line ends only, at most 998 octets a line.
fn assert_lines_ok(raw: &[u8]) {
    assert!(raw.ends_with(b"\r\n"), "message does not end with CRLF");
    for (n, line) in raw.split(|&b| b == b'\n').enumerate() {
        if n + 1 == raw.split(|&b| b == b'\n').count() {
            assert!(line.is_empty());
            continue;
        }
        let content = line
            .strip_suffix(b"\r")
            .unwrap_or_else(|| panic!("bare LF on line {}", n + 1));
        assert!(!content.contains(&b'\r'), "bare CR on line {}", n + 1);
        assert!(
            content.len() <= 998,
            "line {} has {} octets",
            n + 1,
            content.len()
        );
    }
}

fn sha256_hex(data: &[u8]) -> String {
    // Ask Python too: no hashing crate just for a test.
    let output = Command::new("python3")
        .arg("-c")
        .arg("import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(data)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}
