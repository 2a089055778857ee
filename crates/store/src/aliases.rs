//! aliases(5): parsing an alias file and expanding a name into the local
//! users and remote addresses it stands for.
//!
//! Pure: the caller reads the file (the embedded engine reads
//! `DATA_DIR/aliases`), this module only turns text into a table, and a
//! name into an [`Expansion`]. The format is the one sendmail and Postfix
//! share:
//!
//! ```text
//! # a comment line; `#` later in a line is not a comment
//! postmaster: alice
//! staff:      alice, bob,
//!             carol@example.org
//! "Help Desk": \helpdesk, staff
//! ```
//!
//! - A logical line starts with non-whitespace; a line starting with
//!   whitespace continues it (`carol@…` above belongs to `staff`). Empty
//!   lines and lines whose first non-whitespace character is `#` are
//!   ignored.
//! - Names are case-insensitive and stored in lower case.
//! - Targets are separated by commas (a line break also ends a target). A
//!   target is a local name (a user or another alias), `\name` (a local user,
//!   never expanded further, as in sendmail), a full address `user@domain`
//!   (optionally in `<>`), or a quoted name.
//!
//! What it refuses (DESIGN.md "Aliases never run programs or write files"):
//! `|command`, `/file/path` and `:include:` targets are reported as warnings
//! and never stored, so nothing downstream can execute or open them.
//!
//! Expansion cannot loop: each alias is expanded at most once per call, a
//! name that refers back to an alias being expanded means the local user of
//! that name (sendmail's rule, so `alice: alice, archive` keeps a copy for
//! the user alice), and depth and size are capped ([`MAX_DEPTH`],
//! [`MAX_MEMBERS`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use mailroom_core::{Address, LocalPart};

/// How many alias levels one expansion follows (`a: b`, `b: c` is two). A
/// deeper chain is almost surely a mistake; sendmail's own limit is 10.
pub const MAX_DEPTH: usize = 20;

/// How many distinct recipients one expansion may produce. Bounds the work a
/// single RCPT can cause, whatever the alias file holds.
pub const MAX_MEMBERS: usize = 1000;

/// A parsed alias file: alias name (lower case) → its targets. Cheap to
/// share (`Arc<AliasTable>`), immutable once parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AliasTable {
    entries: BTreeMap<String, Vec<Target>>,
}

/// What an alias stands for, fully expanded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// Local names that are not aliases (user keys: lower case, no `+tag`),
    /// deduplicated and sorted. The caller checks that each is a user: an
    /// alias file may name someone who does not exist.
    pub local: Vec<String>,
    /// Addresses with a domain, deduplicated and sorted, for the caller to
    /// relay or resolve (their domain may well be local).
    pub remote: Vec<Address>,
    /// True when [`MAX_DEPTH`] or [`MAX_MEMBERS`] cut the expansion short:
    /// some recipients are missing, so the caller should refuse the
    /// recipient rather than deliver to a part of the list.
    pub truncated: bool,
}

/// One stored alias target. Refused kinds (pipe, file, include) never get
/// this far.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A local name: expanded again if it is an alias, else a user.
    Name(String),
    /// `\name`: a local user, never expanded (sendmail's escape).
    User(String),
    /// `user@domain`.
    Remote(Address),
}

impl AliasTable {
    /// Parses aliases(5) text. Never fails: lines that cannot be used are
    /// skipped and described in the returned warnings (`line N: why`), for the
    /// caller to log. Refused targets (`|cmd`, `/path`, `:include:`) are
    /// warnings too; the rest of their alias is kept.
    pub fn parse(text: &str) -> (AliasTable, Vec<String>) {
        let mut warnings = Vec::new();
        let mut entries: BTreeMap<String, Vec<Target>> = BTreeMap::new();
        let mut first_line: BTreeMap<String, usize> = BTreeMap::new();
        for entry in logical_lines(text, &mut warnings) {
            let Some((name, targets)) = parse_entry(&entry, &mut warnings) else {
                continue;
            };
            if let Some(first) = first_line.get(&name) {
                warnings.push(format!(
                    "line {}: duplicate alias {name:?} ignored (first defined on line {first})",
                    entry.start
                ));
                continue;
            }
            if targets.is_empty() {
                // An alias that expands to nobody would silently drop mail;
                // leaving the name undefined makes it an unknown recipient.
                warnings.push(format!(
                    "line {}: alias {name:?} has no usable targets; ignored",
                    entry.start
                ));
                continue;
            }
            first_line.insert(name.clone(), entry.start);
            entries.insert(name, targets);
        }
        let table = AliasTable { entries };
        // Report aliases that will always be cut short, so the operator sees
        // it when the file is loaded rather than when mail bounces.
        for (name, line) in &first_line {
            if table.expand(name).is_some_and(|e| e.truncated) {
                warnings.push(format!(
                    "line {line}: alias {name:?} exceeds the expansion limits \
                     ({MAX_DEPTH} levels, {MAX_MEMBERS} members) and will be refused"
                ));
            }
        }
        (table, warnings)
    }

