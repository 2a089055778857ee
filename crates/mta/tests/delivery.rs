//! End-to-end delivery through the `Mta`: a test DNS server, scripted SMTP
//! sinks, a memory queue and a recording local delivery.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use mailroom_store::RecipientState;
use mailroom_testkit::dns::{DnsServer, Zone};
use support::*;

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// Nothing listens here: 127.0.0.2 is loopback too, but the sinks bind
/// 127.0.0.1 only, so a connection is refused at once.
const NOBODY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn bounces_to_alice(local: &TestLocal) -> Vec<String> {
    local
        .delivered()
        .into_iter()
        .filter(|(to, _)| to == "alice@origin.example")
        .map(|(_, m)| String::from_utf8(m).unwrap())
        .collect()
}

#[tokio::test]
async fn unreachable_first_mx_falls_through_to_the_second() {
    let sink = Sink::start(SinkConfig::default()).await;
    let dns = DnsServer::start(
        Zone::new()
            .mx("example.net", 10, "mx1.example.net")
            .mx("example.net", 20, "mx2.example.net")
            .mx("example.net", 30, "mx3.example.net")
            .a("mx1.example.net", NOBODY)
            .a("mx2.example.net", LOOPBACK)
            .a("mx3.example.net", NOBODY),
    );
    let harness = Harness::start(
        test_config(dns.addr(), sink.port()),
        TestLocal::new(&["origin.example"]),
        vec![entry(
            "q1",
            Some("alice@origin.example"),
            &["bob@example.net"],
        )],
    )
    .await;
    eventually("the entry is done", || harness.queue.entries().is_empty()).await;
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].from, "alice@origin.example");
    assert_eq!(received[0].to, vec!["bob@example.net".to_string()]);
    // Transparency round-trips: the sink unstuffed what we stuffed.
    assert_eq!(received[0].data, MESSAGE);
    assert_eq!(harness.queue.enqueued(), 1, "no bounce");
    harness.stop().await;
}

#[tokio::test]
async fn ipv6_failure_falls_back_to_ipv4() {
    let sink = Sink::start(SinkConfig::default()).await;
    // ::1 is tried first (refused, or unreachable without IPv6), then
    // 127.0.0.1.
    let dns = DnsServer::start(
        Zone::new()
            .mx("example.net", 10, "mx.example.net")
            .aaaa("mx.example.net", Ipv6Addr::LOCALHOST)
            .a("mx.example.net", LOOPBACK),
    );
    let harness = Harness::start(
        test_config(dns.addr(), sink.port()),
        TestLocal::new(&[]),
        vec![entry(
            "q1",
            Some("alice@origin.example"),
            &["bob@example.net"],
        )],
    )
    .await;
    eventually("the entry is done", || harness.queue.entries().is_empty()).await;
    assert_eq!(sink.received().len(), 1);
    harness.stop().await;
}

#[tokio::test]
async fn domain_with_only_an_a_record_is_its_own_mx() {
    let sink = Sink::start(SinkConfig::default()).await;
    let dns = DnsServer::start(Zone::new().a("aonly.example", LOOPBACK));
    let harness = Harness::start(
        test_config(dns.addr(), sink.port()),
        TestLocal::new(&[]),
        vec![entry(
            "q1",
            Some("alice@origin.example"),
            &["bob@aonly.example"],
        )],
    )
    .await;
    eventually("the entry is done", || harness.queue.entries().is_empty()).await;
    assert_eq!(sink.received()[0].to, vec!["bob@aonly.example".to_string()]);
    harness.stop().await;
}

