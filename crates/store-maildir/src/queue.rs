//! The outbound queue of the embedded engine: one message file and one
//! envelope file per entry under `DATA_DIR/queue/`.
//!
//! # On-disk layout
//!
//! ```text
//! DATA_DIR/queue/
//!   msg/<id>    the message: trace headers + body, CRLF, written once
//!   env/<id>    its envelope (mailroom_queue::envelope format), replaced
//!               whole by rename on every update
//!   tmp/        writes in progress: <id>.<pid>.<n>.msg / .env
//! ```
//!
//! Ids are 1–128 characters of `[A-Za-z0-9._-]`, not starting with `.`
//! (the server's ids are 19 base-32 characters); anything else is refused,
//! so an id can never name a path outside these directories. Files are
//! mode 0600, directories 0700.
//!
//! # Durability and crash states
//!
//! An entry exists when `env/<id>` exists. The message is put into place
//! before its envelope and removed after it, so no reader ever sees an
//! envelope without its message, and a crash leaves either the old or the
//! new state:
//!
//! - **enqueue**: write `tmp/…msg` and `tmp/…env` and fsync each (on two
//!   threads at once, so neither waits for the other's flush); link the
//!   message to `msg/<id>` (a link, not a rename, so an existing id fails
//!   instead of replacing a message); rename the envelope to `env/<id>`;
//!   fsync `msg/`, then `env/`; only then return (the 250 after DATA, the
//!   exit 0 of `sendmail`). Directory fsyncs are shared between concurrent
//!   enqueues (group commit, `sync.rs`). A crash before the return loses
//!   only an unacknowledged message. A journalling file system (ext4 with
//!   its journal, XFS) commits the link before the rename, so its disk
//!   never holds the envelope without the message; one without a journal
//!   (ext4 `^has_journal`, as on the benchmark VM) may write `env/` back
//!   before `msg/`, and if it then crashes, `open` deletes that envelope:
//!   its enqueue was never acknowledged, and no live writer can produce
//!   that state. (Syncing `msg/` before the rename would avoid it at the
//!   price of one more flush in every enqueue's path.)
//! - **update**: write `tmp/…env`, fsync, rename over `env/<id>`, fsync
//!   `env/`. A reader sees the old file or the new one, never a mix.
//! - **remove**: unlink `env/<id>`, fsync `env/`, then unlink `msg/<id>`,
//!   fsync `msg/`. A crash in between leaves an orphan message file, which
//!   no listing shows.
//! - **open** removes files in `tmp/` and orphan message files (no
//!   envelope) once they are an hour old; younger ones may belong to an
//!   enqueue still running in another process. Nothing ever reads `tmp/`.
//!
//! # Several processes, one queue
//!
//! `mailroom serve` keeps a [`MaildirQueue`] open, and the `mailroom queue
//! hold|release|flush|delete` and `mailroom sendmail` commands open their
//! own on the same data dir. They never corrupt each other: every change is
//! an atomic rename or unlink. [`QueueStore::update`] and
//! [`QueueStore::remove`] of one id take an exclusive `flock` on its
//! message file, so an update racing with a delete cannot recreate the
//! envelope of a deleted entry.
//!
//! What remains is the lost update: the server finishes a delivery attempt
//! and writes the envelope it loaded before, while an operator's `queue
//! hold` lands in the same moment. Last writer wins: the hold may be
//! overwritten by the attempt's result (or the reverse), never mixed with
//! it. [`QueueStore::claim_due`] returns envelopes as read from disk at
//! the claim; the MTA narrows the window further by reading the envelope
//! again with [`QueueStore::get`] right before it delivers (and may carry
//! an operator's `held` over when it writes the result). The operator sees
//! the outcome in `queue list`.
//!
//! # Claims and the index
//!
//! Leases are in memory: the embedded engine has one server process per
//! data dir, and only it calls [`QueueStore::claim_due`]. A claim lasts
//! until `update`, `remove` or the lease's end; a restart forgets every
//! claim, which is correct because the claimants died with the process. (A
//! second `serve` on the same data dir would deliver twice; don't run one.)
//!
//! `claim_due` is called every second with thousands of entries queued, so
//! it works from an index built on its first call and kept in memory: id →
//! the envelope file's stamp (inode, size, mtime), its next attempt, held,
//! created, and the claim. This process's enqueue, update and remove keep
//! the index current. Other processes' changes are found by a scan of
//! `env/` — one `readdir` and one `fstatat` per entry, and a read only of
//! files that are new or whose stamp moved — at most once per second of
//! the caller's clock and of real time, so they are seen within a second
//! without a scan per call when the MTA claims in a burst. While `env/`
//! itself is unchanged (its mtime moves with every create, rename and
//! unlink in it) the scan is skipped for one `stat` of the directory, so a
//! large deferred backlog costs next to nothing per second; a full scan
//! still runs every minute. Entries chosen for a claim are read from disk
//! again, so a claim never returns an entry held or removed since the last
//! scan.
//!
//! Changes must be made by replacing files (as this type does); an
//! envelope edited in place is noticed by the next full scan, within a
//! minute.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use mailroom_queue::envelope;
use mailroom_store::names::valid_queue_id;
use mailroom_store::{IncomingMessage, QueueEntry, QueueStore, StoreError};
use rustix::fs::FlockOperation;
use rustix::io::Errno;

