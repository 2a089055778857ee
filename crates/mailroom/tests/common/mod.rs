//! Harness shared by the end-to-end tests: starts the real `mailroom` binary
//! on free loopback ports, talks SMTP over raw sockets, reads Maildirs.
//!
//! Every socket read has a timeout and every child process is killed on drop
//! (SIGTERM, then SIGKILL), so a misbehaving server fails a test instead of
//! hanging it. When a test panics, the server's stderr is printed and its
//! data directory is kept for inspection.

// Each test crate includes this module and uses only part of it.
#![allow(dead_code)]
// `pub` inside a private test module is how the test crates share items.
#![allow(unreachable_pub)]
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `--hostname` of every test server (also a local domain).
pub const HOSTNAME: &str = "mx.example.test";
/// `--domain` of every test server.
pub const DOMAIN: &str = "example.test";
/// Password given to every test user.
pub const PASSWORD: &str = "correct horse battery staple";
/// How long any single socket read may block.
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `serve` may take to print `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a CLI command (`user add`, ...) may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mailroom")
}

/// Whether the suite runs in CI (`CI=true`): missing tools are failures there.
pub fn in_ci() -> bool {
    matches!(
        std::env::var("CI").as_deref(),
        Ok("true") | Ok("1") | Ok("yes")
    )
}

/// Whether `tool` is on PATH. Prints `SKIP: <tool> not installed` and
/// returns false when it is not, so the caller can return early; under
/// `CI=true` a missing tool panics instead (CI installs everything).
pub fn require_tool(tool: &str) -> bool {
    if which(tool).is_some() {
        return true;
    }
    if in_ci() {
        panic!("{tool} not installed, and CI=true: scripts/test.sh should have installed it");
    }
    eprintln!("SKIP: {tool} not installed");
    false
}

/// Looks `tool` up on PATH (plus the sbin directories, where Postfix's tools live).
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for extra in ["/usr/sbin", "/sbin", "/usr/local/sbin"] {
        dirs.push(PathBuf::from(extra));
    }
    dirs.into_iter().map(|d| d.join(tool)).find(|p| p.is_file())
}

// ---------------------------------------------------------------------------
// Temporary directories

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir, removed on drop unless the
/// test panicked or `MAILROOM_KEEP_TEST_DIRS` is set.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new(tag: &str) -> TestDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "mailroom-test-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("create test dir");
        TestDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The mailroom data directory inside this test directory.
    pub fn data_dir(&self) -> PathBuf {
        self.path.join("data")
    }

    /// Writes `contents` to `name` inside the directory and returns its path.
    pub fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let p = self.path.join(name);
        std::fs::write(&p, contents).expect("write test file");
        p
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if thread::panicking() || std::env::var_os("MAILROOM_KEEP_TEST_DIRS").is_some() {
            eprintln!("test directory kept: {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------------------
// Running the CLI

/// Runs `mailroom --data-dir DATA ARGS...` with `stdin` (if any), killing it
/// after a timeout. Returns its output whatever the exit status.
pub fn mailroom(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(bin());
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run_with_timeout(cmd, stdin.map(str::as_bytes), COMMAND_TIMEOUT)
}

/// Spawns `cmd`, feeds it `stdin`, collects its output; kills it and panics
/// after `timeout`.
pub fn run_with_timeout(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    if stdin.is_none() {
        cmd.stdin(Stdio::null());
    } else {
        cmd.stdin(Stdio::piped());
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let input = input.to_vec();
        // A writer thread, so a child that never reads cannot block us.
        thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let out_reader = drain(child.stdout.take().expect("stdout pipe"));
    let err_reader = drain(child.stderr.take().expect("stderr pipe"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().expect("wait for child") {
            Some(status) => break status,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = err_reader.join().unwrap_or_default();
                panic!(
                    "{desc} did not finish within {timeout:?}; stderr:\n{}",
                    String::from_utf8_lossy(&stderr)
                );
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// `mailroom user add NAME --password-stdin`; panics unless it succeeds.
pub fn add_user(data_dir: &Path, name: &str) {
    let out = mailroom(
        data_dir,
        &["user", "add", name, "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(
        out.status.success(),
        "user add {name} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------
// The server

/// How to start `mailroom serve`.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Users created (in this order, so the first is postmaster) before the
    /// first start.
    pub users: Vec<String>,
    /// TOML written to a file and passed with `--config`.
    pub config: Option<String>,
    /// Listeners started on 127.0.0.1:0; the others are `off`.
    pub listeners: Vec<&'static str>,
    /// Additional arguments after `serve`.
    pub extra_args: Vec<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            users: vec!["alice".into(), "bob".into()],
            config: None,
            listeners: vec!["smtp", "pop3"],
            extra_args: Vec::new(),
        }
    }
}

impl ServerOptions {
    pub fn config(mut self, toml: &str) -> Self {
        self.config = Some(toml.to_string());
        self
    }
}

/// A running `mailroom serve`, stopped (SIGTERM, then SIGKILL) on drop.
pub struct Server {
    child: Option<Child>,
    data_dir: PathBuf,
    addrs: HashMap<String, SocketAddr>,
    log: Arc<Mutex<Vec<String>>>,
}

const SERVICES: [&str; 5] = ["smtp", "submission", "smtps", "pop3", "pop3s"];

impl Server {
    /// Starts `serve` on `data_dir` (users must exist already) and waits for
    /// `ready`.
    pub fn start(dir: &TestDir, opts: &ServerOptions) -> Server {
        Server::start_on(dir, opts, "127.0.0.1")
    }

    /// Like [`Server::start`], but the listeners in `opts.listeners` bind
    /// `ip:0` (say `127.0.0.2`, to test a peer outside
    /// `plaintext_auth_networks`) instead of `127.0.0.1:0`.
    pub fn start_on(dir: &TestDir, opts: &ServerOptions, ip: &str) -> Server {
        let data_dir = dir.data_dir();
        let mut cmd = Command::new(bin());
        cmd.arg("serve").arg("--data-dir").arg(&data_dir).args([
            "--hostname",
            HOSTNAME,
            "--domain",
            DOMAIN,
        ]);
        for service in SERVICES {
            let value = if opts.listeners.contains(&service) {
                format!("{ip}:0")
            } else {
                "off".to_string()
            };
            cmd.arg(format!("--{service}")).arg(value);
        }
        if let Some(config) = &opts.config {
            let path = dir.write("mailroom.toml", config.as_bytes());
            cmd.arg("--config").arg(path);
        }
        cmd.args(&opts.extra_args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env_remove("MAILROOM_DATA_DIR");
        let desc = format!("{cmd:?}");
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {desc}: {e}"));

        // Drain stderr forever in a thread (the child must never block on a
        // full pipe); forward lines to us until `ready`.
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let stderr = child.stderr.take().expect("stderr pipe");
        {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                let mut reader = BufReader::new(stderr);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let text = String::from_utf8_lossy(&line).trim_end().to_string();
                            if let Ok(mut log) = log.lock() {
                                log.push(text.clone());
                            }
                            let _ = tx.send(text);
                        }
                    }
                }
            });
        }

        let mut server = Server {
            child: Some(child),
            data_dir,
            addrs: HashMap::new(),
            log,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let line = line.trim();
                    if line == "ready" {
                        break;
                    }
                    let mut words = line.split_whitespace();
                    if words.next() == Some("listening")
                        && let (Some(service), Some(addr)) = (words.next(), words.next())
                        && let Ok(addr) = addr.parse::<SocketAddr>()
                    {
                        server.addrs.insert(service.to_string(), addr);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "{desc}: no `ready` within {READY_TIMEOUT:?}; stderr:\n{}",
                        server.stderr()
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = server.child.as_mut().and_then(|c| c.wait().ok());
                    panic!(
                        "{desc} exited before `ready` ({status:?}); stderr:\n{}",
                        server.stderr()
                    );
                }
            }
        }
        for service in &opts.listeners {
            assert!(
                server.addrs.contains_key(*service),
                "serve printed no `listening {service} <addr>` line; stderr:\n{}",
                server.stderr()
            );
        }
        server
    }

    /// The address a listener is bound to.
    pub fn addr(&self, service: &str) -> SocketAddr {
        *self
            .addrs
            .get(service)
            .unwrap_or_else(|| panic!("no {service} listener"))
    }

    pub fn smtp(&self) -> SocketAddr {
        self.addr("smtp")
    }

    pub fn pop3(&self) -> SocketAddr {
        self.addr("pop3")
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (up to `timeout`) for the exit status; None if
    /// it did not exit in time (it is then SIGKILLed).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        signal_term(child.id());
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
            }
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Peak resident set size (VmHWM) in KiB, from /proc.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        status_kib(self.pid(), "VmHWM:")
    }
}

/// A KiB figure (`VmRSS:`, `VmHWM:`, ...) from `/proc/PID/status`.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

impl Drop for Server {
    fn drop(&mut self) {
        if thread::panicking() {
            let log = self.stderr();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(200)..];
            eprintln!(
                "---- mailroom serve stderr (last {} lines) ----",
                tail.len()
            );
            for line in tail {
                eprintln!("{line}");
            }
            eprintln!("---- end of stderr ----");
        }
        let _ = self.terminate(Duration::from_secs(5));
    }
}

fn signal_term(pid: u32) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

/// A test directory with users and a running server: the usual fixture.
/// Fields drop in order: the server stops before its directory goes.
pub struct Env {
    pub server: Server,
    pub dir: TestDir,
}

impl Env {
    /// alice and bob, SMTP and POP3 on free ports.
    pub fn start(tag: &str) -> Env {
        Env::with(tag, ServerOptions::default())
    }

    pub fn with(tag: &str, opts: ServerOptions) -> Env {
        let dir = TestDir::new(tag);
        for user in &opts.users {
            add_user(&dir.data_dir(), user);
        }
        let server = Server::start(&dir, &opts);
        Env { server, dir }
    }

    pub fn smtp(&self) -> SocketAddr {
        self.server.smtp()
    }

    /// Messages in `user`'s Maildir (new/ and cur/), sorted by file name.
    pub fn messages(&self, user: &str) -> Vec<StoredMessage> {
        maildir_messages(&self.dir.data_dir(), user)
    }

    /// Connects and reads the greeting (asserted to be 220).
    pub fn connect(&self) -> Smtp {
        let mut smtp = Smtp::connect(self.smtp());
        let greeting = smtp.read_reply();
        assert_eq!(greeting.code, 220, "greeting: {greeting}");
        smtp
    }
}

// ---------------------------------------------------------------------------
// Maildir

/// One message file from a Maildir.
#[derive(Clone, Debug)]
pub struct StoredMessage {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

impl StoredMessage {
    /// The message after the trace headers mailroom prepends; panics with
    /// the file's start when they are missing or malformed.
    pub fn body(&self) -> &[u8] {
        match split_trace(&self.bytes) {
            Some(t) => t.rest,
            None => panic!(
                "{}: does not start with Return-Path + Received:\n{}",
                self.path.display(),
                String::from_utf8_lossy(&self.bytes[..self.bytes.len().min(600)])
            ),
        }
    }

    /// The address inside `Return-Path: <...>`.
    pub fn return_path(&self) -> String {
        let t = split_trace(&self.bytes).expect("trace headers");
        t.return_path
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// Checks the Maildir naming contract: `<unique>,S=<size>` where size is
    /// the file's length, and that every line ends in CRLF.
    pub fn assert_well_formed(&self) {
        let name = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let size = name
            .split(',')
            .find_map(|part| part.strip_prefix("S="))
            .and_then(|s| s.split(':').next())
            .and_then(|s| s.parse::<usize>().ok());
        assert_eq!(
            size,
            Some(self.bytes.len()),
            "{}: name must carry S=<file size> ({} bytes)",
            self.path.display(),
            self.bytes.len()
        );
        assert!(
            self.bytes.ends_with(b"\r\n"),
            "{}: does not end in CRLF",
            self.path.display()
        );
        if let Some(pos) = find_bare_line_end(&self.bytes) {
            panic!(
                "{}: bare CR or LF at byte {pos}: {:?}",
                self.path.display(),
                String::from_utf8_lossy(
                    &self.bytes[pos.saturating_sub(40)..(pos + 40).min(self.bytes.len())]
                )
            );
        }
    }
}

/// The parts of a stored message.
pub struct Trace<'a> {
    pub return_path: &'a str,
    /// The whole `Received:` field, folded lines included.
    pub received: &'a str,
    pub rest: &'a [u8],
}

/// Splits `Return-Path: ...\r\nReceived: ...(\r\n[ \t]...)*\r\n` off a stored message.
pub fn split_trace(bytes: &[u8]) -> Option<Trace<'_>> {
    let first_end = find(bytes, b"\r\n")?;
    let first = std::str::from_utf8(&bytes[..first_end]).ok()?;
    let return_path = strip_prefix_ci(first, "Return-Path:")?;
    let mut pos = first_end + 2;
    let received_start = pos;
    let line_end = find(&bytes[pos..], b"\r\n")? + pos;
    strip_prefix_ci(
        std::str::from_utf8(&bytes[pos..line_end]).ok()?,
        "Received:",
    )?;
    pos = line_end + 2;
    while pos < bytes.len() && (bytes[pos] == b' ' || bytes[pos] == b'\t') {
        pos += find(&bytes[pos..], b"\r\n")? + 2;
    }
    let received = std::str::from_utf8(&bytes[received_start..pos - 2]).ok()?;
    Some(Trace {
        return_path,
        received,
        rest: &bytes[pos..],
    })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

/// Message files in `DATA/mail/USER/{new,cur}`, sorted by file name. A
/// missing Maildir is an empty one.
pub fn maildir_messages(data_dir: &Path, user: &str) -> Vec<StoredMessage> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let dir = data_dir.join("mail").join(user).join(sub);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() {
                let bytes = std::fs::read(&path).expect("read message file");
                out.push(StoredMessage { path, bytes });
            }
        }
    }
    out.sort_by(|a, b| a.path.file_name().cmp(&b.path.file_name()));
    out
}

/// Number of files in `DATA/mail/USER/new` and `cur`.
pub fn maildir_count(data_dir: &Path, user: &str) -> usize {
    ["new", "cur"]
        .iter()
        .map(|sub| {
            std::fs::read_dir(data_dir.join("mail").join(user).join(sub))
                .map(|d| d.flatten().count())
                .unwrap_or(0)
        })
        .sum()
}

// ---------------------------------------------------------------------------
// Bytes

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

/// Position of a CR not followed by LF or an LF not preceded by CR.
pub fn find_bare_line_end(bytes: &[u8]) -> Option<usize> {
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\r' && bytes.get(i + 1) != Some(&b'\n') {
            return Some(i);
        }
        if b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            return Some(i);
        }
    }
    None
}

/// Converts any line ending (LF, CRLF) to CRLF: what SMTP transmits.
pub fn crlf(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 20);
    for line in text.split_inclusive('\n') {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// SMTP transparency (RFC 5321 §4.5.2): doubles leading dots and appends the
/// end-of-data line. `message` must use CRLF line ends and end with CRLF.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut at_line_start = true;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Shows bytes compactly for assertion messages.
pub fn show(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.len() > 2000 {
        format!("{}…[{} bytes]…{}", &s[..800], s.len(), &s[s.len() - 800..])
    } else {
        s.into_owned()
    }
}

/// Asserts two messages are byte-identical, showing the first difference.
pub fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let from = at.saturating_sub(60);
    panic!(
        "{what}: stored message differs from what was sent at byte {at} (got {} bytes, sent {})\n\
         got:  {:?}\nsent: {:?}",
        got.len(),
        want.len(),
        String::from_utf8_lossy(&got[from..(at + 60).min(got.len())]),
        String::from_utf8_lossy(&want[from..(at + 60).min(want.len())]),
    );
}

// ---------------------------------------------------------------------------
// A raw SMTP client

/// One SMTP reply: the code and each line's text (after `ddd-`/`ddd `).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The enhanced status code (RFC 3463), when the first line starts with one.
    pub fn enhanced(&self) -> Option<&str> {
        let first = self.lines.first()?.split_whitespace().next()?;
        let parts: Vec<&str> = first.split('.').collect();
        let ok = parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        ok.then_some(first)
    }

    /// Asserts code and enhanced code (`"5.1.1"`; `""` for none checked).
    pub fn expect(&self, code: u16, enhanced: &str, context: &str) {
        assert_eq!(
            self.code, code,
            "{context}: expected {code} {enhanced}, got: {self}"
        );
        if !enhanced.is_empty() {
            assert_eq!(
                self.enhanced(),
                Some(enhanced),
                "{context}: expected {code} {enhanced}, got: {self}"
            );
        }
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.lines.len();
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i + 1 == n { ' ' } else { '-' };
            if i > 0 {
                write!(f, " | ")?;
            }
            write!(f, "{}{sep}{line}", self.code)?;
        }
        Ok(())
    }
}

/// A raw SMTP connection with timeouts on every read.
pub struct Smtp {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Every reply read so far, in order.
    pub transcript: Vec<Reply>,
}

impl Smtp {
    pub fn connect(addr: SocketAddr) -> Smtp {
        Smtp::try_connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
    }

    pub fn try_connect(addr: SocketAddr) -> std::io::Result<Smtp> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        let _ = stream.set_nodelay(true);
        Ok(Smtp {
            stream,
            buf: Vec::new(),
            transcript: Vec::new(),
        })
    }

    pub fn set_read_timeout(&mut self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).expect("timeout");
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write: {e}"));
    }

    /// Sends bytes, returning the error instead of panicking (crash tests).
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends a command line and reads its reply, returning errors (crash tests).
    pub fn try_cmd(&mut self, line: &str) -> std::io::Result<Reply> {
        self.try_send(format!("{line}\r\n").as_bytes())?;
        self.try_read_reply()?.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed")
        })
    }

    /// Sends a command line (CRLF appended) and reads its reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        let reply = self.try_read_reply();
        match reply {
            Ok(Some(r)) => r,
            Ok(None) => panic!("connection closed after {line:?}"),
            Err(e) => panic!("no reply to {line:?}: {e}"),
        }
    }

    /// Sends a command and asserts its reply's code.
    pub fn ok(&mut self, line: &str, code: u16) -> Reply {
        let r = self.cmd(line);
        assert_eq!(r.code, code, "{line:?} → {r}");
        r
    }

    /// EHLO, asserting 250; returns the keywords (upper case) it lists.
    pub fn ehlo(&mut self, name: &str) -> Vec<String> {
        let r = self.ok(&format!("EHLO {name}"), 250);
        r.lines
            .iter()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_ascii_uppercase)
            .collect()
    }

    /// Reads one reply; panics on timeout, EOF or malformed replies.
    pub fn read_reply(&mut self) -> Reply {
        match self.try_read_reply() {
            Ok(Some(r)) => r,
            Ok(None) => panic!("connection closed while waiting for a reply"),
            Err(e) => panic!("waiting for a reply: {e}"),
        }
    }

    /// Reads one reply; Ok(None) when the server closed the connection
    /// before sending any byte of one.
    pub fn try_read_reply(&mut self) -> std::io::Result<Option<Reply>> {
        let mut code = None;
        let mut lines = Vec::new();
        loop {
            let Some(line) = self.read_line()? else {
                if lines.is_empty() && self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("connection closed inside a reply: {lines:?}"),
                ));
            };
            let text = String::from_utf8_lossy(&line).into_owned();
            assert!(
                text.len() >= 3 && text.as_bytes()[..3].iter().all(u8::is_ascii_digit),
                "malformed reply line {text:?}"
            );
            let this_code: u16 = text[..3].parse().expect("digits");
            if let Some(c) = code {
                assert_eq!(c, this_code, "multiline reply changes code: {text:?}");
            }
            code = Some(this_code);
            let sep = text.as_bytes().get(3).copied();
            let rest = text.get(4..).unwrap_or("").to_string();
            lines.push(rest);
            match sep {
                None | Some(b' ') => break,
                Some(b'-') => continue,
                Some(_) => panic!("malformed reply line {text:?}"),
            }
        }
        let reply = Reply {
            code: code.expect("a line"),
            lines,
        };
        self.transcript.push(reply.clone());
        Ok(Some(reply))
    }

    /// One CRLF-terminated line (without CRLF); None on EOF. A reply line
    /// ending in a bare LF fails the test: replies are CRLF (RFC 5321 §4.2).
    fn read_line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                assert_eq!(
                    line.pop(),
                    Some(b'\r'),
                    "reply line not terminated by CRLF: {:?}",
                    String::from_utf8_lossy(&line)
                );
                return Ok(Some(line));
            }
            let mut chunk = [0u8; 8192];
            let n = match self.stream.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads replies until the server stays quiet for `quiet` (or closes).
    pub fn read_replies_until_quiet(&mut self, quiet: Duration) -> Vec<Reply> {
        self.set_read_timeout(quiet);
        let mut out = Vec::new();
        loop {
            match self.try_read_reply() {
                Ok(Some(r)) => out.push(r),
                Ok(None) => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => panic!("reading replies: {e}"),
            }
        }
        self.set_read_timeout(READ_TIMEOUT);
        out
    }

    /// Whether the server has closed the connection (reads EOF within `wait`).
    pub fn is_closed(&mut self, wait: Duration) -> bool {
        self.set_read_timeout(wait);
        let mut chunk = [0u8; 512];
        let closed = loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        self.set_read_timeout(READ_TIMEOUT);
        closed
    }

    /// A full transaction: MAIL, RCPTs, DATA, the dot-stuffed message, and
    /// returns the reply to end-of-data. Asserts 250/250/354 on the way.
    pub fn send_mail(&mut self, from: &str, to: &[&str], message: &[u8]) -> Reply {
        self.ok(&format!("MAIL FROM:<{from}>"), 250);
        for rcpt in to {
            self.ok(&format!("RCPT TO:<{rcpt}>"), 250);
        }
        self.ok("DATA", 354);
        self.send(&dot_stuff(message));
        self.read_reply()
    }

    pub fn quit(&mut self) {
        let r = self.cmd("QUIT");
        assert_eq!(r.code, 221, "QUIT → {r}");
    }
}

/// A small valid message (CRLF, ends with CRLF) with a distinctive subject.
pub fn simple_message(subject: &str, body: &str) -> Vec<u8> {
    crlf(&format!(
        "From: Sender <sender@remote.test>\n\
         To: Alice <alice@example.test>\n\
         Subject: {subject}\n\
         Message-ID: <{}@remote.test>\n\
         Date: Thu, 27 Nov 2025 12:00:00 +0000\n\
         \n\
         {body}\n",
        subject.replace(' ', "-")
    ))
}

// ---------------------------------------------------------------------------
// Waiting, and a scripted SMTP sink (next hop for outbound-mail tests)

/// Polls `cond` every 100 ms until it returns true or `timeout` passes;
/// returns whether it became true.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// How a [`Sink`] answers.
#[derive(Clone, Debug, Default)]
pub struct SinkScript {
    /// The first N RCPT commands (over all connections) get `451 4.3.0`.
    pub temp_fail_rcpts: usize,
    /// The first N end-of-data replies (over all connections) are `451 4.3.0`.
    pub temp_fail_data: usize,
    /// Every RCPT gets this reply line (e.g. `550 5.1.1 <x>: User unknown`).
    pub reject_rcpt: Option<String>,
    /// Wait this long after the end of data before the final reply.
    pub data_delay: Duration,
}

/// One transaction a [`Sink`] accepted (whole message received).
#[derive(Clone, Debug)]
pub struct SinkMessage {
    pub from: String,
    pub rcpts: Vec<String>,
    /// The message, dot-stuffing undone, without the final `.` line.
    pub data: Vec<u8>,
}

#[derive(Default)]
struct SinkState {
    messages: Vec<SinkMessage>,
    rcpts_seen: usize,
    datas_ended: usize,
    data_started: usize,
    aborted: usize,
    connections: usize,
}

/// A tiny SMTP server on std sockets (one thread per connection) that records
/// what it receives; stops accepting on drop.
pub struct Sink {
    addr: SocketAddr,
    state: Arc<Mutex<SinkState>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Sink {
    pub fn start(script: SinkScript) -> Sink {
        Sink::start_on("127.0.0.1:0".parse().unwrap(), script)
    }

    /// Listens on `addr` (a fixed port, e.g. a destination that was down).
    pub fn start_on(addr: SocketAddr, script: SinkScript) -> Sink {
        let listener =
            std::net::TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(SinkState::default()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let script = Arc::new(script);
        {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let state = Arc::clone(&state);
                            let script = Arc::clone(&script);
                            thread::spawn(move || {
                                let _ = sink_session(stream, &state, &script);
                            });
                        }
                        Err(_) => thread::sleep(Duration::from_millis(20)),
                    }
                }
            });
        }
        Sink { addr, state, stop }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Messages fully received so far.
    pub fn messages(&self) -> Vec<SinkMessage> {
        self.state.lock().unwrap().messages.clone()
    }

    /// How many DATA transfers have started (354 sent).
    pub fn data_started(&self) -> usize {
        self.state.lock().unwrap().data_started
    }

    /// How many transfers the client abandoned before the final reply
    /// (only checked with a `data_delay`).
    pub fn aborted(&self) -> usize {
        self.state.lock().unwrap().aborted
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    /// How many RCPT commands were seen.
    pub fn rcpts_seen(&self) -> usize {
        self.state.lock().unwrap().rcpts_seen
    }

    /// Waits until at least `n` messages arrived; returns whether they did.
    pub fn wait_messages(&self, n: usize, timeout: Duration) -> bool {
        wait_for(timeout, || self.messages().len() >= n)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Whether the peer has closed `stream` (EOF or reset without blocking).
fn peer_closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut byte = [0u8; 1];
    let closed = match stream.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    let _ = stream.set_nonblocking(false);
    closed
}

fn sink_session(
    stream: TcpStream,
    state: &Mutex<SinkState>,
    script: &SinkScript,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    state.lock().unwrap().connections += 1;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    out.write_all(b"220 sink.test ESMTP test sink\r\n")?;
    let mut from = String::new();
    let mut rcpts: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let upper = text.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            "250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8".into()
        } else if upper.starts_with("HELO") {
            "250 sink.test".into()
        } else if upper.starts_with("MAIL FROM:") {
            from = text[10..].trim().to_string();
            rcpts.clear();
            "250 2.1.0 ok".into()
        } else if upper.starts_with("RCPT TO:") {
            let n = {
                let mut s = state.lock().unwrap();
                s.rcpts_seen += 1;
                s.rcpts_seen
            };
            if let Some(reject) = &script.reject_rcpt {
                reject.clone()
            } else if n <= script.temp_fail_rcpts {
                "451 4.3.0 Temporary failure, try again later".into()
            } else {
                rcpts.push(text[8..].trim().to_string());
                "250 2.1.5 ok".into()
            }
        } else if upper == "DATA" {
            if rcpts.is_empty() {
                "554 5.5.1 no valid recipients".into()
            } else {
                state.lock().unwrap().data_started += 1;
                out.write_all(b"354 go ahead\r\n")?;
                let mut data = Vec::new();
                loop {
                    line.clear();
                    if reader.read_until(b'\n', &mut line)? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" {
                        break;
                    }
                    let l = if line.starts_with(b"..") {
                        &line[1..]
                    } else {
                        &line[..]
                    };
                    data.extend_from_slice(l);
                }
                thread::sleep(script.data_delay);
                // A client that died while we waited never saw the reply:
                // the transfer does not count as a delivery.
                if !script.data_delay.is_zero() && peer_closed(reader.get_ref()) {
                    state.lock().unwrap().aborted += 1;
                    return Ok(());
                }
                let n = {
                    let mut s = state.lock().unwrap();
                    s.datas_ended += 1;
                    s.datas_ended
                };
                if n <= script.temp_fail_data {
                    "451 4.3.0 Temporary failure, try again later".into()
                } else {
                    state.lock().unwrap().messages.push(SinkMessage {
                        from: from.clone(),
                        rcpts: std::mem::take(&mut rcpts),
                        data,
                    });
                    "250 2.0.0 queued".into()
                }
            }
        } else if upper == "RSET" {
            rcpts.clear();
            "250 2.0.0 ok".into()
        } else if upper == "NOOP" {
            "250 2.0.0 ok".into()
        } else if upper == "QUIT" {
            out.write_all(b"221 2.0.0 bye\r\n")?;
            return Ok(());
        } else {
            "502 5.5.2 not implemented".into()
        };
        out.write_all(format!("{reply}\r\n").as_bytes())?;
    }
}

/// Removes one leading header field (with its folded continuation lines)
/// named `name` from `bytes`; None when the message does not start with it.
pub fn strip_leading_field<'a>(bytes: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let prefix = format!("{name}:");
    if bytes.len() < prefix.len() || !bytes[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    {
        return None;
    }
    let mut pos = find(bytes, b"\r\n")? + 2;
    while pos < bytes.len() && (bytes[pos] == b' ' || bytes[pos] == b'\t') {
        pos += find(&bytes[pos..], b"\r\n")? + 2;
    }
    Some(&bytes[pos..])
}

// ---------------------------------------------------------------------------
// Listeners on another loopback address

impl Env {
    /// Like [`Env::with`], with the listeners bound to `ip:0`.
    pub fn with_ip(tag: &str, opts: ServerOptions, ip: &str) -> Env {
        let dir = TestDir::new(tag);
        for user in &opts.users {
            add_user(&dir.data_dir(), user);
        }
        let server = Server::start_on(&dir, &opts, ip);
        Env { server, dir }
    }
}

/// Runs `python3 -c SCRIPT ARGS...` (killed after 90 s) and returns its
/// stdout; panics with stdout and stderr unless it exits 0.
pub fn python(script: &str, args: &[String]) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).args(args);
    let out = run_with_timeout(cmd, None, Duration::from_secs(90));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python script failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
