//! Attachment file names that are safe to create in a directory.
//!
//! A file name in a message is hostile input: `../../.bashrc`, `C:\x`,
//! `/etc/passwd`, names with control characters or thousands of octets.
//! `show --extract DIR` writes files under these names, so each one is cut
//! down to a single harmless path component here.

use std::collections::{HashMap, HashSet};

use crate::content_type::extension_for;

/// Hands out sanitised file names, unique within one message (compared
/// case-insensitively, for case-insensitive file systems).
#[derive(Debug, Default)]
pub(crate) struct NameAllocator {
    /// Names handed out, lowercased.
    taken: HashSet<String>,
    /// Per lowercased base name, the next `-N` suffix to try: keeps 20 000
    /// parts all named `same.bin` linear instead of quadratic.
    next_suffix: HashMap<String, u32>,
}

impl NameAllocator {
    /// A safe, unique name for an attachment announced as `wanted` (None
    /// when the part has no file name). `fallback_stem` names nameless parts
    /// (`part-1.2`), with an extension that fits `media_type`.
    pub(crate) fn allocate(
        &mut self,
        wanted: Option<&str>,
        fallback_stem: &str,
        media_type: &str,
    ) -> String {
        let base = match wanted.map(sanitize).filter(|name| !name.is_empty()) {
            Some(name) => name,
            None => format!("{fallback_stem}.{}", extension_for(media_type)),
        };
        let key = base.to_lowercase();
        if self.taken.insert(key.clone()) {
            return base;
        }
        let (stem, extension) = split_extension(&base);
        let counter = self.next_suffix.entry(key).or_insert(2);
        loop {
            let candidate = format!("{stem}-{counter}{extension}");
            *counter = counter.saturating_add(1);
            if self.taken.insert(candidate.to_lowercase()) {
                return candidate;
            }
        }
    }
}

/// One path component without separators, control characters, leading dots
/// or surrounding white space, at most `MAX_NAME_BYTES` octets. May return
/// an empty string, which the caller replaces.
pub(crate) fn sanitize(name: &str) -> String {
    // Both separators: a Windows sender's "C:\Users\x\a.pdf" means "a.pdf".
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !is_bidi_control(*c))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    // Leading dots would hide the file (".bashrc") or name a directory
    // ("..", and ". ." once the blanks go), in whatever mix with blanks.
    let trimmed = cleaned
        .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
        .trim_end();
    truncate_keeping_extension(trimmed, MAX_NAME_BYTES)
}

/// Unicode bidirectional formatting characters: "invoice\u{202E}fdp.exe"
/// displays as "invoiceexe.pdf".
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Splits `name.ext` into (`name`, `.ext`); a name without a usable
/// extension gives (`name`, ``).
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= MAX_EXTENSION_BYTES => name.split_at(dot),
        _ => (name, ""),
    }
}

fn truncate_keeping_extension(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let (stem, extension) = split_extension(name);
    let mut cut = max.saturating_sub(extension.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}{extension}",
        stem.get(..cut).unwrap_or_default().trim_end()
    )
}

/// Leaves room below the usual 255-octet NAME_MAX for the `-N` suffix.
const MAX_NAME_BYTES: usize = 200;
/// Longer "extensions" are part of the name (`report.final-version-2`).
const MAX_EXTENSION_BYTES: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_table() {
        let rows = [
            ("report.pdf", "report.pdf"),
            ("../../etc/passwd", "passwd"),
            ("/etc/passwd", "passwd"),
            ("C:\\Users\\bob\\a.pdf", "a.pdf"),
            ("..", ""),
            (".bashrc", "bashrc"),
            ("...hidden.txt", "hidden.txt"),
            ("  spaced name.txt  ", "spaced name.txt"),
            ("a\r\nb\u{0}.txt", "a  b .txt"),
            ("dir/", ""),
            ("Grüße.pdf", "Grüße.pdf"),
            ("invoice\u{202E}fdp.exe", "invoicefdp.exe"),
            ("", ""),
        ];
        for (input, expected) in rows {
            assert_eq!(sanitize(input), expected, "{input:?}");
        }
    }

    /// Found by the `mime` fuzz target: `name=".\0…\0."` came out as
    /// `"."` (the NULs became blanks, the blanks were trimmed after the
    /// leading dot was, and the last dot was left leading), a name that is
    /// the extraction directory itself.
    #[test]
    fn leading_dots_and_blanks_in_any_order_are_stripped() {
        let rows = [
            (".\0\0\0.", ""),
            (". .", ""),
            (" . . .bashrc", "bashrc"),
            (".\t..\r\n.profile ", "profile"),
            ("a. .b", "a. .b"),
        ];
        for (input, expected) in rows {
            assert_eq!(sanitize(input), expected, "{input:?}");
        }
    }

    #[test]
    fn long_names_keep_their_extension_and_char_boundaries() {
        let name = format!("{}.pdf", "é".repeat(300));
        let out = sanitize(&name);
        assert!(out.len() <= MAX_NAME_BYTES, "{}", out.len());
        assert!(out.ends_with("é.pdf"), "{out}");
    }

    #[test]
    fn allocator_makes_names_unique_and_falls_back() {
        let mut names = NameAllocator::default();
        assert_eq!(names.allocate(Some("a.pdf"), "part-2", "x/y"), "a.pdf");
        assert_eq!(names.allocate(Some("A.PDF"), "part-3", "x/y"), "A-2.PDF");
        assert_eq!(names.allocate(Some("../a.pdf"), "part-4", "x/y"), "a-3.pdf");
        assert_eq!(
            names.allocate(Some("a-2.pdf"), "part-5", "x/y"),
            "a-2-2.pdf"
        );
        assert_eq!(
            names.allocate(None, "part-1.2", "application/pdf"),
            "part-1.2.pdf"
        );
        assert_eq!(
            names.allocate(Some(".."), "part-1.3", "application/x-what"),
            "part-1.3.bin"
        );
        assert_eq!(names.allocate(Some("noext"), "p", "x/y"), "noext");
        assert_eq!(names.allocate(Some("noext"), "p", "x/y"), "noext-2");
    }
}