    /// True when `name` (any case) is an alias.
    pub fn is_alias(&self, name: &str) -> bool {
        self.entries.contains_key(&name.to_lowercase())
    }

    /// The alias names, sorted, in lower case.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.keys().map(String::as_str)
    }

    /// How many aliases the table holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the table holds no alias.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Expands `name` (any case) recursively; `None` when it is not an alias.
    pub fn expand(&self, name: &str) -> Option<Expansion> {
        let key = name.to_lowercase();
        let targets = self.entries.get(&key)?;
        let mut walk = Walk {
            table: self,
            on_path: HashSet::new(),
            done: HashSet::new(),
            local: BTreeSet::new(),
            remote: BTreeSet::new(),
            truncated: false,
        };
        walk.on_path.insert(key.clone());
        walk.visit(targets, 1);
        Some(Expansion {
            local: walk.local.into_iter().collect(),
            remote: walk.remote.into_iter().collect(),
            truncated: walk.truncated,
        })
    }
}

/// The state of one expansion: a depth-first walk over the alias graph.
struct Walk<'a> {
    table: &'a AliasTable,
    /// Aliases being expanded right now (the path from the root): meeting
    /// one again is a loop, and means the local user of that name.
    on_path: HashSet<String>,
    /// Aliases already fully expanded: their members are in the sets, so a
    /// second reference adds nothing. Keeps the walk linear in the file size
    /// even when lists include each other many times over.
    done: HashSet<String>,
    local: BTreeSet<String>,
    remote: BTreeSet<Address>,
    truncated: bool,
}

impl Walk<'_> {
    fn visit(&mut self, targets: &[Target], depth: usize) {
        for target in targets {
            if self.truncated {
                return;
            }
            match target {
                Target::User(user) => self.add_local(user),
                Target::Remote(addr) => {
                    if !self.remote.contains(addr) && self.full() {
                        self.truncated = true;
                        return;
                    }
                    self.remote.insert(addr.clone());
                }
                Target::Name(name) => match self.table.entries.get(name) {
                    None => self.add_local(name),
                    // sendmail: an alias that names itself (directly or via
                    // a loop) delivers to the local user of that name.
                    Some(_) if self.on_path.contains(name) => self.add_local(name),
                    Some(_) if self.done.contains(name) => {}
                    Some(_) if depth >= MAX_DEPTH => self.truncated = true,
                    Some(nested) => {
                        self.on_path.insert(name.clone());
                        self.visit(nested, depth + 1);
                        self.on_path.remove(name);
                        self.done.insert(name.clone());
                    }
                },
            }
        }
    }

    fn add_local(&mut self, user: &str) {
        if self.local.contains(user) {
            return;
        }
        if self.full() {
            self.truncated = true;
            return;
        }
        self.local.insert(user.to_string());
    }

    fn full(&self) -> bool {
        self.local.len() + self.remote.len() >= MAX_MEMBERS
    }
}

/// One logical line: the physical lines it spans, with their numbers.
struct Entry<'a> {
    /// 1-based number of the line the entry starts on.
    start: usize,
    /// `(line number, text)`; the first is the `name: …` line.
    lines: Vec<(usize, &'a str)>,
}

