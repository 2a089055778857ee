//! Raw SMTP conversations with `mailroom serve` over TcpStream, checking the
//! exact reply codes RFC 5321 and its extensions require.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Env, ServerOptions, Smtp, assert_same_bytes, crlf, simple_message};

const FROM: &str = "sender@remote.test";
const ALICE: &str = "alice@example.test";

#[test]
fn greeting_is_220_and_quit_is_221() {
    let env = Env::start("greeting");
    let mut smtp = Smtp::connect(env.smtp());
    let greeting = smtp.read_reply();
    assert_eq!(greeting.code, 220, "greeting: {greeting}");
    assert_eq!(
        greeting.lines.len(),
        1,
        "greeting should be one `220 ` line: {greeting}"
    );
    assert!(
        greeting.lines[0].starts_with(common::HOSTNAME),
        "RFC 5321 §4.3.1: the greeting names the server ({}): {greeting}",
        common::HOSTNAME
    );
    smtp.quit();
    assert!(
        smtp.is_closed(Duration::from_secs(5)),
        "connection stays open after 221"
    );
}

#[test]
fn ehlo_lists_extensions() {
    let env = Env::start("ehlo");
    let mut smtp = env.connect();
    let keywords = smtp.ehlo("client.remote.test");
    for ext in [
        "PIPELINING",
        "SIZE",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "SMTPUTF8",
        "CHUNKING",
    ] {
        assert!(
            keywords.iter().any(|k| k == ext),
            "EHLO does not list {ext}: {keywords:?}"
        );
    }
    // HELO works as well, and a second EHLO resets nothing it should not.
    smtp.ok("HELO client.remote.test", 250);
    smtp.ok("NOOP", 250);
    smtp.ok("RSET", 250);
    smtp.quit();
}

#[test]
fn pipelined_mail_rcpt_data_in_one_write() {
    let env = Env::start("pipelining");
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    smtp.send(format!("MAIL FROM:<{FROM}>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n").as_bytes());
    smtp.read_reply().expect(250, "", "pipelined MAIL");
    smtp.read_reply().expect(250, "", "pipelined RCPT");
    smtp.read_reply().expect(354, "", "pipelined DATA");
    let message = simple_message("pipelined", "one write for the envelope");
    // Body, end of data and the next command in one write too.
    let mut tail = common::dot_stuff(&message);
    tail.extend_from_slice(b"NOOP\r\n");
    smtp.send(&tail);
    smtp.read_reply().expect(250, "", "end of data");
    smtp.read_reply().expect(250, "", "NOOP after end of data");
    smtp.quit();
    let stored = env.messages("alice");
    assert_eq!(stored.len(), 1);
    assert_same_bytes(stored[0].body(), &message, "pipelined message");
}

#[test]
fn eight_bit_body_with_8bitmime() {
    let env = Env::start("8bitmime");
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    smtp.ok(&format!("MAIL FROM:<{FROM}> BODY=8BITMIME"), 250);
    smtp.ok(&format!("RCPT TO:<{ALICE}>"), 250);
    smtp.ok("DATA", 354);
    let message = crlf(
        "From: sender@remote.test\nTo: alice@example.test\nSubject: 8bit\n\
         Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\
         Grüße aus Köln — ½ € ✓ 日本語\n",
    );
    smtp.send(&common::dot_stuff(&message));
    smtp.read_reply().expect(250, "", "end of data");
    let stored = env.messages("alice");
    assert_eq!(stored.len(), 1);
    assert_same_bytes(stored[0].body(), &message, "8-bit message");
}

