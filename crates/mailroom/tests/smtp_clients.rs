//! Real SMTP clients (Python's smtplib, swaks, curl) deliver to `mailroom
//! serve`; each stored message must be byte-exact after the trace headers.
//! Also the recipient rules every MX must get right: unknown users (550
//! 5.1.1), no relaying (550 5.7.1), postmaster@, subaddresses, case.
//!
//! swaks and curl come from Debian packages; without them (and without
//! CI=true) their tests print "SKIP" and pass.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{Env, TestDir, assert_same_bytes, crlf, require_tool, run_with_timeout};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// A message exercising transparency (lines starting with dots, a line that
/// is just a dot), a long-ish body, long lines and, when `eight_bit`, UTF-8.
fn test_message(subject: &str, eight_bit: bool) -> Vec<u8> {
    let mut text = format!(
        "From: Sender <sender@remote.test>\n\
         To: Alice <alice@example.test>\n\
         Subject: {subject}\n\
         Message-ID: <{subject}@remote.test>\n\
         Date: Thu, 27 Nov 2025 12:00:00 +0000\n\
         MIME-Version: 1.0\n"
    );
    if eight_bit {
        text.push_str("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n");
    }
    text.push_str(
        "\n\
         .a line starting with one dot\n\
         ..two dots\n\
         .\n\
         the line above is a lone dot\n\
         . dot space\n\
         \n\
         \n\
         tabs\tand  spaces  \n",
    );
    if eight_bit {
        text.push_str("Grüße aus Köln, ½ € ✓ — 日本語のテキスト\n.Ünïcödé after a dot\n");
    }
    for i in 0..1500 {
        text.push_str(&format!(
            "line {i:05}: the quick brown fox jumps over the lazy dog\n"
        ));
        if i % 100 == 0 {
            text.push('.');
            text.push_str(&"x".repeat(900));
            text.push('\n');
        }
    }
    text.push_str("-- \nlast line\n");
    crlf(&text)
}

/// Checks the one message alice got against what was sent.
fn assert_delivered_exactly(env: &Env, user: &str, sent: &[u8], from: &str, what: &str) {
    let stored = env.messages(user);
    assert_eq!(
        stored.len(),
        1,
        "{what}: {user} should have exactly one message"
    );
    stored[0].assert_well_formed();
    assert_eq!(stored[0].return_path(), from, "{what}: Return-Path");
    assert_same_bytes(stored[0].body(), sent, what);
}

// ---------------------------------------------------------------------------
// Python smtplib

const SMTPLIB_SCRIPT: &str = r#"
import smtplib, sys
host, port, sender, rcpts, path, opts = sys.argv[1:7]
rcpts = [r for r in rcpts.split(",") if r]
opts = [o for o in opts.split(",") if o]
data = open(path, "rb").read()
s = smtplib.SMTP(host, int(port), local_hostname="client.remote.test", timeout=30)
if "STARTTLS" in opts:
    import ssl
    opts.remove("STARTTLS")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s.starttls(context=ctx)
    print("TLS", s.sock.version())
try:
    refused = s.sendmail(sender, rcpts, data, mail_options=opts)
    for r, (c, m) in refused.items():
        print("REFUSED", r, c, m.decode("utf-8", "replace"))
    print("SENT")
except smtplib.SMTPRecipientsRefused as e:
    for r, (c, m) in e.recipients.items():
        print("REFUSED", r, c, m.decode("utf-8", "replace"))
    print("ALL-REFUSED")
except smtplib.SMTPResponseException as e:
    print("ERROR", e.smtp_code, e.smtp_error.decode("utf-8", "replace"))
s.quit()
"#;