#[tokio::test]
async fn null_mx_bounces_at_once_with_5_1_10() {
    let sink = Sink::start(SinkConfig::default()).await;
    let dns = DnsServer::start(Zone::new().null_mx("nomail.example"));
    let harness = Harness::start(
        test_config(dns.addr(), sink.port()),
        TestLocal::new(&["origin.example"]),
        vec![entry(
            "q1",
            Some("alice@origin.example"),
            &["bob@nomail.example"],
        )],
    )
    .await;
    eventually("the bounce reaches alice", || {
        !bounces_to_alice(&harness.local).is_empty()
    })
    .await;
    let bounce = &bounces_to_alice(&harness.local)[0];
    assert!(bounce.contains("Status: 5.1.10\r\n"), "{bounce}");
    assert!(
        bounce.contains("556 5.1.10 Recipient address has null MX"),
        "{bounce}"
    );
    assert!(bounce.contains("Final-Recipient: rfc822; bob@nomail.example\r\n"));
    eventually("the queue is empty", || harness.queue.entries().is_empty()).await;
    assert_eq!(sink.connections(), 0, "never connected anywhere");
    harness.stop().await;
}

#[tokio::test]
async fn nxdomain_is_a_permanent_failure() {
    let dns = DnsServer::start(Zone::new().a("other.example", LOOPBACK));
    let harness = Harness::start(
        test_config(dns.addr(), 25),
        TestLocal::new(&["origin.example"]),
        vec![entry(
            "q1",
            Some("alice@origin.example"),
            &["bob@nowhere.example"],
        )],
    )
    .await;
    eventually("the bounce reaches alice", || {
        !bounces_to_alice(&harness.local).is_empty()
    })
    .await;
    let bounce = &bounces_to_alice(&harness.local)[0];
    assert!(bounce.contains("Status: 5.1.2\r\n"), "{bounce}");
    assert!(bounce.contains("does not exist"), "{bounce}");
    harness.stop().await;
}

#[tokio::test]
async fn servfail_is_a_temporary_failure() {
    let dns = DnsServer::start(Zone::new().servfail("broken.example"));
    let harness = Harness::start(
        test_config(dns.addr(), 25),
        TestLocal::new(&["origin.example"]),
        vec![entry(
            "q1",
            Some("alice@origin.example"),
            &["bob@broken.example"],
        )],
    )
    .await;
    eventually("one attempt is recorded", || {
        harness
            .queue
            .entries()
            .first()
            .is_some_and(|e| e.recipients[0].attempts >= 1)
    })
    .await;
    let entry = &harness.queue.entries()[0];
    assert_eq!(entry.recipients[0].state, RecipientState::Pending);
    let reply = entry.recipients[0].last_reply.clone().unwrap();
    assert!(
        reply.starts_with("DNS MX look-up for broken.example failed"),
        "{reply}"
    );
    assert!(harness.local.delivered().is_empty(), "no bounce");
    harness.stop().await;
}

#[tokio::test]
async fn temporary_failure_then_success_after_retry() {
    let sink = Sink::start(SinkConfig {
        data_replies: vec!["451 4.3.0 please try again later".into()],
        ..SinkConfig::default()
    })
    .await;
    let dns = DnsServer::start(
        Zone::new()
            .mx("example.net", 10, "mx.example.net")
            .a("mx.example.net", LOOPBACK),
    );
    let harness = Harness::start(
        test_config(dns.addr(), sink.port()),
        TestLocal::new(&["origin.example"]),
        vec![entry(
            "q1",
            Some("alice@origin.example"),
            &["bob@example.net"],
        )],
    )
    .await;
    eventually("the first attempt is deferred", || {
        harness
            .queue
            .entries()
            .first()
            .is_some_and(|e| e.recipients[0].attempts == 1)
    })
    .await;
    let deferred = harness.queue.entries()[0].clone();
    let rcpt = &deferred.recipients[0];
    assert_eq!(rcpt.state, RecipientState::Pending);
    assert!(
        rcpt.last_reply
            .as_deref()
            .unwrap()
            .contains("451 4.3.0 please try again later")
    );
    assert!(rcpt.next_attempt > deferred.created - 1);
    eventually("delivered on retry", || harness.queue.entries().is_empty()).await;
    assert_eq!(sink.received().len(), 1);
    assert!(
        harness.local.delivered().is_empty(),
        "no notice of any kind"
    );
    harness.stop().await;
}

