//! Fuzzes the POP3 client session against a hostile server.
//!
//! The body, and the invariants it checks, live in `mailroom_pop3_proto::fuzzing::fuzz_pop3_client`,
//! which `cargo test` also runs over `fuzz/corpus/pop3_client/`. Run with
//! `cargo fuzz run -s none pop3_client` (docs/testing.md, "Fuzzing").

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailroom_pop3_proto::fuzzing::fuzz_pop3_client(data));
