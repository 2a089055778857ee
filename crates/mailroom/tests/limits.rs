//! Resource limits end to end (issue 8, part 3): a slow client (slowloris)
//! is cut off by the command timeout however it trickles; a million
//! recipients get `452 4.5.3` past the limit while the server's memory
//! stays flat; a 100 MB message is refused with `552 5.3.4` without being
//! buffered; a huge header block and deeply nested MIME are stored
//! byte-exact and `mailroom show` copes with them.
//!
//! The exact replies at the limits (line length, recipient count, SIZE,
//! BDAT) are unit-tested in crates/smtp-proto/tests/session/limits.rs and
//! on the wire in smtp_wire.rs; the MIME parser's depth limit in
//! crates/mime/tests/hostile.rs. What is new here is scale and memory.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Resident set size (VmRSS) of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:").unwrap()
}

/// Samples `pid`'s VmRSS every 50 ms until `stop` is set; the highest seen.
fn rss_sampler(
    pid: u32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            peak = peak.max(rss_kib(pid));
            thread::sleep(Duration::from_millis(50));
        }
        peak.max(rss_kib(pid))
    })
}

/// Runs `f` while sampling the server's RSS; returns f's result and the
/// peak RSS growth over the RSS before, in KiB.
fn with_rss<T>(pid: u32, f: impl FnOnce() -> T) -> (T, u64) {
    let before = rss_kib(pid);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = rss_sampler(pid, stop.clone());
    let out = f();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    (out, peak.saturating_sub(before))
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------
// Slowloris

#[test]
fn slowloris_is_cut_off_by_the_command_timeout() {
    let env = Env::with(
        "slowloris",
        ServerOptions::default().config("[smtp]\ncommand_timeout = 2\ndata_timeout = 2\n"),
    );
    // One byte of an endless command line every 300 ms: each read comes
    // well within 2 s, but the command never completes.
    let mut slow = TcpStream::connect(env.smtp()).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let mut sent = 0usize;
    let closed_after = loop {
        let byte = b"EHLO slowloris.example".get(sent).copied().unwrap_or(b'x');
        if slow.write_all(&[byte]).is_err() {
            break started.elapsed();
        }
        sent += 1;
        let mut chunk = [0u8; 512];
        match slow.read(&mut chunk) {
            Ok(0) => break started.elapsed(),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break started.elapsed(),
        }
        // A normal client is served meanwhile.
        if sent == 3 {
            let mut other = env.connect();
            other.ehlo("normal.remote.test");
            other.quit();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a client trickling a byte every 300 ms was never cut off ({sent} bytes)"
        );
    };
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("\r\n421 "),
        "no 421 before the close: {text:?}"
    );
    assert!(
        closed_after >= Duration::from_millis(1800) && closed_after < Duration::from_secs(6),
        "command_timeout = 2 s, but the trickling client was closed after {closed_after:?}"
    );
    eprintln!("slowloris closed after {closed_after:?} and {sent} bytes");

    // A client sending complete commands more slowly than the timeout
    // per command, but each within it, is not cut off.
    let mut patient = env.connect();
    for _ in 0..3 {
        thread::sleep(Duration::from_millis(1200));
        patient.ok("NOOP", 250);
    }
    patient.quit();
}

