//! Delivery into Maildirs and POP3 access to them.

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use mailroom_store::{IncomingMessage, Maildrop, MessageBody, MessageInfo, StoreError};
use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use tokio::task::JoinHandle;

use crate::Inner;
use crate::fsutil::{FileLock, mkdir, sync_dir};
use crate::names;
use crate::readahead::ReadAhead;

/// Maildirs known to exist durably in this process (see [`Maildirs::ensure`]).
pub(crate) struct Maildirs {
    mail_dir: PathBuf,
    known: Mutex<HashSet<String>>,
    /// Serialises creation, so a second delivery to a brand-new user cannot
    /// see the directories before the first has made them durable.
    creating: Mutex<()>,
}

impl Maildirs {
    pub(crate) fn new(mail_dir: PathBuf) -> Self {
        Maildirs {
            mail_dir,
            known: Mutex::new(HashSet::new()),
            creating: Mutex::new(()),
        }
    }

    /// `mail/NAME`, with `tmp/`, `new/`, `cur/` created if missing. The
    /// first time this process meets a maildir, its directory and `mail/`
    /// are fsync'd even when nothing was created: another process may have
    /// created them and died before syncing, and we must not acknowledge
    /// mail into a directory that a power cut could still take away.
    pub(crate) fn ensure(&self, name: &str) -> io::Result<PathBuf> {
        let root = self.mail_dir.join(name);
        if lock(&self.known).contains(name) {
            return Ok(root);
        }
        let _creating = lock(&self.creating);
        if lock(&self.known).contains(name) {
            return Ok(root);
        }
        // mail/ itself too: an operator may have removed it while we ran.
        mkdir(&self.mail_dir)?;
        mkdir(&root)?;
        for sub in [TMP, NEW, CUR] {
            mkdir(&root.join(sub))?;
        }
        sync_dir(&root)?;
        sync_dir(&self.mail_dir)?;
        lock(&self.known).insert(name.to_string());
        Ok(root)
    }

    /// Forgets what [`Maildirs::ensure`] learnt, after an operation found a
    /// maildir missing (an operator removed it while we ran).
    pub(crate) fn forget(&self, names: &[String]) {
        let mut known = lock(&self.known);
        for name in names {
            known.remove(name);
        }
    }
}

/// Delivers `message` to every maildir in `names` (canonical, existing
/// users, deduplicated). Returns only once every copy is durable; on error
/// removes everything it wrote.
pub(crate) fn deliver(
    inner: &Inner,
    names: &[String],
    message: &IncomingMessage,
) -> io::Result<()> {
    match deliver_once(inner, names, message) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // A maildir vanished since we last checked: re-create, retry once.
            inner.maildirs.forget(names);
            deliver_once(inner, names, message)
        }
        other => other,
    }
}

fn deliver_once(inner: &Inner, names: &[String], message: &IncomingMessage) -> io::Result<()> {
    let roots = names
        .iter()
        .map(|n| inner.maildirs.ensure(n))
        .collect::<io::Result<Vec<_>>>()?;
    let Some(first) = roots.first() else {
        return Ok(());
    };
    let name = names::unique(&inner.host, message.len());
    let mut undo = Undo::default();

    // Maildir spec: write into tmp/, fsync, then link into new/. The message
    // is written once; every other recipient gets a hard link to the same
    // inode (one write, one file fsync, however many recipients).
    let source = first.join(TMP).join(&name);
    write_message(&source, message, &mut undo)?;
    if let [only] = roots.as_slice() {
        // One recipient (the common case): a rename moves the file into
        // new/ in one metadata operation instead of link + unlink.
        let dest = only.join(NEW).join(&name);
        fs::rename(&source, &dest)?;
        undo.tmp.clear();
        undo.linked.push(dest);
        inner.syncer.sync(&only.join(NEW))?;
        undo.commit();
        return Ok(());
    }
    for root in &roots {
        let dest = root.join(NEW).join(&name);
        match fs::hard_link(&source, &dest) {
            Ok(()) => {}
            // This maildir is on another file system (a symlinked home):
            // it gets its own copy, written and fsync'd the same way.
            Err(e) if e.raw_os_error() == Some(Errno::XDEV.raw_os_error()) => {
                let copy = root.join(TMP).join(&name);
                write_message(&copy, message, &mut undo)?;
                fs::hard_link(&copy, &dest)?;
            }
            Err(e) => return Err(e),
        }
        undo.linked.push(dest);
    }
    // The links exist but are not durable until each new/ is fsync'd. Only
    // after that may the caller send its 250 (RFC 5321 §4.1.1.4 / §6.1:
    // once accepted, the message must not be lost).
    for root in &roots {
        inner.syncer.sync(&root.join(NEW))?;
    }
    // Durable. The tmp/ names are now redundant: unlink them without an
    // fsync of tmp/. If a crash loses the unlink, a complete duplicate
    // stays in tmp/, which no reader lists and the 36-hour sweep removes;
    // the copy in new/ is already safe either way.
    for tmp in undo.commit() {
        if let Err(e) = fs::remove_file(&tmp) {
            tracing::debug!(path = %tmp.display(), error = %e, "could not remove delivered tmp file");
        }
    }
    Ok(())
}

