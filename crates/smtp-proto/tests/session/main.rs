//! Session tests for `mailroom-smtp-proto`: whole conversations against the
//! state machine, with scripted driver decisions, fed whole, one byte at a
//! time and at every split point.

// Tests may unwrap: a panic is a test failure with a backtrace.
#![allow(clippy::unwrap_used)]

mod harness;
mod limits;
mod properties;
mod smuggling;
mod splitting;
mod states;
mod tls_auth;
mod transcripts;
