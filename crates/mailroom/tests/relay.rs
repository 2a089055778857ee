#![allow(clippy::unwrap_used)]
//! Outbound mail end to end (issue 4): two mailroom instances relaying with
//! `--relay-map`, bounces as RFC 3464 reports in the sender's Maildir,
//! retries after a 4xx, MX routing through an in-process DNS server, the
//! relay policy, and a crash in the middle of a delivery.

mod common;

use std::time::Duration;

use common::*;
use mailroom_testkit::dns::{DnsServer, Zone};

/// How long a delivery that should happen "soon" may take.
const DELIVERY: Duration = Duration::from_secs(30);

/// Config of a sending instance: loopback may relay, retries every second.
fn relay_config(extra: &str) -> String {
    format!(
        "trusted_networks = [\"127.0.0.0/8\"]\n\
         [queue]\n\
         retry_schedule = [\"1s\"]\n\
         {extra}"
    )
}

/// Submits `message` to `addr` from `from` to `to` (all must be accepted).
fn submit(addr: std::net::SocketAddr, from: &str, to: &[&str], message: &[u8]) {
    let mut smtp = Smtp::connect(addr);
    smtp.read_reply().expect(220, "", "greeting");
    smtp.ehlo("client.test");
    let r = smtp.send_mail(from, to, message);
    r.expect(250, "", "end of data");
    smtp.quit();
}

