//! `mailroom fetch` end to end: mail goes in over SMTP to a real `mailroom
//! serve`, comes out over POP3 (plain on loopback, STLS, implicit TLS) into
//! a Maildir, byte-exact; `--keep` remembers UIDLs; a fetch killed mid-run
//! resumes without duplicates or loss. The same against Dovecot's POP3
//! server (Debian package dovecot-pop3d), run as a private instance.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    Env, PASSWORD, Server, ServerOptions, TestDir, add_user, bin, in_ci, maildir_count,
    run_with_timeout, simple_message, which,
};

/// How long one `mailroom fetch` may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(180);

/// `mailroom fetch --server SERVER --user USER --password-stdin --maildir DIR EXTRA...`.
fn fetch(server: &str, user: &str, password: &str, maildir: &Path, extra: &[&str]) -> Output {
    let cmd = fetch_command(server, user, maildir, extra);
    run_with_timeout(cmd, Some(format!("{password}\n").as_bytes()), FETCH_TIMEOUT)
}

fn fetch_command(server: &str, user: &str, maildir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args([
        "fetch",
        "--server",
        server,
        "--user",
        user,
        "--password-stdin",
        "--maildir",
    ])
    .arg(maildir)
    .args(extra)
    .env_remove("MAILROOM_PASSWORD");
    cmd
}

/// Asserts exit status 0, showing stderr otherwise; returns stderr.
fn assert_ok(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{what}: {} ; stderr:\n{stderr}",
        out.status
    );
    stderr
}

/// Runs fetch, retrying while the server still holds the maildrop lock of
/// a session that a killed fetch left (it notices the closed socket soon).
fn fetch_retrying(
    server: &str,
    user: &str,
    password: &str,
    maildir: &Path,
    extra: &[&str],
) -> Output {
    let mut out = fetch(server, user, password, maildir, extra);
    for _ in 0..50 {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !stderr.contains("IN-USE") {
            break;
        }
        thread::sleep(Duration::from_millis(200));
        out = fetch(server, user, password, maildir, extra);
    }
    out
}

/// The message files of a local Maildir (new/ and cur/): name → bytes.
fn local_messages(maildir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            out.insert(
                format!("{sub}/{name}"),
                std::fs::read(entry.path()).unwrap(),
            );
        }
    }
    out
}

/// Sorted contents, for comparing two sets of messages whatever their names.
fn sorted(messages: impl IntoIterator<Item = Vec<u8>>) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = messages.into_iter().collect();
    v.sort();
    v
}

/// Checks each fetched file: `,S=<size>` in the name matches, CRLF only.
fn assert_well_formed(files: &BTreeMap<String, Vec<u8>>) {
    for (name, bytes) in files {
        let size = name
            .split(',')
            .find_map(|p| p.strip_prefix("S="))
            .and_then(|s| s.split(':').next())
            .and_then(|s| s.parse::<usize>().ok());
        assert_eq!(size, Some(bytes.len()), "{name}: S= must be the file size");
        assert_eq!(
            common::find_bare_line_end(bytes),
            None,
            "{name}: bare CR or LF"
        );
    }
}

/// Three messages with the things POP3 must carry through: leading dots
/// (byte-stuffing), an empty line, a long body, 8-bit text.
fn three_messages() -> Vec<Vec<u8>> {
    let long: String = (0..400)
        .map(|i| format!("line {i} of a longer body, with some text to fill it up\n"))
        .collect();
    vec![
        simple_message("first", "Hello, Alice."),
        simple_message("dots", ".leading dot\n..two dots\n.\n\nafter an empty line"),
        simple_message(
            "long",
            &format!("{long}caf\u{e9} cr\u{e8}me br\u{fb}l\u{e9}e"),
        ),
    ]
}

/// Sends `messages` to alice over SMTP and returns what the server stored
/// (trace headers included: the exact bytes POP3 must deliver).
fn deliver(env: &Env, messages: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let before = env.messages("alice").len();
    let mut smtp = env.connect();
    smtp.ehlo("client.example.test");
    for message in messages {
        let reply = smtp.send_mail("sender@remote.test", &["alice@example.test"], message);
        assert_eq!(reply.code, 250, "delivery: {reply}");
    }
    smtp.quit();
    let stored: Vec<Vec<u8>> = env.messages("alice").into_iter().map(|m| m.bytes).collect();
    assert_eq!(stored.len(), before + messages.len());
    stored
}

