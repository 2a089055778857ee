//! Credential checks shared by SMTP AUTH and every POP3 login path. One place
//! decides, so both services behave alike: an unknown user costs the same
//! Argon2 work as a wrong password, failures are delayed and counted
//! (see [`crate::guard`]), and nothing secret is logged.

use std::net::IpAddr;
use std::sync::OnceLock;

use mailroom_core::Domain;
use mailroom_store::{User, password};

use crate::Context;
use crate::sasl::{Credential, constant_time_eq, cram_md5_digest};

/// What the caller offers as proof.
pub(crate) enum Proof {
    /// A SASL credential (PLAIN/LOGIN password or CRAM-MD5 digest).
    Sasl(Credential),
    /// APOP (RFC 1939 §7): the greeting's timestamp and the client's digest.
    Apop { timestamp: String, digest: String },
}

/// The outcome of a login attempt.
pub(crate) enum Verdict {
    /// The credential is right; the canonical user name.
    Accepted(String),
    /// Wrong user or credential (the same answer for both), after the delay.
    Rejected,
    /// Too many failures from this address: refused without checking.
    Blocked,
    /// The user directory could not be read.
    Unavailable,
}

/// Checks `user`'s `proof`. On failure this sleeps for the guard's delay
/// before returning, so callers just answer.
pub(crate) async fn verify(ctx: &Context, ip: IpAddr, user: &str, proof: Proof) -> Verdict {
    if ctx.guard.is_blocked(ip) {
        tracing::warn!(%ip, "login refused: too many recent failures");
        metrics::counter!("mailroom_auth_blocked_total").increment(1);
        return Verdict::Blocked;
    }
    let name = login_name(ctx, user);
    let record = match ctx.users.lookup(&name).await {
        Ok(record) => record,
        Err(err) => {
            tracing::error!(error = %err, "user lookup failed");
            return Verdict::Unavailable;
        }
    };
    if check(record.as_ref(), proof).await {
        ctx.guard.success(ip, &name);
        return Verdict::Accepted(name);
    }
    metrics::counter!("mailroom_auth_failures_total").increment(1);
    let delay = ctx.guard.failure(ip, &name);
    tracing::info!(user = %name, delay_ms = delay.as_millis() as u64, "login failed");
    tokio::time::sleep(delay).await;
    Verdict::Rejected
}

/// The user a login names: lower case, and a full address in a local
/// domain (`alice@example.test`, as account wizards try first) stands for
/// its local part. Any other `@` stays, and names no user.
fn login_name(ctx: &Context, user: &str) -> String {
    let name = user.to_lowercase();
    if let Some((local, domain)) = name.rsplit_once('@')
        && !local.is_empty()
        && Domain::parse(domain, true).is_ok_and(|d| ctx.config().is_local_domain(&d))
    {
        return local.to_string();
    }
    name
}

async fn check(record: Option<&User>, proof: Proof) -> bool {
    match (record, proof) {
        (Some(user), Proof::Sasl(Credential::Password(password))) => {
            if cache::hit(&user.name, &user.password_hash, &password) {
                return true;
            }
            let hash = user.password_hash.clone();
            let ok = argon2_verify(hash, password.clone()).await;
            if ok {
                cache::insert(&user.name, &user.password_hash, &password);
            }
            ok
        }
        (None, Proof::Sasl(Credential::Password(password))) => {
            // Spend the same work on an unknown user as on a known one, so
            // response time does not reveal which names exist.
            let _ = argon2_verify(dummy_hash().to_string(), password).await;
            false
        }
        (Some(user), Proof::Sasl(Credential::CramMd5 { challenge, digest })) => {
            match &user.shared_secret {
                Some(secret) => constant_time_eq(
                    cram_md5_digest(secret, &challenge).as_bytes(),
                    digest.as_bytes(),
                ),
                None => false,
            }
        }
        (Some(user), Proof::Apop { timestamp, digest }) => match &user.shared_secret {
            Some(secret) => mailroom_pop3_proto::apop_verify(&timestamp, secret, &digest),
            None => false,
        },
        (None, _) => false,
    }
}

/// Runs one Argon2id verification on the verifier threads (see
/// [`verifiers`]), at most as many at once as there are cores: each needs
/// ~19 MiB, and more in parallel only adds memory, not throughput.
async fn argon2_verify(hash: String, password: String) -> bool {
    static LIMIT: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    let limit = LIMIT.get_or_init(|| tokio::sync::Semaphore::new(verifiers::count()));
    let Ok(_permit) = limit.acquire().await else {
        return false;
    };
    verifiers::verify(hash, password).await
}

