//! Maildrops: delivery into `messages`, POP3 sessions under a lease in
//! `maildrop_locks`, RETR streamed in pieces.

use std::collections::BTreeSet;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use mailroom_store::{IncomingMessage, MailStore, Maildrop, MessageBody, MessageInfo, StoreError};
use sqlx::Row as _;
use sqlx::postgres::PgPool;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::task::AbortHandle;

use crate::users::canonical_name;
use crate::{Inner, PgStore, db_error, random_token};

#[async_trait::async_trait]
impl MailStore for PgStore {
    async fn deliver(&self, users: &[String], message: &IncomingMessage) -> Result<(), StoreError> {
        let mut names: Vec<String> = Vec::with_capacity(users.len());
        for user in users {
            let name = canonical_name(user)?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
        if names.is_empty() {
            return Ok(());
        }
        let failed = |e| db_error("delivering a message", e);
        let size = i64::try_from(message.len()).map_err(|_| StoreError::NoSpace)?;
        // One statement, so one round trip and, in autocommit, its own
        // transaction: every recipient's row or none. The message crosses
        // the wire once. The uid is "<id>.<random>": unique because the id
        // is, and not guessable from the previous one. The users check is an
        // uncorrelated subquery (evaluated once): when a name is not a user,
        // no row is inserted and the miss is looked up below.
        let tokens: Vec<String> = names.iter().map(|_| random_token(UID_RANDOM)).collect();
        for _ in 0..2 {
            let inserted = sqlx::query(
                "INSERT INTO messages (id, username, uid, size, data) \
                 SELECT s.n, s.name, s.n::text || '.' || s.token, $3, $4::bytea || $5::bytea \
                 FROM (SELECT nextval('messages_id_seq') AS n, r.name, r.token \
                       FROM unnest($1::text[], $2::text[]) AS r (name, token) \
                       WHERE (SELECT count(*) FROM users WHERE name = ANY($1::text[])) \
                             = cardinality($1::text[])) AS s",
            )
            .bind(&names)
            .bind(&tokens)
            .bind(size)
            .bind(&message.prefix[..])
            .bind(&message.body[..])
            .execute(&self.inner.pool)
            .await
            .map_err(failed)?;
            // Durable once it returned (autocommit, synchronous_commit = on):
            // the 250 may go.
            if inserted.rows_affected() == names.len() as u64 {
                return Ok(());
            }
            let known: Vec<String> =
                sqlx::query_scalar("SELECT name FROM users WHERE name = ANY($1)")
                    .bind(&names)
                    .fetch_all(&self.inner.pool)
                    .await
                    .map_err(failed)?;
            if let Some(missing) = names.iter().find(|n| !known.contains(n)) {
                return Err(StoreError::NoSuchUser(missing.clone()));
            }
            // Every user exists now: one was added between the two
            // statements. Once more.
        }
        Err(StoreError::Io(io::Error::other(
            "delivering a message: the recipients changed while it was stored",
        )))
    }

    async fn open_maildrop(&self, user: &str) -> Result<Box<dyn Maildrop>, StoreError> {
        let name = canonical_name(user)?;
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM users WHERE name = $1")
            .bind(&name)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|e| db_error("opening a maildrop", e))?;
        if exists.is_none() {
            return Err(StoreError::NoSuchUser(name));
        }
        let holder = format!(
            "{}{}",
            self.inner.node,
            self.inner.sequence.fetch_add(1, Ordering::Relaxed)
        );
        lock(&self.inner, &name, &holder).await?;
        self.inner.held().insert(name.clone());
        // From here on the drop guard releases the lock on every path.
        let mut drop = PgMaildrop {
            inner: Arc::clone(&self.inner),
            user: name,
            holder,
            ids: Vec::new(),
            infos: Vec::new(),
            renewal: None,
            released: false,
        };
        drop.renewal = Some(spawn_renewal(&drop));
        let rows =
            sqlx::query("SELECT id, uid, size FROM messages WHERE username = $1 ORDER BY id")
                .bind(&drop.user)
                .fetch_all(&self.inner.pool)
                .await
                .map_err(|e| db_error("listing a maildrop", e))?;
        for row in rows {
            let get = |e| db_error("listing a maildrop", e);
            let id: i64 = row.try_get("id").map_err(get)?;
            let uid: String = row.try_get("uid").map_err(get)?;
            let size: i64 = row.try_get("size").map_err(get)?;
            drop.ids.push(id);
            drop.infos.push(MessageInfo {
                uid,
                size: u64::try_from(size)
                    .map_err(|_| StoreError::Corrupt(format!("message {id} has size {size}")))?,
            });
        }
        Ok(Box::new(drop))
    }
}

