//! A database restart under a running store: the pool's connections die,
//! and operations work again once the server is back, without a new
//! `PgStore`.
//!
//! It restarts the whole test cluster, so it lives in a test binary of its
//! own (cargo runs test binaries one at a time, so no other test's
//! connections are cut). It needs a cluster it may restart: the one
//! `scripts/pg-test-cluster.sh` runs (found when `MAILROOM_TEST_PG` is that
//! script's URL), or any other given by `MAILROOM_TEST_PG_RESTART`, a shell
//! command that restarts it.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mailroom_store::{
    IncomingMessage, MailStore, NewUser, QueueEntry, QueueStore, QueuedRecipient, RecipientState,
    StoreError, UserDb,
};
use mailroom_store_postgres::PgStore;
use tokio::io::AsyncReadExt;

use common::TestDb;

/// The shell command that restarts the cluster of `url`, or `None` (after
/// saying why) when there is none.
fn restart_command(url: &str) -> Option<String> {
    if let Ok(cmd) = std::env::var("MAILROOM_TEST_PG_RESTART")
        && !cmd.is_empty()
    {
        return Some(cmd);
    }
    let script = common::cluster_script();
    let ours = std::process::Command::new("bash")
        .arg(&script)
        .arg("url")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    if ours.as_deref() == Some(url) {
        return Some(format!("bash {} restart", script.display()));
    }
    eprintln!(
        "skipped: MAILROOM_TEST_PG is not the cluster of scripts/pg-test-cluster.sh and \
         MAILROOM_TEST_PG_RESTART is unset: no way to restart the database"
    );
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_work_again_after_a_database_restart() {
    let Some(base) = common::pg_base_url() else {
        return;
    };
    let Some(restart) = restart_command(&base) else {
        return;
    };
    let db = TestDb::create(&base).await;
    let store = PgStore::connect(&db.url).await.unwrap();
    store
        .add(NewUser {
            name: "alice".into(),
            password_hash: "$argon2id$x".into(),
            shared_secret: None,
        })
        .await
        .unwrap();
    let msg = IncomingMessage {
        prefix: Vec::new(),
        body: Arc::new(b"Subject: before\r\n\r\nx\r\n".to_vec()),
    };
    // Several pooled connections, all of which the restart kills.
    let warm: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            let msg = msg.clone();
            tokio::spawn(async move { store.deliver(&["alice".to_string()], &msg).await })
        })
        .collect();
    for w in warm {
        w.await.unwrap().unwrap();
    }

    // Deliveries keep coming while the server goes down and up again.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hammer = {
        let store = store.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut failed = Vec::new();
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let msg = IncomingMessage {
                    prefix: Vec::new(),
                    body: Arc::new(format!("Subject: n{i}\r\n\r\nx\r\n").into_bytes()),
                };
                match store.deliver(&["alice".to_string()], &msg).await {
                    Ok(()) => acknowledged.push(msg.body),
                    Err(e) => failed.push(e.to_string()),
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (acknowledged, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(&restart)
            .status()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(status.success(), "restart command failed: {status}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acknowledged, failed) = hammer.await.unwrap();
    eprintln!(
        "during the restart: {} deliveries acknowledged, {} failed {:?}",
        acknowledged.len(),
        failed.len(),
        failed.first()
    );

    // An operation may fail (a connection that died with the server);
    // within a short window they must all work again.
    let started = Instant::now();
    let mut failures = 0;
    loop {
        match store.lookup("alice").await {
            Ok(Some(user)) => {
                assert_eq!(user.name, "alice");
                break;
            }
            Ok(None) => panic!("alice vanished"),
            Err(e) => {
                failures += 1;
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "still failing after 30 s: {e}"
                );
                eprintln!("after restart: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    eprintln!(
        "store usable {:?} after the restart ({failures} failed attempts)",
        started.elapsed()
    );
    // Every acknowledged delivery survived (a failed one may or may not
    // have: its commit may have happened before the connection died).
    let drop = store.open_maildrop("alice").await.unwrap();
    let mut stored = std::collections::HashSet::new();
    for i in 0..drop.messages().len() {
        let mut bytes = Vec::new();
        drop.open(i)
            .await
            .unwrap()
            .into_reader()
            .read_to_end(&mut bytes)
            .await
            .unwrap();
        stored.insert(bytes);
    }
    for body in &acknowledged {
        assert!(
            stored.contains(&**body),
            "an acknowledged delivery was lost"
        );
    }
    let all: Vec<usize> = (0..drop.messages().len()).collect();
    drop.commit(&all).await.unwrap();

    // Everything works at the first try now, and nothing was lost.
    store.deliver(&["alice".to_string()], &msg).await.unwrap();
    let drop = store.open_maildrop("alice").await.unwrap();
    assert_eq!(drop.messages().len(), 1);
    let mut bytes = Vec::new();
    drop.open(0)
        .await
        .unwrap()
        .into_reader()
        .read_to_end(&mut bytes)
        .await
        .unwrap();
    assert_eq!(bytes, *msg.body);
    drop.commit(&[0]).await.unwrap();
    let entry = QueueEntry {
        id: "AFTER1".into(),
        sender: None,
        created: 1_700_000_000,
        envid: None,
        ret: None,
        body_8bit: false,
        smtputf8: false,
        size: msg.len(),
        held: false,
        recipients: vec![QueuedRecipient {
            address: "bob@example.net".into(),
            orcpt: None,
            notify: None,
            state: RecipientState::Pending,
            attempts: 0,
            next_attempt: 1_700_000_000,
            last_reply: None,
            delay_notified: false,
        }],
    };
    store.enqueue(&entry, &msg).await.unwrap();
    assert_eq!(
        store.claim_due(1_700_000_000, 10, 60).await.unwrap(),
        vec![entry]
    );
    assert!(matches!(
        store.open_maildrop("nobody").await,
        Err(StoreError::NoSuchUser(_))
    ));
    store.close().await;
    db.drop_db().await;
}
