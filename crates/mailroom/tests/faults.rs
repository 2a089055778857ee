//! Fault handling end to end (issue 8, part 2): a full disk while mail
//! arrives, a data directory that is missing or unwritable, SIGKILL at
//! random moments during multi-recipient local delivery and during a POP3
//! UPDATE, a remote server that stalls or drops mid-reply, and a resolver
//! that times out.
//!
//! SIGKILL during single-recipient SMTP intake is `crash.rs`; a kill while
//! the queue hands a message to the next hop is `relay.rs`
//! (`crash_during_delivery_loses_nothing`).
//!
//! The disk-full test mounts a small tmpfs, so it needs root (CI runs as
//! root); elsewhere it prints SKIP, and fails under `CI=true`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use mailroom_testkit::dns::{DnsServer, Zone};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Whether we may mount and chown: true as root; otherwise prints SKIP and
/// returns false (a failure under `CI=true`, which runs as root).
fn require_root(what: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    assert!(!in_ci(), "{what} needs root, and CI runs as root");
    eprintln!("SKIP: {what} needs root");
    false
}

fn seed_from_env(name: &str) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// Files (not directories) under `dir`, recursively; none if it is missing.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn queue_list(data_dir: &Path) -> String {
    let out = mailroom(data_dir, &["queue", "list"], None);
    assert!(
        out.status.success(),
        "queue list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The Subject of a stored or sent message (its test id).
fn subject_of(bytes: &[u8]) -> Option<String> {
    String::from_utf8_lossy(bytes)
        .split("\r\n")
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("Subject: "))
        .map(|s| s.trim().to_string())
}

// ---------------------------------------------------------------------------
// Disk full

/// A tmpfs mounted on a directory; unmounted (lazily) on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount tmpfs on {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    /// Free bytes for an unprivileged writer (what the server gets).
    fn available(&self) -> u64 {
        let st = rustix::fs::statvfs(&self.path).unwrap();
        st.f_bavail * st.f_frsize
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Grows `path` until the file system is full; returns its length.
fn fill_disk(path: &Path) -> u64 {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let chunk = vec![b'f'; 64 * 1024];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // The last partial chunk may have been written byte-short; what the
    // file holds is what counts.
    let _ = file.write(&chunk[..1]);
    file.sync_all().ok();
    std::fs::metadata(path).unwrap().len()
}

/// Files in a user's Maildir tmp/, new/ and cur/.
fn maildir_files(data: &Path, user: &str) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let root = data.join("mail").join(user);
    let tmp = files_under(&root.join("tmp"));
    let mut delivered = files_under(&root.join("new"));
    delivered.extend(files_under(&root.join("cur")));
    (tmp, delivered)
}

