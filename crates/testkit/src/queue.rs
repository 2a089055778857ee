//! An in-memory [`QueueStore`] for tests, like OpenSMTPD's `queue_ram`:
//! the same claim and lease rules as a durable engine, nothing on disk.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use mailroom_store::{IncomingMessage, QueueEntry, QueueStore, StoreError};

/// The outbound queue held in memory. Entries are kept in enqueue order.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Enqueue sequence number → item (so `list` is oldest first).
    items: BTreeMap<u64, Item>,
    next_seq: u64,
    enqueued: usize,
    /// Claims handed out by `claim_due`, over all entries.
    claims: usize,
    removed: Vec<String>,
}

#[derive(Debug, Clone)]
struct Item {
    entry: QueueEntry,
    message: Vec<u8>,
    /// Unix seconds until which a claimant holds the entry.
    claimed_until: Option<i64>,
}

impl MemoryQueue {
    /// An empty queue.
    pub fn new() -> MemoryQueue {
        MemoryQueue::default()
    }

    /// Every entry, oldest first (without touching claims).
    pub fn entries(&self) -> Vec<QueueEntry> {
        self.lock()
            .items
            .values()
            .map(|i| i.entry.clone())
            .collect()
    }

    /// The stored message of `id`, if queued.
    pub fn message_of(&self, id: &str) -> Option<Vec<u8>> {
        self.lock()
            .items
            .values()
            .find(|i| i.entry.id == id)
            .map(|i| i.message.clone())
    }

    /// Entries whose sender is the null sender `<>` (bounces and other
    /// DSNs), with their messages.
    pub fn bounces(&self) -> Vec<(QueueEntry, Vec<u8>)> {
        self.lock()
            .items
            .values()
            .filter(|i| i.entry.sender.is_none())
            .map(|i| (i.entry.clone(), i.message.clone()))
            .collect()
    }

    /// How many entries were ever enqueued.
    pub fn enqueued(&self) -> usize {
        self.lock().enqueued
    }

    /// How many claims `claim_due` ever handed out (an entry claimed again
    /// after its lease ran out counts twice).
    pub fn claims(&self) -> usize {
        self.lock().claims
    }

    /// Ids removed so far, in order.
    pub fn removed(&self) -> Vec<String> {
        self.lock().removed.clone()
    }

    /// True when an entry is claimed at `now`.
    pub fn is_claimed(&self, id: &str, now: i64) -> bool {
        self.lock()
            .items
            .values()
            .any(|i| i.entry.id == id && i.claimed_until.is_some_and(|t| t > now))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn find_mut(&mut self, id: &str) -> Option<&mut Item> {
        self.items.values_mut().find(|i| i.entry.id == id)
    }
}

#[async_trait::async_trait]
impl QueueStore for MemoryQueue {
    async fn enqueue(
        &self,
        entry: &QueueEntry,
        message: &IncomingMessage,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.items.values().any(|i| i.entry.id == entry.id) {
            return Err(StoreError::Corrupt(format!(
                "duplicate queue id {}",
                entry.id
            )));
        }
        let mut bytes = message.prefix.clone();
        bytes.extend_from_slice(&message.body);
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.enqueued += 1;
        inner.items.insert(
            seq,
            Item {
                entry: entry.clone(),
                message: bytes,
                claimed_until: None,
            },
        );
        Ok(())
    }

    async fn list(&self) -> Result<Vec<QueueEntry>, StoreError> {
        Ok(self.entries())
    }

    async fn get(&self, id: &str) -> Result<Option<QueueEntry>, StoreError> {
        Ok(self.lock().find_mut(id).map(|i| i.entry.clone()))
    }

    async fn message(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        self.message_of(id).ok_or(StoreError::NoSuchMessage)
    }

    async fn update(&self, entry: &QueueEntry) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let item = inner.find_mut(&entry.id).ok_or(StoreError::NoSuchMessage)?;
        item.entry = entry.clone();
        item.claimed_until = None;
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let seq = inner
            .items
            .iter()
            .find(|(_, i)| i.entry.id == id)
            .map(|(seq, _)| *seq)
            .ok_or(StoreError::NoSuchMessage)?;
        inner.items.remove(&seq);
        inner.removed.push(id.to_string());
        Ok(())
    }

    async fn claim_due(
        &self,
        now: i64,
        limit: usize,
        lease_secs: u64,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        let lease = i64::try_from(lease_secs).unwrap_or(i64::MAX);
        let mut inner = self.lock();
        let mut out = Vec::new();
        for item in inner.items.values_mut() {
            if out.len() >= limit {
                break;
            }
            let free = item.claimed_until.is_none_or(|t| t <= now);
            let due = item.entry.next_attempt().is_some_and(|t| t <= now);
            if free && due && !item.entry.held {
                item.claimed_until = Some(now.saturating_add(lease));
                out.push(item.entry.clone());
            }
        }
        inner.claims += out.len();
        Ok(out)
    }

    async fn renew_claim(&self, id: &str, now: i64, lease_secs: u64) -> Result<bool, StoreError> {
        let lease = i64::try_from(lease_secs).unwrap_or(i64::MAX);
        let mut inner = self.lock();
        match inner.find_mut(id) {
            Some(item) if item.claimed_until.is_some() => {
                item.claimed_until = Some(now.saturating_add(lease));
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use mailroom_store::QueuedRecipient;

    use super::*;

    fn entry(id: &str, next: i64) -> QueueEntry {
        QueueEntry {
            id: id.to_string(),
            sender: Some("a@example.org".into()),
            created: 0,
            envid: None,
            ret: None,
            body_8bit: false,
            smtputf8: false,
            size: 3,
            held: false,
            recipients: vec![QueuedRecipient::pending("b@example.net".into(), next)],
        }
    }

    #[tokio::test]
    async fn claims_are_exclusive_until_the_lease_ends() {
        let queue = MemoryQueue::new();
        let message = IncomingMessage {
            prefix: b"X: y\r\n".to_vec(),
            body: Arc::new(b"\r\nhi\r\n".to_vec()),
        };
        queue.enqueue(&entry("one", 10), &message).await.unwrap();
        queue.enqueue(&entry("two", 50), &message).await.unwrap();
        assert!(queue.enqueue(&entry("one", 10), &message).await.is_err());
        assert!(queue.claim_due(5, 10, 60).await.unwrap().is_empty());
        let claimed = queue.claim_due(10, 10, 60).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert!(queue.claim_due(20, 10, 60).await.unwrap().is_empty());
        // The lease ran out: claimable again, together with "two".
        assert_eq!(queue.claim_due(70, 10, 60).await.unwrap().len(), 2);
        assert_eq!(queue.message("one").await.unwrap(), b"X: y\r\n\r\nhi\r\n");
        queue.update(&entry("one", 100)).await.unwrap();
        assert!(!queue.is_claimed("one", 71));
        queue.remove("two").await.unwrap();
        assert_eq!(queue.removed(), vec!["two".to_string()]);
        assert_eq!(queue.list().await.unwrap().len(), 1);
    }
}
