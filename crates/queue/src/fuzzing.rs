//! The body of the `queue_envelope` fuzz target
//! (`fuzz/fuzz_targets/queue_envelope.rs`), shared with the
//! `fuzz_corpus_replay` test, which runs it over the committed corpus in
//! `cargo test`. It panics when an invariant breaks (see
//! `mailroom_core::fuzzing` for the scheme).
//!
//! Not part of the API: hidden from the docs, free to change.

use mailroom_store::{QueueEntry, QueuedRecipient, RecipientState};

use crate::envelope::{parse, serialize};

/// `queue_envelope`: [`parse`] of any file never panics, and an entry it
/// reads survives serialize → parse unchanged, with serialize's output
/// parsed to the same file again. Then the same input is read as the
/// strings and numbers of an arbitrary entry, which must survive
/// serialize → parse too ("every entry, whatever its strings hold, has a
/// representation that parse reads back").
pub fn fuzz_queue_envelope(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(entry) = parse(&text) {
        round_trip(&entry);
    }
    round_trip(&entry_from(data));
}

fn round_trip(entry: &QueueEntry) {
    let written = serialize(entry);
    assert!(
        written
            .bytes()
            .all(|b| b == b'\n' || (b' '..=b'~').contains(&b)),
        "serialize wrote a byte that is not printable ASCII or LF"
    );
    assert_eq!(
        parse(&written).as_ref(),
        Ok(entry),
        "round trip of {written}"
    );
    // Every line but the last is cut at LF: a shorter file is truncated,
    // never read as a different entry.
    if let Some(cut) = written.trim_end_matches('\n').rfind('\n') {
        assert!(parse(&written[..=cut]).is_err(), "a cut file parsed");
    }
}

/// An arbitrary entry: the input's lines are its strings (a line starting
/// with `-` is an absent optional string), its first octets its numbers
/// and flags.
fn entry_from(data: &[u8]) -> QueueEntry {
    let word = |index: usize| {
        let mut bytes = [0u8; 8];
        for (slot, &b) in bytes.iter_mut().zip(data.iter().skip(index * 8)) {
            *slot = b;
        }
        u64::from_le_bytes(bytes)
    };
    let mut strings = data
        .split(|&b| b == b'\n')
        .map(|line| String::from_utf8_lossy(line).into_owned());
    let optional = |s: Option<String>| s.filter(|s| !s.starts_with('-'));
    let flags = word(1);
    let id = strings.next().unwrap_or_default();
    let sender = optional(strings.next());
    let envid = optional(strings.next());
    let ret = optional(strings.next());
    let mut recipients = Vec::new();
    while let Some(address) = strings.next() {
        let n = recipients.len();
        let bits = word(3 + n);
        recipients.push(QueuedRecipient {
            address,
            orcpt: optional(strings.next()),
            notify: optional(strings.next()),
            state: match bits % 3 {
                0 => RecipientState::Pending,
                1 => RecipientState::Delivered,
                _ => RecipientState::Failed,
            },
            attempts: (bits >> 8) as u32,
            next_attempt: bits.rotate_left(7) as i64,
            last_reply: optional(strings.next()),
            delay_notified: bits & 4 != 0,
        });
    }
    QueueEntry {
        id,
        sender,
        created: word(0) as i64,
        envid,
        ret,
        body_8bit: flags & 1 != 0,
        smtputf8: flags & 2 != 0,
        size: word(2),
        held: flags & 4 != 0,
        recipients,
    }
}

#[cfg(test)]
mod tests {

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn fuzz_corpus_replay() {
        mailroom_core::fuzzing::replay_corpus("queue_envelope", fuzz_queue_envelope);
    }

    #[test]
    fn the_golden_file_round_trips() {
        let golden = include_bytes!("../testdata/envelope-v1.txt");
        assert!(parse(&String::from_utf8_lossy(golden)).is_ok());
        fuzz_queue_envelope(golden);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn fuzz_queue_envelope_random(data in prop::collection::vec(any::<u8>(), 0..200)) {
            fuzz_queue_envelope(&data);
        }
    }
}