/// A fixed set of threads, one per core, that run the Argon2id checks, each
/// in a working area (~19 MiB) of its own, kept while checks follow one
/// another and given back once none has come for [`LINGER`]. (Allocating
/// and freeing that area per check, on tokio's blocking pool, fragmented
/// the heap: after a burst of 20 logins the server held ~270 MiB; the area
/// is now a mapping of its own, see `password::Argon2Memory`.)
mod verifiers {
    use std::sync::OnceLock;
    use std::time::Duration;

    use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};

    use mailroom_store::password;
    use tokio::sync::oneshot;

    struct Job {
        hash: String,
        password: String,
        reply: oneshot::Sender<bool>,
    }

    pub(super) fn count() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    }

    fn queue() -> Option<&'static Sender<Job>> {
        static QUEUE: OnceLock<Option<Sender<Job>>> = OnceLock::new();
        QUEUE
            .get_or_init(|| {
                // Callers hold one of `count()` permits: the queue never fills.
                let (tx, rx) = bounded::<Job>(count());
                let mut started = 0;
                for i in 0..count() {
                    let rx = rx.clone();
                    let spawned = std::thread::Builder::new()
                        .name(format!("argon2-{i}"))
                        .spawn(move || run(&rx));
                    match spawned {
                        Ok(_) => started += 1,
                        Err(err) => tracing::error!(error = %err, "no Argon2 verifier thread"),
                    }
                }
                (started > 0).then_some(tx)
            })
            .as_ref()
    }

    /// How long a verifier keeps its working area after a check.
    pub(super) const LINGER: Duration = Duration::from_secs(2);

    fn run(rx: &Receiver<Job>) {
        let mut memory = password::Argon2Memory::default();
        loop {
            let job = match rx.recv_timeout(LINGER) {
                Ok(job) => Ok(job),
                Err(RecvTimeoutError::Timeout) => {
                    memory.release();
                    rx.recv().map_err(|_| ())
                }
                Err(RecvTimeoutError::Disconnected) => Err(()),
            };
            let Ok(job) = job else { return };
            let ok = password::verify_in(&job.hash, &job.password, &mut memory);
            let _ = job.reply.send(ok);
        }
    }

    /// False when no verifier thread could be started or the queue is full
    /// (neither happens while callers hold a permit).
    pub(super) async fn verify(hash: String, password: String) -> bool {
        let Some(queue) = queue() else { return false };
        let (reply, answer) = oneshot::channel();
        match queue.try_send(Job {
            hash,
            password,
            reply,
        }) {
            Ok(()) => answer.await.unwrap_or(false),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

/// A short-lived cache of successful password checks, like Dovecot's
/// auth_cache: a client that logs in every minute (POP3 polling) costs one
/// Argon2id verification per TTL instead of one per login. Only successes
/// are cached, keyed by user and stored hash (a password change misses),
/// and the password itself is kept only as an HMAC-SHA-256 under a random
/// per-process key, never in clear.
mod cache {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, Instant};

    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    const TTL: Duration = Duration::from_secs(300);
    const MAX_ENTRIES: usize = 100_000;

    struct Entry {
        stored_hash: String,
        digest: Vec<u8>,
        at: Instant,
    }

    fn table() -> &'static Mutex<HashMap<String, Entry>> {
        static TABLE: OnceLock<Mutex<HashMap<String, Entry>>> = OnceLock::new();
        TABLE.get_or_init(|| Mutex::new(HashMap::new()))
    }

    fn digest(password: &str) -> Vec<u8> {
        static KEY: OnceLock<[u8; 32]> = OnceLock::new();
        let key = KEY.get_or_init(rand::random);
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
            return Vec::new();
        };
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    pub(super) fn hit(user: &str, stored_hash: &str, password: &str) -> bool {
        let table = table().lock().unwrap_or_else(|p| p.into_inner());
        match table.get(user) {
            Some(e)
                if e.stored_hash == stored_hash && e.at.elapsed() < TTL && !e.digest.is_empty() =>
            {
                crate::sasl::constant_time_eq(&e.digest, &digest(password))
            }
            _ => false,
        }
    }

    pub(super) fn insert(user: &str, stored_hash: &str, password: &str) {
        let mut table = table().lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_ENTRIES {
            table.retain(|_, e| e.at.elapsed() < TTL);
        }
        table.insert(
            user.to_string(),
            Entry {
                stored_hash: stored_hash.to_string(),
                digest: digest(password),
                at: Instant::now(),
            },
        );
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn hits_only_the_same_password_and_hash() {
            insert("cache-test", "$hash1", "secret");
            assert!(hit("cache-test", "$hash1", "secret"));
            assert!(!hit("cache-test", "$hash1", "Secret"), "another password");
            assert!(!hit("cache-test", "$hash2", "secret"), "password changed");
            assert!(!hit("nobody", "$hash1", "secret"));
        }
    }
}

/// An Argon2id hash of a random throw-away password, made once.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let throwaway: String = (0..24)
            .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
            .collect();
        password::hash(&throwaway).unwrap_or_default()
    })
}
