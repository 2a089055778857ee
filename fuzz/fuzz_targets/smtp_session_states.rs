//! Fuzzes the SMTP server session as a structured conversation: reads of
//! remapped fragments or raw bytes, timeouts and shutdowns, each event answered
//! (accepted, refused, deferred) as the input says.
//!
//! The body, and the invariants it checks, live in `mailroom_smtp_proto::fuzzing::fuzz_smtp_session_states`,
//! which `cargo test` also runs over `fuzz/corpus/smtp_session_states/`. Run with
//! `cargo fuzz run -s none smtp_session_states` (docs/testing.md, "Fuzzing").

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailroom_smtp_proto::fuzzing::fuzz_smtp_session_states(data));
