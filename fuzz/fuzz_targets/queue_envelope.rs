//! Fuzzes the queue envelope format: parse, and serialize -> parse round trips.
//!
//! The body, and the invariants it checks, live in `mailroom_queue::fuzzing::fuzz_queue_envelope`,
//! which `cargo test` also runs over `fuzz/corpus/queue_envelope/`. Run with
//! `cargo fuzz run -s none queue_envelope` (docs/testing.md, "Fuzzing").

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailroom_queue::fuzzing::fuzz_queue_envelope(data));