/// Message data trickled in blocks that each come within `data_timeout`,
/// but below `min_data_rate` over the message: cut off with 421 4.4.2
/// soon after `data_timeout`; data above the rate is received in full
/// even when the whole message takes longer than `data_timeout`.
#[test]
fn message_data_below_the_minimum_rate_is_cut_off() {
    let env = Env::with(
        "slow-data",
        ServerOptions::default()
            .config("[smtp]\ncommand_timeout = 10\ndata_timeout = 2\nmin_data_rate = 500\n"),
    );
    let open_data = || {
        let mut smtp = env.connect();
        smtp.ehlo("slow.remote.test");
        smtp.ok("MAIL FROM:<sender@remote.test>", 250);
        smtp.ok("RCPT TO:<alice@example.test>", 250);
        smtp.ok("DATA", 354);
        smtp
    };

    // 20 octets every 300 ms (~67 octets/s): each block well within 2 s.
    let mut slow = open_data();
    slow.send(b"Subject: slow\r\n\r\n");
    slow.set_read_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let (reply, cut_after) = loop {
        if slow.try_send(b"0123456789abcdefghi\n").is_err() {
            panic!("closed without a reply after {:?}", started.elapsed());
        }
        // Waits up to 300 ms for the server's verdict.
        match slow.try_read_reply() {
            Ok(Some(reply)) => break (reply, started.elapsed()),
            Ok(None) => panic!("closed without a reply after {:?}", started.elapsed()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{e} after {:?}", started.elapsed()),
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "data at ~67 octets/s was never cut off"
        );
    };
    assert_eq!(reply.code, 421, "{reply:?}");
    assert_eq!(reply.enhanced(), Some("4.4.2"), "{reply:?}");
    assert!(
        cut_after >= Duration::from_millis(1800) && cut_after < Duration::from_secs(8),
        "data_timeout = 2 s at ~67 octets/s, but cut off after {cut_after:?}"
    );
    assert!(
        env.messages("alice").is_empty(),
        "a cut-off message was delivered"
    );

    // 8000 octets every 300 ms (~27 KB/s) for 3.6 s: longer than data_timeout
    // in all, but above the rate.
    let mut steady = open_data();
    steady.send(b"Subject: steady\r\n\r\n");
    let line = format!("{}\r\n", "x".repeat(998));
    for _ in 0..12 {
        steady.send(line.repeat(8).as_bytes());
        thread::sleep(Duration::from_millis(300));
    }
    steady.send(b".\r\n");
    let reply = steady.read_reply();
    assert_eq!(reply.code, 250, "{reply:?}");
    steady.ok("QUIT", 221);
    assert_eq!(env.messages("alice").len(), 1);
}

// ---------------------------------------------------------------------------
// A million recipients

#[test]
fn a_million_recipients_get_452_4_5_3_in_bounded_memory() {
    let total = env_number("MAILROOM_LIMITS_RCPTS", 1_000_000);
    let env = Env::with("million", ServerOptions::default());
    let pid = env.server.pid();
    let addr = env.smtp();
    let started = Instant::now();
    let ((accepted, too_many, other), growth) = with_rss(pid, || {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut writer = conn.try_clone().unwrap();
        let sender = thread::spawn(move || {
            writer
                .write_all(b"EHLO client.remote.test\r\nMAIL FROM:<sender@remote.test>\r\n")
                .unwrap();
            let mut batch = String::with_capacity(64 * 1024);
            for i in 0..total {
                batch.push_str(&format!("RCPT TO:<alice+{i}@example.test>\r\n"));
                if batch.len() > 60_000 {
                    writer.write_all(batch.as_bytes()).unwrap();
                    batch.clear();
                }
            }
            writer.write_all(batch.as_bytes()).unwrap();
            writer
        });
        // Count the replies as they stream back (greeting, EHLO, MAIL first).
        let (mut accepted, mut too_many, mut other) = (0usize, 0usize, Vec::new());
        let mut pending = Vec::new();
        let mut replies = 0usize;
        let mut chunk = vec![0u8; 256 * 1024];
        while replies < total + 3 {
            let n = conn.read(&mut chunk).unwrap();
            assert!(n > 0, "connection closed after {replies} replies");
            pending.extend_from_slice(&chunk[..n]);
            let mut start = 0;
            while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
                let line = &pending[start..start + end + 1];
                start += end + 1;
                if line.get(3) == Some(&b'-') {
                    continue;
                }
                replies += 1;
                if replies <= 3 {
                    continue;
                }
                if line.starts_with(b"250 ") {
                    accepted += 1;
                } else if line.starts_with(b"452 4.5.3 ") {
                    too_many += 1;
                } else if other.len() < 5 {
                    other.push(String::from_utf8_lossy(line).into_owned());
                }
            }
            pending.drain(..start);
        }
        let mut writer = sender.join().unwrap();
        // The transaction still works: the first hundred get the message.
        writer.write_all(b"DATA\r\n").unwrap();
        let message = simple_message("a million recipients", "to the first hundred");
        let mut rest = pending.clone();
        let mut read_reply = |conn: &mut TcpStream| -> String {
            loop {
                if let Some(end) = rest.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = rest.drain(..=end).collect();
                    return String::from_utf8_lossy(&line).trim_end().to_string();
                }
                let n = conn.read(&mut chunk).unwrap();
                assert!(n > 0, "closed");
                rest.extend_from_slice(&chunk[..n]);
            }
        };
        assert!(read_reply(&mut conn).starts_with("354"), "DATA");
        writer.write_all(&dot_stuff(&message)).unwrap();
        let end = read_reply(&mut conn);
        assert!(end.starts_with("250"), "end of data: {end}");
        writer.write_all(b"QUIT\r\n").unwrap();
        (accepted, too_many, other)
    });
    let elapsed = started.elapsed();
    eprintln!(
        "{total} RCPTs in {elapsed:?}: {accepted} × 250, {too_many} × 452 4.5.3; \
         server RSS grew by {growth} KiB at most"
    );
    assert!(other.is_empty(), "unexpected replies: {other:?}");
    // RFC 5321 §4.5.3.1.10: past the limit (100, the §4.5.3.1.8 minimum
    // and our default) every RCPT gets 452, and none is an error that
    // ends the session.
    assert_eq!(accepted, 100);
    assert_eq!(too_many, total - 100);
    assert!(
        growth < 32 * 1024,
        "the server grew by {growth} KiB while refusing recipients"
    );
    assert_eq!(env.messages("alice").len(), 1, "one copy for alice");
}