/// Runs `mailroom queue list` on `data_dir`; its stdout.
fn queue_list(data_dir: &std::path::Path) -> String {
    let out = mailroom(data_dir, &["queue", "list"], None);
    assert!(
        out.status.success(),
        "queue list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn queue_is_empty(data_dir: &std::path::Path) -> bool {
    queue_list(data_dir).contains("Mail queue is empty")
}

/// Checks with Python's email package that `bytes` is a multipart/report
/// with a message/delivery-status part; false (SKIP) without python3.
fn assert_dsn_parses(dir: &TestDir, bytes: &[u8]) -> bool {
    if !require_tool("python3") {
        return false;
    }
    let path = dir.write("bounce.eml", bytes);
    let script = "import sys, email\n\
                  m = email.message_from_bytes(open(sys.argv[1], 'rb').read())\n\
                  assert m.get_content_type() == 'multipart/report', m.get_content_type()\n\
                  assert m.get_param('report-type') == 'delivery-status', m.get_param('report-type')\n\
                  types = [p.get_content_type() for p in m.walk()]\n\
                  assert 'message/delivery-status' in types, types\n\
                  print('ok')\n";
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(script).arg(&path);
    let out = run_with_timeout(cmd, None, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "bounce does not parse as a multipart/report DSN: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        show(bytes)
    );
    true
}

/// A bounce is delivered with the null reverse path (RFC 5321 §4.5.5). The
/// locally generated DSN need not carry a Received field, so this does not
/// use `StoredMessage::body`.
fn assert_null_return_path(bounce: &StoredMessage) {
    bounce.assert_well_formed();
    assert!(
        bounce.bytes.starts_with(b"Return-Path: <>\r\n"),
        "bounce must start with Return-Path: <>:\n{}",
        show(&bounce.bytes)
    );
}

#[test]
fn two_instances_relay_byte_exact() {
    let b = Env::with(
        "relay-b",
        ServerOptions {
            extra_args: vec!["--domain".into(), "b.test".into()],
            ..ServerOptions::default()
        },
    );
    let a = Env::with(
        "relay-a",
        ServerOptions {
            extra_args: vec![
                "--relay-map".into(),
                format!("b.test=127.0.0.1:{}", b.smtp().port()),
            ],
            ..ServerOptions::default()
        }
        .config(&relay_config("")),
    );

    let message = crlf(
        "From: Alice <alice@example.test>\n\
         To: Bob <bob@b.test>\n\
         Subject: relayed between two instances\n\
         Message-ID: <relay-1@example.test>\n\
         Date: Thu, 27 Nov 2025 12:00:00 +0000\n\
         \n\
         First line.\n\
         .a line starting with a dot\n\
         \n\
         Last line, trailing spaces   \n",
    );
    submit(a.smtp(), "alice@example.test", &["bob@b.test"], &message);

    assert!(
        wait_for(DELIVERY, || b.messages("bob").len() == 1),
        "message never reached bob on B; A's queue:\n{}",
        queue_list(&a.dir.data_dir())
    );
    let stored = &b.messages("bob")[0];
    stored.assert_well_formed();
    assert_eq!(stored.return_path(), "alice@example.test");
    // B added Return-Path + Received; after them comes A's Received.
    let after_b = stored.body();
    let original = strip_leading_field(after_b, "Received").unwrap_or_else(|| {
        panic!(
            "no Received from A after B's trace headers:\n{}",
            show(after_b)
        )
    });
    assert_same_bytes(original, &message, "relayed message");
    assert!(
        wait_for(Duration::from_secs(10), || queue_is_empty(
            &a.dir.data_dir()
        )),
        "A's queue not empty after delivery:\n{}",
        queue_list(&a.dir.data_dir())
    );
    // Nothing delivered twice.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(b.messages("bob").len(), 1);
}

#[test]
fn permanent_failure_bounces_to_local_sender() {
    let sink = Sink::start(SinkScript {
        reject_rcpt: Some(
            "550 5.1.1 <nobody@b.test>: Recipient address rejected: User unknown".into(),
        ),
        ..SinkScript::default()
    });
    let a = Env::with(
        "relay-bounce",
        ServerOptions {
            extra_args: vec![
                "--relay-map".into(),
                format!("b.test=127.0.0.1:{}", sink.port()),
            ],
            ..ServerOptions::default()
        }
        .config(&relay_config("")),
    );
    let message = simple_message("doomed message", "This will bounce.");
    submit(a.smtp(), "alice@example.test", &["nobody@b.test"], &message);

    assert!(
        wait_for(DELIVERY, || !a.messages("alice").is_empty()),
        "no bounce in alice's Maildir; queue:\n{}",
        queue_list(&a.dir.data_dir())
    );
    let bounces = a.messages("alice");
    assert_eq!(bounces.len(), 1, "exactly one bounce");
    let bounce = &bounces[0];
    bounce.assert_well_formed();
    assert_null_return_path(bounce);
    let text = bounce.text();
    assert!(text.contains("5.1.1"), "remote status missing:\n{text}");
    assert!(
        text.contains("User unknown"),
        "remote reply text missing:\n{text}"
    );
    assert!(
        text.contains("nobody@b.test"),
        "failed recipient missing:\n{text}"
    );
    assert_dsn_parses(&a.dir, &bounce.bytes);
    assert!(sink.messages().is_empty(), "sink accepted nothing");
    assert!(
        wait_for(Duration::from_secs(10), || queue_is_empty(
            &a.dir.data_dir()
        )),
        "queue not empty after the bounce:\n{}",
        queue_list(&a.dir.data_dir())
    );
}

#[test]
fn temporary_failure_is_retried() {
    let sink = Sink::start(SinkScript {
        temp_fail_rcpts: 1,
        temp_fail_data: 1,
        ..SinkScript::default()
    });
    let a = Env::with(
        "relay-retry",
        ServerOptions {
            extra_args: vec![
                "--relay-map".into(),
                format!("b.test=127.0.0.1:{}", sink.port()),
            ],
            ..ServerOptions::default()
        }
        .config(&relay_config("")),
    );
    let message = simple_message("retried message", "Second time lucky.");
    submit(a.smtp(), "alice@example.test", &["carol@b.test"], &message);

    // 451 to the first RCPT, 451 to the first DATA, then 250: three attempts
    // one second apart (±10%) plus connection set-up.
    assert!(
        sink.wait_messages(1, Duration::from_secs(20)),
        "not delivered after the 4xx replies (rcpts seen {}, connections {}); queue:\n{}",
        sink.rcpts_seen(),
        sink.connections(),
        queue_list(&a.dir.data_dir())
    );
    let got = &sink.messages()[0];
    assert!(got.rcpts.iter().any(|r| r.contains("carol@b.test")));
    assert!(
        contains(&got.data, &message),
        "message body changed in transit"
    );
    assert!(sink.rcpts_seen() >= 3, "RCPT must have been retried");
    assert!(
        wait_for(Duration::from_secs(10), || queue_is_empty(
            &a.dir.data_dir()
        )),
        "queue not empty after delivery:\n{}",
        queue_list(&a.dir.data_dir())
    );
    assert!(a.messages("alice").is_empty(), "no bounce for a 4xx");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sink.messages().len(), 1, "delivered once");
}

