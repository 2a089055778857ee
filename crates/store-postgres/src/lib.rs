//! The PostgreSQL storage engine: users, aliases, maildrops, the outbound
//! queue and POP3 locks in one database that many `mailroom serve` nodes
//! share (DESIGN.md principle 4, `--store postgres://…`).
//!
//! It implements the store traits ([`UserDb`], [`MailStore`],
//! [`QueueStore`]) and owns the SQL layout below, its migrations and the
//! leases that let nodes share work. It does not decide who is a recipient,
//! hash passwords or speak any protocol, and it never creates the database
//! or the role: the operator does (`createdb mailroom`).
//!
//! # Connecting
//!
//! [`PgStore::connect`] opens one connection first, so an unreachable
//! database fails at start with one line naming the host (`cannot connect
//! to PostgreSQL at db.example.org:5432/mailroom: …`), applies the embedded
//! migrations, then keeps a pool ([`PgOptions`]). Every operation takes a
//! pooled connection for as long as it needs it. A connection idle for
//! more than 100 ms is pinged before use (a busy one is not: that would be
//! a round trip per operation), so a database restart costs the operations
//! under way an error, and under load each pooled connection one failed
//! operation, after which new connections are opened (an acquire waits up
//! to [`PgOptions::acquire_timeout`] for the server to come back).
//!
//! # Migrations
//!
//! `migrations/NNNN_*.sql` are compiled in and applied in one transaction
//! that first takes `pg_advisory_xact_lock` (two nodes starting together
//! run them once) and records the result in `schema_version`. A database
//! whose version is newer than [`SCHEMA_VERSION`] is refused at start: an
//! older binary must not write a schema it does not know.
//!
//! # SQL layout (schema version 2)
//!
//! ```text
//! schema_version  (version)                        one row
//! users           (name PK, password_hash, created)
//! user_secrets    (name PK → users ON DELETE CASCADE, secret)
//! aliases         (id, name, target)               aliases(5), one target
//!                                                  (or a comma list) a row
//! messages        (id bigserial PK, username, uid UNIQUE, size, created,
//!                  data bytea STORAGE EXTERNAL)    index (username, id)
//! maildrop_locks  (username PK, holder, expires_at)
//! queue_entries   (id PK, created, held, next_attempt, claimed_until,
//!                  claimed_by, envelope text)      partial index on due
//! queue_messages  (id PK → queue_entries ON DELETE CASCADE, data bytea)
//! dkim_keys       (id, domain, selector, algorithm, private_key PEM,
//!                  created; UNIQUE (domain, selector))      version 2
//! ```
//!
//! - **Users** have canonical names (1–64 of `[a-z0-9._-]`, not starting
//!   with `.` or `-`, the same rule as the embedded engine, so a directory
//!   can move between engines). Secrets sit in their own table so the
//!   hashes can be dumped without them. Deleting a user keeps their mail.
//! - **Aliases** are rows `(name, target)`; the rows of one name (any case),
//!   in id order, form one aliases(5) line `name: target, target`, and the
//!   whole table is parsed with [`mailroom_store::AliasTable::parse`], so the same refusals
//!   apply (`|cmd`, `/file`, `:include:`). The parsed table is cached for
//!   [`PgOptions::alias_cache`] (1 s), so an RCPT does not cost a query and
//!   an `INSERT INTO aliases` takes effect within a second.
//! - **Messages** are stored with CRLF line ends, exactly what POP3 RETR
//!   sends before byte-stuffing; `size` is their length. The uid (UIDL) is
//!   `<id>.<6 random alphanumerics>`, unique for ever even if ids were
//!   reused after a restore. Listing reads `id, uid, size` only; RETR reads
//!   `data` in 1 MiB `substring()` pieces, which `STORAGE EXTERNAL` keeps
//!   cheap, so a big message is never held in memory whole.
//! - **Queue entries** keep the envelope in the queue crate's versioned
//!   text format (`mailroom_queue::envelope`), plus copies of `created`,
//!   `held` and the earliest pending `next_attempt` for claiming; the
//!   message is a row of its own, deleted with its entry.
//!
//! # Durability
//!
//! A method that stores something returns after its transaction committed;
//! with PostgreSQL's defaults (`fsync = on`, `synchronous_commit = on`) that
//! is on stable storage, which the 250 after DATA relies on. Don't turn
//! either off on a mail database. A delivery is one `INSERT … SELECT`
//! statement in autocommit, one round trip: it checks that every recipient
//! is a user and inserts every recipient's row in one transaction (the
//! message travels once), so no user gets a copy of a failed delivery.
//!
//! # Leases: locks and claims across nodes
//!
//! - **POP3 locks**: [`MailStore::open_maildrop`] takes the row in
//!   `maildrop_locks` with `INSERT … ON CONFLICT DO UPDATE … WHERE
//!   expires_at < now()`: free, or expired, or refused ([`StoreError::Locked`]).
//!   Expiry is on the database clock, [`PgOptions::maildrop_lease`] (5 min)
//!   ahead, and a task renews it every third of that while the session
//!   lives, so a node that dies loses its locks within one lease. Commit
//!   deletes and releases in one transaction; a drop releases best-effort
//!   in the background (the lease is the fallback).
//! - **Queue claims**: [`QueueStore::claim_due`] picks due rows with
//!   `SELECT … FOR UPDATE SKIP LOCKED` and sets `claimed_until = now +
//!   lease` in the same statement, so two nodes never claim one entry at
//!   once, and neither waits for the other. `now` is the caller's clock
//!   (the queue's contract: scheduling takes `now`), so nodes' clocks must
//!   agree to within a small part of the lease (NTP). `update` and `remove`
//!   end a claim; [`QueueStore::renew_claim`] extends it while `claimed_by`
//!   still names this node (the MTA renews every third of the lease during
//!   a delivery); a dead node's claims end when their lease does.
//!
//! # Operating it
//!
//! Aliases are edited with SQL (`INSERT INTO aliases (name, target) VALUES
//! ('staff', 'alice, bob@example.org')`, `DELETE FROM aliases WHERE name =
//! 'staff'`); every node sees the change within a second, and refused or
//! malformed rows are logged by each node when it loads them. Who holds a
//! POP3 lock is in `maildrop_locks.holder` (`host/pid/random/n`), who
//! claimed a queue entry in `queue_entries.claimed_by`.
//!
//! # Tests
//!
//! `tests/conformance.rs` is the store conformance suite: one set of test
//! functions over the traits, run against the embedded engine and against
//! this one (the embedded engine is only a dev-dependency here, so no
//! normal dependency edge joins the two backends), plus the tests only a
//! shared database has (two nodes claiming at once, a dead node's lease,
//! schema checks). `tests/reconnect.rs` restarts the database under a
//! running store. Both need `MAILROOM_TEST_PG` (`scripts/pg-test-cluster.sh
//! start` prints it); without it they skip, or fail when `CI=true`.