// ---------------------------------------------------------------------------
// A 100 MB message

#[test]
fn a_100_mb_message_is_552_5_3_4_without_buffering_it() {
    let megabytes = env_number("MAILROOM_LIMITS_BIG_MB", 100);
    let env = Env::with(
        "hundred-mb",
        ServerOptions::default().config("[smtp]\nmax_message_size = 10000000\n"),
    );
    let pid = env.server.pid();
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    // Declared: refused before a byte of it is sent (RFC 1870 §6.1).
    smtp.cmd(&format!(
        "MAIL FROM:<sender@remote.test> SIZE={}",
        megabytes * 1_000_000
    ))
    .expect(552, "5.3.4", "MAIL with SIZE of 100 MB");

    // Undeclared, through DATA: the whole 100 MB goes over the wire and the
    // server keeps at most its 10 MB limit of it.
    let line = format!("{}\r\n", "0123456789".repeat(9));
    let lines = megabytes * 1_000_000 / line.len();
    let (reply, growth) = with_rss(pid, || {
        smtp.ok("MAIL FROM:<sender@remote.test>", 250);
        smtp.ok("RCPT TO:<alice@example.test>", 250);
        smtp.ok("DATA", 354);
        smtp.send(b"Subject: 100 MB\r\n\r\n");
        let block = line.repeat(1000);
        for _ in 0..lines / 1000 {
            smtp.send(block.as_bytes());
        }
        smtp.send(b".\r\n");
        smtp.set_read_timeout(Duration::from_secs(120));
        smtp.read_reply()
    });
    reply.expect(552, "5.3.4", "100 MB through DATA");
    eprintln!("{megabytes} MB through DATA: {reply}; server RSS grew by {growth} KiB at most");
    assert!(
        growth < 40 * 1024,
        "the server grew by {growth} KiB for a refused {megabytes} MB message"
    );

    // Through BDAT (RFC 3030): one chunk of 100 MB, refused and skipped.
    let (reply, growth) = with_rss(pid, || {
        smtp.ok("MAIL FROM:<sender@remote.test>", 250);
        smtp.ok("RCPT TO:<alice@example.test>", 250);
        let size = lines / 1000 * 1000 * line.len();
        smtp.send(format!("BDAT {size} LAST\r\n").as_bytes());
        let block = line.repeat(1000);
        for _ in 0..lines / 1000 {
            smtp.send(block.as_bytes());
        }
        smtp.read_reply()
    });
    reply.expect(552, "5.3.4", "100 MB through BDAT");
    eprintln!("{megabytes} MB through BDAT: {reply}; server RSS grew by {growth} KiB at most");
    assert!(growth < 40 * 1024, "BDAT: grew by {growth} KiB");

    // The session is still in step, and nothing was stored.
    let small = simple_message("after 100 MB", "fits");
    smtp.send_mail("sender@remote.test", &["alice@example.test"], &small)
        .expect(250, "", "a small message afterwards");
    smtp.quit();
    let stored = env.messages("alice");
    assert_eq!(stored.len(), 1);
    assert_same_bytes(stored[0].body(), &small, "the small message");
}