/// Creates `path` (it must not exist), writes the message, fsyncs it.
fn write_message(path: &Path, message: &IncomingMessage, undo: &mut Undo) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    undo.tmp.push(path.to_path_buf());
    file.write_all(&message.prefix)?;
    file.write_all(&message.body)?;
    // fdatasync is enough: it also writes the size and block metadata
    // needed to read the data back (fdatasync(2)); mtime is not needed.
    file.sync_data()
}

/// What a delivery has written so far; dropped before [`Undo::commit`] (an
/// error, or a panic unwinding) it removes all of it, so no user is left
/// with a copy of a delivery that failed, and tmp/ holds no debris.
#[derive(Default)]
struct Undo {
    tmp: Vec<PathBuf>,
    linked: Vec<PathBuf>,
    done: bool,
}

impl Undo {
    /// The delivery succeeded: keep the links; returns the tmp files.
    fn commit(mut self) -> Vec<PathBuf> {
        self.done = true;
        std::mem::take(&mut self.tmp)
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        for path in self.linked.iter().chain(&self.tmp) {
            if let Err(e) = fs::remove_file(path)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "could not undo a failed delivery");
            }
        }
    }
}

/// One message of an open maildrop.
#[derive(Debug)]
struct Listed {
    /// The subdirectory it was in when listed.
    sub: &'static str,
    /// Its name there. Only the name is kept (the path is built when
    /// needed): a listing of 10,000 messages stays around a megabyte.
    file_name: Box<[u8]>,
    /// The length of its base name (see [`names::NameInfo::base`]), a
    /// prefix of the name, to find it again if another agent moves it from
    /// new/ to cur/ meanwhile.
    base_len: usize,
    /// The same base under another name: a move between new/ and cur/
    /// caught half-way (link, then unlink). Deleted together with it.
    twins: Vec<PathBuf>,
    /// Sort key: the name's leading seconds (unparsable last), its
    /// microseconds, then the file name.
    secs: u64,
    micros: u32,
    /// From `,S=`, when the name carries it.
    size: Option<u64>,
}

impl Listed {
    fn base(&self) -> &[u8] {
        &self.file_name[..self.base_len]
    }

    /// Where it was when listed, in the maildir at `root`.
    fn path(&self, root: &Path) -> PathBuf {
        root.join(self.sub).join(OsStr::from_bytes(&self.file_name))
    }
}

/// An open, locked maildrop.
pub(crate) struct MaildirDrop {
    inner: Arc<Inner>,
    root: PathBuf,
    /// Shared with the background reads, which open messages by name
    /// relative to `dirs`.
    listed: Arc<[Listed]>,
    dirs: Arc<SubDirs>,
    infos: Vec<MessageInfo>,
    /// Held for the session; closing it releases the lock.
    lock: FileLock,
    ahead: Mutex<ReadAhead>,
    /// Messages being read in the background (see readahead.rs).
    prefetch: Mutex<Option<Prefetch>>,
}

/// new/ and cur/, open: a message is opened by its name in one of them, a
/// one-component lookup instead of a walk of the maildir's whole path.
struct SubDirs {
    new: OwnedFd,
    cur: OwnedFd,
}

impl SubDirs {
    fn open(root: &Path) -> io::Result<SubDirs> {
        let dir = |sub: &str| {
            rustix::fs::open(
                root.join(sub),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io::Error::from)
        };
        Ok(SubDirs {
            new: dir(NEW)?,
            cur: dir(CUR)?,
        })
    }

