//! [`Mta`]: the claim loop, per-destination connection lanes, and the
//! bookkeeping that turns attempts into queue updates and DSNs.
//!
//! ```text
//!  run ── claim_due ──► entry task (one per claimed entry, ≤ max_workers)
//!                         │ local domains ──► LocalDelivery::deliver
//!                         │ remote: one Job per (entry, domain)
//!                         ▼
//!                    Destination lane (per first hop + TLS policy)
//!                      job queue ──► ≤ max_connections_per_destination
//!                                    connection tasks, each reusing its
//!                                    connection for queued jobs, kept
//!                                    open idle_timeout for more
//!                         │ per-recipient Attempts (oneshot)
//!                         ▼
//!                    entry task: DSNs enqueued first, then
//!                    queue.update (retry times) or queue.remove
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use mailroom_queue::schedule::Decision;
use mailroom_smtp_client::{
    ClientConfig, ClientSession, Notify, RecipientSpec, Ret, TlsPolicy, Transaction,
};
use mailroom_store::{IncomingMessage, QueueEntry, QueueStore, QueuedRecipient, RecipientState};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};

use crate::client::{Connection, OpenError, Waits};
use crate::config::MtaConfig;
use crate::dsn::{self, Action, RecipientReport, Report, ReportKind, ReturnContent};
use crate::local::{LocalDelivery, LocalDeliveryError};
use crate::outcome::{Attempt, Kind, Status};
use crate::route::{Router, Target, parse_host_port};
use crate::tls::opportunistic_client_config;

/// The outbound agent. Build it with [`Mta::new`], share it in an `Arc`,
/// start [`Mta::run`] once, and call [`Mta::notify`] whenever something
/// was queued.
pub struct Mta {
    /// What a reload ([`Mta::reconfigure`]) may change, swapped whole. A
    /// std lock held only to clone or replace the `Arc`.
    live: RwLock<Arc<Live>>,
    tls: Arc<rustls::ClientConfig>,
    /// Wakes the claim loop before its poll interval (new mail, flush).
    wake: tokio::sync::Notify,
    /// One permit per queue entry in delivery (`max_workers`).
    workers: Arc<Semaphore>,
    /// The permits `workers` started with (fixed: not reloadable).
    max_workers: usize,
    /// Connection lanes by first hop. A std mutex: never held across an
    /// await. Lock order: this map, then a lane's state.
    lanes: Mutex<HashMap<LaneKey, Arc<Lane>>>,
    /// `true` once shutdown began: lanes stop taking jobs, idle
    /// connections close.
    stopping: watch::Sender<bool>,
    /// The last claim filled every free worker, so more may be due: a
    /// finishing entry wakes the claim loop instead of waiting for the
    /// next poll.
    backlog: AtomicBool,
}

/// The settings in force, with what is built from them.
struct Live {
    config: Arc<MtaConfig>,
    router: Arc<Router>,
    /// DKIM keys of local domains (RFC 6376): mail leaving over SMTP whose
    /// `From:` domain has one is signed; `None` signs nothing.
    dkim: Option<Arc<mailroom_mailauth::Signer>>,
}

/// Why an [`Mta`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MtaError {
    /// A relay-map target is not `host:port` (or `[ipv6]:port`).
    #[error("invalid relay-map entry {domain}={target}: expected HOST:PORT")]
    InvalidRelay {
        /// The domain (or `*`).
        domain: String,
        /// The bad target.
        target: String,
    },
    /// The hostname cannot be sent in EHLO (RFC 5321 §4.1.1.1).
    #[error("invalid hostname {0:?} for EHLO")]
    InvalidHostname(String),
    /// The TLS client configuration could not be built.
    #[error("TLS client configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The DNS resolver could not be built.
    #[error("DNS resolver: {0}")]
    Dns(String),
}

/// Checks the hostname and the relay map and builds the router (resolver
/// included): what [`Mta::new`] and [`Mta::reconfigure`] refuse.
fn build_router(config: &MtaConfig) -> Result<Router, MtaError> {
    if ClientSession::new(ClientConfig::new(config.hostname.clone())).is_err() {
        return Err(MtaError::InvalidHostname(config.hostname.clone()));
    }
    let mut relay_map = Vec::new();
    for (domain, target) in &config.relay_map {
        let Some((host, port)) = parse_host_port(target) else {
            return Err(MtaError::InvalidRelay {
                domain: domain.clone(),
                target: target.clone(),
            });
        };
        relay_map.push((
            domain.trim_end_matches('.').to_ascii_lowercase(),
            host,
            port,
        ));
    }
    Router::new(
        relay_map,
        config.smtp_port,
        &config.hostname,
        config.dns,
        config.dns_timeout,
    )
    .map_err(|e| MtaError::Dns(e.to_string()))
}