#[test]
fn disk_full_is_452_4_3_1_nothing_half_written_and_service_resumes() {
    if !require_root("mounting a tmpfs") {
        return;
    }
    let dir = TestDir::new("diskfull");
    let data = dir.data_dir();
    let fs = Tmpfs::mount(&data, "8m");
    add_user(&data, "alice");
    add_user(&data, "bob");
    let closed = closed_port();
    let opts = ServerOptions {
        users: vec!["alice".into(), "bob".into()],
        listeners: vec!["smtp", "pop3"],
        extra_args: vec!["--relay-map".into(), format!("b.test=127.0.0.1:{closed}")],
        // The size limit is far above the disk: a full disk must be told
        // apart from a message that is too big.
        config: Some(
            "trusted_networks = [\"127.0.0.0/8\"]\n\
             [smtp]\nmax_message_size = 20000000\n"
                .into(),
        ),
    };
    let server = Server::start(&dir, &opts);

    // Three messages that POP3 will delete later.
    let mut smtp = Smtp::connect(server.smtp());
    smtp.read_reply().expect(220, "", "greeting");
    smtp.ehlo("client.remote.test");
    for i in 0..3 {
        let m = simple_message(&format!("early-{i}"), &"early mail\n".repeat(3000));
        smtp.send_mail("sender@remote.test", &["alice@example.test"], &m)
            .expect(250, "", "message before the disk fills");
    }
    let before = maildir_files(&data, "alice").1;
    assert_eq!(before.len(), 3);

    // Fill the disk to the last byte.
    let filler = data.join("filler");
    fill_disk(&filler);
    assert!(fs.available() < 4096, "disk not full: {}", fs.available());

    let small = simple_message("small-on-full-disk", "tiny");
    let big = simple_message(
        "two-megabytes",
        &"0123456789abcdef\n".repeat(2 * 1024 * 1024 / 17),
    );
    // RFC 5321 §4.2.3 / RFC 3463 §3.4: insufficient system storage is
    // 452 4.3.1, a temporary failure (the client keeps the message).
    smtp.send_mail("sender@remote.test", &["alice@example.test"], &small)
        .expect(452, "4.3.1", "one recipient, disk full");
    smtp.send_mail(
        "sender@remote.test",
        &["alice@example.test", "bob@example.test"],
        &small,
    )
    .expect(452, "4.3.1", "two recipients, disk full");
    smtp.send_mail("alice@example.test", &["carol@b.test"], &small)
        .expect(452, "4.3.1", "remote recipient (queue), disk full");
    // Over the configured size it is 552 5.3.4 (RFC 1870 §6), however full
    // the disk: the message could never be accepted.
    smtp.cmd("MAIL FROM:<sender@remote.test> SIZE=30000000")
        .expect(552, "5.3.4", "declared size over max_message_size");

    // Nothing half-written: no file in new/ or cur/ beyond the three, none
    // in tmp/, no queue entry, no message file in the queue.
    let (tmp, delivered) = maildir_files(&data, "alice");
    assert_eq!(delivered, before, "alice's Maildir changed");
    assert!(tmp.is_empty(), "debris in alice's tmp/: {tmp:?}");
    let (tmp, delivered) = maildir_files(&data, "bob");
    assert!(
        delivered.is_empty() && tmp.is_empty(),
        "bob: {delivered:?} {tmp:?}"
    );
    let queued = files_under(&data.join("queue"));
    assert!(queued.is_empty(), "files left in the queue: {queued:?}");
    assert!(queue_list(&data).contains("Mail queue is empty"));

    // POP3 still works on a full disk: deleting mail is how space comes
    // back (RFC 1939 §6: the deletions happen in the UPDATE state).
    let mut pop = Pop3::connect(server.pop3()).unwrap();
    pop.login("alice").unwrap();
    let stat = pop.ok("STAT").unwrap();
    assert!(stat.starts_with("+OK 3 "), "STAT on a full disk: {stat}");
    pop.ok("DELE 1").unwrap();
    pop.ok("DELE 2").unwrap();
    let quit = pop.cmd("QUIT").unwrap();
    assert!(quit.starts_with("+OK"), "QUIT on a full disk: {quit}");
    let after = maildir_files(&data, "alice").1;
    assert_eq!(after.len(), 1, "two of three deleted: {after:?}");
    assert!(fs.available() > 60_000, "deleting freed no space");

    // The space POP3 freed takes the small message, on the same session:
    // the server kept serving.
    smtp.send_mail("sender@remote.test", &["alice@example.test"], &small)
        .expect(250, "", "small message after POP3 freed space");
    // Still not enough for 2 MB.
    smtp.send_mail(
        "sender@remote.test",
        &["alice@example.test", "bob@example.test"],
        &big,
    )
    .expect(452, "4.3.1", "2 MB message, about 60 KB free");
    smtp.send_mail("alice@example.test", &["carol@b.test"], &big)
        .expect(452, "4.3.1", "2 MB message for the queue, about 60 KB free");
    assert_eq!(maildir_files(&data, "alice").1.len(), 2);
    assert!(maildir_files(&data, "alice").0.is_empty());
    assert!(maildir_files(&data, "bob").1.is_empty());
    assert!(files_under(&data.join("queue")).is_empty());

    // Space returns: the next message is accepted, byte-exact, for both
    // users and for the queue.
    std::fs::remove_file(&filler).unwrap();
    smtp.send_mail(
        "sender@remote.test",
        &["alice@example.test", "bob@example.test"],
        &big,
    )
    .expect(250, "", "2 MB message after space returned");
    smtp.send_mail("alice@example.test", &["carol@b.test"], &big)
        .expect(250, "", "2 MB message for the queue after space returned");
    smtp.quit();
    let stored = maildir_messages(&data, "bob");
    assert_eq!(stored.len(), 1);
    stored[0].assert_well_formed();
    assert_same_bytes(stored[0].body(), &big, "bob's copy");
    assert!(queue_list(&data).contains("carol@b.test"), "not queued");
    drop(server);
}

// ---------------------------------------------------------------------------
// Missing or unwritable data directory

/// Exit 1, exactly one non-empty line on stderr, no panic.
fn assert_one_line_exit_1(out: &std::process::Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: exit status; stderr:\n{err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: want one line on stderr, got:\n{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{what}: a panic:\n{err}"
    );
    eprintln!("{what}: {}", lines[0]);
    lines[0].to_string()
}

/// `mailroom serve` on `data` with every listener on a free port, run by
/// `runner` (e.g. setpriv); waits for it to exit.
fn serve_once(data: &Path, runner: &[&str]) -> std::process::Output {
    let mut args: Vec<String> = runner.iter().map(|s| s.to_string()).collect();
    args.push(bin().to_string());
    args.extend(
        [
            "serve",
            "--hostname",
            HOSTNAME,
            "--domain",
            DOMAIN,
            "--smtp",
            "127.0.0.1:0",
            "--pop3",
            "127.0.0.1:0",
            "--submission",
            "off",
            "--smtps",
            "off",
            "--pop3s",
            "off",
            "--data-dir",
        ]
        .map(String::from),
    );
    args.push(data.display().to_string());
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]).env_remove("MAILROOM_DATA_DIR");
    run_with_timeout(cmd, None, Duration::from_secs(60))
}

