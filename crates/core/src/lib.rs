//! Shared vocabulary for mailroom: mail addresses and domains as RFC 5321
//! defines them, and message/queue identifiers.
//!
//! This crate is pure: no I/O, no clocks, no randomness. Everything above it
//! (protocol state machines, stores, agents) speaks in these types.

mod address;
mod domain;
#[doc(hidden)]
pub mod fuzzing;

pub use address::{Address, AddressError, LocalPart};
pub use domain::{Domain, DomainError};
