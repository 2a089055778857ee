//! POP3 end to end: mail goes in over SMTP and comes out of `mailroom serve`
//! over POP3 through real clients (Python's poplib, curl, fetchmail) and a
//! raw socket client. Every RETR payload must equal the stored Maildir file
//! byte for byte (the trace headers mailroom prepends plus exactly what was
//! sent), including lines that start with dots, an 8-bit body and a 2 MB
//! message. Also: STAT/LIST sizes, UIDL stability across a restart, the
//! UPDATE-state semantics of DELE (QUIT removes, a dropped connection keeps,
//! RSET restores), TOP, the `[IN-USE]` maildrop lock and that a wrong
//! password and an unknown user get the same reply.
//!
//! python3, curl and fetchmail come from Debian packages (scripts/test.sh);
//! without them (and without CI=true) their tests print "SKIP" and pass.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    Env, PASSWORD, READ_TIMEOUT, Server, ServerOptions, StoredMessage, assert_same_bytes, crlf,
    dot_stuff, find, require_tool, run_with_timeout, show, status_kib,
};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
const SENDER: &str = "sender@remote.test";

// ---------------------------------------------------------------------------
// Test messages

/// Lines starting with dots in every shape that matters for byte-stuffing,
/// ending with a line that is a lone dot.
fn dots_message() -> Vec<u8> {
    crlf(
        "From: Sender <sender@remote.test>\n\
         To: Alice <alice@example.test>\n\
         Subject: dots\n\
         Message-ID: <dots@remote.test>\n\
         Date: Thu, 27 Nov 2025 12:00:00 +0000\n\
         \n\
         .\n\
         ..\n\
         .x\n\
         ...\n\
         . dot space\n\
         not a dot.\n\
         \n\
         ..x\n\
         .\n",
    )
}

/// UTF-8 in the body (sent with BODY=8BITMIME), a dot line among it.
fn eight_bit_message() -> Vec<u8> {
    crlf(
        "From: Sender <sender@remote.test>\n\
         To: Alice <alice@example.test>\n\
         Subject: eight bit\n\
         Message-ID: <eightbit@remote.test>\n\
         Date: Thu, 27 Nov 2025 12:00:00 +0000\n\
         MIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\n\
         Content-Transfer-Encoding: 8bit\n\
         \n\
         Grüße aus Köln, ½ € ✓ — 日本語のテキスト\n\
         .Ünïcödé after a dot\n\
         \u{00ff}\u{00fe} end\n",
    )
}

/// A message of at least 2 MiB with a dotted line every 100 lines.
fn big_message() -> Vec<u8> {
    let mut text = String::from(
        "From: Sender <sender@remote.test>\n\
         To: Alice <alice@example.test>\n\
         Subject: big\n\
         Message-ID: <big@remote.test>\n\
         Date: Thu, 27 Nov 2025 12:00:00 +0000\n\
         \n",
    );
    let mut i = 0u32;
    while text.len() < 2 * 1024 * 1024 {
        if i.is_multiple_of(100) {
            text.push_str(&format!(".{i:07} a line that starts with a dot\n"));
        }
        text.push_str(&format!(
            "line {i:07}: the quick brown fox jumps over the lazy dog 0123456789\n"
        ));
        i += 1;
    }
    text.push_str("last line\n");
    crlf(&text)
}

/// The three messages of the byte-exactness tests.
fn corpus() -> Vec<Vec<u8>> {
    vec![dots_message(), eight_bit_message(), big_message()]
}

/// Delivers `message` to `to` over SMTP with BODY=8BITMIME.
fn deliver(env: &Env, to: &str, message: &[u8]) {
    let mut smtp = env.connect();
    let keywords = smtp.ehlo("client.remote.test");
    assert!(
        keywords.iter().any(|k| k == "8BITMIME"),
        "EHLO lacks 8BITMIME: {keywords:?}"
    );
    smtp.ok(&format!("MAIL FROM:<{SENDER}> BODY=8BITMIME"), 250);
    smtp.ok(&format!("RCPT TO:<{to}>"), 250);
    smtp.ok("DATA", 354);
    smtp.send(&dot_stuff(message));
    let reply = smtp.read_reply();
    assert_eq!(reply.code, 250, "end of data → {reply}");
    smtp.quit();
}

/// A server with alice's Maildir holding `messages` (delivered in order).
fn env_with(tag: &str, messages: &[Vec<u8>]) -> Env {
    let env = Env::start(tag);
    for m in messages {
        deliver(&env, "alice@example.test", m);
    }
    assert_eq!(env.messages("alice").len(), messages.len(), "delivered");
    env
}

/// `n` small distinct messages.
fn small_messages(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            crlf(&format!(
                "From: Sender <sender@remote.test>\n\
                 To: Alice <alice@example.test>\n\
                 Subject: small {i}\n\
                 Message-ID: <small-{i}@remote.test>\n\
                 \n\
                 body of message {i}\n\
                 .dotted {i}\n"
            ))
        })
        .collect()
}