#[test]
fn missing_data_dir_is_one_line_and_exit_1() {
    let dir = TestDir::new("nodata");
    let missing = dir.path().join("no-such-dir");
    for args in [
        &["queue", "list"][..],
        &["queue", "flush"],
        &["user", "del", "alice"],
        &["user", "list"],
    ] {
        let out = mailroom(&missing, args, None);
        let line = assert_one_line_exit_1(&out, &format!("{args:?} without a data dir"));
        assert!(
            line.contains(&missing.display().to_string()),
            "{args:?}: the line should name the directory: {line}"
        );
        assert!(!missing.exists(), "{args:?} created the data dir");
    }
}

#[test]
fn data_dir_under_a_file_is_one_line_and_exit_1() {
    let dir = TestDir::new("datafile");
    let file = dir.write("plain-file", b"not a directory\n");
    let data = file.join("data");
    let out = serve_once(&data, &[]);
    let line = assert_one_line_exit_1(&out, "serve with the data dir under a file");
    assert!(line.contains("plain-file"), "names the path: {line}");
    // And a data dir that is itself a file.
    let out = serve_once(&file, &[]);
    let line = assert_one_line_exit_1(&out, "serve with the data dir a file");
    assert!(
        line.contains("plain-file") && line.contains("not a directory"),
        "names the path and the cause: {line}"
    );
}

#[test]
fn unwritable_data_dir_is_one_line_and_exit_1() {
    if !require_root("running serve as another user") {
        return;
    }
    let dir = TestDir::new("rodata");
    let data = dir.data_dir();
    std::fs::create_dir_all(&data).unwrap();
    // Root ignores permission bits, so serve runs as nobody; the data dir
    // is its own but mode 000 (and its parent is traversable).
    let chown = Command::new("chown")
        .arg("65534:65534")
        .arg(&data)
        .status()
        .unwrap();
    assert!(chown.success());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o000)).unwrap();
    let runner = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
    ];
    if !require_tool("setpriv") {
        return;
    }
    let out = serve_once(&data, &runner);
    let line = assert_one_line_exit_1(&out, "serve on a mode-000 data dir");
    assert!(
        line.contains(&data.display().to_string()) && line.to_lowercase().contains("permission"),
        "should name the directory and the cause: {line}"
    );
    // Read-only (0500) fails the same way: nothing can be created.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o500)).unwrap();
    let out = serve_once(&data, &runner);
    let line = assert_one_line_exit_1(&out, "serve on a read-only data dir");
    assert!(line.to_lowercase().contains("permission"), "cause: {line}");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
}

// ---------------------------------------------------------------------------
// A small POP3 client whose every call may fail (the server may be killed)

struct Pop3 {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Pop3 {
    fn connect(addr: SocketAddr) -> std::io::Result<Pop3> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        let _ = stream.set_nodelay(true);
        let mut pop = Pop3 {
            stream,
            buf: Vec::new(),
        };
        let greeting = pop.line()?;
        if !greeting.starts_with("+OK") {
            return Err(std::io::Error::other(format!("greeting {greeting}")));
        }
        Ok(pop)
    }

    fn line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Ok(String::from_utf8_lossy(&line).trim_end().to_string());
            }
            let mut chunk = [0u8; 16384];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn send(&mut self, line: &str) -> std::io::Result<()> {
        self.stream.write_all(format!("{line}\r\n").as_bytes())
    }

    fn cmd(&mut self, line: &str) -> std::io::Result<String> {
        self.send(line)?;
        self.line()
    }

    /// A command that must get +OK.
    fn ok(&mut self, line: &str) -> std::io::Result<String> {
        let reply = self.cmd(line)?;
        if !reply.starts_with("+OK") {
            return Err(std::io::Error::other(format!("{line} → {reply}")));
        }
        Ok(reply)
    }

    fn login(&mut self, user: &str) -> std::io::Result<()> {
        self.ok(&format!("USER {user}"))?;
        self.ok(&format!("PASS {PASSWORD}"))?;
        Ok(())
    }

    /// The lines of a multi-line response (stuffing removed), after +OK.
    fn multiline(&mut self, line: &str) -> std::io::Result<Vec<String>> {
        self.ok(line)?;
        let mut out = Vec::new();
        loop {
            let l = self.line()?;
            if l == "." {
                return Ok(out);
            }
            out.push(l.strip_prefix('.').map(str::to_string).unwrap_or(l));
        }
    }
}

// ---------------------------------------------------------------------------
// SIGKILL during local delivery to many recipients

/// Recipients of every message in the multi-recipient crash test.
const FANOUT: usize = 12;

fn fanout_users() -> Vec<String> {
    (0..FANOUT).map(|i| format!("u{i:02}")).collect()
}