#[tokio::test]
async fn permanent_failure_bounces_to_the_sender_as_multipart_report() {
    let mut rcpt_replies = HashMap::new();
    rcpt_replies.insert(
        "bob@example.net".to_string(),
        "550 5.1.1 <bob@example.net>: no such user here".to_string(),
    );
    let sink = Sink::start(SinkConfig {
        rcpt_replies,
        ..SinkConfig::default()
    })
    .await;
    let dns = DnsServer::start(
        Zone::new()
            .mx("example.net", 10, "mx.example.net")
            .a("mx.example.net", LOOPBACK),
    );
    let harness = Harness::start(
        test_config(dns.addr(), sink.port()),
        TestLocal::new(&["origin.example"]),
        vec![entry(
            "q1",
            Some("alice@origin.example"),
            &["bob@example.net", "carol@example.net"],
        )],
    )
    .await;
    eventually("the bounce reaches alice", || {
        !bounces_to_alice(&harness.local).is_empty()
    })
    .await;
    eventually("the queue is empty", || harness.queue.entries().is_empty()).await;
    // Carol was delivered in the same transaction.
    assert_eq!(sink.received()[0].to, vec!["carol@example.net".to_string()]);
    let bounces = bounces_to_alice(&harness.local);
    assert_eq!(bounces.len(), 1);
    let bounce = &bounces[0];
    assert!(bounce.contains("Subject: Undelivered Mail Returned to Sender\r\n"));
    assert!(bounce.contains("Auto-Submitted: auto-replied\r\n"));
    assert!(!bounce.contains("carol@example.net>:"), "only bob failed");
    let script = r#"
import email, sys
from email import policy
msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.default)
assert msg.get_content_type() == 'multipart/report', msg.get_content_type()
assert msg.get_param('report-type') == 'delivery-status'
parts = list(msg.iter_parts())
assert [p.get_content_type() for p in parts] == ['text/plain', 'message/delivery-status', 'message/rfc822']
assert 'no such user here' in parts[0].get_content()
rcpt = parts[1].get_payload()[1]
assert rcpt['Final-Recipient'] == 'rfc822; bob@example.net', rcpt['Final-Recipient']
assert rcpt['Action'] == 'failed'
assert rcpt['Status'] == '5.1.1'
assert rcpt['Remote-MTA'] == 'dns; mx.example.net'
assert rcpt['Diagnostic-Code'] == 'smtp; 550 5.1.1 <bob@example.net>: no such user here'
assert parts[2].get_payload()[0]['Subject'] == 'test message'
print('ok')
"#;
    if let Some(out) = python(script, bounce.as_bytes()) {
        assert_eq!(out.trim(), "ok");
    }
    // The bounce itself went out with the null sender.
    assert_eq!(harness.queue.enqueued(), 2);
    harness.stop().await;
}