/// The `Message-ID` of a message (the text between `<` and `>`).
fn message_id(bytes: &[u8]) -> String {
    let start = find(bytes, b"Message-ID: <")
        .unwrap_or_else(|| panic!("no Message-ID in {}", show(&bytes[..bytes.len().min(800)])))
        + 13;
    let end = find(&bytes[start..], b">").expect("Message-ID end") + start;
    String::from_utf8_lossy(&bytes[start..end]).into_owned()
}

/// Asserts that `payloads` (what a client retrieved, one per message) are
/// exactly the files in alice's Maildir, and that each file is the trace
/// headers followed by exactly what was sent. Matches by Message-ID.
fn assert_payloads_exact(env: &Env, sent: &[Vec<u8>], payloads: &[Vec<u8>], what: &str) {
    let stored = env.messages("alice");
    assert_eq!(stored.len(), sent.len(), "{what}: stored messages");
    assert_eq!(payloads.len(), sent.len(), "{what}: retrieved messages");
    for message in sent {
        let id = message_id(message);
        let file: Vec<&StoredMessage> = stored
            .iter()
            .filter(|s| message_id(&s.bytes) == id)
            .collect();
        assert_eq!(file.len(), 1, "{what}: stored files with Message-ID {id}");
        let file = file[0];
        file.assert_well_formed();
        assert_same_bytes(file.body(), message, &format!("{what}: stored <{id}>"));
        let got: Vec<&Vec<u8>> = payloads.iter().filter(|p| message_id(p) == id).collect();
        assert_eq!(
            got.len(),
            1,
            "{what}: retrieved messages with Message-ID {id}"
        );
        assert_same_bytes(got[0], &file.bytes, &format!("{what}: RETR <{id}>"));
    }
}

// ---------------------------------------------------------------------------
// A raw POP3 client with timeouts on every read

struct Pop3 {
    stream: TcpStream,
    buf: Vec<u8>,
    greeting: String,
}

impl Pop3 {
    /// Connects and reads the greeting (asserted to be +OK).
    fn connect(addr: SocketAddr) -> Pop3 {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let _ = stream.set_nodelay(true);
        let mut pop = Pop3 {
            stream,
            buf: Vec::new(),
            greeting: String::new(),
        };
        let greeting = pop.line();
        assert!(greeting.starts_with("+OK"), "greeting: {greeting:?}");
        pop.greeting = greeting;
        pop
    }