/// Sends `message` with smtplib; returns its report lines
/// (`REFUSED <rcpt> <code> <text>`, `SENT`, `ALL-REFUSED`, `ERROR <code> <text>`,
/// and `TLS <version>` first when `opts` holds the pseudo-option `STARTTLS`).
fn smtplib_send(
    env: &Env,
    from: &str,
    rcpts: &[&str],
    message: &[u8],
    opts: &[&str],
) -> Vec<String> {
    let file = env
        .dir
        .write(&format!("smtplib-{}.eml", rcpts.join("_")), message);
    let addr = env.smtp();
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(SMTPLIB_SCRIPT)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(from)
        .arg(rcpts.join(","))
        .arg(&file)
        .arg(opts.join(","));
    let out = run_with_timeout(cmd, None, CLIENT_TIMEOUT);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python3 smtplib failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_string).collect()
}

#[test]
fn smtplib_delivers_byte_exact_with_8bitmime() {
    if !require_tool("python3") {
        return;
    }
    let env = Env::start("smtplib");
    let message = test_message("smtplib-8bit", true);
    let report = smtplib_send(
        &env,
        "sender@remote.test",
        &["alice@example.test"],
        &message,
        &["BODY=8BITMIME"],
    );
    assert_eq!(report, vec!["SENT".to_string()], "smtplib report");
    assert_delivered_exactly(&env, "alice", &message, "sender@remote.test", "smtplib");
    assert!(env.messages("bob").is_empty(), "bob got alice's mail");
}

#[test]
fn smtplib_starttls_delivers_byte_exact() {
    if !require_tool("python3") {
        return;
    }
    let env = Env::start("smtplib-tls");
    let message = test_message("smtplib-starttls", true);
    let report = smtplib_send(
        &env,
        "sender@remote.test",
        &["alice@example.test"],
        &message,
        &["STARTTLS", "BODY=8BITMIME"],
    );
    assert!(
        report.len() == 2 && report[0].starts_with("TLS TLSv1.") && report[1] == "SENT",
        "smtplib over STARTTLS: {report:?}"
    );
    assert_delivered_exactly(
        &env,
        "alice",
        &message,
        "sender@remote.test",
        "smtplib over TLS",
    );
}

#[test]
fn smtplib_smtputf8_sender_and_headers() {
    if !require_tool("python3") {
        return;
    }
    let env = Env::start("smtputf8");
    let message = crlf(
        "From: Jörg Müller <jörg@bücher.test>\nTo: alice@example.test\n\
         Subject: Grüße — ünïcödé subject\nContent-Type: text/plain; charset=utf-8\n\n\
         Ein Körper mit Umlauten.\n",
    );
    let report = smtplib_send(
        &env,
        "jörg@bücher.test",
        &["alice@example.test"],
        &message,
        &["SMTPUTF8", "BODY=8BITMIME"],
    );
    assert_eq!(report, vec!["SENT".to_string()], "smtplib report");
    assert_delivered_exactly(
        &env,
        "alice",
        &message,
        "jörg@bücher.test",
        "SMTPUTF8 message",
    );
}

#[test]
fn smtplib_unknown_user_is_550_5_1_1() {
    if !require_tool("python3") {
        return;
    }
    let env = Env::start("smtplib-unknown");
    let message = common::simple_message("unknown", "to nobody");
    let report = smtplib_send(
        &env,
        "sender@remote.test",
        &["nosuchuser@example.test"],
        &message,
        &[],
    );
    assert_eq!(
        report.last().map(String::as_str),
        Some("ALL-REFUSED"),
        "report: {report:?}"
    );
    assert!(
        report[0].starts_with("REFUSED nosuchuser@example.test 550 5.1.1"),
        "unknown user must get 550 5.1.1: {report:?}"
    );
    // One good and one unknown recipient: the good one still gets it.
    let report = smtplib_send(
        &env,
        "sender@remote.test",
        &["alice@example.test", "nosuchuser@example.test"],
        &message,
        &[],
    );
    assert!(
        report.len() == 2
            && report[0].starts_with("REFUSED nosuchuser@example.test 550 5.1.1")
            && report[1] == "SENT",
        "one good, one unknown recipient: {report:?}"
    );
    assert_delivered_exactly(
        &env,
        "alice",
        &message,
        "sender@remote.test",
        "partial recipients",
    );
}