#[test]
fn bdat_transaction() {
    let env = Env::start("bdat");
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    let message = simple_message(
        "chunked",
        "line one\n.a line starting with a dot is not stuffed in BDAT\nlast",
    );
    let (first, second) = message.split_at(message.len() / 2);
    smtp.ok(&format!("MAIL FROM:<{FROM}> BODY=8BITMIME"), 250);
    smtp.ok(&format!("RCPT TO:<{ALICE}>"), 250);
    let mut chunk = format!("BDAT {}\r\n", first.len()).into_bytes();
    chunk.extend_from_slice(first);
    smtp.send(&chunk);
    smtp.read_reply().expect(250, "", "BDAT chunk 1");
    let mut chunk = format!("BDAT {} LAST\r\n", second.len()).into_bytes();
    chunk.extend_from_slice(second);
    smtp.send(&chunk);
    smtp.read_reply().expect(250, "", "BDAT LAST");
    smtp.ok("NOOP", 250);

    // Pipelined: MAIL, RCPT and a single BDAT LAST in one write, and an
    // empty BDAT 0 LAST closing a second message.
    let message2 = simple_message("chunked-pipelined", "all in one write");
    let mut all = format!(
        "MAIL FROM:<{FROM}>\r\nRCPT TO:<{ALICE}>\r\nBDAT {}\r\n",
        message2.len()
    )
    .into_bytes();
    all.extend_from_slice(&message2);
    all.extend_from_slice(b"BDAT 0 LAST\r\n");
    smtp.send(&all);
    smtp.read_reply().expect(250, "", "pipelined MAIL");
    smtp.read_reply().expect(250, "", "pipelined RCPT");
    smtp.read_reply().expect(250, "", "pipelined BDAT");
    smtp.read_reply().expect(250, "", "BDAT 0 LAST");
    // A message whose last line has no CRLF (BDAT allows it, DATA cannot
    // send it) is stored with one: its size is then what POP3 sends.
    let message3 = b"Subject: no final line end\r\n\r\nlast line".to_vec();
    smtp.ok(&format!("MAIL FROM:<{FROM}>"), 250);
    smtp.ok(&format!("RCPT TO:<{ALICE}>"), 250);
    let mut chunk = format!("BDAT {} LAST\r\n", message3.len()).into_bytes();
    chunk.extend_from_slice(&message3);
    smtp.send(&chunk);
    smtp.read_reply()
        .expect(250, "", "BDAT LAST without a final CRLF");
    smtp.quit();

    let stored = env.messages("alice");
    assert_eq!(stored.len(), 3, "three BDAT messages");
    let completed = [message3.as_slice(), b"\r\n"].concat();
    assert!(
        stored.iter().any(|m| m.body() == completed.as_slice()),
        "the message without a final CRLF was not stored with one"
    );
    let bodies: Vec<&[u8]> = stored.iter().map(|m| m.body()).collect();
    assert!(
        bodies.contains(&message.as_slice()),
        "BDAT message not stored byte-exact"
    );
    assert!(
        bodies.contains(&message2.as_slice()),
        "pipelined BDAT message not stored byte-exact"
    );
}

#[test]
fn bad_sequence_is_503_5_5_1() {
    let env = Env::start("sequence");
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    smtp.cmd(&format!("RCPT TO:<{ALICE}>"))
        .expect(503, "5.5.1", "RCPT before MAIL");
    smtp.cmd("DATA").expect(503, "5.5.1", "DATA before MAIL");
    smtp.ok(&format!("MAIL FROM:<{FROM}>"), 250);
    smtp.cmd(&format!("MAIL FROM:<{FROM}>"))
        .expect(503, "5.5.1", "nested MAIL");
    smtp.cmd("DATA").expect(503, "5.5.1", "DATA without RCPT");
    smtp.ok(&format!("RCPT TO:<{ALICE}>"), 250);
    smtp.ok("RSET", 250);
    smtp.cmd("DATA").expect(503, "5.5.1", "DATA after RSET");
    smtp.quit();
    assert!(env.messages("alice").is_empty());
}

#[test]
fn bdat_without_mail_is_503_and_its_chunk_is_discarded() {
    let env = Env::start("bdat-seq");
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    // The chunk's octets follow the command whatever the reply; the server
    // must skip them, or they would run as commands (a smuggling vector).
    let mut bytes = b"BDAT 16 LAST\r\n".to_vec();
    bytes.extend_from_slice(b"RSET\r\nQUIT\r\n\r\n\r\n");
    bytes.extend_from_slice(b"NOOP\r\n");
    smtp.send(&bytes);
    smtp.read_reply().expect(503, "5.5.1", "BDAT before MAIL");
    let r = smtp.read_reply();
    assert_eq!(
        r.code, 250,
        "the reply after the chunk must be NOOP's (chunk skipped): {r}"
    );
    smtp.quit();
}

#[test]
fn unknown_command_is_500_5_5_2() {
    let env = Env::start("unknown-cmd");
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    smtp.cmd("FOO bar").expect(500, "5.5.2", "unknown command");
    smtp.cmd("XYZZY").expect(500, "5.5.2", "unknown command");
    smtp.ok("NOOP", 250);
    smtp.quit();
}

