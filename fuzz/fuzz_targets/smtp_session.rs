//! Fuzzes the SMTP server session: arbitrary bytes in arbitrary chunks, with a
//! driver that accepts every decision; the first byte can remap the rest
//! into SMTP fragments.
//!
//! The body, and the invariants it checks, live in `mailroom_smtp_proto::fuzzing::fuzz_smtp_session`,
//! which `cargo test` also runs over `fuzz/corpus/smtp_session/`. Run with
//! `cargo fuzz run -s none smtp_session` (docs/testing.md, "Fuzzing").

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailroom_smtp_proto::fuzzing::fuzz_smtp_session(data));
