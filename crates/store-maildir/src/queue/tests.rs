//! MaildirQueue on real directories (tempfile).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use mailroom_store::{QueuedRecipient, RecipientState};

use super::*;

const NOW: i64 = 1_700_000_000;

fn setup() -> (tempfile::TempDir, MaildirQueue) {
    let dir = tempfile::tempdir().unwrap();
    let queue = MaildirQueue::open(dir.path()).unwrap();
    (dir, queue)
}

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

fn message(body: &[u8]) -> IncomingMessage {
    IncomingMessage {
        prefix: b"Received: from client.example.org\r\n\tby mx.example.org; Tue, 14 Nov 2023\r\n"
            .to_vec(),
        body: Arc::new(body.to_vec()),
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn ids(entries: &[QueueEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.id.as_str()).collect()
}

fn set_age(path: &Path, age: Duration) {
    let then = SystemTime::now() - age;
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_times(fs::FileTimes::new().set_modified(then).set_accessed(then))
        .unwrap();
}

#[tokio::test]
async fn enqueue_then_list_get_message_round_trip() {
    let (dir, queue) = setup();
    let mut e = entry("01ABC", NOW);
    e.envid = Some("env id with spaces".into());
    e.recipients.push(QueuedRecipient {
        orcpt: Some("rfc822;carol@example.com".into()),
        notify: Some("FAILURE,DELAY".into()),
        last_reply: Some("451 4.7.1 greylisted\r\nrcpt injected".into()),
        ..rcpt("carol@example.com", NOW + 60)
    });
    // Every byte value, CRLF included: the store must not touch it.
    let body: Vec<u8> = (0..=255u8).chain(*b"\r\n.\r\n").collect();
    let msg = message(&body);
    e.size = msg.len();
    queue.enqueue(&e, &msg).await.unwrap();

    assert_eq!(queue.list().await.unwrap(), vec![e.clone()]);
    assert_eq!(queue.get("01ABC").await.unwrap(), Some(e.clone()));
    let mut stored = msg.prefix.clone();
    stored.extend_from_slice(&body);
    assert_eq!(queue.message("01ABC").await.unwrap(), stored);

    let root = dir.path().join("queue");
    assert_eq!(names_in(&root.join("msg")), ["01ABC"]);
    assert_eq!(names_in(&root.join("env")), ["01ABC"]);
    assert!(names_in(&root.join("tmp")).is_empty());
    assert_eq!(
        fs::read_to_string(root.join("env/01ABC")).unwrap(),
        envelope::serialize(&e)
    );
    assert_eq!(fs::read(root.join("msg/01ABC")).unwrap(), stored);
    let mode = fs::metadata(root.join("env/01ABC")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // A fresh instance (another process) sees the same.
    let other = MaildirQueue::open(dir.path()).unwrap();
    assert_eq!(other.get("01ABC").await.unwrap(), Some(e));
    assert_eq!(other.message("01ABC").await.unwrap(), stored);
    assert_eq!(queue.get("nothing").await.unwrap(), None);
    assert!(matches!(
        queue.message("nothing").await,
        Err(StoreError::NoSuchMessage)
    ));
}

#[tokio::test]
async fn list_is_oldest_first() {
    let (_dir, queue) = setup();
    for (id, created) in [("C", 30), ("A", 20), ("B", 20), ("D", 10)] {
        let mut e = entry(id, NOW);
        e.created = created;
        queue.enqueue(&e, &message(b"x\r\n")).await.unwrap();
    }
    assert_eq!(ids(&queue.list().await.unwrap()), ["D", "A", "B", "C"]);
}

#[tokio::test]
async fn duplicate_and_invalid_ids_are_refused() {
    let (dir, queue) = setup();
    queue
        .enqueue(&entry("ID1", NOW), &message(b"first\r\n"))
        .await
        .unwrap();
    let err = queue
        .enqueue(&entry("ID1", NOW + 5), &message(b"second\r\n"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Io(ref e) if e.kind() == io::ErrorKind::AlreadyExists),
        "{err:?}"
    );
    // The first is untouched and the failed write left nothing behind.
    assert_eq!(queue.get("ID1").await.unwrap(), Some(entry("ID1", NOW)));
    assert!(queue.message("ID1").await.unwrap().ends_with(b"first\r\n"));
    assert!(names_in(&dir.path().join("queue/tmp")).is_empty());

    for bad in [
        "",
        ".",
        "..",
        "../users",
        "a/b",
        ".hidden",
        "sp ace",
        "é",
        &"x".repeat(129),
    ] {
        assert!(
            queue
                .enqueue(&entry(bad, NOW), &message(b"x\r\n"))
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
    assert_eq!(names_in(&dir.path().join("queue/env")), ["ID1"]);
}

#[tokio::test]
async fn update_persists_across_reopen() {
    let (dir, queue) = setup();
    queue
        .enqueue(&entry("U1", NOW), &message(b"x\r\n"))
        .await
        .unwrap();
    let mut updated = entry("U1", NOW + 600);
    updated.recipients[0].attempts = 1;
    updated.recipients[0].last_reply = Some("421 4.3.0 busy".into());
    queue.update(&updated).await.unwrap();
    drop(queue);
    let queue = MaildirQueue::open(dir.path()).unwrap();
    assert_eq!(queue.get("U1").await.unwrap(), Some(updated.clone()));
    assert_eq!(queue.list().await.unwrap(), vec![updated]);
    assert!(names_in(&dir.path().join("queue/tmp")).is_empty());
}

#[tokio::test]
async fn remove_deletes_both_files_and_stays_removed() {
    let (dir, queue) = setup();
    queue
        .enqueue(&entry("R1", NOW), &message(b"x\r\n"))
        .await
        .unwrap();
    queue
        .enqueue(&entry("R2", NOW), &message(b"y\r\n"))
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
    // the envelope back without its message.
    assert!(matches!(
        queue.update(&entry("R1", NOW)).await,
        Err(StoreError::NoSuchMessage)
    ));
    let root = dir.path().join("queue");
    assert_eq!(names_in(&root.join("env")), ["R2"]);
    assert_eq!(names_in(&root.join("msg")), ["R2"]);
    assert!(names_in(&root.join("tmp")).is_empty());
    assert!(
        queue
            .claim_due(NOW, 10, 60)
            .await
            .unwrap()
            .iter()
            .all(|e| e.id != "R1")
    );
}

#[tokio::test]
async fn claim_due_hands_out_each_due_entry_once_per_lease() {
    let (dir, queue) = setup();
    let msg = message(b"x\r\n");
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
    assert!(queue.claim_due(NOW + 100_000, 10, 1).await.unwrap().len() == 3);
    // Earliest next attempt first (DUE1 was moved to NOW by its update).
    let all = queue.claim_due(NOW + 200_000, 10, 1).await.unwrap();
    assert_eq!(ids(&all), ["DUE2", "DUE1", "LATER"]);

    // A restart forgets the claims (their claimants are gone too).
    let claimed = queue.claim_due(NOW + 300_000, 10, 1000).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let reopened = MaildirQueue::open(dir.path()).unwrap();
    assert_eq!(
        reopened
            .claim_due(NOW + 300_000, 10, 1000)
            .await
            .unwrap()
            .len(),
        3
    );
    // A removed entry is never claimed again.
    queue.remove("LATER").await.unwrap();
    assert_eq!(
        ids(&queue.claim_due(NOW + 400_000, 10, 1).await.unwrap()),
        ["DUE2", "DUE1"]
    );
}

/// The CLI (`mailroom queue hold`, `sendmail`, `queue delete`) is another
/// process with its own MaildirQueue on the same data dir: the server
/// picks its changes up at its next claim_due (the next second).
#[tokio::test]
async fn another_instance_changes_are_picked_up() {
    let (dir, server) = setup();
    let cli = MaildirQueue::open(dir.path()).unwrap();
    server
        .enqueue(&entry("X", NOW), &message(b"x\r\n"))
        .await
        .unwrap();
    assert_eq!(ids(&server.claim_due(NOW, 10, 600).await.unwrap()), ["X"]);
    // The attempt fails; the entry is due again right away.
    server.update(&entry("X", NOW)).await.unwrap();

    // `queue hold X`.
    let mut e = cli.get("X").await.unwrap().unwrap();
    e.held = true;
    cli.update(&e).await.unwrap();
    assert!(server.claim_due(NOW + 1, 10, 600).await.unwrap().is_empty());
    assert_eq!(server.get("X").await.unwrap(), Some(e.clone()));

    // `queue release X`.
    e.held = false;
    cli.update(&e).await.unwrap();
    assert_eq!(
        ids(&server.claim_due(NOW + 2, 10, 600).await.unwrap()),
        ["X"]
    );

    // `sendmail`: a new entry from the other process.
    cli.enqueue(&entry("Y", NOW), &message(b"y\r\n"))
        .await
        .unwrap();
    assert_eq!(
        ids(&server.claim_due(NOW + 3, 10, 600).await.unwrap()),
        ["Y"]
    );
    // `queue delete Y` while the server holds a claim; and a flush of X.
    server.update(&entry("Y", NOW)).await.unwrap();
    cli.remove("Y").await.unwrap();
    assert!(server.claim_due(NOW + 4, 10, 600).await.unwrap().is_empty());
    assert!(matches!(
        server.update(&entry("Y", NOW)).await,
        Err(StoreError::NoSuchMessage)
    ));
    assert_eq!(ids(&server.list().await.unwrap()), ["X"]);
}

/// Within one second of the caller's clock and of real time, claim_due
/// does not rescan; the entries it picks are still read from disk, so a
/// hold that lands in that second is honoured all the same.
#[tokio::test]
async fn a_hold_between_scans_is_still_honoured() {
    let (dir, server) = setup();
    let cli = MaildirQueue::open(dir.path()).unwrap();
    server
        .enqueue(&entry("H", NOW), &message(b"x\r\n"))
        .await
        .unwrap();
    // Scans at NOW (H is due) but claims nothing.
    assert!(server.claim_due(NOW, 0, 60).await.unwrap().is_empty());
    let mut e = entry("H", NOW);
    e.held = true;
    cli.update(&e).await.unwrap();
    // Same `now`, no rescan: the index still thinks H is due and unheld.
    assert!(server.claim_due(NOW, 10, 60).await.unwrap().is_empty());
    assert!(server.claim_due(NOW + 1, 10, 60).await.unwrap().is_empty());
}

#[tokio::test]
async fn orphans_and_stale_tmp_files_are_swept_on_open() {
    let (dir, queue) = setup();
    queue
        .enqueue(&entry("KEEP", NOW), &message(b"x\r\n"))
        .await
        .unwrap();
    let root = dir.path().join("queue");
    let hour = Duration::from_secs(3600);
    // An old message without an envelope (a crash mid-remove), a young one
    // (an enqueue under way in another process), old and young tmp files.
    for (path, age) in [
        (root.join("msg/ORPHAN"), hour * 2),
        (root.join("msg/YOUNG"), Duration::from_secs(60)),
        (root.join("tmp/X.1.1.msg"), hour * 2),
        (root.join("tmp/Y.1.2.env"), Duration::from_secs(60)),
    ] {
        fs::write(&path, b"data").unwrap();
        set_age(&path, age);
    }
    // An old message with its envelope is kept, whatever its age.
    set_age(&root.join("msg/KEEP"), hour * 24);
    // An envelope whose message never reached the disk (a crash in an
    // unacknowledged enqueue, on a file system that reorders) is useless.
    let lonely = envelope::serialize(&entry("LONELY", NOW));
    fs::write(root.join("env/LONELY"), lonely).unwrap();
    drop(queue);
    let queue = MaildirQueue::open(dir.path()).unwrap();
    assert_eq!(names_in(&root.join("msg")), ["KEEP", "YOUNG"]);
    assert_eq!(names_in(&root.join("tmp")), ["Y.1.2.env"]);
    assert_eq!(ids(&queue.list().await.unwrap()), ["KEEP"]);
}

#[tokio::test]
async fn corrupt_envelopes_are_skipped_by_list_and_claims() {
    let (dir, queue) = setup();
    let msg = message(b"x\r\n");
    queue.enqueue(&entry("GOOD", NOW), &msg).await.unwrap();
    queue.enqueue(&entry("BAD", NOW), &msg).await.unwrap();
    queue.enqueue(&entry("NEWER", NOW), &msg).await.unwrap();
    queue.enqueue(&entry("WRONGID", NOW), &msg).await.unwrap();
    let env = dir.path().join("queue/env");
    let good = fs::read_to_string(env.join("GOOD")).unwrap();
    // Garbage, a newer version, an envelope copied under another name.
    fs::write(env.join("BAD"), b"\xff\xfe garbage").unwrap();
    fs::write(env.join("NEWER"), good.replace("version 1", "version 2")).unwrap();
    fs::write(env.join("WRONGID"), &good).unwrap();
    // Stray files that are not entries at all.
    fs::write(env.join(".swp"), b"editor").unwrap();
    fs::create_dir(env.join("subdir")).unwrap();

    assert_eq!(ids(&queue.list().await.unwrap()), ["GOOD"]);
    for id in ["BAD", "NEWER", "WRONGID"] {
        assert!(
            matches!(queue.get(id).await, Err(StoreError::Corrupt(_))),
            "{id}"
        );
    }
    assert_eq!(ids(&queue.claim_due(NOW, 10, 60).await.unwrap()), ["GOOD"]);
    assert!(queue.claim_due(NOW + 1000, 10, 60).await.unwrap().len() == 1);
    // A fresh instance builds its index with them present.
    let other = MaildirQueue::open(dir.path()).unwrap();
    assert_eq!(ids(&other.claim_due(NOW, 10, 60).await.unwrap()), ["GOOD"]);
    // Repaired by the operator: picked up again.
    fs::write(env.join("BAD"), good.replace("id GOOD", "id BAD")).unwrap();
    assert_eq!(
        ids(&other.claim_due(NOW + 1, 10, 60).await.unwrap()),
        ["BAD"]
    );
    // It can still be deleted.
    queue.remove("NEWER").await.unwrap();
    assert_eq!(queue.get("NEWER").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_all_land() {
    let (dir, queue) = setup();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let id = format!("C{i:03}");
                let msg = message(format!("message {i}\r\n").as_bytes());
                queue.enqueue(&entry(&id, NOW), &msg).await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let (requests, fsyncs) = queue.inner.syncer.counts();
    assert_eq!(requests, 400);
    assert!(fsyncs <= requests);
    drop(queue);
    // Reopened as after a restart: everything is there, byte for byte.
    let queue = MaildirQueue::open(dir.path()).unwrap();
    let listed = queue.list().await.unwrap();
    assert_eq!(listed.len(), 200);
    for i in 0..200 {
        let id = format!("C{i:03}");
        assert_eq!(queue.get(&id).await.unwrap(), Some(entry(&id, NOW)));
        assert!(
            queue
                .message(&id)
                .await
                .unwrap()
                .ends_with(format!("message {i}\r\n").as_bytes())
        );
    }
    assert_eq!(queue.claim_due(NOW, 1000, 60).await.unwrap().len(), 200);
    assert!(names_in(&dir.path().join("queue/tmp")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_update_and_remove_never_leave_an_envelope_alone() {
    for round in 0..20 {
        let (dir, server) = setup();
        let cli = MaildirQueue::open(dir.path()).unwrap();
        let id = format!("Z{round}");
        server
            .enqueue(&entry(&id, NOW), &message(b"x\r\n"))
            .await
            .unwrap();
        let updater = {
            let id = id.clone();
            tokio::spawn(async move { server.update(&entry(&id, NOW + 1)).await })
        };
        let remover = {
            let id = id.clone();
            tokio::spawn(async move { cli.remove(&id).await })
        };
        let updated = updater.await.unwrap();
        remover.await.unwrap().unwrap();
        assert!(matches!(updated, Ok(()) | Err(StoreError::NoSuchMessage)));
        let root = dir.path().join("queue");
        assert!(names_in(&root.join("env")).is_empty(), "round {round}");
        assert!(names_in(&root.join("msg")).is_empty(), "round {round}");
    }
}

#[test]
fn open_checks_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    assert!(MaildirQueue::open(&dir.path().join("missing")).is_err());
    let file = dir.path().join("file");
    fs::write(&file, b"").unwrap();
    assert!(MaildirQueue::open(&file).is_err());
    MaildirQueue::open(dir.path()).unwrap();
    for sub in ["queue", "queue/msg", "queue/env", "queue/tmp"] {
        let meta = fs::metadata(dir.path().join(sub)).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.mode() & 0o777, 0o700, "{sub}");
    }
    // Opening again is fine.
    MaildirQueue::open(dir.path()).unwrap();
}

fn bench_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(
        std::env::var_os("MAILROOM_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir),
    )
    .unwrap()
}

/// The enqueue rate the relay target needs: 20 concurrent sessions, 2 KB
/// messages. Run with `cargo test -p mailroom-store-maildir -- --ignored
/// --nocapture bench_enqueues`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; prints enqueues per second"]
async fn bench_enqueues_per_second() {
    let dir = bench_dir();
    let queue = MaildirQueue::open(dir.path()).unwrap();
    let per_task: u32 = std::env::var("MAILROOM_BENCH_PER_TASK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let body = Arc::new(
        "x".repeat(2046)
            .into_bytes()
            .into_iter()
            .chain(*b"\r\n")
            .collect::<Vec<u8>>(),
    );
    let start = Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|t| {
            let queue = queue.clone();
            let body = Arc::clone(&body);
            tokio::spawn(async move {
                for i in 0..per_task {
                    let msg = IncomingMessage {
                        prefix: b"Received: by bench\r\n".to_vec(),
                        body: Arc::clone(&body),
                    };
                    let mut e = entry(&format!("B{t:02}x{i:05}"), NOW);
                    e.size = msg.len();
                    queue.enqueue(&e, &msg).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let (requests, fsyncs) = queue.inner.syncer.counts();
    let n = 20 * per_task;
    println!(
        "{n} enqueues in {secs:.2}s: {:.0}/s; directory fsyncs: {fsyncs} run for {requests} requests",
        f64::from(n) / secs
    );
    // What claim_due costs with that many entries queued: the first call
    // loads every envelope, later ones rescan (readdir + fstatat each).
    let start = Instant::now();
    assert_eq!(queue.claim_due(NOW - 1, 10, 60).await.unwrap().len(), 0);
    let first = start.elapsed();
    let rounds = 20;
    let start = Instant::now();
    for r in 0..rounds {
        assert_eq!(queue.claim_due(NOW - 1 - r, 10, 60).await.unwrap().len(), 0);
    }
    let rescan = start.elapsed() / u32::try_from(rounds).unwrap();
    // Once env/ has settled, a claim_due that finds nothing changed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(queue.claim_due(NOW - 100, 10, 60).await.unwrap().len(), 0);
    let start = Instant::now();
    for r in 0..rounds {
        assert_eq!(
            queue.claim_due(NOW - 101 - r, 10, 60).await.unwrap().len(),
            0
        );
    }
    let settled = start.elapsed() / u32::try_from(rounds).unwrap();
    println!(
        "claim_due over {n} entries: first (index build) {first:?}, \
         rescan {rescan:?} each, settled directory {settled:?} each"
    );
}

/// An idle queue costs one stat of `env/` per claim_due, not a scan, and
/// a change by another process still shows at the next call.
#[tokio::test]
async fn an_unchanged_env_dir_is_not_rescanned() {
    let (dir, server) = setup();
    let cli = MaildirQueue::open(dir.path()).unwrap();
    server
        .enqueue(&entry("S", NOW + 100), &message(b"x\r\n"))
        .await
        .unwrap();
    let env = dir.path().join("queue/env");
    let full_scans = || server.inner.lock_index().full_scans;
    assert!(server.claim_due(NOW, 10, 60).await.unwrap().is_empty());
    assert_eq!(full_scans(), 1);
    // Pretend env/ has been quiet for an hour (sleeping would be slow).
    let then = SystemTime::now() - Duration::from_secs(3600);
    File::open(&env)
        .unwrap()
        .set_times(fs::FileTimes::new().set_modified(then))
        .unwrap();
    assert!(server.claim_due(NOW + 1, 10, 60).await.unwrap().is_empty());
    assert_eq!(full_scans(), 2);
    for i in 2..5 {
        assert!(server.claim_due(NOW + i, 10, 60).await.unwrap().is_empty());
    }
    assert_eq!(full_scans(), 2);
    // `queue flush S` in another process: due now.
    cli.update(&entry("S", NOW)).await.unwrap();
    assert_eq!(
        ids(&server.claim_due(NOW + 5, 10, 60).await.unwrap()),
        ["S"]
    );
    assert_eq!(full_scans(), 3);
    // Right after a change the directory is not trusted: scans go on.
    assert!(server.claim_due(NOW + 6, 10, 60).await.unwrap().is_empty());
    assert_eq!(full_scans(), 4);
}
