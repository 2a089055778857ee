//! The store conformance suite: one set of test functions, written against
//! the traits only (`UserDb`, `MailStore`, `Maildrop`, `QueueStore`), run
//! against both engines — the embedded one (`MaildirStore` +
//! `MaildirQueue`) and `PgStore` — by the `suite!` macro below, the way
//! rustls runs one API test module per crypto provider.
//!
//! It lives here, not in `store`, because it needs both engines: here the
//! embedded engine is a dev-dependency of the PostgreSQL one, which adds no
//! normal dependency edge between backends (STYLE.md §1). Engine-specific
//! behaviour (file layout, flock, leases in the database, two nodes claiming
//! at once) is tested beside it: the embedded engine's in its own crate,
//! PostgreSQL's in `postgres_only` at the end of this file.
//!
//! The PostgreSQL half needs `MAILROOM_TEST_PG` (see `common`); each test
//! gets a fresh database. Unset, those tests print a skip message — or fail
//! when `CI=true`.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailroom_store::{
    DkimAlgorithm, DkimKeyStore, IncomingMessage, MailStore, Maildrop, NewDkimKey, NewUser,
    QueueEntry, QueueStore, QueuedRecipient, RecipientState, StoreError, UserDb,
};
use mailroom_store_maildir::{MaildirDkimKeys, MaildirQueue, MaildirStore};
use mailroom_store_postgres::{PgOptions, PgStore};
use tokio::io::AsyncReadExt;

use common::TestDb;

/// One engine instance: what a node of `mailroom serve` holds.
#[derive(Clone)]
struct Node {
    users: Arc<dyn UserDb>,
    mail: Arc<dyn MailStore>,
    queue: Arc<dyn QueueStore>,
    dkim: Arc<dyn DkimKeyStore>,
}

/// An engine under test: its storage, and the first node on it.
struct Harness {
    backend: Backend,
    node: Node,
}

enum Backend {
    Maildir(tempfile::TempDir),
    Postgres {
        db: TestDb,
        /// Every store opened on the database, closed before it is dropped.
        stores: Mutex<Vec<PgStore>>,
    },
}

impl Harness {
    async fn maildir() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let node = maildir_node(dir.path(), "node1.example.org");
        Harness {
            backend: Backend::Maildir(dir),
            node,
        }
    }

    /// `None` when the PostgreSQL tests are skipped.
    async fn postgres() -> Option<Harness> {
        let base = common::pg_base_url()?;
        let db = TestDb::create(&base).await;
        let store = PgStore::connect_with(&db.url, pg_options()).await.unwrap();
        let node = pg_node(&store);
        Some(Harness {
            backend: Backend::Postgres {
                db,
                stores: Mutex::new(vec![store]),
            },
            node,
        })
    }

    /// Another instance on the same storage: another process (the CLI) for
    /// the embedded engine, another node for PostgreSQL.
    async fn other_node(&self) -> Node {
        match &self.backend {
            Backend::Maildir(dir) => maildir_node(dir.path(), "node2.example.org"),
            Backend::Postgres { db, stores } => {
                let store = PgStore::connect_with(&db.url, pg_options()).await.unwrap();
                let node = pg_node(&store);
                stores.lock().unwrap().push(store);
                node
            }
        }
    }

    /// Replaces the alias table with `text` (aliases(5), one alias a line)
    /// the way an operator does for this engine, and waits until a running
    /// server sees it.
    async fn set_aliases(&self, text: &str) {
        match &self.backend {
            Backend::Maildir(dir) => {
                let path = dir.path().join("aliases");
                // Replaced by rename, as editors do.
                let tmp = dir.path().join("aliases.new");
                std::fs::write(&tmp, text).unwrap();
                std::fs::rename(&tmp, &path).unwrap();
            }
            Backend::Postgres { db, .. } => {
                let mut conn = db.connect().await;
                sqlx::query("DELETE FROM aliases")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let (name, targets) = line.split_once(':').unwrap();
                    sqlx::query("INSERT INTO aliases (name, target) VALUES ($1, $2)")
                        .bind(name.trim())
                        .bind(targets.trim())
                        .execute(&mut conn)
                        .await
                        .unwrap();
                }
                tokio::time::sleep(ALIAS_CACHE * 2).await;
            }
        }
    }

    /// Cleans up (drops the test database).
    async fn finish(self) {
        if let Backend::Postgres { db, stores } = self.backend {
            let stores = std::mem::take(&mut *stores.lock().unwrap());
            for store in stores {
                store.close().await;
            }
            db.drop_db().await;
        }
    }
}

fn maildir_node(dir: &std::path::Path, host: &str) -> Node {
    let store = Arc::new(MaildirStore::open(dir, host).unwrap());
    Node {
        users: store.clone(),
        mail: store,
        queue: Arc::new(MaildirQueue::open(dir).unwrap()),
        dkim: Arc::new(MaildirDkimKeys::new(dir)),
    }
}

fn pg_node(store: &PgStore) -> Node {
    let (mail, users, queue) = store.handles();
    Node {
        users,
        mail,
        queue,
        dkim: store.dkim_keys(),
    }
}

fn pg_options() -> PgOptions {
    PgOptions::default().alias_cache(ALIAS_CACHE)
}

const ALIAS_CACHE: Duration = Duration::from_millis(100);

/// Instantiates every suite test once per engine.
macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod maildir {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let h = super::Harness::maildir().await;
                    super::$test(&h).await;
                    h.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(h) = super::Harness::postgres().await else { return };
                    super::$test(&h).await;
                    h.finish().await;
                }
            )*
        }
    };
}

suite!(
    users_add_lookup_list_passwd_delete,
    invalid_names_and_values_are_refused,
    aliases_take_effect_while_running,
    deliver_to_several_users,
    a_delivery_with_an_unknown_user_stores_nothing,
    a_big_message_streams_byte_exact,
    listing_is_oldest_first_and_uids_are_stable,
    the_maildrop_lock_is_exclusive_and_released,
    commit_deletes_and_releases,
    concurrent_deliveries_all_land,
    queue_round_trip,
    queue_list_is_oldest_first,
    queue_refuses_duplicate_and_invalid_ids,
    queue_update_is_seen_by_other_nodes,
    queue_remove_is_final,
    claim_due_hands_out_each_due_entry_once_per_lease,
    renew_claim_extends_a_live_claim_only,
    dkim_keys_add_list_delete,
    dkim_keys_refuse_duplicates_and_bad_input,
    dkim_key_added_twice_at_once_is_stored_once,
);

// ---------------------------------------------------------------------------
// Helpers

async fn add(users: &dyn UserDb, name: &str) {
    users
        .add(NewUser {
            name: name.to_string(),
            password_hash: format!("$argon2id$hash-of-{name}"),
            shared_secret: None,
        })
        .await
        .unwrap();
}

