//! CHUNKING (RFC 3030): the state of one BDAT chunk being read.
//!
//! The octets of a chunk are always consumed, whatever happens to them, so
//! the session stays in sync: RFC 3030 §2 "the receiver-SMTP MUST be
//! prepared to accept and discard additional BDAT chunks already in the
//! pipeline after the failed BDAT".

use crate::reply::Reply;

/// One chunk being read.
#[derive(Debug, Clone)]
pub(crate) struct Chunk {
    /// The size announced on the BDAT line.
    pub(crate) size: u64,
    /// Octets still to read.
    pub(crate) remaining: u64,
    /// BDAT … LAST.
    pub(crate) last: bool,
    /// What happens to the octets and which reply follows them.
    pub(crate) disposition: Disposition,
}

/// Whether a chunk's octets are kept.
#[derive(Debug, Clone)]
pub(crate) enum Disposition {
    /// Append to the transaction's message.
    Store,
    /// Throw the octets away, then send `reply`.
    Discard {
        /// The reply after the octets.
        reply: Reply,
        /// The reply counts as a protocol error.
        error: bool,
        /// The transaction ends (RFC 3030 §2: a failed chunk fails the
        /// transaction).
        reset: bool,
    },
}

impl Chunk {
    /// A chunk of `size` octets with the given disposition.
    pub(crate) fn new(size: u64, last: bool, disposition: Disposition) -> Self {
        Chunk {
            size,
            remaining: size,
            last,
            disposition,
        }
    }

    /// How many of `available` input octets belong to this chunk.
    pub(crate) fn take(&mut self, available: usize) -> usize {
        let n = usize::try_from(self.remaining).map_or(available, |r| r.min(available));
        self.remaining -= n as u64;
        n
    }
}