impl Mta {
    /// An agent with `config`; checks the relay map and hostname, and
    /// builds the resolver and the TLS client configuration.
    pub fn new(config: MtaConfig) -> Result<Mta, MtaError> {
        let router = build_router(&config)?;
        let tls = opportunistic_client_config()?;
        let (stopping, _) = watch::channel(false);
        let max_workers = config.max_workers.max(1);
        Ok(Mta {
            workers: Arc::new(Semaphore::new(max_workers)),
            max_workers,
            live: RwLock::new(Arc::new(Live {
                config: Arc::new(config),
                router: Arc::new(router),
                dkim: None,
            })),
            tls,
            wake: tokio::sync::Notify::new(),
            lanes: Mutex::new(HashMap::new()),
            stopping,
            backlog: AtomicBool::new(false),
        })
    }

    /// Signs outgoing mail with these DKIM keys (see
    /// [`mailroom_mailauth::Signer::sign`] for which messages qualify).
    pub fn with_dkim(self, signer: mailroom_mailauth::Signer) -> Mta {
        let live = self.live();
        *self.live.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Live {
            config: live.config.clone(),
            router: live.router.clone(),
            dkim: (!signer.is_empty()).then(|| Arc::new(signer)),
        });
        self
    }

    /// Puts a new configuration and DKIM keys in force (SIGHUP), after
    /// checking them like [`Mta::new`]; on error nothing changes. Entries
    /// already being delivered finish with the settings they started with,
    /// and open connections stay in their lanes until idle. `max_workers`
    /// keeps the value it had at start.
    pub fn reconfigure(
        &self,
        config: MtaConfig,
        signer: mailroom_mailauth::Signer,
    ) -> Result<(), MtaError> {
        let router = build_router(&config)?;
        *self.live.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Live {
            config: Arc::new(config),
            router: Arc::new(router),
            dkim: (!signer.is_empty()).then(|| Arc::new(signer)),
        });
        Ok(())
    }

    fn live(&self) -> Arc<Live> {
        self.live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The message as it leaves for other domains: with a `DKIM-Signature`
    /// on top when a key applies. Signed per attempt, not stored, so a key
    /// rotation applies to mail already queued. A signing failure sends
    /// the message unsigned (logged) rather than holding it.
    fn outbound(&self, queue_id: &str, message: &Arc<Vec<u8>>) -> Arc<Vec<u8>> {
        let live = self.live();
        let Some(signer) = &live.dkim else {
            return message.clone();
        };
        match signer.sign(message, &live.config.hostname) {
            Ok(Some(signature)) => {
                let mut signed = Vec::with_capacity(signature.len() + message.len());
                signed.extend_from_slice(&signature);
                signed.extend_from_slice(message);
                Arc::new(signed)
            }
            Ok(None) => message.clone(),
            Err(error) => {
                tracing::warn!(queue_id, %error, "sending unsigned");
                message.clone()
            }
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> Arc<MtaConfig> {
        self.live().config.clone()
    }

    /// Looks at the queue now instead of at the next poll (call after
    /// enqueueing, or after `queue flush`).
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Delivers queued mail until `shutdown` completes: claims due entries
    /// every `poll_interval` (or at once after [`notify`](Self::notify)),
    /// delivers remote recipients over SMTP and local ones through
    /// `local`, and records the results in `queue`.
    ///
    /// On shutdown it stops claiming, closes idle connections, lets
    /// deliveries already under way finish (jobs still waiting for a
    /// connection are released untried), and returns after at most
    /// `drain_timeout`.
    pub async fn run(
        self: Arc<Self>,
        queue: Arc<dyn QueueStore>,
        local: Arc<dyn LocalDelivery>,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        tokio::pin!(shutdown);
        loop {
            let config = self.config();
            let lease = config.lease.as_secs().max(1);
            let free = self.workers.available_permits();
            let mut full_batch = false;
            if free > 0 {
                match queue.claim_due(unix_now(), free, lease).await {
                    Ok(entries) => {
                        full_batch = entries.len() == free;
                        self.backlog.store(full_batch, Ordering::SeqCst);
                        for entry in entries {
                            let Ok(permit) = self.workers.clone().try_acquire_owned() else {
                                // Only this loop takes permits, so one is
                                // free for each claimed entry; release the
                                // claim if not.
                                let _ = queue.update(&entry).await;
                                continue;
                            };
                            let task = EntryTask {
                                mta: self.clone(),
                                queue: queue.clone(),
                                local: local.clone(),
                                permit,
                            };
                            tokio::spawn(task.run(entry));
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot claim queued mail"),
                }
            }
            if full_batch && self.workers.available_permits() > 0 {
                // More may be due and workers are free again already.
                continue;
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(config.poll_interval) => {}
            }
        }
        tracing::info!("outbound delivery stopping");
        self.stopping.send_replace(true);
        let all = u32::try_from(self.max_workers).unwrap_or(u32::MAX);
        match tokio::time::timeout(self.config().drain_timeout, self.workers.acquire_many(all))
            .await
        {
            Ok(_) => tracing::info!("outbound delivery stopped"),
            Err(_) => tracing::warn!(
                "outbound deliveries still running after the drain timeout; their claims lapse with the lease"
            ),
        }
    }

    /// STARTTLS required for `domain` (`require_tls`), else opportunistic.
    fn tls_policy(&self, domain: &str) -> TlsPolicy {
        let required = self
            .config()
            .require_tls
            .iter()
            .any(|d| d.trim_end_matches('.').eq_ignore_ascii_case(domain));
        if required {
            TlsPolicy::Required
        } else {
            TlsPolicy::Opportunistic
        }
    }

    /// Hands a job to its lane, starting a connection task when the lane
    /// has none idle and enough work for another.
    fn dispatch(self: &Arc<Self>, key: LaneKey, job: Job) {
        let mut lanes = lock(&self.lanes);
        let lane = lanes
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Lane::new(key)))
            .clone();
        let mut state = lock(&lane.state);
        state.jobs.push_back(job);
        let max = self.config().max_connections_per_destination.max(1);
        let start = if state.idle > 0 {
            lane.more.notify_one();
            false
        } else {
            // Slow start: a new connection for every JOBS_PER_CONNECTION
            // jobs waiting, up to the limit.
            state.active < max
                && (state.active == 0 || state.jobs.len() > state.active * JOBS_PER_CONNECTION)
        };
        if start {
            state.active += 1;
        }
        drop(state);
        drop(lanes);
        if start {
            tokio::spawn(self.clone().lane_worker(lane));
        }
    }

    /// One connection's life: take jobs from the lane, (re)connect as
    /// needed, send, answer; wait `idle_timeout` for more, then QUIT.
    async fn lane_worker(self: Arc<Self>, lane: Arc<Lane>) {
        let mut connection: Option<Connection> = None;
        let mut stopping = self.stopping.subscribe();
        while let Some(job) = self.next_job(&lane, &mut stopping).await {
            if *stopping.borrow() {
                let n = job.tx.recipients.len();
                let _ = job.reply.send(vec![Attempt::not_attempted(); n]);
                continue;
            }
            let reused = connection.is_some();
            if connection.is_none() {
                match self.connect(&lane.key, &job.domain).await {
                    Ok(c) => connection = Some(c),
                    Err(failure) => {
                        // `active` stays above 0 here, so the lane map
                        // need not be locked.
                        let mut state = lock(&lane.state);
                        if state.active > 1 {
                            // Other connections to this destination are up
                            // (or trying): leave the job to them and end
                            // this worker.
                            state.jobs.push_front(job);
                            state.active -= 1;
                            if state.idle > 0 {
                                lane.more.notify_one();
                            }
                            return;
                        }
                        // The last connection failed: the destination is
                        // unreachable now, and every job waiting for it
                        // shares the failure (a "dead destination", as in
                        // Postfix's qmgr).
                        let mut jobs = vec![job];
                        jobs.extend(state.jobs.drain(..));
                        drop(state);
                        for job in jobs {
                            let n = job.tx.recipients.len();
                            let _ = job.reply.send(vec![failure.clone(); n]);
                        }
                        continue;
                    }
                }
            }
            let Some(conn) = connection.as_mut() else {
                continue;
            };
            let mut attempts = send_job(conn, &job).await;
            if reused && !conn.is_ready() && connection_dropped(&attempts) {
                // The idle connection was closed by the server (its own
                // timeout, a 421): nothing was delivered, so try once more
                // on a fresh connection.
                connection = None;
                if let Ok(mut fresh) = self.connect(&lane.key, &job.domain).await {
                    attempts = send_job(&mut fresh, &job).await;
                    connection = Some(fresh);
                }
            }
            if connection.as_ref().is_some_and(|c| !c.is_ready()) {
                connection = None;
            }
            let _ = job.reply.send(attempts);
        }
        if let Some(conn) = connection {
            conn.quit().await;
        }
    }

    /// The lane's next job, waiting up to `idle_timeout` for one. `None`
    /// ends the worker, which is then no longer counted as active.
    async fn next_job(
        &self,
        lane: &Arc<Lane>,
        stopping: &mut watch::Receiver<bool>,
    ) -> Option<Job> {
        loop {
            {
                let mut state = lock(&lane.state);
                if let Some(job) = state.jobs.pop_front() {
                    return Some(job);
                }
                state.idle += 1;
            }
            let woken = if *stopping.borrow() {
                false
            } else {
                tokio::select! {
                    _ = lane.more.notified() => true,
                    _ = tokio::time::sleep(self.config().idle_timeout) => false,
                    _ = stopping.changed() => false,
                }
            };
            let mut lanes = lock(&self.lanes);
            let mut state = lock(&lane.state);
            state.idle -= 1;
            if woken || !state.jobs.is_empty() {
                continue;
            }
            state.active -= 1;
            if state.active == 0 && lanes.get(&lane.key).is_some_and(|l| Arc::ptr_eq(l, lane)) {
                lanes.remove(&lane.key);
            }
            return None;
        }
    }

    /// Opens a connection to the lane's first hop: every address of every
    /// MX in order, until one is ready for mail (RFC 5321 §5.1: "try the
    /// next" on connection and greeting failures).
    async fn connect(&self, key: &LaneKey, domain: &str) -> Result<Connection, Attempt> {
        let live = self.live();
        let candidates = match live.router.candidates(&key.target).await {
            Ok(candidates) => candidates,
            Err(failure) => {
                let mut attempt =
                    Attempt::local_failure(failure.permanent, failure.status, failure.text);
                attempt.reply = failure.reply;
                return Err(attempt);
            }
        };
        let mut config = ClientConfig::new(live.config.hostname.clone());
        config.tls = key.tls;
        let mut last: Option<Attempt> = None;
        for candidate in candidates {
            let opened = Connection::open(
                &candidate.host,
                candidate.addr,
                config.clone(),
                self.tls.clone(),
                Waits {
                    connect: live.config.connect_timeout,
                    reply: live.config.reply_timeout,
                },
            )
            .await;
            match opened {
                Ok(connection) => {
                    tracing::debug!(
                        host = %candidate.host, addr = %candidate.addr,
                        tls = connection.is_tls(), %domain, "connected"
                    );
                    return Ok(connection);
                }
                Err(error) => {
                    tracing::info!(
                        host = %candidate.host, addr = %candidate.addr, %domain, %error,
                        "connection failed; trying the next address"
                    );
                    last = Some(open_failure(&candidate.host, candidate.addr, &error));
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            Attempt::local_failure(false, Status::new(4, 4, 4), format!("no route to {domain}"))
        }))
    }
}

/// Runs one job on an open connection and maps every recipient.
async fn send_job(conn: &mut Connection, job: &Job) -> Vec<Attempt> {
    let dsn = conn.extensions().dsn;
    let host = conn.host().to_string();
    let result = conn.send(job.tx.clone(), &job.message).await;
    let mut attempts: Vec<Attempt> = result
        .per_recipient
        .iter()
        .map(|(_, outcome)| Attempt::from_outcome(outcome, &host, dsn))
        .collect();
    // The session reports every recipient; pad defensively all the same.
    attempts.resize_with(job.tx.recipients.len(), || {
        Attempt::local_failure(false, Status::new(4, 5, 0), "4.5.0 no outcome reported")
    });
    tracing::debug!(queue_id = %job.entry_id, host = %host, addr = %conn.addr(),
        tls = conn.is_tls(), transactions = conn.transactions(), "transaction done");
    attempts
}

/// True when no recipient got a reply: the connection was gone.
fn connection_dropped(attempts: &[Attempt]) -> bool {
    attempts.iter().all(|a| {
        a.kind == Kind::Temporary
            && (a.reply.is_none() || a.reply.as_deref().is_some_and(|r| r.starts_with("421")))
    })
}

/// The attempt a failed connection produces (temporary: the next address,
/// or the next retry, may do better).
fn open_failure(host: &str, addr: std::net::SocketAddr, error: &OpenError) -> Attempt {
    let (status, reply) = match error {
        OpenError::Connect(_) | OpenError::ConnectTimeout => (Status::new(4, 4, 1), None),
        OpenError::Session(e) => match e.reply() {
            Some(reply) => (Status::new(4, 4, 2), Some(reply.to_string())),
            None => match e {
                mailroom_smtp_client::ClientError::TlsNotOffered => (Status::new(4, 7, 10), None),
                _ => (Status::new(4, 4, 2), None),
            },
        },
        OpenError::Config(_) => (Status::new(4, 3, 5), None),
    };
    let mut attempt = Attempt::local_failure(
        false,
        status,
        format!("{status} {host}[{}]:{}: {error}", addr.ip(), addr.port()),
    );
    attempt.reply = reply;
    attempt.remote_mta = Some(host.to_string());
    attempt
}

/// A lane: the jobs for one first hop and the connections serving them.
struct Lane {
    key: LaneKey,
    /// A std mutex, never held across an await.
    state: Mutex<LaneState>,
    /// Wakes an idle connection task when a job arrives.
    more: tokio::sync::Notify,
}

impl Lane {
    fn new(key: LaneKey) -> Lane {
        Lane {
            key,
            state: Mutex::new(LaneState::default()),
            more: tokio::sync::Notify::new(),
        }
    }
}

#[derive(Default)]
struct LaneState {
    jobs: VecDeque<Job>,
    /// Connection tasks alive (≤ max_connections_per_destination).
    active: usize,
    /// Of those, how many wait for a job.
    idle: usize,
}

/// What a lane is for: the first hop and the TLS policy (a domain that
/// requires TLS never shares a lane, hence a connection, with one that
/// does not).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LaneKey {
    target: Target,
    tls: TlsPolicy,
}

/// One message's recipients in one domain, for one transaction.
struct Job {
    entry_id: String,
    domain: String,
    tx: Transaction,
    message: Arc<Vec<u8>>,
    /// Per-recipient attempts, in `tx.recipients` order.
    reply: oneshot::Sender<Vec<Attempt>>,
}

/// Keeps the claim on a queue entry alive while its delivery runs, renewing
/// it every third of the lease, so a delivery slower than one lease (a
/// slow receiver, a big message) is not handed to another node or worker
/// meanwhile; a node that dies stops renewing and loses the claim within
/// one lease. Stops when dropped.
struct ClaimRenewal(tokio::task::JoinHandle<()>);

impl ClaimRenewal {
    fn start(queue: Arc<dyn QueueStore>, id: &str, lease: std::time::Duration) -> ClaimRenewal {
        let secs = lease.as_secs().max(1);
        let every = std::time::Duration::from_secs(secs) / 3;
        let id = id.to_string();
        ClaimRenewal(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match queue.renew_claim(&id, unix_now(), secs).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(queue_id = %id, "lost the claim on a queue entry during its delivery; it may be delivered twice");
                        return;
                    }
                    // The next renewal may get through (the lease has two
                    // more thirds to run).
                    Err(error) => {
                        tracing::warn!(queue_id = %id, %error, "cannot renew the claim on a queue entry")
                    }
                }
            }
        }))
    }
}

