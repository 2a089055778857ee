//! Several `mailroom serve` nodes on one PostgreSQL database (issue 7): any
//! node accepts SMTP, any node serves POP3 for any user, and a user's
//! maildrop is locked across nodes. Needs MAILROOM_TEST_PG (scripts/test.sh
//! starts a private cluster); skips without it, fails without it in CI.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;

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

#[test]
fn two_nodes_share_mail_and_locks() {
    let Some(db) = Database::create("multinode") else {
        return;
    };
    let (dir_a, dir_b) = (TestDir::new("node-a"), TestDir::new("node-b"));
    let out = mailroom(
        &dir_a.data_dir(),
        &[
            "--store",
            &db.url,
            "user",
            "add",
            "alice",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = node(&dir_a, &db.url);
    let b = node(&dir_b, &db.url);

    // 400 messages, alternately to each node, in 8 sessions.
    let total = 400;
    for session in 0..8 {
        let server = if session % 2 == 0 { &a } else { &b };
        let mut smtp = common::Smtp::connect(server.smtp());
        assert_eq!(smtp.read_reply().code, 220);
        smtp.ok("EHLO client.example", 250);
        for i in 0..total / 8 {
            let subject = format!("n{session}-{i}");
            let reply = smtp.send_mail(
                "sender@remote.test",
                &["alice@example.test"],
                &simple_message(&subject, "multi-node"),
            );
            assert_eq!(reply.code, 250, "{reply}");
        }
        smtp.ok("QUIT", 221);
    }

    // Read back from node B: every subject exactly once.
    let listing = pop3(
        b.pop3(),
        "n=len(p.list()[1])\nfor i in range(1,n+1):\n    \
         s=[l for l in p.top(i,0)[1] if l.startswith(b'Subject: ')][0]\n    \
         print(s.decode()[9:])\np.quit()",
    );
    let subjects: Vec<&str> = listing.lines().collect();
    let unique: BTreeSet<&str> = subjects.iter().copied().collect();
    assert_eq!(subjects.len(), total, "messages seen from node B");
    assert_eq!(unique.len(), total, "no duplicates");

    // A session on node A holds the lock: node B answers [IN-USE].
    let script = format!(
        "import poplib\na=poplib.POP3('{}',{})\na.user('alice')\na.pass_('{PASSWORD}')\n\
         b=poplib.POP3('{}',{})\nb.user('alice')\ntry:\n    b.pass_('{PASSWORD}')\n    print('second ok')\n\
         except poplib.error_proto as e:\n    print(e)\na.quit()",
        a.pop3().ip(),
        a.pop3().port(),
        b.pop3().ip(),
        b.pop3().port()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[IN-USE]"), "second node's answer: {text}");
}
