//! Real mail over the wire (issue 6): every message of CPython's email test
//! data (Debian package libpython3.11-testsuite) and every .eml file the
//! mail-parser crate ships goes in over SMTP and comes out over POP3
//! (Python's poplib), byte for byte apart from the two trace fields
//! mailroom prepends (Return-Path, Received); `mailroom show` parses each
//! retrieved message (exit 0).
//!
//! How the files travel. SMTP carries lines ending in CRLF (RFC 5321
//! §2.3.8), so each file is sent with its line ends normalised: LF and
//! CRLF become CRLF, and a file that does not end in a line end gets one.
//! Nothing else changes. Lines starting with "." are dot-stuffed on the
//! wire (§4.5.2) and unstuffed by the server. Files with 8-bit octets go
//! with `MAIL FROM:<…> BODY=8BITMIME` (RFC 6152); the others are 7bit.
//! Two kinds of files cannot travel as they are: a bare CR (not part of a
//! CRLF; SMTP forbids it and normalising it would change the message) and
//! a NUL octet (RFC 2045 §2.7/§2.8: neither 7bit nor 8bit data may hold
//! NUL, and BINARYMIME is not offered). Those are listed in `REFUSED` with
//! the reason; mailroom must refuse them with 554 5.6.0. The test fails
//! when a listed file goes through or an unlisted one does not. A line
//! longer than 998 octets (RFC 5321 §4.5.3.1.6) would also be refused; no
//! file of these corpora has one, which the test checks.
//!
//! The MIME-tree comparison with Python's email package on the same files
//! is crates/mime/tests/corpus.rs.
//!
//! A missing corpus or python3 prints SKIP, and fails when `CI=true`.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    Env, PASSWORD, assert_same_bytes, dot_stuff, in_ci, python, require_tool, run_with_timeout,
    split_trace,
};
use mailroom_testkit::corpus;

/// Files SMTP cannot carry as they are, with why.
const REFUSED: &[(&str, &str)] = &[
    (
        "mail-parser/legacy/049.eml",
        "bare CR inside a line (RFC 5321 §2.3.8)",
    ),
    (
        "mail-parser/thirdparty/005.eml",
        "NUL octet (RFC 2045 §2.7/§2.8)",
    ),
];

/// The longest line SMTP allows, without its CRLF (RFC 5321 §4.5.3.1.6).
const MAX_LINE: usize = 998;

fn skip(reason: &str) {
    assert!(!in_ci(), "corpus test cannot run under CI: {reason}");
    println!("SKIP: {reason}");
}

/// Every file of both corpora (SKIP for a missing one), by corpus name.
fn corpus_files() -> BTreeMap<String, PathBuf> {
    let mut files = Vec::new();
    match corpus::python_email_messages() {
        Some(found) => files.extend(found),
        None => skip(&format!(
            "{} missing (apt-get install libpython3.11-testsuite)",
            corpus::PYTHON_EMAIL_DATA
        )),
    }
    match corpus::mail_parser_messages() {
        Some(found) => files.extend(found),
        None => skip("mail-parser-0.11.9/resources not found in the cargo registry"),
    }
    files
        .into_iter()
        .map(|p| (corpus::corpus_name(&p).unwrap(), p))
        .collect()
}

/// LF and CRLF line ends as CRLF, a final CRLF added when missing; a CR
/// that is not followed by LF stays what it is.
fn normalise(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 16 + 2);
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// What the file needs from SMTP, for the report.
#[derive(Default, Debug)]
struct Traits {
    lf_only: bool,
    mixed: bool,
    no_final_eol: bool,
    bare_cr: bool,
    eight_bit: bool,
    nul: bool,
    longest_line: usize,
}

fn traits(raw: &[u8]) -> Traits {
    let crlf = raw.windows(2).filter(|w| w == b"\r\n").count();
    let lf = raw.iter().filter(|&&b| b == b'\n').count();
    let normalised = normalise(raw);
    Traits {
        lf_only: crlf == 0 && lf > 0,
        mixed: crlf > 0 && lf > crlf,
        no_final_eol: !raw.ends_with(b"\n"),
        bare_cr: raw
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'\r' && raw.get(i + 1) != Some(&b'\n')),
        eight_bit: raw.iter().any(|&b| b >= 0x80),
        nul: raw.contains(&0),
        longest_line: normalised
            .split(|&b| b == b'\n')
            .map(|l| l.len().saturating_sub(1))
            .max()
            .unwrap_or(0),
    }
}

/// Retrieves every message of `user` with poplib (USER/PASS on loopback),
/// writing message N to `out/N`; prints the count.
const POPLIB_RETR: &str = r#"
import sys, poplib
poplib._MAXLINE = 1 << 20
port, user, pw, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
p = poplib.POP3("127.0.0.1", port, timeout=30)
p.user(user)
p.pass_(pw)
n, _ = p.stat()
for i in range(1, n + 1):
    resp, lines, octets = p.retr(i)
    data = b"\r\n".join(lines) + b"\r\n"
    assert len(data) == octets, (i, len(data), octets)
    open(f"{out}/{i}", "wb").write(data)