    fn send(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("write {line:?}: {e}"));
    }

    /// One CRLF-terminated line including the CRLF; None on EOF.
    fn raw_line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                assert!(
                    line.ends_with(b"\r\n"),
                    "line not terminated by CRLF: {:?}",
                    String::from_utf8_lossy(&line)
                );
                return Some(line);
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = match self.stream.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
                Err(e) => panic!("reading from the server: {e}"),
            };
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A status line without CRLF; panics on EOF or timeout.
    fn line(&mut self) -> String {
        let line = self.raw_line().expect("connection closed");
        String::from_utf8_lossy(&line[..line.len() - 2]).into_owned()
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(line);
        self.line()
    }

    /// Sends a command and asserts `+OK`.
    fn ok(&mut self, line: &str) -> String {
        let reply = self.cmd(line);
        assert!(reply.starts_with("+OK"), "{line:?} → {reply:?}");
        reply
    }

    /// The body of a multi-line response as sent (still byte-stuffed), up to
    /// but without the terminating ".CRLF". Asserts that every line
    /// starting with a dot is stuffed.
    fn multiline_raw(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let line = self
                .raw_line()
                .expect("connection closed inside a multi-line response");
            if line == b".\r\n" {
                return out;
            }
            assert!(
                line[0] != b'.' || line.get(1) == Some(&b'.'),
                "line starting with a dot not byte-stuffed: {:?}",
                String::from_utf8_lossy(&line)
            );
            out.extend_from_slice(&line);
        }
    }

    /// The body of a multi-line response with the byte-stuffing removed.
    fn multiline(&mut self) -> Vec<u8> {
        unstuff(&self.multiline_raw())
    }

    fn login(&mut self, user: &str) {
        self.ok(&format!("USER {user}"));
        self.ok(&format!("PASS {PASSWORD}"));
    }

    /// STAT → (count, octets).
    fn stat(&mut self) -> (usize, u64) {
        let reply = self.ok("STAT");
        let words: Vec<&str> = reply.split_whitespace().collect();
        assert!(words.len() >= 3, "STAT → {reply:?}");
        (words[1].parse().unwrap(), words[2].parse().unwrap())
    }

    /// LIST → [(number, octets)].
    fn list(&mut self) -> Vec<(usize, u64)> {
        self.ok("LIST");
        let body = self.multiline();
        String::from_utf8(body)
            .unwrap()
            .lines()
            .map(|l| {
                let (n, size) = l.split_once(' ').expect("scan listing");
                (n.parse().unwrap(), size.parse().unwrap())
            })
            .collect()
    }

    /// UIDL → [(number, unique-id)].
    fn uidl(&mut self) -> Vec<(usize, String)> {
        self.ok("UIDL");
        let body = self.multiline();
        String::from_utf8(body)
            .unwrap()
            .lines()
            .map(|l| {
                let (n, uid) = l.split_once(' ').expect("unique-id listing");
                (n.parse().unwrap(), uid.to_string())
            })
            .collect()
    }

    fn retr(&mut self, n: usize) -> Vec<u8> {
        self.ok(&format!("RETR {n}"));
        self.multiline()
    }

    fn quit(mut self) {
        self.ok("QUIT");
        assert!(self.is_closed(), "server did not close after QUIT");
    }

    /// Whether the server closed the connection (EOF within 5 s).
    fn is_closed(&mut self) -> bool {
        self.stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut chunk = [0u8; 512];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

/// Removes POP3 byte-stuffing (RFC 1939 §3) from CRLF lines.
fn unstuff(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut at_line_start = true;
    for &b in bytes {
        if !(at_line_start && b == b'.') {
            out.push(b);
        }
        at_line_start = b == b'\n';
    }
    out
}

/// Logs alice in, retrying while a just-dropped session still holds the
/// lock (the server notices the EOF asynchronously), for at most 5 s.
fn login_alice(addr: SocketAddr) -> Pop3 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut pop = Pop3::connect(addr);
        pop.ok("USER alice");
        let reply = pop.cmd(&format!("PASS {PASSWORD}"));
        if reply.starts_with("+OK") {
            return pop;
        }
        assert!(
            reply.starts_with("-ERR [IN-USE]") && Instant::now() < deadline,
            "PASS → {reply:?}"
        );
        drop(pop);
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------
// Raw client: exactness, sizes, stuffing on the wire

#[test]
fn raw_retr_is_byte_exact_and_sizes_match() {
    let sent = corpus();
    let env = env_with("pop3-raw", &sent);
    let mut pop = login_alice(env.server.pop3());
    let (count, total) = pop.stat();
    let list = pop.list();
    assert_eq!(count, 3, "STAT count");
    assert_eq!(
        list.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "LIST numbers"
    );
    let mut payloads = Vec::new();
    let mut sum = 0;
    for &(n, size) in &list {
        let reply = pop.cmd(&format!("LIST {n}"));
        assert_eq!(reply, format!("+OK {n} {size}"), "LIST {n}");
        pop.ok(&format!("RETR {n}"));
        let raw = pop.multiline_raw();
        let payload = unstuff(&raw);
        assert_eq!(
            payload.len() as u64,
            size,
            "LIST size of message {n} vs the bytes RETR delivered (before stuffing)"
        );
        sum += size;
        // The payload is CRLF-only, so every line start is a dot to stuff.
        let dotted_lines = payload
            .split(|&b| b == b'\n')
            .filter(|l| l.first() == Some(&b'.'))
            .count();
        assert_eq!(
            raw.len(),
            payload.len() + dotted_lines,
            "message {n}: one stuffed dot per dotted line"
        );
        payloads.push(payload);
    }
    assert_eq!(total, sum, "STAT octets = sum of LIST sizes");
    assert_payloads_exact(&env, &sent, &payloads, "raw RETR");
    // The dotted lines go out stuffed, as RFC 1939 §3 demands.
    let dots = payloads
        .iter()
        .position(|p| message_id(p) == "dots@remote.test")
        .unwrap();
    pop.ok(&format!("RETR {}", dots + 1));
    let raw = pop.multiline_raw();
    let body = &raw[find(&raw, b"\r\n\r\n").unwrap() + 4..];
    assert_same_bytes(
        body,
        b"..\r\n...\r\n..x\r\n....\r\n.. dot space\r\nnot a dot.\r\n\r\n...x\r\n..\r\n",
        "dots message as stuffed on the wire",
    );
    pop.quit();
    // Retrieving deletes nothing.
    assert_eq!(env.messages("alice").len(), 3, "RETR + QUIT kept the mail");
}

// ---------------------------------------------------------------------------
// Python poplib

const POPLIB_SCRIPT: &str = r#"
import os, poplib, sys
poplib._MAXLINE = 1 << 20
host, port, user, password, outdir = sys.argv[1:6]
p = poplib.POP3(host, int(port), timeout=30)
p.user(user)
p.pass_(password)
count, size = p.stat()
print("STAT", count, size)
for entry in p.list()[1]:
    print("LIST", entry.decode())
for entry in p.uidl()[1]:
    print("UIDL", entry.decode())
for n in range(1, count + 1):
    resp, lines, octets = p.retr(n)
    data = b"".join(line + b"\r\n" for line in lines)
    with open(os.path.join(outdir, "%d.eml" % n), "wb") as f:
        f.write(data)
    print("RETR", n, octets, len(data))
print("QUIT", p.quit().decode())
"#;

#[test]
fn poplib_retrieves_byte_exact() {
    if !require_tool("python3") {
        return;
    }
    let sent = corpus();
    let env = env_with("pop3-poplib", &sent);
    let outdir = env.dir.path().join("poplib");
    std::fs::create_dir_all(&outdir).unwrap();
    let addr = env.server.pop3();
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(POPLIB_SCRIPT)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg("alice")
        .arg(PASSWORD)
        .arg(&outdir);
    let out = run_with_timeout(cmd, None, CLIENT_TIMEOUT);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "poplib failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let payloads: Vec<Vec<u8>> = (1..=3)
        .map(|n| std::fs::read(outdir.join(format!("{n}.eml"))).unwrap())
        .collect();
    // STAT and LIST agree with what RETR delivered.
    let total: usize = payloads.iter().map(Vec::len).sum();
    assert_eq!(lines[0], format!("STAT 3 {total}"), "poplib: {stdout}");
    for (i, p) in payloads.iter().enumerate() {
        let n = i + 1;
        assert!(
            lines.contains(&format!("LIST {n} {}", p.len()).as_str()),
            "poplib: LIST {n} should be {}: {stdout}",
            p.len()
        );
    }
    // UIDLs: three, distinct.
    let uids: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("UIDL "))
        .map(|l| l.split_once(' ').unwrap().1)
        .collect();
    assert_eq!(uids.len(), 3, "poplib UIDL: {stdout}");
    let mut unique = uids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 3, "UIDLs must be unique: {uids:?}");
    assert!(
        lines.last().is_some_and(|l| l.starts_with("QUIT +OK")),
        "poplib: {stdout}"
    );
    assert_payloads_exact(&env, &sent, &payloads, "poplib");
}