/// A message with a unique id in its Subject and a body of 1–40 KB.
fn id_message(id: &str, rng: &mut StdRng) -> Vec<u8> {
    let lines = rng.random_range(10..500);
    let mut text = format!(
        "From: loader@remote.test\nTo: many@example.test\nSubject: {id}\n\
         Message-ID: <{id}@remote.test>\n\n"
    );
    for i in 0..lines {
        if i % 13 == 0 {
            text.push('.');
        }
        text.push_str(&format!("{i:04} {id} {}\n", "x".repeat(i % 70)));
    }
    text.push_str(&format!("END {id}\n"));
    crlf(&text)
}

#[derive(Default)]
struct Sent {
    messages: Mutex<HashMap<String, Vec<u8>>>,
    acked: Mutex<HashSet<String>>,
    acks: AtomicUsize,
    stop: AtomicBool,
}

/// Sends messages to every fan-out user until stopped or the server dies.
fn fanout_client(addr: SocketAddr, sent: &Sent, tag: &str, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let rcpts: Vec<String> = fanout_users()
        .iter()
        .map(|u| format!("{u}@example.test"))
        .collect();
    let Ok(mut smtp) = Smtp::try_connect(addr) else {
        return;
    };
    if !matches!(smtp.try_read_reply(), Ok(Some(r)) if r.code == 220) {
        return;
    }
    if !matches!(smtp.try_cmd("EHLO loader.remote.test"), Ok(r) if r.code == 250) {
        return;
    }
    for n in 0.. {
        if sent.stop.load(Ordering::Relaxed) {
            return;
        }
        let id = format!("{tag}-n{n}");
        let message = id_message(&id, &mut rng);
        sent.messages
            .lock()
            .unwrap()
            .insert(id.clone(), message.clone());
        let result = (|| -> std::io::Result<u16> {
            // Pipelined envelope (RFC 2920): one round trip.
            let mut envelope = "MAIL FROM:<loader@remote.test>\r\n".to_string();
            for r in &rcpts {
                envelope.push_str(&format!("RCPT TO:<{r}>\r\n"));
            }
            envelope.push_str("DATA\r\n");
            smtp.try_send(envelope.as_bytes())?;
            // MAIL, each RCPT, DATA.
            for _ in 0..rcpts.len() + 2 {
                smtp.try_read_reply()?
                    .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
            }
            let data = smtp.transcript.last().map(|r| r.code).unwrap_or(0);
            assert_eq!(data, 354, "DATA refused by a live server");
            smtp.try_send(&dot_stuff(&message))?;
            let r = smtp
                .try_read_reply()?
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
            Ok(r.code)
        })();
        match result {
            Ok(250) => {
                sent.acked.lock().unwrap().insert(id);
                sent.acks.fetch_add(1, Ordering::SeqCst);
            }
            Ok(code) => panic!("a live server refused {id}: {code}"),
            Err(_) => return,
        }
    }
}

