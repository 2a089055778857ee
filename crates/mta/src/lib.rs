//! The outbound agent: it takes mail from the durable queue and delivers
//! it — to other domains' mail exchangers over SMTP, to local maildrops
//! through the binary — retrying on temporary failures and returning
//! delivery status notifications to senders.
//!
//! # What it owns
//!
//! - Routing (RFC 5321 §5.1): the relay map and smarthost, MX look-ups with
//!   hickory-resolver (preference order, shuffled among equals), the
//!   implicit MX, the null MX of RFC 7505, and trying every address of
//!   every exchanger, IPv6 and IPv4, until one answers.
//! - The tokio driver of the pure SMTP client session
//!   (`mailroom-smtp-client`): TCP, STARTTLS with tokio-rustls, the message
//!   streamed through its `DataEncoder`, one connection reused for several
//!   messages to the same destination, and a cap on connections per
//!   destination.
//! - The delivery loop ([`Mta::run`]): claim due entries from the
//!   [`QueueStore`](mailroom_store::QueueStore), deliver, record each
//!   recipient's result with the retry policy of `mailroom-queue`.
//! - DKIM signing ([`Mta::with_dkim`]): mail leaving over SMTP whose
//!   `From:` domain has a key gets a `DKIM-Signature` (RFC 6376), made per
//!   attempt and never stored; mail that came in from the internet (it
//!   carries our own `Authentication-Results`) is not signed.
//! - DSNs ([`dsn`]): RFC 3464 bounces, delay and success notices as RFC 6522
//!   `multipart/report`, honouring RFC 3461 NOTIFY, RET, ENVID and ORCPT.
//!
//! # What it refuses to do
//!
//! - Touch a maildrop, a user table or a file: local recipients go through
//!   [`LocalDelivery`], implemented by the binary; the queue is a trait
//!   object. It never learns a path.
//! - Mangle a message: one that needs 8BITMIME or SMTPUTF8 from a server
//!   without it is bounced with the reason, never downgraded.
//! - Bounce a bounce: mail from the null sender `<>` gets no DSN, whatever
//!   happens to it (RFC 5321 §4.5.5).
//! - Lose a bounce: a DSN is queued before the failed recipient's state is
//!   stored, so a crash in between at worst duplicates it.
//! - Verify MX certificates. STARTTLS to MX hosts is RFC 7435 opportunistic
//!   security: encrypted whenever offered, never authenticated (see the
//!   `tls` module for why); `require_tls` domains refuse plaintext but
//!   still accept any certificate. MTA-STS and DANE are a later wave.
//! - Log message contents: one line per recipient per attempt, with the
//!   queue id, recipient, relay, result and the remote reply.
//!
//! # Data flow
//!
//! ```text
//!  QueueStore ──claim_due──► Mta::run ──► entry task (≤ max_workers)
//!                                          │ local domain ──► LocalDelivery
//!                                          │ remote domain
//!                                          ▼
//!                      lane per first hop (relay host or MX domain + TLS)
//!                        ≤ max_connections_per_destination connections:
//!                        route (relay map | MX → A/AAAA) → connect →
//!                        ClientSession: EHLO, STARTTLS, MAIL/RCPT/DATA …
//!                                          │ per-recipient outcome
//!                                          ▼
//!  QueueStore ◄── enqueue DSN (first) ◄── entry task ──► update / remove
//! ```

mod agent;
mod client;
mod config;
pub mod dsn;
mod local;
mod outcome;
mod route;
pub mod tls;

pub use agent::{Mta, MtaError};
pub use config::MtaConfig;
pub use local::{LocalDelivery, LocalDeliveryError};
pub use mailroom_queue::schedule::RetryPolicy;
pub use outcome::Status;
