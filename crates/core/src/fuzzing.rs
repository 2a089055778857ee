//! Fuzzing support shared by every mailroom crate, and the `address` fuzz
//! target's body.
//!
//! Each crate keeps the body of its fuzz targets in a hidden `fuzzing`
//! module as `fuzz_<target>(data: &[u8])`. The cargo-fuzz binaries in
//! `fuzz/fuzz_targets/` only call these functions, and each crate's
//! `fuzz_corpus_replay` test runs the same functions over every file of
//! `fuzz/corpus/<target>/`, so `cargo test` exercises the committed corpus
//! without nightly or cargo-fuzz. The functions panic (assert) when an
//! invariant breaks: that is what the fuzzer looks for.
//!
//! Not part of the API: hidden from the docs, free to change.

use crate::{Address, Domain};

/// A fuzz input split in two: data (chunk sizes, bytes to send) and
/// decisions (how a driver answers an event). The last byte says how many
/// bytes before it are decisions; everything before those is data. Keeping
/// the two apart means the fuzzer can change an answer without shifting
/// the bytes on the wire, and a seed is easy to write: data, decisions,
/// then their count. Both read zeros once used up (0 is always the plain,
/// accepting answer).
#[derive(Debug, Clone)]
pub struct Input<'a> {
    data: &'a [u8],
    decisions: &'a [u8],
}

impl<'a> Input<'a> {
    /// An input over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        let Some((&count, rest)) = data.split_last() else {
            return Input {
                data,
                decisions: data,
            };
        };
        let (data, decisions) = rest.split_at(rest.len() - usize::from(count).min(rest.len()));
        Input { data, decisions }
    }

    /// True when no data is left.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next data byte, `None` once the data is used up.
    pub fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.data.split_first()?;
        self.data = rest;
        Some(first)
    }

    /// Up to `n` data bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    /// The next decision byte; 0 once the decisions are used up.
    pub fn decision(&mut self) -> u8 {
        match self.decisions.split_first() {
            Some((&first, rest)) => {
                self.decisions = rest;
                first
            }
            None => 0,
        }
    }
}

/// Reads `data` as UTF-8 text: as is when it is valid, else lossily, so
/// text parsers see every input the fuzzer makes.
pub fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// The `address` target: [`Address::parse`] and [`Domain::parse`] in both
/// modes never panic, and what parses survives Display → parse unchanged.
/// ASCII mode accepts a subset of what SMTPUTF8 mode accepts, with the
/// same result.
pub fn fuzz_address(data: &[u8]) {
    let input = text(data);
    let ascii = Address::parse(&input, false);
    let utf8 = Address::parse(&input, true);
    if let Ok(address) = &ascii {
        assert_eq!(Ok(address), utf8.as_ref(), "ASCII mode accepts more");
        assert!(!address.is_utf8(), "non-ASCII address in ASCII mode");
    }
    for (utf8, parsed) in [(false, &ascii), (true, &utf8)] {
        let Ok(address) = parsed else { continue };
        let shown = address.to_string();
        assert_eq!(
            Address::parse(&shown, utf8).as_ref(),
            Ok(address),
            "address round trip through {shown:?} (utf8 {utf8})"
        );
        assert!(address.local_part().as_str().len() <= 64);
        check_domain(address.domain(), utf8);
    }

    let ascii = Domain::parse(&input, false);
    let utf8 = Domain::parse(&input, true);
    if let Ok(domain) = &ascii {
        assert_eq!(Ok(domain), utf8.as_ref(), "ASCII mode accepts more");
    }
    for (utf8, parsed) in [(false, &ascii), (true, &utf8)] {
        if let Ok(domain) = parsed {
            check_domain(domain, utf8);
        }
    }
}

/// A parsed domain is in normal form: parsing its text again gives it back.
fn check_domain(domain: &Domain, utf8: bool) {
    let shown = domain.to_string();
    assert_eq!(
        Domain::parse(&shown, utf8).as_ref(),
        Ok(domain),
        "domain round trip through {shown:?} (utf8 {utf8})"
    );
    if domain.is_literal() {
        assert!(shown.starts_with('[') && shown.ends_with(']'));
    } else {
        assert!(domain.literal_ip().is_none());
        assert!(shown.len() <= 255, "domain over 255 octets: {shown:?}");
        assert!(
            shown.split('.').all(|label| label.len() <= 63),
            "label over 63 octets: {shown:?}"
        );
    }
}

/// Runs `run` over every file of `fuzz/corpus/<target>/`; panics naming
/// the files that failed, or when there is none. Each crate's
/// `fuzz_corpus_replay` test calls it. The path is resolved from the
/// directory of the crate under test (every crate lives in `crates/`), read
/// when the test runs: a build cached from a checkout elsewhere still finds
/// this checkout's corpus.
pub fn replay_corpus(target: &str, run: fn(&[u8])) {
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || env!("CARGO_MANIFEST_DIR").into(),
        std::path::PathBuf::from,
    );
    let dir = crate_dir.join("../../fuzz/corpus").join(target);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    let mut failed = Vec::new();
    for path in &paths {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(!paths.is_empty(), "no corpus files in {}", dir.display());
    assert!(failed.is_empty(), "corpus files failed: {failed:?}");
}

#[cfg(test)]
mod tests {

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn input_splits_data_and_decisions() {
        let mut input = Input::new(b"abcde\x02");
        assert_eq!(input.byte(), Some(b'a'));
        assert_eq!(input.decision(), b'd');
        assert_eq!(input.bytes(5), b"bc");
        assert!(input.is_empty());
        assert_eq!(
            (input.byte(), input.decision(), input.decision()),
            (None, b'e', 0)
        );
        // A count larger than the input makes everything decisions.
        let mut input = Input::new(b"ab\xff");
        assert_eq!((input.byte(), input.decision()), (None, b'a'));
        let mut input = Input::new(b"");
        assert_eq!((input.byte(), input.decision()), (None, 0));
    }

    #[test]
    fn fuzz_corpus_replay() {
        replay_corpus("address", fuzz_address);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn fuzz_address_random(data in prop::collection::vec(any::<u8>(), 0..80)) {
            fuzz_address(&data);
        }

        /// Address-shaped text reaches the interesting paths more often.
        #[test]
        fn fuzz_address_shaped(s in "[\"\\\\a-zA-Z0-9.+@\\[\\]:ÜüȺİ -]{0,40}") {
            fuzz_address(s.as_bytes());
        }
    }
}