#[test]
fn fetches_over_plain_pop3_on_loopback_byte_exact() {
    let env = Env::start("fetch-plain");
    let stored = deliver(&env, &three_messages());
    let maildir = env.dir.path().join("Maildir");
    let server = env.server.pop3().to_string();

    let out = fetch(&server, "alice", PASSWORD, &maildir, &["--no-tls"]);
    let stderr = assert_ok(&out, "fetch --no-tls");
    let files = local_messages(&maildir);
    assert_eq!(files.len(), 3, "{stderr}");
    assert!(files.keys().all(|k| k.starts_with("new/")));
    assert_well_formed(&files);
    assert_eq!(sorted(files.values().cloned()), sorted(stored));
    assert_eq!(
        maildir_count(&env.dir.data_dir(), "alice"),
        0,
        "server maildrop not emptied"
    );
    // Not a terminal: one plain line per message, and a summary.
    assert_eq!(stderr.matches(" octets -> new/").count(), 3, "{stderr}");
    assert!(stderr.contains("fetched 3 new message(s)"), "{stderr}");
    assert!(stderr.contains("3 deleted from the server"), "{stderr}");
    assert!(
        !stderr.contains(PASSWORD),
        "the password must never be printed"
    );
    assert!(out.stdout.is_empty());

    // Nothing new the second time.
    let out = fetch(&server, "alice", PASSWORD, &maildir, &["--no-tls"]);
    let stderr = assert_ok(&out, "second fetch");
    assert!(stderr.contains("fetched 0 new message(s)"), "{stderr}");
    assert_eq!(local_messages(&maildir).len(), 3);
}

#[test]
fn stls_is_used_when_offered_and_needs_a_trusted_certificate() {
    let env = Env::start("fetch-stls");
    let stored = deliver(&env, &three_messages());
    let maildir = env.dir.path().join("Maildir");
    let server = env.server.pop3().to_string();

    // mailroom offers STLS with a self-signed certificate: refused unless
    // trusted, and never downgraded to clear text.
    let out = fetch(&server, "alice", PASSWORD, &maildir, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("mailroom: "), "{stderr}");
    assert!(stderr.contains("TLS") || stderr.contains("CA"), "{stderr}");
    assert_eq!(maildir_count(&env.dir.data_dir(), "alice"), 3);

    let out = fetch(
        &server,
        "alice",
        PASSWORD,
        &maildir,
        &["--starttls", "--insecure"],
    );
    assert_ok(&out, "fetch --starttls --insecure");
    let files = local_messages(&maildir);
    assert_well_formed(&files);
    assert_eq!(sorted(files.values().cloned()), sorted(stored));
    assert_eq!(maildir_count(&env.dir.data_dir(), "alice"), 0);
}

#[test]
fn fetches_over_implicit_tls_with_insecure() {
    let opts = ServerOptions {
        listeners: vec!["smtp", "pop3s"],
        ..ServerOptions::default()
    };
    let env = Env::with("fetch-pop3s", opts);
    let stored = deliver(&env, &three_messages());
    let maildir = env.dir.path().join("Maildir");
    let server = env.server.addr("pop3s").to_string();

    let out = fetch(
        &server,
        "alice",
        PASSWORD,
        &maildir,
        &["--tls", "--insecure"],
    );
    assert_ok(&out, "fetch --tls --insecure");
    let files = local_messages(&maildir);
    assert_eq!(files.len(), 3);
    assert_well_formed(&files);
    assert_eq!(sorted(files.values().cloned()), sorted(stored));
    assert_eq!(maildir_count(&env.dir.data_dir(), "alice"), 0);
}

