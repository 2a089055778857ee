//! Connection limits: in total and per client address. A connection over a
//! limit is answered `421 4.7.0` and closed by the listener.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Counts open connections. A plain mutex: it is held for a map update only,
/// never across an await.
pub(crate) struct ConnectionLimits {
    // Atomics: a reload (SIGHUP) changes the caps while listeners run;
    // connections already open above a lowered cap are left alone.
    max_total: AtomicUsize,
    max_per_ip: AtomicUsize,
    open: Arc<Mutex<Counts>>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Held by a session; releases its slot on drop.
pub(crate) struct ConnectionSlot {
    ip: IpAddr,
    open: Arc<Mutex<Counts>>,
}

impl ConnectionLimits {
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Self {
        ConnectionLimits {
            max_total: AtomicUsize::new(max_total),
            max_per_ip: AtomicUsize::new(max_per_ip),
            open: Arc::default(),
        }
    }

    /// New caps for connections accepted from now on.
    pub(crate) fn set(&self, max_total: usize, max_per_ip: usize) {
        self.max_total.store(max_total, Ordering::Relaxed);
        self.max_per_ip.store(max_per_ip, Ordering::Relaxed);
    }

    /// A slot for a new connection from `ip`, or `None` when a limit is reached.
    pub(crate) fn acquire(&self, ip: IpAddr) -> Option<ConnectionSlot> {
        let mut counts = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if counts.total >= self.max_total.load(Ordering::Relaxed) {
            return None;
        }
        let per_ip = counts.per_ip.entry(ip).or_insert(0);
        if *per_ip >= self.max_per_ip.load(Ordering::Relaxed) {
            return None;
        }
        *per_ip += 1;
        counts.total += 1;
        Some(ConnectionSlot {
            ip,
            open: self.open.clone(),
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.open.lock().unwrap_or_else(|p| p.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_and_total_limits() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let s1 = limits.acquire(a);
        let s2 = limits.acquire(a);
        assert!(s1.is_some() && s2.is_some());
        assert!(limits.acquire(a).is_none(), "third from one ip");
        let s3 = limits.acquire(b);
        assert!(s3.is_some());
        assert!(limits.acquire(b).is_none(), "total reached");
        drop(s1);
        assert!(limits.acquire(a).is_some(), "slot freed on drop");
        limits.set(10, 3);
        assert!(limits.acquire(a).is_some(), "raised cap applies at once");
    }
}