#[test]
fn mx_routing_through_test_dns() {
    let sink = Sink::start(SinkScript::default());
    let lo = "127.0.0.1".parse().unwrap();
    let zone = Zone::new()
        // The preferred MX is unreachable (nothing listens on 127.0.0.2).
        .mx("mx-dom.test", 5, "dead.mx-dom.test")
        .a("dead.mx-dom.test", "127.0.0.2".parse().unwrap())
        .mx("mx-dom.test", 10, "mx1.mx-dom.test")
        .a("mx1.mx-dom.test", lo)
        // Only an A record: the implicit MX (RFC 5321 §5.1).
        .a("aonly.test", lo)
        .null_mx("nullmx.test");
    let dns = DnsServer::start(zone);
    let a = Env::with(
        "relay-mx",
        ServerOptions {
            extra_args: vec!["--dns".into(), dns.addr().to_string()],
            ..ServerOptions::default()
        }
        .config(&relay_config(&format!("smtp_port = {}\n", sink.port()))),
    );

    let m1 = simple_message("via mx", "Routed by MX.");
    submit(a.smtp(), "alice@example.test", &["user@mx-dom.test"], &m1);
    assert!(
        sink.wait_messages(1, DELIVERY),
        "MX delivery never arrived (dns queries {}); queue:\n{}",
        dns.queries(),
        queue_list(&a.dir.data_dir())
    );
    assert!(contains(&sink.messages()[0].data, &m1));

    let m2 = simple_message("via implicit mx", "Routed by A record.");
    submit(a.smtp(), "alice@example.test", &["user@aonly.test"], &m2);
    assert!(
        sink.wait_messages(2, DELIVERY),
        "implicit-MX delivery never arrived; queue:\n{}",
        queue_list(&a.dir.data_dir())
    );
    assert!(contains(&sink.messages()[1].data, &m2));

    let m3 = simple_message("to a null mx", "Nobody receives this.");
    submit(a.smtp(), "alice@example.test", &["user@nullmx.test"], &m3);
    assert!(
        wait_for(DELIVERY, || !a.messages("alice").is_empty()),
        "null MX produced no bounce; queue:\n{}",
        queue_list(&a.dir.data_dir())
    );
    let bounce = &a.messages("alice")[0];
    assert_null_return_path(bounce);
    assert!(
        bounce.text().contains("user@nullmx.test"),
        "bounce does not name the recipient:\n{}",
        bounce.text()
    );
    assert_dsn_parses(&a.dir, &bounce.bytes);
    assert_eq!(sink.messages().len(), 2, "nothing sent for the null MX");
    assert!(
        wait_for(Duration::from_secs(10), || queue_is_empty(
            &a.dir.data_dir()
        )),
        "queue not empty:\n{}",
        queue_list(&a.dir.data_dir())
    );
}

#[test]
fn never_an_open_relay() {
    let sink = Sink::start(SinkScript::default());
    // No trusted_networks: loopback is an ordinary, unauthenticated client.
    let env = Env::with(
        "relay-open",
        ServerOptions {
            extra_args: vec![
                "--relay-map".into(),
                format!("elsewhere.test=127.0.0.1:{}", sink.port()),
            ],
            ..ServerOptions::default()
        },
    );
    for from in ["someone@remote.test", "alice@example.test", ""] {
        let mut smtp = env.connect();
        smtp.ehlo("client.test");
        smtp.ok(&format!("MAIL FROM:<{from}>"), 250);
        smtp.cmd("RCPT TO:<victim@elsewhere.test>").expect(
            550,
            "5.7.1",
            &format!("relay attempt from <{from}>"),
        );
        // A local recipient is still fine in the same transaction.
        smtp.ok("RCPT TO:<bob@example.test>", 250);
        smtp.ok("RSET", 250);
        smtp.quit();
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sink.connections(), 0, "nothing relayed");
}

