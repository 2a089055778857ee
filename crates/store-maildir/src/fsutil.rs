//! Small file-system helpers: directory fsync, change detection by stat,
//! atomic replacement of small files, `flock` wrappers.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use mailroom_store::StoreError;
use rustix::fs::FlockOperation;
use rustix::io::Errno;

/// Makes the entries of directory `path` durable (POSIX: a rename or link
/// is only on disk once its directory is fsync'd).
pub fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Creates a directory (mode 0700: mail is private); `Ok(false)` when it
/// already exists.
pub(crate) fn mkdir(path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// What identifies one version of a file: a replacement by rename changes
/// the inode, an edit in place changes size or mtime/ctime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    fn of(meta: &fs::Metadata) -> Self {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// One version of a file that was read: its stamp, and the file kept open.
/// Keeping it open pins the inode: after the file is replaced by a rename,
/// its inode number cannot be reused for the next replacement (which could
/// have the same size and, with coarse timestamps, the same mtime), so a
/// changed file always shows a changed stamp.
#[derive(Debug)]
pub(crate) struct Version {
    stamp: FileStamp,
    _pin: File,
}

/// The stamp of `path`, `None` when it does not exist.
pub(crate) fn stamp(path: &Path) -> io::Result<Option<FileStamp>> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Some(FileStamp::of(&meta))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads a whole file, with the [`Version`] of exactly what was read (fstat
/// on the open file, so a replacement racing with us is seen next time).
/// `None` when the file does not exist.
pub(crate) fn read_with_stamp(path: &Path) -> io::Result<Option<(Version, Vec<u8>)>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let stamp = FileStamp::of(&file.metadata()?);
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(Some((Version { stamp, _pin: file }, bytes)))
}

/// Replaces `dir/name` with `contents` atomically: write `dir/.name.tmp`
/// (mode 0600), fsync, rename over. The caller fsyncs `dir` afterwards (once
/// for several files) and must hold the lock that serialises writers, since
/// the temporary name is fixed.
pub(crate) fn replace_file(dir: &Path, name: &str, contents: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    // A leftover from a crash may have other permissions; start afresh.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(name))
}

/// An open file holding a `flock`. The kernel drops the lock when the file
/// is closed (this value dropped) or the process dies, so no crash can leave
/// a stale lock behind (flock(2)).
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Opens (creating, mode 0600) `path` and locks it with `op`. A
    /// non-blocking `op` that finds the lock taken fails with
    /// `ErrorKind::WouldBlock`.
    pub(crate) fn acquire(path: &Path, op: FlockOperation) -> io::Result<FileLock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        loop {
            match rustix::fs::flock(&file, op) {
                Ok(()) => return Ok(FileLock { _file: file }),
                // A signal interrupted a blocking wait: wait again.
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A value derived from one file, re-derived when the file changes. One
/// stat per [`Cached::get`]; the loader runs only when the stamp moved.
pub(crate) struct Cached<T> {
    /// Held while loading, so concurrent callers wait for one reload
    /// instead of each reading the file. Only ever taken on blocking
    /// threads, never across an `.await`.
    slot: Mutex<Option<(Option<Version>, Arc<T>)>>,
}

impl<T> Cached<T> {
    /// An empty cache: the first `get` loads.
    pub(crate) fn new() -> Self {
        Cached {
            slot: Mutex::new(None),
        }
    }

    /// The value for `path` as it is now. `load` returns the value and the
    /// version of `path` it read (`None`: no file).
    pub(crate) fn get(
        &self,
        path: &Path,
        load: impl FnOnce() -> Result<(Option<Version>, T), StoreError>,
    ) -> Result<Arc<T>, StoreError> {
        let now = stamp(path).map_err(StoreError::from_io)?;
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((seen, value)) = &*slot
            && seen.as_ref().map(|v| v.stamp) == now
        {
            return Ok(Arc::clone(value));
        }
        let (seen, value) = load()?;
        let value = Arc::new(value);
        *slot = Some((seen, Arc::clone(&value)));
        Ok(value)
    }
}