    /// Opens the message `entry` names, where it was listed (not following
    /// a symbolic link, see [`open_nofollow`]).
    /// Message `entry` read whole from the page cache, without waiting for
    /// the disk (RWF_NOWAIT): `None` when any of it is not cached, when it
    /// has moved, or on any error (the caller reads it the ordinary way).
    fn read_cached(&self, entry: &Listed) -> Option<Vec<u8>> {
        let size = usize::try_from(entry.size?).ok()?;
        let file = self.open_message(entry).ok()?;
        // One octet more than expected, to see that the file is not longer.
        let mut bytes = vec![0u8; size + 1];
        let n = rustix::io::preadv2(
            &file,
            &mut [io::IoSliceMut::new(&mut bytes)],
            0,
            rustix::io::ReadWriteFlags::NOWAIT,
        )
        .ok()?;
        (n == size).then(|| {
            bytes.truncate(n);
            bytes
        })
    }

    fn open_message(&self, entry: &Listed) -> io::Result<fs::File> {
        let dir = if entry.sub == NEW {
            &self.new
        } else {
            &self.cur
        };
        let fd = rustix::fs::openat(
            dir,
            &*entry.file_name,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )?;
        Ok(fs::File::from(fd))
    }
}

/// Opens a message file for reading. Messages are regular files: a
/// symbolic link in a maildir is not followed (it could point at anything
/// the server may read), the open fails instead.
fn open_nofollow(path: &Path) -> io::Result<fs::File> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )?;
    Ok(fs::File::from(fd))
}

/// A background read of the messages at `indices`, in order.
struct Prefetch {
    indices: Vec<usize>,
    reading: JoinHandle<Vec<(usize, io::Result<Vec<u8>>)>>,
}

/// Opens and locks `mail/NAME` for a POP3 session.
pub(crate) fn open_maildrop(inner: Arc<Inner>, name: String) -> Result<MaildirDrop, StoreError> {
    let names = [name];
    let opened = match open_once(&inner, &names[0]) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            inner.maildirs.forget(&names);
            open_once(&inner, &names[0])
        }
        other => other,
    };
    let (root, lock) = opened.map_err(|e| {
        if e.kind() == io::ErrorKind::WouldBlock {
            StoreError::Locked
        } else {
            StoreError::from_io(e)
        }
    })?;
    sweep_tmp(&root.join(TMP), SystemTime::now());
    let mut listed = list(&root).map_err(StoreError::from_io)?;
    // Oldest first: POP3 clients expect message 1 to be the oldest.
    listed.sort_by(|a, b| (a.secs, a.micros, &a.file_name).cmp(&(b.secs, b.micros, &b.file_name)));
    let mut infos = Vec::with_capacity(listed.len());
    // For files without S= only: one read buffer for all of them.
    let mut buf = Vec::new();
    let mut keep = Vec::with_capacity(listed.len());
    for entry in listed {
        let size = match entry.size {
            Some(size) => size,
            // No S= in the name: another agent wrote it, perhaps with LF
            // line ends; read it once to count what POP3 will send.
            None => match open_nofollow(&entry.path(&root)).and_then(|f| wire_size(f, &mut buf)) {
                Ok(size) => size,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::from_io(e)),
            },
        };
        infos.push(MessageInfo {
            uid: names::uid(entry.base()),
            size,
        });
        keep.push(entry);
    }
    let dirs = Arc::new(SubDirs::open(&root).map_err(StoreError::from_io)?);
    Ok(MaildirDrop {
        inner,
        root,
        listed: keep.into(),
        dirs,
        infos,
        lock,
        ahead: Mutex::new(ReadAhead::default()),
        prefetch: Mutex::new(None),
    })
}

fn open_once(inner: &Inner, name: &str) -> io::Result<(PathBuf, FileLock)> {
    let root = inner.maildirs.ensure(name)?;
    // flock is per open file description, so a second session in this very
    // process is refused like one in another process; the kernel releases
    // it when the holder closes the file or dies, so a crashed server never
    // locks a user out.
    let lock = FileLock::acquire(&root.join(LOCK), FlockOperation::NonBlockingLockExclusive)?;
    Ok((root, lock))
}