// ---------------------------------------------------------------------------
// Huge header blocks

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn huge_header_blocks_are_stored_whole_or_refused_by_size() {
    let env = Env::with(
        "huge-headers",
        ServerOptions {
            listeners: vec!["smtp", "submission"],
            ..ServerOptions::default()
        }
        .config("[smtp]\nmax_message_size = 20000000\n"),
    );
    let pid = env.server.pid();
    // 150,000 fields (about 10 MB) and one field folded over 100,000 lines,
    // no body to speak of.
    let mut text = String::from("From: sender@remote.test\nTo: alice@example.test\n");
    for i in 0..150_000 {
        text.push_str(&format!("X-Filler-{i}: {}\n", "v".repeat(50)));
    }
    text.push_str("X-Folded: start\n");
    for i in 0..100_000 {
        text.push_str(&format!("\tcontinuation {i}\n"));
    }
    text.push_str("Subject: huge header\n\nbody\n");
    let message = crlf(&text);
    assert!(message.len() > 10_000_000);

    // On the MX port, and on submission after AUTH (where the server reads
    // the header for Date and Message-ID, RFC 6409 §8).
    let (_, growth) = with_rss(pid, || {
        let mut smtp = env.connect();
        smtp.ehlo("client.remote.test");
        smtp.set_read_timeout(Duration::from_secs(120));
        smtp.send_mail("sender@remote.test", &["alice@example.test"], &message)
            .expect(250, "", "10 MB header block on port 25");
        smtp.quit();

        let mut sub = Smtp::connect(env.server.addr("submission"));
        sub.read_reply().expect(220, "", "greeting");
        sub.ehlo("client.example.test");
        let token = base64(format!("\0alice\0{PASSWORD}").as_bytes());
        sub.ok(&format!("AUTH PLAIN {token}"), 235);
        sub.set_read_timeout(Duration::from_secs(120));
        sub.send_mail("alice@example.test", &["bob@example.test"], &message)
            .expect(250, "", "10 MB header block on submission");
        sub.quit();
    });
    eprintln!("two 10 MB header blocks stored; server RSS grew by {growth} KiB at most");
    // The message is held in memory while it is stored (bounded by
    // max_message_size), not copied per header field.
    assert!(growth < 160 * 1024, "grew by {growth} KiB");
    let stored = env.messages("alice");
    assert_eq!(stored.len(), 1);
    assert_same_bytes(stored[0].body(), &message, "alice's copy");
    let bob = env.messages("bob");
    assert_eq!(bob.len(), 1);
    assert!(contains(bob[0].body(), &message), "bob's copy");

    // `mailroom show` on it finishes, with bounded output.
    let mut cmd = std::process::Command::new(bin());
    cmd.arg("show").arg(&stored[0].path);
    let started = Instant::now();
    let out = run_with_timeout(cmd, None, Duration::from_secs(120));
    eprintln!(
        "show: exit {:?}, {} bytes out, {:?}",
        out.status.code(),
        out.stdout.len(),
        started.elapsed()
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Bigger than max_message_size: 552 5.3.4.
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    let mut twice = message.clone();
    let split = find(&message, b"Subject:").unwrap();
    twice.splice(split..split, message[..split].iter().copied());
    assert!(twice.len() > 20_000_000);
    smtp.set_read_timeout(Duration::from_secs(120));
    smtp.ok("MAIL FROM:<sender@remote.test>", 250);
    smtp.ok("RCPT TO:<alice@example.test>", 250);
    smtp.ok("DATA", 354);
    smtp.send(&dot_stuff(&twice));
    smtp.read_reply()
        .expect(552, "5.3.4", "a 20 MB header block");
    smtp.quit();
    assert_eq!(env.messages("alice").len(), 1);
}

// ---------------------------------------------------------------------------
// Deeply nested MIME

#[test]
fn deeply_nested_mime_is_stored_retrieved_and_shown() {
    let env = Env::start("nested-mime");
    let depth = 10_000;
    let mut text = String::from(
        "From: sender@remote.test\nTo: alice@example.test\nSubject: nested\nMIME-Version: 1.0\n",
    );
    for level in 0..depth {
        text.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{level}\"\n\n--b{level}\n"
        ));
    }
    text.push_str("Content-Type: text/plain\n\nleaf\n");
    for level in (0..depth).rev() {
        text.push_str(&format!("--b{level}--\n"));
    }
    let message = crlf(&text);
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    smtp.send_mail("sender@remote.test", &["alice@example.test"], &message)
        .expect(250, "", "10,000 nested multiparts");
    smtp.quit();
    let stored = env.messages("alice");
    assert_eq!(stored.len(), 1);
    assert_same_bytes(stored[0].body(), &message, "nested message");

    // `mailroom show` stops at its depth limit instead of recursing 10,000
    // levels (a stack overflow would be a signal, not exit 0).
    let mut cmd = std::process::Command::new(bin());
    cmd.arg("show").arg(&stored[0].path);
    let out = run_with_timeout(cmd, None, Duration::from_secs(60));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "show: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.len() < 1_000_000,
        "show printed {} bytes",
        out.stdout.len()
    );
    eprintln!(
        "show: {} lines; last: {:?}",
        shown.lines().count(),
        shown.lines().last()
    );

    // `mailroom fetch`-style retrieval: POP3 RETR returns it byte-exact.
    let mut pop = TcpStream::connect(env.server.pop3()).unwrap();
    pop.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    pop.write_all(format!("USER alice\r\nPASS {PASSWORD}\r\nRETR 1\r\nQUIT\r\n").as_bytes())
        .unwrap();
    let mut all = Vec::new();
    pop.read_to_end(&mut all).unwrap();
    // After the greeting and the replies to USER, PASS and RETR.
    let mut start = 0;
    for _ in 0..4 {
        let line_end = find(&all[start..], b"\r\n").unwrap() + start;
        assert!(
            all[start..].starts_with(b"+OK"),
            "{}",
            show(&all[start..line_end])
        );
        start = line_end + 2;
    }
    let end = find(&all[start..], b"\r\n.\r\n").unwrap() + start + 2;
    assert_same_bytes(
        split_trace(&all[start..end]).unwrap().rest,
        &message,
        "RETR of the nested message",
    );
}
