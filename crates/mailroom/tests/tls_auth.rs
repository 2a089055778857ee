//! TLS and authentication end to end, with real clients: Python's smtplib
//! and poplib, swaks, curl and `openssl s_client` against `mailroom serve`
//! (STARTTLS, STLS, implicit TLS on smtps/pop3s, SMTP AUTH, POP3 logins),
//! plus the security properties of issue 5: no command injection across
//! STARTTLS/STLS, no plaintext passwords off loopback, sender ownership on
//! submission, and delayed then blocked repeated login failures.
//!
//! The server's certificate is the self-signed one it generates on first
//! start, so every client skips verification.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    Env, PASSWORD, ServerOptions, Smtp, python, require_tool, run_with_timeout, show,
    simple_message, split_trace, wait_for,
};

/// How long a message may take from the submission reply to the Maildir.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

fn opts(listeners: &[&'static str]) -> ServerOptions {
    ServerOptions {
        listeners: listeners.to_vec(),
        ..ServerOptions::default()
    }
}

/// Python prelude: an unverified TLS context and a 15 s socket timeout.
const PRELUDE: &str = r#"
import sys, ssl, socket, smtplib, poplib, base64, time
CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE
T = 15
socket.setdefaulttimeout(T)

def readline(sock):
    # One line, byte by byte: nothing after it is consumed.
    out = b""
    while not out.endswith(b"\n"):
        c = sock.recv(1)
        if not c:
            break
        out += c
    return out.decode("latin-1").rstrip("\r\n")

def smtp_reply(sock):
    lines = []
    while True:
        line = readline(sock)
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return lines
"#;

fn run_py(body: &str, args: &[String]) -> HashMap<String, String> {
    let out = python(&format!("{PRELUDE}\n{body}"), args);
    parse_kv(&out)
}

/// `key=value` lines (later keys win).
fn parse_kv(out: &str) -> HashMap<String, String> {
    let mut map: HashMap<String, String> = out
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    map.insert("_report".into(), out.to_string());
    map
}

fn get<'a>(map: &'a HashMap<String, String>, key: &str) -> &'a str {
    map.get(key).map(String::as_str).unwrap_or_else(|| {
        panic!(
            "no {key}= in the client's report:\n{}",
            map.get("_report").map(String::as_str).unwrap_or("")
        )
    })
}

fn port(addr: SocketAddr) -> String {
    addr.port().to_string()
}

fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The SASL PLAIN initial response for `user` / `password`.
fn plain(user: &str, password: &str) -> String {
    b64(format!("\0{user}\0{password}").as_bytes())
}

/// Waits until `user` has `n` messages, failing with the server log.
fn wait_delivered(env: &Env, user: &str, n: usize) {
    let ok = wait_for(DELIVERY_TIMEOUT, || env.messages(user).len() >= n);
    assert!(
        ok,
        "{user} has {} message(s), expected {n}; server log:\n{}",
        env.messages(user).len(),
        env.server.stderr()
    );
}

/// Asserts `retrieved` (what a POP3 client got) is the stored trace
/// headers followed by exactly `sent`.
fn assert_retrieved(retrieved: &[u8], sent: &[u8], what: &str) {
    let trace = split_trace(retrieved).unwrap_or_else(|| {
        panic!(
            "{what}: retrieved message does not start with Return-Path + Received:\n{}",
            show(retrieved)
        )
    });
    common::assert_same_bytes(trace.rest, sent, what);
}

/// Submission with the smtplib client: STARTTLS, then AUTH PLAIN and AUTH
/// LOGIN on two connections, each sending a message to alice; then poplib
/// STLS + USER/PASS retrieves both byte for byte.
const SMTPLIB_POPLIB_SCRIPT: &str = r#"
host = "127.0.0.1"; sub = int(sys.argv[1]); pop = int(sys.argv[2]); pw = sys.argv[3]
msg = open(sys.argv[4], "rb").read()
for mech in ("PLAIN", "LOGIN"):
    s = smtplib.SMTP(host, sub, timeout=T)
    s.ehlo("client.test")
    print(f"{mech}-starttls-offered={s.has_extn('starttls')}")
    code, _ = s.starttls(context=CTX)
    print(f"{mech}-starttls={code}")
    s.ehlo("client.test")
    mechs = s.esmtp_features.get("auth", "").upper().split()
    print(f"{mech}-offered-after-tls={mech in mechs}")
    s.user, s.password = "alice", pw
    code, _ = s.auth(mech, getattr(s, "auth_" + mech.lower()), initial_response_ok=(mech == "PLAIN"))
    print(f"{mech}-auth={code}")
    refused = s.sendmail("alice@example.test", ["alice@example.test"], msg)
    print(f"{mech}-refused={len(refused)}")
    s.quit()

# Delivery is asynchronous: wait for both messages.
deadline = time.time() + 30
while True:
    p = poplib.POP3(host, pop, timeout=T)
    caps = p.capa()
    print(f"capa-stls={'STLS' in caps}")
    print("stls=" + p.stls(context=CTX).decode()[:3])
    p.user("alice")
    print("pass=" + p.pass_(pw).decode()[:3])
    n, _ = p.stat()
    if n >= 2 or time.time() > deadline:
        break
    p.quit()
    time.sleep(0.3)
