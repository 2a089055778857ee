//! Internet messages for mailroom: RFC 5322 and MIME (RFC 2045–2049,
//! RFC 2047 encoded words, RFC 2231 parameters) on top of mail-parser and
//! mail-builder.
//!
//! This crate owns what mailroom does *with* messages rather than with the
//! wire:
//!
//! - [`describe`], [`attachments`]: what `mailroom show` prints and
//!   extracts: decoded header fields, the MIME tree with part numbers and
//!   decoded sizes, attachments with safe unique file names;
//! - [`compose`]: the message `mailroom send` submits, from a [`Draft`];
//! - [`missing_date_and_message_id`]: the RFC 6409 §8 submission fix-ups
//!   the server applies.
//!
//! It does not parse or build MIME itself: mail-parser and mail-builder do,
//! and this crate adds only what they lack (see each module). It is layer 0
//! (STYLE.md §1): no I/O, no clock, no randomness. The caller passes the
//! date and Message-ID in, and writes attachments out. Malformed input never
//! panics it: a parse gives a best-effort result with notes on the parts
//! that were wrong.

mod compose;
mod content_type;
mod error;
mod filename;
#[doc(hidden)]
pub mod fuzzing;
mod show;
mod submission;

pub use compose::{Draft, compose};
pub use content_type::guess_content_type;
pub use error::MimeError;
pub use show::{
    Attachment, HeaderField, MAX_DEPTH, MessageSummary, PartSummary, attachments, describe,
};
pub use submission::missing_date_and_message_id;
