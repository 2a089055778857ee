//! Mail authentication, on the `mail-auth` crate: DKIM signing for mail
//! leaving over the relay (RFC 6376), SPF (RFC 7208), DKIM and DMARC
//! (RFC 7489) verification for mail arriving from the internet, the
//! `Authentication-Results` header that records the verdicts (RFC 8601),
//! and the DNS resolver both agents share.
//!
//! # What it owns
//!
//! - [`dns::resolver`]: the one hickory resolver set-up (`--dns HOST:PORT`
//!   or `/etc/resolv.conf`, the timeout, two tries) used by MX routing in
//!   `mailroom-mta` and by the verifier here.
//! - [`keys`]: DKIM key pairs: generation (RSA 2048 or Ed25519), PEM in
//!   and out, the public key and the exact DNS TXT record to publish.
//! - [`sign::Signer`]: one key per domain; signs a message whose `From:`
//!   domain has one (relaxed/relaxed).
//! - [`verify::Verifier`]: SPF for HELO and MAIL FROM, DKIM, DMARC
//!   alignment and policy, the `Authentication-Results` header and the
//!   decision (accept, quarantine, refuse, try later), with DNS answers
//!   cached for their TTLs.
//! - [`results`]: finding and removing `Authentication-Results` fields
//!   that claim to be ours (pure byte work).
//!
//! # What it refuses to do
//!
//! - Read files: the binary reads key files and hands over their bytes.
//! - Decide SMTP replies: it says what to do; the SMTP driver replies.
//! - Turn a DNS failure into a verdict: a timeout or SERVFAIL that could
//!   change the outcome is [`verify::Decision::TempFail`].

pub mod cache;
pub mod dns;
pub mod keys;
pub mod results;
pub mod sign;
pub mod verify;

pub use verify::{Decision, Inbound, Refusal, SpfFailAction, Verdict, Verifier, VerifyPolicy};

pub use keys::{Algorithm, KeyError, KeyPair, PrivateKey};
pub use sign::{DomainKey, Signer};
