//! Fuzzes aliases(5) parsing and the expansion of every alias.
//!
//! The body, and the invariants it checks, live in `mailroom_store::fuzzing::fuzz_aliases`,
//! which `cargo test` also runs over `fuzz/corpus/aliases/`. Run with
//! `cargo fuzz run -s none aliases` (docs/testing.md, "Fuzzing").

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailroom_store::fuzzing::fuzz_aliases(data));