use crate::fsutil::{mkdir, sync_dir};
use crate::sync::DirSyncer;

/// The outbound queue under `DATA_DIR/queue/` (see the module doc). Cheap
/// to clone; clones share the index, the claims and the group commit.
#[derive(Clone)]
pub struct MaildirQueue {
    inner: Arc<Inner>,
}

/// What every clone shares.
struct Inner {
    msg_dir: PathBuf,
    env_dir: PathBuf,
    tmp_dir: PathBuf,
    syncer: DirSyncer,
    /// Only taken on blocking threads, never across an `.await`.
    index: Mutex<Index>,
}

impl MaildirQueue {
    /// Opens the queue in `data_dir`, creating `queue/` and its
    /// subdirectories if missing, and sweeps `tmp/` and orphan message
    /// files older than an hour. Fails when `data_dir` does not exist or is
    /// not a directory (the caller creates it).
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let meta = fs::metadata(data_dir).map_err(|e| context(e, "data directory", data_dir))?;
        if !meta.is_dir() {
            return Err(StoreError::Io(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("data directory {} is not a directory", data_dir.display()),
            )));
        }
        let root = data_dir.join(QUEUE);
        let inner = Inner {
            msg_dir: root.join(MSG),
            env_dir: root.join(ENV),
            tmp_dir: root.join(TMP),
            syncer: DirSyncer::default(),
            index: Mutex::new(Index::default()),
        };
        // Created directories are synced into their parents at once: an
        // enqueue acknowledged into a directory that a power cut takes
        // away would be lost.
        if mkdir(&root).map_err(|e| context(e, "creating", &root))? {
            sync_dir(data_dir).map_err(StoreError::from_io)?;
        }
        let mut created = false;
        for dir in [&inner.msg_dir, &inner.env_dir, &inner.tmp_dir] {
            created |= mkdir(dir).map_err(|e| context(e, "creating", dir))?;
        }
        if created {
            sync_dir(&root).map_err(StoreError::from_io)?;
        }
        inner.sweep().map_err(StoreError::from_io)?;
        Ok(MaildirQueue {
            inner: Arc::new(inner),
        })
    }

    /// Runs blocking file work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(join_error)?
    }
}

