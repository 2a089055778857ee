//! Crash test for DESIGN.md principle 2, "nothing accepted is ever lost": a
//! 250 after DATA is a promise that the message is on stable storage.
//!
//! Eight client threads send a few thousand messages over raw sockets, each
//! with a unique id, recording the ids whose 250 arrived. At a random moment
//! mid-load the server gets SIGKILL. It is restarted on the same data
//! directory, and then:
//! - every acknowledged message is in the Maildir exactly once;
//! - no message appears twice (each is sent once, so a duplicate is a bug);
//! - every file there, acknowledged or not, is a complete message, byte-exact
//!   with what was sent (nothing truncated), named with its true size;
//! - the restarted server accepts mail again.
//!
//! Knobs (for long, opt-in runs): MAILROOM_CRASH_MESSAGES (default 3000),
//! MAILROOM_CRASH_ROUNDS (default 2; each round kills and restarts again on
//! the same data), MAILROOM_CRASH_SEED (reproduce a run; printed on start).
//!
//! SIGKILL loses only the process, not the page cache, so this proves the
//! ordering (250 only after the file is complete and in new/) rather than
//! the fsyncs themselves; those need a power-cut test on a VM.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use common::{
    Server, ServerOptions, Smtp, TestDir, add_user, crlf, dot_stuff, maildir_messages, split_trace,
};

const THREADS: usize = 8;
/// Messages per connection before a client reconnects (exercises accept
/// under load too).
const PER_CONNECTION: usize = 40;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The message with index `n`: unique id in Message-ID and Subject, a body
/// of pseudo-random size (0.2–24 KB), and a closing marker line.
fn message(id: &str, seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let lines = rng.random_range(2..300);
    let mut text = format!(
        "From: loader@remote.test\nTo: alice@example.test\nSubject: {id}\n\
         Message-ID: <{id}@remote.test>\nDate: Thu, 27 Nov 2025 12:00:00 +0000\n\n"
    );
    for i in 0..lines {
        let width = rng.random_range(0..78);
        let fill: String = (0..width)
            .map(|j| char::from(b'a' + ((i + j) % 26) as u8))
            .collect();
        if i % 17 == 0 {
            text.push('.');
        }
        text.push_str(&format!("{i:04} {fill}\n"));
    }
    text.push_str(&format!("END {id}\n"));
    crlf(&text)
}

/// The id in a stored message's Subject.
fn id_of(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    text.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("Subject: "))
        .map(|s| s.trim().to_string())
}

#[derive(Default)]
struct Load {
    /// id → message, for everything a client started to send.
    sent: Mutex<HashMap<String, Vec<u8>>>,
    /// ids whose end-of-data got 250.
    acked: Mutex<Vec<String>>,
    acked_count: AtomicUsize,
    /// Complete non-250 replies to end-of-data (the server refused while alive).
    refused: Mutex<Vec<String>>,
    next: AtomicUsize,
    stop: AtomicBool,
}

