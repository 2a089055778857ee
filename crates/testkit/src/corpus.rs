//! Real mail nobody here wrote: where the two external corpora live.
//!
//! - CPython's email test messages, `msg_*.txt` in `test/test_email/data/`
//!   (Debian package libpython3.11-testsuite);
//! - the `.eml` files the mail-parser crate ships in its package, under
//!   `$CARGO_HOME/registry/src/*/mail-parser-0.11.9/resources/eml/`.
//!
//! Used by the MIME corpus tests (crates/mime) and the SMTP-in/POP3-out
//! corpus test (crates/mailroom). A missing corpus is `None`: the caller
//! decides whether that is a SKIP or a failure.

use std::fs;
use std::path::{Path, PathBuf};

/// Where libpython3.11-testsuite puts the email test messages.
pub const PYTHON_EMAIL_DATA: &str = "/usr/lib/python3.11/test/test_email/data";

/// The mail-parser release whose resources are used (the workspace pins it).
const MAIL_PARSER: &str = "mail-parser-0.11.9";

/// CPython's `msg_*` files, sorted; `None` when the package is missing.
pub fn python_email_messages() -> Option<Vec<PathBuf>> {
    let dir = Path::new(PYTHON_EMAIL_DATA);
    if !dir.is_dir() {
        return None;
    }
    let mut files: Vec<PathBuf> = walk(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("msg_"))
        })
        .collect();
    files.sort();
    Some(files)
}

/// `$CARGO_HOME/registry/src/*/mail-parser-0.11.9/resources/eml`.
pub fn mail_parser_eml_dir() -> Option<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))?;
    fs::read_dir(cargo_home.join("registry/src"))
        .ok()?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path().join(MAIL_PARSER).join("resources/eml"))
        .find(|dir| dir.is_dir())
}

/// mail-parser's `.eml` files, sorted; `None` when the package is not in
/// the cargo registry.
pub fn mail_parser_messages() -> Option<Vec<PathBuf>> {
    let mut files = eml_files(&mail_parser_eml_dir()?);
    files.sort();
    Some(files)
}

/// Every `.eml` file under `dir`, in no particular order.
pub fn eml_files(dir: &Path) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect()
}

/// Every file under `dir`, recursively, in no particular order.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A short, stable name for a file of either corpus: `python/msg_01.txt`,
/// `mail-parser/rfc/001.eml`; `None` for a file of neither.
pub fn corpus_name(path: &Path) -> Option<String> {
    let text = path.to_string_lossy();
    if let Some(rest) = text.strip_prefix(PYTHON_EMAIL_DATA) {
        return Some(format!("python{rest}"));
    }
    let marker = format!("{MAIL_PARSER}/resources/eml");
    let (_, rest) = text.split_once(&marker)?;
    Some(format!("mail-parser{rest}"))
}