fn message(body: &str) -> IncomingMessage {
    IncomingMessage {
        prefix: b"Return-Path: <sender@example.net>\r\n".to_vec(),
        body: Arc::new(body.as_bytes().to_vec()),
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

async fn read(drop: &dyn Maildrop, index: usize) -> Result<Vec<u8>, StoreError> {
    let mut reader = drop.open(index).await?.into_reader();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await.unwrap();
    Ok(out)
}

/// Opens a maildrop, waiting out a lock that another instance's dropped
/// session is still releasing (PostgreSQL releases on drop in the
/// background; within one instance `open_maildrop` waits by itself).
async fn open_eventually(mail: &dyn MailStore, user: &str) -> Box<dyn Maildrop> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match mail.open_maildrop(user).await {
            Ok(drop) => return drop,
            Err(StoreError::Locked) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("open_maildrop({user}): {e:?}"),
        }
    }
}

const NOW: i64 = 1_700_000_000;

fn rcpt(address: &str, next_attempt: i64) -> QueuedRecipient {
    QueuedRecipient {
        address: address.to_string(),
        orcpt: None,
        notify: None,
        state: RecipientState::Pending,
        attempts: 0,
        next_attempt,
        last_reply: None,
        delay_notified: false,
    }
}

fn entry(id: &str, next_attempt: i64) -> QueueEntry {
    QueueEntry {
        id: id.to_string(),
        sender: Some("alice@example.org".into()),
        created: NOW,
        envid: None,
        ret: None,
        body_8bit: false,
        smtputf8: false,
        size: 0,
        held: false,
        recipients: vec![rcpt("bob@example.net", next_attempt)],
    }
}

fn queued(body: &[u8]) -> IncomingMessage {
    IncomingMessage {
        prefix: b"Received: from client.example.org\r\n\tby mx.example.org; Tue, 14 Nov 2023\r\n"
            .to_vec(),
        body: Arc::new(body.to_vec()),
    }
}

fn ids(entries: &[QueueEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.id.as_str()).collect()
}

// ---------------------------------------------------------------------------
// Users and aliases

async fn users_add_lookup_list_passwd_delete(h: &Harness) {
    let store = &h.node;
    // The CLI is another process (another node): it must see every change
    // the server makes, and back.
    let cli = h.other_node().await;
    assert_eq!(store.users.lookup("alice").await.unwrap(), None);
    assert!(store.users.list().await.unwrap().is_empty());

    cli.users
        .add(NewUser {
            name: "Alice".into(),
            password_hash: "$argon2id$a".into(),
            shared_secret: Some("apop-secret".into()),
        })
        .await
        .unwrap();
    add(&*cli.users, "bob").await;
    add(&*cli.users, "a.b-c_d9").await;
    let alice = store.users.lookup("ALICE").await.unwrap().unwrap();
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.password_hash, "$argon2id$a");
    assert_eq!(alice.shared_secret.as_deref(), Some("apop-secret"));
    let listed: Vec<String> = store
        .users
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    // Byte order, whatever the database's collation.
    assert_eq!(listed, ["a.b-c_d9", "alice", "bob"]);
    assert!(matches!(
        store.users.add(NewUser { name: "BOB".into(), password_hash: "h".into(), shared_secret: None }).await,
        Err(StoreError::UserExists(n)) if n == "bob"
    ));

    // passwd: new hash with the secret unchanged, removed, set.
    store
        .users
        .set_password("alice", "$argon2id$a2".into(), None)
        .await
        .unwrap();
    let alice = cli.users.lookup("alice").await.unwrap().unwrap();
    assert_eq!(
        (alice.password_hash.as_str(), alice.shared_secret.as_deref()),
        ("$argon2id$a2", Some("apop-secret"))
    );
    store
        .users
        .set_password("alice", "$argon2id$a3".into(), Some(None))
        .await
        .unwrap();
    assert_eq!(
        cli.users
            .lookup("alice")
            .await
            .unwrap()
            .unwrap()
            .shared_secret,
        None
    );
    cli.users
        .set_password("bob", "$argon2id$b2".into(), Some(Some("s2".into())))
        .await
        .unwrap();
    let bob = store.users.lookup("bob").await.unwrap().unwrap();
    assert_eq!(
        (bob.password_hash.as_str(), bob.shared_secret.as_deref()),
        ("$argon2id$b2", Some("s2"))
    );
    cli.users
        .set_password("Bob", "$argon2id$b3".into(), Some(Some("s3".into())))
        .await
        .unwrap();
    assert_eq!(
        store
            .users
            .lookup("bob")
            .await
            .unwrap()
            .unwrap()
            .shared_secret
            .as_deref(),
        Some("s3")
    );
    // Quick successive changes are all seen.
    for i in 0..10 {
        cli.users
            .set_password("bob", format!("$argon2id$b{i:02}"), None)
            .await
            .unwrap();
        assert_eq!(
            store
                .users
                .lookup("bob")
                .await
                .unwrap()
                .unwrap()
                .password_hash,
            format!("$argon2id$b{i:02}")
        );
    }
    assert!(matches!(
        store.users.set_password("carol", "h".into(), None).await,
        Err(StoreError::NoSuchUser(_))
    ));

    // Delete removes the user and their secret, not their mail.
    store
        .mail
        .deliver(&names(&["bob"]), &message("hi\r\n"))
        .await
        .unwrap();
    cli.users.delete("Bob").await.unwrap();
    assert_eq!(store.users.lookup("bob").await.unwrap(), None);
    assert!(matches!(
        store.users.delete("bob").await,
        Err(StoreError::NoSuchUser(_))
    ));
    // Back again: the old mail is there, the old secret is not.
    add(&*store.users, "bob").await;
    assert_eq!(
        store
            .users
            .lookup("bob")
            .await
            .unwrap()
            .unwrap()
            .shared_secret,
        None
    );
    let drop = store.mail.open_maildrop("bob").await.unwrap();
    assert_eq!(drop.messages().len(), 1);
}

async fn invalid_names_and_values_are_refused(h: &Harness) {
    let store = &h.node;
    for bad in [
        "",
        ".x",
        "-x",
        "a/b",
        "../etc",
        "a b",
        "a:b",
        "a+b",
        "jürgen",
        &"x".repeat(65),
    ] {
        let new = NewUser {
            name: bad.into(),
            password_hash: "h".into(),
            shared_secret: None,
        };
        assert!(
            matches!(store.users.add(new).await, Err(StoreError::InvalidName(_))),
            "{bad:?}"
        );
        assert_eq!(store.users.lookup(bad).await.unwrap(), None, "{bad:?}");
        assert!(
            matches!(
                store.mail.deliver(&[bad.to_string()], &message("x")).await,
                Err(StoreError::InvalidName(_))
            ),
            "{bad:?}"
        );
        assert!(
            matches!(
                store.mail.open_maildrop(bad).await,
                Err(StoreError::InvalidName(_))
            ),
            "{bad:?}"
        );
    }
    // Hashes and secrets with line breaks (or empty) are refused by both
    // engines alike, so a directory can move between them.
    for (hash, secret) in [("h\nevil:x", None), ("", None), ("h", Some("a\rb"))] {
        let new = NewUser {
            name: "ok".into(),
            password_hash: hash.into(),
            shared_secret: secret.map(str::to_string),
        };
        assert!(store.users.add(new).await.is_err(), "{hash:?} {secret:?}");
    }
    assert!(store.users.list().await.unwrap().is_empty());
    // The longest valid name works.
    add(&*store.users, &"x".repeat(64)).await;
}