fn client(
    addr: std::net::SocketAddr,
    load: &Load,
    round: u64,
    thread_no: usize,
    total: usize,
    seed: u64,
) {
    'connections: loop {
        if load.stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut smtp) = Smtp::try_connect(addr) else {
            return;
        };
        smtp.set_read_timeout(Duration::from_secs(30));
        match smtp.try_read_reply() {
            Ok(Some(r)) if r.code == 220 => {}
            _ => return,
        }
        match smtp.try_cmd("EHLO loader.remote.test") {
            Ok(r) if r.code == 250 => {}
            _ => return,
        }
        for _ in 0..PER_CONNECTION {
            let n = load.next.fetch_add(1, Ordering::Relaxed);
            if n >= total || load.stop.load(Ordering::Relaxed) {
                let _ = smtp.try_cmd("QUIT");
                return;
            }
            let id = format!("crash-r{round}-t{thread_no}-n{n}");
            let msg = message(&id, seed ^ (n as u64) ^ (round << 40));
            load.sent.lock().unwrap().insert(id.clone(), msg.clone());
            let result = (|| -> std::io::Result<u16> {
                let r = smtp.try_cmd("MAIL FROM:<loader@remote.test>")?;
                if r.code != 250 {
                    return Ok(r.code);
                }
                let r = smtp.try_cmd("RCPT TO:<alice@example.test>")?;
                if r.code != 250 {
                    return Ok(r.code);
                }
                let r = smtp.try_cmd("DATA")?;
                if r.code != 354 {
                    return Ok(r.code);
                }
                smtp.try_send(&dot_stuff(&msg))?;
                let r = smtp.try_read_reply()?.ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed")
                })?;
                Ok(r.code)
            })();
            match result {
                Ok(250) => {
                    load.acked.lock().unwrap().push(id);
                    load.acked_count.fetch_add(1, Ordering::SeqCst);
                }
                Ok(code) => {
                    load.refused.lock().unwrap().push(format!("{id}: {code}"));
                    let _ = smtp.try_cmd("RSET");
                }
                // The server died under us: this message is unacknowledged.
                Err(_) => return,
            }
        }
        let _ = smtp.try_cmd("QUIT");
        continue 'connections;
    }
}

#[test]
fn acknowledged_messages_survive_sigkill() {
    let total = env_number("MAILROOM_CRASH_MESSAGES", 3000) as usize;
    let rounds = env_number("MAILROOM_CRASH_ROUNDS", 2);
    let seed = env_number(
        "MAILROOM_CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    );
    eprintln!("crash test: {total} messages × {rounds} round(s), MAILROOM_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    let dir = TestDir::new("crash");
    add_user(&dir.data_dir(), "alice");
    let opts = load_options();

    let mut all_sent: HashMap<String, Vec<u8>> = HashMap::new();
    let mut all_acked: Vec<String> = Vec::new();

    for round in 0..rounds {
        let mut server = Server::start(&dir, &opts);
        let addr = server.smtp();
        let load = Arc::new(Load::default());
        // Kill after this many acknowledgements, plus a random delay.
        let kill_after = rng.random_range(total / 10..=total * 6 / 10).max(1);
        let jitter = Duration::from_micros(rng.random_range(0..20_000));
        let start = Instant::now();
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let load = Arc::clone(&load);
                thread::spawn(move || client(addr, &load, round, t, total, seed))
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(600);
        while load.acked_count.load(Ordering::SeqCst) < kill_after
            && !handles.iter().all(|h| h.is_finished())
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(jitter);
        let acked_at_kill = load.acked_count.load(Ordering::SeqCst);
        server.kill9();
        let elapsed = start.elapsed();
        load.stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().expect("client thread panicked");
        }
        let stderr = server.stderr();
        drop(server);

        let refused = load.refused.lock().unwrap().clone();
        assert!(
            refused.is_empty(),
            "the live server refused {} messages under load (first: {:?}); stderr:\n{stderr}",
            refused.len(),
            refused.first()
        );
        let acked = load.acked.lock().unwrap().clone();
        eprintln!(
            "round {round}: SIGKILL after {acked_at_kill} acks ({:.1}s, {:.0} msg/s); {} acknowledged in all",
            elapsed.as_secs_f64(),
            acked_at_kill as f64 / elapsed.as_secs_f64().max(0.001),
            acked.len()
        );
        assert!(
            !acked.is_empty(),
            "no message was acknowledged before the kill: the test proved nothing; stderr:\n{stderr}"
        );
        all_sent.extend(load.sent.lock().unwrap().drain());
        all_acked.extend(acked);

        // Restart on the same data and check everything.
        let mut server = Server::start(&dir, &opts);
        check_maildir(&dir, &all_sent, &all_acked);

        // The restarted server takes mail again.
        let mut smtp = Smtp::connect(server.smtp());
        smtp.read_reply().expect(220, "", "greeting after restart");
        smtp.ehlo("after.remote.test");
        let id = format!("after-crash-r{round}");
        let msg = message(&id, seed);
        smtp.send_mail("loader@remote.test", &["alice@example.test"], &msg)
            .expect(250, "", "message after restart");
        smtp.quit();
        all_sent.insert(id.clone(), msg);
        all_acked.push(id);
        check_maildir(&dir, &all_sent, &all_acked);
        let status = server.terminate(Duration::from_secs(20));
        assert!(
            status.is_some_and(|s| s.success()),
            "restarted server did not stop cleanly on SIGTERM: {status:?}"
        );
    }
}

/// The server of the loads here: alice, SMTP only, room for the load's
/// connections from one address.
fn load_options() -> ServerOptions {
    ServerOptions {
        users: vec!["alice".into()],
        listeners: vec!["smtp"],
        config: Some("[limits]\nmax_connections = 100\nmax_connections_per_ip = 50\n".into()),
        ..ServerOptions::default()
    }
}

/// Issue 10: SIGTERM mid-load is a graceful stop. Transactions past DATA
/// finish (their 250 means stored), the rest get 421 or a close, the server
/// exits 0, and every acknowledged message is in the Maildir, whole.
#[test]
fn sigterm_under_load_loses_nothing() {
    let total = env_number("MAILROOM_CRASH_MESSAGES", 3000) as usize;
    let seed = 7;
    let dir = TestDir::new("sigterm-load");
    add_user(&dir.data_dir(), "alice");
    let opts = load_options();
    let mut server = Server::start(&dir, &opts);
    let addr = server.smtp();
    let load = Arc::new(Load::default());
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let load = Arc::clone(&load);
            thread::spawn(move || client(addr, &load, 0, t, total, seed))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    while load.acked_count.load(Ordering::SeqCst) < total / 4
        && !handles.iter().all(|h| h.is_finished())
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(1));
    }
    let acked_at_term = load.acked_count.load(Ordering::SeqCst);
    let status = server.terminate(Duration::from_secs(30));
    load.stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("client thread panicked");
    }
    let stderr = server.stderr();
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM under load: exit {status:?}; stderr:\n{stderr}"
    );
    let acked = load.acked.lock().unwrap().clone();
    eprintln!(
        "SIGTERM after {acked_at_term} acks; {} acknowledged in all, {} refused",
        acked.len(),
        load.refused.lock().unwrap().len()
    );
    assert!(acked_at_term > 0, "nothing was acknowledged before SIGTERM");
    // Refusals during shutdown are allowed (421), but only with a 4xx: the
    // stop must never turn mail away for good.
    for refused in load.refused.lock().unwrap().iter() {
        assert!(
            refused.ends_with(": 421"),
            "refused during shutdown with {refused}"
        );
    }
    let sent = load.sent.lock().unwrap().clone();
    check_maildir(&dir, &sent, &acked);
}