#[test]
fn sigkill_during_multi_recipient_delivery_loses_nothing() {
    let seed = seed_from_env("MAILROOM_FAULT_SEED");
    let rounds = std::env::var("MAILROOM_FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2u64);
    eprintln!("multi-recipient crash test: {rounds} round(s), MAILROOM_FAULT_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let users = fanout_users();
    let dir = TestDir::new("fanout-crash");
    for u in &users {
        add_user(&dir.data_dir(), u);
    }
    let opts = ServerOptions {
        users: users.clone(),
        listeners: vec!["smtp"],
        config: Some(format!("[smtp]\nmax_recipients = {}\n", FANOUT.max(100))),
        extra_args: Vec::new(),
    };
    let mut all: HashMap<String, Vec<u8>> = HashMap::new();
    let mut acked: HashSet<String> = HashSet::new();
    for round in 0..rounds {
        let mut server = Server::start(&dir, &opts);
        let addr = server.smtp();
        let sent = Arc::new(Sent::default());
        let kill_after = rng.random_range(20..200);
        let jitter = Duration::from_micros(rng.random_range(0..5000));
        let clients: Vec<_> = (0..4)
            .map(|t| {
                let sent = Arc::clone(&sent);
                let s = seed ^ (round << 32) ^ t;
                thread::spawn(move || fanout_client(addr, &sent, &format!("r{round}t{t}"), s))
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(300);
        while sent.acks.load(Ordering::SeqCst) < kill_after && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(jitter);
        server.kill9();
        sent.stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().expect("client thread panicked");
        }
        all.extend(sent.messages.lock().unwrap().drain());
        acked.extend(sent.acked.lock().unwrap().drain());
        eprintln!(
            "round {round}: SIGKILL after {} acknowledged messages × {FANOUT} recipients",
            sent.acks.load(Ordering::SeqCst)
        );

        let server = Server::start(&dir, &opts);
        let mut partial = 0;
        let mut copies: HashMap<String, usize> = HashMap::new();
        for user in &users {
            let mut seen = HashSet::new();
            for m in maildir_messages(&dir.data_dir(), user) {
                m.assert_well_formed();
                let body = m.body();
                let id =
                    subject_of(body).unwrap_or_else(|| panic!("{}: no Subject", m.path.display()));
                let original = all
                    .get(&id)
                    .unwrap_or_else(|| panic!("{}: nobody sent {id}", m.path.display()));
                assert_same_bytes(body, original, &m.path.display().to_string());
                assert!(seen.insert(id.clone()), "{user} holds {id} twice");
                *copies.entry(id).or_default() += 1;
            }
        }
        for id in &acked {
            assert_eq!(
                copies.get(id).copied().unwrap_or(0),
                FANOUT,
                "acknowledged {id} is not in all {FANOUT} maildrops"
            );
        }
        for (id, n) in &copies {
            if !acked.contains(id) && *n != FANOUT {
                partial += 1;
            }
        }
        // An unacknowledged transaction may have reached some recipients
        // (the links are made one by one); the client retries it, so they
        // see it twice (RFC 5321 §6.1 accepts duplicates, never loss).
        eprintln!(
            "round {round}: {} acknowledged, all in every maildrop; {} unacknowledged \
             stored whole, {partial} of them in some maildrops only",
            acked.len(),
            copies.len() - acked.len()
        );
        let mut smtp = Smtp::connect(server.smtp());
        smtp.read_reply().expect(220, "", "greeting after restart");
        smtp.ehlo("after.remote.test");
        let id = format!("after-r{round}");
        let m = id_message(&id, &mut rng);
        let rcpts: Vec<String> = users.iter().map(|u| format!("{u}@example.test")).collect();
        let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
        smtp.send_mail("loader@remote.test", &rcpts, &m)
            .expect(250, "", "after restart");
        smtp.quit();
        all.insert(id.clone(), m);
        acked.insert(id);
        drop(server);
    }
}

// ---------------------------------------------------------------------------
// SIGKILL during a POP3 UPDATE

/// Delivers `n` messages with ids `{tag}-{i}` to alice on one connection.
fn deliver_ids(addr: SocketAddr, tag: &str, n: usize, sent: &mut HashMap<String, Vec<u8>>) {
    let mut rng = StdRng::seed_from_u64(n as u64);
    let mut smtp = Smtp::connect(addr);
    smtp.read_reply().expect(220, "", "greeting");
    smtp.ehlo("client.remote.test");
    for i in 0..n {
        let id = format!("{tag}-{i}");
        let m = id_message(&id, &mut rng);
        smtp.send_mail("sender@remote.test", &["alice@example.test"], &m)
            .expect(250, "", "delivery");
        sent.insert(id, m);
    }
    smtp.quit();
}

/// The ids in alice's Maildir, each checked complete and byte-exact.
fn stored_ids(data: &Path, sent: &HashMap<String, Vec<u8>>) -> HashSet<String> {
    let mut ids = HashSet::new();
    for m in maildir_messages(data, "alice") {
        m.assert_well_formed();
        let id = subject_of(m.body()).expect("Subject");
        assert_same_bytes(m.body(), &sent[&id], &m.path.display().to_string());
        assert!(ids.insert(id.clone()), "{id} stored twice");
    }
    ids
}

#[test]
fn sigkill_during_pop3_update_deletes_all_or_some_never_others() {
    let seed = seed_from_env("MAILROOM_FAULT_SEED");
    let rounds = std::env::var("MAILROOM_FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8usize);
    eprintln!("POP3 UPDATE crash test: {rounds} rounds, MAILROOM_FAULT_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = TestDir::new("pop3-crash");
    let opts = ServerOptions {
        users: vec!["alice".into()],
        listeners: vec!["smtp", "pop3"],
        ..ServerOptions::default()
    };
    add_user(&dir.data_dir(), "alice");
    let data = dir.data_dir();
    let mut sent = HashMap::new();
    let mut present: HashSet<String> = HashSet::new();
    let (mut quit_ok, mut cut_short) = (0, 0);
    for round in 0..rounds {
        let mut server = Server::start(&dir, &opts);
        // Keep about 200 messages in the maildrop.
        let top_up = 200usize.saturating_sub(present.len());
        deliver_ids(server.smtp(), &format!("r{round}"), top_up, &mut sent);
        present = stored_ids(&data, &sent);

        let mut pop = Pop3::connect(server.pop3()).unwrap();
        pop.login("alice").unwrap();
        // Number → id, from each message's header (TOP n 0).
        let count: usize = pop
            .ok("STAT")
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(count, present.len());
        let mut by_number = HashMap::new();
        for n in 1..=count {
            let head = pop.multiline(&format!("TOP {n} 0")).unwrap();
            let id = head
                .iter()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap()
                .to_string();
            by_number.insert(n, id);
        }
        let mut deleted = HashSet::new();
        let mut dele = String::new();
        for n in 1..=count {
            if rng.random_bool(0.5) {
                dele.push_str(&format!("DELE {n}\r\n"));
                deleted.insert(by_number[&n].clone());
            }
        }
        pop.stream.write_all(dele.as_bytes()).unwrap();
        for _ in 0..deleted.len() {
            let r = pop.line().unwrap();
            assert!(r.starts_with("+OK"), "DELE: {r}");
        }
        // QUIT, and SIGKILL somewhere in the UPDATE state (or just before
        // or after it); the last round waits for the reply, so at least
        // one +OK is checked.
        let last = round + 1 == rounds;
        let delay = if rng.random_bool(0.5) {
            Duration::from_micros(rng.random_range(0..5_000))
        } else {
            Duration::from_micros(rng.random_range(5_000..60_000))
        };
        pop.send("QUIT").unwrap();
        let reply = if last {
            let reply = pop.line().unwrap_or_default();
            server.kill9();
            reply
        } else {
            thread::sleep(delay);
            server.kill9();
            pop.line().unwrap_or_default()
        };
        let acknowledged = reply.starts_with("+OK");

        let server = Server::start(&dir, &opts);
        let after = stored_ids(&data, &sent);
        let kept: HashSet<&String> = present.iter().filter(|id| !deleted.contains(*id)).collect();
        for id in &kept {
            assert!(
                after.contains(*id),
                "round {round}: {id} was not DELE'd but is gone"
            );
        }
        let gone = deleted.iter().filter(|id| !after.contains(*id)).count();
        if acknowledged {
            quit_ok += 1;
            assert_eq!(
                gone,
                deleted.len(),
                "round {round}: QUIT said +OK but some DELE'd messages remain"
            );
        } else {
            cut_short += 1;
        }
        assert!(
            after.iter().all(|id| present.contains(id)),
            "round {round}: a message appeared from nowhere"
        );
        eprintln!(
            "round {round}: {} messages, {} DELE'd, kill {delay:?} after QUIT, QUIT {}; \
             {gone} of the DELE'd gone, all {} others kept",
            present.len(),
            deleted.len(),
            if acknowledged { "+OK" } else { "unanswered" },
            kept.len()
        );
        present = after;
        drop(server);
    }
    eprintln!("{quit_ok} rounds answered +OK before the kill, {cut_short} cut short");
}

// ---------------------------------------------------------------------------
// SIGKILL while the queue delivers

#[test]
fn sigkill_at_random_moments_during_queue_delivery_loses_nothing() {
    let seed = seed_from_env("MAILROOM_FAULT_SEED");
    eprintln!("queue crash test: MAILROOM_FAULT_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let sink = Sink::start(SinkScript {
        data_delay: Duration::from_millis(150),
        ..SinkScript::default()
    });
    let dir = TestDir::new("queue-crash");
    let opts = ServerOptions {
        extra_args: vec![
            "--relay-map".into(),
            format!("b.test=127.0.0.1:{}", sink.port()),
        ],
        listeners: vec!["smtp"],
        config: Some(
            "trusted_networks = [\"127.0.0.0/8\"]\n[queue]\nretry_schedule = [\"1s\"]\n\
             max_connections_per_destination = 3\n"
                .into(),
        ),
        ..ServerOptions::default()
    };
    for u in &opts.users {
        add_user(&dir.data_dir(), u);
    }
    let mut server = Server::start(&dir, &opts);
    let mut smtp = Smtp::connect(server.smtp());
    smtp.read_reply().expect(220, "", "greeting");
    smtp.ehlo("client.test");
    let total = 40;
    let mut ids = Vec::new();
    for i in 0..total {
        let id = format!("queued-{i}");
        let m = simple_message(&id, "relayed through a crash");
        smtp.send_mail("alice@example.test", &[&format!("user{i}@b.test")], &m)
            .expect(250, "", "queued");
        ids.push(id);
    }
    smtp.quit();
    for round in 0..3 {
        let wait = Duration::from_millis(rng.random_range(100..1500));
        thread::sleep(wait);
        let got = sink.messages().len();
        server.kill9();
        eprintln!("round {round}: SIGKILL {wait:?} into delivery, {got} at the sink so far");
        server = Server::start(&dir, &opts);
    }
    let all_arrived = || {
        let have: HashSet<String> = sink
            .messages()
            .iter()
            .filter_map(|m| subject_of(&m.data))
            .collect();
        ids.iter().all(|id| have.contains(id))
    };
    assert!(
        wait_for(Duration::from_secs(90), all_arrived),
        "some queued messages never arrived; queue:\n{}",
        queue_list(&dir.data_dir())
    );
    assert!(
        wait_for(Duration::from_secs(20), || queue_list(&dir.data_dir())
            .contains("Mail queue is empty")),
        "queue not empty:\n{}",
        queue_list(&dir.data_dir())
    );
    let got = sink.messages();
    assert!(
        maildir_messages(&dir.data_dir(), "alice").is_empty(),
        "no bounce"
    );
    eprintln!(
        "{} messages queued, {} copies at the sink ({} transfers cut by a kill)",
        total,
        got.len(),
        sink.aborted()
    );
    drop(server);
}

// ---------------------------------------------------------------------------
// A next hop that stalls or drops mid-reply

/// How a [`BadPeer`] misbehaves on its first `bad` connections (later
/// ones are a well-behaved SMTP server).
#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    /// Answers EHLO with `250-` and nothing more, then closes after `hold`.
    StallInEhlo { hold: Duration },
    /// Takes the whole message, answers `250-` to its end, and closes.
    DropAfterData,
}

struct BadPeer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    delivered: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl BadPeer {
    fn start(how: Misbehaviour, bad: usize) -> BadPeer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let delivered = Arc::new(Mutex::new(Vec::new()));
        {
            let connections = Arc::clone(&connections);
            let delivered = Arc::clone(&delivered);
            thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let n = connections.fetch_add(1, Ordering::SeqCst);
                    let delivered = Arc::clone(&delivered);
                    let how = (n < bad).then_some(how);
                    thread::spawn(move || {
                        let _ = bad_peer_session(stream, how, &delivered);
                    });
                }
            });
        }
        BadPeer {
            addr,
            connections,
            delivered,
        }
    }
}