#[test]
fn crash_during_delivery_loses_nothing() {
    let sink = Sink::start(SinkScript {
        data_delay: Duration::from_secs(4),
        ..SinkScript::default()
    });
    let dir = TestDir::new("relay-crash");
    let opts = ServerOptions {
        extra_args: vec![
            "--relay-map".into(),
            format!("b.test=127.0.0.1:{}", sink.port()),
        ],
        ..ServerOptions::default()
    }
    .config(&relay_config(""));
    for user in &opts.users {
        add_user(&dir.data_dir(), user);
    }
    let mut server = Server::start(&dir, &opts);
    let message = simple_message("survives a crash", "Delivered at least once.");
    submit(
        server.smtp(),
        "alice@example.test",
        &["bob@b.test"],
        &message,
    );

    assert!(
        wait_for(DELIVERY, || sink.data_started() >= 1),
        "delivery never started; stderr:\n{}",
        server.stderr()
    );
    server.kill9();
    let server = Server::start(&dir, &opts);
    assert!(
        sink.wait_messages(1, Duration::from_secs(40)),
        "message lost after the crash; queue:\n{}\nstderr:\n{}",
        queue_list(&dir.data_dir()),
        server.stderr()
    );
    assert!(
        wait_for(Duration::from_secs(20), || queue_is_empty(&dir.data_dir())),
        "queue not empty:\n{}",
        queue_list(&dir.data_dir())
    );
    // The interrupted transfer was abandoned (A died before the 250), so
    // the copy at the sink came from the restarted A. At most one duplicate.
    assert_eq!(sink.aborted(), 1, "the kill did not interrupt a transfer");
    std::thread::sleep(Duration::from_secs(6));
    let got = sink.messages();
    assert!(
        (1..=2).contains(&got.len()),
        "{} copies at the sink (at most one duplicate)",
        got.len()
    );
    for m in &got {
        assert!(contains(&m.data, &message));
    }
    drop(server);
}

/// RFC 3461 §5.2.2: NOTIFY=SUCCESS for a local recipient brings the sender a
/// "delivered" report once the message is in the recipient's maildrop; a
/// recipient without it brings none.
#[test]
fn notify_success_for_a_local_recipient_reports_delivered() {
    let a = Env::with(
        "relay-dsn-delivered",
        ServerOptions::default().config(&relay_config("")),
    );
    let message = simple_message("with a receipt", "Tell me when it is there.");
    let mut smtp = Smtp::connect(a.smtp());
    smtp.read_reply().expect(220, "", "greeting");
    smtp.ehlo("client.test");
    smtp.ok("MAIL FROM:<alice@example.test> ENVID=receipt-1", 250);
    smtp.ok("RCPT TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE", 250);
    smtp.ok("DATA", 354);
    smtp.send(&dot_stuff(&message));
    smtp.read_reply().expect(250, "", "end of data");
    smtp.quit();

    assert!(
        wait_for(DELIVERY, || a.messages("bob").len() == 1
            && a.messages("alice").len() == 1),
        "bob: {} message(s), alice: {} report(s); queue:\n{}",
        a.messages("bob").len(),
        a.messages("alice").len(),
        queue_list(&a.dir.data_dir())
    );
    let delivered = &a.messages("bob")[0];
    assert!(delivered.text().contains("Tell me when it is there."));
    assert!(
        delivered
            .text()
            .starts_with("Return-Path: <alice@example.test>\r\n"),
        "{}",
        delivered.text()
    );
    let report = &a.messages("alice")[0];
    report.assert_well_formed();
    assert_null_return_path(report);
    let text = report.text();
    for want in [
        "Action: delivered",
        "Final-Recipient: rfc822; bob@example.test",
        "Original-Envelope-Id: receipt-1",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    assert_dsn_parses(&a.dir, &report.bytes);

    // Without NOTIFY=SUCCESS: delivered, no report.
    submit(
        a.smtp(),
        "alice@example.test",
        &["bob@example.test"],
        &message,
    );
    assert!(wait_for(DELIVERY, || a.messages("bob").len() == 2));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(a.messages("alice").len(), 1, "a report nobody asked for");
}