fn check_maildir(dir: &TestDir, sent: &HashMap<String, Vec<u8>>, acked: &[String]) {
    let stored = maildir_messages(&dir.data_dir(), "alice");
    let mut seen: HashMap<String, usize> = HashMap::new();
    for message in &stored {
        message.assert_well_formed();
        let Some(trace) = split_trace(&message.bytes) else {
            panic!(
                "{}: no trace headers (truncated or corrupt): {}",
                message.path.display(),
                common::show(&message.bytes)
            );
        };
        let Some(id) = id_of(trace.rest) else {
            panic!(
                "{}: no Subject id: {}",
                message.path.display(),
                common::show(trace.rest)
            );
        };
        let Some(original) = sent.get(&id) else {
            panic!("{}: a message nobody sent ({id})", message.path.display());
        };
        common::assert_same_bytes(
            trace.rest,
            original,
            &format!("{} ({id})", message.path.display()),
        );
        *seen.entry(id).or_default() += 1;
    }
    let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "messages stored more than once: {duplicates:?}"
    );
    let lost: Vec<&String> = acked.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost (of {}), e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)]
    );
    eprintln!(
        "maildir: {} messages, {} acknowledged, {} stored without an acknowledgement",
        stored.len(),
        acked.len(),
        stored.len() - acked.len()
    );
}