/// Takes `user`'s lock for `holder`: free, expired, or [`StoreError::Locked`].
async fn lock(inner: &Inner, user: &str, holder: &str) -> Result<(), StoreError> {
    let failed = |e| db_error("locking a maildrop", e);
    let lease = lease_millis(inner.options.maildrop_lease);
    for _ in 0..RELEASE_WAIT_TRIES {
        if inner.held().contains(user) {
            return Err(StoreError::Locked);
        }
        let taken: Option<String> = sqlx::query_scalar(
            "INSERT INTO maildrop_locks (username, holder, expires_at) \
             VALUES ($1, $2, now() + $3 * interval '1 millisecond') \
             ON CONFLICT (username) DO UPDATE \
             SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
             WHERE maildrop_locks.expires_at < now() \
             RETURNING holder",
        )
        .bind(user)
        .bind(holder)
        .bind(lease)
        .fetch_optional(&inner.pool)
        .await
        .map_err(failed)?;
        if taken.is_some() {
            return Ok(());
        }
        let current: Option<String> =
            sqlx::query_scalar("SELECT holder FROM maildrop_locks WHERE username = $1")
                .bind(user)
                .fetch_optional(&inner.pool)
                .await
                .map_err(failed)?;
        match current {
            // Released between our two statements: try again at once.
            None => continue,
            // One of ours that is no longer open: a drop's release is on its
            // way (it runs in the background). Wait for it, briefly.
            Some(h) if h.starts_with(&inner.node) && !inner.held().contains(user) => {
                tokio::time::sleep(RELEASE_WAIT).await;
            }
            Some(_) => return Err(StoreError::Locked),
        }
    }
    Err(StoreError::Locked)
}

/// Renews the lease every third of its length while the session lives; the
/// task is aborted when the maildrop is committed or dropped.
fn spawn_renewal(drop: &PgMaildrop) -> AbortHandle {
    let pool = drop.inner.pool.clone();
    let lease = drop.inner.options.maildrop_lease;
    let user = drop.user.clone();
    let holder = drop.holder.clone();
    let task = tokio::spawn(async move {
        // (A zero period would panic; PgOptions' fields are public.)
        let mut tick = tokio::time::interval((lease / 3).max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let renewed = sqlx::query(
                "UPDATE maildrop_locks SET expires_at = now() + $3 * interval '1 millisecond' \
                 WHERE username = $1 AND holder = $2",
            )
            .bind(&user)
            .bind(&holder)
            .bind(lease_millis(lease))
            .execute(&pool)
            .await;
            match renewed {
                Ok(done) if done.rows_affected() == 0 => {
                    // Expired and taken by another session (this node could
                    // not renew for a whole lease). Commit will refuse.
                    tracing::warn!(user = %user, holder = %holder, "maildrop lock lost");
                    return;
                }
                Ok(_) => {}
                // The next tick tries again; the lease has two more thirds.
                Err(e) => {
                    tracing::warn!(user = %user, error = %e, "could not renew a maildrop lock")
                }
            }
        }
    });
    task.abort_handle()
}

/// An open, locked maildrop.
struct PgMaildrop {
    inner: Arc<Inner>,
    user: String,
    holder: String,
    /// Row ids, in listing order.
    ids: Vec<i64>,
    infos: Vec<MessageInfo>,
    renewal: Option<AbortHandle>,
    /// The lock row is gone (commit did it): the drop has nothing to release.
    released: bool,
}

#[async_trait::async_trait]
impl Maildrop for PgMaildrop {
    fn messages(&self) -> &[MessageInfo] {
        &self.infos
    }

    async fn open(&self, index: usize) -> Result<MessageBody, StoreError> {
        let (&id, info) = self
            .ids
            .get(index)
            .zip(self.infos.get(index))
            .ok_or(StoreError::NoSuchMessage)?;
        let mut reader = ChunkReader {
            pool: self.inner.pool.clone(),
            id,
            size: info.size,
            fetched: 0,
            chunk: Vec::new(),
            pos: 0,
            pending: None,
        };
        // The first piece now: a message that is gone is NoSuchMessage here,
        // not an I/O error half-way through a RETR.
        let first = fetch_chunk(reader.pool.clone(), id, 0)
            .await
            .map_err(|e| db_error("reading a message", e))?
            .ok_or(StoreError::NoSuchMessage)?;
        reader.accept(first).map_err(StoreError::Io)?;
        if reader.fetched == reader.size {
            // One piece held it all.
            return Ok(MessageBody::Whole(std::mem::take(&mut reader.chunk)));
        }
        Ok(MessageBody::Stream(Box::new(reader)))
    }