#[async_trait::async_trait]
impl QueueStore for MaildirQueue {
    async fn enqueue(
        &self,
        entry: &QueueEntry,
        message: &IncomingMessage,
    ) -> Result<(), StoreError> {
        if !valid_queue_id(&entry.id) {
            return Err(StoreError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid queue id {:?}", entry.id),
            )));
        }
        let msg_tmp = self.inner.tmp_name(&entry.id, "msg");
        let env_tmp = self.inner.tmp_name(&entry.id, "env");
        // The two files are written and fsync'd on two threads at once, so
        // that the enqueue waits for one flush, not two in a row.
        let msg_write = {
            let path = msg_tmp.clone();
            // Cheap clone: the body is shared, the prefix is a few lines.
            let message = message.clone();
            tokio::task::spawn_blocking(move || write_new(&path, &[&message.prefix, &message.body]))
        };
        let env_write = {
            let path = env_tmp.clone();
            let text = envelope::serialize(entry);
            tokio::task::spawn_blocking(move || write_new(&path, &[text.as_bytes()]))
        };
        let (msg_written, env_written) = tokio::join!(msg_write, env_write);
        let entry = entry.clone();
        self.blocking(move |inner| {
            let mut undo = Undo {
                paths: vec![msg_tmp.clone(), env_tmp.clone()],
                done: false,
            };
            msg_written
                .map_err(join_error)?
                .map_err(StoreError::from_io)?;
            let stamp = env_written
                .map_err(join_error)?
                .map_err(StoreError::from_io)?;
            inner.enqueue(&entry, &msg_tmp, &env_tmp, stamp, &mut undo)
        })
        .await
    }

    async fn list(&self) -> Result<Vec<QueueEntry>, StoreError> {
        self.blocking(|inner| {
            let mut index = inner.lock_index();
            let mut entries = inner.scan(&mut index, true).map_err(StoreError::from_io)?;
            entries.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
            Ok(entries)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<QueueEntry>, StoreError> {
        if !valid_queue_id(id) {
            return Ok(None);
        }
        let id = id.to_string();
        self.blocking(move |inner| {
            let mut index = inner.lock_index();
            match inner.load(&id).map_err(StoreError::from_io)? {
                None => {
                    index.entries.remove(&id);
                    Ok(None)
                }
                Some((stamp, Ok(entry))) => {
                    index.loaded(&id, stamp, Some(&entry));
                    Ok(Some(entry))
                }
                Some((stamp, Err(reason))) => {
                    index.loaded(&id, stamp, None);
                    Err(StoreError::Corrupt(format!(
                        "queue envelope {id}: {reason}"
                    )))
                }
            }
        })
        .await
    }

    async fn message(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        if !valid_queue_id(id) {
            return Err(StoreError::NoSuchMessage);
        }
        let path = self.inner.msg_dir.join(id);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NoSuchMessage),
            Err(e) => Err(StoreError::from_io(e)),
        }
    }

    async fn update(&self, entry: &QueueEntry) -> Result<(), StoreError> {
        if !valid_queue_id(&entry.id) {
            return Err(StoreError::NoSuchMessage);
        }
        let entry = entry.clone();
        self.blocking(move |inner| inner.update(&entry)).await
    }

    async fn remove(&self, id: &str) -> Result<(), StoreError> {
        if !valid_queue_id(id) {
            return Err(StoreError::NoSuchMessage);
        }
        let id = id.to_string();
        self.blocking(move |inner| inner.remove(&id)).await
    }

    async fn claim_due(
        &self,
        now: i64,
        limit: usize,
        lease_secs: u64,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        self.blocking(move |inner| inner.claim_due(now, limit, lease_secs))
            .await
    }

    async fn renew_claim(&self, id: &str, now: i64, lease_secs: u64) -> Result<bool, StoreError> {
        // Claims live in this process's index only: no file to touch, but
        // the index lock may be held by a scan, hence the blocking pool.
        let lease = i64::try_from(lease_secs).unwrap_or(i64::MAX);
        let id = id.to_string();
        self.blocking(move |inner| {
            let mut index = inner.lock_index();
            Ok(match index.entries.get_mut(&id) {
                Some(slot) if slot.claimed_until.is_some() => {
                    slot.claimed_until = Some(now.saturating_add(lease));
                    true
                }
                _ => false,
            })
        })
        .await
    }
}