#[tokio::test]
async fn null_sender_gets_no_bounce() {
    let mut rcpt_replies = HashMap::new();
    rcpt_replies.insert(
        "bob@example.net".to_string(),
        "550 5.1.1 no such user".to_string(),
    );
    let sink = Sink::start(SinkConfig {
        rcpt_replies,
        ..SinkConfig::default()
    })
    .await;
    let dns = DnsServer::start(
        Zone::new()
            .mx("example.net", 10, "mx.example.net")
            .a("mx.example.net", LOOPBACK),
    );
    let harness = Harness::start(
        test_config(dns.addr(), sink.port()),
        TestLocal::new(&["origin.example"]),
        vec![entry("q1", None, &["bob@example.net"])],
    )
    .await;
    eventually("the entry is done", || harness.queue.entries().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(harness.queue.enqueued(), 1, "nothing new was queued");
    assert!(harness.local.delivered().is_empty());
    harness.stop().await;
}

#[tokio::test]
async fn notify_never_gets_no_bounce() {
    let mut rcpt_replies = HashMap::new();
    rcpt_replies.insert(
        "bob@example.net".to_string(),
        "550 5.1.1 no such user".to_string(),
    );
    let sink = Sink::start(SinkConfig {
        rcpt_replies,
        ..SinkConfig::default()
    })
    .await;
    let dns = DnsServer::start(
        Zone::new()
            .mx("example.net", 10, "mx.example.net")
            .a("mx.example.net", LOOPBACK),
    );
    let mut queued = entry("q1", Some("alice@origin.example"), &["bob@example.net"]);
    queued.recipients[0].notify = Some("NEVER".into());
    let harness = Harness::start(
        test_config(dns.addr(), sink.port()),
        TestLocal::new(&["origin.example"]),
        vec![queued],
    )
    .await;
    eventually("the entry is done", || harness.queue.entries().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(harness.queue.enqueued(), 1, "no bounce queued");
    assert!(harness.local.delivered().is_empty());
    harness.stop().await;
}

#[tokio::test]
async fn notify_success_to_a_next_hop_without_dsn_sends_a_relayed_notice() {
    let sink = Sink::start(SinkConfig::default()).await;
    let dns = DnsServer::start(
        Zone::new()
            .mx("example.net", 10, "mx.example.net")
            .a("mx.example.net", LOOPBACK),
    );
    let mut queued = entry("q1", Some("alice@origin.example"), &["bob@example.net"]);
    queued.recipients[0].notify = Some("SUCCESS,FAILURE".into());
    queued.envid = Some("ENV-7".into());
    let harness = Harness::start(
        test_config(dns.addr(), sink.port()),
        TestLocal::new(&["origin.example"]),
        vec![queued],
    )
    .await;
    eventually("the notice reaches alice", || {
        !bounces_to_alice(&harness.local).is_empty()
    })
    .await;
    let notice = &bounces_to_alice(&harness.local)[0];
    assert!(
        notice.contains("Subject: Successful Mail Delivery Report\r\n"),
        "{notice}"
    );
    assert!(notice.contains("Action: relayed\r\n"));
    assert!(notice.contains("Original-Envelope-Id: ENV-7\r\n"));
    assert!(notice.contains("Content-Type: text/rfc822-headers\r\n"));
    harness.stop().await;
}

#[tokio::test]
async fn one_connection_carries_three_messages() {
    let sink = Sink::start(SinkConfig::default()).await;
    let dns = DnsServer::start(
        Zone::new()
            .mx("example.net", 10, "mx.example.net")
            .a("mx.example.net", LOOPBACK),
    );
    let harness = Harness::start(
        test_config(dns.addr(), sink.port()),
        TestLocal::new(&[]),
        vec![
            entry("q1", Some("alice@origin.example"), &["bob@example.net"]),
            entry("q2", Some("alice@origin.example"), &["carol@example.net"]),
            entry("q3", Some("alice@origin.example"), &["dave@example.net"]),
        ],
    )
    .await;
    eventually("all delivered", || harness.queue.entries().is_empty()).await;
    assert_eq!(sink.received().len(), 3);
    assert_eq!(sink.connections(), 1, "one connection reused");
    harness.stop().await;
}

#[tokio::test]
async fn starttls_is_used_when_offered() {
    let sink = Sink::start(SinkConfig {
        tls: Some(sink_tls()),
        ..SinkConfig::default()
    })
    .await;
    let dns = DnsServer::start(
        Zone::new()
            .mx("example.net", 10, "mx.example.net")
            .a("mx.example.net", LOOPBACK),
    );
    let harness = Harness::start(
        test_config(dns.addr(), sink.port()),
        TestLocal::new(&[]),
        vec![entry(
            "q1",
            Some("alice@origin.example"),
            &["bob@example.net"],
        )],
    )
    .await;
    eventually("delivered", || harness.queue.entries().is_empty()).await;
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].tls, "the message went over TLS");
    assert_eq!(received[0].data, MESSAGE);
    harness.stop().await;
}