/// Groups physical lines into logical ones, dropping comments and blanks.
fn logical_lines<'a>(text: &'a str, warnings: &mut Vec<String>) -> Vec<Entry<'a>> {
    let mut out: Vec<Entry<'a>> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let number = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match out.last_mut() {
                Some(entry) => entry.lines.push((number, trimmed)),
                None => warnings.push(format!(
                    "line {number}: continuation line with no alias before it; ignored"
                )),
            }
        } else {
            out.push(Entry {
                start: number,
                lines: vec![(number, line)],
            });
        }
    }
    out
}

/// Parses `name: target, …` into the lower-cased name and its usable
/// targets; `None` (with a warning) when the name part is unusable.
fn parse_entry(entry: &Entry<'_>, warnings: &mut Vec<String>) -> Option<(String, Vec<Target>)> {
    let (number, first) = entry.lines.first().copied()?;
    let Some(colon) = find_unquoted(first, ':') else {
        warnings.push(format!(
            "line {number}: no ':' after the alias name; ignored"
        ));
        return None;
    };
    let raw_name = first[..colon].trim();
    let name = match parse_name(raw_name) {
        Ok(name) => name,
        Err(why) => {
            warnings.push(format!(
                "line {number}: alias name {raw_name:?} {why}; ignored"
            ));
            return None;
        }
    };
    let mut targets = Vec::new();
    let rest =
        std::iter::once((number, &first[colon + 1..])).chain(entry.lines.iter().skip(1).copied());
    for (number, text) in rest {
        for raw in split_unquoted(text, ',') {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            match parse_target(raw) {
                Ok(target) => {
                    if !targets.contains(&target) {
                        targets.push(target);
                    }
                }
                Err(why) => warnings.push(format!("line {number}: target {raw:?} {why}")),
            }
        }
    }
    Some((name, targets))
}

/// An alias name: a local part without a domain, lower-cased.
fn parse_name(raw: &str) -> Result<String, &'static str> {
    if raw.is_empty() {
        return Err("is empty");
    }
    if find_unquoted(raw, '@').is_some() {
        return Err("has a domain (aliases are local names)");
    }
    let name = LocalPart::parse(raw, true).map_err(|_| "is not a valid local part")?;
    // `""` is a valid quoted local part that names no one.
    if name.as_str().is_empty() {
        return Err("is empty");
    }
    Ok(name.as_str().to_lowercase())
}

/// One target; `Err` explains a refusal or a syntax error.
fn parse_target(raw: &str) -> Result<Target, &'static str> {
    // sendmail treats a quoted "|cmd" or "/file" like the bare form, so the
    // refusal looks inside quotes too.
    let unquoted = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    refuse_program_file_include(unquoted)?;
    if let Some(user) = raw.strip_prefix('\\') {
        let user = LocalPart::parse(user, true).map_err(|_| "is not a valid local name")?;
        // `\|cmd` and `\/file` name the same things unescaped.
        refuse_program_file_include(user.as_str())?;
        if user.as_str().is_empty() {
            return Err("is empty");
        }
        return Ok(Target::User(user.user_key()));
    }
    let bare = raw
        .strip_prefix('<')
        .and_then(|r| r.strip_suffix('>'))
        .unwrap_or(raw);
    if find_unquoted(bare, '@').is_some() {
        return Address::parse(bare, true)
            .map(Target::Remote)
            .map_err(|_| "is not a valid address");
    }
    let name =
        LocalPart::parse(bare, true).map_err(|_| "is not a valid local name (missing comma?)")?;
    // A quoted pair can spell `|` too: `"\|cmd"`.
    refuse_program_file_include(name.as_str())?;
    // `""` is a valid quoted local part that names no one.
    if name.as_str().is_empty() {
        return Err("is empty");
    }
    Ok(Target::Name(name.user_key()))
}

/// Refuses a program (`|cmd`), a file (`/path`) or an include, judged on
/// the target as written and again on the local name it unquotes to, so no
/// escape can store one.
fn refuse_program_file_include(target: &str) -> Result<(), &'static str> {
    let target = target.trim_start();
    if target.starts_with('|') {
        return Err("refused: aliases never run programs");
    }
    if target.starts_with('/') {
        return Err("refused: aliases never write files");
    }
    if target
        .get(..9)
        .is_some_and(|p| p.eq_ignore_ascii_case(":include:"))
    {
        return Err("refused: :include: files are not read");
    }
    Ok(())
}