impl Drop for ClaimRenewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Delivers one claimed queue entry and records the results.
struct EntryTask {
    mta: Arc<Mta>,
    queue: Arc<dyn QueueStore>,
    local: Arc<dyn LocalDelivery>,
    /// Held until the results are stored (`max_workers`).
    permit: OwnedSemaphorePermit,
}

impl EntryTask {
    async fn run(self, mut entry: QueueEntry) {
        let started = unix_now();
        let renewal = ClaimRenewal::start(self.queue.clone(), &entry.id, self.mta.config().lease);
        let message = match self.queue.message(&entry.id).await {
            Ok(message) => Arc::new(message),
            Err(error) => {
                tracing::error!(queue_id = %entry.id, %error, "cannot read the queued message");
                // Release the claim; the entry is retried at its next time.
                let _ = self.queue.update(&entry).await;
                return;
            }
        };
        let due: Vec<usize> = entry
            .recipients
            .iter()
            .enumerate()
            .filter(|(_, r)| r.state == RecipientState::Pending && r.next_attempt <= started)
            .map(|(i, _)| i)
            .collect();
        let mut by_domain: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut results: Vec<(usize, Attempt)> = Vec::new();
        for index in due {
            match domain_of(&entry.recipients[index].address) {
                Some(domain) => by_domain.entry(domain).or_default().push(index),
                None => results.push((
                    index,
                    Attempt::local_failure(
                        true,
                        Status::new(5, 1, 3),
                        "5.1.3 recipient address has no domain",
                    ),
                )),
            }
        }
        let mut pending = Vec::new();
        let mut local = Vec::new();
        let mut outbound: Option<Arc<Vec<u8>>> = None;
        for (domain, indices) in by_domain {
            if self.local.is_local(&domain).await {
                local.extend(indices);
                continue;
            }
            let (reply, receiver) = oneshot::channel();
            let key = LaneKey {
                target: self.mta.live().router.target(&domain),
                tls: self.mta.tls_policy(&domain),
            };
            let relay = key.target.describe();
            let signed = outbound
                .get_or_insert_with(|| self.mta.outbound(&entry.id, &message))
                .clone();
            let job = Job {
                entry_id: entry.id.clone(),
                domain,
                tx: transaction(&entry, &indices, signed.len()),
                message: signed,
                reply,
            };
            self.mta.dispatch(key, job);
            pending.push((indices, receiver, relay));
        }
        // Local recipients while the remote ones are on their way.
        for index in local {
            let address = entry.recipients[index].address.clone();
            let sender = entry.sender.as_deref();
            results.push((
                index,
                self.deliver_locally(&address, sender, &message).await,
            ));
        }
        for (indices, receiver, relay) in pending {
            let attempts = receiver.await.unwrap_or_default();
            for (position, index) in indices.into_iter().enumerate() {
                let mut attempt = attempts.get(position).cloned().unwrap_or_else(|| {
                    Attempt::local_failure(false, Status::new(4, 3, 0), "4.3.0 delivery task ended")
                });
                if attempt.remote_mta.is_none() && attempt.kind != Kind::NotAttempted {
                    attempt.relay = Some(relay.clone());
                }
                results.push((index, attempt));
            }
        }
        for (index, attempt) in &results {
            log_attempt(&entry.id, &entry.recipients[*index].address, attempt);
        }
        // `record` ends the claim; a renewal after it would find none.
        drop(renewal);
        self.record(&mut entry, results, &message).await;
        let EntryTask { mta, permit, .. } = self;
        drop(permit);
        if mta.backlog.swap(false, Ordering::SeqCst) {
            // A worker is free again and more mail may be due.
            mta.wake.notify_one();
        }
    }

