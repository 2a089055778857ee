//! Operations (issue 10): systemd readiness notification with our own
//! NOTIFY_SOCKET, `mailroom check`, `mailroom config example`, and JSON logs
//! that carry the queue id of an accepted message.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Env, ServerOptions, TestDir, add_user, bin, require_tool, simple_message};

#[test]
fn serve_notifies_readiness_and_stopping() {
    let dir = TestDir::new("notify");
    add_user(&dir.data_dir(), "alice");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut child = Command::new(bin())
        .args([
            "serve",
            "--smtp",
            "127.0.0.1:0",
            "--pop3",
            "off",
            "--submission",
            "off",
        ])
        .args(["--smtps", "off", "--pop3s", "off", "--data-dir"])
        .arg(dir.data_dir())
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("READY=1 within 20 s");
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(ready.lines().any(|l| l == "READY=1"), "got {ready:?}");
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let n = socket.recv(&mut buf).expect("STOPPING=1 after SIGTERM");
    let stopping = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        stopping.lines().any(|l| l == "STOPPING=1"),
        "got {stopping:?}"
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn check_reports_every_problem_with_its_key() {
    let dir = TestDir::new("check");
    let bad = dir.write(
        "bad.toml",
        b"hostnme = \"mx.example\"\n[listen]\nsmtp = \"not-an-address\"\n",
    );
    let out = Command::new(bin())
        .arg("check")
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains("hostnme"), "unknown key named: {err}");
    assert!(err.contains("listen.smtp"), "bad listener named: {err}");
    assert!(!err.contains("panicked"), "{err}");

    let example = Command::new(bin())
        .args(["config", "example"])
        .output()
        .unwrap();
    assert!(example.status.success());
    let good = dir.write("good.toml", &example.stdout);
    let out = Command::new(bin())
        .arg("check")
        .arg("--config")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "example config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The Debian package's /etc/mailroom/mailroom.toml.
    let packaged = concat!(env!("CARGO_MANIFEST_DIR"), "/../../packaging/mailroom.toml");
    let out = Command::new(bin())
        .args(["check", "--config", packaged])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "packaging/mailroom.toml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn json_logs_parse_and_name_the_queue_id() {
    let opts = ServerOptions {
        extra_args: vec!["--log-format".into(), "json".into()],
        ..ServerOptions::default()
    };
    let env = Env::with("jsonlog", opts);
    let mut smtp = env.connect();
    smtp.ok("EHLO client.example", 250);
    let reply = smtp.send_mail(
        "sender@remote.test",
        &["alice@example.test"],
        &simple_message("json", "logged"),
    );
    assert_eq!(reply.code, 250, "{reply}");
    let text = reply.to_string();
    let id = text.rsplit(' ').next().unwrap().trim().to_string();
    smtp.ok("QUIT", 221);
    std::thread::sleep(Duration::from_millis(300));
    let log = env.server.stderr();
    let json_lines: Vec<&str> = log
        .lines()
        .filter(|l| !l.starts_with("listening ") && *l != "ready")
        .collect();
    assert!(!json_lines.is_empty(), "no log lines: {log}");
    // Every line must be one JSON object (checked by Python's json module).
    let mut python = Command::new("python3")
        .args([
            "-c",
            "import json,sys\nfor l in sys.stdin:\n    json.loads(l)\nprint('ok')",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = python.stdin.take().unwrap();
        for line in &json_lines {
            writeln!(stdin, "{line}").unwrap();
        }
    }
    let mut out = String::new();
    BufReader::new(python.stdout.take().unwrap())
        .read_line(&mut out)
        .unwrap();
    assert!(
        python.wait().unwrap().success(),
        "a log line is not JSON: {log}"
    );
    assert_eq!(out.trim(), "ok");
    assert!(
        json_lines
            .iter()
            .any(|l| l.contains(&id) && l.contains("queue_id")),
        "queue id {id} not in the JSON log: {log}"
    );
}

/// Scrapes `GET /metrics` with curl and returns the value of `name` (its
/// first sample whose line starts with `name`), 0 when absent.
fn scrape(addr: std::net::SocketAddr, name: &str) -> f64 {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", &format!("http://{addr}/metrics")])
        .output()
        .unwrap();
    assert!(out.status.success(), "curl failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn metrics_counters_move_when_mail_is_accepted() {
    if !common::require_tool("curl") {
        return;
    }
    let opts = ServerOptions {
        extra_args: vec!["--metrics".into(), "127.0.0.1:0".into()],
        ..ServerOptions::default()
    };
    let env = Env::with("metrics", opts);
    let addr = env.server.addr("metrics");
    let before = scrape(addr, "mailroom_messages_accepted_total");
    let connections_before = scrape(addr, "mailroom_connections_total");
    let mut smtp = env.connect();
    smtp.ok("EHLO client.example", 250);
    for i in 0..3 {
        let reply = smtp.send_mail(
            "sender@remote.test",
            &["alice@example.test"],
            &simple_message(&format!("metrics {i}"), "counted"),
        );
        assert_eq!(reply.code, 250, "{reply}");
    }
    smtp.ok("MAIL FROM:<sender@remote.test>", 250);
    let refused = smtp.cmd("RCPT TO:<nobody@elsewhere.test>");
    assert!(refused.code >= 500, "{refused}");
    smtp.ok("RSET", 250);
    smtp.ok("QUIT", 221);
    let after = scrape(addr, "mailroom_messages_accepted_total");
    assert_eq!(after - before, 3.0, "accepted counter moved by 3");
    assert!(scrape(addr, "mailroom_connections_total") > connections_before);
    assert!(scrape(addr, "mailroom_smtp_replies_total{class=\"5xx\"}") >= 1.0);
    assert!(scrape(addr, "mailroom_queue_messages") >= 0.0);
}

#[test]
fn root_started_server_drops_to_run_as() {
    if !rustix::process::geteuid().is_root() {
        assert!(
            !common::in_ci(),
            "CI runs as root; this test must run there"
        );
        eprintln!("SKIP: not root");
        return;
    }
    // A system user for the test (useradd is in Debian's passwd package).
    let exists = Command::new("id")
        .arg("mailroom-test")
        .output()
        .unwrap()
        .status
        .success();
    if !exists {
        let status = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "mailroom-test",
            ])
            .status()
            .unwrap();
        assert!(status.success(), "useradd failed");
    }
    let env = Env::with(
        "runas",
        ServerOptions::default().config("run_as = \"mailroom-test\"\n"),
    );
    let ps = Command::new("ps")
        .args(["-o", "user=", "-p", &env.server.pid().to_string()])
        .output()
        .unwrap();
    let user = String::from_utf8_lossy(&ps.stdout).trim().to_string();
    assert_eq!(user, "mailroom-test", "serve runs as {user:?}");
    let mut smtp = env.connect();
    smtp.ok("EHLO client.example", 250);
    let reply = smtp.send_mail(
        "sender@remote.test",
        &["alice@example.test"],
        &simple_message("after drop", "delivered by an unprivileged process"),
    );
    assert_eq!(reply.code, 250, "{reply}");
    assert_eq!(env.messages("alice").len(), 1);

    // Root adds a user while the server runs as mailroom-test: the command
    // becomes run_as too, so the server can still read what it wrote.
    let mut add = Command::new(bin())
        .arg("--config")
        .arg(env.dir.path().join("mailroom.toml"))
        .arg("--data-dir")
        .arg(env.dir.data_dir())
        .args(["user", "add", "carol", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        add.stdin
            .take()
            .unwrap()
            .write_all(b"carol-password\n")
            .unwrap();
    }
    let out = add.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let owner = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(env.dir.data_dir().join("users"))
            .unwrap()
            .uid()
    };
    let expected = String::from_utf8(
        Command::new("id")
            .args(["-u", "mailroom-test"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(owner.to_string(), expected.trim(), "users file owner");
    for rcpt in ["carol@example.test", "alice@example.test"] {
        let reply = smtp.send_mail(
            "sender@remote.test",
            &[rcpt],
            &simple_message("after user add", "root added a user meanwhile"),
        );
        assert_eq!(reply.code, 250, "{rcpt}: {reply}");
    }
    smtp.ok("QUIT", 221);
    assert_eq!(env.messages("carol").len(), 1);
    assert_eq!(env.messages("alice").len(), 2);

    // The same for a DKIM key root generates: the server must be able to
    // read it when it reloads keys.
    let out = Command::new(bin())
        .arg("--config")
        .arg(env.dir.path().join("mailroom.toml"))
        .arg("--data-dir")
        .arg(env.dir.data_dir())
        .args(["dkim", "generate", "example.test", "--algorithm", "ed25519"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dkim = env.dir.data_dir().join("dkim");
    let mut owners = Vec::new();
    let mut stack = vec![dkim];
    while let Some(path) = stack.pop() {
        use std::os::unix::fs::MetadataExt;
        owners.push((path.clone(), std::fs::metadata(&path).unwrap().uid()));
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    assert!(owners.len() >= 3, "no key written: {owners:?}");
    for (path, uid) in owners {
        assert_eq!(
            uid.to_string(),
            expected.trim(),
            "owner of {}",
            path.display()
        );
    }
}

/// The certificate the smtps listener presents now, as PEM.
fn presented_pem(addr: std::net::SocketAddr) -> Vec<u8> {
    let script = format!(
        "import ssl,socket\nctx=ssl.create_default_context()\nctx.check_hostname=False\nctx.verify_mode=ssl.CERT_NONE\n\
         s=ctx.wrap_socket(socket.create_connection(('{}',{})))\nder=s.getpeercert(True)\n\
         open('/dev/stdout','w').write(ssl.DER_cert_to_PEM_cert(der))",
        addr.ip(),
        addr.port()
    );
    let pem = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(pem.status.success(), "{pem:?}");
    pem.stdout
}

/// The subject CN of the certificate the smtps listener presents now.
fn presented_cn(addr: std::net::SocketAddr) -> String {
    let pem = presented_pem(addr);
    let mut openssl = Command::new("openssl")
        .args(["x509", "-noout", "-subject"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        openssl.stdin.take().unwrap().write_all(&pem).unwrap();
    }
    let out = openssl.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn make_cert(dir: &std::path::Path, cn: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join(format!("{cn}.crt"));
    let key = dir.join(format!("{cn}.key"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg(format!("/CN={cn}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    (cert, key)
}

#[test]
fn sighup_reloads_the_certificate() {
    if !common::require_tool("openssl") {
        return;
    }
    let dir = TestDir::new("sighup");
    let (first_cert, first_key) = make_cert(dir.path(), "first.example");
    let (second_cert, second_key) = make_cert(dir.path(), "second.example");
    let live_cert = dir.path().join("live.crt");
    let live_key = dir.path().join("live.key");
    std::fs::copy(&first_cert, &live_cert).unwrap();
    std::fs::copy(&first_key, &live_key).unwrap();
    add_user(&dir.data_dir(), "alice");
    let mut opts = ServerOptions::default().config(&format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        live_cert.display(),
        live_key.display()
    ));
    opts.listeners = vec!["smtp", "smtps"];
    let server = common::Server::start(&dir, &opts);
    let addr = server.addr("smtps");
    assert!(presented_cn(addr).contains("first.example"));
    std::fs::copy(&second_cert, &live_cert).unwrap();
    std::fs::copy(&second_key, &live_key).unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(server.pid() as i32).unwrap(),
        rustix::process::Signal::HUP,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let cn = presented_cn(addr);
        if cn.contains("second.example") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still presenting {cn} after SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The generated self-signed certificate follows the hostname: one made
/// for another name (as after a hostname change) is made again, on SIGHUP
/// as at start; one made for this name is kept.
#[test]
fn a_generated_certificate_is_made_again_for_a_new_hostname() {
    let dir = TestDir::new("cert-hostname");
    let opts = ServerOptions {
        listeners: vec!["smtp", "smtps"],
        ..ServerOptions::default()
    };
    let server = common::Server::start(&dir, &opts);
    let addr = server.addr("smtps");
    let stamp = dir.data_dir().join("tls/cert.hostname");
    assert_eq!(
        std::fs::read_to_string(&stamp).unwrap().trim(),
        common::HOSTNAME
    );
    let first = presented_pem(addr);
    // Same hostname: SIGHUP keeps the certificate.
    sighup(&server);
    wait_for_log(&server, "SIGHUP: TLS certificate reloaded", 1);
    assert_eq!(presented_pem(addr), first, "regenerated needlessly");
    // Made for another name: SIGHUP makes a new one for this one.
    std::fs::write(&stamp, "old-name.example\n").unwrap();
    sighup(&server);
    wait_for_log(&server, "SIGHUP: TLS certificate reloaded", 2);
    assert_ne!(presented_pem(addr), first, "still the old certificate");
    assert_eq!(
        std::fs::read_to_string(&stamp).unwrap().trim(),
        common::HOSTNAME
    );
    assert!(
        server
            .stderr()
            .contains("generated a self-signed certificate"),
        "{}",
        server.stderr()
    );
}

#[test]
fn man_pages_and_completions_come_from_the_command_line_definitions() {
    let dir = TestDir::new("generate");
    let man_dir = dir.path().join("man");
    let out = Command::new(bin())
        .args(["generate", "man"])
        .arg(&man_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let serve = std::fs::read_to_string(man_dir.join("mailroom-serve.1")).unwrap();
    assert!(serve.contains(".TH mailroom-serve 1"), "{serve}");
    // roff escapes '-' as '\-'.
    for flag in [
        "smtp",
        "submission",
        "smtps",
        "pop3",
        "pop3s",
        "metrics",
        "relay\\-map",
    ] {
        assert!(
            serve.contains(&format!("\\-\\-{flag}\\fR")),
            "--{flag} missing:\n{serve}"
        );
    }
    assert!(
        serve.contains("127.0.0.1:2525"),
        "default listener missing:\n{serve}"
    );
    for page in [
        "mailroom.1",
        "mailroom-user-add.1",
        "mailroom-queue-flush.1",
        "mailroom-config-example.1",
    ] {
        assert!(man_dir.join(page).is_file(), "{page} not written");
    }
    // The packaging helper itself is hidden and gets no page.
    assert!(!man_dir.join("mailroom-generate.1").exists());
    if require_tool("groff") {
        // -k: UTF-8 input through preconv, as man(1) does; -ww: all warnings;
        // -z: no output, only the parse. Any warning about
        // the page is printed on stderr.
        let out = Command::new("groff")
            .args(["-k", "-man", "-ww", "-z"])
            .arg(man_dir.join("mailroom-serve.1"))
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warnings");
    }

    let out = Command::new(bin())
        .args(["generate", "completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(script.contains("--smtp"), "bash completion lacks --smtp");
    assert!(
        script.contains("complete -F"),
        "not a bash completion script"
    );
    let path = dir.write("mailroom.bash", script.as_bytes());
    let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Sourcing it registers the completion function for `mailroom`.
    let registered = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p mailroom", path.display()))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&registered.stdout).contains("mailroom"),
        "complete -p: {}",
        String::from_utf8_lossy(&registered.stderr)
    );
    for shell in ["zsh", "fish"] {
        let out = Command::new(bin())
            .args(["generate", "completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    let bad = Command::new(bin())
        .args(["generate", "completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "unknown shell is a usage error");
}

fn sighup(server: &common::Server) {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(server.pid() as i32).unwrap(),
        rustix::process::Signal::HUP,
    )
    .unwrap();
}

/// Waits until the server's log holds `n` lines containing `needle`.
fn wait_for_log(server: &common::Server, needle: &str, n: usize) {
    let seen = common::wait_for(Duration::from_secs(10), || {
        server
            .stderr()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
            >= n
    });
    assert!(seen, "no {n}× {needle:?} in the log:\n{}", server.stderr());
}

/// The one line of the server's log containing `needle` (fails unless
/// there is exactly one).
fn the_log_line(server: &common::Server, needle: &str) -> String {
    let log = server.stderr();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
    assert_eq!(lines.len(), 1, "{needle:?} in the log:\n{log}");
    lines[0].to_string()
}

/// The SIZE value a new session's EHLO announces.
fn ehlo_size(smtp: &mut common::Smtp) -> String {
    let reply = smtp.ok("EHLO client.test", 250);
    reply
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("SIZE "))
        .unwrap_or_else(|| panic!("no SIZE in {reply}"))
        .to_string()
}

fn session(addr: std::net::SocketAddr) -> common::Smtp {
    let mut smtp = common::Smtp::connect(addr);
    smtp.read_reply().expect(220, "", "greeting");
    smtp
}

#[test]
fn sighup_applies_a_new_config_to_new_sessions_and_refuses_a_bad_one() {
    let dir = TestDir::new("sighup-config");
    add_user(&dir.data_dir(), "alice");
    let opts = ServerOptions {
        users: vec!["alice".into()],
        ..ServerOptions::default()
    }
    .config("[smtp]\nmax_message_size = 10000\n");
    let server = common::Server::start(&dir, &opts);
    let config = dir.path().join("mailroom.toml");

    // A session that starts under the old configuration and outlives it.
    let mut old = session(server.smtp());
    assert_eq!(ehlo_size(&mut old), "10000");
    old.ok("MAIL FROM:<someone@remote.test>", 250);
    old.cmd("RCPT TO:<alice@new.test>")
        .expect(550, "5.7.1", "new.test is not ours yet");
    old.cmd("VRFY alice").expect(252, "", "vrfy off");
    old.ok("RSET", 250);

    // New domain, bigger messages, VRFY on; plus two settings that need a
    // restart (run_as is not a flag, so the file's value would count).
    std::fs::write(
        &config,
        "domains = [\"new.test\"]\nrun_as = \"nobody\"\n\
         [smtp]\nmax_message_size = 20000\nvrfy = true\n[queue]\nmax_workers = 3\n",
    )
    .unwrap();
    sighup(&server);
    wait_for_log(&server, "SIGHUP: configuration reloaded", 1);
    let restart = the_log_line(&server, "only with a restart");
    assert!(
        restart.contains("run_as") && restart.contains("queue.max_workers"),
        "{restart}"
    );

    let mut new = session(server.smtp());
    assert_eq!(ehlo_size(&mut new), "20000");
    new.ok("MAIL FROM:<someone@remote.test>", 250);
    new.cmd("RCPT TO:<alice@new.test>")
        .expect(250, "", "new.test is ours now");
    new.ok("RSET", 250);
    let vrfy = new.cmd("VRFY alice");
    vrfy.expect(250, "", "vrfy on");
    new.quit();

    // The old session keeps the rules it started with.
    old.ok("MAIL FROM:<someone@remote.test>", 250);
    old.cmd("RCPT TO:<alice@new.test>")
        .expect(550, "5.7.1", "old session, old domains");
    old.cmd("VRFY alice")
        .expect(252, "", "old session, vrfy still off");
    old.quit();

    // A config with problems is refused whole, each problem named on one
    // error line; the previous configuration stays in force.
    std::fs::write(
        &config,
        "domains = [\"other.test\"]\nhostnme = \"typo.test\"\n[smtp]\nmax_message_size = 30000\nmax_recipients = 5\n",
    )
    .unwrap();
    sighup(&server);
    wait_for_log(&server, "SIGHUP: configuration refused", 1);
    let refused = the_log_line(&server, "configuration refused");
    assert!(
        refused.contains("hostnme") && refused.contains("smtp.max_recipients"),
        "{refused}"
    );
    let mut after = session(server.smtp());
    assert_eq!(ehlo_size(&mut after), "20000");
    after.ok("MAIL FROM:<someone@remote.test>", 250);
    after
        .cmd("RCPT TO:<alice@new.test>")
        .expect(250, "", "still the last good config");
    after
        .cmd("RCPT TO:<alice@other.test>")
        .expect(550, "5.7.1", "the refused config's domain");
    after.quit();
    the_log_line(&server, "SIGHUP: configuration reloaded");
}

/// The `s=` tag of the DKIM-Signature at the top of a relayed message.
fn dkim_selector(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    assert!(text.starts_with("DKIM-Signature:"), "unsigned:\n{text}");
    let header: String = text
        .split("\r\n")
        .take_while(|l| !l.is_empty())
        .enumerate()
        .take_while(|(i, l)| *i == 0 || l.starts_with([' ', '\t']))
        .map(|(_, l)| l)
        .collect();
    header
        .split(';')
        .map(str::trim)
        .find_map(|tag| tag.strip_prefix("s="))
        .unwrap_or_else(|| panic!("no s= in {header}"))
        .to_string()
}

#[test]
fn sighup_loads_a_dkim_key_generated_while_running() {
    let dir = TestDir::new("sighup-dkim");
    add_user(&dir.data_dir(), "alice");
    let generate = |selector: &str| {
        let out = common::mailroom(
            &dir.data_dir(),
            &["dkim", "generate", "a.test", "--selector", selector],
            None,
        );
        assert!(
            out.status.success(),
            "dkim generate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    generate("s1");
    let sink = common::Sink::start(common::SinkScript::default());
    let server = common::Server::start(
        &dir,
        &ServerOptions {
            users: vec!["alice".into()],
            extra_args: vec![
                "--domain".into(),
                "a.test".into(),
                "--relay-map".into(),
                format!("b.test=127.0.0.1:{}", sink.port()),
            ],
            ..ServerOptions::default()
        }
        .config("trusted_networks = [\"127.0.0.0/8\"]\n"),
    );
    let send = |n: usize| {
        let message = common::crlf(&format!(
            "From: Alice <alice@a.test>\nTo: Bob <bob@b.test>\nSubject: key rotation {n}\n\
             Message-ID: <rotate-{n}@a.test>\nDate: Thu, 27 Nov 2025 12:00:00 +0000\n\nbody {n}\n"
        ));
        let mut smtp = session(server.smtp());
        smtp.ehlo("client.test");
        smtp.send_mail("alice@a.test", &["bob@b.test"], &message)
            .expect(250, "2.0.0", "accepted for relay");
        smtp.quit();
        assert!(
            sink.wait_messages(n, Duration::from_secs(30)),
            "message {n} never reached the sink:\n{}",
            server.stderr()
        );
        dkim_selector(&sink.messages()[n - 1].data)
    };
    assert_eq!(send(1), "s1");
    // A newer key signs only once the server is told.
    std::thread::sleep(Duration::from_millis(20));
    generate("s2");
    assert_eq!(send(2), "s1", "keys are read at start and on SIGHUP only");
    sighup(&server);
    wait_for_log(&server, "SIGHUP: configuration reloaded", 1);
    assert_eq!(send(3), "s2");
}