print(f"count={n}")
for i in range(1, n + 1):
    resp, lines, octets = p.retr(i)
    open(sys.argv[5] + str(i), "wb").write(b"\r\n".join(lines) + b"\r\n")
p.quit()
"#;

#[test]
fn smtplib_starttls_plain_and_login_then_poplib_stls_retrieves_byte_exact() {
    if !require_tool("python3") {
        return;
    }
    let env = Env::with("tls-smtplib", opts(&["submission", "pop3"]));
    let msg = simple_message(
        "smtplib starttls",
        "Sent over STARTTLS after AUTH.\r\n.leading dot",
    );
    let msg_file = env.dir.write("msg.eml", &msg);
    let out_prefix = env.dir.path().join("retrieved-");
    let r = run_py(
        SMTPLIB_POPLIB_SCRIPT,
        &[
            port(env.server.addr("submission")),
            port(env.server.pop3()),
            PASSWORD.into(),
            msg_file.display().to_string(),
            out_prefix.display().to_string(),
        ],
    );
    for mech in ["PLAIN", "LOGIN"] {
        assert_eq!(get(&r, &format!("{mech}-starttls-offered")), "True");
        assert_eq!(get(&r, &format!("{mech}-starttls")), "220");
        assert_eq!(get(&r, &format!("{mech}-offered-after-tls")), "True");
        assert_eq!(get(&r, &format!("{mech}-auth")), "235");
        assert_eq!(get(&r, &format!("{mech}-refused")), "0");
    }
    assert_eq!(get(&r, "capa-stls"), "True");
    assert_eq!(get(&r, "stls"), "+OK");
    assert_eq!(get(&r, "pass"), "+OK");
    assert_eq!(get(&r, "count"), "2", "{}", get(&r, "_report"));
    for i in 1..=2 {
        let got = std::fs::read(format!("{}{i}", out_prefix.display())).unwrap();
        assert_retrieved(&got, &msg, &format!("message {i} over POP3 STLS"));
    }
}

const IMPLICIT_TLS_SCRIPT: &str = r#"
host = "127.0.0.1"; smtps = int(sys.argv[1]); pop3s = int(sys.argv[2]); pw = sys.argv[3]
msg = open(sys.argv[4], "rb").read()
s = smtplib.SMTP_SSL(host, smtps, context=CTX, timeout=T)
s.ehlo("client.test")
print(f"starttls-on-smtps={s.has_extn('starttls')}")
print(f"auth-offered={s.has_extn('auth')}")
code, _ = s.login("alice", pw)
print(f"auth={code}")
print(f"refused={len(s.sendmail('alice@example.test', ['alice@example.test'], msg))}")
s.quit()
deadline = time.time() + 30
while True:
    p = poplib.POP3_SSL(host, pop3s, context=CTX, timeout=T)
    p.user("alice")
    print("pass=" + p.pass_(pw).decode()[:3])
    n, _ = p.stat()
    if n >= 1 or time.time() > deadline:
        break
    p.quit()
    time.sleep(0.3)
print(f"count={n}")
resp, lines, octets = p.retr(1)
open(sys.argv[5], "wb").write(b"\r\n".join(lines) + b"\r\n")
p.quit()
"#;

#[test]
fn smtp_ssl_on_smtps_and_pop3_ssl_on_pop3s() {
    if !require_tool("python3") {
        return;
    }
    let env = Env::with("tls-implicit", opts(&["smtps", "pop3s"]));
    let msg = simple_message("implicit tls", "Over smtps, fetched over pop3s.");
    let msg_file = env.dir.write("msg.eml", &msg);
    let out = env.dir.path().join("retrieved.eml");
    let r = run_py(
        IMPLICIT_TLS_SCRIPT,
        &[
            port(env.server.addr("smtps")),
            port(env.server.addr("pop3s")),
            PASSWORD.into(),
            msg_file.display().to_string(),
            out.display().to_string(),
        ],
    );
    assert_eq!(
        get(&r, "starttls-on-smtps"),
        "False",
        "no STARTTLS inside TLS"
    );
    assert_eq!(get(&r, "auth-offered"), "True");
    assert_eq!(get(&r, "auth"), "235");
    assert_eq!(get(&r, "refused"), "0");
    assert_eq!(get(&r, "pass"), "+OK");
    assert_eq!(get(&r, "count"), "1");
    assert_retrieved(&std::fs::read(out).unwrap(), &msg, "message over pop3s");
}