    async fn deliver_locally(
        &self,
        address: &str,
        sender: Option<&str>,
        message: &[u8],
    ) -> Attempt {
        let base = Attempt {
            kind: Kind::Delivered,
            status: Status::new(2, 0, 0),
            reply: None,
            text: "delivered to local maildrop".to_string(),
            remote_mta: None,
            relay: None,
            next_hop_dsn: false,
            local: true,
        };
        match self.local.deliver(address, sender, message).await {
            Ok(()) => base,
            Err(LocalDeliveryError::Temporary(text)) => Attempt {
                kind: Kind::Temporary,
                status: status_in(&text).unwrap_or(Status::new(4, 2, 0)),
                text,
                ..base
            },
            Err(LocalDeliveryError::Permanent(text)) => Attempt {
                kind: Kind::Permanent,
                status: status_in(&text).unwrap_or(Status::new(5, 1, 1)),
                text,
                ..base
            },
        }
    }

    /// Applies the attempts: retry times, expiry, DSNs (queued before the
    /// states that call for them are stored), then update or remove.
    async fn record(&self, entry: &mut QueueEntry, results: Vec<(usize, Attempt)>, message: &[u8]) {
        let now = unix_now();
        let config = self.mta.config();
        let policy = &config.policy;
        let mut failed: Vec<(usize, RecipientReport)> = Vec::new();
        let mut delayed: Vec<(usize, RecipientReport)> = Vec::new();
        let mut succeeded: Vec<RecipientReport> = Vec::new();
        for (index, attempt) in results {
            let Some(rcpt) = entry.recipients.get_mut(index) else {
                continue;
            };
            if attempt.kind == Kind::NotAttempted {
                continue;
            }
            rcpt.attempts = rcpt.attempts.saturating_add(1);
            rcpt.last_reply = Some(attempt.text.clone());
            let notify = rcpt.notify.as_deref().and_then(Notify::parse);
            match attempt.kind {
                Kind::Delivered => {
                    rcpt.state = RecipientState::Delivered;
                    // RFC 3461 §4.1/§6.2: a DSN-capable next hop got our
                    // NOTIFY and reports success itself.
                    if notify.is_some_and(|n| n.success) && (attempt.local || !attempt.next_hop_dsn)
                    {
                        let action = if attempt.local {
                            Action::Delivered
                        } else {
                            Action::Relayed
                        };
                        succeeded.push(report_for(rcpt, &attempt, action, None));
                    }
                }
                Kind::Permanent => {
                    failed.push((index, report_for(rcpt, &attempt, Action::Failed, None)));
                }
                Kind::Temporary => {
                    let jitter: f64 = rand::random();
                    match policy.next_attempt(rcpt.attempts, entry.created, now, jitter) {
                        Decision::RetryAt(at) => {
                            rcpt.next_attempt = at;
                            let wants_delay = notify.is_none_or(|n| n.delay);
                            if wants_delay
                                && policy.delay_notice_due(entry.created, now, rcpt.delay_notified)
                            {
                                let until = Some(policy.expires_at(entry.created));
                                delayed.push((
                                    index,
                                    report_for(rcpt, &attempt, Action::Delayed, until),
                                ));
                            }
                        }
                        Decision::Expire => {
                            // RFC 3463 4.4.7: delivery time expired.
                            let mut expired = attempt.clone();
                            expired.status = Status::new(4, 4, 7);
                            expired.text = format!(
                                "4.4.7 delivery time expired; last error: {}",
                                attempt.text
                            );
                            rcpt.last_reply = Some(expired.text.clone());
                            failed.push((index, report_for(rcpt, &expired, Action::Failed, None)));
                        }
                    }
                }
                Kind::NotAttempted => {}
            }
        }

        // Failure DSNs go out unless NOTIFY excludes FAILURE (RFC 3461
        // §4.1: absent NOTIFY means FAILURE) — and never to the null sender
        // (RFC 5321 §4.5.5, RFC 3464 §2: no bounce of a bounce).
        let wants_failure = |i: &usize| {
            entry.recipients[*i]
                .notify
                .as_deref()
                .and_then(Notify::parse)
                .is_none_or(|n| n.failure)
        };
        let to_report: Vec<RecipientReport> = failed
            .iter()
            .filter(|(i, _)| wants_failure(i))
            .map(|(_, r)| r.clone())
            .collect();
        let mut failure_queued = true;
        if !to_report.is_empty() {
            failure_queued = self
                .send_dsn(entry, ReportKind::Failure, to_report, message, now)
                .await;
        }
        if failure_queued {
            for (index, _) in &failed {
                entry.recipients[*index].state = RecipientState::Failed;
            }
        } else {
            // The bounce could not be queued: keep the recipients pending so
            // the failure (and its bounce) comes round again.
            for (index, _) in &failed {
                let rcpt = &mut entry.recipients[*index];
                rcpt.next_attempt = now + BOUNCE_RETRY_SECS;
            }
        }
        if !delayed.is_empty() {
            let reports = delayed.iter().map(|(_, r)| r.clone()).collect();
            if self
                .send_dsn(entry, ReportKind::Delay, reports, message, now)
                .await
            {
                for (index, _) in &delayed {
                    entry.recipients[*index].delay_notified = true;
                }
            }
        }
        if !succeeded.is_empty() {
            self.send_dsn(entry, ReportKind::Success, succeeded, message, now)
                .await;
        }

        let stored = if entry.is_done() {
            self.queue.remove(&entry.id).await
        } else {
            self.queue.update(entry).await
        };
        if let Err(error) = stored {
            tracing::error!(queue_id = %entry.id, %error,
                "cannot store delivery results; the claim lapses and the entry is tried again");
        }
    }