fn bad_peer_session(
    stream: TcpStream,
    how: Option<Misbehaviour>,
    delivered: &Mutex<Vec<Vec<u8>>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    out.write_all(b"220 bad.test ESMTP\r\n")?;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let upper = line.trim_end().to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            if let Some(Misbehaviour::StallInEhlo { hold }) = how {
                out.write_all(b"250-bad.test\r\n")?;
                thread::sleep(hold);
                return Ok(());
            }
            out.write_all(b"250-bad.test\r\n250 8BITMIME\r\n")?;
        } else if upper.starts_with("MAIL") || upper.starts_with("RCPT") || upper == "RSET" {
            out.write_all(b"250 2.0.0 ok\r\n")?;
        } else if upper == "DATA" {
            out.write_all(b"354 go on\r\n")?;
            let mut data = Vec::new();
            loop {
                let mut l = Vec::new();
                if reader.read_until(b'\n', &mut l)? == 0 {
                    return Ok(());
                }
                if l == b".\r\n" {
                    break;
                }
                data.extend_from_slice(&l);
            }
            if let Some(Misbehaviour::DropAfterData) = how {
                out.write_all(b"250-2.0.0 queued as\r\n")?;
                return Ok(());
            }
            delivered.lock().unwrap().push(data);
            out.write_all(b"250 2.0.0 queued\r\n")?;
        } else if upper == "QUIT" {
            out.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            out.write_all(b"502 5.5.2 no\r\n")?;
        }
    }
}

