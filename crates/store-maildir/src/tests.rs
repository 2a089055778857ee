//! Engine tests on real directories (tempfile). The shared conformance
//! suite, when it exists, runs on top of these.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mailroom_store::{IncomingMessage, MailStore, NewUser, StoreError, UserDb};
use tokio::io::AsyncReadExt;

use super::*;

fn setup() -> (tempfile::TempDir, MaildirStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = MaildirStore::open(dir.path(), "mx.example.org").unwrap();
    (dir, store)
}

async fn add(store: &MaildirStore, name: &str) {
    store
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

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

fn users(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

async fn read(drop: &dyn Maildrop, index: usize) -> Result<Vec<u8>, StoreError> {
    let mut reader = drop.open(index).await?.into_reader();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await.unwrap();
    Ok(out)
}

#[test]
fn open_checks_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = MaildirStore::open(&missing, "h").unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    let file = dir.path().join("file");
    fs::write(&file, "x").unwrap();
    assert!(MaildirStore::open(&file, "h").is_err());
    let store = MaildirStore::open(dir.path(), "h").unwrap();
    assert!(dir.path().join("mail").is_dir());
    assert_eq!(store.data_dir(), dir.path());
    assert_eq!(
        store.maildir_path("Alice").unwrap(),
        dir.path().join("mail/alice")
    );
    assert!(matches!(
        store.maildir_path("../x"),
        Err(StoreError::InvalidName(_))
    ));
}

#[tokio::test]
async fn users_add_lookup_list_passwd_delete() {
    let (dir, store) = setup();
    // The CLI and the server are two processes: a second instance on the
    // same directory must see every change the first makes, and back.
    let cli = MaildirStore::open(dir.path(), "mx.example.org").unwrap();
    assert_eq!(store.lookup("alice").await.unwrap(), None);
    assert!(store.list().await.unwrap().is_empty());

    cli.add(NewUser {
        name: "Alice".into(),
        password_hash: "$argon2id$a".into(),
        shared_secret: Some("apop-secret".into()),
    })
    .await
    .unwrap();
    add(&cli, "bob").await;
    let alice = store.lookup("ALICE").await.unwrap().unwrap();
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.password_hash, "$argon2id$a");
    assert_eq!(alice.shared_secret.as_deref(), Some("apop-secret"));
    let names: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert!(matches!(store.add(NewUser {
        name: "BOB".into(), password_hash: "h".into(), shared_secret: None
    }).await, Err(StoreError::UserExists(n)) if n == "bob"));

    // Hashes and secrets are kept apart, both private.
    let users_file = fs::read_to_string(dir.path().join("users")).unwrap();
    assert_eq!(users_file, "alice:$argon2id$a\nbob:$argon2id$hash-of-bob\n");
    let secrets_file = fs::read_to_string(dir.path().join("secrets")).unwrap();
    assert_eq!(secrets_file, "alice:apop-secret\n");
    for f in ["users", "secrets"] {
        let mode = fs::metadata(dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }

    // passwd: new hash, secret unchanged / removed / set.
    store
        .set_password("alice", "$argon2id$a2".into(), None)
        .await
        .unwrap();
    let alice = cli.lookup("alice").await.unwrap().unwrap();
    assert_eq!(
        (alice.password_hash.as_str(), alice.shared_secret.as_deref()),
        ("$argon2id$a2", Some("apop-secret"))
    );
    store
        .set_password("alice", "$argon2id$a3".into(), Some(None))
        .await
        .unwrap();
    assert_eq!(
        cli.lookup("alice").await.unwrap().unwrap().shared_secret,
        None
    );
    assert_eq!(fs::read_to_string(dir.path().join("secrets")).unwrap(), "");
    cli.set_password("bob", "$argon2id$b2".into(), Some(Some("s2".into())))
        .await
        .unwrap();
    assert_eq!(
        store
            .lookup("bob")
            .await
            .unwrap()
            .unwrap()
            .shared_secret
            .as_deref(),
        Some("s2")
    );
    // Quick successive same-length changes are all seen.
    for i in 0..20 {
        cli.set_password("bob", format!("$argon2id$b{i:02}"), None)
            .await
            .unwrap();
        assert_eq!(
            store.lookup("bob").await.unwrap().unwrap().password_hash,
            format!("$argon2id$b{i:02}")
        );
    }
    assert!(matches!(
        store.set_password("carol", "h".into(), None).await,
        Err(StoreError::NoSuchUser(_))
    ));

    // del removes the user, not the mail.
    store
        .deliver(&users(&["bob"]), &message("hi\r\n"))
        .await
        .unwrap();
    cli.delete("Bob").await.unwrap();
    assert_eq!(store.lookup("bob").await.unwrap(), None);
    assert_eq!(names_in(&dir.path().join("mail/bob/new")).len(), 1);
    assert!(matches!(
        store.delete("bob").await,
        Err(StoreError::NoSuchUser(_))
    ));
    assert_eq!(fs::read_to_string(dir.path().join("secrets")).unwrap(), "");
}

#[tokio::test]
async fn invalid_names_are_rejected() {
    let (_dir, store) = setup();
    for bad in [
        "",
        ".x",
        "-x",
        "a/b",
        "../etc",
        "a b",
        "a:b",
        "a+b",
        &"x".repeat(65),
    ] {
        let new = NewUser {
            name: bad.into(),
            password_hash: "h".into(),
            shared_secret: None,
        };
        assert!(
            matches!(store.add(new).await, Err(StoreError::InvalidName(_))),
            "{bad:?}"
        );
        assert_eq!(store.lookup(bad).await.unwrap(), None, "{bad:?}");
        assert!(
            matches!(
                store.deliver(&[bad.to_string()], &message("x")).await,
                Err(StoreError::InvalidName(_))
            ),
            "{bad:?}"
        );
        assert!(
            matches!(
                store.open_maildrop(bad).await,
                Err(StoreError::InvalidName(_))
            ),
            "{bad:?}"
        );
    }
    // A line break in a hash or secret would corrupt the file.
    let new = NewUser {
        name: "ok".into(),
        password_hash: "h\nevil:x".into(),
        shared_secret: None,
    };
    assert!(store.add(new).await.is_err());
    let new = NewUser {
        name: "ok".into(),
        password_hash: "h".into(),
        shared_secret: Some("a\rb".into()),
    };
    assert!(store.add(new).await.is_err());
    assert!(store.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_corrupt_users_file_is_reported() {
    let (dir, store) = setup();
    fs::write(dir.path().join("users"), "alice:h\ngarbage\n").unwrap();
    assert!(
        matches!(store.lookup("alice").await, Err(StoreError::Corrupt(m)) if m.contains("line 2"))
    );
    // And is not overwritten (losing users) by a write.
    assert!(
        store
            .add(NewUser {
                name: "bob".into(),
                password_hash: "h".into(),
                shared_secret: None
            })
            .await
            .is_err()
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("users")).unwrap(),
        "alice:h\ngarbage\n"
    );
}

#[tokio::test]
async fn aliases_reload_when_the_file_changes() {
    let (dir, store) = setup();
    assert!(store.aliases().await.unwrap().is_empty());
    let path = dir.path().join("aliases");
    fs::write(&path, "staff: alice, bob\nbad: |/bin/sh\n").unwrap();
    let table = store.aliases().await.unwrap();
    assert_eq!(table.names().collect::<Vec<_>>(), ["staff"]);
    // Unchanged: the same table, not a re-parse.
    assert!(Arc::ptr_eq(&table, &store.aliases().await.unwrap()));
    // Replaced by rename (as editors do), then edited in place.
    fs::write(dir.path().join("aliases.new"), "staff: carol\nops: dave\n").unwrap();
    fs::rename(dir.path().join("aliases.new"), &path).unwrap();
    let table = store.aliases().await.unwrap();
    assert_eq!(table.expand("staff").unwrap().local, ["carol"]);
    assert!(table.is_alias("ops"));
    fs::write(&path, "staff: erin\n").unwrap();
    let table = store.aliases().await.unwrap();
    assert_eq!(table.expand("staff").unwrap().local, ["erin"]);
    assert!(!table.is_alias("ops"));
    fs::remove_file(&path).unwrap();
    assert!(store.aliases().await.unwrap().is_empty());
}

#[tokio::test]
async fn deliver_links_one_copy_into_every_maildir() {
    let (dir, store) = setup();
    for u in ["alice", "bob", "carol"] {
        add(&store, u).await;
    }
    let msg = message("Subject: hi\r\n\r\nhello\r\n");
    store
        .deliver(&users(&["alice", "BOB", "alice", "carol"]), &msg)
        .await
        .unwrap();
    let mail = dir.path().join("mail");
    let mut inodes = Vec::new();
    for u in ["alice", "bob", "carol"] {
        let new = names_in(&mail.join(u).join("new"));
        assert_eq!(new.len(), 1, "{u}: {new:?}");
        assert!(
            names_in(&mail.join(u).join("tmp")).is_empty(),
            "{u}: tmp not cleaned"
        );
        assert!(names_in(&mail.join(u).join("cur")).is_empty());
        let path = mail.join(u).join("new").join(&new[0]);
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes, [&msg.prefix[..], &msg.body[..]].concat());
        assert!(
            new[0].ends_with(&format!(",S={}", bytes.len())),
            "{}",
            new[0]
        );
        assert!(new[0].contains(".mx.example.org,"), "{}", new[0]);
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        inodes.push(meta.ino());
    }
    // Written once: hard links to one inode ("alice" listed twice got one).
    assert!(inodes.windows(2).all(|w| w[0] == w[1]), "{inodes:?}");
    assert_eq!(
        fs::metadata(mail.join("alice/new"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );

    assert!(matches!(
        store.deliver(&users(&["alice", "nobody"]), &msg).await,
        Err(StoreError::NoSuchUser(n)) if n == "nobody"
    ));
    assert_eq!(names_in(&mail.join("alice/new")).len(), 1);
    assert!(!mail.join("nobody").exists());
}

#[tokio::test]
async fn a_failed_delivery_leaves_nothing_behind() {
    let (dir, store) = setup();
    for u in ["alice", "bob", "carol"] {
        add(&store, u).await;
    }
    let mail = dir.path().join("mail");
    // bob's new/ is a file: the link into it fails after alice's succeeded.
    // (Works as root too, unlike a permission change.)
    fs::create_dir_all(mail.join("bob/tmp")).unwrap();
    fs::create_dir_all(mail.join("bob/cur")).unwrap();
    fs::write(mail.join("bob/new"), "not a dir").unwrap();
    let err = store
        .deliver(&users(&["alice", "bob", "carol"]), &message("x\r\n"))
        .await;
    assert!(err.is_err());
    for u in ["alice", "carol"] {
        for sub in ["tmp", "new", "cur"] {
            assert!(names_in(&mail.join(u).join(sub)).is_empty(), "{u}/{sub}");
        }
    }
    assert!(names_in(&mail.join("bob/tmp")).is_empty());
    // Others still get mail.
    store
        .deliver(&users(&["alice"]), &message("y\r\n"))
        .await
        .unwrap();
    assert_eq!(names_in(&mail.join("alice/new")).len(), 1);
}

#[tokio::test]
async fn delivery_to_a_read_only_directory_fails_cleanly() {
    if rustix::process::geteuid().is_root() {
        eprintln!(
            "skipped: root ignores directory permissions (see a_failed_delivery_leaves_nothing_behind)"
        );
        return;
    }
    let (dir, store) = setup();
    add(&store, "alice").await;
    add(&store, "bob").await;
    let mail = dir.path().join("mail");
    store
        .deliver(&users(&["bob"]), &message("first\r\n"))
        .await
        .unwrap();
    fs::set_permissions(mail.join("bob/new"), fs::Permissions::from_mode(0o500)).unwrap();
    let result = store
        .deliver(&users(&["alice", "bob"]), &message("x\r\n"))
        .await;
    fs::set_permissions(mail.join("bob/new"), fs::Permissions::from_mode(0o700)).unwrap();
    assert!(result.is_err());
    assert!(names_in(&mail.join("alice/new")).is_empty());
    assert!(names_in(&mail.join("alice/tmp")).is_empty());
    assert_eq!(names_in(&mail.join("bob/new")).len(), 1);

    // An unwritable data dir is refused up front, with its path.
    let ro = tempfile::tempdir().unwrap();
    fs::set_permissions(ro.path(), fs::Permissions::from_mode(0o500)).unwrap();
    let err = MaildirStore::open(ro.path(), "h").unwrap_err();
    fs::set_permissions(ro.path(), fs::Permissions::from_mode(0o700)).unwrap();
    assert!(err.to_string().contains("not writable"), "{err}");
}

#[tokio::test]
async fn a_vanished_maildir_is_recreated() {
    let (dir, store) = setup();
    add(&store, "alice").await;
    store
        .deliver(&users(&["alice"]), &message("1\r\n"))
        .await
        .unwrap();
    fs::remove_dir_all(dir.path().join("mail/alice")).unwrap();
    store
        .deliver(&users(&["alice"]), &message("2\r\n"))
        .await
        .unwrap();
    assert_eq!(names_in(&dir.path().join("mail/alice/new")).len(), 1);
}

#[tokio::test]
async fn listing_matches_files_and_is_oldest_first() {
    let (dir, store) = setup();
    add(&store, "alice").await;
    let root = dir.path().join("mail/alice");
    // A user with no Maildir yet has an empty maildrop, created on open.
    let drop = store.open_maildrop("alice").await.unwrap();
    assert!(drop.messages().is_empty());
    assert!(root.join("new").is_dir() && root.join("cur").is_dir() && root.join("tmp").is_dir());
    drop.commit(&[]).await.unwrap();

    for body in ["one\r\n", "two two\r\n", "three three three\r\n"] {
        store
            .deliver(&users(&["alice"]), &message(body))
            .await
            .unwrap();
    }
    // Files other agents wrote: older, no S= (must be stat'ed), in cur/
    // with flags; dotfiles and tmp/ are ignored.
    fs::write(root.join("cur/1000000000.mutt-x.host:2,S"), b"old\r\n").unwrap();
    fs::write(root.join("new/.hidden"), b"x").unwrap();
    fs::write(root.join("tmp/1000000001.partial.host"), b"partial").unwrap();

    let drop = store.open_maildrop("Alice").await.unwrap();
    let msgs = drop.messages().to_vec();
    assert_eq!(msgs.len(), 4, "{msgs:?}");
    assert_eq!(msgs[0].uid, "1000000000.mutt-x.host");
    // The three delivered in the same second are in their names' order,
    // which need not be the delivery order (the names' microseconds can
    // gain a digit): each is one of them, once.
    let mut bodies = vec!["one\r\n", "two two\r\n", "three three three\r\n"];
    for (i, info) in msgs.iter().enumerate() {
        let bytes = read(&*drop, i).await.unwrap();
        assert_eq!(bytes.len() as u64, info.size, "message {i}");
        if i == 0 {
            assert!(bytes.ends_with(b"old\r\n"), "message 0");
            continue;
        }
        let found = bodies.iter().position(|b| bytes.ends_with(b.as_bytes()));
        let Some(found) = found else {
            panic!("message {i}: {}", String::from_utf8_lossy(&bytes))
        };
        bodies.remove(found);
    }
    assert!(bodies.is_empty(), "not listed: {bodies:?}");
    assert!(matches!(drop.open(4).await, Err(StoreError::NoSuchMessage)));
    let uids: std::collections::HashSet<_> = msgs.iter().map(|m| &m.uid).collect();
    assert_eq!(uids.len(), 4);
    std::mem::drop(drop);

    // Within a second, arrival order: microseconds compared as numbers.
    fs::write(
        root.join("new/1000000005.M100000P1Q2.host,S=7"),
        b"later\r\n",
    )
    .unwrap();
    fs::write(
        root.join("new/1000000005.M99999P1Q1.host,S=9"),
        b"earlier\r\n",
    )
    .unwrap();
    let drop = store.open_maildrop("alice").await.unwrap();
    assert_eq!(drop.messages()[1].uid, "1000000005.M99999P1Q1.host");
    assert_eq!(drop.messages()[2].uid, "1000000005.M100000P1Q2.host");
}

#[tokio::test]
async fn uids_survive_reopen_and_moves_to_cur() {
    let (dir, store) = setup();
    add(&store, "alice").await;
    for body in ["a\r\n", "b\r\n"] {
        store
            .deliver(&users(&["alice"]), &message(body))
            .await
            .unwrap();
    }
    let first = store
        .open_maildrop("alice")
        .await
        .unwrap()
        .messages()
        .to_vec();
    // Dropped without commit: lock released, nothing deleted.
    let again = store.open_maildrop("alice").await.unwrap();
    assert_eq!(again.messages(), &first[..]);
    drop(again);

    // A MUA moves the first message to cur/ and marks it seen.
    let root = dir.path().join("mail/alice");
    let name = names_in(&root.join("new"))[0].clone();
    fs::rename(
        root.join("new").join(&name),
        root.join("cur").join(format!("{name}:2,S")),
    )
    .unwrap();
    let other = MaildirStore::open(dir.path(), "other-host").unwrap();
    let moved = other.open_maildrop("alice").await.unwrap();
    assert_eq!(moved.messages(), &first[..]);

    // …and moves the other one while our session is open: still readable.
    let name = names_in(&root.join("new"))[0].clone();
    fs::rename(
        root.join("new").join(&name),
        root.join("cur").join(format!("{name}:2,RS")),
    )
    .unwrap();
    assert_eq!(read(&*moved, 1).await.unwrap().len() as u64, first[1].size);
}

#[tokio::test]
async fn reads_in_any_order_match_the_listing_even_when_files_move() {
    let (dir, store) = setup();
    add(&store, "alice").await;
    // Enough messages for the window to reach its largest and for several
    // background reads.
    let bodies: Vec<String> = (0..150).map(|i| format!("message {i}\r\n")).collect();
    for body in &bodies {
        store
            .deliver(&users(&["alice"]), &message(body))
            .await
            .unwrap();
    }
    // The listing order among messages delivered in the same second is the
    // names' order, not the delivery order: learn what each index holds by
    // reading backwards (every request out of order, so nothing is read
    // ahead), and check that it is every message once.
    let first = store.open_maildrop("alice").await.unwrap();
    let mut expected = vec![Vec::new(); bodies.len()];
    for i in (0..bodies.len()).rev() {
        expected[i] = read(&*first, i).await.unwrap();
    }
    drop(first);
    let mut all: Vec<Vec<u8>> = bodies
        .iter()
        .map(|b| {
            [
                b"Return-Path: <sender@example.net>\r\n".as_slice(),
                b.as_bytes(),
            ]
            .concat()
        })
        .collect();
    all.sort();
    let mut seen = expected.clone();
    seen.sort();
    assert_eq!(seen, all);
    let expect = |i: usize| expected[i].clone();
    let drop = store.open_maildrop("alice").await.unwrap();
    // In order (read-ahead windows grow), then a jump back and forth.
    // Each read followed by idle(), as the POP3 driver does between replies.
    for i in 0..20 {
        assert_eq!(read(&*drop, i).await.unwrap(), expect(i), "message {i}");
        drop.idle();
    }
    // Every message not yet read moves to cur/ behind the session's back;
    // whether it was read ahead or not, it still reads right.
    let root = dir.path().join("mail/alice");
    for name in names_in(&root.join("new")) {
        fs::rename(
            root.join("new").join(&name),
            root.join("cur").join(format!("{name}:2,S")),
        )
        .unwrap();
    }
    for i in (20..150).chain([5, 149, 0, 30, 31, 32]) {
        let got = read(&*drop, i).await.unwrap();
        assert_eq!(got, expect(i), "message {i}");
        assert_eq!(got.len() as u64, drop.messages()[i].size);
        drop.idle();
    }
}

/// Between replies (idle) the maildrop reads the next message of an
/// in-order reader from the page cache: it is held before it is asked for,
/// so it still reads after its file is gone.
#[tokio::test]
async fn idle_reads_the_next_message_ahead() {
    let (dir, store) = setup();
    add(&store, "alice").await;
    for i in 0..6 {
        store
            .deliver(&users(&["alice"]), &message(&format!("message {i}\r\n")))
            .await
            .unwrap();
    }
    let drop = store.open_maildrop("alice").await.unwrap();
    let mut expected = Vec::new();
    for i in (0..6).rev() {
        expected.insert(0, read(&*drop, i).await.unwrap());
    }
    std::mem::drop(drop);
    let drop = store.open_maildrop("alice").await.unwrap();
    // 0 then 1 in order: the window is 2 and message 2 is held.
    assert_eq!(read(&*drop, 0).await.unwrap(), expected[0]);
    assert_eq!(read(&*drop, 1).await.unwrap(), expected[1]);
    drop.idle();
    // Message 3 was read by idle() (nothing else reads it before 2 is
    // taken): removing its file now does not take it away.
    let root = dir.path().join("mail/alice/new");
    let uid = drop.messages()[3].uid.clone();
    let name = names_in(&root)
        .into_iter()
        .find(|n| n.starts_with(&uid))
        .unwrap();
    fs::remove_file(root.join(name)).unwrap();
    assert_eq!(read(&*drop, 2).await.unwrap(), expected[2]);
    assert_eq!(read(&*drop, 3).await.unwrap(), expected[3]);
}

#[tokio::test]
async fn a_move_caught_half_way_lists_once_and_deletes_both_names() {
    let (dir, store) = setup();
    add(&store, "alice").await;
    for body in ["one\r\n", "two\r\n", "three\r\n"] {
        store
            .deliver(&users(&["alice"]), &message(body))
            .await
            .unwrap();
    }
    // Another agent moving the second message to cur/ has linked it there
    // and not yet unlinked it from new/.
    let root = dir.path().join("mail/alice");
    let second = names_in(&root.join("new"))[1].clone();
    fs::hard_link(
        root.join("new").join(&second),
        root.join("cur").join(format!("{second}:2,S")),
    )
    .unwrap();
    let drop = store.open_maildrop("alice").await.unwrap();
    assert_eq!(drop.messages().len(), 3, "one message under two names");
    let uids: std::collections::HashSet<&str> =
        drop.messages().iter().map(|m| m.uid.as_str()).collect();
    assert_eq!(uids.len(), 3);
    let index = (0..3)
        .find(|&i| second.starts_with(&drop.messages()[i].uid))
        .unwrap();
    let bytes = read(&*drop, index).await.unwrap();
    assert!(bytes.ends_with(b"two\r\n"));
    drop.commit(&[index]).await.unwrap();
    assert_eq!(names_in(&root.join("new")).len(), 2);
    assert!(names_in(&root.join("cur")).is_empty(), "the twin went too");
}

#[tokio::test]
async fn a_symbolic_link_in_a_maildir_is_not_followed() {
    let (dir, store) = setup();
    add(&store, "alice").await;
    store
        .deliver(&users(&["alice"]), &message("real\r\n"))
        .await
        .unwrap();
    let secret = dir.path().join("secret");
    fs::write(&secret, b"not mail\r\n").unwrap();
    // One link named as a small message (read whole), one as a big one
    // (streamed): neither may hand out what it points at.
    let new = dir.path().join("mail/alice/new");
    std::os::unix::fs::symlink(&secret, new.join("1.link,S=10")).unwrap();
    std::os::unix::fs::symlink(&secret, new.join("2.link,S=900000000")).unwrap();
    let drop = store.open_maildrop("alice").await.unwrap();
    assert_eq!(drop.messages().len(), 3);
    let mut readable = 0;
    for i in 0..3 {
        drop.idle();
        match read(&*drop, i).await {
            Ok(bytes) => {
                assert!(bytes.ends_with(b"real\r\n"), "message {i}: {bytes:?}");
                readable += 1;
            }
            Err(StoreError::NoSuchMessage) => panic!("message {i}: reported as gone"),
            Err(_) => {}
        }
    }
    assert_eq!(readable, 1, "only the delivered message reads");
}

#[tokio::test]
async fn the_maildrop_lock_is_exclusive_and_released() {
    let (dir, store) = setup();
    add(&store, "alice").await;
    let held = store.open_maildrop("alice").await.unwrap();
    // Same process, same store: flock is per open file description.
    assert!(matches!(
        store.open_maildrop("alice").await,
        Err(StoreError::Locked)
    ));
    // A second instance (as another process would).
    let other = MaildirStore::open(dir.path(), "h").unwrap();
    assert!(matches!(
        other.open_maildrop("ALICE").await,
        Err(StoreError::Locked)
    ));
    drop(held);
    let held = other.open_maildrop("alice").await.unwrap();
    assert!(matches!(
        store.open_maildrop("alice").await,
        Err(StoreError::Locked)
    ));
    held.commit(&[]).await.unwrap();
    store.open_maildrop("alice").await.unwrap();
    assert!(matches!(
        store.open_maildrop("nobody").await,
        Err(StoreError::NoSuchUser(_))
    ));
}

#[tokio::test]
async fn commit_deletes_durably_and_tolerates_vanished_files() {
    let (dir, store) = setup();
    add(&store, "alice").await;
    for body in ["a\r\n", "b\r\n", "c\r\n", "d\r\n"] {
        store
            .deliver(&users(&["alice"]), &message(body))
            .await
            .unwrap();
    }
    let root = dir.path().join("mail/alice");
    let drop = store.open_maildrop("alice").await.unwrap();
    let msgs = drop.messages().to_vec();
    // Another agent deletes message 2 and moves message 3 meanwhile.
    let names = names_in(&root.join("new"));
    let by_uid = |uid: &str| names.iter().find(|n| n.starts_with(uid)).unwrap().clone();
    fs::remove_file(root.join("new").join(by_uid(&msgs[1].uid))).unwrap();
    let third = by_uid(&msgs[2].uid);
    fs::rename(
        root.join("new").join(&third),
        root.join("cur").join(format!("{third}:2,S")),
    )
    .unwrap();
    assert!(matches!(
        read(&*drop, 1).await,
        Err(StoreError::NoSuchMessage)
    ));
    assert!(matches!(
        store.open_maildrop("alice").await,
        Err(StoreError::Locked)
    ));
    drop.commit(&[1, 2, 0]).await.unwrap();
    let left = store.open_maildrop("alice").await.unwrap();
    assert_eq!(left.messages(), &msgs[3..]);
    assert!(names_in(&root.join("cur")).is_empty());
    // Out of range: nothing deleted, and the lock is still released.
    assert!(matches!(
        left.commit(&[5]).await,
        Err(StoreError::NoSuchMessage)
    ));
    assert_eq!(
        store.open_maildrop("alice").await.unwrap().messages().len(),
        1
    );
}

#[tokio::test]
async fn stale_tmp_files_are_swept() {
    let (dir, store) = setup();
    add(&store, "alice").await;
    let tmp = dir.path().join("mail/alice/tmp");
    store.open_maildrop("alice").await.unwrap();
    let old = tmp.join("1.old.host");
    let fresh = tmp.join("2.fresh.host");
    fs::write(&old, "x").unwrap();
    fs::write(&fresh, "x").unwrap();
    let long_ago = SystemTime::now() - Duration::from_secs(37 * 3600);
    let times = fs::FileTimes::new()
        .set_modified(long_ago)
        .set_accessed(long_ago);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_times(times)
        .unwrap();
    store.open_maildrop("alice").await.unwrap();
    assert!(!old.exists());
    assert!(fresh.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_all_land() {
    let (dir, store) = setup();
    add(&store, "alice").await;
    add(&store, "bob").await;
    let tasks: Vec<_> = (0..20)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    let to = if (t + i) % 3 == 0 {
                        users(&["alice", "bob"])
                    } else {
                        users(&["alice"])
                    };
                    store
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
    let drop = store.open_maildrop("alice").await.unwrap();
    assert_eq!(drop.messages().len(), 200);
    assert!(names_in(&dir.path().join("mail/alice/tmp")).is_empty());
    let uids: std::collections::HashSet<_> = drop.messages().iter().map(|m| &m.uid).collect();
    assert_eq!(uids.len(), 200);
}

/// Throughput of the store alone, as the load target sees it: 20
/// concurrent sessions, 2 KB messages, one recipient each. Run with
/// `cargo test -p mailroom-store-maildir --release -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; prints deliveries per second"]
async fn bench_deliveries_per_second() {
    let dir = tempfile::tempdir_in(
        std::env::var_os("MAILROOM_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir),
    )
    .unwrap();
    let store = MaildirStore::open(dir.path(), "bench").unwrap();
    let users_n: usize = std::env::var("MAILROOM_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for u in 0..users_n {
        add(&store, &format!("u{u}")).await;
    }
    let body = "x".repeat(2046) + "\r\n";
    let per_task: u32 = 200;
    let start = Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|t| {
            let store = store.clone();
            let msg = message(&body);
            tokio::spawn(async move {
                for i in 0..per_task {
                    let to = vec![format!("u{}", (t + i as usize) % users_n)];
                    store.deliver(&to, &msg).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let (requests, fsyncs) = store.inner.syncer.counts();
    println!(
        "{} deliveries to {users_n} user(s) in {secs:.2}s: {:.0}/s; \
         directory fsyncs: {fsyncs} run for {requests} requests",
        20 * per_task,
        f64::from(20 * per_task) / secs
    );
}