impl std::fmt::Debug for MaildirQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaildirQueue")
            .field("env_dir", &self.inner.env_dir)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Puts the written and fsync'd tmp files of a new entry into place
    /// (see the module doc for the order and the crash states).
    fn enqueue(
        &self,
        entry: &QueueEntry,
        msg_tmp: &Path,
        env_tmp: &Path,
        stamp: Stamp,
        undo: &mut Undo,
    ) -> Result<(), StoreError> {
        let id = &entry.id;
        let msg_path = self.msg_dir.join(id);
        fs::hard_link(msg_tmp, &msg_path).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                StoreError::Io(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("queue id {id} already exists"),
                ))
            } else {
                StoreError::from_io(e)
            }
        })?;
        // Undone in reverse order: the envelope (below) before the message.
        undo.paths.insert(0, msg_path);
        let env_path = self.env_dir.join(id);
        fs::rename(env_tmp, &env_path).map_err(StoreError::from_io)?;
        undo.paths.insert(0, env_path);
        // Not durable yet: both directories must be synced before the
        // caller may answer 250 (RFC 5321 §6.1: once accepted, a message
        // must not be lost). msg/ first; on ext4 and XFS its commit also
        // carries the rename into env/, so the second sync finds little to
        // do.
        self.syncer
            .sync(&self.msg_dir)
            .map_err(StoreError::from_io)?;
        self.syncer
            .sync(&self.env_dir)
            .map_err(StoreError::from_io)?;
        undo.done = true;
        // Durable. The tmp/ link is redundant: unlink it without an fsync
        // of tmp/ (if a crash loses the unlink, the sweep at open removes
        // it an hour later).
        if let Err(e) = fs::remove_file(msg_tmp) {
            tracing::debug!(path = %msg_tmp.display(), error = %e, "could not remove queued tmp file");
        }
        self.lock_index().loaded(id, stamp, Some(entry));
        Ok(())
    }

    fn update(&self, entry: &QueueEntry) -> Result<(), StoreError> {
        let id = &entry.id;
        let text = envelope::serialize(entry);
        let mut undo = Undo::default();
        let env_tmp = self.tmp_name(id, "env");
        undo.paths.push(env_tmp.clone());
        let stamp = write_new(&env_tmp, &[text.as_bytes()]).map_err(StoreError::from_io)?;
        {
            let _lock = self.lock_entry(id)?;
            // Under the lock no remove is half-way: the envelope must still
            // be there, or the entry is gone and must stay gone.
            if !exists(&self.env_dir.join(id)).map_err(StoreError::from_io)? {
                return Err(StoreError::NoSuchMessage);
            }
            fs::rename(&env_tmp, self.env_dir.join(id)).map_err(StoreError::from_io)?;
            undo.done = true;
        }
        self.syncer
            .sync(&self.env_dir)
            .map_err(StoreError::from_io)?;
        let mut index = self.lock_index();
        index.loaded(id, stamp, Some(entry));
        if let Some(slot) = index.entries.get_mut(id) {
            slot.claimed_until = None;
        }
        Ok(())
    }

    fn remove(&self, id: &str) -> Result<(), StoreError> {
        let msg_path = self.msg_dir.join(id);
        let env_path = self.env_dir.join(id);
        let lock = match self.lock_entry(id) {
            Ok(lock) => Some(lock),
            // An envelope without its message cannot come from our own
            // writes, but an operator may have removed the file: delete
            // what is left.
            Err(StoreError::NoSuchMessage) => None,
            Err(e) => return Err(e),
        };
        let had_envelope = remove_if_exists(&env_path).map_err(StoreError::from_io)?;
        self.lock_index().entries.remove(id);
        if had_envelope {
            self.syncer
                .sync(&self.env_dir)
                .map_err(StoreError::from_io)?;
        }
        // The envelope is durably gone: the message may follow (a crash
        // from here on leaves an orphan, swept at open).
        if lock.is_some() {
            remove_if_exists(&msg_path).map_err(StoreError::from_io)?;
            drop(lock);
            self.syncer
                .sync(&self.msg_dir)
                .map_err(StoreError::from_io)?;
        }
        if had_envelope {
            Ok(())
        } else {
            Err(StoreError::NoSuchMessage)
        }
    }

    fn claim_due(
        &self,
        now: i64,
        limit: usize,
        lease_secs: u64,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        let lease = i64::try_from(lease_secs).unwrap_or(i64::MAX);
        let mut index = self.lock_index();
        let stale = match index.last_scan {
            None => true,
            Some((at, scan_now)) => scan_now != now || at.elapsed() >= SCAN_INTERVAL,
        };
        if stale {
            self.refresh(&mut index).map_err(StoreError::from_io)?;
            index.last_scan = Some((Instant::now(), now));
        }
        let mut candidates: Vec<(i64, i64, String)> = index
            .entries
            .iter()
            .filter(|(_, slot)| slot.claimable(now))
            .filter_map(|(id, slot)| {
                let summary = slot.summary?;
                Some((summary.next_attempt?, summary.created, id.clone()))
            })
            .collect();
        candidates.sort_unstable();
        let mut claimed = Vec::new();
        for (_, _, id) in candidates {
            if claimed.len() >= limit {
                break;
            }
            // Read again: the caller gets the envelope as it is on disk now,
            // and an entry held or removed since the scan is not claimed.
            let stamp = index.entries.get(&id).and_then(|slot| slot.stamp);
            match self.load_or_skip(&id, stamp) {
                None => {
                    index.entries.remove(&id);
                }
                Some((stamp, Err(reason))) => {
                    let news = index.loaded(&id, stamp, None);
                    if news {
                        tracing::warn!(queue_id = %id, error = %reason, "skipping corrupt queue envelope");
                    }
                }
                Some((stamp, Ok(entry))) => {
                    index.loaded(&id, stamp, Some(&entry));
                    if let Some(slot) = index.entries.get_mut(&id)
                        && slot.claimable(now)
                    {
                        slot.claimed_until = Some(now.saturating_add(lease));
                        claimed.push(entry);
                    }
                }
            }
        }
        Ok(claimed)
    }

    /// The look for other processes' changes that `claim_due` makes (at
    /// most once a second). Skipped, at the cost of one `stat`, while
    /// `env/` keeps the stamp it had at a scan that found it settled: every
    /// create, rename or unlink in a directory sets its mtime to the current
    /// time, so a change after such a scan cannot leave the stamp as it was.
    /// A full scan still runs every [`FULL_SCAN_INTERVAL`], for whatever
    /// escapes that (a file edited in place, a clock stepped back).
    fn refresh(&self, index: &mut Index) -> io::Result<()> {
        let started = SystemTime::now();
        let dir = DirStamp::of(&fs::metadata(&self.env_dir)?);
        if let Some((settled, at)) = index.settled_dir
            && settled == dir
            && at.elapsed() < FULL_SCAN_INTERVAL
        {
            return Ok(());
        }
        self.scan(index, false)?;
        #[cfg(test)]
        {
            index.full_scans += 1;
        }
        index.settled_dir = dir.settled_at(started).then(|| (dir, Instant::now()));
        Ok(())
    }

    /// Brings the index up to date with `env/`: entries that appeared are
    /// added, those that vanished dropped, those whose stamp moved re-read.
    /// With `read_all`, every envelope is read and the readable ones are
    /// returned (for `list`); a corrupt one is logged each time. Otherwise
    /// only changed files are read and a corrupt one is logged once.
    fn scan(&self, index: &mut Index, read_all: bool) -> io::Result<Vec<QueueEntry>> {
        index.generation += 1;
        let generation = index.generation;
        let mut entries = Vec::new();
        for dirent in fs::read_dir(&self.env_dir)? {
            let dirent = dirent?;
            let name = dirent.file_name();
            let Some(id) = name.to_str().filter(|n| valid_queue_id(n)) else {
                continue;
            };
            let meta = match dirent.metadata() {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if !meta.is_file() {
                continue;
            }
            if !read_all
                && let Some(slot) = index.entries.get_mut(id)
                && slot.stamp == Some(Stamp::of(&meta))
            {
                slot.seen = generation;
                continue;
            }
            // `loaded` marks the slot seen in this generation.
            match self.load_or_skip(id, Some(Stamp::of(&meta))) {
                None => {}
                Some((stamp, Ok(entry))) => {
                    index.loaded(id, stamp, Some(&entry));
                    if read_all {
                        entries.push(entry);
                    }
                }
                Some((stamp, Err(reason))) => {
                    let news = index.loaded(id, stamp, None);
                    if news || read_all {
                        tracing::warn!(queue_id = %id, error = %reason, "skipping corrupt queue envelope");
                    }
                }
            }
        }
        // Our own enqueues add to the index under its lock, after their
        // rename: one that got there before this scan was listed by it.
        index.entries.retain(|_, slot| slot.seen == generation);
        Ok(entries)
    }

    /// [`Inner::load`] for the scan and the claims: a file that cannot be
    /// read (permissions, I/O error) is treated like a corrupt one, logged
    /// and skipped under `stamp` (the version it was listed as), so that
    /// one bad file cannot stop every delivery. It is tried again when its
    /// stamp moves or the process restarts.
    fn load_or_skip(
        &self,
        id: &str,
        stamp: Option<Stamp>,
    ) -> Option<(Stamp, Result<QueueEntry, String>)> {
        match self.load(id) {
            Ok(loaded) => loaded,
            Err(e) => stamp.map(|stamp| (stamp, Err(format!("unreadable: {e}")))),
        }
    }

    /// Reads `env/<id>`: `None` when it does not exist, else the stamp of
    /// what was read and the entry or why it is corrupt.
    fn load(&self, id: &str) -> io::Result<Option<(Stamp, Result<QueueEntry, String>)>> {
        let mut file = match File::open(self.env_dir.join(id)) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let stamp = Stamp::of(&file.metadata()?);
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let parsed = String::from_utf8(bytes)
            .map_err(|_| "not UTF-8".to_string())
            .and_then(|text| envelope::parse(&text).map_err(|e| e.to_string()))
            .and_then(|entry| {
                if entry.id == id {
                    Ok(entry)
                } else {
                    Err(format!("holds id {:?}", entry.id))
                }
            });
        Ok(Some((stamp, parsed)))
    }

    /// Takes the exclusive per-entry lock (a `flock` on the message file)
    /// that orders an update against a remove in any process.
    /// [`StoreError::NoSuchMessage`] when the message is gone, or was
    /// removed while we waited for the lock.
    fn lock_entry(&self, id: &str) -> Result<EntryLock, StoreError> {
        let file = match File::open(self.msg_dir.join(id)) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::NoSuchMessage),
            Err(e) => return Err(StoreError::from_io(e)),
        };
        loop {
            match rustix::fs::flock(&file, FlockOperation::LockExclusive) {
                Ok(()) => break,
                // A signal interrupted the wait: wait again.
                Err(Errno::INTR) => continue,
                Err(e) => return Err(StoreError::from_io(e.into())),
            }
        }
        // A remove that held the lock before us unlinked the file we opened.
        if file.metadata().map_err(StoreError::from_io)?.nlink() == 0 {
            return Err(StoreError::NoSuchMessage);
        }
        Ok(EntryLock { _file: file })
    }

    /// Removes what crashed writers left behind (see the module doc). A
    /// file that cannot be removed is logged and left: debris must not
    /// keep the server from starting.
    fn sweep(&self) -> io::Result<()> {
        let now = SystemTime::now();
        let old = |meta: &fs::Metadata| {
            meta.modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age >= ORPHAN_AGE)
        };
        for dirent in fs::read_dir(&self.tmp_dir)? {
            let dirent = dirent?;
            if dirent.metadata().is_ok_and(|m| m.is_file() && old(&m)) {
                sweep_file(&dirent.path(), "stale queue tmp file");
            }
        }
        // Envelopes first: a message listed after them without one was
        // either orphaned or enqueued since, and its age tells which.
        let envelopes = files(&self.env_dir)?;
        let messages = files(&self.msg_dir)?;
        for id in messages.difference(&envelopes) {
            let path = self.msg_dir.join(id);
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            if old(&meta) && !exists(&self.env_dir.join(id))? {
                sweep_file(&path, "orphan queued message (no envelope)");
            }
        }
        // Re-checked one by one: a remove running in another process
        // unlinks the envelope first, so it cannot show up here.
        for id in envelopes.difference(&messages) {
            let env_path = self.env_dir.join(id);
            if exists(&env_path)? && !exists(&self.msg_dir.join(id))? {
                sweep_file(&env_path, "queue envelope without its message file");
            }
        }
        Ok(())
    }

    /// A fresh name in `tmp/`, unique among processes (pid) and within this
    /// one (counter).
    fn tmp_name(&self, id: &str, kind: &str) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        self.tmp_dir
            .join(format!("{id}.{}.{n}.{kind}", std::process::id()))
    }

    fn lock_index(&self) -> MutexGuard<'_, Index> {
        // A poisoned lock means a panic mid-update of the index; the index
        // is a cache that the next scan corrects, so go on.
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The in-memory index of `env/` (see the module doc).
#[derive(Default)]
struct Index {
    entries: HashMap<String, Slot>,
    /// Number of the current (or last) scan of `env/`; a slot not marked
    /// with it at the end of a scan names a file that is gone.
    generation: u64,
    /// When `claim_due` last looked at `env/`: real time, and the caller's
    /// `now`. `None`: never, so the first call loads every envelope.
    last_scan: Option<(Instant, i64)>,
    /// The stamp of `env/` before the last full scan, when it had been
    /// quiet long enough to be trusted, and when that scan ran (see
    /// [`Inner::refresh`]).
    settled_dir: Option<(DirStamp, Instant)>,
    /// Full scans run by `refresh`, for tests.
    #[cfg(test)]
    full_scans: u64,
}