/// Lists `new/` then `cur/` from names alone: no open, no stat (sizes come
/// from `,S=`). Dotfiles are skipped (Maildir spec: readers ignore them).
fn list(root: &Path) -> io::Result<Vec<Listed>> {
    let mut all: Vec<Listed> = Vec::new();
    for sub in [NEW, CUR] {
        for entry in fs::read_dir(root.join(sub))? {
            let entry = entry?;
            let file_name = entry.file_name();
            let bytes = file_name.as_bytes();
            if bytes.starts_with(b".") {
                continue;
            }
            let info = names::parse(bytes);
            all.push(Listed {
                sub,
                base_len: info.base.len(),
                secs: info.secs.unwrap_or(u64::MAX),
                micros: names::micros(info.base),
                size: info.size,
                file_name: bytes.into(),
                twins: Vec::new(),
            });
        }
    }
    // One message per base: the first listed (new/ before cur/; the sort
    // is stable) stands for it, any other is its twin.
    all.sort_by(|a, b| a.base().cmp(b.base()));
    let mut out: Vec<Listed> = Vec::with_capacity(all.len());
    for entry in all {
        match out.last_mut() {
            Some(kept) if kept.base() == entry.base() => kept.twins.push(entry.path(root)),
            _ => out.push(entry),
        }
    }
    Ok(out)
}

/// Finds the current name of the message with `base`, after it moved.
fn relocate(root: &Path, base: &[u8]) -> Option<PathBuf> {
    for sub in [NEW, CUR] {
        for entry in fs::read_dir(root.join(sub)).ok()?.flatten() {
            if names::parse(entry.file_name().as_bytes()).base == base {
                return Some(entry.path());
            }
        }
    }
    None
}

