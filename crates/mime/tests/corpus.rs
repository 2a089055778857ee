//! Real mail: CPython's email test messages (Debian package
//! libpython3.11-testsuite) and the .eml files shipped in the mail-parser
//! crate, plus our golden corpus.
//!
//! - `describe` and `attachments` succeed on every file and agree with
//!   each other (no file needs an exception: mail-parser returns a tree
//!   for all of them, malformed ones included);
//! - the MIME tree (part count and content types, depth first) equals what
//!   Python's email package finds (`tests/mime_tree.py`), except for the
//!   documented disagreements in `PYTHON_DISAGREES`.
//!
//! A missing corpus or python3 prints SKIP, and fails when `CI=true`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use mailroom_mime::{attachments, describe};
use mailroom_testkit::corpus;

/// Files where our tree and Python's differ for a good reason, by file name
/// relative to its corpus root, with the reason. The test fails when a
/// file disagrees without being listed, and when a listed file agrees.
const PYTHON_DISAGREES: &[(&str, &str)] = &[
    // Python models these message/* bodies as embedded messages; they are
    // not messages a reader opens (RFC 3464 status fields, RFC 2046 §5.2.3
    // phantom headers, §5.2.2 fragments), and mail-parser keeps them whole.
    ("python/msg_16.txt", DELIVERY_STATUS),
    ("python/msg_43.txt", DELIVERY_STATUS),
    ("python/msg_36.txt", EXTERNAL_BODY),
    ("mail-parser/rfc/001.eml", EXTERNAL_BODY),
    ("mail-parser/thirdparty/009.eml", PARTIAL),
    // message/rfc822 with Content-Transfer-Encoding: base64, which RFC 2046
    // §5.2.1 forbids: mail-parser decodes and shows the attached message's
    // tree, Python parses the base64 text as the message.
    ("mail-parser/rfc/008.eml", ENCODED_RFC822),
    // Malformed input: the two parsers recover differently. None of these
    // are errors; describe() shows a tree with problem notes.
    ("python/msg_15.txt", SAME_BOUNDARY),
    ("python/msg_38.txt", BOUNDARY_IN_TEXT),
    ("python/msg_39.txt", BOUNDARY_IN_TEXT),
    ("python/msg_42.txt", EMPTY_MULTIPART),
    ("mail-parser/malformed/000.eml", NO_HEADER_END),
    ("mail-parser/malformed/001.eml", BOUNDARY_PREFIX),
    ("mail-parser/malformed/004.eml", BOUNDARY_PREFIX),
    ("mail-parser/malformed/005.eml", BOUNDARY_PREFIX),
    ("mail-parser/malformed/007.eml", NO_HEADER_END),
    ("mail-parser/malformed/009.eml", UNCLOSED_INNER),
    ("mail-parser/malformed/011.eml", UNCLOSED_INNER),
    ("mail-parser/malformed/012.eml", UNCLOSED_INNER),
    ("mail-parser/malformed/013.eml", SAME_BOUNDARY),
    ("mail-parser/malformed/014.eml", NO_CLOSE_DELIMITER),
    ("mail-parser/malformed/016.eml", BOUNDARY_PREFIX),
    ("mail-parser/malformed/017.eml", BAD_CONTENT_TYPE),
    ("mail-parser/malformed/019.eml", BOUNDARY_CASE),
    ("mail-parser/malformed/020.eml", DUPLICATE_CONTENT_TYPE),
    ("mail-parser/malformed/021.eml", DUPLICATE_CONTENT_TYPE),
    ("mail-parser/malformed/022.eml", NOT_A_MESSAGE),
    ("mail-parser/thirdparty/015.eml", TRUNCATED_RFC822),
];

const DELIVERY_STATUS: &str = "Python splits message/delivery-status into one \
    text/plain entity per field block";
const EXTERNAL_BODY: &str = "Python shows the phantom entity inside message/external-body";
const PARTIAL: &str = "Python parses a message/partial fragment as a message";
const ENCODED_RFC822: &str = "base64 message/rfc822: mail-parser decodes it, Python does not";
const SAME_BOUNDARY: &str = "nested multiparts share one boundary; mail-parser keeps \
    the parts after the inner close delimiter, Python stops";
const BOUNDARY_IN_TEXT: &str = "a text part contains outer delimiter lines (with \
    transport padding); the parsers cut the parts differently";
const EMPTY_MULTIPART: &str = "a multipart with a close delimiter only: mail-parser \
    reports one empty, headerless part, Python none";
const NO_HEADER_END: &str = "part headers run into the next delimiter with no empty \
    line; mail-parser drops or merges those parts";
const BOUNDARY_PREFIX: &str = "boundaries that are prefixes of each other: mail-parser \
    matches a delimiter by prefix, Python needs the whole line";
const UNCLOSED_INNER: &str = "inner multipart never closed: Python ends it at the outer \
    delimiter, mail-parser keeps reading it into the last inner part";
const NO_CLOSE_DELIMITER: &str = "no close delimiter: Python adds an empty last part";
const BAD_CONTENT_TYPE: &str = "boundary parameter without ';': mail-parser finds it, \
    Python does not";
