//! Fuzzes message parsing: mailroom_mime::describe and attachments.
//!
//! The body, and the invariants it checks, live in `mailroom_mime::fuzzing::fuzz_mime`,
//! which `cargo test` also runs over `fuzz/corpus/mime/`. Run with
//! `cargo fuzz run -s none mime` (docs/testing.md, "Fuzzing").

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailroom_mime::fuzzing::fuzz_mime(data));
