//! Fuzzes the SMTP command line parser.
//!
//! The body, and the invariants it checks, live in `mailroom_smtp_proto::fuzzing::fuzz_smtp_command`,
//! which `cargo test` also runs over `fuzz/corpus/smtp_command/`. Run with
//! `cargo fuzz run -s none smtp_command` (docs/testing.md, "Fuzzing").

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailroom_smtp_proto::fuzzing::fuzz_smtp_command(data));