#[test]
fn smtplib_relay_attempt_is_550_5_7_1() {
    if !require_tool("python3") {
        return;
    }
    let env = Env::start("smtplib-relay");
    let message = common::simple_message("relay", "please forward");
    for rcpt in [
        "victim@elsewhere.test",
        "alice@example.test.evil.test",
        "alice@sub.example.test",
    ] {
        let report = smtplib_send(&env, "sender@remote.test", &[rcpt], &message, &[]);
        assert!(
            report
                .first()
                .is_some_and(|l| l.starts_with(&format!("REFUSED {rcpt} 550 5.7.1"))),
            "relaying to {rcpt} must be refused with 550 5.7.1: {report:?}"
        );
    }
    for user in ["alice", "bob"] {
        assert!(
            env.messages(user).is_empty(),
            "{user} got a relayed message"
        );
    }
}

#[test]
fn smtplib_postmaster_goes_to_first_user() {
    if !require_tool("python3") {
        return;
    }
    let env = Env::start("postmaster");
    let rcpts = [
        "postmaster@example.test",
        "POSTMASTER@mx.example.test",
        "Postmaster@Example.Test",
    ];
    for (i, rcpt) in rcpts.iter().enumerate() {
        let message = common::simple_message(&format!("postmaster {i}"), "hello postmaster");
        let report = smtplib_send(&env, "sender@remote.test", &[rcpt], &message, &[]);
        assert_eq!(report, vec!["SENT".to_string()], "to {rcpt}");
    }
    let stored = env.messages("alice");
    assert_eq!(
        stored.len(),
        rcpts.len(),
        "alice (the first user) gets postmaster's mail"
    );
    assert!(env.messages("bob").is_empty());
}

#[test]
fn smtplib_subaddress_and_case_reach_the_user() {
    if !require_tool("python3") {
        return;
    }
    let env = Env::start("subaddress");
    let rcpts = [
        "alice+news@example.test",
        "ALICE@Example.TEST",
        "Alice+Tag.With.Dots@MX.EXAMPLE.TEST",
        "alice@mx.example.test",
        "bob+x@example.test",
    ];
    for (i, rcpt) in rcpts.iter().enumerate() {
        let message = common::simple_message(&format!("rcpt {i}"), rcpt);
        let report = smtplib_send(&env, "sender@remote.test", &[rcpt], &message, &[]);
        assert_eq!(report, vec!["SENT".to_string()], "to {rcpt}");
    }
    assert_eq!(env.messages("alice").len(), 4, "alice's variants");
    assert_eq!(env.messages("bob").len(), 1, "bob+x");
}

#[test]
fn smtplib_multi_recipient_lands_in_both() {
    if !require_tool("python3") {
        return;
    }
    let env = Env::start("multi-rcpt");
    let message = test_message("two-recipients", true);
    let report = smtplib_send(
        &env,
        "sender@remote.test",
        &["alice@example.test", "bob@example.test"],
        &message,
        &["BODY=8BITMIME"],
    );
    assert_eq!(report, vec!["SENT".to_string()]);
    assert_delivered_exactly(
        &env,
        "alice",
        &message,
        "sender@remote.test",
        "alice's copy",
    );
    assert_delivered_exactly(&env, "bob", &message, "sender@remote.test", "bob's copy");
}

// ---------------------------------------------------------------------------
// swaks

fn swaks(env: &Env, from: &str, to: &str, data: Option<&std::path::Path>) -> Output {
    let addr = env.smtp();
    let mut cmd = Command::new("swaks");
    cmd.args(["--server", &addr.to_string(), "--to", to, "--from", from])
        .args(["--helo", "client.remote.test", "--timeout", "30"]);
    if let Some(path) = data {
        cmd.arg("--data").arg(format!("@{}", path.display()));
    }
    run_with_timeout(cmd, None, CLIENT_TIMEOUT)
}