/// Byte offset of the first `needle` outside double quotes.
fn find_unquoted(s: &str, needle: char) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == needle && !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Splits at every `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(i) = find_unquoted(rest, sep) {
        parts.push(&rest[..i]);
        rest = &rest[i + sep.len_utf8()..];
    }
    parts.push(rest);
    parts
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn addr(s: &str) -> Address {
        match Address::parse(s, true) {
            Ok(a) => a,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn expansion(local: &[&str], remote: &[&str]) -> Expansion {
        Expansion {
            local: local.iter().map(|s| s.to_string()).collect(),
            remote: remote.iter().map(|s| addr(s)).collect(),
            truncated: false,
        }
    }

    /// Each row: file text, the name to expand, the expected expansion.
    #[test]
    fn expand_table() {
        let rows: &[(&str, &str, Option<Expansion>)] = &[
            (
                "staff: alice, bob",
                "staff",
                Some(expansion(&["alice", "bob"], &[])),
            ),
            (
                "staff: alice, bob",
                "STAFF",
                Some(expansion(&["alice", "bob"], &[])),
            ),
            (
                "Staff: Bob, ALICE",
                "staff",
                Some(expansion(&["alice", "bob"], &[])),
            ),
            ("staff: alice, bob", "alice", None),
            ("staff: alice, bob", "nobody", None),
            // Continuation lines, comments inside an entry, CRLF, blank lines.
            (
                "staff: alice,\r\n  bob\r\n# note\r\n\tcarol\r\n\r\nother: x",
                "staff",
                Some(expansion(&["alice", "bob", "carol"], &[])),
            ),
            // Nested aliases and remote addresses, deduplicated.
            (
                "all: staff, ops, alice\nstaff: alice, bob@Example.ORG\nops: carol, <bob@example.org>",
                "all",
                Some(expansion(&["alice", "carol"], &["bob@example.org"])),
            ),
            // A self-reference is the local user (sendmail).
            (
                "alice: alice, archive",
                "alice",
                Some(expansion(&["alice", "archive"], &[])),
            ),
            // A loop through two aliases ends at the name met again.
            (
                "a: b, x\nb: a, y",
                "a",
                Some(expansion(&["a", "x", "y"], &[])),
            ),
            ("a: b\nb: c\nc: a", "a", Some(expansion(&["a"], &[]))),
            // `\name` is never expanded further.
            ("a: \\b, c\nb: z", "a", Some(expansion(&["b", "c"], &[]))),
            // Sub-addresses and case fold to the user key.
            ("a: Bob+lists", "a", Some(expansion(&["bob"], &[]))),
            // Quoted names and targets.
            (
                "\"Help Desk\": \"john doe\", x@y.org",
                "help desk",
                Some(expansion(&["john doe"], &["x@y.org"])),
            ),
            // Diamond: carol once.
            (
                "top: l, r\nl: carol\nr: carol, dave",
                "top",
                Some(expansion(&["carol", "dave"], &[])),
            ),
            // A refused target leaves the rest of the alias working.
            (
                "log: |/bin/logger, alice",
                "log",
                Some(expansion(&["alice"], &[])),
            ),
            // An alias with nothing usable is not defined at all.
            ("log: |/bin/logger, /var/log/x", "log", None),
        ];
        for (text, name, want) in rows {
            // Every row with both line ends.
            for text in [text.to_string(), text.replace('\n', "\r\n")] {
                let (table, _) = AliasTable::parse(&text);
                assert_eq!(&table.expand(name), want, "text {text:?}, name {name:?}");
            }
        }
    }

    /// Each row: file text and the substrings its warnings must contain, in
    /// order (an empty list means no warning).
    #[test]
    fn warnings_table() {
        let rows: &[(&str, &[&str])] = &[
            ("staff: alice, bob\n", &[]),
            ("# only a comment\n\n", &[]),
            (
                "a: |/usr/bin/evil",
                &["line 1", "never run programs", "no usable targets"],
            ),
            (
                "a: \"|/usr/bin/evil\", b",
                &["line 1", "never run programs"],
            ),
            (
                "a: \" |/usr/bin/evil\", b",
                &["line 1", "never run programs"],
            ),
            ("a: b\nc: /etc/passwd, d", &["line 2", "never write files"]),
            ("a: :include:/etc/list, b", &["line 1", ":include:"]),
            ("a: :INCLUDE:/etc/list, b", &["line 1", ":include:"]),
            ("a: b,\n  |cmd", &["line 2", "never run programs"]),
            ("no colon here", &["line 1", "no ':'"]),
            ("  b, c\na: d", &["line 1", "continuation"]),
            ("a@x.org: b", &["line 1", "has a domain"]),
            (": b", &["line 1", "empty"]),
            ("a: b\nA: c", &["line 2", "duplicate", "line 1"]),
            (
                "a: bob smith",
                &["line 1", "missing comma", "no usable targets"],
            ),
            (
                "a: b@",
                &["line 1", "not a valid address", "no usable targets"],
            ),
            ("a:", &["line 1", "no usable targets"]),
        ];
        for (text, want) in rows {
            let (_, warnings) = AliasTable::parse(text);
            let all = warnings.join(" | ");
            if want.is_empty() {
                assert!(warnings.is_empty(), "text {text:?}: {all}");
            }
            let mut at = 0;
            for piece in *want {
                match all[at..].find(piece) {
                    Some(i) => at += i + piece.len(),
                    None => panic!("text {text:?}: {piece:?} missing from {all:?}"),
                }
            }
        }
    }

    #[test]
    fn refused_targets_are_never_stored() {
        let (table, warnings) =
            AliasTable::parse("a: |cmd, /file, :include:/x, \"|q\", \"/q\", ok");
        assert_eq!(warnings.len(), 5, "{warnings:?}");
        assert_eq!(table.expand("a"), Some(expansion(&["ok"], &[])));
        let debug = format!("{table:?}");
        for bad in ["cmd", "file", "include", "q\""] {
            assert!(!debug.contains(bad), "{bad} stored: {debug}");
        }
    }

    /// Found by the `aliases` fuzz target (its proptest shrank it to
    /// `a:\\/`): a backslash or a quoted pair spelt a refused target that
    /// was then stored as a local user named `/…` or `|…`, against the
    /// module's promise that such targets are never stored.
    #[test]
    fn escaped_refused_targets_are_never_stored() {
        for target in [
            "\\/",
            "\\/etc/passwd",
            "\\|cmd",
            "\"\\|cmd\"",
            "\"\\/file\"",
            "\\\" |cmd\"",
        ] {
            let (table, warnings) = AliasTable::parse(&format!("a: {target}, ok"));
            assert_eq!(
                table.expand("a"),
                Some(expansion(&["ok"], &[])),
                "{target}: {warnings:?}"
            );
            assert!(
                warnings.iter().any(|w| w.contains("refused")),
                "{target}: {warnings:?}"
            );
        }
    }

    /// Found by the `aliases` fuzz target (crash input, base64, ends
    /// `cXVvdGVkOiAiIixzd2QsIGFvbmsKCg==`: `quoted: "",swd, aonk`): the
    /// empty quoted string `""` is a valid RFC 5321 local part, and became
    /// an empty local user, and an alias name `""` an alias named `""`,
    /// where an unquoted empty target or name is skipped.
    #[test]
    fn empty_quoted_names_and_targets_are_refused() {
        let (table, warnings) = AliasTable::parse("a: \"\", \\\"\", ok\n\"\": b");
        assert_eq!(table.expand("a"), Some(expansion(&["ok"], &[])));
        assert_eq!(table.names().collect::<Vec<_>>(), ["a"]);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(
            warnings.iter().all(|w| w.contains("is empty")),
            "{warnings:?}"
        );
    }

    #[test]
    fn the_module_doc_example_parses_cleanly() {
        let text = "# a comment line; `#` later in a line is not a comment\n\
                    postmaster: alice\n\
                    staff:      alice, bob,\n            carol@example.org\n\
                    \"Help Desk\": \\helpdesk, staff\n";
        let (table, warnings) = AliasTable::parse(text);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            table.expand("help desk"),
            Some(expansion(
                &["alice", "bob", "helpdesk"],
                &["carol@example.org"]
            ))
        );
    }

    #[test]
    fn names_and_is_alias() {
        let (table, _) = AliasTable::parse("Staff: a\npostmaster: root\nabuse: postmaster");
        assert_eq!(
            table.names().collect::<Vec<_>>(),
            ["abuse", "postmaster", "staff"]
        );
        assert!(table.is_alias("STAFF"));
        assert!(!table.is_alias("a"));
        assert_eq!(table.len(), 3);
        assert!(AliasTable::default().is_empty());
        assert_eq!(table.expand("abuse"), Some(expansion(&["root"], &[])));
    }

    #[test]
    fn depth_limit_truncates() {
        // l0: l1, l1: l2, …: a chain longer than MAX_DEPTH.
        let text: String = (0..MAX_DEPTH + 5)
            .map(|i| format!("l{i}: l{}, u{i}\n", i + 1))
            .collect();
        let (table, warnings) = AliasTable::parse(&text);
        let Some(e) = table.expand("l0") else {
            panic!("l0 is an alias")
        };
        assert!(e.truncated);
        assert!(
            warnings.iter().any(|w| w.contains("\"l0\"")),
            "{warnings:?}"
        );
        // A chain within the limit is complete.
        let Some(e) = table.expand(&format!("l{}", 10)) else {
            panic!("alias")
        };
        assert!(!e.truncated);
        assert_eq!(e.local.len(), MAX_DEPTH - 5 + 1);
    }

    #[test]
    fn member_limit_truncates() {
        let members: Vec<String> = (0..MAX_MEMBERS + 1).map(|i| format!("u{i}")).collect();
        let (table, warnings) = AliasTable::parse(&format!("big: {}", members.join(", ")));
        let Some(e) = table.expand("big") else {
            panic!("alias")
        };
        assert!(e.truncated);
        assert_eq!(e.local.len(), MAX_MEMBERS);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let (table, _) = AliasTable::parse(&format!("ok: {}", members[1..].join(", ")));
        assert!(
            table
                .expand("ok")
                .is_some_and(|e| !e.truncated && e.local.len() == MAX_MEMBERS)
        );
    }

    #[test]
    fn exponential_fan_out_stays_linear() {
        // Each level names the next level twice over: 2^40 paths, but every
        // alias is expanded once.
        let text: String = (0..40)
            .map(|i| format!("a{i}: b{i}, c{i}\nb{i}: a{}\nc{i}: a{}\n", i + 1, i + 1))
            .collect();
        let (table, _) = AliasTable::parse(&text);
        let e = table.expand("a0");
        assert!(e.is_some_and(|e| e.truncated)); // deeper than MAX_DEPTH
        let e = table.expand("a35");
        assert_eq!(e, Some(expansion(&["a40"], &[])));
    }

    /// A random alias file over a small set of names: every expansion
    /// terminates and respects the invariants.
    fn arb_file() -> impl Strategy<Value = String> {
        let target = prop_oneof![
            (0..12u8).prop_map(|n| format!("n{n}")),
            (0..12u8).prop_map(|n| format!("N{n}+tag")),
            (0..12u8).prop_map(|n| format!("\\n{n}")),
            (0..4u8).prop_map(|n| format!("r{n}@example.org")),
            Just("|cmd".to_string()),
        ];
        let entry = (0..12u8, prop::collection::vec(target, 0..6))
            .prop_map(|(n, t)| format!("n{n}: {}", t.join(", ")));
        prop::collection::vec(entry, 0..16).prop_map(|lines| lines.join("\n"))
    }

    proptest! {
        #[test]
        fn expansion_terminates_on_random_graphs(text in arb_file()) {
            let (table, _) = AliasTable::parse(&text);
            for name in (0..12).map(|n| format!("n{n}")) {
                let Some(e) = table.expand(&name) else {
                    prop_assert!(!table.is_alias(&name));
                    continue;
                };
                prop_assert!(!e.truncated);
                prop_assert!(e.local.windows(2).all(|w| w[0] < w[1]));
                prop_assert!(e.remote.windows(2).all(|w| w[0] < w[1]));
                prop_assert!(e.local.len() + e.remote.len() <= MAX_MEMBERS);
                // A local result is either a non-alias or an alias met again
                // on its own path; never `|cmd`.
                for user in &e.local {
                    prop_assert!(user.starts_with('n'), "{}", user);
                }
            }
        }
    }
}