mod dkim;
mod maildrop;
mod queue;
mod schema;
mod users;

use std::io;
use std::str::FromStr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mailroom_store::{DkimKeyStore, MailStore, QueueStore, StoreError, UserDb};
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

pub use crate::schema::SCHEMA_VERSION;

/// The PostgreSQL engine over one database. Cheap to clone; clones share
/// the pool, the alias cache and this node's identity.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

/// Tuning of a [`PgStore`]; [`PgOptions::default`] suits a server node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgOptions {
    /// Most connections the pool opens. Default 20: a delivery holds its
    /// connection through the commit's WAL flush (milliseconds), and sqlx
    /// pings a connection when it comes back, so with 20 SMTP sessions ten
    /// connections were the bottleneck (docs/benchmarks.md); four nodes stay
    /// under PostgreSQL's default `max_connections` of 100.
    pub max_connections: u32,
    /// How long an operation waits for a pooled connection (including
    /// reconnecting after a database restart) before failing with a
    /// temporary error. Default 5 s: longer than a restart usually takes,
    /// shorter than an SMTP client's patience.
    pub acquire_timeout: Duration,
    /// How long a POP3 maildrop lock lives without renewal, i.e. how long a
    /// dead node's lock keeps its users out. Default 5 min; renewed every
    /// third of it while the session lives.
    pub maildrop_lease: Duration,
    /// How long a loaded alias table is used before the table is read
    /// again. Default 1 s: edits show within a second, and a burst of RCPTs
    /// costs one query.
    pub alias_cache: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 20,
            acquire_timeout: Duration::from_secs(5),
            maildrop_lease: Duration::from_secs(5 * 60),
            alias_cache: Duration::from_secs(1),
        }
    }
}

