//! Credential checks shared by SMTP AUTH and every POP3 login path. One place
//! decides, so both services behave alike: an unknown user costs the same
//! Argon2 work as a wrong password, failures are delayed and counted
//! (see [`crate::guard`]), and nothing secret is logged.

use std::net::IpAddr;
use std::sync::OnceLock;

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
    let name = user.to_lowercase();
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

async fn check(record: Option<&User>, proof: Proof) -> bool {
    match (record, proof) {
        (Some(user), Proof::Sasl(Credential::Password(password))) => {
            let hash = user.password_hash.clone();
            tokio::task::spawn_blocking(move || password::verify(&hash, &password))
                .await
                .unwrap_or(false)
        }
        (None, Proof::Sasl(Credential::Password(password))) => {
            // Spend the same work on an unknown user as on a known one, so
            // response time does not reveal which names exist.
            let hash = dummy_hash().to_string();
            let _ = tokio::task::spawn_blocking(move || password::verify(&hash, &password)).await;
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