async fn aliases_take_effect_while_running(h: &Harness) {
    let store = &h.node;
    assert!(store.users.aliases().await.unwrap().is_empty());
    h.set_aliases("staff: alice, bob\nbad: |/bin/sh\nHelp: \\helpdesk, staff, carol@example.org\n")
        .await;
    let table = store.users.aliases().await.unwrap();
    assert_eq!(table.names().collect::<Vec<_>>(), ["help", "staff"]);
    assert!(!table.is_alias("bad"), "a pipe target must never be stored");
    let help = table.expand("HELP").unwrap();
    assert_eq!(help.local, ["alice", "bob", "helpdesk"]);
    assert_eq!(help.remote.len(), 1);
    assert_eq!(help.remote[0].to_string(), "carol@example.org");
    // Unchanged: the same table.
    assert!(Arc::ptr_eq(&table, &store.users.aliases().await.unwrap()));
    // Changed by the operator: seen without a restart, on every node.
    h.set_aliases("staff: carol\nops: dave\n").await;
    let table = store.users.aliases().await.unwrap();
    assert_eq!(table.expand("staff").unwrap().local, ["carol"]);
    assert!(table.is_alias("ops") && !table.is_alias("help"));
    let other = h.other_node().await;
    assert_eq!(
        other
            .users
            .aliases()
            .await
            .unwrap()
            .expand("ops")
            .unwrap()
            .local,
        ["dave"]
    );
    h.set_aliases("").await;
    assert!(store.users.aliases().await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// Maildrops

async fn deliver_to_several_users(h: &Harness) {
    let store = &h.node;
    for u in ["alice", "bob", "carol"] {
        add(&*store.users, u).await;
    }
    let msg = message("Subject: hi\r\n\r\nhello\r\n");
    let want = [&msg.prefix[..], &msg.body[..]].concat();
    // Duplicates and case variants get one copy.
    store
        .mail
        .deliver(&names(&["alice", "BOB", "alice", "carol"]), &msg)
        .await
        .unwrap();
    // (Uids are unique within a maildrop, RFC 1939 §7; one delivery may
    // carry the same uid in every recipient's maildrop, as Maildir does.)
    for u in ["alice", "bob", "carol"] {
        let drop = store.mail.open_maildrop(u).await.unwrap();
        assert_eq!(drop.messages().len(), 1, "{u}");
        let info = &drop.messages()[0];
        assert_eq!(info.size, want.len() as u64, "{u}");
        assert_eq!(read(&*drop, 0).await.unwrap(), want, "{u}");
        drop.commit(&[]).await.unwrap();
    }
    // Nobody at all: nothing to do.
    store.mail.deliver(&[], &msg).await.unwrap();
}

async fn a_delivery_with_an_unknown_user_stores_nothing(h: &Harness) {
    let store = &h.node;
    add(&*store.users, "alice").await;
    assert!(matches!(
        store.mail.deliver(&names(&["alice", "nobody"]), &message("x\r\n")).await,
        Err(StoreError::NoSuchUser(n)) if n == "nobody"
    ));
    let drop = store.mail.open_maildrop("alice").await.unwrap();
    assert!(drop.messages().is_empty());
    assert!(matches!(
        store.mail.open_maildrop("nobody").await,
        Err(StoreError::NoSuchUser(_))
    ));
}

async fn a_big_message_streams_byte_exact(h: &Harness) {
    let store = &h.node;
    add(&*store.users, "alice").await;
    add(&*store.users, "bob").await;
    // 5 MB of CRLF lines with every byte value but CR and LF in them:
    // several of the PostgreSQL engine's 1 MiB pieces, with boundaries that
    // fall mid-line.
    let mut body = Vec::with_capacity(5_300_000);
    let mut i: u32 = 0;
    while body.len() < 5_000_000 {
        let len = 1 + (i * 7919 % 997) as usize;
        body.extend((0..len).map(|j| {
            let b = ((i as usize + j) % 254) as u8;
            if b == b'\r' || b == b'\n' { b'.' } else { b }
        }));
        body.extend_from_slice(b"\r\n");
        i += 1;
    }
    let msg = IncomingMessage {
        prefix: b"Received: by test\r\n".to_vec(),
        body: Arc::new(body),
    };
    let want = [&msg.prefix[..], &msg.body[..]].concat();
    store
        .mail
        .deliver(&names(&["alice", "bob"]), &msg)
        .await
        .unwrap();
    for u in ["alice", "bob"] {
        let drop = store.mail.open_maildrop(u).await.unwrap();
        assert_eq!(drop.messages()[0].size, want.len() as u64);
        // Read in small, odd-sized pieces, as a RETR writer does.
        let mut reader = drop.open(0).await.unwrap().into_reader();
        let mut got = Vec::with_capacity(want.len());
        let mut buf = vec![0u8; 8191];
        loop {
            let n = reader.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got.len(), want.len(), "{u}");
        assert!(got == want, "{u}: content differs");
    }
}

async fn listing_is_oldest_first_and_uids_are_stable(h: &Harness) {
    let store = &h.node;
    add(&*store.users, "alice").await;
    // A user who never got mail has an empty maildrop.
    let drop = store.mail.open_maildrop("alice").await.unwrap();
    assert!(drop.messages().is_empty());
    drop.commit(&[]).await.unwrap();

    let bodies = ["one\r\n", "two two\r\n", "three three three\r\n"];
    for body in bodies {
        store
            .mail
            .deliver(&names(&["alice"]), &message(body))
            .await
            .unwrap();
        // Distinct arrival times for the embedded engine's second-resolution
        // ordering are not needed: it orders by name within a second too.
    }
    let drop = store.mail.open_maildrop("Alice").await.unwrap();
    let first = drop.messages().to_vec();
    assert_eq!(first.len(), 3);
    for (i, info) in first.iter().enumerate() {
        let bytes = read(&*drop, i).await.unwrap();
        assert_eq!(bytes.len() as u64, info.size, "message {i}");
        assert!(bytes.ends_with(bodies[i].as_bytes()), "message {i}");
        // RFC 1939 §7: 1 to 70 characters in 0x21..0x7E.
        assert!((1..=70).contains(&info.uid.len()), "{:?}", info.uid);
        assert!(
            info.uid.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "{:?}",
            info.uid
        );
    }
    assert!(matches!(drop.open(3).await, Err(StoreError::NoSuchMessage)));
    let uids: HashSet<_> = first.iter().map(|m| &m.uid).collect();
    assert_eq!(uids.len(), 3);
    // Dropped without commit: nothing deleted; same listing on reopen, from
    // this instance and from another.
    drop_and_settle(drop).await;
    let again = store.mail.open_maildrop("alice").await.unwrap();
    assert_eq!(again.messages(), &first[..]);
    drop_and_settle(again).await;
    let other = h.other_node().await;
    let there = open_eventually(&*other.mail, "alice").await;
    assert_eq!(there.messages(), &first[..]);
    // New mail goes after the old, and the old keep their uids.
    there.commit(&[1]).await.unwrap();
    store
        .mail
        .deliver(&names(&["alice"]), &message("four\r\n"))
        .await
        .unwrap();
    let after = store.mail.open_maildrop("alice").await.unwrap();
    let uids: Vec<&str> = after.messages().iter().map(|m| m.uid.as_str()).collect();
    assert_eq!(uids.len(), 3);
    assert_eq!(uids[..2], [first[0].uid.as_str(), first[2].uid.as_str()]);
    assert!(read(&*after, 2).await.unwrap().ends_with(b"four\r\n"));
}

/// Drops a maildrop and lets a background release run.
async fn drop_and_settle(drop: Box<dyn Maildrop>) {
    std::mem::drop(drop);
    tokio::task::yield_now().await;
}

async fn the_maildrop_lock_is_exclusive_and_released(h: &Harness) {
    let store = &h.node;
    add(&*store.users, "alice").await;
    add(&*store.users, "bob").await;
    let held = store.mail.open_maildrop("alice").await.unwrap();
    // Same instance, and another instance (another process or node).
    assert!(matches!(
        store.mail.open_maildrop("alice").await,
        Err(StoreError::Locked)
    ));
    let other = h.other_node().await;
    assert!(matches!(
        other.mail.open_maildrop("ALICE").await,
        Err(StoreError::Locked)
    ));
    // Other users are not affected.
    other.mail.open_maildrop("bob").await.unwrap();
    // Dropped: released (within a moment, for another instance).
    drop(held);
    let held = open_eventually(&*other.mail, "alice").await;
    assert!(matches!(
        store.mail.open_maildrop("alice").await,
        Err(StoreError::Locked)
    ));
    // Committed: released by the time commit returns, for everybody.
    held.commit(&[]).await.unwrap();
    let held = store.mail.open_maildrop("alice").await.unwrap();
    held.commit(&[]).await.unwrap();
    // Dropped and reopened at once in the same instance: no [IN-USE].
    let held = other.mail.open_maildrop("alice").await.unwrap();
    drop(held);
    let held = other.mail.open_maildrop("alice").await.unwrap();
    held.commit(&[]).await.unwrap();
    // Delivery is not blocked by a POP3 session.
    let held = store.mail.open_maildrop("alice").await.unwrap();
    other
        .mail
        .deliver(&names(&["alice"]), &message("while locked\r\n"))
        .await
        .unwrap();
    // The session's listing is fixed at open (RFC 1939 §5).
    assert!(held.messages().is_empty());
    held.commit(&[]).await.unwrap();
    assert_eq!(
        store
            .mail
            .open_maildrop("alice")
            .await
            .unwrap()
            .messages()
            .len(),
        1
    );
}

async fn commit_deletes_and_releases(h: &Harness) {
    let store = &h.node;
    add(&*store.users, "alice").await;
    for body in ["a\r\n", "b\r\n", "c\r\n", "d\r\n"] {
        store
            .mail
            .deliver(&names(&["alice"]), &message(body))
            .await
            .unwrap();
    }
    let drop = store.mail.open_maildrop("alice").await.unwrap();
    let msgs = drop.messages().to_vec();
    drop.commit(&[1, 2, 0, 1]).await.unwrap();
    let other = h.other_node().await;
    let left = other.mail.open_maildrop("alice").await.unwrap();
    assert_eq!(left.messages(), &msgs[3..]);
    // Out of range: nothing deleted, and the lock is released all the same.
    assert!(matches!(
        left.commit(&[0, 5]).await,
        Err(StoreError::NoSuchMessage)
    ));
    let again = store.mail.open_maildrop("alice").await.unwrap();
    assert_eq!(again.messages(), &msgs[3..]);
    again.commit(&[0]).await.unwrap();
    assert!(
        store
            .mail
            .open_maildrop("alice")
            .await
            .unwrap()
            .messages()
            .is_empty()
    );
}

async fn concurrent_deliveries_all_land(h: &Harness) {
    let store = &h.node;
    add(&*store.users, "alice").await;
    add(&*store.users, "bob").await;
    let other = h.other_node().await;
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            // Half the senders on each instance (node).
            let node = if t % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            tokio::spawn(async move {
                for i in 0..10 {
                    let to = if (t + i) % 3 == 0 {
                        names(&["alice", "bob"])
                    } else {
                        names(&["alice"])
                    };
                    node.mail
                        .deliver(&to, &message(&format!("{t}-{i}\r\n")))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let drop = store.mail.open_maildrop("alice").await.unwrap();
    assert_eq!(drop.messages().len(), 80);
    let uids: HashSet<_> = drop.messages().iter().map(|m| &m.uid).collect();
    assert_eq!(uids.len(), 80);
    let mut bodies = HashSet::new();
    for i in 0..80 {
        bodies.insert(read(&*drop, i).await.unwrap());
    }
    assert_eq!(bodies.len(), 80, "every message once");
}

// ---------------------------------------------------------------------------
// The queue

async fn queue_round_trip(h: &Harness) {
    let queue = &h.node.queue;
    let mut e = entry("01ABC", NOW);
    e.envid = Some("env id with spaces".into());
    e.ret = Some("HDRS".into());
    e.body_8bit = true;
    e.recipients.push(QueuedRecipient {
        orcpt: Some("rfc822;carol@example.com".into()),
        notify: Some("FAILURE,DELAY".into()),
        last_reply: Some("451 4.7.1 greylisted\r\nrcpt injected".into()),
        ..rcpt("carol@example.com", NOW + 60)
    });
    // Every byte value, CRLF included: the store must not touch it.
    let body: Vec<u8> = (0..=255u8).chain(*b"\r\n.\r\n").collect();
    let msg = queued(&body);
    e.size = msg.len();
    queue.enqueue(&e, &msg).await.unwrap();

    assert_eq!(queue.list().await.unwrap(), vec![e.clone()]);
    assert_eq!(queue.get("01ABC").await.unwrap(), Some(e.clone()));
    let stored = [&msg.prefix[..], &body[..]].concat();
    assert_eq!(queue.message("01ABC").await.unwrap(), stored);

    // Another instance sees the same.
    let other = h.other_node().await;
    assert_eq!(other.queue.get("01ABC").await.unwrap(), Some(e));
    assert_eq!(other.queue.message("01ABC").await.unwrap(), stored);
    assert_eq!(queue.get("nothing").await.unwrap(), None);
    assert!(matches!(
        queue.message("nothing").await,
        Err(StoreError::NoSuchMessage)
    ));
    // The null sender survives too.
    let mut bounce = entry("BOUNCE1", NOW);
    bounce.sender = None;
    queue.enqueue(&bounce, &queued(b"x\r\n")).await.unwrap();
    assert_eq!(other.queue.get("BOUNCE1").await.unwrap(), Some(bounce));
}

async fn queue_list_is_oldest_first(h: &Harness) {
    let queue = &h.node.queue;
    for (id, created) in [("C", 30), ("A", 20), ("B", 20), ("D", 10), ("a", 20)] {
        let mut e = entry(id, NOW);
        e.created = created;
        queue.enqueue(&e, &queued(b"x\r\n")).await.unwrap();
    }
    assert_eq!(ids(&queue.list().await.unwrap()), ["D", "A", "B", "a", "C"]);
}

async fn queue_refuses_duplicate_and_invalid_ids(h: &Harness) {
    let queue = &h.node.queue;
    queue
        .enqueue(&entry("ID1", NOW), &queued(b"first\r\n"))
        .await
        .unwrap();
    let err = queue
        .enqueue(&entry("ID1", NOW + 5), &queued(b"second\r\n"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Io(ref e) if e.kind() == std::io::ErrorKind::AlreadyExists),
        "{err:?}"
    );
    // The first is untouched.
    assert_eq!(queue.get("ID1").await.unwrap(), Some(entry("ID1", NOW)));
    assert!(queue.message("ID1").await.unwrap().ends_with(b"first\r\n"));

    for bad in [
        "",
        ".",
        "..",
        "../users",
        "a/b",
        ".hidden",
        "sp ace",
        "é",
        "x'; DROP TABLE queue_entries; --",
        &"x".repeat(129),
    ] {
        assert!(
            queue
                .enqueue(&entry(bad, NOW), &queued(b"x\r\n"))
                .await
                .is_err(),
            "{bad:?}"
        );
        assert_eq!(queue.get(bad).await.unwrap(), None);
        assert!(matches!(
            queue.message(bad).await,
            Err(StoreError::NoSuchMessage)
        ));
        assert!(matches!(
            queue.update(&entry(bad, NOW)).await,
            Err(StoreError::NoSuchMessage)
        ));
        assert!(matches!(
            queue.remove(bad).await,
            Err(StoreError::NoSuchMessage)
        ));
    }
    assert_eq!(ids(&queue.list().await.unwrap()), ["ID1"]);
}

async fn queue_update_is_seen_by_other_nodes(h: &Harness) {
    let queue = &h.node.queue;
    queue
        .enqueue(&entry("U1", NOW), &queued(b"x\r\n"))
        .await
        .unwrap();
    let mut updated = entry("U1", NOW + 600);
    updated.recipients[0].attempts = 1;
    updated.recipients[0].last_reply = Some("421 4.3.0 busy".into());
    queue.update(&updated).await.unwrap();
    let other = h.other_node().await;
    assert_eq!(other.queue.get("U1").await.unwrap(), Some(updated.clone()));
    assert_eq!(other.queue.list().await.unwrap(), vec![updated.clone()]);
    // Held by the operator on the other node: never claimed.
    updated.held = true;
    other.queue.update(&updated).await.unwrap();
    assert!(
        queue
            .claim_due(NOW + 100_000, 10, 60)
            .await
            .unwrap()
            .is_empty()
    );
    updated.held = false;
    other.queue.update(&updated).await.unwrap();
    // A second later (the embedded engine picks up other processes'
    // changes at its next scan, at most once a second).
    assert_eq!(
        ids(&queue.claim_due(NOW + 100_001, 10, 60).await.unwrap()),
        ["U1"]
    );
}

async fn queue_remove_is_final(h: &Harness) {
    let queue = &h.node.queue;
    queue
        .enqueue(&entry("R1", NOW), &queued(b"x\r\n"))
        .await
        .unwrap();
    queue
        .enqueue(&entry("R2", NOW), &queued(b"y\r\n"))
        .await
        .unwrap();
    queue.remove("R1").await.unwrap();
    assert_eq!(ids(&queue.list().await.unwrap()), ["R2"]);
    assert_eq!(queue.get("R1").await.unwrap(), None);
    assert!(matches!(
        queue.message("R1").await,
        Err(StoreError::NoSuchMessage)
    ));
    assert!(matches!(
        queue.remove("R1").await,
        Err(StoreError::NoSuchMessage)
    ));
    // An update after the delete (a delivery finishing late) must not bring
    // the entry back.
    assert!(matches!(
        queue.update(&entry("R1", NOW)).await,
        Err(StoreError::NoSuchMessage)
    ));
    assert_eq!(queue.get("R1").await.unwrap(), None);
    assert_eq!(ids(&queue.claim_due(NOW, 10, 60).await.unwrap()), ["R2"]);
}

async fn claim_due_hands_out_each_due_entry_once_per_lease(h: &Harness) {
    let queue = &h.node.queue;
    let msg = queued(b"x\r\n");
    queue.enqueue(&entry("DUE2", NOW - 5), &msg).await.unwrap();
    queue.enqueue(&entry("DUE1", NOW - 10), &msg).await.unwrap();
    queue
        .enqueue(&entry("LATER", NOW + 100), &msg)
        .await
        .unwrap();
    let mut held = entry("HELD", NOW - 100);
    held.held = true;
    queue.enqueue(&held, &msg).await.unwrap();
    let mut done = entry("DONE", NOW - 100);
    done.recipients[0].state = RecipientState::Delivered;
    done.recipients.push(QueuedRecipient {
        state: RecipientState::Failed,
        ..rcpt("c@example.com", NOW - 100)
    });
    queue.enqueue(&done, &msg).await.unwrap();

    assert!(queue.claim_due(NOW, 0, 60).await.unwrap().is_empty());
    // Earliest first, up to the limit.
    assert_eq!(ids(&queue.claim_due(NOW, 1, 60).await.unwrap()), ["DUE1"]);
    assert_eq!(ids(&queue.claim_due(NOW, 10, 60).await.unwrap()), ["DUE2"]);
    // Both are claimed now: nothing more until something changes.
    assert!(queue.claim_due(NOW, 10, 60).await.unwrap().is_empty());
    assert!(queue.claim_due(NOW + 59, 10, 60).await.unwrap().is_empty());

    // An update ends the claim (the attempt failed, retry is due at once).
    queue.update(&entry("DUE1", NOW)).await.unwrap();
    assert_eq!(
        ids(&queue.claim_due(NOW + 59, 10, 60).await.unwrap()),
        ["DUE1"]
    );
    // DUE2's lease ran out: claimable again (its claimant died).
    assert_eq!(
        ids(&queue.claim_due(NOW + 60, 10, 60).await.unwrap()),
        ["DUE2"]
    );
    // LATER once due; HELD and DONE never.
    assert_eq!(
        ids(&queue.claim_due(NOW + 100, 10, 10).await.unwrap()),
        ["LATER"]
    );
    assert_eq!(
        queue.claim_due(NOW + 100_000, 10, 1).await.unwrap().len(),
        3
    );
    // Earliest next attempt first (DUE1 was moved to NOW by its update).
    let all = queue.claim_due(NOW + 200_000, 10, 1).await.unwrap();
    assert_eq!(ids(&all), ["DUE2", "DUE1", "LATER"]);
    // The claim hands out the stored envelope.
    assert_eq!(all[2], entry("LATER", NOW + 100));
    // A removed entry is never claimed again.
    queue.remove("LATER").await.unwrap();
    assert_eq!(
        ids(&queue.claim_due(NOW + 400_000, 10, 1).await.unwrap()),
        ["DUE2", "DUE1"]
    );
}

async fn renew_claim_extends_a_live_claim_only(h: &Harness) {
    let queue = &h.node.queue;
    let msg = queued(b"x\r\n");
    queue.enqueue(&entry("SLOW", NOW), &msg).await.unwrap();
    queue.enqueue(&entry("QUICK", NOW + 1), &msg).await.unwrap();
    // Not claimed yet, or unknown: nothing to renew.
    assert!(!queue.renew_claim("SLOW", NOW, 60).await.unwrap());
    assert!(!queue.renew_claim("NOPE", NOW, 60).await.unwrap());
    assert!(!queue.renew_claim("../x", NOW, 60).await.unwrap());

    assert_eq!(
        ids(&queue.claim_due(NOW + 1, 10, 60).await.unwrap()),
        ["SLOW", "QUICK"]
    );
    // Renewed at NOW+50 for 60 s: still claimed at NOW+100, free at NOW+110.
    assert!(queue.renew_claim("SLOW", NOW + 50, 60).await.unwrap());
    assert_eq!(
        ids(&queue.claim_due(NOW + 100, 10, 60).await.unwrap()),
        ["QUICK"]
    );
    assert!(queue.claim_due(NOW + 109, 10, 60).await.unwrap().is_empty());
    assert_eq!(
        ids(&queue.claim_due(NOW + 110, 10, 60).await.unwrap()),
        ["SLOW"]
    );
    // An update ends the claim: a late renewal does not bring it back.
    queue.update(&entry("SLOW", NOW)).await.unwrap();
    assert!(!queue.renew_claim("SLOW", NOW + 111, 60).await.unwrap());
    assert_eq!(
        ids(&queue.claim_due(NOW + 111, 10, 60).await.unwrap()),
        ["SLOW"]
    );
    // Nor a removal.
    queue.remove("QUICK").await.unwrap();
    assert!(!queue.renew_claim("QUICK", NOW + 111, 60).await.unwrap());
}

// ---------------------------------------------------------------------------
// DKIM keys

use mailroom_testkit::ED25519_PEM;

/// The store only looks at a PKCS#1 key's label; signing parses the rest.
fn rsa_pem(tag: &str) -> String {
    format!("-----BEGIN RSA PRIVATE KEY-----\nMIIE{tag}\n-----END RSA PRIVATE KEY-----\n")
}

fn dkim_key(domain: &str, selector: &str, algorithm: DkimAlgorithm, pem: &str) -> NewDkimKey {
    NewDkimKey {
        domain: domain.to_string(),
        selector: selector.to_string(),
        algorithm,
        private_pem: pem.to_string(),
    }
}

/// (domain, selector) of every key, in the store's order.
async fn dkim_names(keys: &dyn DkimKeyStore) -> Vec<(String, String)> {
    keys.dkim_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.domain, k.selector))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(d, s)| (d.to_string(), s.to_string()))
        .collect()
}

async fn dkim_keys_add_list_delete(h: &Harness) {
    let keys = &h.node.dkim;
    assert!(keys.dkim_keys().await.unwrap().is_empty());
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let stored = keys
        .add_dkim_key(dkim_key(
            "Example.ORG.",
            "s1",
            DkimAlgorithm::Ed25519,
            ED25519_PEM,
        ))
        .await
        .unwrap();
    assert_eq!(stored.domain, "example.org");
    assert_eq!(stored.selector, "s1");
    assert_eq!(stored.algorithm, DkimAlgorithm::Ed25519);
    assert_eq!(stored.private_pem, ED25519_PEM);
    assert!(
        (before - 5..=before + 60).contains(&stored.created),
        "created {} vs now {before}",
        stored.created
    );
    // File timestamps may be as coarse as a clock tick: let one pass, so
    // "newest" is well defined for every engine.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let rsa = rsa_pem("s2");
    keys.add_dkim_key(dkim_key("example.org", "s2", DkimAlgorithm::Rsa, &rsa))
        .await
        .unwrap();
    keys.add_dkim_key(dkim_key(
        "example.com",
        "mailroom",
        DkimAlgorithm::Ed25519,
        ED25519_PEM,
    ))
    .await
    .unwrap();
    // Sorted by domain, the newest (signing) key of a domain first.
    let expected = pairs(&[
        ("example.com", "mailroom"),
        ("example.org", "s2"),
        ("example.org", "s1"),
    ]);
    assert_eq!(dkim_names(keys.as_ref()).await, expected);
    // Another node (or the CLI) sees the same keys, byte for byte.
    let other = h.other_node().await;
    assert_eq!(dkim_names(other.dkim.as_ref()).await, expected);
    let listed = other.dkim.dkim_keys().await.unwrap();
    assert_eq!(listed[1].algorithm, DkimAlgorithm::Rsa);
    assert_eq!(listed[1].private_pem, rsa);
    assert_eq!(listed[2], stored);
    assert!(listed[1].created >= listed[2].created);

    // Deleting the newest makes the older one sign again.
    assert!(
        other
            .dkim
            .delete_dkim_key("EXAMPLE.org", "s2")
            .await
            .unwrap()
    );
    assert!(!keys.delete_dkim_key("example.org", "s2").await.unwrap());
    assert_eq!(
        dkim_names(keys.as_ref()).await,
        pairs(&[("example.com", "mailroom"), ("example.org", "s1")])
    );
    // A deleted selector may be used again.
    keys.add_dkim_key(dkim_key(
        "example.org",
        "s2",
        DkimAlgorithm::Ed25519,
        ED25519_PEM,
    ))
    .await
    .unwrap();
    assert_eq!(dkim_names(keys.as_ref()).await.len(), 3);
}

async fn dkim_keys_refuse_duplicates_and_bad_input(h: &Harness) {
    let keys = &h.node.dkim;
    let first = rsa_pem("first");
    keys.add_dkim_key(dkim_key("example.org", "s1", DkimAlgorithm::Rsa, &first))
        .await
        .unwrap();
    // The same selector again, from any node, even in another case of
    // the domain: refused, and the first key is untouched.
    let other = h.other_node().await;
    for domain in ["example.org", "EXAMPLE.ORG"] {
        let again = other
            .dkim
            .add_dkim_key(dkim_key(
                domain,
                "s1",
                DkimAlgorithm::Rsa,
                &rsa_pem("second"),
            ))
            .await;
        assert!(matches!(again, Err(StoreError::KeyExists(_))), "{again:?}");
    }
    let listed = keys.dkim_keys().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].private_pem, first);

    let bad = [
        dkim_key("../etc", "s1", DkimAlgorithm::Rsa, &first),
        dkim_key("example.org", "../s1", DkimAlgorithm::Rsa, &first),
        dkim_key("example.org", "", DkimAlgorithm::Rsa, &first),
        dkim_key("", "s1", DkimAlgorithm::Rsa, &first),
        dkim_key("exa mple.org", "s1", DkimAlgorithm::Rsa, &first),
        // The PEM says Ed25519, the caller says RSA.
        dkim_key("example.org", "s3", DkimAlgorithm::Rsa, ED25519_PEM),
        dkim_key("example.org", "s3", DkimAlgorithm::Rsa, "not a key"),
    ];
    for key in bad {
        let result = keys.add_dkim_key(key.clone()).await;
        assert!(
            matches!(result, Err(StoreError::InvalidKey(_))),
            "{key:?}: {result:?}"
        );
    }
    assert_eq!(keys.dkim_keys().await.unwrap().len(), 1);
    assert!(matches!(
        keys.delete_dkim_key("../etc", "s1").await,
        Err(StoreError::InvalidKey(_))
    ));
}

