//! Several `mailroom serve` nodes on one PostgreSQL database (issue 7): any
//! node accepts SMTP, any node serves POP3 for any user, a user's maildrop
//! is locked across nodes, and a node killed with -9 in the middle of
//! relaying loses nothing: the other node takes its queue claims over when
//! their lease runs out. Needs MAILROOM_TEST_PG (scripts/test.sh starts a
//! private cluster); skips without it, fails without it in CI.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::{PASSWORD, Server, ServerOptions, TestDir, mailroom, simple_message};

/// A fresh database on the test cluster, dropped on drop.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    fn create(tag: &str) -> Option<Database> {
        let Ok(admin) = std::env::var("MAILROOM_TEST_PG") else {
            assert!(!common::in_ci(), "MAILROOM_TEST_PG is unset and CI=true");
            eprintln!("SKIP: MAILROOM_TEST_PG not set");
            return None;
        };
        let name = format!("mr_t_{tag}_{}", std::process::id());
        psql(&admin, &format!("DROP DATABASE IF EXISTS {name}"));
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap().to_string();
        Some(Database {
            url: format!("{base}/{name}"),
            admin,
            name,
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([self.admin.as_str(), "-q", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-q", "-c", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Adds the user alice (password [`PASSWORD`]) to the database at `url`.
fn add_alice(dir: &TestDir, url: &str) {
    let out = mailroom(
        &dir.data_dir(),
        &["--store", url, "user", "add", "alice", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn node(dir: &TestDir, url: &str) -> Server {
    let opts = ServerOptions {
        users: Vec::new(),
        extra_args: vec!["--store".into(), url.into()],
        ..ServerOptions::default()
    };
    Server::start(dir, &opts)
}

/// Runs a Python poplib script against `addr`; returns its stdout.
fn pop3(addr: std::net::SocketAddr, script: &str) -> String {
    let program = format!(
        "import poplib\np=poplib.POP3('{}',{})\np.user('alice')\np.pass_('{PASSWORD}')\n{script}",
        addr.ip(),
        addr.port()
    );
    let out = Command::new("python3")
        .args(["-c", &program])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Messages the two-node test sends, and the client threads sending them
/// (each with one connection to each node, alternating message by message).
const TOTAL: usize = 2000;
const SENDERS: usize = 8;

/// The token that names message `n` (in its Subject and its body).
fn token(n: usize) -> String {
    format!("tok{n:05}")
}

/// Sends messages `sender, sender + SENDERS, …` below TOTAL, alternately
/// to `a` and `b`, over one connection to each.
fn send_share(sender: usize, a: std::net::SocketAddr, b: std::net::SocketAddr) {
    let mut conns = [a, b].map(|addr| {
        let mut smtp = common::Smtp::connect(addr);
        assert_eq!(smtp.read_reply().code, 220);
        smtp.ok("EHLO client.example", 250);
        smtp
    });
    for (k, n) in (sender..TOTAL).step_by(SENDERS).enumerate() {
        let smtp = &mut conns[k % 2];
        let reply = smtp.send_mail(
            "sender@remote.test",
            &["alice@example.test"],
            &simple_message(&token(n), &format!("multi-node {}", token(n))),
        );
        assert_eq!(reply.code, 250, "message {n}: {reply}");
    }
    for smtp in &mut conns {
        smtp.ok("QUIT", 221);
    }
}

/// Lists the maildrop through `addr`: one `(number, token)` per message,
/// the token read from the Subject with TOP n 0. With `delete`, marks the
/// messages whose token number is even for deletion before QUIT.
fn pop3_tokens(addr: std::net::SocketAddr, delete_even: bool) -> Vec<String> {
    let script = format!(
        "n=len(p.list()[1])\n\
         for i in range(1,n+1):\n    \
             s=[l for l in p.top(i,0)[1] if l.startswith(b'Subject: ')][0].decode()[9:]\n    \
             print(s)\n    \
             if {delete} and int(s[3:])%2==0:\n        \
                 p.dele(i)\n\
         p.quit()",
        delete = if delete_even { "True" } else { "False" }
    );
    pop3(addr, &script).lines().map(str::to_string).collect()
}

#[test]
fn two_nodes_share_mail_and_locks() {
    let Some(db) = Database::create("multinode") else {
        return;
    };
    let (dir_a, dir_b) = (TestDir::new("node-a"), TestDir::new("node-b"));
    add_alice(&dir_a, &db.url);
    let a = node(&dir_a, &db.url);
    let b = node(&dir_b, &db.url);

    // TOTAL messages, alternately to each node, SENDERS clients at once.
    let started = std::time::Instant::now();
    let (addr_a, addr_b) = (a.smtp(), b.smtp());
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| std::thread::spawn(move || send_share(s, addr_a, addr_b)))
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    eprintln!("{TOTAL} messages accepted in {:?}", started.elapsed());

    // Read back from node A: every token exactly once; A deletes the even
    // ones. Then node B sees exactly the odd ones, each once.
    let all: BTreeSet<String> = (0..TOTAL).map(token).collect();
    let seen_a = pop3_tokens(a.pop3(), true);
    let unique_a: BTreeSet<String> = seen_a.iter().cloned().collect();
    assert_eq!(seen_a.len(), TOTAL, "messages seen from node A");
    assert_eq!(unique_a.len(), TOTAL, "duplicates seen from node A");
    assert_eq!(unique_a, all, "node A's tokens differ from those sent");
    let seen_b = pop3_tokens(b.pop3(), false);
    let unique_b: BTreeSet<String> = seen_b.iter().cloned().collect();
    let odd: BTreeSet<String> = (0..TOTAL).filter(|n| n % 2 == 1).map(token).collect();
    assert_eq!(
        seen_b.len(),
        TOTAL / 2,
        "messages seen from node B after A's deletions"
    );
    assert_eq!(
        unique_b, odd,
        "node B's tokens after A deleted the even ones"
    );

    // A session on one node holds the lock: the other answers [IN-USE],
    // either way round; once the first quits, the other gets in.
    for (first, second) in [(a.pop3(), b.pop3()), (b.pop3(), a.pop3())] {
        let script = format!(
            "import poplib\na=poplib.POP3('{}',{})\na.user('alice')\na.pass_('{PASSWORD}')\n\
             b=poplib.POP3('{}',{})\nb.user('alice')\ntry:\n    b.pass_('{PASSWORD}')\n    print('second ok')\n\
             except poplib.error_proto as e:\n    print(e)\na.quit()\n\
             c=poplib.POP3('{}',{})\nc.user('alice')\nc.pass_('{PASSWORD}')\nprint('after quit', c.stat()[0])\nc.quit()",
            first.ip(),
            first.port(),
            second.ip(),
            second.port(),
            second.ip(),
            second.port()
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("[IN-USE]"),
            "second node's answer: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(&format!("after quit {}", TOTAL / 2)),
            "after the first session quit: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// One value from `psql -tA`.
fn psql_value(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-tAq", "-c", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Messages queued for the sink in the kill test, and their client threads.
const RELAYED: usize = 500;
const RELAY_SENDERS: usize = 4;

/// The kill test's node config: loopback may relay, retries every second,
/// and claims that lapse after 3 s (renewed while a delivery runs).
const RELAY_NODE: &str = "trusted_networks = [\"127.0.0.0/8\"]\n\
                          [queue]\n\
                          retry_schedule = [\"1s\"]\n\
                          lease = \"3s\"\n";

/// Queues messages `sender, sender + RELAY_SENDERS, …` for the sink,
/// alternately through `a` and `b`.
fn queue_share(sender: usize, a: std::net::SocketAddr, b: std::net::SocketAddr) {
    let mut conns = [a, b].map(|addr| {
        let mut smtp = common::Smtp::connect(addr);
        assert_eq!(smtp.read_reply().code, 220);
        smtp.ok("EHLO client.example", 250);
        smtp
    });
    for (k, n) in (sender..RELAYED).step_by(RELAY_SENDERS).enumerate() {
        let reply = conns[k % 2].send_mail(
            "alice@example.test",
            &["bob@b.test"],
            &simple_message(&token(n), "relayed across a crash"),
        );
        assert_eq!(reply.code, 250, "message {n}: {reply}");
    }
    for smtp in &mut conns {
        smtp.ok("QUIT", 221);
    }
}

/// The token in a message's Subject.
fn subject_token(data: &[u8]) -> String {
    let at = common::find(data, b"Subject: ").expect("a Subject");
    let rest = &data[at + 9..];
    let end = common::find(rest, b"\r\n").expect("CRLF after the Subject");
    String::from_utf8_lossy(&rest[..end]).into_owned()
}

#[test]
fn a_killed_nodes_deliveries_are_taken_over() {
    let Some(db) = Database::create("killnode") else {
        return;
    };
    // A slow next hop, so node A dies with deliveries claimed and under way.
    let sink = common::Sink::start(common::SinkScript {
        data_delay: Duration::from_millis(300),
        ..common::SinkScript::default()
    });
    let (dir_a, dir_b) = (TestDir::new("kill-a"), TestDir::new("kill-b"));
    add_alice(&dir_a, &db.url);
    let opts = ServerOptions {
        users: Vec::new(),
        extra_args: vec![
            "--store".into(),
            db.url.clone(),
            "--relay-map".into(),
            format!("b.test=127.0.0.1:{}", sink.port()),
        ],
        ..ServerOptions::default()
    }
    .config(RELAY_NODE);
    let mut a = Server::start(&dir_a, &opts);
    let b = Server::start(&dir_b, &opts);

    let (addr_a, addr_b) = (a.smtp(), b.smtp());
    let senders: Vec<_> = (0..RELAY_SENDERS)
        .map(|s| std::thread::spawn(move || queue_share(s, addr_a, addr_b)))
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    assert!(
        sink.wait_messages(RELAYED / 4, Duration::from_secs(60)),
        "relaying never got going; node A:\n{}",
        a.stderr()
    );
    let pid_a = a.pid();
    a.kill9();
    let claimed_by_a: usize = psql_value(
        &db.url,
        &format!("SELECT count(*) FROM queue_entries WHERE claimed_by LIKE '%/{pid_a}/%'"),
    )
    .parse()
    .unwrap();
    let delivered_at_kill = sink.messages().len();
    eprintln!(
        "killed node A with {claimed_by_a} entries claimed, {delivered_at_kill} of {RELAYED} at the sink"
    );
    assert!(
        claimed_by_a > 0,
        "node A held no claims when killed: the test did not kill it mid-delivery"
    );

    // Node B alone takes A's claims over once their leases lapse.
    let all: BTreeSet<String> = (0..RELAYED).map(token).collect();
    let arrived = common::wait_for(Duration::from_secs(120), || {
        let got: BTreeSet<String> = sink
            .messages()
            .iter()
            .map(|m| subject_token(&m.data))
            .collect();
        got == all
    });
    let remaining = || psql_value(&db.url, "SELECT count(*) FROM queue_entries");
    assert!(
        arrived,
        "not every message reached the sink; queue rows left: {}; node B:\n{}",
        remaining(),
        b.stderr()
    );
    assert!(
        common::wait_for(Duration::from_secs(30), || remaining() == "0"),
        "queue not empty: {} rows",
        remaining()
    );
    // Duplicates: a message the sink accepted after A sent it but before A
    // recorded it is sent again by B (RFC 5321 §6.1 allows that). No more
    // than A had claimed.
    let got = sink.messages();
    let duplicates = got.len() - RELAYED;
    eprintln!(
        "{} messages at the sink, {duplicates} duplicates, {} transfers cut by the kill",
        got.len(),
        sink.aborted()
    );
    assert!(
        duplicates <= claimed_by_a,
        "{duplicates} duplicates, more than the {claimed_by_a} entries node A had claimed"
    );
}

/// DKIM keys live in the database (DESIGN.md principle 4): a key generated
/// through one node's command line is shown by another and signs there,
/// and no key file is written to, or needed in, either data dir.
#[test]
fn dkim_keys_are_shared_through_the_database() {
    let Some(db) = Database::create("dkim") else {
        return;
    };
    let (dir_a, dir_b) = (TestDir::new("dkim-a"), TestDir::new("dkim-b"));
    let run = |dir: &TestDir, args: &[&str]| {
        let mut full = vec!["--store", db.url.as_str(), "dkim"];
        full.extend_from_slice(args);
        let out = mailroom(&dir.data_dir(), &full, None);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (ok, generated, err) = run(
        &dir_a,
        &["generate", "example.test", "--algorithm", "ed25519"],
    );
    assert!(ok, "dkim generate: {err}");
    assert!(
        generated.contains("mailroom._domainkey.example.test. IN TXT \"v=DKIM1; k=ed25519; p="),
        "{generated}"
    );
    let (ok, shown, err) = run(&dir_b, &["show", "example.test"]);
    assert!(ok, "dkim show on the other node: {err}");
    assert_eq!(
        shown, generated,
        "show on B prints what generate on A printed"
    );
    for dir in [&dir_a, &dir_b] {
        assert!(
            !dir.data_dir().join("dkim").exists(),
            "no key file in {}",
            dir.data_dir().display()
        );
    }

    // The selector is taken for every node.
    let (ok, _, err) = run(
        &dir_b,
        &["generate", "example.test", "--algorithm", "ed25519"],
    );
    assert!(!ok, "a second key for one selector must be refused");
    assert!(
        err.contains("already has a key with selector mailroom"),
        "{err}"
    );

    // Rotation on B: A lists the new key first, as the signing one.
    let (ok, _, err) = run(
        &dir_b,
        &[
            "generate",
            "example.test",
            "--selector",
            "s2",
            "--algorithm",
            "ed25519",
        ],
    );
    assert!(ok, "dkim generate s2: {err}");
    let (ok, shown, err) = run(&dir_a, &["show", "example.test"]);
    assert!(ok, "{err}");
    let s2 = shown.find("s2._domainkey.example.test.").unwrap();
    let first = shown.find("mailroom._domainkey.example.test.").unwrap();
    assert!(s2 < first, "the newest key first:\n{shown}");
    assert!(
        shown.contains("selector s2 (ed25519-sha256; signs)"),
        "{shown}"
    );

    // A node started on a data dir that never saw a key file signs with
    // the database's newest key.
    let a = node(&dir_a, &db.url);
    let log = a.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("DKIM signing key"))
        .unwrap_or_else(|| panic!("no DKIM key loaded:\n{log}"));
    assert!(
        line.contains("domain=example.test") && line.contains("selector=s2"),
        "{line}"
    );
}

/// `store_pool_size` bounds the connections a node keeps to PostgreSQL:
/// with 2, ten clients delivering at once never see more than 2 of the
/// node's connections in `pg_stat_activity` (with 20, 17 were seen).
#[test]
fn store_pool_size_bounds_a_nodes_database_connections() {
    let Some(db) = Database::create("pool") else {
        return;
    };
    let dir = TestDir::new("pool-node");
    add_alice(&dir, &db.url);
    let opts = ServerOptions {
        users: Vec::new(),
        extra_args: vec!["--store".into(), db.url.clone()],
        ..ServerOptions::default()
    }
    .config("store_pool_size = 2\n");
    let server = Server::start(&dir, &opts);
    let addr = server.smtp();
    let sending = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (url, name, sending) = (db.url.clone(), db.name.clone(), sending.clone());
        std::thread::spawn(move || {
            let mut most = 0usize;
            while sending.load(std::sync::atomic::Ordering::Relaxed) {
                let open: usize = psql_value(
                    &url,
                    &format!(
                        "SELECT count(*) FROM pg_stat_activity \
                         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                    ),
                )
                .parse()
                .unwrap();
                most = most.max(open);
                std::thread::sleep(Duration::from_millis(20));
            }
            most
        })
    };
    let clients: Vec<_> = (0..10)
        .map(|c| {
            std::thread::spawn(move || {
                let mut smtp = common::Smtp::connect(addr);
                assert_eq!(smtp.read_reply().code, 220);
                smtp.ok("EHLO client.example", 250);
                for n in 0..20 {
                    let reply = smtp.send_mail(
                        "sender@remote.test",
                        &["alice@example.test"],
                        &simple_message(&format!("pool {c} {n}"), "pooled"),
                    );
                    assert_eq!(reply.code, 250, "{reply}");
                }
                smtp.ok("QUIT", 221);
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    sending.store(false, std::sync::atomic::Ordering::Relaxed);
    let most = watcher.join().unwrap();
    assert!(
        (1..=2).contains(&most),
        "store_pool_size = 2, but the node had {most} connections open"
    );
    let stored = psql_value(&db.url, "SELECT count(*) FROM messages");
    assert_eq!(stored, "200");
}