    /// Queues one DSN to the entry's sender. True when it was queued, or
    /// when there is nobody to send it to (null sender: logged, dropped).
    async fn send_dsn(
        &self,
        entry: &QueueEntry,
        kind: ReportKind,
        recipients: Vec<RecipientReport>,
        message: &[u8],
        now: i64,
    ) -> bool {
        let Some(sender) = entry.sender.as_deref().filter(|s| !s.is_empty()) else {
            tracing::info!(queue_id = %entry.id, ?kind,
                "no delivery status notification: the sender is the null sender <>");
            return true;
        };
        let id = new_queue_id();
        let config = self.mta.config();
        let message_id = format!("{id}@{}", config.hostname);
        let content = ReturnContent::choose(kind, entry.ret.as_deref(), message.len());
        let report = Report {
            kind,
            reporting_mta: &config.hostname,
            to: sender,
            envid: entry.envid.as_deref(),
            arrival_date: entry.created,
            date: now,
            message_id: &message_id,
            recipients,
            original: message,
            content,
        };
        let bytes = dsn::build(&report);
        metrics::counter!("mailroom_dsn_generated_total").increment(1);
        let dsn_entry = QueueEntry {
            id: id.clone(),
            sender: None,
            created: now,
            envid: None,
            ret: None,
            body_8bit: !bytes.is_ascii(),
            // The returned header (or the `To:`) may hold UTF-8.
            smtputf8: entry.smtputf8 || !sender.is_ascii(),
            size: bytes.len() as u64,
            held: false,
            recipients: vec![QueuedRecipient::pending(sender.to_string(), now)],
        };
        let incoming = IncomingMessage {
            prefix: Vec::new(),
            body: Arc::new(bytes),
        };
        match self.queue.enqueue(&dsn_entry, &incoming).await {
            Ok(()) => {
                tracing::info!(queue_id = %entry.id, dsn_id = %id, ?kind, to = %sender,
                    "delivery status notification queued");
                self.mta.notify();
                true
            }
            Err(error) => {
                tracing::error!(queue_id = %entry.id, %error, ?kind,
                    "cannot queue the delivery status notification");
                false
            }
        }
    }
}