impl PgOptions {
    /// Sets [`PgOptions::max_connections`].
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Sets [`PgOptions::acquire_timeout`].
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets [`PgOptions::maildrop_lease`] (at least one second).
    pub fn maildrop_lease(mut self, lease: Duration) -> Self {
        self.maildrop_lease = lease.max(Duration::from_secs(1));
        self
    }

    /// Sets [`PgOptions::alias_cache`].
    pub fn alias_cache(mut self, ttl: Duration) -> Self {
        self.alias_cache = ttl;
        self
    }
}

/// What every clone and every open maildrop shares.
pub(crate) struct Inner {
    pub(crate) pool: PgPool,
    pub(crate) options: PgOptions,
    /// `host/pid/random/`: prefix of this instance's lock holders, shown in
    /// `maildrop_locks.holder` and `queue_entries.claimed_by`.
    pub(crate) node: String,
    /// Numbers this instance's lock holders.
    pub(crate) sequence: AtomicU64,
    /// Users whose maildrop an open session of this instance holds; a
    /// conflict with our own holder for a user not in here is a drop's
    /// release still on its way. Never held across an `.await`.
    pub(crate) held: Mutex<std::collections::HashSet<String>>,
    /// The alias table and when it was read; a tokio mutex because the
    /// reload query runs under it (one reload at a time).
    pub(crate) aliases: tokio::sync::Mutex<users::AliasCache>,
}