#[test]
fn obsolete_commands_are_502() {
    let env = Env::start("obsolete");
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    for cmd in [
        format!("SEND FROM:<{FROM}>"),
        format!("SOML FROM:<{FROM}>"),
        format!("SAML FROM:<{FROM}>"),
        "TURN".to_string(),
    ] {
        let r = smtp.cmd(&cmd);
        assert_eq!(r.code, 502, "{cmd} → {r}");
    }
    smtp.ok("NOOP", 250);
    smtp.quit();
}

#[test]
fn overlong_command_line_is_500_5_5_6_and_session_continues() {
    let env = Env::start("longline");
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    // 600 octets including CRLF, over RFC 5321 §4.5.3.1.4's 512.
    let mut line = String::from("NOOP ");
    line.push_str(&"x".repeat(600 - 2 - line.len()));
    assert_eq!(line.len() + 2, 600);
    smtp.cmd(&line)
        .expect(500, "5.5.6", "600-octet command line");
    smtp.ok("NOOP", 250);
    // The whole transaction still works after it.
    let message = simple_message("after-long-line", "still in sync");
    let r = smtp.send_mail(FROM, &[ALICE], &message);
    r.expect(250, "", "message after long line");
    smtp.quit();
    assert_eq!(env.messages("alice").len(), 1);
}

#[test]
fn vrfy_252_and_expn_502_by_default() {
    let env = Env::start("vrfy");
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    let r = smtp.cmd("VRFY alice");
    assert_eq!(r.code, 252, "VRFY alice → {r}");
    let r = smtp.cmd("VRFY nosuchuser");
    assert_eq!(r.code, 252, "VRFY must not tell unknown users apart → {r}");
    let r = smtp.cmd("EXPN staff");
    assert_eq!(r.code, 502, "EXPN → {r}");
    smtp.quit();
}

#[test]
fn too_big_message_is_552_5_3_4() {
    let env = Env::with(
        "toobig",
        ServerOptions::default().config("[smtp]\nmax_message_size = 2000\n"),
    );
    let mut smtp = env.connect();
    let keywords = smtp.ehlo("client.remote.test");
    let r = smtp.cmd("EHLO client.remote.test");
    assert!(
        r.lines.iter().any(|l| l.eq_ignore_ascii_case("SIZE 2000")),
        "EHLO should advertise SIZE 2000 ({keywords:?}): {r}"
    );
    // Declared too big: refused at MAIL (RFC 1870 §6.1).
    smtp.cmd(&format!("MAIL FROM:<{FROM}> SIZE=5000")).expect(
        552,
        "5.3.4",
        "MAIL with SIZE over the limit",
    );
    // Undeclared and too big: refused after the data, session in sync.
    smtp.ok(&format!("MAIL FROM:<{FROM}>"), 250);
    smtp.ok(&format!("RCPT TO:<{ALICE}>"), 250);
    smtp.ok("DATA", 354);
    let big = simple_message("too-big", &"0123456789abcdef\n".repeat(300));
    smtp.send(&common::dot_stuff(&big));
    smtp.read_reply()
        .expect(552, "5.3.4", "end of data over the limit");
    // Too big through BDAT as well.
    smtp.ok(&format!("MAIL FROM:<{FROM}>"), 250);
    smtp.ok(&format!("RCPT TO:<{ALICE}>"), 250);
    let mut chunk = format!("BDAT {} LAST\r\n", big.len()).into_bytes();
    chunk.extend_from_slice(&big);
    smtp.send(&chunk);
    smtp.read_reply()
        .expect(552, "5.3.4", "BDAT over the limit");
    // A small one still goes through on the same connection.
    let small = simple_message("small", "fits");
    smtp.send_mail(FROM, &[ALICE], &small)
        .expect(250, "", "small message");
    smtp.quit();
    let stored = env.messages("alice");
    assert_eq!(stored.len(), 1, "only the small message is stored");
    assert_same_bytes(stored[0].body(), &small, "small message");
}