impl Index {
    /// Records what was read from `env/<id>` (`None`: corrupt), keeping any
    /// claim. Returns true when this is news: another version of the file,
    /// or one that turned readable or unreadable (to log a corrupt file
    /// once, not at every scan).
    fn loaded(&mut self, id: &str, stamp: Stamp, entry: Option<&QueueEntry>) -> bool {
        let summary = entry.map(|e| Summary {
            created: e.created,
            held: e.held,
            next_attempt: e.next_attempt(),
        });
        let slot = self.entries.entry(id.to_string()).or_default();
        slot.seen = self.generation;
        let news = slot.stamp != Some(stamp) || slot.summary.is_some() != summary.is_some();
        slot.stamp = Some(stamp);
        slot.summary = summary;
        news
    }
}

/// One entry of the index.
#[derive(Default)]
struct Slot {
    /// The version of `env/<id>` that `summary` describes.
    stamp: Option<Stamp>,
    /// `None`: the file is corrupt (logged, never claimed).
    summary: Option<Summary>,
    /// Unix seconds (the caller's clock) until which a claim holds.
    claimed_until: Option<i64>,
    /// The scan generation that last saw the file (see [`Index`]).
    seen: u64,
}

impl Slot {
    fn claimable(&self, now: i64) -> bool {
        let Some(summary) = self.summary else {
            return false;
        };
        !summary.held
            && summary.next_attempt.is_some_and(|t| t <= now)
            && self.claimed_until.is_none_or(|t| t <= now)
    }
}

