//! The SMTP client side of mailroom, without I/O: what the MTA uses to hand
//! queued mail to remote mail exchangers, and `mailroom send` to submit
//! mail (STARTTLS + AUTH PLAIN/LOGIN).
//!
//! # What it owns
//!
//! - [`ClientSession`]: one connection's state machine, from greeting to
//!   QUIT (RFC 5321): EHLO with HELO fallback, STARTTLS per a [`TlsPolicy`]
//!   (RFC 3207), AUTH PLAIN/LOGIN (RFC 4954), any number of transactions
//!   with PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152),
//!   SMTPUTF8 (RFC 6531) and DSN parameters (RFC 3461), and the
//!   RFC 5321 §4.5.3.2 timeouts by name.
//! - Per-recipient outcomes ([`TransactionResult`]): 2yz delivered, 4yz and
//!   connection failures temporary, 5yz permanent.
//! - [`ReplyParser`]: incremental, strict reply parsing (CRLF only, line and
//!   reply limits, RFC 2034 enhanced codes).
//! - [`DataEncoder`]: dot-stuffing and the terminator (RFC 5321 §4.5.2),
//!   never emitting a bare CR or LF.
//!
//! # What it refuses to do
//!
//! - Any I/O: no sockets, no TLS, no clock, no DNS. Bytes go in through
//!   [`ClientSession::handle_input`], bytes come out of
//!   [`ClientSession::take_output`], time is a [`ClientTimeout`] the driver
//!   arms, and the TLS handshake is the driver's, between
//!   [`ClientEvent::StartTls`] and [`ClientSession::tls_established`]. This
//!   is the quinn-proto / rustls split.
//! - Mangling a message: a message that needs 8BITMIME or SMTPUTF8 from a
//!   server that lacks it, or that exceeds its SIZE, fails permanently
//!   before anything is sent. There is no downgrading.
//! - Sending credentials without TLS, unless the config says so.
//! - Choosing MX hosts, retrying, or building bounces: that is the MTA's.
//!
//! # Poll order
//!
//! ```text
//!  driver                               ClientSession
//!  connect ───────────────────────────► new(config)
//!  loop {
//!    while let Some(ev) = poll_event()  ◄── Ready / StartTls / SendData /
//!      handle ev (submit, quit,              TransactionDone / Closed / Failed
//!        tls handshake + tls_established,
//!        stream DataEncoder + data_sent)
//!    write take_output()                ◄── command bytes
//!    arm next_timeout(); read
//!    bytes ──────────────────────────► handle_input(bytes)
//!    EOF/error ──────────────────────► connection_lost()
//!    timer ──────────────────────────► timed_out()
//!  }
//! ```
//!
//! See [`ClientSession`] for the rules in detail.

mod data;
mod encoding;
mod error;
mod extensions;
#[doc(hidden)]
pub mod fuzzing;
mod reply;
mod session;
mod timeout;
mod transaction;

pub use data::DataEncoder;
pub use error::{ClientError, ConfigError, UsageError};
pub use extensions::Extensions;
pub use reply::{MAX_REPLY_LINE, MAX_REPLY_LINES, Reply, ReplyError, ReplyParser};
pub use session::{ClientConfig, ClientEvent, ClientSession, Credentials, TlsPolicy};
pub use timeout::{
    COMMAND_TIMEOUT, ClientTimeout, DATA_BLOCK_TIMEOUT, DATA_INIT_TIMEOUT,
    DATA_TERMINATION_TIMEOUT, INITIAL_TIMEOUT, MAIL_TIMEOUT, RCPT_TIMEOUT,
};
pub use transaction::{
    Failure, LocalReason, Notify, Outcome, RecipientSpec, Ret, Transaction, TransactionResult,
};
