//! The user-agent tools end to end (issue 6): `mailroom send` composes a
//! message with a binary attachment, a non-ASCII subject and a non-ASCII
//! text body and submits it to a running `mailroom serve` (submission port,
//! STARTTLS + AUTH PLAIN); `mailroom fetch` downloads it over POP3 (STLS)
//! into a Maildir; `mailroom show --extract` decodes it. The attachment
//! must come back byte for byte, the subject and the body as written.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{
    Env, PASSWORD, ServerOptions, assert_same_bytes, bin, contains, python, require_tool,
    run_with_timeout, show, split_trace, wait_for,
};
use rand::{Rng, SeedableRng, rngs::StdRng};

const SUBJECT: &str = "Grüße — 日本語 ✓";
/// Lines a QP encoder must handle: 8-bit text, a leading dot, a lone dot,
/// trailing spaces, a line far over 76 characters.
const BODY: &str = "Grüße aus Köln, ça va?\n\
    日本語のテキストです。\n\
    .a line starting with a dot\n\
    .\n\
    trailing spaces   \n\
    Ein sehr langer Satz über Äpfel, Öl und Übermut, der weit über sechsundsiebzig Zeichen hinausgeht, damit er umbrochen wird.\n\
    ✓ done\n";
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// A few hundred KB of random bytes, seeded (failures reproduce), with the
/// octets and sequences a lossy path would break: NUL, 0xFF, CR, LF,
/// CRLF.CRLF, a UTF-8 BOM, a run of zeros.
fn binary_attachment() -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(0x7573_6572_6167_656e);
    let mut data: Vec<u8> = (0..300_000).map(|_| rng.random()).collect();
    data[0] = 0;
    data[1] = 0xFF;
    data[1000..1005].copy_from_slice(b"\r\n.\r\n");
    data[2000] = b'\r';
    data[3000] = b'\n';
    data[4000..4003].copy_from_slice(&[0xEF, 0xBB, 0xBF]);
    data[5000..5100].fill(0);
    let last = data.len() - 1;
    data[last] = 0xFF;
    data
}

fn run(args: &[&std::ffi::OsStr], stdin: &str) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("MAILROOM_PASSWORD")
        .env_remove("MAILROOM_DATA_DIR");
    run_with_timeout(cmd, Some(stdin.as_bytes()), COMMAND_TIMEOUT)
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The message files in a Maildir's new/ and cur/.
fn maildir_files(maildir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(entries) = std::fs::read_dir(maildir.join(sub)) {
            files.extend(entries.flatten().map(|e| e.path()));
        }
    }
    files.sort();
    files
}

/// The text/plain body of `message` as Python's email package decodes it
/// (transfer encoding and charset undone).
fn python_text_body(message: &Path) -> String {
    let script = "import sys, email, email.policy\n\
                  m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)\n\
                  sys.stdout.buffer.write(m.get_body(('plain',)).get_content().encode('utf-8'))\n";
    python(script, &[message.display().to_string()])
}