#[test]
fn mail_loop_with_101_received_is_554_5_4_6() {
    let env = Env::start("loop");
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    let received = |n: usize| -> String {
        (0..n)
            .map(|i| {
                format!("Received: from hop{i}.remote.test by hop{}.remote.test; Thu, 27 Nov 2025 12:00:00 +0000\n", i + 1)
            })
            .collect()
    };
    let looping = crlf(&format!(
        "{}From: sender@remote.test\nSubject: loop\n\nround and round\n",
        received(101)
    ));
    smtp.ok(&format!("MAIL FROM:<{FROM}>"), 250);
    smtp.ok(&format!("RCPT TO:<{ALICE}>"), 250);
    smtp.ok("DATA", 354);
    smtp.send(&common::dot_stuff(&looping));
    smtp.read_reply()
        .expect(554, "5.4.6", "101 Received: headers");
    // A message with a few hops is fine.
    let fine = crlf(&format!(
        "{}From: sender@remote.test\nSubject: hops\n\nthree hops\n",
        received(3)
    ));
    smtp.send_mail(FROM, &[ALICE], &fine)
        .expect(250, "", "3 Received: headers");
    // max_hops (100) is what a message may already carry: 100 pass.
    let at_limit = crlf(&format!(
        "{}From: sender@remote.test\nSubject: hops\n\na hundred hops\n",
        received(100)
    ));
    smtp.send_mail(FROM, &[ALICE], &at_limit)
        .expect(250, "", "100 Received: headers");
    smtp.quit();
    let stored = env.messages("alice");
    assert_eq!(stored.len(), 2);
    let three = stored
        .iter()
        .find(|m| m.text().contains("three hops"))
        .expect("the message with 3 hops");
    assert_same_bytes(three.body(), &fine, "message with 3 hops");
}

#[test]
fn command_timeout_closes_with_421() {
    let env = Env::with(
        "cmd-timeout",
        ServerOptions::default().config("[smtp]\ncommand_timeout = 2\ndata_timeout = 2\n"),
    );
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    let start = Instant::now();
    // Say nothing: the server must give up on us with 421 and close.
    let r = smtp.try_read_reply().expect("read after idling");
    let elapsed = start.elapsed();
    let r = r.expect("a 421 reply before the close");
    assert_eq!(r.code, 421, "idle client: {r}");
    assert!(
        elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_secs(12),
        "command_timeout = 2 but the server waited {elapsed:?}"
    );
    assert!(
        smtp.is_closed(Duration::from_secs(5)),
        "connection open after 421"
    );

    // Stalling inside DATA hits data_timeout the same way.
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    smtp.ok(&format!("MAIL FROM:<{FROM}>"), 250);
    smtp.ok(&format!("RCPT TO:<{ALICE}>"), 250);
    smtp.ok("DATA", 354);
    smtp.send(b"Subject: stalled\r\n\r\nhalf a mess");
    let r = smtp.try_read_reply().expect("read after stalling in DATA");
    let r = r.expect("a 421 reply before the close");
    assert_eq!(r.code, 421, "stalled DATA: {r}");
    assert!(
        env.messages("alice").is_empty(),
        "a stalled message must not be delivered"
    );
}