p.quit()
print(f"count={n}")
"#;

#[test]
fn corpus_goes_in_over_smtp_and_out_over_pop3_byte_exact() {
    let files = corpus_files();
    if files.is_empty() || !require_tool("python3") {
        return;
    }
    let env = Env::start("corpus-wire");

    // 1. SMTP in: one session, one transaction per file; the envelope
    //    sender names the file (it comes back as Return-Path).
    let mut sent: BTreeMap<String, (String, Vec<u8>)> = BTreeMap::new();
    let mut unexpected = Vec::new();
    let mut table = Vec::new();
    let mut smtp = env.connect();
    let keywords = smtp.ehlo("corpus.test");
    assert!(keywords.iter().any(|k| k == "8BITMIME"));
    for (n, (name, path)) in files.iter().enumerate() {
        let raw = std::fs::read(path).unwrap();
        let t = traits(&raw);
        assert!(
            t.longest_line <= MAX_LINE,
            "{name}: a line of {} octets; add it to REFUSED with a check for 500 5.5.6",
            t.longest_line
        );
        let message = normalise(&raw);
        let from = format!("corpus-{n}@remote.test");
        let body = if t.eight_bit { " BODY=8BITMIME" } else { "" };
        smtp.ok(&format!("MAIL FROM:<{from}>{body}"), 250);
        smtp.ok("RCPT TO:<alice@example.test>", 250);
        smtp.ok("DATA", 354);
        smtp.send(&dot_stuff(&message));
        let reply = smtp.read_reply();
        let listed = REFUSED.iter().find(|(file, _)| file == name);
        let notes: Vec<&str> = [
            (t.lf_only, "LF"),
            (!t.lf_only && !t.mixed, "CRLF"),
            (t.mixed, "mixed CRLF/LF"),
            (t.no_final_eol, "no final line end"),
            (t.eight_bit, "8BITMIME"),
            (t.bare_cr, "bare CR"),
            (t.nul, "NUL"),
        ]
        .iter()
        .filter_map(|(on, note)| on.then_some(*note))
        .collect();
        table.push(format!("{name}: {} → {}", notes.join(", "), reply.code));
        match (listed, reply.code) {
            (None, 250) => {
                sent.insert(from, (name.clone(), message));
            }
            (Some(_), 554) if reply.enhanced() == Some("5.6.0") => {}
            (Some((_, why)), _) => unexpected.push(format!(
                "{name} is listed as refused ({why}) but got: {reply}"
            )),
            (None, _) => unexpected.push(format!("{name} was refused: {reply}")),
        }
    }
    smtp.quit();
    println!("{}", table.join("\n"));
    assert!(
        unexpected.is_empty(),
        "SMTP outcomes differ from REFUSED:\n{}",
        unexpected.join("\n")
    );
    assert_eq!(sent.len() + REFUSED.len(), files.len());

    // 2. POP3 out: poplib RETRs everything.
    let out_dir = env.dir.path().join("retrieved");
    std::fs::create_dir_all(&out_dir).unwrap();
    let report = python(
        POPLIB_RETR,
        &[
            env.server.pop3().port().to_string(),
            "alice".into(),
            PASSWORD.into(),
            out_dir.display().to_string(),
        ],
    );
    assert!(
        report.contains(&format!("count={}", sent.len())),
        "poplib saw a different number of messages than were accepted ({}):\n{report}",
        sent.len()
    );

    // 3. Each retrieved message is the sent one after Return-Path and
    //    Received, and `mailroom show` parses it.
    let mut seen = BTreeMap::new();
    for i in 1..=sent.len() {
        let path = out_dir.join(i.to_string());
        let retrieved = std::fs::read(&path).unwrap();
        let trace = split_trace(&retrieved).unwrap_or_else(|| {
            panic!(
                "RETR {i}: no Return-Path + Received at the top:\n{}",
                common::show(&retrieved)
            )
        });
        let from = trace
            .return_path
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string();
        let Some((name, message)) = sent.get(&from) else {
            panic!("RETR {i}: Return-Path <{from}> names no message sent")
        };
        assert!(
            seen.insert(from.clone(), i).is_none(),
            "{name} retrieved twice"
        );
        assert_same_bytes(trace.rest, message, name);
        assert_shows(&path, name);
    }
    assert_eq!(seen.len(), sent.len());
    println!(
        "corpus over the wire: {} files sent, {} byte-exact over POP3 and parsed by show, {} refused as listed",
        files.len(),
        seen.len(),
        REFUSED.len()
    );
}

fn assert_shows(path: &Path, name: &str) {
    let mut cmd = Command::new(common::bin());
    cmd.arg("show").arg(path);
    let out = run_with_timeout(cmd, None, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "{name}: mailroom show failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.stdout.is_empty(),
        "{name}: mailroom show printed nothing"
    );
}