#[tokio::test]
async fn require_tls_without_starttls_defers_instead_of_sending_plaintext() {
    let sink = Sink::start(SinkConfig::default()).await;
    let dns = DnsServer::start(
        Zone::new()
            .mx("example.net", 10, "mx.example.net")
            .a("mx.example.net", LOOPBACK),
    );
    let config = mailroom_mta::MtaConfig {
        require_tls: vec!["Example.NET".into()],
        ..test_config(dns.addr(), sink.port())
    };
    let harness = Harness::start(
        config,
        TestLocal::new(&["origin.example"]),
        vec![entry(
            "q1",
            Some("alice@origin.example"),
            &["bob@example.net"],
        )],
    )
    .await;
    eventually("one attempt is recorded", || {
        harness
            .queue
            .entries()
            .first()
            .is_some_and(|e| e.recipients[0].attempts >= 1)
    })
    .await;
    let rcpt = harness.queue.entries()[0].recipients[0].clone();
    assert_eq!(rcpt.state, RecipientState::Pending);
    let reply = rcpt.last_reply.unwrap();
    assert!(reply.contains("STARTTLS"), "{reply}");
    assert!(sink.connections() >= 1);
    assert_eq!(sink.mail_commands(), 0, "no MAIL in plaintext");
    assert!(sink.received().is_empty());
    assert!(
        harness.local.delivered().is_empty(),
        "no bounce for a temporary failure"
    );
    harness.stop().await;
}

#[tokio::test]
async fn relay_map_and_local_recipients() {
    let sink = Sink::start(SinkConfig::default()).await;
    // The DNS server knows nothing: the relay map must skip it.
    let dns = DnsServer::start(Zone::new());
    let config = mailroom_mta::MtaConfig {
        relay_map: vec![("*".into(), format!("127.0.0.1:{}", sink.port()))],
        ..test_config(dns.addr(), 1)
    };
    let harness = Harness::start(
        config,
        TestLocal::new(&["origin.example"]),
        vec![entry(
            "q1",
            Some("alice@origin.example"),
            &[
                "bob@far.example",
                "carol@origin.example",
                "nobody@origin.example",
            ],
        )],
    )
    .await;
    eventually("the entry is done", || harness.queue.entries().is_empty()).await;
    assert_eq!(sink.received()[0].to, vec!["bob@far.example".to_string()]);
    let delivered = harness.local.delivered();
    assert!(
        delivered
            .iter()
            .any(|(to, m)| to == "carol@origin.example" && m == MESSAGE)
    );
    // nobody@ failed locally (permanent): its bounce went to alice.
    eventually("the bounce reaches alice", || {
        !bounces_to_alice(&harness.local).is_empty()
    })
    .await;
    let bounce = &bounces_to_alice(&harness.local)[0];
    assert!(
        bounce.contains("<nobody@origin.example>: 5.1.1 no such user"),
        "{bounce}"
    );
    assert_eq!(dns.queries(), 0);
    harness.stop().await;
}

