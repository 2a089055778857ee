//! Brute-force protection for every login path (SMTP AUTH, POP3 USER/PASS,
//! APOP, AUTH): failures are counted per client address and per user name;
//! each failure is answered after a delay that grows with the count, and an
//! address with too many recent failures is refused outright for a while.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Failures within this window count together.
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures from one address (or against one user) before it is blocked.
const BLOCK_AFTER: u32 = 10;
/// Entries kept before old ones are pruned (memory stays bounded under a flood).
const MAX_ENTRIES: usize = 100_000;

/// Shared failure counters. A std mutex: only map updates happen under it.
pub(crate) struct LoginGuard {
    /// Nanoseconds; an atomic so a reload (SIGHUP) can change it.
    base_delay: AtomicU64,
    counts: Mutex<HashMap<Key, Entry>>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    User(String),
}

struct Entry {
    failures: u32,
    last: Instant,
}

impl LoginGuard {
    pub(crate) fn new(base_delay: Duration) -> Self {
        LoginGuard {
            base_delay: AtomicU64::new(nanos(base_delay)),
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// The delay of a first failure from now on (counters are kept).
    pub(crate) fn set_base_delay(&self, base_delay: Duration) {
        self.base_delay.store(nanos(base_delay), Ordering::Relaxed);
    }

    /// True when `ip` has failed too often recently: refuse without checking.
    pub(crate) fn is_blocked(&self, ip: IpAddr) -> bool {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts
            .get(&Key::Ip(ip))
            .is_some_and(|e| e.failures >= BLOCK_AFTER && e.last.elapsed() < WINDOW)
    }

    /// Records a failure and returns how long to wait before answering:
    /// the base delay doubled per earlier failure, capped at 16x.
    pub(crate) fn failure(&self, ip: IpAddr, user: &str) -> Duration {
        let now = Instant::now();
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.len() >= MAX_ENTRIES {
            counts.retain(|_, e| now.duration_since(e.last) < WINDOW);
        }
        let mut worst = 0;
        for key in [Key::Ip(ip), Key::User(user.to_lowercase())] {
            let entry = counts.entry(key).or_insert(Entry {
                failures: 0,
                last: now,
            });
            if now.duration_since(entry.last) >= WINDOW {
                entry.failures = 0;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last = now;
            worst = worst.max(entry.failures);
        }
        Duration::from_nanos(self.base_delay.load(Ordering::Relaxed))
            * (1u32 << (worst.saturating_sub(1)).min(4))
    }

    /// A successful login clears the address's and the user's counters.
    pub(crate) fn success(&self, ip: IpAddr, user: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.remove(&Key::Ip(ip));
        counts.remove(&Key::User(user.to_lowercase()));
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_block() {
        let guard = LoginGuard::new(Duration::from_millis(10));
        let ip: IpAddr = [192, 0, 2, 7].into();
        let delays: Vec<_> = (0..6)
            .map(|_| guard.failure(ip, "alice").as_millis())
            .collect();
        assert_eq!(delays, vec![10, 20, 40, 80, 160, 160]);
        assert!(!guard.is_blocked(ip));
        for _ in 0..4 {
            guard.failure(ip, "bob");
        }
        assert!(guard.is_blocked(ip));
        guard.success(ip, "alice");
        assert!(!guard.is_blocked(ip));
        // Another address trying the same user is delayed too (per-user count).
        let other: IpAddr = [192, 0, 2, 8].into();
        assert_eq!(guard.failure(other, "ALICE").as_millis(), 10);
    }
}
