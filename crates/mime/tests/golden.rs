//! Golden corpus (STYLE.md §2.9 item 6): every `testdata/*/NAME.eml` is
//! described with LF and with CRLF line ends, and the output must equal
//! `NAME.txt` (LF) and `NAME.crlf.txt` (CRLF). A mismatch writes the actual
//! output to `NAME.txt.failed` / `NAME.crlf.txt.failed`; review it and
//! rename it to accept.

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use mailroom_mime::{attachments, describe};

#[test]
fn golden_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut ran = 0;
    let mut failures = Vec::new();
    for dir in ["rfc", "malformed"] {
        for path in eml_files(&root.join(dir)) {
            let raw = fs::read(&path).unwrap();
            let lf = to_lf(&raw);
            let crlf = to_crlf(&lf);
            for (input, extension) in [(lf, "txt"), (crlf, "crlf.txt")] {
                ran += 1;
                let actual = golden_text(&input);
                let expected_path = path.with_extension(extension);
                let failed_path = PathBuf::from(format!("{}.failed", expected_path.display()));
                match fs::read_to_string(&expected_path) {
                    Ok(expected) if expected == actual => {
                        let _ = fs::remove_file(&failed_path);
                    }
                    Ok(_) => {
                        fs::write(&failed_path, &actual).unwrap();
                        failures.push(format!("{} differs", expected_path.display()));
                    }
                    Err(_) => {
                        fs::write(&failed_path, &actual).unwrap();
                        failures.push(format!("{} is missing", expected_path.display()));
                    }
                }
            }
        }
    }
    assert!(ran > 0, "no .eml files found under {}", root.display());
    assert!(
        failures.is_empty(),
        "{} of {ran} golden checks failed (actual output in *.failed):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `render()`, then the attachments with their sizes and first octets.
fn golden_text(raw: &[u8]) -> String {
    let mut out = match describe(raw) {
        Ok(summary) => summary.render(),
        Err(error) => return format!("error: {error}\n"),
    };
    let found = attachments(raw).unwrap();
    out.push_str("--- attachments\n");
    for attachment in found {
        let head: String = attachment
            .data
            .iter()
            .take(24)
            .flat_map(|&b| std::ascii::escape_default(b))
            .map(char::from)
            .collect();
        let _ = writeln!(
            out,
            "{} {} {} octets: {head}",
            attachment.filename,
            attachment.content_type,
            attachment.data.len()
        );
    }
    out
}

fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn to_lf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter().peekable();
    while let Some(&b) = bytes.next() {
        if b == b'\r' && bytes.peek() == Some(&&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

fn to_crlf(lf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lf.len() + lf.len() / 16);
    for &b in lf {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}