/// What `claim_due` needs from an envelope.
#[derive(Clone, Copy)]
struct Summary {
    created: i64,
    held: bool,
    /// `None` when no recipient is pending.
    next_attempt: Option<i64>,
}

/// Identifies one version of an envelope file. Every write is a new file
/// renamed into place, so a change shows as a new inode; size and mtime
/// (set when the file was written, kept by the rename) catch an inode
/// number reused for a later version. Taken with `fstat` on the file before
/// its rename, it matches what a later `stat` of the renamed file shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Self {
        Stamp {
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        }
    }
}

/// An open message file holding an exclusive `flock`; the kernel releases
/// it when this is dropped or the process dies (flock(2)).
struct EntryLock {
    _file: File,
}

/// Identifies one state of the `env/` directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirStamp {
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl DirStamp {
    fn of(meta: &fs::Metadata) -> Self {
        DirStamp {
            ino: meta.ino(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// True when the directory's last change lies at least [`SETTLE_SECS`]
    /// before `started`: any change after `started` then gets a later
    /// mtime, even with coarse (per-tick) file system timestamps, which a
    /// change in the same tick as the last one would not.
    fn settled_at(&self, started: SystemTime) -> bool {
        let started = started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.mtime.0.saturating_add(SETTLE_SECS) <= started
    }
}

/// Files a failed write leaves behind; removed on drop unless `done`.
#[derive(Default)]
struct Undo {
    paths: Vec<PathBuf>,
    done: bool,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        for path in &self.paths {
            if let Err(e) = fs::remove_file(path)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "could not undo a failed queue write");
            }
        }
    }
}