#[tokio::test]
async fn notify_triggers_delivery_before_the_poll_interval() {
    let sink = Sink::start(SinkConfig::default()).await;
    let dns = DnsServer::start(
        Zone::new()
            .mx("example.net", 10, "mx.example.net")
            .a("mx.example.net", LOOPBACK),
    );
    let config = mailroom_mta::MtaConfig {
        poll_interval: Duration::from_secs(3600),
        ..test_config(dns.addr(), sink.port())
    };
    let harness = Harness::start(config, TestLocal::new(&[]), Vec::new()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    enqueue(
        &harness.queue,
        entry("q1", Some("alice@origin.example"), &["bob@example.net"]),
    )
    .await;
    harness.mta.notify();
    eventually("delivered", || harness.queue.entries().is_empty()).await;
    harness.stop().await;
}

/// Postfix's smtp-sink as the receiver: 100 messages, all accepted.
#[tokio::test]
async fn delivers_100_messages_to_postfix_smtp_sink() {
    let Some(binary) = ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "smtp-sink (Debian package postfix) is required in CI"
        );
        println!("SKIP: smtp-sink not installed (Debian package postfix)");
        return;
    };
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut command = std::process::Command::new(binary);
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if is_root {
        // smtp-sink refuses to run as root without a user to switch to.
        command.args(["-u", "postfix"]);
    }
    let mut child = command
        .arg(format!("127.0.0.1:{port}"))
        .arg("100")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "smtp-sink did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let dns = DnsServer::start(
        Zone::new()
            .mx("example.net", 10, "mx.example.net")
            .a("mx.example.net", LOOPBACK),
    );
    let entries = (0..100)
        .map(|i| {
            entry(
                &format!("m{i:03}"),
                Some("alice@origin.example"),
                &["bob@example.net"],
            )
        })
        .collect();
    let harness = Harness::start(test_config(dns.addr(), port), TestLocal::new(&[]), entries).await;
    eventually("all 100 delivered", || harness.queue.entries().is_empty()).await;
    assert_eq!(harness.queue.removed().len(), 100);
    assert_eq!(harness.queue.enqueued(), 100, "no bounces");
    harness.stop().await;
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn dns_timeout_is_a_temporary_failure() {
    let dns = DnsServer::start(Zone::new().timeout("slow.example"));
    let harness = Harness::start(
        test_config(dns.addr(), 25),
        TestLocal::new(&["origin.example"]),
        vec![entry(
            "q1",
            Some("alice@origin.example"),
            &["bob@slow.example"],
        )],
    )
    .await;
    eventually("one attempt is recorded", || {
        harness
            .queue
            .entries()
            .first()
            .is_some_and(|e| e.recipients[0].attempts >= 1)
    })
    .await;
    let rcpt = harness.queue.entries()[0].recipients[0].clone();
    assert_eq!(rcpt.state, RecipientState::Pending);
    assert!(rcpt.last_reply.unwrap().contains("slow.example"));
    assert!(harness.local.delivered().is_empty(), "no bounce");
    harness.stop().await;
}

#[tokio::test]
async fn expiry_bounces_with_4_4_7_and_the_last_reply() {
    let sink = Sink::start(SinkConfig {
        data_replies: vec!["452 4.3.1 insufficient system storage".into()],
        ..SinkConfig::default()
    })
    .await;
    let dns = DnsServer::start(
        Zone::new()
            .mx("example.net", 10, "mx.example.net")
            .a("mx.example.net", LOOPBACK),
    );
    // The message is older than max_age: this failure is its last.
    let mut config = test_config(dns.addr(), sink.port());
    config.policy.max_age = Duration::from_secs(60);
    let mut old = entry("q1", Some("alice@origin.example"), &["bob@example.net"]);
    old.created -= 3600;
    let harness = Harness::start(config, TestLocal::new(&["origin.example"]), vec![old]).await;
    eventually("the bounce reaches alice", || {
        !bounces_to_alice(&harness.local).is_empty()
    })
    .await;
    let bounce = &bounces_to_alice(&harness.local)[0];
    assert!(
        bounce.contains("Action: failed\r\nStatus: 4.4.7\r\n"),
        "{bounce}"
    );
    assert!(bounce.contains("Diagnostic-Code: smtp; 452 4.3.1 insufficient system storage\r\n"));
    eventually("the queue is empty", || harness.queue.entries().is_empty()).await;
    harness.stop().await;
}

#[tokio::test]
async fn delay_notice_is_sent_once() {
    let sink = Sink::start(SinkConfig {
        data_replies: vec!["451 4.7.1 greylisted".into(), "451 4.7.1 greylisted".into()],
        ..SinkConfig::default()
    })
    .await;
    let dns = DnsServer::start(
        Zone::new()
            .mx("example.net", 10, "mx.example.net")
            .a("mx.example.net", LOOPBACK),
    );
    let mut config = test_config(dns.addr(), sink.port());
    config.policy.delay_notice_after = Some(Duration::ZERO);
    let mut queued = entry("q1", Some("alice@origin.example"), &["bob@example.net"]);
    queued.recipients[0].notify = Some("FAILURE,DELAY".into());
    let harness = Harness::start(config, TestLocal::new(&["origin.example"]), vec![queued]).await;
    eventually("delivered on the third try", || sink.received().len() == 1).await;
    eventually("the queue is empty", || harness.queue.entries().is_empty()).await;
    let notices = bounces_to_alice(&harness.local);
    assert_eq!(notices.len(), 1, "one delay notice, not one per attempt");
    assert!(notices[0].contains("Subject: Delayed Mail (still being retried)\r\n"));
    assert!(notices[0].contains("Action: delayed\r\n"));
    assert!(notices[0].contains("Will-Retry-Until: "));
    harness.stop().await;
}