#[test]
fn send_fetch_show_round_trip_keeps_attachment_subject_and_body() {
    let env = Env::with(
        "ua-round-trip",
        ServerOptions {
            listeners: vec!["submission", "pop3"],
            ..ServerOptions::default()
        },
    );
    let attachment = binary_attachment();
    let attachment_path = env.dir.write("payload.bin", &attachment);
    let submission = env.server.addr("submission").to_string();
    let pop3 = env.server.pop3().to_string();

    // 1. send: alice → bob over submission (STARTTLS is taken when offered,
    //    AUTH PLAIN as alice; the self-signed certificate is not verified).
    let out = run(
        &[
            "send".as_ref(),
            "--from".as_ref(),
            "alice@example.test".as_ref(),
            "--to".as_ref(),
            "bob@example.test".as_ref(),
            "--subject".as_ref(),
            SUBJECT.as_ref(),
            "--attach".as_ref(),
            attachment_path.as_os_str(),
            "--server".as_ref(),
            submission.as_ref(),
            "--user".as_ref(),
            "alice".as_ref(),
            "--password-stdin".as_ref(),
            "--insecure".as_ref(),
        ],
        &format!("{PASSWORD}\n{BODY}"),
    );
    assert_ok(&out, "mailroom send");
    assert!(
        wait_for(Duration::from_secs(30), || env.messages("bob").len() == 1),
        "bob never got the message; server log:\n{}",
        env.server.stderr()
    );
    let stored = &env.messages("bob")[0];
    stored.assert_well_formed();
    assert_eq!(stored.return_path(), "alice@example.test");
    // RFC 3848: ESMTPSA = ESMTP over TLS, authenticated.
    let trace = split_trace(&stored.bytes).unwrap();
    assert!(
        trace.received.contains("ESMTPSA"),
        "the submission did not use STARTTLS + AUTH: {}",
        trace.received
    );
    // The subject went out as RFC 2047 encoded words: the header block is
    // ASCII, and the raw UTF-8 subject is nowhere in it.
    let header_end = common::find(stored.body(), b"\r\n\r\n").unwrap();
    let headers = &stored.body()[..header_end];
    assert!(
        headers.is_ascii(),
        "non-ASCII octets in the headers:\n{}",
        show(headers)
    );
    assert!(
        contains(headers, b"=?utf-8?") || contains(headers, b"=?UTF-8?"),
        "no encoded words in the headers:\n{}",
        show(headers)
    );

    // 2. fetch: bob's maildrop over POP3 with STLS required.
    let maildir = env.dir.path().join("Maildir");
    let out = run(
        &[
            "fetch".as_ref(),
            "--server".as_ref(),
            pop3.as_ref(),
            "--user".as_ref(),
            "bob".as_ref(),
            "--password-stdin".as_ref(),
            "--maildir".as_ref(),
            maildir.as_os_str(),
            "--starttls".as_ref(),
            "--insecure".as_ref(),
        ],
        &format!("{PASSWORD}\n"),
    );
    assert_ok(&out, "mailroom fetch");
    let fetched = maildir_files(&maildir);
    assert_eq!(fetched.len(), 1, "fetched files: {fetched:?}");
    let fetched_bytes = std::fs::read(&fetched[0]).unwrap();
    assert_same_bytes(&fetched_bytes, &stored.bytes, "fetched vs stored");
    assert!(
        wait_for(Duration::from_secs(10), || env.messages("bob").is_empty()),
        "fetch without --keep must delete the message on the server"
    );

    // 3. show --extract: decoded headers, the MIME tree, the attachment.
    let extract = env.dir.path().join("extracted");
    let out = run(
        &[
            "show".as_ref(),
            fetched[0].as_os_str(),
            "--extract".as_ref(),
            extract.as_os_str(),
        ],
        "",
    );
    assert_ok(&out, "mailroom show --extract");
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(
        printed.lines().any(|l| l == format!("Subject: {SUBJECT}")),
        "show did not print the decoded subject {SUBJECT:?}:\n{printed}"
    );
    assert!(
        printed.contains("payload.bin"),
        "the MIME tree does not name the attachment:\n{printed}"
    );
    let extracted: Vec<_> = std::fs::read_dir(&extract)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(extracted, vec!["payload.bin".to_string()]);
    let got = std::fs::read(extract.join("payload.bin")).unwrap();
    assert!(
        got == attachment,
        "extracted attachment differs: {} octets, sent {}; first difference at {:?}",
        got.len(),
        attachment.len(),
        got.iter().zip(&attachment).position(|(a, b)| a != b)
    );

    // 4. The text body, decoded by an independent parser, is what was typed.
    if require_tool("python3") {
        // In the message, text lines end in CRLF (RFC 2046 §4.1.1).
        assert_eq!(python_text_body(&fetched[0]), BODY.replace('\n', "\r\n"));
    }
}