async fn dkim_key_added_twice_at_once_is_stored_once(h: &Harness) {
    let other = h.other_node().await;
    let mut tasks = Vec::new();
    for (i, node) in [h.node.clone(), other.clone(), h.node.clone(), other]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            let pem = rsa_pem(&format!("n{i}"));
            let result = node
                .dkim
                .add_dkim_key(dkim_key("example.net", "race", DkimAlgorithm::Rsa, &pem))
                .await;
            (pem, result)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (pem, Ok(_)) => winners.push(pem),
            (_, Err(StoreError::KeyExists(_))) => {}
            (_, Err(e)) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one add wins");
    let listed = h.node.dkim.dkim_keys().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].private_pem, winners[0]);
}

// ---------------------------------------------------------------------------
// PostgreSQL only: what depends on the database being shared by nodes.

mod postgres_only {
    use super::*;
    use mailroom_store_postgres::SCHEMA_VERSION;

    async fn setup() -> Option<(TestDb, PgStore)> {
        let base = common::pg_base_url()?;
        let db = TestDb::create(&base).await;
        let store = PgStore::connect_with(&db.url, pg_options()).await.unwrap();
        Some((db, store))
    }

    async fn finish(db: TestDb, stores: &[&PgStore]) {
        for store in stores {
            store.close().await;
        }
        db.drop_db().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn claim_due_is_exclusive_across_nodes() {
        let Some((db, a)) = setup().await else { return };
        let b = PgStore::connect_with(&db.url, pg_options()).await.unwrap();
        let n = 60;
        for i in 0..n {
            a.enqueue(&entry(&format!("Q{i:03}"), NOW - i), &queued(b"x\r\n"))
                .await
                .unwrap();
        }
        // Both nodes claim, several workers each, as fast as they can.
        let mut tasks = Vec::new();
        for node in [&a, &b, &a, &b] {
            let node = node.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = node.claim_due(NOW, 3, 60).await.unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got.into_iter().map(|e| e.id));
                }
            }));
        }
        let mut all = Vec::new();
        let mut per_task = Vec::new();
        for t in tasks {
            let mine = t.await.unwrap();
            per_task.push(mine.len());
            all.extend(mine);
        }
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(all.len(), n as usize, "claimed twice: {per_task:?}");
        assert_eq!(unique.len(), n as usize);
        // Everything is under lease now, on both nodes.
        assert!(b.claim_due(NOW + 59, 100, 60).await.unwrap().is_empty());
        assert!(a.claim_due(NOW + 59, 100, 60).await.unwrap().is_empty());
        // Node a "dies": its leases run out and b takes everything over,
        // including what a had claimed.
        a.close().await;
        let taken = b.claim_due(NOW + 60, 100, 600).await.unwrap();
        assert_eq!(taken.len(), n as usize);
        // Earliest next attempt first.
        assert_eq!(taken[0].id, format!("Q{:03}", n - 1));
        finish(db, &[&b]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_taken_over_cannot_be_renewed() {
        let Some((db, a)) = setup().await else { return };
        let b = PgStore::connect_with(&db.url, pg_options()).await.unwrap();
        a.enqueue(&entry("Q1", NOW), &queued(b"x\r\n"))
            .await
            .unwrap();
        assert_eq!(ids(&a.claim_due(NOW, 10, 60).await.unwrap()), ["Q1"]);
        // Renewed by a: b cannot take it at the old lease's end.
        assert!(a.renew_claim("Q1", NOW + 30, 60).await.unwrap());
        assert!(!b.renew_claim("Q1", NOW + 30, 60).await.unwrap());
        assert!(b.claim_due(NOW + 60, 10, 60).await.unwrap().is_empty());
        // a stalls past its lease; b takes over, and a's renewal now fails.
        assert_eq!(ids(&b.claim_due(NOW + 90, 10, 60).await.unwrap()), ["Q1"]);
        assert!(!a.renew_claim("Q1", NOW + 91, 60).await.unwrap());
        assert!(a.claim_due(NOW + 140, 10, 60).await.unwrap().is_empty());
        assert!(b.renew_claim("Q1", NOW + 140, 60).await.unwrap());
        finish(db, &[&a, &b]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_nodes_maildrop_lock_expires() {
        let Some((db, b)) = setup().await else { return };
        add(&b, "alice").await;
        let lease = Duration::from_secs(2);
        let a = PgStore::connect_with(&db.url, pg_options().maildrop_lease(lease))
            .await
            .unwrap();
        let opened = Instant::now();
        let held = a.open_maildrop("alice").await.unwrap();
        assert!(matches!(
            b.open_maildrop("alice").await,
            Err(StoreError::Locked)
        ));
        // Node a dies: no renewal, no release.
        a.close().await;
        std::mem::forget(held);
        let reopened = open_eventually_within(&b, "alice", Duration::from_secs(10)).await;
        let waited = opened.elapsed();
        assert!(
            waited >= lease - Duration::from_millis(100),
            "lock taken over after {waited:?}, before its lease ended"
        );
        reopened.commit(&[]).await.unwrap();
        finish(db, &[&b]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_live_sessions_lease_is_renewed() {
        let Some((db, b)) = setup().await else { return };
        add(&b, "alice").await;
        let a = PgStore::connect_with(&db.url, pg_options().maildrop_lease(Duration::from_secs(3)))
            .await
            .unwrap();
        let held = a.open_maildrop("alice").await.unwrap();
        // Over two leases long: renewed all along (every second).
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert!(matches!(
                b.open_maildrop("alice").await,
                Err(StoreError::Locked)
            ));
        }
        held.commit(&[]).await.unwrap();
        b.open_maildrop("alice").await.unwrap();
        finish(db, &[&a, &b]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lock_rows_left_by_others_are_honoured_until_they_expire() {
        let Some((db, store)) = setup().await else {
            return;
        };
        add(&store, "alice").await;
        add(&store, "bob").await;
        let mut conn = db.connect().await;
        sqlx::query(
            "INSERT INTO maildrop_locks (username, holder, expires_at) VALUES \
             ('alice', 'ghost/1/x/0', now() - interval '1 second'), \
             ('bob', 'ghost/1/x/1', now() + interval '1 hour')",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let drop = store.open_maildrop("alice").await.unwrap();
        assert!(matches!(
            store.open_maildrop("bob").await,
            Err(StoreError::Locked)
        ));
        let holder: String =
            sqlx::query_scalar("SELECT holder FROM maildrop_locks WHERE username = 'alice'")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert!(holder.starts_with(store.node()), "{holder}");
        drop.commit(&[]).await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM maildrop_locks")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(left, 1, "commit removes its lock row");
        finish(db, &[&store]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commit_after_losing_the_lock_deletes_nothing() {
        let Some((db, store)) = setup().await else {
            return;
        };
        add(&store, "alice").await;
        store
            .deliver(&names(&["alice"]), &message("keep me\r\n"))
            .await
            .unwrap();
        let drop = store.open_maildrop("alice").await.unwrap();
        // Another session took the maildrop over (our lease ran out).
        let mut conn = db.connect().await;
        sqlx::query("UPDATE maildrop_locks SET holder = 'thief/1/x/0'")
            .execute(&mut conn)
            .await
            .unwrap();
        assert!(matches!(drop.commit(&[0]).await, Err(StoreError::Locked)));
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(count, 1);
        finish(db, &[&store]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn uids_are_id_dot_random() {
        let Some((db, store)) = setup().await else {
            return;
        };
        add(&store, "alice").await;
        add(&store, "bob").await;
        store
            .deliver(&names(&["alice", "bob"]), &message("x\r\n"))
            .await
            .unwrap();
        let mut seen = Vec::new();
        for u in ["alice", "bob"] {
            let drop = store.open_maildrop(u).await.unwrap();
            let uid = drop.messages()[0].uid.clone();
            let (id, random) = uid.split_once('.').unwrap();
            assert!(id.parse::<u64>().is_ok(), "{uid}");
            assert_eq!(random.len(), 6, "{uid}");
            assert!(random.bytes().all(|b| b.is_ascii_alphanumeric()), "{uid}");
            seen.push(uid);
            drop.commit(&[]).await.unwrap();
        }
        assert_ne!(seen[0], seen[1]);
        // The message data is stored once per user.
        let mut conn = db.connect().await;
        let sizes: Vec<i64> = sqlx::query_scalar("SELECT octet_length(data)::int8 FROM messages")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(sizes, [message("x\r\n").len() as i64; 2]);
        finish(db, &[&store]).await;
    }

    /// A database made by the release before DKIM keys (schema version 1,
    /// with a user in it) is brought to version 2 at the next start, and
    /// what it held is still there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_version_1_database_gains_the_dkim_table() {
        let Some(base) = common::pg_base_url() else {
            return;
        };
        let db = TestDb::create(&base).await;
        let mut conn = db.connect().await;
        sqlx::raw_sql(include_str!("../migrations/0001_init.sql"))
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE schema_version (version integer NOT NULL); \
             INSERT INTO schema_version VALUES (1); \
             INSERT INTO users (name, password_hash) VALUES ('alice', 'h')",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let store = PgStore::connect_with(&db.url, pg_options()).await.unwrap();
        let version: i32 = sqlx::query_scalar("SELECT version FROM schema_version")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let (_, users, _) = store.handles();
        assert!(users.lookup("alice").await.unwrap().is_some());
        let keys = store.dkim_keys();
        keys.add_dkim_key(dkim_key(
            "example.org",
            "s1",
            DkimAlgorithm::Ed25519,
            ED25519_PEM,
        ))
        .await
        .unwrap();
        assert_eq!(keys.dkim_keys().await.unwrap().len(), 1);
        drop(conn);
        finish(db, &[&store]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_newer_schema_is_refused_at_start() {
        let Some((db, store)) = setup().await else {
            return;
        };
        store.close().await;
        let mut conn = db.connect().await;
        let version: i32 = sqlx::query_scalar("SELECT version FROM schema_version")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        sqlx::query("UPDATE schema_version SET version = version + 1")
            .execute(&mut conn)
            .await
            .unwrap();
        let err = PgStore::connect(&db.url).await.unwrap_err().to_string();
        assert!(err.contains("newer"), "{err}");
        assert!(
            err.contains(&format!("schema version {}", SCHEMA_VERSION + 1)),
            "{err}"
        );
        assert!(
            err.contains("127.0.0.1") || err.contains("localhost"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        drop(conn);
        db.drop_db().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_starting_together_migrate_once() {
        let Some(base) = common::pg_base_url() else {
            return;
        };
        let db = TestDb::create(&base).await;
        let starts: Vec<_> = (0..4)
            .map(|_| {
                let url = db.url.clone();
                tokio::spawn(async move { PgStore::connect(&url).await })
            })
            .collect();
        let mut stores = Vec::new();
        for s in starts {
            stores.push(s.await.unwrap().unwrap());
        }
        let mut conn = db.connect().await;
        let versions: Vec<i32> = sqlx::query_scalar("SELECT version FROM schema_version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(versions, [SCHEMA_VERSION]);
        // And a restart of a node finds nothing to do.
        stores.push(PgStore::connect(&db.url).await.unwrap());
        drop(conn);
        finish(db, &stores.iter().collect::<Vec<_>>()).await;
    }

    /// Runs whether or not a database is configured: nothing listens there.
    #[tokio::test]
    async fn an_unreachable_database_fails_clearly() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let url = format!("postgres://mailroom:secret-pw@127.0.0.1:{port}/mailroom");
        let started = Instant::now();
        let err = PgStore::connect(&url).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "cannot connect to PostgreSQL at 127.0.0.1:{port}/mailroom"
            )),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        assert!(!err.contains("secret-pw"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "refused at once"
        );
        let err = PgStore::connect("postgres://u:secret-pw@[::1/db")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid PostgreSQL URL"), "{err}");
        assert!(!err.contains("secret-pw"), "{err}");
    }

    async fn open_eventually_within(
        store: &PgStore,
        user: &str,
        limit: Duration,
    ) -> Box<dyn Maildrop> {
        let deadline = Instant::now() + limit;
        loop {
            match store.open_maildrop(user).await {
                Ok(drop) => return drop,
                Err(StoreError::Locked) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("open_maildrop({user}): {e:?}"),
            }
        }
    }
}
