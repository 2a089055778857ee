//! DNS answers kept for their TTL (`mail-auth` tells us when each expires),
//! bounded so a flood of distinct names cannot grow memory without limit.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use mail_auth::{MX, RecordSet, ResolverCache, Txt};

/// One cache: entries live until the record's TTL runs out.
pub struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
    capacity: usize,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    /// An empty cache holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        TtlCache {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Entries held now (expired ones included until the next purge).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (V, Instant)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for TtlCache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut entries = self.lock();
        match entries.get(name) {
            Some((value, until)) if *until > Instant::now() => Some(value.clone()),
            Some(_) => {
                entries.remove(name);
                None
            }
            None => None,
        }
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().remove(name).map(|(value, _)| value)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        let now = Instant::now();
        if valid_until <= now {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= self.capacity {
                // Still full of live entries: start over rather than keep
                // an eviction order for what is only a cache.
                entries.clear();
            }
        }
        entries.insert(key, (value, valid_until));
    }
}

/// The five caches `mail-auth` can use.
pub(crate) struct Caches {
    pub(crate) txt: TtlCache<Box<str>, Txt>,
    pub(crate) mx: TtlCache<Box<str>, RecordSet<MX>>,
    pub(crate) ipv4: TtlCache<Box<str>, RecordSet<Ipv4Addr>>,
    pub(crate) ipv6: TtlCache<Box<str>, RecordSet<Ipv6Addr>>,
    pub(crate) ptr: TtlCache<IpAddr, RecordSet<Box<str>>>,
}

impl Caches {
    pub(crate) fn new(capacity: usize) -> Caches {
        Caches {
            txt: TtlCache::new(capacity),
            mx: TtlCache::new(capacity),
            ipv4: TtlCache::new(capacity),
            ipv6: TtlCache::new(capacity),
            ptr: TtlCache::new(capacity),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    #[test]
    fn entries_expire_with_their_ttl() {
        let cache: TtlCache<Box<str>, u32> = TtlCache::new(10);
        cache.insert("a".into(), 1, Instant::now() + Duration::from_secs(60));
        cache.insert("b".into(), 2, Instant::now() - Duration::from_secs(1));
        assert_eq!(cache.get("a"), Some(1));
        assert_eq!(cache.get("b"), None);
        let cache: TtlCache<Box<str>, u32> = TtlCache::new(10);
        cache.insert("c".into(), 3, Instant::now() + Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("c"), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn bounded() {
        let cache: TtlCache<Box<str>, u32> = TtlCache::new(3);
        for i in 0..10 {
            cache.insert(
                i.to_string().into(),
                i,
                Instant::now() + Duration::from_secs(60),
            );
            assert!(cache.len() <= 3);
        }
        assert_eq!(cache.get("9"), Some(9));
    }
}