    async fn commit(mut self: Box<Self>, indices: &[usize]) -> Result<(), StoreError> {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        let wanted: BTreeSet<usize> = indices.iter().copied().collect();
        let failed = |e| db_error("updating a maildrop", e);
        let mut tx = self.inner.pool.begin().await.map_err(failed)?;
        let still_ours =
            sqlx::query("DELETE FROM maildrop_locks WHERE username = $1 AND holder = $2")
                .bind(&self.user)
                .bind(&self.holder)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        if still_ours.rows_affected() == 0 {
            // Another session took the maildrop after our lease ran out: it
            // may have listed (and be deleting) the same messages. Delete
            // nothing; the client sees an error and its messages stay.
            self.released = true;
            return Err(StoreError::Locked);
        }
        if wanted.iter().any(|&i| i >= self.ids.len()) {
            // Nothing deleted, and the lock released all the same.
            tx.commit().await.map_err(failed)?;
            self.released = true;
            return Err(StoreError::NoSuchMessage);
        }
        let ids: Vec<i64> = wanted.iter().map(|&i| self.ids[i]).collect();
        if !ids.is_empty() {
            sqlx::query("DELETE FROM messages WHERE username = $1 AND id = ANY($2)")
                .bind(&self.user)
                .bind(&ids)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        // RFC 1939 §6: the deletions are durable before +OK, and the next
        // session (on any node) can only start after this commit.
        tx.commit().await.map_err(failed)?;
        self.released = true;
        Ok(())
    }
}

impl Drop for PgMaildrop {
    fn drop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        self.inner.held().remove(&self.user);
        if self.released {
            return;
        }
        // Best effort, in the background (Drop cannot wait): if it does not
        // happen (no runtime, database down), the lease expires instead.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = self.inner.pool.clone();
        let user = std::mem::take(&mut self.user);
        let holder = std::mem::take(&mut self.holder);
        runtime.spawn(async move {
            let released = sqlx::query("DELETE FROM maildrop_locks WHERE username = $1 AND holder = $2")
                .bind(&user)
                .bind(&holder)
                .execute(&pool)
                .await;
            if let Err(e) = released {
                tracing::debug!(user = %user, error = %e, "could not release a maildrop lock; it will expire");
            }
        });
    }
}

/// Streams one message from `messages.data` in [`CHUNK`]-octet pieces, one
/// query each, so memory stays flat whatever the message size.
struct ChunkReader {
    pool: PgPool,
    id: i64,
    size: u64,
    /// Octets fetched so far (the offset of the next piece).
    fetched: u64,
    chunk: Vec<u8>,
    /// Octets of `chunk` already handed out.
    pos: usize,
    pending: Option<PendingChunk>,
}

type PendingChunk = Pin<Box<dyn Future<Output = Result<Option<Vec<u8>>, sqlx::Error>> + Send>>;

impl ChunkReader {
    /// Takes a fetched piece, checking it against the listed size.
    fn accept(&mut self, piece: Vec<u8>) -> io::Result<()> {
        let len = piece.len() as u64;
        let expected = (self.size - self.fetched).min(CHUNK as u64);
        if len != expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "message {}: got {len} octets at offset {}, expected {expected}",
                    self.id, self.fetched
                ),
            ));
        }
        self.fetched += len;
        self.chunk = piece;
        self.pos = 0;
        Ok(())
    }
}

impl AsyncRead for ChunkReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.pos < this.chunk.len() {
                let n = (this.chunk.len() - this.pos).min(buf.remaining());
                buf.put_slice(&this.chunk[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            if this.fetched >= this.size {
                return Poll::Ready(Ok(()));
            }
            let pending = this.pending.get_or_insert_with(|| {
                Box::pin(fetch_chunk(this.pool.clone(), this.id, this.fetched))
            });
            let piece = match pending.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(result) => {
                    this.pending = None;
                    result
                }
            };
            match piece {
                Ok(Some(piece)) => this.accept(piece)?,
                Ok(None) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("message {} was deleted while being read", this.id),
                    )));
                }
                Err(e) => {
                    return Poll::Ready(Err(io::Error::other(format!(
                        "reading message {}: {e}",
                        this.id
                    ))));
                }
            }
        }
    }
}

/// Octets `offset..offset + CHUNK` of message `id`; `None` when the row is
/// gone.
async fn fetch_chunk(pool: PgPool, id: i64, offset: u64) -> Result<Option<Vec<u8>>, sqlx::Error> {
    // substring() counts from 1; bytea is at most 1 GiB, so both fit.
    let from = i64::try_from(offset).unwrap_or(i64::MAX).saturating_add(1);
    sqlx::query_scalar(
        "SELECT substring(data FROM $2::int8::int4 FOR $3) FROM messages WHERE id = $1",
    )
    .bind(id)
    .bind(from)
    .bind(CHUNK as i32)
    .fetch_optional(&pool)
    .await
}

fn lease_millis(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}

/// Octets per RETR query: big enough that a 30 MB message takes 30 queries,
/// small enough that a few hundred sessions reading at once stay in memory.
const CHUNK: usize = 1024 * 1024;
/// Random characters after the id in a uid.
const UID_RANDOM: usize = 6;
/// How long `open_maildrop` waits for this instance's own background
/// release of a dropped session: `RELEASE_WAIT_TRIES` × `RELEASE_WAIT`.
const RELEASE_WAIT: Duration = Duration::from_millis(20);
const RELEASE_WAIT_TRIES: usize = 100;
