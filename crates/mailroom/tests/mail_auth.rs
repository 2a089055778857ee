#![allow(clippy::unwrap_used)]
//! Mail authentication end to end (issue 9): instance A signs what it
//! relays (DKIM, a key from `mailroom dkim generate`), instance B verifies
//! SPF, DKIM and DMARC against the in-process DNS server and records the
//! verdicts in `Authentication-Results`; a changed body fails DKIM; a
//! `p=reject` domain's failing mail is refused at DATA; a DNS time-out
//! gives 4xx, not a verdict. Python's dkimpy checks the signature on its own.

mod common;

use std::time::Duration;

use common::*;
use mailroom_testkit::dns::{DnsServer, Zone};

const DELIVERY: Duration = Duration::from_secs(30);

/// B's config: loopback clients are checked (the default exempts them).
const VERIFYING: &str = "[mail_auth]\nexempt_networks = []\n";

/// The value of the DKIM TXT record in `dkim generate`'s output: the
/// quoted strings of the `SELECTOR._domainkey.DOMAIN.` line, joined.
fn dkim_record(output: &str, selector: &str, domain: &str) -> String {
    let prefix = format!("{selector}._domainkey.{domain}. IN TXT ");
    let line = output
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} line in:\n{output}"));
    line[prefix.len()..]
        .split('"')
        .skip(1)
        .step_by(2)
        .collect::<String>()
}

/// A verifying instance B (local domain b.test) asking `dns`.
fn start_b(tag: &str, dns: &DnsServer) -> Env {
    Env::with(
        tag,
        ServerOptions {
            extra_args: vec![
                "--domain".into(),
                "b.test".into(),
                "--dns".into(),
                dns.addr().to_string(),
            ],
            ..ServerOptions::default()
        }
        .config(VERIFYING),
    )
}

/// The `Authentication-Results` field at the top of what follows B's
/// `Return-Path` and `Received`.
fn results_field(message: &StoredMessage) -> String {
    let rest = message.body();
    let text = String::from_utf8_lossy(rest);
    assert!(
        text.starts_with("Authentication-Results: mx.example.test;"),
        "B's Authentication-Results must follow its Received:\n{}",
        show(&message.bytes)
    );
    let unfolded: Vec<&str> = text.lines().collect();
    let mut field = unfolded[0].to_string();
    for line in &unfolded[1..] {
        if line.starts_with('\t') || line.starts_with(' ') {
            field.push_str(line);
        } else {
            break;
        }
    }
    field
}

/// True when Python can import `module`; otherwise prints SKIP (panics
/// under CI=true: scripts/test.sh installs it).
fn require_python_module(module: &str) -> bool {
    if !require_tool("python3") {
        return false;
    }
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(format!("import {module}"));
    if run_with_timeout(cmd, None, Duration::from_secs(30))
        .status
        .success()
    {
        return true;
    }
    if in_ci() {
        panic!("python module {module} missing, and CI=true: scripts/test.sh installs it");
    }
    eprintln!("SKIP: python module {module} not installed");
    false
}