#[tokio::test]
async fn shutdown_returns_within_the_drain_timeout() {
    let dns = DnsServer::start(Zone::new());
    // A listener that accepts and never greets: the delivery hangs in
    // the greeting wait until shutdown's drain timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let config = mailroom_mta::MtaConfig {
        relay_map: vec![("*".into(), format!("127.0.0.1:{port}"))],
        drain_timeout: Duration::from_millis(300),
        ..test_config(dns.addr(), 25)
    };
    let harness = Harness::start(
        config,
        TestLocal::new(&[]),
        vec![entry(
            "q1",
            Some("alice@origin.example"),
            &["bob@example.net"],
        )],
    )
    .await;
    eventually("claimed", || harness.queue.is_claimed("q1", now())).await;
    let started = std::time::Instant::now();
    harness.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    hold.abort();
}

#[tokio::test]
async fn a_long_delivery_keeps_its_claim() {
    let dns = DnsServer::start(Zone::new());
    // A receiver that accepts and never greets: the delivery outlasts its
    // lease several times over.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let config = mailroom_mta::MtaConfig {
        relay_map: vec![("*".into(), format!("127.0.0.1:{port}"))],
        lease: Duration::from_secs(2),
        drain_timeout: Duration::from_millis(300),
        ..test_config(dns.addr(), 25)
    };
    let harness = Harness::start(
        config,
        TestLocal::new(&[]),
        vec![entry(
            "q1",
            Some("alice@origin.example"),
            &["bob@example.net"],
        )],
    )
    .await;
    eventually("claimed", || harness.queue.is_claimed("q1", now())).await;
    // Three leases later: renewed all along, so never claimed again.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(harness.queue.is_claimed("q1", now()));
    assert_eq!(harness.queue.claims(), 1, "the entry was claimed again");
    harness.stop().await;
    hold.abort();
}

#[test]
fn default_config_builds() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mta = mailroom_mta::Mta::new(mailroom_mta::MtaConfig::default()).unwrap();
        assert_eq!(mta.config().max_workers, 50);
        let bad = mailroom_mta::MtaConfig {
            relay_map: vec![("example.org".into(), "no-port".into())],
            ..mailroom_mta::MtaConfig::default()
        };
        assert!(mailroom_mta::Mta::new(bad).is_err());
    });
}

#[tokio::test]
async fn connections_per_destination_are_capped() {
    let sink = Sink::start(SinkConfig::default()).await;
    let dns = DnsServer::start(
        Zone::new()
            .mx("example.net", 10, "mx.example.net")
            .a("mx.example.net", LOOPBACK),
    );
    let config = mailroom_mta::MtaConfig {
        max_connections_per_destination: 2,
        ..test_config(dns.addr(), sink.port())
    };
    let entries = (0..40)
        .map(|i| {
            entry(
                &format!("m{i:02}"),
                Some("alice@origin.example"),
                &["bob@example.net"],
            )
        })
        .collect();
    let harness = Harness::start(config, TestLocal::new(&[]), entries).await;
    eventually("all delivered", || harness.queue.entries().is_empty()).await;
    assert_eq!(sink.received().len(), 40);
    assert!(
        sink.max_open() <= 2,
        "at most 2 at once, saw {}",
        sink.max_open()
    );
    assert_eq!(sink.max_open(), 2, "the backlog opened a second connection");
    harness.stop().await;
}