/// Creates `path` (it must not exist: `AlreadyExists` otherwise; mode
/// 0600), writes `parts`, fsyncs it, and returns its stamp. On any later
/// failure the file is removed again, so an error leaves nothing behind.
fn write_new(path: &Path, parts: &[&[u8]]) -> io::Result<Stamp> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let written = (|| {
        for part in parts {
            file.write_all(part)?;
        }
        // fdatasync: the data and the size needed to read it back; the
        // mtime read below is the one the page cache holds, which is what
        // stat shows.
        file.sync_data()?;
        Ok(Stamp::of(&file.metadata()?))
    })();
    if written.is_err() {
        let _ = fs::remove_file(path);
    }
    written
}

/// The regular files in `dir` whose names are valid ids.
fn files(dir: &Path) -> io::Result<HashSet<String>> {
    let mut out = HashSet::new();
    for dirent in fs::read_dir(dir)? {
        let dirent = dirent?;
        if let Ok(name) = dirent.file_name().into_string()
            && valid_queue_id(&name)
            && dirent.file_type()?.is_file()
        {
            out.insert(name);
        }
    }
    Ok(out)
}

/// Removes debris found by the sweep at open, logging what and why.
fn sweep_file(path: &Path, what: &str) {
    match fs::remove_file(path) {
        Ok(()) => tracing::warn!(path = %path.display(), "removed {what}"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "could not remove {what}"),
    }
}

