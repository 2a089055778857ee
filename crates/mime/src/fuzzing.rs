//! The body of the `mime` fuzz target (`fuzz/fuzz_targets/mime.rs`),
//! shared with the `fuzz_corpus_replay` test, which runs it over the
//! committed corpus in `cargo test`. It panics when an invariant breaks;
//! see `mailroom_core::fuzzing` for the scheme.
//!
//! Not part of the API: hidden from the docs, free to change.

use std::collections::HashSet;

use crate::{MAX_DEPTH, MimeError, attachments, describe, missing_date_and_message_id};

/// `mime`: [`describe`], [`attachments`] and the submission check never
/// panic on any octets (under the fuzzer a panic inside mail-parser aborts
/// even though `describe` would catch it, so those count too), and what
/// they return keeps its promises: a tree numbered from `1` and cut at
/// [`MAX_DEPTH`], no control characters in anything `show` prints,
/// attachment names that are single, unique, harmless path components, and
/// the same attachments from both functions.
pub fn fuzz_mime(data: &[u8]) {
    let _ = missing_date_and_message_id(data);
    let summary = describe(data);
    let found = attachments(data);
    let (summary, found) = match (summary, found) {
        (Ok(summary), Ok(found)) => (summary, found),
        (Err(MimeError::ParserFailed), _) | (_, Err(MimeError::ParserFailed)) => {
            panic!("mail-parser panicked")
        }
        (Err(_), Err(_)) => return,
        (summary, found) => panic!(
            "describe and attachments disagree: {:?} / {:?}",
            summary.err(),
            found.err()
        ),
    };

    let shown = |s: &str| s.chars().all(|c| !c.is_control() || c == '\t');
    for field in &summary.headers {
        assert!(
            shown(&field.name) && shown(&field.value),
            "control in {field:?}"
        );
    }
    assert_eq!(summary.parts.first().map(|p| p.path.as_str()), Some("1"));
    for part in &summary.parts {
        assert!(part.depth < MAX_DEPTH, "part {} too deep", part.path);
        assert_eq!(
            part.path.split('.').count(),
            part.depth + 1,
            "path vs depth"
        );
        assert!(part.content_type.contains('/'), "{:?}", part.content_type);
        assert!(shown(&part.content_type));
        for (name, value) in &part.parameters {
            assert!(shown(name) && shown(value));
        }
        for text in [&part.transfer_encoding, &part.disposition, &part.filename]
            .into_iter()
            .flatten()
        {
            assert!(shown(text), "control in {text:?}");
        }
    }
    let rendered = summary.render();
    assert!(
        rendered
            .chars()
            .all(|c| !c.is_control() || c == '\t' || c == '\n'),
        "control character in show's output"
    );

    let named: Vec<(&str, Option<usize>)> = summary
        .parts
        .iter()
        .filter_map(|p| p.attachment.as_deref().map(|name| (name, p.size)))
        .filter(|(_, size)| size.is_some())
        .collect();
    let listed: Vec<(&str, Option<usize>)> = found
        .iter()
        .map(|a| (a.filename.as_str(), Some(a.data.len())))
        .collect();
    assert_eq!(named, listed, "describe and attachments disagree");
    let mut taken = HashSet::new();
    for attachment in &found {
        let name = &attachment.filename;
        assert!(!name.is_empty(), "empty file name");
        assert!(!name.starts_with('.'), "hidden or relative name {name:?}");
        assert!(!name.contains(['/', '\\']), "path separator in {name:?}");
        assert!(!name.chars().any(char::is_control), "control in {name:?}");
        assert!(name.trim() == name, "surrounding white space in {name:?}");
        assert!(taken.insert(name.to_lowercase()), "duplicate name {name:?}");
    }
}

#[cfg(test)]
mod tests {

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn fuzz_corpus_replay() {
        mailroom_core::fuzzing::replay_corpus("mime", fuzz_mime);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn fuzz_mime_random(data in prop::collection::vec(any::<u8>(), 0..300)) {
            fuzz_mime(&data);
        }
    }
}