impl PgStore {
    /// Connects with [`PgOptions::default`]; see [`PgStore::connect_with`].
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        Self::connect_with(url, PgOptions::default()).await
    }

    /// Connects to the database at `url` (`postgres://user:pass@host:port/db`,
    /// with libpq's `sslmode`, `sslrootcert`, … parameters), applies the
    /// migrations and returns a store over a connection pool. Fails with a
    /// one-line error naming the host when the database cannot be reached
    /// or refuses us, and when its schema is newer than this build.
    pub async fn connect_with(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| {
                // The URL is not echoed: it may carry a password.
                invalid_input(format!("invalid PostgreSQL URL: {}", one_line(&e)))
            })?
            .application_name("mailroom");
        let target = describe(&connect);
        // One connection of our own first: the pool retries a refused
        // connection until its timeout and then reports only the timeout,
        // where the operator needs the cause.
        let mut conn = match tokio::time::timeout(
            options.acquire_timeout,
            sqlx::postgres::PgConnection::connect_with(&connect),
        )
        .await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                return Err(StoreError::Io(io::Error::new(
                    io_kind(&e),
                    format!("cannot connect to PostgreSQL at {target}: {}", one_line(&e)),
                )));
            }
            Err(_) => {
                return Err(StoreError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "cannot connect to PostgreSQL at {target}: no answer within {:?}",
                        options.acquire_timeout
                    ),
                )));
            }
        };
        schema::migrate(&mut conn, &target).await?;
        if let Err(e) = conn.close().await {
            tracing::debug!(error = %e, "closing the migration connection");
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            // Idle connections are closed after a while, so a quiet node
            // does not hold a database's connection slots for ever.
            .idle_timeout(Duration::from_secs(10 * 60))
            // sqlx pings every connection before handing it out by
            // default: a round trip per operation. A connection used within
            // the last PING_IF_IDLE cannot have missed much; one idle for
            // longer (a quiet node, or a database restart under a quiet
            // node) is pinged, and a dead one is replaced before any
            // operation sees it. Under load, a restart costs each pooled
            // connection one failed operation instead.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IF_IDLE {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(connect);
        tracing::info!(database = %target, schema = SCHEMA_VERSION, "PostgreSQL store connected");
        Ok(PgStore {
            inner: Arc::new(Inner {
                pool,
                options,
                node: node_name(),
                sequence: AtomicU64::new(0),
                held: Mutex::new(Default::default()),
                aliases: tokio::sync::Mutex::new(users::AliasCache::default()),
            }),
        })
    }

    /// Closes the pool: waits for the connections in use to come back and
    /// closes them all. Operations after this fail. Open maildrops lose
    /// their renewals (their locks expire with their lease).
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    /// This instance's identity as lock holder and claimant
    /// (`host/pid/random`), for logs and for reading `maildrop_locks`.
    pub fn node(&self) -> &str {
        self.inner.node.trim_end_matches('/')
    }

    /// The store's DKIM keys, as the trait object `serve` and `dkim` take.
    pub fn dkim_keys(&self) -> Arc<dyn DkimKeyStore> {
        Arc::new(self.clone())
    }

    /// The store as the three trait objects the agents take.
    pub fn handles(&self) -> (Arc<dyn MailStore>, Arc<dyn UserDb>, Arc<dyn QueueStore>) {
        (
            Arc::new(self.clone()),
            Arc::new(self.clone()),
            Arc::new(self.clone()),
        )
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("node", &self.inner.node)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Inner {
    pub(crate) fn held(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Maps a database error to a store error; `what` says which operation
/// failed, for the log (never for a client: StoreError payloads are log
/// text only).
pub(crate) fn db_error(what: &str, e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(d) = &e
        && d.code().as_deref() == Some(DISK_FULL)
    {
        return StoreError::NoSpace;
    }
    StoreError::Io(io::Error::new(
        io_kind(&e),
        format!("{what}: {}", one_line(&e)),
    ))
}

/// An error about the caller's input rather than the database.
pub(crate) fn invalid_input(message: String) -> StoreError {
    StoreError::Io(io::Error::new(io::ErrorKind::InvalidInput, message))
}

fn io_kind(e: &sqlx::Error) -> io::ErrorKind {
    match e {
        sqlx::Error::Io(e) => e.kind(),
        sqlx::Error::PoolTimedOut => io::ErrorKind::TimedOut,
        sqlx::Error::PoolClosed => io::ErrorKind::NotConnected,
        _ => io::ErrorKind::Other,
    }
}

/// An error's text on one line (a log line, a start-up failure).
fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().replace(['\r', '\n'], " ")
}

/// `host:port/db` (or the socket path), never the user or password.
fn describe(options: &PgConnectOptions) -> String {
    let place = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    match options.get_database() {
        Some(db) => format!("{place}/{db}"),
        None => place,
    }
}

/// `host/pid/random/` for this instance: the host and pid tell an operator
/// which node holds a lock, the random part tells two instances of one
/// process apart (and a restarted process from its predecessor).
fn node_name() -> String {
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '/')
        .take(64)
        .collect::<String>();
    format!(
        "{host}/{}/{}/",
        std::process::id(),
        random_token(8).to_ascii_lowercase()
    )
}

/// `len` random ASCII letters and digits.
pub(crate) fn random_token(len: usize) -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHANUMERIC[rng.random_range(0..ALPHANUMERIC.len())]))
        .collect()
}

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// How long a pooled connection may sit idle and still be handed out
/// without a ping first.
const PING_IF_IDLE: Duration = Duration::from_millis(100);
/// SQLSTATE disk_full.
const DISK_FULL: &str = "53100";
