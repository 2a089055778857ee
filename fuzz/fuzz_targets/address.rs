//! Fuzzes Address::parse and Domain::parse in both UTF-8 modes, with a
//! Display -> parse round trip.
//!
//! The body, and the invariants it checks, live in `mailroom_core::fuzzing::fuzz_address`,
//! which `cargo test` also runs over `fuzz/corpus/address/`. Run with
//! `cargo fuzz run -s none address` (docs/testing.md, "Fuzzing").

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailroom_core::fuzzing::fuzz_address(data));