/// Submits one message for `rcpt` to a relaying instance.
fn submit(addr: SocketAddr, rcpt: &str, message: &[u8]) {
    let mut smtp = Smtp::connect(addr);
    smtp.read_reply().expect(220, "", "greeting");
    smtp.ehlo("client.test");
    smtp.send_mail("alice@example.test", &[rcpt], message)
        .expect(250, "", "submission");
    smtp.quit();
}

fn relay_env(tag: &str, extra_args: Vec<String>) -> Env {
    Env::with(
        tag,
        ServerOptions {
            extra_args,
            ..ServerOptions::default()
        }
        .config("trusted_networks = [\"127.0.0.0/8\"]\n[queue]\nretry_schedule = [\"1s\"]\n"),
    )
}

fn check_deferred_then_delivered(env: &Env, peer: &BadPeer, message: &[u8], what: &str) {
    let data = env.dir.data_dir();
    // The failed attempt is recorded with its reason, and the message stays.
    let mut list = String::new();
    assert!(
        wait_for(Duration::from_secs(60), || {
            list = queue_list(&data);
            list.lines().any(|l| l.trim_start().starts_with('('))
        }),
        "{what}: no deferral recorded; queue:\n{list}"
    );
    eprintln!("{what}: deferred:\n{list}");
    assert!(list.contains("user@bad.test"), "{what}: {list}");
    assert!(env.messages("alice").is_empty(), "{what}: bounced");
    // Retried until the peer behaves: delivered once, queue empty, no bounce.
    assert!(
        wait_for(Duration::from_secs(60), || !peer
            .delivered
            .lock()
            .unwrap()
            .is_empty()),
        "{what}: never delivered after {} connections; queue:\n{}",
        peer.connections.load(Ordering::SeqCst),
        queue_list(&data)
    );
    assert!(contains(&peer.delivered.lock().unwrap()[0], message));
    assert!(
        wait_for(Duration::from_secs(20), || queue_list(&data)
            .contains("Mail queue is empty")),
        "{what}: queue not empty"
    );
    assert!(env.messages("alice").is_empty(), "{what}: bounced");
    assert!(
        peer.connections.load(Ordering::SeqCst) >= 3,
        "{what}: not retried"
    );
}

