//! Fuzzes the POP3 server session with scripted driver decisions.
//!
//! The body, and the invariants it checks, live in `mailroom_pop3_proto::fuzzing::fuzz_pop3_session`,
//! which `cargo test` also runs over `fuzz/corpus/pop3_session/`. Run with
//! `cargo fuzz run -s none pop3_session` (docs/testing.md, "Fuzzing").

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailroom_pop3_proto::fuzzing::fuzz_pop3_session(data));