/// poplib's view of a wrong password and of an unknown user must be the same.
const POPLIB_LOGIN_SCRIPT: &str = r#"
import poplib, sys
host, port, user, password = sys.argv[1:5]
p = poplib.POP3(host, int(port), timeout=30)
print("USER", p.user(user).decode())
try:
    print("PASS", p.pass_(password).decode())
except poplib.error_proto as e:
    print("ERROR", e.args[0].decode())
"#;

fn poplib_login(addr: SocketAddr, user: &str, password: &str) -> Vec<String> {
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(POPLIB_LOGIN_SCRIPT)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(user)
        .arg(password);
    let out = run_with_timeout(cmd, None, CLIENT_TIMEOUT);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "poplib login failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_string).collect()
}

// ---------------------------------------------------------------------------
// curl

fn curl_pop3(addr: SocketAddr, path: &str, extra: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-S", "--max-time", "60", "-u"])
        .arg(format!("alice:{PASSWORD}"))
        .args(extra)
        .arg(format!("pop3://{}:{}/{path}", addr.ip(), addr.port()));
    run_with_timeout(cmd, None, CLIENT_TIMEOUT)
}

#[test]
fn curl_retrieves_byte_exact() {
    if !require_tool("curl") {
        return;
    }
    let sent = corpus();
    let env = env_with("pop3-curl", &sent);
    let addr = env.server.pop3();
    // `curl pop3://host/` is LIST.
    let out = curl_pop3(addr, "", &[]);
    assert!(
        out.status.success(),
        "curl LIST failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8(out.stdout).unwrap();
    let mut payloads = Vec::new();
    for n in 1..=3 {
        let out = curl_pop3(addr, &n.to_string(), &[]);
        assert!(
            out.status.success(),
            "curl RETR {n} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            listing
                .lines()
                .any(|l| l == format!("{n} {}", out.stdout.len())),
            "curl: LIST should give message {n} {} octets: {listing:?}",
            out.stdout.len()
        );
        payloads.push(out.stdout);
    }
    assert_payloads_exact(&env, &sent, &payloads, "curl");
    // curl's sessions did not delete anything.
    assert_eq!(env.messages("alice").len(), 3);
}

// ---------------------------------------------------------------------------
// fetchmail

/// Runs fetchmail once against alice's maildrop (keeping the mail) and
/// returns the messages its MDA wrote, one file each. With `invisible`
/// fetchmail adds no `Received:` header of its own.
fn run_fetchmail(env: &Env, tag: &str, invisible: bool) -> Vec<Vec<u8>> {
    let addr = env.server.pop3();
    let outdir = env.dir.path().join(format!("fetchmail-{tag}"));
    std::fs::create_dir_all(&outdir).unwrap();
    // `keep` and `fetchall` make it RETR every message and delete none;
    // `no rewrite` leaves addresses in headers alone; the MDA writes each
    // message to its own file. STLS is offered with a self-signed
    // certificate: `sslproto ''` keeps fetchmail on plaintext, which the
    // server allows on loopback.
    let rc = format!(
        "set no syslog\n\
         {invisible}\
         poll 127.0.0.1 with proto POP3 port {port} uidl\n\
         \tuser \"alice\" there with password \"{PASSWORD}\" is \"alice\" here\n\
         \toptions keep fetchall no rewrite sslproto ''\n\
         \tmda \"/bin/sh -c 'cat > $(mktemp {dir}/msg.XXXXXX)'\"\n",
        invisible = if invisible { "set invisible\n" } else { "" },
        port = addr.port(),
        dir = outdir.display()
    );
    let rcfile = env.dir.write(&format!("fetchmailrc-{tag}"), rc.as_bytes());
    set_mode(&rcfile, 0o600);
    let mut cmd = Command::new("fetchmail");
    cmd.arg("-f")
        .arg(&rcfile)
        .arg("--nodetach")
        .arg("--idfile")
        .arg(env.dir.path().join(format!("fetchids-{tag}")))
        .arg("--pidfile")
        .arg(env.dir.path().join(format!("fetchmail-{tag}.pid")))
        .env("HOME", env.dir.path())
        .env("FETCHMAILHOME", env.dir.path());
    let out = run_with_timeout(cmd, None, CLIENT_TIMEOUT);
    // Exit 0: mail was retrieved (1 would be "no mail").
    assert_eq!(
        out.status.code(),
        Some(0),
        "fetchmail ({tag}):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut payloads: Vec<Vec<u8>> = std::fs::read_dir(&outdir)
        .unwrap()
        .flatten()
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    // fetchmail hands its MDA LF line ends (its documented behaviour):
    // convert back before comparing. The messages hold no bare CR or LF, so
    // this loses nothing.
    for p in &mut payloads {
        assert!(
            !p.contains(&b'\r'),
            "fetchmail ({tag}) was expected to convert CRLF to LF"
        );
        *p = crlf(&String::from_utf8(std::mem::take(p)).unwrap());
    }
    payloads
}

/// Removes the `Received:` field fetchmail inserts right after the
/// `Return-Path:` line (folded lines included).
fn strip_fetchmail_received(message: &[u8]) -> Vec<u8> {
    let return_path = b"Return-Path: <sender@remote.test>\r\n";
    assert!(
        message.starts_with(return_path),
        "fetchmail should keep Return-Path first: {}",
        show(&message[..message.len().min(400)])
    );
    let start = return_path.len();
    assert!(
        message[start..].starts_with(b"Received: from 127.0.0.1 [127.0.0.1]\r\n"),
        "fetchmail should insert its own Received: field: {}",
        show(&message[..message.len().min(400)])
    );
    let mut pos = start + find(&message[start..], b"\r\n").unwrap() + 2;
    while message[pos] == b' ' || message[pos] == b'\t' {
        pos += find(&message[pos..], b"\r\n").unwrap() + 2;
    }
    let mut out = message[..start].to_vec();
    out.extend_from_slice(&message[pos..]);
    out
}

#[test]
fn fetchmail_retrieves_exact_modulo_its_own_changes() {
    if !require_tool("fetchmail") {
        return;
    }
    let sent = corpus();
    let env = env_with("pop3-fetchmail", &sent);
    // `set invisible`: fetchmail's only change is CRLF → LF.
    let payloads = run_fetchmail(&env, "invisible", true);
    assert_payloads_exact(&env, &sent, &payloads, "fetchmail (invisible)");
    // By default it also inserts a Received: field after Return-Path;
    // nothing else changes.
    let payloads: Vec<Vec<u8>> = run_fetchmail(&env, "default", false)
        .iter()
        .map(|p| strip_fetchmail_received(p))
        .collect();
    assert_payloads_exact(&env, &sent, &payloads, "fetchmail (default)");
    assert_eq!(env.messages("alice").len(), 3, "fetchmail kept the mail");
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

// ---------------------------------------------------------------------------
// UIDL across a restart

/// The Message-IDs of messages 1..=count, retrieved in order.
fn ids_by_number(pop: &mut Pop3, count: usize) -> Vec<String> {
    (1..=count).map(|n| message_id(&pop.retr(n))).collect()
}

/// A graceful shutdown ends an idle session with `-ERR [SYS/TEMP]`, without
/// UPDATE: what it marked deleted is still there after the restart.
#[test]
fn shutdown_ends_an_idle_session_without_update() {
    let env_messages = small_messages(3);
    let mut env = env_with("pop3-shutdown", &env_messages);
    let mut pop = login_alice(env.server.pop3());
    pop.ok("DELE 1");
    let started = Instant::now();
    let status = env.server.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "serve did not exit cleanly on SIGTERM: {status:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "an idle POP3 session held shutdown for {:?}",
        started.elapsed()
    );
    let last = pop
        .raw_line()
        .map(|l| String::from_utf8_lossy(&l).into_owned());
    assert_eq!(
        last.as_deref(),
        Some("-ERR [SYS/TEMP] Server shutting down\r\n"),
        "the session's last line"
    );
    assert!(pop.raw_line().is_none(), "the session was closed");
    env.server = Server::start(&env.dir, &ServerOptions::default());
    let mut pop = login_alice(env.server.pop3());
    assert_eq!(pop.stat().0, 3, "DELE without UPDATE removed a message");
    pop.quit();
}

/// A password check's Argon2id working area (~19 MiB) is given back once
/// checks stop coming, the second time as the first (the area must not
/// come back from, and stay in, the heap).
#[test]
fn password_check_memory_is_given_back_when_idle() {
    let env = env_with("pop3-argon-idle", &small_messages(1));
    let pid = env.server.pid();
    let rss = || status_kib(pid, "VmRSS:").expect("VmRSS of the server");
    for user in ["alice", "bob"] {
        let before = rss();
        let mut pop = Pop3::connect(env.server.pop3());
        pop.ok(&format!("USER {user}"));
        pop.ok(&format!("PASS {PASSWORD}"));
        pop.quit();
        let checked = rss();
        assert!(
            checked >= before + 15 * 1024,
            "{user}'s login (an Argon2id check): VmRSS {before} → {checked} KiB"
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let now = rss();
            if now + 15 * 1024 <= checked {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "after {user}'s login VmRSS stays at {now} KiB ({checked} right after it)"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A full address in a local domain names its user (account wizards try it
/// first); one in another domain names nobody.
#[test]
fn a_full_local_address_logs_in_as_its_user() {
    let env = env_with("pop3-full-address", &small_messages(1));
    let mut pop = Pop3::connect(env.server.pop3());
    pop.ok("USER Alice@Example.Test");
    pop.ok(&format!("PASS {PASSWORD}"));
    assert_eq!(pop.stat().0, 1, "alice's maildrop");
    pop.quit();
    let mut pop = Pop3::connect(env.server.pop3());
    pop.ok("USER alice@elsewhere.test");
    let reply = pop.cmd(&format!("PASS {PASSWORD}"));
    assert!(reply.starts_with("-ERR [AUTH]"), "{reply}");
}

/// Messages another program left in the Maildir, with LF or CR line ends
/// and no size in their names: LIST and STAT count what RETR sends, every
/// line end as CRLF (RFC 1939 §10).
#[test]
fn foreign_messages_with_bare_line_ends_are_sized_as_sent() {
    let env = env_with("pop3-foreign-lf", &small_messages(1));
    let root = env.dir.data_dir().join("mail/alice");
    std::fs::write(
        root.join("new/1000000001.foreign-lf.host"),
        b"Subject: lf\n\nline1\n.dotline\nend\n",
    )
    .unwrap();
    std::fs::write(
        root.join("cur/1000000002.foreign-mixed.host:2,S"),
        b"Subject: mixed\r\n\nline1\rline2",
    )
    .unwrap();
    let mut pop = login_alice(env.server.pop3());
    let mut total = 0;
    for n in 1..=3 {
        let listed: usize = pop.ok(&format!("LIST {n}"))[4..]
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap();
        let sent = pop.retr(n);
        assert_eq!(
            listed,
            sent.len(),
            "message {n}: LIST vs RETR ({})",
            show(&sent)
        );
        total += sent.len() as u64;
    }
    assert_eq!(pop.stat(), (3, total));
    pop.quit();
}

#[test]
fn uidl_is_unique_and_survives_restart() {
    let env_messages = small_messages(4);
    let mut env = env_with("pop3-uidl", &env_messages);
    let mut pop = login_alice(env.server.pop3());
    let before = pop.uidl();
    assert_eq!(before.len(), 4, "UIDL before restart: {before:?}");
    let mut uids: Vec<&String> = before.iter().map(|(_, u)| u).collect();
    uids.sort_unstable();
    uids.dedup();
    assert_eq!(uids.len(), 4, "UIDLs must be unique: {before:?}");
    for (_, uid) in &before {
        assert!(
            (1..=70).contains(&uid.len()) && uid.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "RFC 1939 §7: 1 to 70 characters 0x21..0x7E: {uid:?}"
        );
    }
    // UIDL n agrees with the listing, and a second session sees the same.
    for (n, uid) in &before {
        assert_eq!(pop.cmd(&format!("UIDL {n}")), format!("+OK {n} {uid}"));
    }
    pop.quit();
    let mut pop = login_alice(env.server.pop3());
    assert_eq!(pop.uidl(), before, "UIDL in a second session");
    let ids_before = ids_by_number(&mut pop, before.len());
    pop.quit();

    // Restart on the same data directory.
    let status = env.server.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "serve did not exit cleanly on SIGTERM: {status:?}"
    );
    env.server = Server::start(&env.dir, &ServerOptions::default());
    let mut pop = login_alice(env.server.pop3());
    assert_eq!(pop.uidl(), before, "UIDL after a restart");
    // Each UID still names the same message.
    assert_eq!(
        ids_by_number(&mut pop, before.len()),
        ids_before,
        "messages behind the UIDs after a restart"
    );
    // Delete one; the others keep their UIDs, and a new message gets a new one.
    pop.ok("DELE 2");
    pop.quit();
    deliver(&env, "alice@example.test", &small_messages(5)[4]);
    let mut pop = login_alice(env.server.pop3());
    let after = pop.uidl();
    pop.quit();
    let mut kept: Vec<&String> = before.iter().map(|(_, u)| u).collect();
    kept.remove(1);
    assert_eq!(
        after.len(),
        4,
        "UIDL after DELE and a new delivery: {after:?}"
    );
    let mut all_now: Vec<&String> = after.iter().map(|(_, u)| u).collect();
    all_now.sort_unstable();
    assert!(
        kept.iter().all(|u| all_now.contains(u)),
        "surviving messages keep their UIDs: before {before:?}, after {after:?}"
    );
    let new: Vec<&String> = all_now
        .iter()
        .filter(|u| !kept.contains(u))
        .copied()
        .collect();
    assert_eq!(new.len(), 1, "one new UID: {after:?}");
    assert!(
        !before.iter().any(|(_, u)| u == new[0]),
        "a new message must not reuse a deleted message's UID: {after:?}"
    );
}

// ---------------------------------------------------------------------------
// DELE semantics

/// alice's stored message with this Message-ID.
fn stored_by_id(env: &Env, id: &str) -> Option<StoredMessage> {
    env.messages("alice")
        .into_iter()
        .find(|m| message_id(&m.bytes) == id)
}

#[test]
fn dele_then_quit_removes() {
    let sent = small_messages(3);
    let env = env_with("pop3-dele-quit", &sent);
    let mut pop = login_alice(env.server.pop3());
    let uids = pop.uidl();
    let target = pop.retr(2);
    let id = message_id(&target);
    let file = stored_by_id(&env, &id).expect("stored message 2");
    assert_same_bytes(&target, &file.bytes, "RETR 2");
    let (_, total) = pop.stat();
    pop.ok("DELE 2");
    // Marked, not gone: the file stays until UPDATE, the message is hidden.
    assert!(file.path.exists(), "DELE removed the file before QUIT");
    let reply = pop.cmd("RETR 2");
    assert!(
        reply.starts_with("-ERR"),
        "RETR of a deleted message → {reply:?}"
    );
    let reply = pop.cmd("DELE 2");
    assert!(reply.starts_with("-ERR"), "second DELE 2 → {reply:?}");
    assert_eq!(
        pop.stat(),
        (2, total - target.len() as u64),
        "STAT after DELE"
    );
    assert_eq!(
        pop.list().iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![1, 3],
        "LIST after DELE keeps the other numbers"
    );
    pop.quit();
    // The +OK to QUIT comes after UPDATE: the file must be gone now.
    assert!(
        !file.path.exists(),
        "{} still exists after DELE + QUIT",
        file.path.display()
    );
    assert!(
        stored_by_id(&env, &id).is_none(),
        "message survived DELE + QUIT"
    );
    assert_eq!(env.messages("alice").len(), 2);
    let mut pop = login_alice(env.server.pop3());
    let remaining = pop.uidl();
    assert_eq!(
        remaining,
        vec![(1, uids[0].1.clone()), (2, uids[2].1.clone())],
        "next session lists only the others"
    );
    for (n, _) in &remaining {
        assert_ne!(message_id(&pop.retr(*n)), id, "deleted message retrieved");
    }
    pop.quit();
}

#[test]
fn dele_then_dropped_connection_keeps() {
    let sent = small_messages(3);
    let env = env_with("pop3-dele-drop", &sent);
    let before: Vec<Vec<u8>> = env.messages("alice").into_iter().map(|m| m.bytes).collect();
    let mut pop = login_alice(env.server.pop3());
    let uids = pop.uidl();
    pop.ok("DELE 1");
    pop.ok("DELE 3");
    // Drop the connection without QUIT.
    let _ = pop.stream.shutdown(std::net::Shutdown::Both);
    drop(pop);
    let mut pop = login_alice(env.server.pop3());
    assert_eq!(pop.uidl(), uids, "a dropped session deleted mail");
    assert_eq!(pop.stat().0, 3);
    pop.quit();
    let after: Vec<Vec<u8>> = env.messages("alice").into_iter().map(|m| m.bytes).collect();
    assert_eq!(after.len(), 3, "files after a dropped session");
    for b in &before {
        assert!(after.contains(b), "a message changed or vanished");
    }
}

#[test]
fn dele_then_rset_restores() {
    let sent = small_messages(3);
    let env = env_with("pop3-dele-rset", &sent);
    let mut pop = login_alice(env.server.pop3());
    let uids = pop.uidl();
    let stat = pop.stat();
    let list = pop.list();
    pop.ok("DELE 1");
    pop.ok("DELE 2");
    assert_eq!(pop.stat().0, 1, "STAT after two DELEs");
    pop.ok("RSET");
    assert_eq!(pop.stat(), stat, "STAT after RSET");
    assert_eq!(pop.list(), list, "LIST after RSET");
    let first = pop.retr(1);
    assert_eq!(first.len() as u64, list[0].1, "RETR 1 after RSET");
    pop.quit();
    assert_eq!(env.messages("alice").len(), 3, "RSET + QUIT deleted mail");
    let mut pop = login_alice(env.server.pop3());
    assert_eq!(pop.uidl(), uids, "next session after RSET");
    pop.quit();
}

// ---------------------------------------------------------------------------
// TOP

/// The header section (with the blank line) and the first `lines` body lines.
fn expected_top(message: &[u8], lines: usize) -> Vec<u8> {
    let split = find(message, b"\r\n\r\n").expect("header/body separator") + 4;
    let mut out = message[..split].to_vec();
    out.extend(
        message[split..]
            .split_inclusive(|&b| b == b'\n')
            .take(lines)
            .flatten(),
    );
    out
}

#[test]
fn top_returns_headers_and_n_body_lines() {
    let sent = vec![dots_message(), eight_bit_message()];
    let env = env_with("pop3-top", &sent);
    let mut pop = login_alice(env.server.pop3());
    for n in 1..=2 {
        let full = pop.retr(n);
        for lines in [0, 1, 3, 8, 9, 1000] {
            pop.ok(&format!("TOP {n} {lines}"));
            let got = pop.multiline();
            assert_same_bytes(
                &got,
                &expected_top(&full, lines),
                &format!("TOP {n} {lines}"),
            );
        }
    }
    // TOP of the dots message with 3 lines: exact bytes, stuffed on the wire.
    let dots = if message_id(&pop.retr(1)) == "dots@remote.test" {
        1
    } else {
        2
    };
    pop.ok(&format!("TOP {dots} 3"));
    let raw = pop.multiline_raw();
    let body = &raw[find(&raw, b"\r\n\r\n").unwrap() + 4..];
    assert_same_bytes(body, b"..\r\n...\r\n..x\r\n", "TOP body on the wire");
    let reply = pop.cmd("TOP 9 1");
    assert!(
        reply.starts_with("-ERR"),
        "TOP of no such message → {reply:?}"
    );
    pop.ok(&format!("DELE {dots}"));
    let reply = pop.cmd(&format!("TOP {dots} 1"));
    assert!(
        reply.starts_with("-ERR"),
        "TOP of a deleted message → {reply:?}"
    );
    pop.ok("RSET");
    pop.quit();
}

// ---------------------------------------------------------------------------
// The maildrop lock

#[test]
fn second_session_gets_in_use_and_first_is_undisturbed() {
    let sent = small_messages(2);
    let env = env_with("pop3-in-use", &sent);
    let addr = env.server.pop3();
    let mut first = login_alice(addr);
    let list = first.list();
    first.ok("DELE 1");

    let mut second = Pop3::connect(addr);
    second.ok("USER alice");
    let reply = second.cmd(&format!("PASS {PASSWORD}"));
    assert!(
        reply.starts_with("-ERR [IN-USE]"),
        "second concurrent session → {reply:?}"
    );
    // The second session must not have touched the first one's maildrop.
    assert_eq!(first.stat(), (1, list[1].1), "first session's STAT");
    let payload = first.retr(2);
    assert_eq!(payload.len() as u64, list[1].1);
    drop(second);
    // bob is not locked by alice's session.
    let mut bob = Pop3::connect(addr);
    bob.login("bob");
    assert_eq!(bob.stat(), (0, 0), "bob's maildrop");
    bob.quit();
    // The first session's deletion still happens at QUIT.
    first.quit();
    assert_eq!(env.messages("alice").len(), 1, "first session's DELE");
    // And the lock is gone.
    let mut third = Pop3::connect(addr);
    third.login("alice");
    assert_eq!(third.stat().0, 1);
    third.quit();
}

// ---------------------------------------------------------------------------
// No user enumeration

/// Base64 (RFC 4648, with padding) for AUTH PLAIN.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// USER + PASS on a fresh connection: (USER reply, PASS reply, PASS delay).
fn try_user_pass(addr: SocketAddr, user: &str, password: &str) -> (String, String, Duration) {
    let mut pop = Pop3::connect(addr);
    let user_reply = pop.cmd(&format!("USER {user}"));
    let start = Instant::now();
    let pass_reply = pop.cmd(&format!("PASS {password}"));
    (user_reply, pass_reply, start.elapsed())
}

fn try_auth_plain(addr: SocketAddr, user: &str, password: &str) -> String {
    let mut pop = Pop3::connect(addr);
    pop.cmd(&format!(
        "AUTH PLAIN {}",
        base64(format!("\0{user}\0{password}").as_bytes())
    ))
}

#[test]
fn wrong_password_and_unknown_user_get_the_same_reply() {
    // A short failure delay so the escalating per-IP delays stay small.
    let env = Env::with(
        "pop3-enum",
        ServerOptions::default().config("[pop3]\nlogin_failure_delay = 0.2\n"),
    );
    let addr = env.server.pop3();
    let (user_a, pass_a, delay_a) = try_user_pass(addr, "alice", "wrong password");
    let (user_b, pass_b, delay_b) = try_user_pass(addr, "nobody", "wrong password");
    assert!(user_a.starts_with("+OK"), "USER alice → {user_a:?}");
    assert_eq!(user_a, user_b, "USER reply differs for an unknown user");
    assert!(pass_a.starts_with("-ERR"), "wrong password → {pass_a:?}");
    assert_eq!(pass_a, pass_b, "PASS reply: wrong password vs unknown user");
    for d in [delay_a, delay_b] {
        assert!(
            d >= Duration::from_millis(200),
            "failed logins must be delayed: {d:?}"
        );
    }
    let auth_a = try_auth_plain(addr, "alice", "wrong password");
    let auth_b = try_auth_plain(addr, "nobody", "wrong password");
    assert!(
        auth_a.starts_with("-ERR"),
        "AUTH PLAIN wrong password → {auth_a:?}"
    );
    assert_eq!(auth_a, auth_b, "AUTH PLAIN: wrong password vs unknown user");
    if require_tool("python3") {
        let a = poplib_login(addr, "alice", "wrong password");
        let b = poplib_login(addr, "nobody", "wrong password");
        assert!(
            a.len() == 2 && a[1].starts_with("ERROR -ERR"),
            "poplib wrong password: {a:?}"
        );
        assert_eq!(a, b, "poplib: wrong password vs unknown user");
    }
    // The right password still works (the delays are not a lockout).
    let mut pop = Pop3::connect(addr);
    pop.login("alice");
    pop.quit();
}
