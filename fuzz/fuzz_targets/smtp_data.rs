//! Fuzzes the DATA decoder against a reference decoder, in arbitrary chunks.
//!
//! The body, and the invariants it checks, live in `mailroom_smtp_proto::fuzzing::fuzz_smtp_data`,
//! which `cargo test` also runs over `fuzz/corpus/smtp_data/`. Run with
//! `cargo fuzz run -s none smtp_data` (docs/testing.md, "Fuzzing").

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailroom_smtp_proto::fuzzing::fuzz_smtp_data(data));
