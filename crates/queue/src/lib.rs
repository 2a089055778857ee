//! The outbound queue's pure parts: the versioned envelope text format that
//! engines persist ([`envelope`]) and the retry policy ([`schedule`]), a pure
//! function of an entry's history and `now`. No I/O, no clock, no randomness
//! without a seed: storage lives behind `mailroom_store::QueueStore`, and
//! delivery in the `mta` crate.

pub mod envelope;
#[doc(hidden)]
pub mod fuzzing;
pub mod schedule;
