//! Runs the plain-text dialogues in `testdata/transcripts/` (format in its
//! README) against the session, fed whole and one byte at a time.

use std::path::Path;

use crate::harness::*;

/// One step: bytes the client sends as one chunk, then the output expected
/// after it (cumulative).
struct Step {
    input: Vec<u8>,
    expected: String,
}

fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('r') => out.push(b'\r'),
                Some('n') => out.push(b'\n'),
                Some('0') => out.push(0),
                Some('\\') => out.push(b'\\'),
                other => panic!("bad escape \\{other:?} in {text:?}"),
            },
            (c, false) => out.extend_from_slice(c.to_string().as_bytes()),
        }
    }
    out
}

fn parse(text: &str) -> (String, Vec<Step>) {
    let mut greeting = String::new();
    let mut steps: Vec<Step> = Vec::new();
    let mut expected = String::new();
    let mut sending = false;
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (tag, rest) = line.split_at(2.min(line.len()));
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        match tag {
            "C:" | "C~" => {
                if !sending {
                    steps.push(Step {
                        input: Vec::new(),
                        expected: String::new(),
                    });
                    sending = true;
                }
                let step = steps.last_mut().unwrap();
                step.input.extend(unescape(rest));
                if tag == "C:" {
                    step.input.extend_from_slice(b"\r\n");
                }
            }
            "S:" => {
                sending = false;
                expected.push_str(rest);
                expected.push_str("\r\n");
                match steps.last_mut() {
                    Some(step) => step.expected = expected.clone(),
                    None => greeting = expected.clone(),
                }
            }
            _ => panic!("bad transcript line {line:?}"),
        }
    }
    (greeting, steps)
}

fn check(name: &str, text: &str) {
    let (greeting, steps) = parse(text);
    assert_eq!(greeting, GREETING, "{name}: greeting");
    // Step by step, each chunk whole.
    let mut chunks = Vec::new();
    for step in &steps {
        chunks.push(step.input.as_slice());
        let t = run(config(), &chunks);
        assert_eq!(
            t.text(),
            step.expected,
            "{name}: after sending {:?}",
            String::from_utf8_lossy(&step.input)
        );
    }
    // The whole dialogue, one byte at a time.
    let all: Vec<u8> = steps.iter().flat_map(|s| s.input.clone()).collect();
    let bytes: Vec<&[u8]> = all.chunks(1).collect();
    let final_expected = steps
        .last()
        .map_or(greeting.clone(), |s| s.expected.clone());
    assert_eq!(
        run(config(), &bytes).text(),
        final_expected,
        "{name}: byte by byte"
    );
}

#[test]
fn transcripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/transcripts");
    let mut ran = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.extension().is_some_and(|e| e == "txt") {
            let text = std::fs::read_to_string(&path).unwrap();
            check(&path.display().to_string(), &text);
            ran += 1;
        }
    }
    assert!(
        ran >= 5,
        "only {ran} transcripts found in {}",
        dir.display()
    );
}