fn exists(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Unlinks `path`; `Ok(false)` when it was not there.
fn remove_if_exists(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn join_error(e: tokio::task::JoinError) -> StoreError {
    StoreError::Io(io::Error::other(format!("queue task failed: {e}")))
}

fn context(e: io::Error, what: &str, path: &Path) -> StoreError {
    StoreError::Io(io::Error::new(
        e.kind(),
        format!("{what} {}: {e}", path.display()),
    ))
}

const QUEUE: &str = "queue";
const MSG: &str = "msg";
const ENV: &str = "env";
const TMP: &str = "tmp";
/// How old a file in `tmp/`, or a message without an envelope, must be
/// before `open` removes it: far longer than any enqueue takes, so one
/// still running in another process is never touched.
const ORPHAN_AGE: Duration = Duration::from_secs(3600);
/// The longest `claim_due` goes without looking for other processes'
/// changes (module doc: "within a second").
const SCAN_INTERVAL: Duration = Duration::from_secs(1);
/// The longest `claim_due` trusts an unchanged `env/` without a full scan.
const FULL_SCAN_INTERVAL: Duration = Duration::from_secs(60);
/// How long `env/` must have been unchanged before its stamp is trusted
/// (whole seconds: far above any file system's timestamp granularity).
const SETTLE_SECS: i64 = 2;

#[cfg(test)]
mod tests;