/// The SMTP transaction for the entry's recipients at `indices`.
fn transaction(entry: &QueueEntry, indices: &[usize], size: usize) -> Transaction {
    let recipients = indices
        .iter()
        .map(|&i| {
            let r = &entry.recipients[i];
            RecipientSpec {
                address: r.address.clone(),
                notify: r.notify.as_deref().and_then(Notify::parse),
                // Queued as `addr-type;address`; the client encodes it.
                orcpt: r.orcpt.as_deref().map(|o| {
                    o.split_once(';')
                        .map_or(o, |(_, address)| address)
                        .to_string()
                }),
            }
        })
        .collect();
    let ret = match entry.ret.as_deref() {
        Some(r) if r.eq_ignore_ascii_case("FULL") => Some(Ret::Full),
        Some(r) if r.eq_ignore_ascii_case("HDRS") => Some(Ret::Hdrs),
        _ => None,
    };
    Transaction {
        reverse_path: entry.sender.clone(),
        recipients,
        size: size as u64,
        needs_8bit: entry.body_8bit,
        needs_smtputf8: entry.smtputf8,
        envid: entry.envid.clone(),
        ret,
    }
}

fn report_for(
    rcpt: &QueuedRecipient,
    attempt: &Attempt,
    action: Action,
    will_retry_until: Option<i64>,
) -> RecipientReport {
    RecipientReport {
        final_recipient: rcpt.address.clone(),
        original_recipient: rcpt.orcpt.clone(),
        action,
        status: attempt.status,
        remote_mta: attempt.remote_mta.clone(),
        diagnostic: attempt.reply.clone(),
        text: attempt.text.clone(),
        will_retry_until,
    }
}