#[test]
fn connection_limit_per_ip() {
    let env = Env::with(
        "conn-limit",
        ServerOptions::default()
            .config("[limits]\nmax_connections = 50\nmax_connections_per_ip = 2\n"),
    );
    let mut first = env.connect();
    let mut second = env.connect();
    let mut third = Smtp::connect(env.smtp());
    match third.try_read_reply() {
        Ok(Some(r)) => r.expect(421, "4.7.0", "third connection from one IP"),
        Ok(None) => panic!("third connection closed without the 421"),
        Err(e) => panic!("third connection got neither 421 nor a close: {e}"),
    }
    first.quit();
    assert!(
        first.is_closed(Duration::from_secs(5)),
        "no close after QUIT"
    );
    second.ok("NOOP", 250);
    // A slot is free again once the first one is gone (the server may take
    // a moment to notice).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut fourth = Smtp::connect(env.smtp());
        match fourth.try_read_reply() {
            Ok(Some(r)) if r.code == 220 => {
                fourth.quit();
                break;
            }
            other => {
                assert!(
                    Instant::now() < deadline,
                    "no connection slot freed after the first client quit: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    second.quit();
}

#[test]
fn sigterm_exits_zero() {
    let mut env = Env::start("sigterm");
    // An idle session must not hold up shutdown forever.
    let mut idle = env.connect();
    idle.ehlo("client.remote.test");
    let status = env.server.terminate(Duration::from_secs(20));
    match status {
        Some(status) => assert!(status.success(), "SIGTERM → exit status {status}"),
        None => panic!("server did not exit within 20 s of SIGTERM"),
    }
    // The idle client is told (421) or simply closed.
    match idle.try_read_reply() {
        Ok(Some(r)) => assert_eq!(r.code, 421, "idle session at shutdown: {r}"),
        Ok(None) => {}
        Err(e) => panic!("idle session left hanging after shutdown: {e}"),
    }
}

#[test]
fn sigterm_right_after_ready_exits_zero() {
    // `ready` is the promise that the server is up, so SIGTERM from then on
    // must be a graceful stop (exit 0), not death by signal: the handler has
    // to be installed before `ready` is printed.
    for round in 0..5 {
        let mut env = Env::start("sigterm-early");
        let status = env.server.terminate(Duration::from_secs(20));
        match status {
            Some(status) => assert!(
                status.success(),
                "round {round}: SIGTERM right after `ready` → {status}"
            ),
            None => panic!("round {round}: no exit within 20 s of SIGTERM"),
        }
    }
}

#[test]
fn null_reverse_path_is_accepted() {
    // RFC 5321 §4.5.5: bounces (MAIL FROM:<>) MUST be accepted.
    let env = Env::start("null-sender");
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    let message = simple_message("bounce", "a delivery status notification");
    smtp.send_mail("", &[ALICE], &message)
        .expect(250, "", "message with a null reverse-path");
    smtp.quit();
    let stored = env.messages("alice");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].return_path(), "", "Return-Path: <> expected");
    assert_same_bytes(stored[0].body(), &message, "bounce");
}

#[test]
fn bare_postmaster_is_accepted() {
    // RFC 5321 §4.5.1: "RCPT TO:<Postmaster>" without a domain MUST be accepted.
    let env = Env::start("bare-postmaster");
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    smtp.ok(&format!("MAIL FROM:<{FROM}>"), 250);
    smtp.ok("RCPT TO:<Postmaster>", 250);
    smtp.ok("DATA", 354);
    smtp.send(&common::dot_stuff(&simple_message("bare-postmaster", "hi")));
    smtp.read_reply().expect(250, "", "end of data");
    smtp.quit();
    assert_eq!(
        env.messages("alice").len(),
        1,
        "postmaster's mail goes to the first user"
    );
}

#[test]
fn unknown_mail_parameter_is_555() {
    // RFC 5321 §4.1.1.11 / §4.2.3: 555 for unrecognised MAIL/RCPT parameters.
    let env = Env::start("params");
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    let r = smtp.cmd(&format!("MAIL FROM:<{FROM}> X-UNKNOWN=1"));
    assert_eq!(r.code, 555, "unknown MAIL parameter: {r}");
    smtp.ok(&format!("MAIL FROM:<{FROM}>"), 250);
    let r = smtp.cmd(&format!("RCPT TO:<{ALICE}> X-UNKNOWN=1"));
    assert_eq!(r.code, 555, "unknown RCPT parameter: {r}");
    smtp.ok("RSET", 250);
    let r = smtp.cmd("MAIL FROM:no-angle-brackets@remote.test");
    assert_eq!(r.code, 501, "MAIL without <>: {r}");
    smtp.quit();
}

#[test]
fn too_many_recipients_is_452() {
    // RFC 5321 §4.5.3.1.10: over the recipient limit the server MUST reply
    // 452 (and §4.5.3.1.8 requires a limit of at least 100).
    let env = Env::with(
        "max-rcpt",
        ServerOptions::default().config("[smtp]\nmax_recipients = 100\n"),
    );
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    smtp.ok(&format!("MAIL FROM:<{FROM}>"), 250);
    smtp.ok("RCPT TO:<bob@example.test>", 250);
    let mut pipelined = String::new();
    for i in 1..100 {
        pipelined.push_str(&format!("RCPT TO:<alice+{i}@example.test>\r\n"));
    }
    smtp.send(pipelined.as_bytes());
    for i in 1..100 {
        smtp.read_reply()
            .expect(250, "", &format!("recipient {}", i + 1));
    }
    smtp.cmd("RCPT TO:<alice+101@example.test>").expect(
        452,
        "4.5.3",
        "recipient 101 over max_recipients = 100",
    );
    smtp.ok("DATA", 354);
    let message = simple_message("hundred-recipients", "the first hundred get it");
    smtp.send(&common::dot_stuff(&message));
    smtp.read_reply().expect(250, "", "end of data");
    smtp.quit();
    assert_eq!(env.messages("bob").len(), 1);
    assert!(!env.messages("alice").is_empty());
}

#[test]
fn error_limit_cuts_client_off_with_421() {
    let env = Env::with(
        "max-errors",
        ServerOptions::default().config("[smtp]\nmax_errors = 5\n"),
    );
    let mut smtp = env.connect();
    smtp.ehlo("client.remote.test");
    let mut codes = Vec::new();
    for _ in 0..10 {
        smtp.send(b"XYZZY\r\n");
        match smtp.try_read_reply() {
            Ok(Some(r)) => {
                codes.push(r.code);
                if r.code == 421 {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => panic!("after {codes:?}: {e}"),
        }
    }
    assert_eq!(
        codes.last(),
        Some(&421),
        "a client that keeps erring gets 421: {codes:?}"
    );
    assert!(
        codes.len() <= 6,
        "max_errors = 5 but cut off only after {codes:?}"
    );
    assert!(
        smtp.is_closed(Duration::from_secs(5)),
        "connection open after 421"
    );
}

/// Runs the STARTTLS checks in Python (the tests use no TLS crate): the
/// pipelined plaintext after STARTTLS must be discarded (RFC 3207 §4.2,
/// CVE-2011-0411 "STARTTLS command injection"), EHLO over TLS must not offer
/// STARTTLS again, and a message sent over TLS arrives.
const STARTTLS_SCRIPT: &str = r#"
import socket, ssl, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=15)
def reply(sock):
    lines = []
    while True:
        line = b""
        while not line.endswith(b"\r\n"):
            c = sock.recv(1)
            if not c:
                raise SystemExit("EOF inside a reply after %r" % lines)
            line += c
        lines.append(line.decode())
        if line[3:4] != b"-":
            return lines
print("greeting", reply(s)[0].strip())
s.sendall(b"EHLO client.remote.test\r\n")
ehlo = reply(s)
print("starttls-offered", any(l[4:].upper().startswith("STARTTLS") for l in ehlo))
s.sendall(b"STARTTLS\r\nXINJECTED\r\n")
print("starttls", reply(s)[0].strip()[:3])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s, server_hostname=host)
print("tls", t.version())
t.sendall(b"NOOP\r\n")
print("first-tls-reply", reply(t)[0][:3])
t.sendall(b"EHLO client.remote.test\r\n")
ehlo = reply(t)
print("ehlo-code", ehlo[-1][:3])
print("starttls-again", any(l[4:].upper().startswith("STARTTLS") for l in ehlo))
t.sendall(b"MAIL FROM:<sender@remote.test>\r\n"); print("mail", reply(t)[0][:3])
t.sendall(b"RCPT TO:<alice@example.test>\r\n"); print("rcpt", reply(t)[0][:3])
t.sendall(b"DATA\r\n"); print("data", reply(t)[0][:3])
t.sendall(b"Subject: over tls\r\n\r\nsecret\r\n.\r\n"); print("end", reply(t)[0][:3])
t.sendall(b"QUIT\r\n"); print("quit", reply(t)[0][:3])
"#;

#[test]
fn starttls_discards_pipelined_plaintext() {
    if !common::require_tool("python3") {
        return;
    }
    let env = Env::start("starttls");
    let addr = env.smtp();
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c")
        .arg(STARTTLS_SCRIPT)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string());
    let out = common::run_with_timeout(cmd, None, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let report = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "STARTTLS script failed:\n{report}");
    let get = |key: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(
        get("starttls-offered"),
        "True",
        "EHLO must offer STARTTLS:\n{report}"
    );
    assert_eq!(get("starttls"), "220", "STARTTLS reply:\n{report}");
    assert_eq!(
        get("first-tls-reply"),
        "250",
        "the plaintext pipelined after STARTTLS was executed inside TLS (command injection):\n{report}"
    );
    assert_eq!(get("ehlo-code"), "250", "{report}");
    assert_eq!(
        get("starttls-again"),
        "False",
        "RFC 3207 §4.2: no STARTTLS after TLS:\n{report}"
    );
    for key in ["mail", "rcpt", "end"] {
        assert_eq!(get(key), "250", "{key} over TLS:\n{report}");
    }
    assert_eq!(get("quit"), "221", "{report}");
    let stored = env.messages("alice");
    assert_eq!(stored.len(), 1);
    assert_same_bytes(
        stored[0].body(),
        b"Subject: over tls\r\n\r\nsecret\r\n",
        "message over TLS",
    );
}