#[test]
fn swaks_delivers_byte_exact() {
    if !require_tool("swaks") {
        return;
    }
    let env = Env::start("swaks");
    let message = test_message("swaks", false);
    // swaks appends CRLF to the data it reads and then the end-of-data
    // line, so the file holds the message minus its final CRLF.
    let file = env.dir.write("swaks.eml", &message[..message.len() - 2]);
    let out = swaks(
        &env,
        "sender@remote.test",
        "alice@example.test",
        Some(&file),
    );
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "swaks failed ({}):\n{transcript}",
        out.status
    );
    assert_delivered_exactly(&env, "alice", &message, "sender@remote.test", "swaks");
}

#[test]
fn swaks_sees_550_5_1_1_and_550_5_7_1() {
    if !require_tool("swaks") {
        return;
    }
    let env = Env::start("swaks-reject");
    let out = swaks(&env, "sender@remote.test", "nosuchuser@example.test", None);
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "swaks should fail for an unknown user:\n{transcript}"
    );
    assert!(
        transcript.contains("<** 550 5.1.1"),
        "unknown user → 550 5.1.1:\n{transcript}"
    );
    let out = swaks(&env, "sender@remote.test", "someone@elsewhere.test", None);
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "swaks should fail for relaying:\n{transcript}"
    );
    assert!(
        transcript.contains("<** 550 5.7.1"),
        "relay → 550 5.7.1:\n{transcript}"
    );
    assert!(env.messages("alice").is_empty());
}

#[test]
fn swaks_default_message_to_postmaster() {
    if !require_tool("swaks") {
        return;
    }
    let env = Env::start("swaks-postmaster");
    let out = swaks(&env, "sender@remote.test", "postmaster@example.test", None);
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "swaks failed:\n{transcript}");
    let stored = env.messages("alice");
    assert_eq!(stored.len(), 1);
    stored[0].assert_well_formed();
    assert!(common::contains(stored[0].body(), b"X-Mailer: swaks"));
}

// ---------------------------------------------------------------------------
// curl

fn curl(env: &Env, from: &str, rcpts: &[&str], file: &std::path::Path) -> Output {
    let addr = env.smtp();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-v", "--max-time", "60"])
        .arg(format!("smtp://{addr}/client.remote.test"))
        .args(["--mail-from", from]);
    for rcpt in rcpts {
        cmd.args(["--mail-rcpt", rcpt]);
    }
    cmd.arg("--upload-file").arg(file);
    run_with_timeout(cmd, None, CLIENT_TIMEOUT)
}

#[test]
fn curl_delivers_byte_exact() {
    if !require_tool("curl") {
        return;
    }
    let env = Env::start("curl");
    let message = test_message("curl", false);
    let file = env.dir.write("curl.eml", &message);
    let out = curl(
        &env,
        "sender@remote.test",
        &["alice@example.test", "bob@example.test"],
        &file,
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "curl failed ({}):\n{log}", out.status);
    // curl declares SIZE= when the server offers SIZE: it must be accepted.
    assert!(
        log.contains("SIZE="),
        "curl did not send SIZE= (no SIZE in EHLO?):\n{log}"
    );
    assert_delivered_exactly(
        &env,
        "alice",
        &message,
        "sender@remote.test",
        "curl (alice)",
    );
    assert_delivered_exactly(&env, "bob", &message, "sender@remote.test", "curl (bob)");
}

#[test]
fn curl_sees_550_5_1_1() {
    if !require_tool("curl") {
        return;
    }
    let env = Env::start("curl-unknown");
    let dir = TestDir::new("curl-unknown-msg");
    let file = dir.write("m.eml", &common::simple_message("curl-unknown", "nobody"));
    let out = curl(
        &env,
        "sender@remote.test",
        &["nosuchuser@example.test"],
        &file,
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "curl should fail for an unknown user:\n{log}"
    );
    assert!(
        log.contains("< 550 5.1.1"),
        "unknown user → 550 5.1.1:\n{log}"
    );
    assert!(env.messages("alice").is_empty());
}
