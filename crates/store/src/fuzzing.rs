//! The body of the `aliases` fuzz target (`fuzz/fuzz_targets/aliases.rs`),
//! shared with the `fuzz_corpus_replay` test, which runs it over the
//! committed corpus in `cargo test`. It panics when an invariant breaks;
//! see `mailroom_core::fuzzing` for the scheme.
//!
//! Not part of the API: hidden from the docs, free to change.

use mailroom_core::fuzzing::text;

use crate::aliases::{AliasTable, MAX_MEMBERS};

/// `aliases`: [`AliasTable::parse`] of any text never panics, and
/// expanding every alias terminates within the limits, with sorted,
/// deduplicated, lower-case results that never name a program, a file or
/// an include (aliases(5) `|cmd`, `/path`, `:include:`), however the
/// target was spelt.
pub fn fuzz_aliases(data: &[u8]) {
    let text = text(data);
    let (table, warnings) = AliasTable::parse(&text);
    for warning in &warnings {
        assert!(warning.starts_with("line "), "warning {warning:?}");
    }
    assert_eq!(table.len(), table.names().count());
    assert_eq!(table.is_empty(), table.names().next().is_none());
    for name in table.names() {
        assert_eq!(name, name.to_lowercase(), "alias name not lower case");
        assert!(table.is_alias(name));
        let Some(expansion) = table.expand(name) else {
            panic!("alias {name:?} does not expand");
        };
        assert_eq!(table.expand(name).as_ref(), Some(&expansion), "not stable");
        let upper = name.to_ascii_uppercase();
        if upper.to_lowercase() == name {
            assert_eq!(table.expand(&upper).as_ref(), Some(&expansion), "case");
        }
        assert!(
            expansion.local.windows(2).all(|w| w[0] < w[1]),
            "local names not sorted and unique"
        );
        assert!(
            expansion.remote.windows(2).all(|w| w[0] < w[1]),
            "remote addresses not sorted and unique"
        );
        assert!(expansion.local.len() + expansion.remote.len() <= MAX_MEMBERS);
        assert!(
            expansion.truncated || !expansion.local.is_empty() || !expansion.remote.is_empty(),
            "alias {name:?} expands to nobody"
        );
        for local in &expansion.local {
            assert!(!local.is_empty());
            assert_eq!(local, &local.to_lowercase(), "local name not lower case");
            assert!(
                !local.starts_with(['|', '/'])
                    && !local
                        .get(..9)
                        .is_some_and(|p| p.eq_ignore_ascii_case(":include:")),
                "alias {name:?} expands to the refused target {local:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn fuzz_corpus_replay() {
        mailroom_core::fuzzing::replay_corpus("aliases", fuzz_aliases);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Alias-file-shaped text: names, targets, continuations, quotes.
        #[test]
        fn fuzz_aliases_random(lines in prop::collection::vec(
            "[a-c]{1,2}: ?[a-c\\\\\"|/@.,<> ]{0,12}|[ \t][a-c, ]{0,8}|#.*",
            0..12,
        )) {
            fuzz_aliases(lines.join("\n").as_bytes());
        }
    }
}