#[test]
fn a_ca_file_makes_the_server_certificate_trusted() {
    // The server's certificate, made here for 127.0.0.1, is the CA fetch is
    // told to trust.
    let dir = TestDir::new("fetch-ca");
    add_user(&dir.data_dir(), "alice");
    let tls = dir.data_dir().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    std::fs::write(tls.join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(tls.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
    let opts = ServerOptions {
        users: vec!["alice".into()],
        listeners: vec!["smtp", "pop3", "pop3s"],
        ..ServerOptions::default()
    };
    let server = Server::start(&dir, &opts);
    let env = Env { server, dir };
    let stored = deliver(&env, &three_messages()[..2]);
    let ca = tls.join("cert.pem");
    let ca = ca.to_str().unwrap();
    let maildir = env.dir.path().join("Maildir");

    // Implicit TLS, then STLS (by default, since offered), both verified.
    let pop3s = env.server.addr("pop3s").to_string();
    let out = fetch(
        &pop3s,
        "alice",
        PASSWORD,
        &maildir,
        &["--tls", "--ca", ca, "--keep"],
    );
    assert_ok(&out, "fetch --tls --ca");
    let pop3 = env.server.pop3().to_string();
    let maildir2 = env.dir.path().join("Maildir2");
    let out = fetch(&pop3, "alice", PASSWORD, &maildir2, &["--ca", ca]);
    assert_ok(&out, "fetch --ca (STLS)");
    for dir in [&maildir, &maildir2] {
        let files = local_messages(dir);
        assert_eq!(sorted(files.values().cloned()), sorted(stored.clone()));
    }
    // A name the certificate does not carry fails.
    let by_name = format!("localhost:{}", env.server.addr("pop3s").port());
    let out = fetch(
        &by_name,
        "alice",
        PASSWORD,
        &maildir,
        &["--tls", "--ca", ca],
    );
    assert_ok(&out, "fetch by name localhost");
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let wrong = env.dir.write("other.pem", other.cert.pem().as_bytes());
    let out = fetch(
        &pop3s,
        "alice",
        PASSWORD,
        &maildir,
        &["--tls", "--ca", wrong.to_str().unwrap()],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "an untrusted certificate must fail"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");
}

#[test]
fn keep_fetches_only_new_mail_and_a_later_run_deletes() {
    let env = Env::start("fetch-keep");
    deliver(&env, &three_messages());
    let maildir = env.dir.path().join("Maildir");
    let server = env.server.pop3().to_string();

    let out = fetch(
        &server,
        "alice",
        PASSWORD,
        &maildir,
        &["--no-tls", "--keep"],
    );
    let stderr = assert_ok(&out, "fetch --keep");
    assert!(stderr.contains("left on the server"), "{stderr}");
    assert_eq!(local_messages(&maildir).len(), 3);
    assert_eq!(
        maildir_count(&env.dir.data_dir(), "alice"),
        3,
        "--keep must not delete"
    );

    let out = fetch(
        &server,
        "alice",
        PASSWORD,
        &maildir,
        &["--no-tls", "--keep"],
    );
    let stderr = assert_ok(&out, "second fetch --keep");
    assert!(stderr.contains("fetched 0 new message(s)"), "{stderr}");
    assert_eq!(local_messages(&maildir).len(), 3, "no duplicates");

    // New mail arrives: only it is fetched.
    let more = deliver(&env, &[simple_message("fourth", "later")]);
    let out = fetch(
        &server,
        "alice",
        PASSWORD,
        &maildir,
        &["--no-tls", "--keep"],
    );
    let stderr = assert_ok(&out, "third fetch --keep");
    assert!(stderr.contains("fetched 1 new message(s)"), "{stderr}");
    let files = local_messages(&maildir);
    assert_eq!(sorted(files.values().cloned()), sorted(more));

    // Without --keep: nothing new to fetch, and the server is emptied.
    let out = fetch(&server, "alice", PASSWORD, &maildir, &["--no-tls"]);
    let stderr = assert_ok(&out, "fetch without --keep");
    assert!(stderr.contains("fetched 0 new message(s)"), "{stderr}");
    assert!(stderr.contains("4 deleted from the server"), "{stderr}");
    assert_eq!(maildir_count(&env.dir.data_dir(), "alice"), 0);
    assert_eq!(local_messages(&maildir).len(), 4);
    // The record was pruned of what the server no longer has.
    let record = std::fs::read_to_string(maildir.join(".mailroom-fetch-uidls")).unwrap();
    assert_eq!(record, "mailroom-fetch-uidls 1\n", "{record}");
}

#[test]
fn usage_and_login_errors() {
    let env = Env::start("fetch-errors");
    let maildir = env.dir.path().join("Maildir");
    let server = env.server.pop3().to_string();

    let out = fetch(&server, "alice", "wrong password", &maildir, &["--no-tls"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("login failed") && stderr.contains("[AUTH]"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong password"));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    for (args, what) in [
        (vec!["--tls", "--starttls"], "conflicting TLS modes"),
        (vec!["--no-tls", "--insecure"], "--no-tls with --insecure"),
    ] {
        let out = fetch(&server, "alice", PASSWORD, &maildir, &args);
        assert_eq!(out.status.code(), Some(2), "{what}");
    }
    let out = fetch("host:notaport", "alice", PASSWORD, &maildir, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOST:PORT"));

    // No password source and no terminal: a usage error.
    let mut cmd = Command::new(bin());
    cmd.args(["fetch", "--server", &server, "--user", "alice", "--maildir"])
        .arg(&maildir)
        .env_remove("MAILROOM_PASSWORD");
    let out = run_with_timeout(cmd, None, FETCH_TIMEOUT);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Nothing listens there.
    let port = free_port();
    let out = fetch(
        &format!("127.0.0.1:{port}"),
        "alice",
        PASSWORD,
        &maildir,
        &["--no-tls"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("connecting to"));
}

/// Sends `count` numbered messages of a few kilobytes to alice.
fn many_messages(count: usize) -> Vec<Vec<u8>> {
    let filler: String = (0..60)
        .map(|i| format!("filler line {i}: the quick brown fox jumps over the lazy dog\n"))
        .collect();
    (0..count)
        .map(|i| simple_message(&format!("message {i}"), &format!(".dot line {i}\n{filler}")))
        .collect()
}

/// Starts a fetch in the background, SIGKILLs it once `kill_after` message
/// files are in the Maildir, and returns how many there were. Restarts it
/// while the server still reports the maildrop in use by the session a
/// previous kill left.
fn fetch_and_kill(
    server: &str,
    user: &str,
    password: &str,
    maildir: &Path,
    extra: &[&str],
    kill_after: usize,
) -> usize {
    let deadline = Instant::now() + FETCH_TIMEOUT;
    let mut child;
    let mut drain;
    'start: loop {
        let mut cmd = fetch_command(server, user, maildir, extra);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        drain = thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        loop {
            if local_messages(maildir).len() >= kill_after || Instant::now() > deadline {
                break 'start;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = drain.join().unwrap_or_default();
                if log.contains("IN-USE") {
                    thread::sleep(Duration::from_millis(100));
                    continue 'start;
                }
                panic!("fetch ended ({status}) before it could be killed:\n{log}");
            }
            thread::sleep(Duration::from_millis(2));
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = drain.join();
    let after = local_messages(maildir).len();
    assert!(
        after < 200,
        "the fetch finished before it was killed ({after} files)"
    );
    let record = std::fs::read_to_string(maildir.join(".mailroom-fetch-uidls")).unwrap_or_default();
    let in_tmp = std::fs::read_dir(maildir.join("tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    eprintln!(
        "killed after {after} messages; {} recorded, {} still naming their file; {in_tmp} in tmp/",
        record.lines().count().saturating_sub(1),
        record.lines().filter(|l| l.split(' ').count() == 3).count(),
    );
    after
}

/// Each message exactly once, byte for byte.
fn assert_exactly_once(maildir: &Path, expected: &[Vec<u8>]) {
    let files = local_messages(maildir);
    assert_well_formed(&files);
    let got = sorted(files.into_values());
    let want = sorted(expected.to_vec());
    if got != want {
        let dupes = got.windows(2).filter(|w| w[0] == w[1]).count();
        let missing = want.iter().filter(|m| !got.contains(m)).count();
        panic!(
            "{} files for {} messages: {dupes} duplicate(s), {missing} missing",
            got.len(),
            want.len()
        );
    }
}

#[test]
fn an_interrupted_fetch_resumes_without_duplicates_or_loss() {
    let env = Env::start("fetch-resume");
    let stored = deliver(&env, &many_messages(200));
    let maildir = env.dir.path().join("Maildir");
    let server = env.server.pop3().to_string();

    // Killed twice: once fresh, once while resuming.
    let killed_at = fetch_and_kill(&server, "alice", PASSWORD, &maildir, &["--no-tls"], 20);
    assert!(killed_at >= 20);
    let killed_at = fetch_and_kill(&server, "alice", PASSWORD, &maildir, &["--no-tls"], 90);
    assert!(killed_at >= 90);
    // Nothing was deleted: the killed sessions never reached QUIT.
    assert_eq!(maildir_count(&env.dir.data_dir(), "alice"), 200);

    let out = fetch_retrying(&server, "alice", PASSWORD, &maildir, &["--no-tls"]);
    let stderr = assert_ok(&out, "fetch after the kill");
    assert_exactly_once(&maildir, &stored);
    assert_eq!(maildir_count(&env.dir.data_dir(), "alice"), 0, "{stderr}");
    assert!(stderr.contains("200 deleted from the server"), "{stderr}");
}

// ---------------------------------------------------------------------------
// Dovecot

/// A private Dovecot POP3 server on a free loopback port, with one user
/// (`tuser`, password `dovecot-test-pw`) whose Maildir holds the given
/// messages. Stopped on drop.
struct Dovecot {
    child: Option<Child>,
    port: u16,
    root: PathBuf,
    maildir: PathBuf,
}

const DOVECOT_USER: &str = "tuser";
const DOVECOT_PASSWORD: &str = "dovecot-test-pw";

impl Dovecot {
    /// `None` (after printing SKIP) when Dovecot is not installed or we
    /// are not root; a panic instead under CI=true.
    fn start(dir: &TestDir, messages: &[Vec<u8>]) -> Option<Dovecot> {
        let dovecot = which("dovecot");
        let pop3 = ["/usr/lib/dovecot/pop3", "/usr/libexec/dovecot/pop3"]
            .iter()
            .any(|p| Path::new(p).is_file());
        if dovecot.is_none() || !pop3 {
            assert!(!in_ci(), "dovecot-pop3d not installed, and CI=true");
            eprintln!("SKIP: dovecot-pop3d not installed");
            return None;
        }
        if !rustix::process::geteuid().is_root() {
            assert!(!in_ci(), "the Dovecot tests need root, and CI=true");
            eprintln!("SKIP: the Dovecot tests run a private instance and need root");
            return None;
        }
        // Dovecot refuses to run mail processes as root: the mail belongs
        // to nobody/nogroup.
        let (uid, gid) = nobody();
        let root = dir.path().join("dovecot");
        let maildir = root.join("mail").join(DOVECOT_USER);
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        for (i, message) in messages.iter().enumerate() {
            // Dovecot stores LF line ends (as its LDA does) and sends CRLF.
            let lf = String::from_utf8_lossy(message).replace("\r\n", "\n");
            std::fs::write(
                maildir
                    .join("new")
                    .join(format!("{}.M{i}P1.dovecot-test", 1_700_000_000 + i)),
                lf,
            )
            .unwrap();
        }
        std::fs::create_dir_all(root.join("home")).unwrap();
        chown_tree(&root.join("mail"), uid, gid);
        chown_tree(&root.join("home"), uid, gid);
        std::fs::create_dir_all(root.join("base")).unwrap();
        std::fs::create_dir_all(root.join("state")).unwrap();
        let passwd = root.join("passwd");
        std::fs::write(
            &passwd,
            format!(
                "{DOVECOT_USER}:{{PLAIN}}{DOVECOT_PASSWORD}:{uid}:{gid}::{}::\n",
                root.join("home").display()
            ),
        )
        .unwrap();
        let port = free_port();
        let r = root.display();
        let config = format!(
            "protocols = pop3\n\
             listen = 127.0.0.1\n\
             base_dir = {r}/base\n\
             state_dir = {r}/state\n\
             instance_name = mailroom-test-{port}\n\
             default_internal_user = dovecot\n\
             default_internal_group = dovecot\n\
             default_login_user = dovenull\n\
             ssl = no\n\
             disable_plaintext_auth = no\n\
             auth_mechanisms = plain\n\
             log_path = {r}/dovecot.log\n\
             mail_location = maildir:{r}/mail/%u\n\
             passdb {{\n  driver = passwd-file\n  args = {r}/passwd\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {r}/passwd\n}}\n\
             service pop3-login {{\n  inet_listener pop3 {{\n    port = {port}\n  }}\n  inet_listener pop3s {{\n    port = 0\n  }}\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    port = 0\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n"
        );
        let conf = root.join("dovecot.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new(dovecot.unwrap())
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Dovecot {
            child: Some(child),
            port,
            root,
            maildir,
        };
        server.wait_ready();
        Some(server)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("dovecot.log")).unwrap_or_default()
    }

    /// Waits for the greeting.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let addr: SocketAddr = self.addr().parse().unwrap();
            if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = [0u8; 64];
                if let Ok(n) = s.read(&mut buf)
                    && buf[..n].starts_with(b"+OK")
                {
                    let _ = s.write_all(b"QUIT\r\n");
                    return;
                }
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("dovecot did not start; its log:\n{}", self.log());
    }

    /// Messages still in the server's Maildir.
    fn remaining(&self) -> usize {
        local_messages(&self.maildir).len()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("---- dovecot log ----\n{}\n---- end ----", self.log());
        }
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = i32::try_from(child.id())
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The uid and gid of `nobody` (65534 on Debian).
fn nobody() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"nobody") && f.len() > 3)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
        .unwrap_or((65534, 65534))
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            chown_tree(&entry.path(), uid, gid);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What Dovecot sends for a message it stores with LF: CRLF everywhere.
fn crlf_form(message: &[u8]) -> Vec<u8> {
    common::crlf(&String::from_utf8_lossy(message))
}

#[test]
fn fetches_from_dovecot() {
    let dir = TestDir::new("fetch-dovecot");
    let messages = three_messages();
    let Some(dovecot) = Dovecot::start(&dir, &messages) else {
        return;
    };
    let maildir = dir.path().join("Maildir");

    // Keep first: twice, the second fetches nothing.
    let out = fetch(
        &dovecot.addr(),
        DOVECOT_USER,
        DOVECOT_PASSWORD,
        &maildir,
        &["--keep"],
    );
    assert_ok(&out, "fetch --keep from dovecot");
    let out = fetch(
        &dovecot.addr(),
        DOVECOT_USER,
        DOVECOT_PASSWORD,
        &maildir,
        &["--keep"],
    );
    let stderr = assert_ok(&out, "second fetch --keep from dovecot");
    assert!(stderr.contains("fetched 0 new message(s)"), "{stderr}");
    assert_eq!(dovecot.remaining(), 3);

    // Then without: nothing new, and Dovecot's Maildir is emptied.
    let out = fetch(
        &dovecot.addr(),
        DOVECOT_USER,
        DOVECOT_PASSWORD,
        &maildir,
        &[],
    );
    let stderr = assert_ok(&out, "fetch from dovecot");
    assert!(stderr.contains("3 deleted from the server"), "{stderr}");
    assert_eq!(dovecot.remaining(), 0);
    let files = local_messages(&maildir);
    assert_well_formed(&files);
    let want: Vec<Vec<u8>> = messages.iter().map(|m| crlf_form(m)).collect();
    assert_eq!(sorted(files.into_values()), sorted(want));

    // Dovecot (ssl = no) does not offer STLS: --starttls must refuse.
    let out = fetch(
        &dovecot.addr(),
        DOVECOT_USER,
        DOVECOT_PASSWORD,
        &maildir,
        &["--starttls"],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("STLS"), "{stderr}");
}

#[test]
fn an_interrupted_fetch_from_dovecot_resumes() {
    let dir = TestDir::new("fetch-dovecot-resume");
    let messages = many_messages(200);
    let Some(dovecot) = Dovecot::start(&dir, &messages) else {
        return;
    };
    let maildir = dir.path().join("Maildir");
    let killed_at = fetch_and_kill(
        &dovecot.addr(),
        DOVECOT_USER,
        DOVECOT_PASSWORD,
        &maildir,
        &[],
        20,
    );
    assert!(killed_at >= 20);
    assert_eq!(dovecot.remaining(), 200, "no QUIT, nothing deleted");
    let out = fetch_retrying(
        &dovecot.addr(),
        DOVECOT_USER,
        DOVECOT_PASSWORD,
        &maildir,
        &[],
    );
    let stderr = assert_ok(&out, "fetch from dovecot after the kill");
    let want: Vec<Vec<u8>> = messages.iter().map(|m| crlf_form(m)).collect();
    assert_exactly_once(&maildir, &want);
    assert_eq!(dovecot.remaining(), 0, "{stderr}");
}
