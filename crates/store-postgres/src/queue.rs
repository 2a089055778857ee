//! The outbound queue in `queue_entries` and `queue_messages`, claimed with
//! `FOR UPDATE SKIP LOCKED` under a lease.

use std::io;

use mailroom_queue::envelope;
use mailroom_store::names::valid_queue_id;
use mailroom_store::{IncomingMessage, QueueEntry, QueueStore, StoreError};
use sqlx::Row as _;

use crate::{PgStore, db_error, invalid_input};

#[async_trait::async_trait]
impl QueueStore for PgStore {
    async fn enqueue(
        &self,
        entry: &QueueEntry,
        message: &IncomingMessage,
    ) -> Result<(), StoreError> {
        if !valid_queue_id(&entry.id) {
            return Err(invalid_input(format!("invalid queue id {:?}", entry.id)));
        }
        let failed = |e| db_error("queueing a message", e);
        let mut tx = self.inner.pool.begin().await.map_err(failed)?;
        let inserted = sqlx::query(
            "INSERT INTO queue_entries (id, created, held, next_attempt, envelope) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&entry.id)
        .bind(entry.created)
        .bind(entry.held)
        .bind(entry.next_attempt())
        .bind(envelope::serialize(entry))
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Io(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("queue id {} already exists", entry.id),
            )));
        }
        sqlx::query("INSERT INTO queue_messages (id, data) VALUES ($1, $2::bytea || $3::bytea)")
            .bind(&entry.id)
            .bind(&message.prefix[..])
            .bind(&message.body[..])
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        // Durable once committed: the 250 (or sendmail's exit 0) may go.
        tx.commit().await.map_err(failed)
    }

    async fn list(&self) -> Result<Vec<QueueEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, envelope FROM queue_entries ORDER BY created, id COLLATE \"C\"",
        )
        .fetch_all(&self.inner.pool)
        .await
        .map_err(|e| db_error("listing the queue", e))?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let (id, text) = id_and_envelope(&row)?;
            // A damaged envelope (edited by hand) hides one entry, not the
            // queue; `get` reports it.
            match parse(&id, &text) {
                Ok(entry) => entries.push(entry),
                Err(e) => tracing::warn!(id = %id, error = %e, "skipping a corrupt queue entry"),
            }
        }
        Ok(entries)
    }

    async fn get(&self, id: &str) -> Result<Option<QueueEntry>, StoreError> {
        if !valid_queue_id(id) {
            return Ok(None);
        }
        let text: Option<String> =
            sqlx::query_scalar("SELECT envelope FROM queue_entries WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(|e| db_error("reading a queue entry", e))?;
        text.map(|text| parse(id, &text)).transpose()
    }

    async fn message(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        if !valid_queue_id(id) {
            return Err(StoreError::NoSuchMessage);
        }
        let data: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT data FROM queue_messages WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(|e| db_error("reading a queued message", e))?;
        data.ok_or(StoreError::NoSuchMessage)
    }

    async fn update(&self, entry: &QueueEntry) -> Result<(), StoreError> {
        if !valid_queue_id(&entry.id) {
            return Err(StoreError::NoSuchMessage);
        }
        // A row deleted meanwhile stays deleted: an UPDATE cannot bring it
        // back, so a late delivery result never resurrects a removed entry.
        let updated = sqlx::query(
            "UPDATE queue_entries SET created = $2, held = $3, next_attempt = $4, \
             envelope = $5, claimed_until = NULL, claimed_by = NULL WHERE id = $1",
        )
        .bind(&entry.id)
        .bind(entry.created)
        .bind(entry.held)
        .bind(entry.next_attempt())
        .bind(envelope::serialize(entry))
        .execute(&self.inner.pool)
        .await
        .map_err(|e| db_error("updating a queue entry", e))?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NoSuchMessage);
        }
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), StoreError> {
        if !valid_queue_id(id) {
            return Err(StoreError::NoSuchMessage);
        }
        // queue_messages goes with it (ON DELETE CASCADE), in one statement.
        let deleted = sqlx::query("DELETE FROM queue_entries WHERE id = $1")
            .bind(id)
            .execute(&self.inner.pool)
            .await
            .map_err(|e| db_error("removing a queue entry", e))?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NoSuchMessage);
        }
        Ok(())
    }

    async fn claim_due(
        &self,
        now: i64,
        limit: usize,
        lease_secs: u64,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let until = now.saturating_add(i64::try_from(lease_secs).unwrap_or(i64::MAX));
        // One statement: rows another claimant has locked right now are
        // skipped (not waited for), and rows it claimed and committed fail
        // the claimed_until test when PostgreSQL re-checks the locked row.
        // MATERIALIZED: the locking SELECT runs exactly once, never inlined
        // into the UPDATE's plan.
        let rows = sqlx::query(
            "WITH due AS MATERIALIZED ( \
                 SELECT id FROM queue_entries \
                 WHERE NOT held AND next_attempt <= $1 \
                   AND (claimed_until IS NULL OR claimed_until <= $1) \
                 ORDER BY next_attempt, created, id COLLATE \"C\" \
                 LIMIT $2 \
                 FOR UPDATE SKIP LOCKED) \
             UPDATE queue_entries AS q SET claimed_until = $3, claimed_by = $4 \
             FROM due WHERE q.id = due.id \
             RETURNING q.id, q.envelope, q.next_attempt, q.created",
        )
        .bind(now)
        .bind(limit)
        .bind(until)
        .bind(self.node())
        .fetch_all(&self.inner.pool)
        .await
        .map_err(|e| db_error("claiming queue entries", e))?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let get = |e| db_error("claiming queue entries", e);
            let next: i64 = row.try_get("next_attempt").map_err(get)?;
            let created: i64 = row.try_get("created").map_err(get)?;
            let (id, text) = id_and_envelope(&row)?;
            match parse(&id, &text) {
                Ok(entry) => claimed.push((next, created, entry)),
                // Stays claimed until its lease ends; logged each time.
                Err(e) => {
                    tracing::warn!(id = %id, error = %e, "claimed a corrupt queue entry; skipped")
                }
            }
        }
        // RETURNING has no order: earliest due first, as the contract says.
        claimed.sort_by(|a, b| (a.0, a.1, &a.2.id).cmp(&(b.0, b.1, &b.2.id)));
        Ok(claimed.into_iter().map(|(_, _, entry)| entry).collect())
    }

    async fn renew_claim(&self, id: &str, now: i64, lease_secs: u64) -> Result<bool, StoreError> {
        if !valid_queue_id(id) {
            return Ok(false);
        }
        let until = now.saturating_add(i64::try_from(lease_secs).unwrap_or(i64::MAX));
        // Ours only while claimed_by still names this node: `update` and
        // `remove` clear it, another node's claim replaces it.
        let renewed = sqlx::query(
            "UPDATE queue_entries SET claimed_until = $3 WHERE id = $1 AND claimed_by = $2",
        )
        .bind(id)
        .bind(self.node())
        .bind(until)
        .execute(&self.inner.pool)
        .await
        .map_err(|e| db_error("renewing a queue claim", e))?;
        Ok(renewed.rows_affected() == 1)
    }
}

fn id_and_envelope(row: &sqlx::postgres::PgRow) -> Result<(String, String), StoreError> {
    let get = |e| db_error("reading a queue entry", e);
    Ok((
        row.try_get("id").map_err(get)?,
        row.try_get("envelope").map_err(get)?,
    ))
}

/// Parses a stored envelope, which must carry its row's id.
fn parse(id: &str, text: &str) -> Result<QueueEntry, StoreError> {
    let entry = envelope::parse(text)
        .map_err(|e| StoreError::Corrupt(format!("queue envelope {id}: {e}")))?;
    if entry.id != id {
        return Err(StoreError::Corrupt(format!(
            "queue envelope {id} carries id {:?}",
            entry.id
        )));
    }
    Ok(entry)
}
