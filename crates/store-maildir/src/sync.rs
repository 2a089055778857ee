//! Group commit for directory fsyncs.
//!
//! A delivery is durable once its file is fsync'd and the directory entry
//! that names it is too (fsync of `new/`). Under load many deliveries link
//! into the same `new/` at once; one directory fsync makes every entry that
//! existed when it *started* durable, so they can share it.
//!
//! Each directory has a generation counter. A caller that has finished its
//! link (or unlink) notes `need = started + 1`: the first fsync to start
//! after that moment. Any fsync already running may have started before
//! the link, so it does not count. If no fsync is running, the caller runs
//! one itself; otherwise it waits. When fsync number `g` completes, every
//! waiter with `need <= g` is covered. fsyncs on one directory never
//! overlap, so at most one is in flight and one is queued behind it: with N
//! concurrent deliveries the directory costs about two fsyncs, not N.
//!
//! Failure: after a failed fsync the kernel may report a later one as
//! successful although the earlier data was lost (the 2018 "fsyncgate"
//! discussion), so a waiter fails if any fsync numbered `need` or later
//! has failed; it never reports success on a generation that failed.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::fsutil::sync_dir;

/// Directory fsyncs shared between concurrent callers (see the module doc).
#[derive(Default)]
pub(crate) struct DirSyncer {
    /// One entry per directory ever synced (a few per user); never pruned,
    /// as it is small and bounded by the number of maildirs.
    dirs: Mutex<HashMap<PathBuf, Arc<DirState>>>,
    /// Calls to [`DirSyncer::sync`] and fsyncs actually run: their ratio
    /// shows how much group commit saves (reported by the benchmark test).
    requests: AtomicU64,
    fsyncs: AtomicU64,
}

#[derive(Default)]
struct DirState {
    generations: Mutex<Generations>,
    done: Condvar,
}

#[derive(Default)]
struct Generations {
    /// Number of the last fsync started.
    started: u64,
    /// Number of the last fsync finished (the one started just before it
    /// is always finished too: they run one at a time).
    completed: u64,
    running: bool,
    /// Number of the last fsync that failed, with its error; 0 = none.
    failed: u64,
    error: Option<(io::ErrorKind, String)>,
}

impl DirSyncer {
    /// Returns once an fsync of `dir` that started after this call has
    /// succeeded: every change the caller made in `dir` before calling is
    /// durable.
    pub(crate) fn sync(&self, dir: &Path) -> io::Result<()> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let state = self.state(dir);
        let mut generations = lock(&state.generations);
        let need = generations.started + 1;
        loop {
            if generations.completed >= need {
                if generations.failed >= need {
                    let (kind, text) = generations
                        .error
                        .clone()
                        .unwrap_or((io::ErrorKind::Other, String::new()));
                    return Err(io::Error::new(
                        kind,
                        format!("fsync of {}: {text}", dir.display()),
                    ));
                }
                return Ok(());
            }
            if generations.running {
                generations = state
                    .done
                    .wait(generations)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            generations.running = true;
            generations.started += 1;
            let mine = generations.started;
            drop(generations);
            // The directory is opened afresh each time: a cached descriptor
            // would keep syncing a directory that was removed and
            // re-created under the same name.
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
            let result = sync_dir(dir);
            generations = lock(&state.generations);
            generations.running = false;
            generations.completed = mine;
            if let Err(e) = result {
                generations.failed = mine;
                generations.error = Some((e.kind(), e.to_string()));
            }
            state.done.notify_all();
        }
    }

    /// `(sync requests, fsyncs run)` since creation.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.fsyncs.load(Ordering::Relaxed),
        )
    }

    fn state(&self, dir: &Path) -> Arc<DirState> {
        let mut dirs = lock(&self.dirs);
        match dirs.get(dir) {
            Some(s) => Arc::clone(s),
            None => {
                let s = Arc::new(DirState::default());
                dirs.insert(dir.to_path_buf(), Arc::clone(&s));
                s
            }
        }
    }
}

/// A poisoned lock only means another thread panicked while holding it; the
/// counters stay consistent (each update is a plain assignment), so go on.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_syncs_all_return_ok() {
        let dir = std::env::temp_dir();
        let syncer = Arc::new(DirSyncer::default());
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let syncer = Arc::clone(&syncer);
                let dir = dir.clone();
                std::thread::spawn(move || (0..20).all(|_| syncer.sync(&dir).is_ok()))
            })
            .collect();
        for t in threads {
            assert!(matches!(t.join(), Ok(true)));
        }
        let state = syncer.state(&dir);
        let generations = lock(&state.generations);
        // Shared: fewer fsyncs than calls (320), never more.
        assert!(generations.started <= 320 && generations.completed == generations.started);
    }

    #[test]
    fn a_failed_sync_is_reported() {
        let syncer = DirSyncer::default();
        let missing = std::env::temp_dir().join("mailroom-no-such-dir-for-sync-test");
        assert!(syncer.sync(&missing).is_err());
        assert!(syncer.sync(&missing).is_err());
    }
}
