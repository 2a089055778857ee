//! Fuzzes the SMTP client: the reply parser, and a client session fed a
//! hostile server's bytes with its events answered as the input says.
//!
//! The body, and the invariants it checks, live in `mailroom_smtp_client::fuzzing::fuzz_smtp_client_reply`,
//! which `cargo test` also runs over `fuzz/corpus/smtp_client_reply/`. Run with
//! `cargo fuzz run -s none smtp_client_reply` (docs/testing.md, "Fuzzing").

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailroom_smtp_client::fuzzing::fuzz_smtp_client_reply(data));