#[test]
fn relayed_mail_is_signed_by_a_and_passes_at_b() {
    // A: a key for a.test, made before serve starts (keys load at start).
    let dir_a = TestDir::new("auth-a");
    add_user(&dir_a.data_dir(), "alice");
    let out = mailroom(
        &dir_a.data_dir(),
        &["dkim", "generate", "a.test", "--selector", "s1"],
        None,
    );
    assert!(
        out.status.success(),
        "dkim generate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let key_record = dkim_record(&printed, "s1", "a.test");
    assert!(
        key_record.starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"),
        "{key_record}"
    );
    assert!(printed.contains("a.test. IN TXT \"v=spf1 "), "{printed}");
    assert!(
        printed.contains("_dmarc.a.test. IN TXT \"v=DMARC1; "),
        "{printed}"
    );
    // `show` prints the same record again.
    let shown = mailroom(&dir_a.data_dir(), &["dkim", "show", "a.test"], None);
    assert!(shown.status.success());
    assert_eq!(
        dkim_record(&String::from_utf8_lossy(&shown.stdout), "s1", "a.test"),
        key_record
    );

    let dns = DnsServer::start(
        Zone::new()
            .txt("s1._domainkey.a.test", &key_record)
            .txt("a.test", "v=spf1 ip4:127.0.0.1 -all")
            .txt("_dmarc.a.test", "v=DMARC1; p=reject"),
    );
    let b = start_b("auth-b", &dns);
    let _a = Server::start(
        &dir_a,
        &ServerOptions {
            users: vec!["alice".into()],
            extra_args: vec![
                "--domain".into(),
                "a.test".into(),
                "--relay-map".into(),
                format!("b.test=127.0.0.1:{}", b.smtp().port()),
            ],
            ..ServerOptions::default()
        }
        .config("trusted_networks = [\"127.0.0.0/8\"]\n"),
    );
    let message = crlf(
        "From: Alice <alice@a.test>\n\
         To: Bob <bob@b.test>\n\
         Subject: signed at A, verified at B\n\
         Message-ID: <auth-1@a.test>\n\
         Date: Thu, 27 Nov 2025 12:00:00 +0000\n\
         \n\
         The body the signature covers.\n\
         .a dot line\n",
    );
    let mut smtp = Smtp::connect(_a.smtp());
    smtp.read_reply().expect(220, "", "greeting");
    smtp.ehlo("client.test");
    smtp.send_mail("alice@a.test", &["bob@b.test"], &message)
        .expect(250, "2.0.0", "A accepts for relay");
    smtp.quit();
    assert!(
        wait_for(DELIVERY, || maildir_count(b.server.data_dir(), "bob") == 1),
        "relayed message never reached B; A:\n{}\nB:\n{}",
        _a.stderr(),
        b.server.stderr()
    );
    let stored = b.messages("bob").remove(0);
    stored.assert_well_formed();
    let field = results_field(&stored);
    assert!(
        field.contains("dkim=pass header.d=a.test header.s=s1"),
        "{field}"
    );
    assert!(field.contains("spf=pass"), "{field}");
    assert!(field.contains("smtp.mailfrom=alice@a.test"), "{field}");
    assert!(field.contains("dmarc=pass header.from=a.test"), "{field}");
    let text = stored.text();
    let signature = text.find("DKIM-Signature: ").expect("A's signature");
    assert!(text[signature..].contains("a=rsa-sha256"), "{text}");
    assert!(text[signature..].contains("c=relaxed/relaxed"), "{text}");
    assert!(text.ends_with("The body the signature covers.\r\n.a dot line\r\n"));

    // The same signed message with its body changed, injected straight
    // into B: DKIM fails; SPF still passes, so DMARC passes and it is
    // accepted with the verdicts recorded.
    let start = stored
        .bytes
        .windows(16)
        .position(|w| w == b"DKIM-Signature: ")
        .unwrap();
    let altered = String::from_utf8_lossy(&stored.bytes[start..])
        .replace(
            "The body the signature covers.",
            "A body changed in transit.",
        )
        .into_bytes();
    let mut smtp = b.connect();
    smtp.ehlo("mx.a.test");
    smtp.send_mail("alice@a.test", &["bob@b.test"], &altered)
        .expect(250, "2.0.0", "B accepts: DMARC passes through SPF");
    smtp.quit();
    assert!(wait_for(DELIVERY, || maildir_count(
        b.server.data_dir(),
        "bob"
    ) == 2));
    let changed = b
        .messages("bob")
        .into_iter()
        .find(|m| contains(&m.bytes, b"changed in transit"))
        .unwrap();
    let field = results_field(&changed);
    assert!(field.contains("dkim=fail"), "{field}");
    assert!(field.contains("header.d=a.test"), "{field}");
    assert!(field.contains("spf=pass"), "{field}");

    // A second verifier: dkimpy, given the published record, not DNS.
    if !require_python_module("dkim") {
        return;
    }
    let original = dir_a.write("signed.eml", &stored.bytes);
    let tampered = dir_a.write("tampered.eml", &changed.bytes);
    let script = "import sys, dkim\n\
                  record = sys.argv[1].encode()\n\
                  def dns(name, timeout=5):\n\
                  \x20   assert name == b's1._domainkey.a.test.', name\n\
                  \x20   return record\n\
                  for path in sys.argv[2:]:\n\
                  \x20   print(path.rsplit('/', 1)[-1], dkim.verify(open(path, 'rb').read(), dnsfunc=dns))\n";
    let verdicts = python(
        script,
        &[
            key_record,
            original.display().to_string(),
            tampered.display().to_string(),
        ],
    );
    assert_eq!(verdicts, "signed.eml True\ntampered.eml False\n");
}

#[test]
fn dmarc_reject_refuses_quarantine_flags_and_forged_results_go() {
    let dns = DnsServer::start(
        Zone::new()
            // Only 192.0.2.1 may send for c.test and q.test: not us.
            .txt("c.test", "v=spf1 ip4:192.0.2.1 -all")
            .txt("_dmarc.c.test", "v=DMARC1; p=reject")
            .txt("q.test", "v=spf1 ip4:192.0.2.1 -all")
            .txt("_dmarc.q.test", "v=DMARC1; p=quarantine")
            .txt("ok.test", "v=spf1 ip4:127.0.0.1 -all")
            .txt("_dmarc.ok.test", "v=DMARC1; p=reject"),
    );
    let b = start_b("auth-reject", &dns);
    let mut smtp = b.connect();
    smtp.ehlo("client.test");
    let forged = crlf("From: ceo@c.test\nTo: bob@b.test\nSubject: wire the money\n\nNow.\n");
    let reply = smtp.send_mail("ceo@c.test", &["bob@b.test"], &forged);
    reply.expect(550, "5.7.1", "DMARC p=reject failure at the end of DATA");
    assert!(
        reply.lines.join(" ").contains("c.test"),
        "{:?}",
        reply.lines
    );

    // The session goes on: p=quarantine is accepted, flagged.
    let quarantined = crlf("From: news@q.test\nTo: bob@b.test\nSubject: maybe\n\nHi.\n");
    smtp.send_mail("news@q.test", &["bob@b.test"], &quarantined)
        .expect(250, "2.0.0", "p=quarantine is accepted");
    // A passing message carrying a forged verdict of ours: the forgery
    // goes, another host's field stays.
    let with_forgery = crlf(
        "Authentication-Results: mx.example.test; dkim=pass header.d=bank.example\n\
         Authentication-Results: elsewhere.example; spf=pass\n\
         From: friend@ok.test\nTo: bob@b.test\nSubject: hello\n\nHi.\n",
    );
    smtp.send_mail("friend@ok.test", &["bob@b.test"], &with_forgery)
        .expect(250, "2.0.0", "SPF-aligned mail passes DMARC");
    smtp.quit();
    assert!(wait_for(DELIVERY, || maildir_count(
        b.server.data_dir(),
        "bob"
    ) == 2));
    let messages = b.messages("bob");
    assert!(
        !messages
            .iter()
            .any(|m| contains(&m.bytes, b"wire the money"))
    );
    let flagged = messages
        .iter()
        .find(|m| contains(&m.bytes, b"From: news@q.test"))
        .unwrap();
    let field = results_field(flagged);
    assert!(field.contains("dmarc=fail"), "{field}");
    assert!(field.contains("policy.dmarc=quarantine"), "{field}");
    assert!(
        contains(&flagged.bytes, b"\r\nX-Spam-Flag: YES\r\n"),
        "{}",
        flagged.text()
    );
    let clean = messages
        .iter()
        .find(|m| contains(&m.bytes, b"From: friend@ok.test"))
        .unwrap();
    let field = results_field(clean);
    assert!(field.contains("dmarc=pass"), "{field}");
    let text = clean.text();
    assert_eq!(
        text.matches("Authentication-Results: mx.example.test;")
            .count(),
        1,
        "only B's own field may name B:\n{text}"
    );
    assert!(!text.contains("bank.example"), "{text}");
    assert!(
        text.contains("Authentication-Results: elsewhere.example; spf=pass\r\n"),
        "{text}"
    );
    assert!(!contains(&clean.bytes, b"X-Spam-Flag"));
}

#[test]
fn dns_time_out_is_a_temporary_failure() {
    let dns = DnsServer::start(
        Zone::new()
            .txt("slow.test", "v=spf1 ip4:127.0.0.1 -all")
            .timeout("_dmarc.slow.test"),
    );
    let b = start_b("auth-timeout", &dns);
    let mut smtp = b.connect();
    // Resolver time-outs (5 s, two tries) come before the reply.
    smtp.set_read_timeout(Duration::from_secs(90));
    smtp.ehlo("client.test");
    let message = crlf("From: a@slow.test\nTo: bob@b.test\nSubject: x\n\nx\n");
    let reply = smtp.send_mail("a@slow.test", &["bob@b.test"], &message);
    assert_eq!(
        reply.code / 100,
        4,
        "a DNS time-out must give 4xx: {reply:?}"
    );
    assert!(
        reply.enhanced().is_some_and(|e| e.starts_with("4.7.")),
        "{reply:?}"
    );
    smtp.quit();
    assert_eq!(maildir_count(b.server.data_dir(), "bob"), 0);

    // The same client, authenticated-free but from an exempt network: not
    // checked at all, so no DNS wait and no verdict.
    let dir = TestDir::new("auth-exempt");
    add_user(&dir.data_dir(), "bob");
    let exempt = Server::start(
        &dir,
        &ServerOptions {
            users: vec!["bob".into()],
            extra_args: vec!["--dns".into(), dns.addr().to_string()],
            ..ServerOptions::default()
        },
    );
    let mut smtp = Smtp::connect(exempt.smtp());
    smtp.read_reply().expect(220, "", "greeting");
    smtp.ehlo("client.test");
    smtp.send_mail("a@slow.test", &["bob@example.test"], &message)
        .expect(250, "2.0.0", "loopback is exempt by default");
    smtp.quit();
    assert!(wait_for(DELIVERY, || maildir_count(
        exempt.data_dir(),
        "bob"
    ) == 1));
    let stored = maildir_messages(exempt.data_dir(), "bob").remove(0);
    assert!(
        !contains(&stored.bytes, b"Authentication-Results"),
        "{}",
        stored.text()
    );
}
