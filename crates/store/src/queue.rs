//! The outbound queue's storage contract. Mail for remote recipients is
//! stored here durably before the SMTP server answers 250 (or `sendmail`
//! exits 0), and the MTA works through it: claim what is due, try it,
//! record the outcome, remove it when every recipient is done.
//!
//! The pure retry policy and the envelope's text format live in the `queue`
//! crate; engines implement [`QueueStore`].

use crate::{IncomingMessage, StoreError};

/// Where one recipient of a queued message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientState {
    /// Not delivered yet; tried again at `next_attempt`.
    Pending,
    /// Accepted by the next hop (or the local maildrop).
    Delivered,
    /// Permanently failed (5xx, expired, null MX); the bounce, if any, was
    /// queued before this state was stored.
    Failed,
}

/// One recipient of a queued message, with its delivery history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRecipient {
    /// The forward path, without angle brackets (`user@example.org`).
    pub address: String,
    /// RFC 3461 ORCPT, as `addr-type;xtext-decoded-address`.
    pub orcpt: Option<String>,
    /// RFC 3461 NOTIFY: `NEVER`, or a comma list of SUCCESS, FAILURE, DELAY.
    pub notify: Option<String>,
    /// Where it stands.
    pub state: RecipientState,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// Unix seconds of the next attempt (meaningful while `Pending`).
    pub next_attempt: i64,
    /// The last remote reply or local reason, one line, for `queue show`
    /// and the bounce.
    pub last_reply: Option<String>,
    /// True once a delay notice was sent for it.
    pub delay_notified: bool,
}

impl QueuedRecipient {
    /// A recipient not tried yet, due at `now` (Unix seconds), without DSN
    /// parameters.
    pub fn pending(address: String, now: i64) -> Self {
        QueuedRecipient {
            address,
            orcpt: None,
            notify: None,
            state: RecipientState::Pending,
            attempts: 0,
            next_attempt: now,
            last_reply: None,
            delay_notified: false,
        }
    }
}

/// A queued message's envelope and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// Unique queue id (also in the `Received:` header and logs).
    pub id: String,
    /// The reverse path; `None` is the null sender `<>` (bounces), which
    /// never gets a bounce itself.
    pub sender: Option<String>,
    /// Unix seconds when the message was accepted.
    pub created: i64,
    /// RFC 3461 ENVID.
    pub envid: Option<String>,
    /// RFC 3461 RET: `FULL` or `HDRS`.
    pub ret: Option<String>,
    /// The message needs 8BITMIME from the next hop.
    pub body_8bit: bool,
    /// The message or its envelope needs SMTPUTF8 from the next hop.
    pub smtputf8: bool,
    /// Size of the stored message in octets.
    pub size: u64,
    /// Held by the operator (`queue hold`): never tried until released.
    pub held: bool,
    /// The recipients.
    pub recipients: Vec<QueuedRecipient>,
}

impl QueueEntry {
    /// True when no recipient is still pending.
    pub fn is_done(&self) -> bool {
        self.recipients
            .iter()
            .all(|r| r.state != RecipientState::Pending)
    }

    /// The earliest `next_attempt` among pending recipients.
    pub fn next_attempt(&self) -> Option<i64> {
        self.recipients
            .iter()
            .filter(|r| r.state == RecipientState::Pending)
            .map(|r| r.next_attempt)
            .min()
    }
}

/// Durable storage for the outbound queue.
///
/// Many MTA workers (and, with the PostgreSQL engine, many nodes) share one
/// queue: [`QueueStore::claim_due`] hands each entry to one claimant at a
/// time under a lease; [`QueueStore::update`] or [`QueueStore::remove`] ends
/// the claim. A claimant that dies loses its lease when it expires and the
/// entry becomes claimable again (at most one duplicate delivery).
#[async_trait::async_trait]
pub trait QueueStore: Send + Sync {
    /// Stores a new message and its envelope; returns only once both are on
    /// stable storage. `entry.id` is chosen by the caller and unique.
    async fn enqueue(
        &self,
        entry: &QueueEntry,
        message: &IncomingMessage,
    ) -> Result<(), StoreError>;

    /// Every queued entry (for `queue list`), oldest first.
    async fn list(&self) -> Result<Vec<QueueEntry>, StoreError>;

    /// One entry by id.
    async fn get(&self, id: &str) -> Result<Option<QueueEntry>, StoreError>;

    /// The stored message (trace headers included), exactly as enqueued.
    async fn message(&self, id: &str) -> Result<Vec<u8>, StoreError>;

    /// Replaces an entry's envelope durably (attempt results, hold,
    /// release, flush) and ends any claim on it.
    async fn update(&self, entry: &QueueEntry) -> Result<(), StoreError>;

    /// Deletes an entry and its message durably (all recipients done, or
    /// `queue delete`).
    async fn remove(&self, id: &str) -> Result<(), StoreError>;

    /// Claims up to `limit` entries that are not held, have a pending
    /// recipient due at or before `now` (unix seconds) and are not claimed
    /// by someone else, for `lease_secs` seconds.
    async fn claim_due(
        &self,
        now: i64,
        limit: usize,
        lease_secs: u64,
    ) -> Result<Vec<QueueEntry>, StoreError>;

    /// Extends this claimant's claim on `id` to `now + lease_secs`, so a
    /// delivery that runs longer than one lease is not handed to another
    /// claimant meanwhile. `Ok(false)`: the entry is no longer claimed by
    /// us (updated, removed, or its lease ran out and someone else claimed
    /// it), so another delivery of it may be under way.
    async fn renew_claim(&self, id: &str, now: i64, lease_secs: u64) -> Result<bool, StoreError>;
}