/// Maildir spec: "When you look through a tmp directory, you should delete
/// any file not accessed in the last 36 hours." Access time is unreliable
/// (relatime, noatime), so the newest of atime and mtime counts. Errors
/// are logged: a sweep never fails the session.
fn sweep_tmp(tmp: &Path, now: SystemTime) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let newest = [meta.modified().ok(), meta.accessed().ok()]
            .into_iter()
            .flatten()
            .max();
        let stale = newest
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > STALE_TMP);
        if stale {
            let path = entry.path();
            match fs::remove_file(&path) {
                Ok(()) => tracing::info!(path = %path.display(), "removed stale tmp file"),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove stale tmp file")
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Maildrop for MaildirDrop {
    fn messages(&self) -> &[MessageInfo] {
        &self.infos
    }

    async fn open(&self, index: usize) -> Result<MessageBody, StoreError> {
        let entry = self.listed.get(index).ok_or(StoreError::NoSuchMessage)?;
        // A background read that is done, or holds this message: its
        // messages join the held ones.
        let landed = {
            let mut prefetch = lock(&self.prefetch);
            let wanted = prefetch
                .as_ref()
                .is_some_and(|p| p.reading.is_finished() || p.indices.contains(&index));
            if wanted { prefetch.take() } else { None }
        };
        if let Some(landed) = landed {
            let read = landed.reading.await.map_err(join_error)?;
            lock(&self.ahead).hold(
                read.into_iter()
                    .map_while(|(i, result)| Some((i, result.ok()?))),
            );
        }
        let held = lock(&self.ahead).take(index);
        if let Some(bytes) = held {
            self.refill();
            return Ok(MessageBody::Whole(bytes));
        }
        // Out of order: what is being read ahead is not wanted.
        *lock(&self.prefetch) = None;
        // Most messages are small: read them whole in one trip to the
        // blocking pool instead of one trip per open and per read (a
        // tokio::fs::File), which dominated RETR time, together with the
        // next ones when the client reads in order (see readahead.rs).
        // Big ones stream.
        if entry.size.is_some_and(|size| size <= WHOLE_READ_LIMIT) {
            let plan = lock(&self.ahead).plan(index, |i| self.whole_size(i));
            let read = self.read_whole(&plan).await.map_err(join_error)?;
            let mut read = read.into_iter();
            let first = read.next().map(|(_, result)| result);
            // A message read ahead that has moved is found again when asked
            // for: stop holding at the first that failed.
            lock(&self.ahead).hold(read.map_while(|(i, result)| Some((i, result.ok()?))));
            match first {
                Some(Ok(bytes)) => return Ok(MessageBody::Whole(bytes)),
                Some(Err(e)) if e.kind() == io::ErrorKind::NotFound => {}
                Some(Err(e)) => return Err(StoreError::from_io(e)),
                None => return Err(StoreError::NoSuchMessage),
            }
        } else {
            let (listed, dirs) = (Arc::clone(&self.listed), Arc::clone(&self.dirs));
            let opened = tokio::task::spawn_blocking(move || dirs.open_message(&listed[index]))
                .await
                .map_err(join_error)?;
            match opened {
                Ok(file) => {
                    return Ok(MessageBody::Stream(Box::new(tokio::fs::File::from_std(
                        file,
                    ))));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::from_io(e)),
            }
        }
        // Moved (new/ → cur/, flags changed) by another agent, or deleted.
        let root = self.root.clone();
        let base = entry.base().to_vec();
        let found = tokio::task::spawn_blocking(move || relocate(&root, &base))
            .await
            .map_err(join_error)?;
        let path = found.ok_or(StoreError::NoSuchMessage)?;
        let opened = tokio::task::spawn_blocking(move || open_nofollow(&path))
            .await
            .map_err(join_error)?;
        match opened {
            Ok(file) => Ok(MessageBody::Stream(Box::new(tokio::fs::File::from_std(
                file,
            )))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NoSuchMessage),
            Err(e) => Err(StoreError::from_io(e)),
        }
    }

    fn idle(&self) {
        // Not while a background read is under way: it holds the next ones.
        let prefetch = lock(&self.prefetch);
        if prefetch.is_some() {
            return;
        }
        let mut ahead = lock(&self.ahead);
        for i in ahead.top_up(IDLE_READS, |i| self.whole_size(i)) {
            let Some(entry) = self.listed.get(i) else {
                break;
            };
            match self.dirs.read_cached(entry) {
                Some(bytes) => ahead.hold([(i, bytes)]),
                // Not all in the page cache (or moved): left to open().
                None => break,
            }
        }
    }

    async fn commit(self: Box<Self>, indices: &[usize]) -> Result<(), StoreError> {
        let wanted: BTreeSet<usize> = indices.iter().copied().collect();
        if wanted.iter().any(|&i| i >= self.listed.len()) {
            return Err(StoreError::NoSuchMessage);
        }
        tokio::task::spawn_blocking(move || self.delete(&wanted))
            .await
            .map_err(join_error)?
    }
}

impl MaildirDrop {
    /// Starts reading the next messages in the background when the reader
    /// goes in order and what is held runs low, unless a read is under way.
    fn refill(&self) {
        let mut prefetch = lock(&self.prefetch);
        if prefetch.is_some() {
            return;
        }
        let Some(indices) = lock(&self.ahead).refill(|i| self.whole_size(i)) else {
            return;
        };
        let reading = self.read_whole(&indices);
        *prefetch = Some(Prefetch { indices, reading });
    }

    /// Reads the messages at `indices` whole, in order, in one trip to the
    /// blocking pool.
    fn read_whole(&self, indices: &[usize]) -> JoinHandle<Vec<(usize, io::Result<Vec<u8>>)>> {
        let listed = Arc::clone(&self.listed);
        let dirs = Arc::clone(&self.dirs);
        let indices = indices.to_vec();
        tokio::task::spawn_blocking(move || {
            indices
                .into_iter()
                .filter_map(|i| {
                    let entry = listed.get(i)?;
                    let size = entry.size?;
                    Some((
                        i,
                        dirs.open_message(entry).and_then(|f| read_sized(f, size)),
                    ))
                })
                .collect()
        })
    }

    /// Message `index`'s size when it is small enough to read whole.
    fn whole_size(&self, index: usize) -> Option<u64> {
        self.listed
            .get(index)?
            .size
            .filter(|&size| size <= WHOLE_READ_LIMIT)
    }

    /// Unlinks the messages, fsyncs new/ and cur/, then releases the lock
    /// (by consuming `self`): the next session must not list a message the
    /// client was told is deleted (RFC 1939 §6, UPDATE state).
    fn delete(self, wanted: &BTreeSet<usize>) -> Result<(), StoreError> {
        let mut first_error = None;
        for &i in wanted {
            let Some(entry) = self.listed.get(i) else {
                continue;
            };
            let primary = match fs::remove_file(entry.path(&self.root)) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Moved since listing: delete it under its new name. Gone
                    // altogether (another agent deleted it) is fine.
                    match relocate(&self.root, entry.base()) {
                        Some(path) => fs::remove_file(path),
                        None => Ok(()),
                    }
                }
                other => other,
            };
            let twins = entry.twins.iter().map(fs::remove_file);
            for result in std::iter::once(primary).chain(twins) {
                match result {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        if !wanted.is_empty() {
            // Even after an error, make what was deleted durable.
            for sub in [NEW, CUR] {
                if let Err(e) = self.inner.syncer.sync(&self.root.join(sub)) {
                    first_error.get_or_insert(e);
                }
            }
        }
        drop(self.lock);
        match first_error {
            Some(e) => Err(StoreError::from_io(e)),
            None => Ok(()),
        }
    }
}

/// Reads a whole file whose name told its size: one read of `size + 1`
/// octets returns exactly `size` when the name is right (a regular file
/// gives everything up to its end in one read), which saves the `statx` and
/// the read that only sees the end in `fs::read`. Any other count means the
/// name is wrong or the read was short: read on to the end.
/// The octets POP3 sends for a file whose line ends may be LF or CR alone
/// (another agent's): every line end counts as CRLF, as RFC 1939 §10 asks,
/// and a last line without one gains it, as RETR sends them (the POP3
/// encoder repairs both).
fn wire_size(mut file: fs::File, buf: &mut Vec<u8>) -> io::Result<u64> {
    use std::io::Read;
    buf.resize(64 * 1024, 0);
    let (mut size, mut after_cr, mut last) = (0u64, false, None);
    loop {
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for &b in &buf[..n] {
            // A CR counts 1 when it comes; its LF, 1 more whether it follows
            // or is added. A bare LF counts 2.
            size += match (b, after_cr) {
                (b'\n', true) => 1,
                (b'\n', false) => 2,
                (_, true) => 2,
                (_, false) => 1,
            };
            after_cr = b == b'\r';
        }
        last = buf[..n].last().copied();
    }
    if after_cr {
        size += 1;
    } else if last.is_some_and(|b| b != b'\n') {
        size += 2;
    }
    Ok(size)
}

fn read_sized(mut file: fs::File, size: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let want = usize::try_from(size)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    // Read into uninitialised capacity: nothing zeroes the buffer first.
    let mut bytes = Vec::with_capacity(want);
    let n = loop {
        match rustix::io::read(&file, rustix::buffer::spare_capacity(&mut bytes)) {
            Ok(n) => break n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    if u64::try_from(n).ok() != Some(size) {
        file.read_to_end(&mut bytes)?;
    }
    Ok(bytes)
}

pub(crate) fn join_error(e: tokio::task::JoinError) -> StoreError {
    StoreError::Io(io::Error::other(format!("store task failed: {e}")))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Messages a session reads from the page cache each time it goes idle
/// (see [`Maildrop::idle`]): one reply's worth of reading ahead.
const IDLE_READS: usize = 2;

pub(crate) const TMP: &str = "tmp";
pub(crate) const NEW: &str = "new";
pub(crate) const CUR: &str = "cur";
/// The POP3 session lock inside each maildir (a dotfile: Maildir readers
/// such as mutt and Dovecot ignore it).
pub(crate) const LOCK: &str = ".pop3.lock";
/// Maildir spec: tmp/ files untouched for 36 hours are debris.
const STALE_TMP: Duration = Duration::from_secs(36 * 3600);

/// Messages up to this size are read whole for RETR (see `open`).
const WHOLE_READ_LIMIT: u64 = 256 * 1024;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod read_sized_tests {
    use super::{read_sized, wire_size};

    #[test]
    fn wire_sizes_count_every_line_end_as_crlf() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        for (content, wire) in [
            (&b""[..], &b""[..]),
            (b"a\r\n", b"a\r\n"),
            (b"a\n", b"a\r\n"),
            (b"a\rb", b"a\r\nb\r\n"),
            (b"a\r", b"a\r\n"),
            (b"a", b"a\r\n"),
            (b"a\r\r\n\n", b"a\r\n\r\n\r\n"),
            (
                b"Subject: lf\n\nline1\n.dotline\nend\n",
                b"Subject: lf\r\n\r\nline1\r\n.dotline\r\nend\r\n",
            ),
        ] {
            std::fs::write(&path, content).unwrap();
            let size = wire_size(std::fs::File::open(&path).unwrap(), &mut Vec::new()).unwrap();
            assert_eq!(
                size,
                wire.len() as u64,
                "{:?}",
                String::from_utf8_lossy(content)
            );
        }
    }

    #[test]
    fn reads_the_whole_file_whatever_the_name_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        let content: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        for claimed in [0, 1, 4999, 5000, 5001, 100_000] {
            assert_eq!(
                read_sized(std::fs::File::open(&path).unwrap(), claimed).unwrap(),
                content,
                "{claimed}"
            );
        }
    }
}