/// The one log line per recipient per attempt: queue id, recipient, relay
/// host, result, reply. Never message contents.
fn log_attempt(queue_id: &str, recipient: &str, attempt: &Attempt) {
    let relay = attempt
        .remote_mta
        .as_deref()
        .or(attempt.relay.as_deref())
        .unwrap_or(if attempt.local { "local" } else { "none" });
    let result = match attempt.kind {
        Kind::Delivered => "delivered",
        Kind::Temporary => "deferred",
        Kind::Permanent => "bounced",
        Kind::NotAttempted => "not-attempted",
    };
    metrics::counter!("mailroom_deliveries_total", "result" => result, "local" => if attempt.local { "yes" } else { "no" }).increment(1);
    tracing::info!(
        queue_id, recipient, relay, result, status = %attempt.status,
        reply = %attempt.text, "delivery attempt"
    );
}

/// The lower-case domain of `local@domain`.
fn domain_of(address: &str) -> Option<String> {
    let (_, domain) = address.rsplit_once('@')?;
    let domain = domain.trim_end_matches('.');
    (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

/// An RFC 3463 code at the start of `text` (`5.2.2 quota exceeded`).
fn status_in(text: &str) -> Option<Status> {
    let word = text.split_whitespace().next()?;
    let mut parts = word.split('.');
    let class = parts
        .next()?
        .parse::<u8>()
        .ok()
        .filter(|c| matches!(c, 2 | 4 | 5))?;
    let subject = parts.next()?.parse::<u16>().ok()?;
    let detail = parts.next()?.parse::<u16>().ok()?;
    parts
        .next()
        .is_none()
        .then_some(Status::new(class, subject, detail))
}

/// A new queue id for a DSN: microseconds, a counter and random bits in
/// Crockford base 32, 20 characters (the server's ids have 19, so the two
/// can never collide).
fn new_queue_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random: u32 = rand::random();
    let mut out = String::with_capacity(20);
    push_base32(&mut out, micros, 11);
    push_base32(&mut out, u64::from(count & 0xF_FFFF), 4);
    push_base32(&mut out, u64::from(random & 0x1FF_FFFF), 5);
    out
}

fn push_base32(out: &mut String, mut value: u64, digits: usize) {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut buf = [b'0'; 13];
    for slot in buf.iter_mut().take(digits).rev() {
        *slot = ALPHABET[(value & 31) as usize];
        value >>= 5;
    }
    out.extend(buf[..digits].iter().map(|&b| b as char));
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Another connection per this many jobs waiting in a lane.
const JOBS_PER_CONNECTION: usize = 4;
/// When a bounce could not be queued, the failure is retried this soon.
const BOUNCE_RETRY_SECS: i64 = 300;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert_eq!(domain_of("a@Example.ORG").as_deref(), Some("example.org"));
        assert_eq!(domain_of("a@b@c.example.").as_deref(), Some("c.example"));
        assert_eq!(domain_of("postmaster"), None);
        assert_eq!(domain_of("a@"), None);
    }

    #[test]
    fn statuses_in_local_texts() {
        assert_eq!(
            status_in("5.2.2 quota exceeded"),
            Some(Status::new(5, 2, 2))
        );
        assert_eq!(status_in("4.3.1 disk full"), Some(Status::new(4, 3, 1)));
        assert_eq!(status_in("no such user"), None);
        assert_eq!(status_in("3.1.1 x"), None);
        assert_eq!(status_in("5.1.1.1 x"), None);
    }

    #[test]
    fn queue_ids_are_unique() {
        let a = new_queue_id();
        let b = new_queue_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 20);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}