fn run_tool(mut cmd: Command, what: &str) -> (String, String) {
    cmd.env_remove("http_proxy").env_remove("all_proxy");
    let out = run_with_timeout(cmd, None, Duration::from_secs(90));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

/// swaks needs Net::SSLeay for --tls/--tlsc (Debian: libnet-ssleay-perl,
/// only a Recommends of the swaks package).
fn swaks_has_tls() -> bool {
    let mut cmd = Command::new("perl");
    cmd.args(["-MNet::SSLeay", "-e", "1"]);
    if run_with_timeout(cmd, None, Duration::from_secs(30))
        .status
        .success()
    {
        return true;
    }
    if common::in_ci() {
        panic!(
            "swaks has no TLS support (perl Net::SSLeay missing: install libnet-ssleay-perl), and CI=true"
        );
    }
    eprintln!(
        "SKIP: swaks has no TLS support (perl Net::SSLeay missing: install libnet-ssleay-perl)"
    );
    false
}

#[test]
fn swaks_starttls_auth_on_submission_and_tlsc_on_smtps() {
    if !require_tool("swaks") || !swaks_has_tls() {
        return;
    }
    let env = Env::with("tls-swaks", opts(&["submission", "smtps"]));
    for (service, tls_flag, subject) in [
        ("submission", "--tls", "swaks-starttls"),
        ("smtps", "--tlsc", "swaks-implicit"),
    ] {
        let mut cmd = Command::new("swaks");
        cmd.args(["--server", "127.0.0.1", "--port"])
            .arg(port(env.server.addr(service)))
            .arg(tls_flag)
            .args(["--auth", "PLAIN", "--auth-user", "alice", "--auth-password"])
            .arg(PASSWORD)
            .args([
                "--from",
                "alice@example.test",
                "--to",
                "bob@example.test",
                "--ehlo",
                "client.test",
                "--timeout",
                "15",
                "--header",
            ])
            .arg(format!("Subject: {subject}"))
            .args(["--body", "sent by swaks"]);
        let (stdout, _) = run_tool(cmd, &format!("swaks {tls_flag}"));
        assert!(
            stdout.contains("<~  235"),
            "swaks {tls_flag}: no 235 to AUTH over TLS:\n{stdout}"
        );
    }
    wait_delivered(&env, "bob", 2);
    let texts: Vec<String> = env.messages("bob").iter().map(|m| m.text()).collect();
    for subject in ["swaks-starttls", "swaks-implicit"] {
        assert!(
            texts.iter().any(|t| t.contains(subject)),
            "no message with {subject} for bob"
        );
    }
}

/// curl submits over STARTTLS (`--ssl-reqd`) with AUTH to alice, then
/// fetches the message over POP3 STLS; `login_options` is curl's
/// `--login-options` for the SMTP leg (None: curl picks the mechanism).
fn curl_round_trip(tag: &str, login_options: Option<&str>) {
    if !require_tool("curl") {
        return;
    }
    let env = Env::with(tag, opts(&["submission", "pop3"]));
    let msg = simple_message("curl ssl-reqd", "Sent by curl over STARTTLS.");
    let file = env.dir.write("msg.eml", &msg);
    let user = format!("alice:{PASSWORD}");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--ssl-reqd", "-k", "--max-time", "30"]);
    if let Some(options) = login_options {
        cmd.args(["--login-options", options]);
    }
    cmd.arg(format!(
        "smtp://127.0.0.1:{}/client.test",
        env.server.addr("submission").port()
    ))
    .args(["--user", &user])
    .args(["--mail-from", "alice@example.test"])
    .args(["--mail-rcpt", "alice@example.test"])
    .arg("--upload-file")
    .arg(&file);
    run_tool(cmd, "curl smtp");
    wait_delivered(&env, "alice", 1);

    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--ssl-reqd", "-k", "--max-time", "30"])
        .arg(format!("pop3://127.0.0.1:{}/1", env.server.pop3().port()))
        .args(["--user", &user]);
    let out = run_with_timeout(cmd, None, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "curl pop3 failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_retrieved(&out.stdout, &msg, "message fetched by curl pop3");
}

#[test]
fn curl_smtp_ssl_reqd_auth_plain_then_pop3_ssl_reqd_retrieves() {
    curl_round_trip("tls-curl-plain", Some("AUTH=PLAIN"));
}

/// Plain `curl --ssl-reqd smtp://… --user alice:PW`, as a user would type
/// it. curl picks the strongest mechanism EHLO offers; the server offers
/// CRAM-MD5 to everyone although only users with a stored secret can use it.
#[test]
fn curl_smtp_ssl_reqd_default_mechanism_then_pop3_retrieves() {
    curl_round_trip("tls-curl-default", None);
}

/// `openssl s_client ARGS` fed `lines` one at a time (0.5 s apart, after a
/// 1 s wait for the handshake and greeting); returns stdout.
fn s_client(args: &[String], lines: &[&str]) -> String {
    let mut script = String::from("{ sleep 1; ");
    for (i, _) in lines.iter().enumerate() {
        script.push_str(&format!("printf '%s\\r\\n' \"$L{i}\"; sleep 0.5; "));
    }
    script.push_str("sleep 1; } | openssl s_client -quiet \"$@\"");
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script).arg("sh").args(args);
    for (i, line) in lines.iter().enumerate() {
        cmd.env(format!("L{i}"), line);
    }
    let out = run_with_timeout(cmd, None, Duration::from_secs(60));
    // The exit status is not checked: the replies are (a close after QUIT
    // may be reported as an error by some OpenSSL versions).
    format!(
        "{}\n---- s_client status {}, stderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    )
}

fn connect_arg(addr: SocketAddr) -> Vec<String> {
    vec!["-connect".into(), addr.to_string()]
}

fn has_line(out: &str, pred: impl Fn(&str) -> bool) -> bool {
    out.lines().map(|l| l.trim_end_matches('\r')).any(pred)
}

#[test]
fn openssl_s_client_starttls_and_implicit_tls_for_smtp_and_pop3() {
    if !require_tool("openssl") {
        return;
    }
    let env = Env::with(
        "tls-openssl",
        opts(&["submission", "smtps", "pop3", "pop3s"]),
    );
    let pass = format!("PASS {PASSWORD}");
    let auth = format!("AUTH PLAIN {}", plain("alice", PASSWORD));
    let smtp_lines = ["EHLO client.test", auth.as_str(), "QUIT"];
    let pop_lines = ["USER alice", pass.as_str(), "STAT", "QUIT"];

    // SMTP: STARTTLS on submission, and implicit TLS on smtps.
    let mut starttls = connect_arg(env.server.addr("submission"));
    starttls.extend(["-starttls".into(), "smtp".into()]);
    let cases = [
        ("submission -starttls smtp", starttls, false),
        (
            "smtps (implicit)",
            connect_arg(env.server.addr("smtps")),
            true,
        ),
    ];
    for (what, args, greets) in cases {
        let out = s_client(&args, &smtp_lines);
        if greets {
            assert!(
                has_line(&out, |l| l.starts_with("220 ")),
                "{what}: no greeting over TLS:\n{out}"
            );
        }
        assert!(
            has_line(&out, |l| l.starts_with("250-AUTH")
                || l.starts_with("250 AUTH")),
            "{what}: EHLO over TLS must list AUTH:\n{out}"
        );
        assert!(
            !has_line(&out, |l| l.to_ascii_uppercase().contains("STARTTLS")),
            "{what}: STARTTLS offered inside TLS:\n{out}"
        );
        assert!(
            has_line(&out, |l| l.starts_with("235 ")),
            "{what}: AUTH PLAIN over TLS must succeed:\n{out}"
        );
        assert!(
            has_line(&out, |l| l.starts_with("221 ")),
            "{what}: no 221 to QUIT:\n{out}"
        );
    }

    // POP3: STLS on pop3, and implicit TLS on pop3s.
    let mut stls = connect_arg(env.server.pop3());
    stls.extend(["-starttls".into(), "pop3".into()]);
    let cases = [
        ("pop3 -starttls pop3", stls, false),
        (
            "pop3s (implicit)",
            connect_arg(env.server.addr("pop3s")),
            true,
        ),
    ];
    for (what, args, greets) in cases {
        let out = s_client(&args, &pop_lines);
        let stdout = out.split("\n---- s_client status").next().unwrap_or("");
        let ok_lines = stdout.lines().filter(|l| l.starts_with("+OK")).count();
        // Greeting (implicit only), USER, PASS, STAT, QUIT.
        let want = if greets { 5 } else { 4 };
        assert_eq!(ok_lines, want, "{what}: expected {want} +OK lines:\n{out}");
        assert!(
            has_line(&out, |l| l.starts_with("+OK 0 0")),
            "{what}: STAT of an empty maildrop:\n{out}"
        );
        assert!(!stdout.contains("-ERR"), "{what}: an -ERR:\n{out}");
    }
}

/// STLS with `USER alice` pipelined in the same packet: after the
/// handshake the server must have no pending USER, so PASS gets -ERR.
/// Then the same for STARTTLS on submission with an AUTH pipelined behind:
/// after TLS the session is not authenticated (MAIL gets 530).
const INJECTION_SCRIPT: &str = r#"
host = "127.0.0.1"; pop = int(sys.argv[1]); sub = int(sys.argv[2]); pw = sys.argv[3]; plain = sys.argv[4]

s = socket.create_connection((host, pop), timeout=T)
print("pop-greeting=" + readline(s)[:3])
s.sendall(b"STLS\r\nUSER alice\r\n")
print("stls=" + readline(s))
s.settimeout(1.0)
try:
    extra = s.recv(100)
    print("pop-plaintext-after-stls=" + repr(extra))
except socket.timeout:
    print("pop-plaintext-after-stls=none")
s.settimeout(T)
t = CTX.wrap_socket(s)
t.sendall(b"PASS " + pw.encode() + b"\r\n")
print("pass-after-tls=" + readline(t))
t.sendall(b"USER alice\r\n")
print("user=" + readline(t)[:3])
t.sendall(b"PASS " + pw.encode() + b"\r\n")
print("pass=" + readline(t)[:3])
t.sendall(b"QUIT\r\n")
print("quit=" + readline(t)[:3])
t.close()

s = socket.create_connection((host, sub), timeout=T)
print("smtp-greeting=" + smtp_reply(s)[-1][:3])
s.sendall(b"EHLO client.test\r\n")
smtp_reply(s)
s.sendall(b"STARTTLS\r\nAUTH PLAIN " + plain.encode() + b"\r\n")
print("starttls=" + smtp_reply(s)[-1])
s.settimeout(1.0)
try:
    extra = s.recv(100)
    print("smtp-plaintext-after-starttls=" + repr(extra))
except socket.timeout:
    print("smtp-plaintext-after-starttls=none")
s.settimeout(T)
t = CTX.wrap_socket(s)
t.sendall(b"EHLO client.test\r\n")
print("ehlo-after-tls=" + smtp_reply(t)[0][:3])
t.sendall(b"MAIL FROM:<alice@example.test>\r\n")
print("mail-after-tls=" + smtp_reply(t)[-1])
t.sendall(b"QUIT\r\n")
print("smtp-quit=" + smtp_reply(t)[-1][:3])
t.close()
"#;

#[test]
fn commands_pipelined_behind_stls_and_starttls_are_not_executed() {
    if !require_tool("python3") {
        return;
    }
    let env = Env::with("tls-inject", opts(&["pop3", "submission"]));
    let r = run_py(
        INJECTION_SCRIPT,
        &[
            port(env.server.pop3()),
            port(env.server.addr("submission")),
            PASSWORD.into(),
            plain("alice", PASSWORD),
        ],
    );
    assert_eq!(get(&r, "pop-greeting"), "+OK");
    assert!(
        get(&r, "stls").starts_with("+OK"),
        "STLS: {}",
        get(&r, "stls")
    );
    assert_eq!(
        get(&r, "pop-plaintext-after-stls"),
        "none",
        "the server answered the pipelined USER in plaintext"
    );
    assert!(
        get(&r, "pass-after-tls").starts_with("-ERR"),
        "the USER pipelined behind STLS was executed (PASS after TLS: {:?})",
        get(&r, "pass-after-tls")
    );
    assert_eq!(get(&r, "user"), "+OK");
    assert_eq!(get(&r, "pass"), "+OK", "a proper login after STLS works");
    assert_eq!(get(&r, "quit"), "+OK");

    assert_eq!(get(&r, "smtp-greeting"), "220");
    assert!(
        get(&r, "starttls").starts_with("220"),
        "{}",
        get(&r, "starttls")
    );
    assert_eq!(get(&r, "smtp-plaintext-after-starttls"), "none");
    assert_eq!(
        get(&r, "ehlo-after-tls"),
        "250",
        "first reply after TLS must answer EHLO (not the injected AUTH)"
    );
    assert!(
        get(&r, "mail-after-tls").starts_with("530 5.7.0"),
        "the AUTH pipelined behind STARTTLS was executed: MAIL after TLS got {:?}",
        get(&r, "mail-after-tls")
    );
    assert_eq!(get(&r, "smtp-quit"), "221");
}

/// From 127.0.0.2 to a server on 127.0.0.2 whose plaintext_auth_networks
/// is only 127.0.0.1: no AUTH / USER-PASS before TLS, both after it.
const PLAINTEXT_SCRIPT: &str = r#"
host = "127.0.0.2"; sub = int(sys.argv[1]); pop = int(sys.argv[2]); pw = sys.argv[3]; plain = sys.argv[4]
src = (sys.argv[5], 0)

s = smtplib.SMTP(host, sub, timeout=T, source_address=src)
s.ehlo("client.test")
print(f"auth-listed-before-tls={s.has_extn('auth')}")
code, resp = s.docmd("AUTH", "PLAIN " + plain)
print(f"auth-plain-before-tls={code} {resp.decode()}")
code, resp = s.docmd("AUTH", "LOGIN")
print(f"auth-login-before-tls={code} {resp.decode()}")
if code == 334:
    s.docmd("*")
code, resp = s.docmd("MAIL", "FROM:<alice@example.test>")
print(f"mail-before-tls={code}")
s.rset()
s.starttls(context=CTX)
s.ehlo("client.test")
print(f"auth-listed-after-tls={s.has_extn('auth')}")
s.user, s.password = "alice", pw
code, _ = s.auth("PLAIN", s.auth_plain)
print(f"auth-plain-after-tls={code}")
s.quit()
s = smtplib.SMTP(host, sub, timeout=T, source_address=src)
s.starttls(context=CTX)
s.ehlo("client.test")
s.user, s.password = "alice", pw
code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
print(f"auth-login-after-tls={code}")
s.quit()

s = socket.create_connection((host, pop), timeout=T, source_address=src)
print("pop-greeting=" + readline(s)[:3])
s.sendall(b"USER alice\r\n")
user = readline(s)
print("user-before-tls=" + user)
if user.startswith("+OK"):
    s.sendall(b"PASS " + pw.encode() + b"\r\n")
    print("pass-before-tls=" + readline(s))
else:
    print("pass-before-tls=(USER refused)")
if src[0] == "127.0.0.1":
    # The control run logged in without TLS: STLS is over.
    s.close()
    sys.exit(0)
s.sendall(b"STLS\r\n")
print("stls=" + readline(s)[:3])
t = CTX.wrap_socket(s)
t.sendall(b"USER alice\r\n")
print("user-after-tls=" + readline(t)[:3])
t.sendall(b"PASS " + pw.encode() + b"\r\n")
print("pass-after-tls=" + readline(t)[:3])
t.sendall(b"QUIT\r\n")
readline(t)
t.close()
"#;

#[test]
fn plaintext_auth_refused_before_tls_off_the_plaintext_networks() {
    if !require_tool("python3") {
        return;
    }
    let env = Env::with_ip(
        "tls-plaintext",
        opts(&["submission", "pop3"]).config("plaintext_auth_networks = [\"127.0.0.1/32\"]\n"),
        "127.0.0.2",
    );
    let args = |src: &str| {
        vec![
            port(env.server.addr("submission")),
            port(env.server.pop3()),
            PASSWORD.to_string(),
            plain("alice", PASSWORD),
            src.to_string(),
        ]
    };
    let r = run_py(PLAINTEXT_SCRIPT, &args("127.0.0.2"));
    assert_eq!(
        get(&r, "auth-listed-before-tls"),
        "False",
        "EHLO before STARTTLS must not offer AUTH to 127.0.0.2"
    );
    for key in ["auth-plain-before-tls", "auth-login-before-tls"] {
        assert!(
            get(&r, key).starts_with("538 5.7.11"),
            "{key}: expected 538 5.7.11, got {:?}",
            get(&r, key)
        );
    }
    assert!(get(&r, "mail-before-tls").starts_with("530"));
    assert_eq!(get(&r, "auth-listed-after-tls"), "True");
    assert_eq!(get(&r, "auth-plain-after-tls"), "235");
    assert_eq!(get(&r, "auth-login-after-tls"), "235");
    assert_eq!(get(&r, "pop-greeting"), "+OK");
    let refused_somewhere = get(&r, "user-before-tls").starts_with("-ERR")
        || get(&r, "pass-before-tls").starts_with("-ERR");
    assert!(
        refused_somewhere,
        "USER/PASS before STLS from 127.0.0.2 must be refused:\n{}",
        get(&r, "_report")
    );
    assert!(
        !get(&r, "pass-before-tls").starts_with("+OK"),
        "plaintext PASS accepted from 127.0.0.2"
    );
    assert_eq!(get(&r, "stls"), "+OK");
    assert_eq!(get(&r, "user-after-tls"), "+OK");
    assert_eq!(get(&r, "pass-after-tls"), "+OK");

    // Control: from 127.0.0.1 (in plaintext_auth_networks) the same server
    // offers AUTH and USER/PASS without TLS, so the refusal above is about
    // the network, not something else.
    let r = run_py(PLAINTEXT_SCRIPT, &args("127.0.0.1"));
    assert_eq!(get(&r, "auth-listed-before-tls"), "True");
    assert!(get(&r, "auth-plain-before-tls").starts_with("235"));
    assert_eq!(get(&r, "user-before-tls").get(..3), Some("+OK"));
}

fn submission(env: &Env) -> Smtp {
    let mut smtp = Smtp::connect(env.server.addr("submission"));
    smtp.read_reply().expect(220, "", "greeting");
    smtp
}

#[test]
fn submission_requires_auth_and_owned_sender() {
    let env = Env::with("tls-sender", opts(&["submission"]));
    let mut smtp = submission(&env);
    smtp.ehlo("client.test");
    smtp.cmd("MAIL FROM:<alice@example.test>").expect(
        530,
        "5.7.0",
        "MAIL before AUTH on submission",
    );
    // RFC 4954 §4 / RFC 4616 §2: a response that is not base64 is 501; a
    // well-formed one the server will not accept (an empty message, alice's
    // password to act as bob) fails the authentication.
    smtp.cmd("AUTH PLAIN !!!").expect(
        501,
        "5.5.2",
        "AUTH PLAIN with a response that is not base64",
    );
    smtp.cmd("AUTH PLAIN =")
        .expect(535, "5.7.8", "AUTH PLAIN with an empty response");
    smtp.cmd(&format!(
        "AUTH PLAIN {}",
        b64(format!("bob\0alice\0{PASSWORD}").as_bytes())
    ))
    .expect(535, "5.7.8", "AUTH PLAIN as alice, to act as bob");
    smtp.cmd(&format!("AUTH PLAIN {}", plain("alice", PASSWORD)))
        .expect(235, "", "AUTH PLAIN on loopback");
    smtp.cmd("MAIL FROM:<bob@example.test>")
        .expect(553, "5.7.1", "alice sending as bob");
    smtp.cmd("MAIL FROM:<alice@example.test>")
        .expect(250, "", "alice sending as alice");
    smtp.cmd("RCPT TO:<someone@remote.test>")
        .expect(250, "", "an authenticated user may relay");
    smtp.ok("RSET", 250);
    smtp.quit();
}

#[test]
fn repeated_login_failures_are_delayed_then_blocked() {
    let env = Env::with(
        "tls-bruteforce",
        opts(&["submission", "pop3"]).config("[pop3]\nlogin_failure_delay = 0.2\n"),
    );
    // Control: the right POP3 password works before the failures.
    let pass = pop3_login(env.server.pop3(), "bob", PASSWORD);
    assert!(
        pass.starts_with("+OK"),
        "POP3 login before any failure: {pass}"
    );
    let wrong = format!("AUTH PLAIN {}", plain("alice", "wrong password"));
    let mut smtp = submission(&env);
    smtp.ehlo("client.test");
    let mut times = Vec::new();
    for i in 0..10 {
        let start = Instant::now();
        smtp.cmd(&wrong)
            .expect(535, "5.7.8", &format!("wrong password #{}", i + 1));
        times.push(start.elapsed());
    }
    eprintln!("failure reply times: {times:?}");
    // The delay is 0.2 s doubled per earlier failure, capped at 16x.
    for (i, t) in times.iter().take(5).enumerate() {
        let min = Duration::from_millis(200 << i);
        assert!(
            *t >= min,
            "failure #{} answered after {t:?}, expected at least {min:?} ({times:?})",
            i + 1
        );
    }
    assert!(
        times[3] >= times[0] + Duration::from_millis(800),
        "the 4th failure must take measurably longer than the first: {times:?}"
    );
    // After 10 failures the address is blocked: even the right password fails,
    // on this connection, a new one, and POP3.
    smtp.cmd(&format!("AUTH PLAIN {}", plain("alice", PASSWORD)))
        .expect(535, "5.7.8", "right password from a blocked address");
    let mut again = submission(&env);
    again.ehlo("client.test");
    again
        .cmd(&format!("AUTH PLAIN {}", plain("bob", PASSWORD)))
        .expect(535, "5.7.8", "right password (other user), new connection");
    let pass = pop3_login(env.server.pop3(), "bob", PASSWORD);
    assert!(
        pass.starts_with("-ERR"),
        "POP3 login with the right password from a blocked address: {pass}"
    );
}

/// USER/PASS over a plaintext POP3 connection (loopback); returns the
/// reply to PASS.
fn pop3_login(addr: SocketAddr, user: &str, password: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut read = |line: &mut String| {
        line.clear();
        reader.read_line(line).unwrap();
        line.trim_end().to_string()
    };
    let greeting = read(&mut line);
    assert!(greeting.starts_with("+OK"), "POP3 greeting: {greeting}");
    writer
        .write_all(format!("USER {user}\r\n").as_bytes())
        .unwrap();
    let reply = read(&mut line);
    if !reply.starts_with("+OK") {
        return reply;
    }
    writer
        .write_all(format!("PASS {password}\r\n").as_bytes())
        .unwrap();
    let reply = read(&mut line);
    let _ = writer.write_all(b"QUIT\r\n");
    reply
}

/// After QUIT over TLS the server closes the TLS session properly: a
/// close_notify alert before the TCP close (RFC 8446 §6.1), so the client
/// can tell the end of the session from a truncation attack. With
/// `suppress_ragged_eofs=False` Python reports a bare TCP close as SSLEOFError.
const CLOSE_NOTIFY_SCRIPT: &str = r#"
def check(name, port, implicit):
    s = socket.create_connection(("127.0.0.1", port), timeout=T)
    if implicit:
        t = CTX.wrap_socket(s, suppress_ragged_eofs=False)
        readline(t)
    else:
        readline(s)
        s.sendall(b"STLS\r\n")
        readline(s)
        t = CTX.wrap_socket(s, suppress_ragged_eofs=False)
    t.sendall(b"QUIT\r\n")
    print(name + "-quit=" + readline(t)[:3])
    try:
        rest = t.recv(100)
        print(name + "-close=" + ("clean" if rest == b"" else repr(rest)))
    except ssl.SSLEOFError as e:
        print(name + "-close=no close_notify (" + str(e) + ")")
    except Exception as e:
        print(name + "-close=" + type(e).__name__ + " " + str(e))

check("pop3", int(sys.argv[1]), False)
check("pop3s", int(sys.argv[2]), True)
check("smtps", int(sys.argv[3]), True)
"#;

#[test]
fn tls_sessions_end_with_close_notify() {
    if !require_tool("python3") {
        return;
    }
    let env = Env::with("tls-close", opts(&["pop3", "pop3s", "smtps"]));
    let r = run_py(
        CLOSE_NOTIFY_SCRIPT,
        &[
            port(env.server.pop3()),
            port(env.server.addr("pop3s")),
            port(env.server.addr("smtps")),
        ],
    );
    assert_eq!(get(&r, "pop3-quit"), "+OK");
    assert_eq!(get(&r, "pop3s-quit"), "+OK");
    assert_eq!(get(&r, "smtps-quit"), "221");
    for name in ["pop3", "pop3s", "smtps"] {
        assert_eq!(
            get(&r, &format!("{name}-close")),
            "clean",
            "{name}: TLS session not closed with close_notify:\n{}",
            get(&r, "_report")
        );
    }
}

/// Submission on instance A without AUTH (refused), then with STARTTLS +
/// AUTH PLAIN as alice to bob@b.test, a domain of instance B; then poplib
/// STLS at B waits for bob's copy and retrieves it.
const SUBMIT_RELAY_SCRIPT: &str = r#"
host = "127.0.0.1"; sub = int(sys.argv[1]); pop = int(sys.argv[2]); pw = sys.argv[3]
msg = open(sys.argv[4], "rb").read()

s = smtplib.SMTP(host, sub, timeout=T)
s.starttls(context=CTX)
s.ehlo("client.test")
code, resp = s.docmd("MAIL", "FROM:<alice@example.test>")
print(f"noauth-mail={code} {resp.decode()}")
s.quit()

s = smtplib.SMTP(host, sub, timeout=T)
print(f"starttls={s.starttls(context=CTX)[0]}")
s.ehlo("client.test")
s.user, s.password = "alice", pw
print(f"auth={s.auth('PLAIN', s.auth_plain)[0]}")
print(f"refused={len(s.sendmail('alice@example.test', ['bob@b.test'], msg))}")
s.quit()

deadline = time.time() + 30
while True:
    p = poplib.POP3(host, pop, timeout=T)
    print("stls=" + p.stls(context=CTX).decode()[:3])
    p.user("bob")
    print("pass=" + p.pass_(pw).decode()[:3])
    n, _ = p.stat()
    if n >= 1 or time.time() > deadline:
        break
    p.quit()
    time.sleep(0.3)
print(f"count={n}")
if n >= 1:
    resp, lines, octets = p.retr(1)
    open(sys.argv[5], "wb").write(b"\r\n".join(lines) + b"\r\n")
p.quit()
"#;

#[test]
fn authenticated_submission_is_relayed_to_another_instance_and_retrieved_there() {
    if !require_tool("python3") {
        return;
    }
    // B: the destination, local domain b.test, POP3 for bob.
    let b = Env::with(
        "tls-relay-b",
        ServerOptions {
            extra_args: vec!["--domain".into(), "b.test".into()],
            ..opts(&["smtp", "pop3"])
        },
    );
    // A: submission and the public SMTP port; loopback is not trusted (no
    // trusted_networks), so only an authenticated client may relay.
    let a = Env::with(
        "tls-relay-a",
        ServerOptions {
            extra_args: vec![
                "--relay-map".into(),
                format!("b.test=127.0.0.1:{}", b.smtp().port()),
            ],
            ..opts(&["smtp", "submission"])
        }
        .config("[queue]\nretry_schedule = [\"1s\"]\n"),
    );

    // The public port of A refuses to relay for an unauthenticated client
    // (RFC 5321 §3.6.2), before any message text.
    let mut smtp = a.connect();
    smtp.ehlo("client.test");
    smtp.ok("MAIL FROM:<alice@example.test>", 250);
    smtp.cmd("RCPT TO:<bob@b.test>")
        .expect(550, "5.7.1", "relay on A's public port without AUTH");
    smtp.quit();

    let msg = common::crlf(
        "From: Alice <alice@example.test>\n\
         To: Bob <bob@b.test>\n\
         Subject: submitted with AUTH, relayed to B\n\
         Message-ID: <submit-relay-1@example.test>\n\
         Date: Thu, 27 Nov 2025 12:00:00 +0000\n\
         \n\
         Submitted on A with STARTTLS and AUTH PLAIN.\n\
         .a line starting with a dot\n\
         \n\
         Last line, trailing spaces   \n",
    );
    let msg_file = a.dir.write("msg.eml", &msg);
    let out = a.dir.path().join("retrieved-at-b");
    let r = run_py(
        SUBMIT_RELAY_SCRIPT,
        &[
            port(a.server.addr("submission")),
            port(b.server.pop3()),
            PASSWORD.into(),
            msg_file.display().to_string(),
            out.display().to_string(),
        ],
    );
    assert!(
        get(&r, "noauth-mail").starts_with("530 5.7.0"),
        "MAIL without AUTH on submission: {}",
        get(&r, "noauth-mail")
    );
    assert_eq!(get(&r, "starttls"), "220");
    assert_eq!(get(&r, "auth"), "235");
    assert_eq!(get(&r, "refused"), "0");
    assert_eq!(get(&r, "stls"), "+OK");
    assert_eq!(get(&r, "pass"), "+OK");
    assert_eq!(
        get(&r, "count"),
        "1",
        "bob@b.test has no message at B; A's log:\n{}",
        a.server.stderr()
    );

    // What POP3 gave is what B stored: B's trace fields, A's Received
    // (authenticated over TLS: ESMTPSA, RFC 3848), then the message as
    // submitted, byte for byte.
    let retrieved = std::fs::read(&out).unwrap();
    let stored = b.messages("bob");
    assert_eq!(stored.len(), 1);
    stored[0].assert_well_formed();
    common::assert_same_bytes(
        &retrieved,
        &stored[0].bytes,
        "POP3 RETR at B vs B's Maildir",
    );
    assert_eq!(stored[0].return_path(), "alice@example.test");
    let after_b = split_trace(&retrieved).unwrap().rest;
    let received_at_a = String::from_utf8_lossy(&after_b[..after_b.len().min(400)]).into_owned();
    assert!(
        received_at_a.starts_with("Received:") && received_at_a.contains("ESMTPSA"),
        "A's Received (ESMTPSA) must follow B's trace fields:\n{received_at_a}"
    );
    let original = common::strip_leading_field(after_b, "Received").unwrap();
    common::assert_same_bytes(original, &msg, "relayed submission at B");

    // The refused attempts left nothing anywhere: one message at B, none
    // for the local users of A.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(b.messages("bob").len(), 1, "delivered more than once");
    assert!(a.messages("bob").is_empty() && a.messages("alice").is_empty());
}
