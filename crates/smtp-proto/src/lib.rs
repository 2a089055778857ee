//! The SMTP wire protocol, server side: commands, replies, reply codes and
//! the server session state machine (RFC 5321 with PIPELINING, SIZE,
//! 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8, CHUNKING, DSN, STARTTLS and
//! AUTH).
//!
//! # What this crate owns
//!
//! * [`ServerSession`]: bytes in, replies and [`Event`]s out. Framing (CR LF
//!   only), line limits, command syntax ([`command`]), RFC 5321 §4.1.4
//!   sequencing, the recipient/size/error limits, DATA decoding
//!   ([`data::DataDecoder`]) and BDAT chunks all live here, so every rule can
//!   be tested without a socket, one byte at a time.
//! * [`Reply`] and the named replies in [`codes`]: drivers never write a
//!   bare reply code.
//! * Helpers for the other side of the wire: [`dot::stuff`] and
//!   [`message::received_header_count`].
//!
//! # What it refuses to do
//!
//! No I/O of any kind: no sockets, no TLS, no clock, no files, no
//! randomness. It never decides who a recipient is, whether to relay,
//! whether a password is right or when a message is durable: it emits an
//! event and waits for the driver's answer. It never panics on input, and
//! it is strict: bare CR or LF never ends a line or the data (SMTP
//! smuggling), plaintext pipelined after STARTTLS is discarded.
//!
//! # Driving a session
//!
//! ```text
//!   new(config) ──► take_output()  (220 greeting)
//!        ┌──────────────────────────────────────────────────────────┐
//!        ▼                                                          │
//!   poll_event() ─ Some(event needing a decision) ─► accept()/respond()/
//!        │                                           auth_challenge()/
//!        │ None                                      auth_succeeded()/
//!        ▼                                           tls_established()
//!   take_output() ──► write to peer; if is_closed(): close          │
//!        │                                                          │
//!        ▼                                                          │
//!   read (next_timeout()) ──► handle_input(bytes) / timed_out() ─────┘
//! ```
//!
//! See [`ServerSession`] for the details of the order.

mod bdat;
pub mod codes;
pub mod command;
mod config;
pub mod data;
pub mod dot;
mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod message;
mod reply;
mod session;

pub use command::{
    Auth, Bdat, BodyType, Command, CommandError, ForwardPath, Mail, MailParams, Notify, RcptParams,
    Recipient, Ret,
};
pub use config::{ServerConfig, Timeout};
pub use event::{Envelope, Event};
pub use reply::{EnhancedCode, Reply};
pub use session::ServerSession;