#[test]
fn next_hop_dropping_mid_reply_defers_and_retries() {
    let peer = BadPeer::start(Misbehaviour::DropAfterData, 2);
    let env = relay_env(
        "drop-mid-reply",
        vec!["--relay-map".into(), format!("bad.test={}", peer.addr)],
    );
    let message = simple_message("dropped mid-reply", "retry me");
    submit(env.smtp(), "user@bad.test", &message);
    check_deferred_then_delivered(&env, &peer, &message, "drop after 250-");
}

#[test]
fn next_hop_stalling_mid_reply_defers_and_retries() {
    let peer = BadPeer::start(
        Misbehaviour::StallInEhlo {
            hold: Duration::from_secs(3),
        },
        2,
    );
    let env = relay_env(
        "stall-mid-reply",
        vec!["--relay-map".into(), format!("bad.test={}", peer.addr)],
    );
    let message = simple_message("stalled mid-reply", "retry me");
    submit(env.smtp(), "user@bad.test", &message);
    // While the peer stalls the message stays queued (and is not bounced).
    thread::sleep(Duration::from_secs(1));
    assert!(queue_list(&env.dir.data_dir()).contains("user@bad.test"));
    check_deferred_then_delivered(&env, &peer, &message, "stall in a multi-line reply");
}

/// A peer that never finishes its EHLO reply: the reply timeout ends the
/// attempt, the message is deferred, and the retry delivers it. The RFC
/// 5321 §4.5.3.2 timeout is 5 minutes; `[queue] reply_timeout` caps it at 2
/// seconds here.
#[test]
fn next_hop_that_stalls_forever_times_out_and_defers() {
    let peer = BadPeer::start(
        Misbehaviour::StallInEhlo {
            hold: Duration::from_secs(3600),
        },
        1,
    );
    let env = Env::with(
        "stall-forever",
        ServerOptions {
            extra_args: vec!["--relay-map".into(), format!("bad.test={}", peer.addr)],
            ..ServerOptions::default()
        }
        .config(
            "trusted_networks = [\"127.0.0.0/8\"]\n[queue]\nretry_schedule = [\"1s\"]\nreply_timeout = \"2s\"\n",
        ),
    );
    let message = simple_message("stalled forever", "retry me");
    submit(env.smtp(), "user@bad.test", &message);
    let started = Instant::now();
    let mut list = String::new();
    assert!(
        wait_for(Duration::from_secs(60), || {
            list = queue_list(&env.dir.data_dir());
            list.lines().any(|l| l.trim_start().starts_with('('))
        }),
        "no deferral after a minute:\n{list}"
    );
    eprintln!("deferred after {:?}:\n{list}", started.elapsed());
    assert!(
        list.contains("timed out") || list.contains("timeout"),
        "{list}"
    );
    assert!(env.messages("alice").is_empty(), "bounced");
    assert!(
        wait_for(Duration::from_secs(60), || !peer
            .delivered
            .lock()
            .unwrap()
            .is_empty()),
        "not delivered on the retry"
    );
}

// ---------------------------------------------------------------------------
// A resolver that times out

#[test]
fn resolver_timeout_defers_and_keeps_the_message() {
    let dns = DnsServer::start(Zone::new().timeout("slow.test"));
    let env = Env::with(
        "dns-timeout",
        ServerOptions {
            extra_args: vec!["--dns".into(), dns.addr().to_string()],
            ..ServerOptions::default()
        }
        .config("trusted_networks = [\"127.0.0.0/8\"]\n[queue]\nretry_schedule = [\"1s\"]\n"),
    );
    let message = simple_message("behind a slow resolver", "wait for me");
    submit(env.smtp(), "user@slow.test", &message);
    let data = env.dir.data_dir();
    let mut list = String::new();
    assert!(
        wait_for(Duration::from_secs(90), || {
            list = queue_list(&data);
            list.lines().any(|l| l.trim_start().starts_with('('))
        }),
        "no deferral recorded (dns queries {}); queue:\n{list}",
        dns.queries()
    );
    eprintln!("deferred:\n{list}");
    assert!(list.contains("user@slow.test"), "{list}");
    assert!(
        list.contains("slow.test"),
        "the reason names the domain: {list}"
    );
    // Retried (1 s schedule), still queued, never bounced.
    let first = dns.queries();
    assert!(
        wait_for(Duration::from_secs(60), || dns.queries() > first),
        "not retried"
    );
    assert!(
        queue_list(&data).contains("user@slow.test"),
        "dropped from the queue"
    );
    assert!(
        env.messages("alice").is_empty(),
        "a DNS timeout must not bounce"
    );
}