const BOUNDARY_CASE: &str = "delimiters differ in case from the boundary parameter; \
    the parsers recover differently";
const DUPLICATE_CONTENT_TYPE: &str = "two Content-Type fields: mail-parser uses the last, \
    Python the first";
const NOT_A_MESSAGE: &str = "message/rfc822 body that is not a message: mail-parser \
    keeps it as text (problem note), Python parses it as a body";
const TRUNCATED_RFC822: &str = "attached messages whose headers are cut off by the outer \
    delimiter: mail-parser nests the next one inside, Python keeps them siblings";

#[test]
fn every_corpus_file_is_described() {
    let files = corpus_files();
    let mut described = 0;
    for path in &files {
        let raw = fs::read(path).unwrap();
        let summary = match describe(&raw) {
            Ok(summary) => summary,
            Err(error) => panic!("{}: describe failed: {error}", path.display()),
        };
        let found = match attachments(&raw) {
            Ok(found) => found,
            Err(error) => panic!("{}: attachments failed: {error}", path.display()),
        };
        assert!(!summary.parts.is_empty(), "{}", path.display());
        // describe and attachments agree on which parts are attachments.
        let listed: Vec<(&str, usize)> = summary
            .parts
            .iter()
            .filter_map(|p| Some((p.attachment.as_deref()?, p.size?)))
            .collect();
        let extracted: Vec<(&str, usize)> = found
            .iter()
            .map(|a| (a.filename.as_str(), a.data.len()))
            .collect();
        assert_eq!(listed, extracted, "{}", path.display());
        for attachment in &found {
            let name = &attachment.filename;
            assert!(
                !name.is_empty()
                    && !name.starts_with('.')
                    && !name.contains(['/', '\\'])
                    && !name.chars().any(char::is_control),
                "{}: unsafe file name {name:?}",
                path.display()
            );
        }
        let _ = summary.render();
        described += 1;
    }
    println!("described {described} corpus files");
}

#[test]
fn mime_tree_agrees_with_python() {
    let files = corpus_files();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mime_tree.py");
    let output = match Command::new("python3").arg(&script).args(&files).output() {
        Ok(output) => output,
        Err(error) => return skip(&format!("python3 did not start: {error}")),
    };
    assert!(
        output.status.success(),
        "mime_tree.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let python: BTreeMap<PathBuf, String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let (path, tree) = line.split_once('\t')?;
            Some((PathBuf::from(path), tree.to_owned()))
        })
        .collect();
    assert_eq!(python.len(), files.len(), "mime_tree.py skipped files");

    let mut agree = 0;
    let mut unexpected = Vec::new();
    let mut disagreeing = Vec::new();
    for path in &files {
        let raw = fs::read(path).unwrap();
        let summary = describe(&raw).unwrap();
        let types: Vec<&str> = summary
            .parts
            .iter()
            .map(|p| p.content_type.as_str())
            .collect();
        let ours = format!("{}\t{}", types.len(), types.join(" "));
        let theirs = &python[path];
        let name = corpus_name(path);
        if &ours == theirs {
            agree += 1;
            continue;
        }
        disagreeing.push(name.clone());
        if !PYTHON_DISAGREES.iter().any(|(file, _)| *file == name) {
            unexpected.push(format!("{name}\n  ours:   {ours}\n  python: {theirs}"));
        }
    }
    let stale: Vec<&str> = PYTHON_DISAGREES
        .iter()
        .map(|(file, _)| *file)
        .filter(|file| !disagreeing.iter().any(|d| d == file))
        .collect();
    println!(
        "MIME tree agreement with Python: {agree}/{} files ({:.1}%)",
        files.len(),
        100.0 * agree as f64 / files.len() as f64
    );
    assert!(
        unexpected.is_empty(),
        "{} files disagree with Python and are not in PYTHON_DISAGREES:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    assert!(
        stale.is_empty(),
        "PYTHON_DISAGREES entries that now agree: {stale:?}"
    );
}

/// Every corpus file, sorted; SKIP (or a failure under CI) when a corpus
/// is missing.
fn corpus_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    match corpus::python_email_messages() {
        Some(found) => files.extend(found),
        None => skip(&format!(
            "{} missing (apt-get install libpython3.11-testsuite)",
            corpus::PYTHON_EMAIL_DATA
        )),
    }
    match corpus::mail_parser_messages() {
        Some(found) => files.extend(found),
        None => skip("mail-parser-0.11.9/resources not found in the cargo registry"),
    }
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    files.extend(corpus::eml_files(&golden));
    files.sort();
    println!("corpus: {} files", files.len());
    files
}

/// `python/msg_01.txt`, `mail-parser/rfc/001.eml`, `golden/rfc/x.eml`.
fn corpus_name(path: &Path) -> String {
    if let Some(name) = corpus::corpus_name(path) {
        return name;
    }
    let text = path.to_string_lossy();
    if let Some((_, rest)) = text.split_once("testdata") {
        return format!("golden{rest}");
    }
    text.into_owned()
}

fn skip(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("corpus test cannot run under CI: {reason}");
    }
    println!("SKIP: {reason}");
}
