//! The queue envelope's file format: a versioned, line-oriented text file
//! that engines keeping the queue in files persist next to each message
//! (STYLE.md §2.5, after OpenSMTPD's `envelope.c`).
//!
//! ```text
//! version 1
//! id 01HV3Q8Y2KX7M0000ABCD
//! sender alice@example.org
//! created 1700000000
//! envid QQ314159
//! ret HDRS
//! body 8BITMIME
//! smtputf8 no
//! size 2048
//! held no
//! rcpt to=bob@example.net state=pending attempts=1 next=1700000300 delay-notified=no notify=FAILURE,DELAY orcpt=rfc822;bob@example.net reply=451%204.7.1%20Try%20again%20later
//! rcpt to=carol@example.com state=delivered attempts=1 next=1700000000 delay-notified=no reply=250%202.0.0%20Ok:%20queued%20as%204F2
//! end
//! ```
//!
//! - `version` comes first. [`parse`] rejects any version it does not know
//!   with [`EnvelopeError::UnknownVersion`] before looking at the rest, so
//!   an older binary never misreads a newer file. Any change to what
//!   [`serialize`] writes bumps the version and keeps a loader (and a
//!   golden-file test, `testdata/envelope-v1.txt`) for every older one.
//! - One field per line, `name value`, separated by one space. `envid` and
//!   `ret` are omitted when absent; the null reverse path is `sender <>`.
//!   Booleans are `yes`/`no`, times are unix seconds.
//! - One `rcpt` line per recipient, in order, with `key=value` fields; the
//!   optional `notify`, `orcpt` and `reply` are omitted when absent.
//! - `end` closes the file. A file without it was cut short
//!   ([`EnvelopeError::Truncated`]): recipients are not counted otherwise,
//!   so a lost tail could not be told from a shorter list.
//!
//! Every string value is percent-encoded: `%`, `<`, `>` and every byte
//! outside `!`..`~` (space, tab, CR, LF, other controls, DEL, non-ASCII
//! UTF-8) become `%XX`. A value therefore never contains a space or a line
//! break, and a hostile remote reply stored in `reply=` cannot forge a
//! field or a recipient. `<` and `>` are encoded so that `sender <>` can
//! only mean the null sender. The file itself is printable ASCII plus LF;
//! anything else is rejected.

use std::fmt::Write as _;

use mailroom_store::{QueueEntry, QueuedRecipient, RecipientState};

/// The format version [`serialize`] writes.
pub const VERSION: u32 = 1;

/// Why an envelope file could not be read. Every variant means the file is
/// unusable as a whole; an engine reports it as corrupt and keeps the file
/// for the operator to inspect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The file starts with a `version` this build does not know: it was
    /// written by a newer mailroom (a downgrade with mail still queued).
    #[error("unknown envelope version {0:?}")]
    UnknownVersion(String),
    /// The file ends before its `end` line: a partial copy, or a write that
    /// bypassed the engine's write-then-rename.
    #[error("envelope is truncated (no `end` line)")]
    Truncated,
    /// A line that is not valid in this version: a damaged file or a bad
    /// manual edit. `line` is 1-based.
    #[error("malformed envelope, line {line}: {reason}")]
    Malformed {
        /// The offending line, counting from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// Writes `entry` in the current format ([`VERSION`]). Total: every entry,
/// whatever its strings hold, has a representation that [`parse`] reads
/// back to an equal entry.
pub fn serialize(entry: &QueueEntry) -> String {
    let mut out = String::with_capacity(256 + 128 * entry.recipients.len());
    // `write!` into a String cannot fail; the results are ignored for that
    // reason only.
    let _ = writeln!(out, "version {VERSION}");
    let _ = writeln!(out, "id {}", encode(&entry.id));
    match &entry.sender {
        Some(sender) => {
            let _ = writeln!(out, "sender {}", encode(sender));
        }
        None => out.push_str("sender <>\n"),
    }
    let _ = writeln!(out, "created {}", entry.created);
    if let Some(envid) = &entry.envid {
        let _ = writeln!(out, "envid {}", encode(envid));
    }
    if let Some(ret) = &entry.ret {
        let _ = writeln!(out, "ret {}", encode(ret));
    }
    let body = if entry.body_8bit { "8BITMIME" } else { "7BIT" };
    let _ = writeln!(out, "body {body}");
    let _ = writeln!(out, "smtputf8 {}", yes_no(entry.smtputf8));
    let _ = writeln!(out, "size {}", entry.size);
    let _ = writeln!(out, "held {}", yes_no(entry.held));
    for rcpt in &entry.recipients {
        let state = match rcpt.state {
            RecipientState::Pending => "pending",
            RecipientState::Delivered => "delivered",
            RecipientState::Failed => "failed",
        };
        let _ = write!(
            out,
            "rcpt to={} state={state} attempts={} next={} delay-notified={}",
            encode(&rcpt.address),
            rcpt.attempts,
            rcpt.next_attempt,
            yes_no(rcpt.delay_notified),
        );
        for (key, value) in [
            ("notify", &rcpt.notify),
            ("orcpt", &rcpt.orcpt),
            ("reply", &rcpt.last_reply),
        ] {
            if let Some(value) = value {
                let _ = write!(out, " {key}={}", encode(value));
            }
        }
        out.push('\n');
    }
    out.push_str("end\n");
    out
}

/// Reads an envelope file. Strict: unknown versions, unknown or repeated
/// fields, missing required fields, bad values and a missing `end` line are
/// all errors, so a damaged file is never half-understood.
pub fn parse(text: &str) -> Result<QueueEntry, EnvelopeError> {
    let mut lines = Lines::new(text);
    let (number, first) = lines.next_line()?.ok_or(EnvelopeError::Truncated)?;
    let version = first
        .strip_prefix("version ")
        .ok_or_else(|| malformed(number, "the first line must be `version N`"))?;
    if version != "1" {
        return Err(EnvelopeError::UnknownVersion(version.to_string()));
    }
    parse_v1(&mut lines)
}

/// The body of a version 1 file, after its `version` line.
fn parse_v1(lines: &mut Lines<'_>) -> Result<QueueEntry, EnvelopeError> {
    let mut fields = Fields::default();
    let mut recipients = Vec::new();
    let end_line = loop {
        let (number, line) = lines.next_line()?.ok_or(EnvelopeError::Truncated)?;
        if line == "end" {
            break number;
        }
        let (name, value) = line
            .split_once(' ')
            .ok_or_else(|| malformed(number, "expected `name value`"))?;
        if name == "rcpt" {
            recipients.push(parse_rcpt(number, value)?);
        } else {
            fields.set(number, name, value)?;
        }
    };
    if let Some((number, _)) = lines.next_line()? {
        return Err(malformed(number, "content after `end`"));
    }
    let missing = |name: &str| malformed(end_line, &format!("missing field `{name}`"));
    Ok(QueueEntry {
        id: fields.id.ok_or_else(|| missing("id"))?,
        sender: fields.sender.ok_or_else(|| missing("sender"))?,
        created: fields.created.ok_or_else(|| missing("created"))?,
        envid: fields.envid,
        ret: fields.ret,
        body_8bit: fields.body_8bit.ok_or_else(|| missing("body"))?,
        smtputf8: fields.smtputf8.ok_or_else(|| missing("smtputf8"))?,
        size: fields.size.ok_or_else(|| missing("size"))?,
        held: fields.held.ok_or_else(|| missing("held"))?,
        recipients,
    })
}

/// The top-level fields of a version 1 file, each seen at most once.
#[derive(Default)]
struct Fields {
    id: Option<String>,
    sender: Option<Option<String>>,
    created: Option<i64>,
    envid: Option<String>,
    ret: Option<String>,
    body_8bit: Option<bool>,
    smtputf8: Option<bool>,
    size: Option<u64>,
    held: Option<bool>,
}

impl Fields {
    fn set(&mut self, line: usize, name: &str, value: &str) -> Result<(), EnvelopeError> {
        fn once<T>(
            slot: &mut Option<T>,
            line: usize,
            name: &str,
            value: T,
        ) -> Result<(), EnvelopeError> {
            if slot.is_some() {
                return Err(malformed(line, &format!("field `{name}` repeated")));
            }
            *slot = Some(value);
            Ok(())
        }
        match name {
            "id" => once(&mut self.id, line, name, decode(line, value)?),
            "sender" => {
                let sender = if value == "<>" {
                    None
                } else {
                    Some(decode(line, value)?)
                };
                once(&mut self.sender, line, name, sender)
            }
            "created" => once(&mut self.created, line, name, number(line, value)?),
            "envid" => once(&mut self.envid, line, name, decode(line, value)?),
            "ret" => once(&mut self.ret, line, name, decode(line, value)?),
            "body" => {
                let eight_bit = match value {
                    "7BIT" => false,
                    "8BITMIME" => true,
                    _ => return Err(malformed(line, "body must be 7BIT or 8BITMIME")),
                };
                once(&mut self.body_8bit, line, name, eight_bit)
            }
            "smtputf8" => once(&mut self.smtputf8, line, name, boolean(line, value)?),
            "size" => once(&mut self.size, line, name, number(line, value)?),
            "held" => once(&mut self.held, line, name, boolean(line, value)?),
            _ => Err(malformed(line, &format!("unknown field `{name}`"))),
        }
    }
}

/// The fields of one `rcpt` line (after `rcpt `).
fn parse_rcpt(line: usize, fields: &str) -> Result<QueuedRecipient, EnvelopeError> {
    let mut to = None;
    let mut state = None;
    let mut attempts = None;
    let mut next = None;
    let mut delay_notified = None;
    let mut notify = None;
    let mut orcpt = None;
    let mut reply = None;
    for field in fields.split(' ') {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| malformed(line, "expected `key=value` in rcpt"))?;
        let repeated = match key {
            "to" => to.replace(decode(line, value)?).is_some(),
            "state" => {
                let parsed = match value {
                    "pending" => RecipientState::Pending,
                    "delivered" => RecipientState::Delivered,
                    "failed" => RecipientState::Failed,
                    _ => {
                        return Err(malformed(
                            line,
                            "state must be pending, delivered or failed",
                        ));
                    }
                };
                state.replace(parsed).is_some()
            }
            "attempts" => attempts.replace(number(line, value)?).is_some(),
            "next" => next.replace(number(line, value)?).is_some(),
            "delay-notified" => delay_notified.replace(boolean(line, value)?).is_some(),
            "notify" => notify.replace(decode(line, value)?).is_some(),
            "orcpt" => orcpt.replace(decode(line, value)?).is_some(),
            "reply" => reply.replace(decode(line, value)?).is_some(),
            _ => return Err(malformed(line, &format!("unknown rcpt field `{key}`"))),
        };
        if repeated {
            return Err(malformed(line, &format!("rcpt field `{key}` repeated")));
        }
    }
    let missing = |key: &str| malformed(line, &format!("rcpt without `{key}`"));
    Ok(QueuedRecipient {
        address: to.ok_or_else(|| missing("to"))?,
        orcpt,
        notify,
        state: state.ok_or_else(|| missing("state"))?,
        attempts: attempts.ok_or_else(|| missing("attempts"))?,
        next_attempt: next.ok_or_else(|| missing("next"))?,
        last_reply: reply,
        delay_notified: delay_notified.ok_or_else(|| missing("delay-notified"))?,
    })
}

/// The file's lines, numbered from 1, each checked to be printable ASCII
/// and to end in LF (a last line without LF means the file was cut).
struct Lines<'a> {
    rest: &'a str,
    number: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Lines {
            rest: text,
            number: 0,
        }
    }

    fn next_line(&mut self) -> Result<Option<(usize, &'a str)>, EnvelopeError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        self.number += 1;
        let Some((line, rest)) = self.rest.split_once('\n') else {
            return Err(EnvelopeError::Truncated);
        };
        self.rest = rest;
        if let Some(bad) = line.bytes().find(|b| !(b' '..=b'~').contains(b)) {
            return Err(malformed(
                self.number,
                &format!("unexpected byte 0x{bad:02X} (only printable ASCII is written)"),
            ));
        }
        Ok(Some((self.number, line)))
    }
}

/// Percent-encodes `value` (see the module doc for the set).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if needs_encoding(b) {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Reverses [`encode`]: `%XX` (either case) becomes the byte; the result
/// must be UTF-8. A byte that [`encode`] would have encoded (a space, `<`,
/// `>`) is refused: the value was not written by [`encode`].
fn decode(line: usize, value: &str) -> Result<String, EnvelopeError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let pair = bytes
                    .get(i + 1..i + 3)
                    .ok_or_else(|| malformed(line, "`%` not followed by two hex digits"))?;
                match (hex_value(pair[0]), hex_value(pair[1])) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(malformed(line, "`%` not followed by two hex digits")),
                }
                i += 3;
            }
            b if needs_encoding(b) => {
                return Err(malformed(
                    line,
                    &format!("byte 0x{b:02X} not percent-encoded"),
                ));
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| malformed(line, "decoded value is not UTF-8"))
}

fn needs_encoding(b: u8) -> bool {
    !(b'!'..=b'~').contains(&b) || matches!(b, b'%' | b'<' | b'>')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// A decimal integer: digits with an optional leading `-`; no `+`, no
/// spaces (what `Display` writes, nothing else).
fn number<T: std::str::FromStr>(line: usize, value: &str) -> Result<T, EnvelopeError> {
    let digits = value.strip_prefix('-').unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(line, &format!("`{value}` is not a number")));
    }
    value
        .parse()
        .map_err(|_| malformed(line, &format!("`{value}` is out of range")))
}

fn boolean(line: usize, value: &str) -> Result<bool, EnvelopeError> {
    match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(malformed(line, "expected `yes` or `no`")),
    }
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

fn malformed(line: usize, reason: &str) -> EnvelopeError {
    EnvelopeError::Malformed {
        line,
        reason: reason.to_string(),
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    /// The golden file of version 1. It must keep parsing, and serializing
    /// its entry must reproduce it byte for byte: if this test fails after
    /// a format change, bump [`VERSION`], keep a loader for version 1 and
    /// add a golden file for the new version.
    const GOLDEN_V1: &str = include_str!("../testdata/envelope-v1.txt");

    fn golden_entry() -> QueueEntry {
        QueueEntry {
            id: "01HV3Q8Y2KX7M0000ABCD".into(),
            sender: Some("alice@example.org".into()),
            created: 1_700_000_000,
            envid: Some("QQ314159".into()),
            ret: Some("HDRS".into()),
            body_8bit: true,
            smtputf8: false,
            size: 2048,
            held: false,
            recipients: vec![
                QueuedRecipient {
                    address: "bob@example.net".into(),
                    orcpt: Some("rfc822;bob@example.net".into()),
                    notify: Some("FAILURE,DELAY".into()),
                    state: RecipientState::Pending,
                    attempts: 1,
                    next_attempt: 1_700_000_300,
                    last_reply: Some("451 4.7.1 Try again later".into()),
                    delay_notified: false,
                },
                QueuedRecipient {
                    address: "carol@example.com".into(),
                    orcpt: None,
                    notify: None,
                    state: RecipientState::Delivered,
                    attempts: 1,
                    next_attempt: 1_700_000_000,
                    last_reply: Some("250 2.0.0 Ok: queued as 4F2".into()),
                    delay_notified: false,
                },
                QueuedRecipient {
                    address: "dan@example.com".into(),
                    orcpt: None,
                    notify: Some("NEVER".into()),
                    state: RecipientState::Failed,
                    attempts: 3,
                    next_attempt: 1_700_001_000,
                    last_reply: Some(
                        "550 5.1.1 <dan@example.com>: no such user\r\nrcpt evil".into(),
                    ),
                    delay_notified: true,
                },
            ],
        }
    }

    fn minimal() -> QueueEntry {
        QueueEntry {
            id: "A".into(),
            sender: None,
            created: 0,
            envid: None,
            ret: None,
            body_8bit: false,
            smtputf8: false,
            size: 0,
            held: true,
            recipients: vec![],
        }
    }

    #[test]
    fn golden_v1_keeps_parsing() {
        assert_eq!(parse(GOLDEN_V1).unwrap(), golden_entry());
        assert_eq!(serialize(&golden_entry()), GOLDEN_V1);
    }

    #[test]
    fn minimal_entry_text() {
        let text = serialize(&minimal());
        assert_eq!(
            text,
            "version 1\nid A\nsender <>\ncreated 0\nbody 7BIT\nsmtputf8 no\nsize 0\nheld yes\nend\n"
        );
        assert_eq!(parse(&text).unwrap(), minimal());
    }

    #[test]
    fn unknown_versions_are_rejected() {
        // Whatever follows: a newer version may change everything after it.
        for version in ["0", "2", "10", "01", "1.0", "x", ""] {
            let text = format!("version {version}\nid A\nwhatever new\nend\n");
            assert_eq!(
                parse(&text),
                Err(EnvelopeError::UnknownVersion(version.to_string())),
                "{text:?}"
            );
        }
        assert!(matches!(
            parse("id A\nversion 1\nend\n"),
            Err(EnvelopeError::Malformed { line: 1, .. })
        ));
        assert!(matches!(
            parse("version\nend\n"),
            Err(EnvelopeError::Malformed { line: 1, .. })
        ));
    }

    #[test]
    fn every_truncation_is_rejected() {
        let full = serialize(&golden_entry());
        for cut in 0..full.len() {
            let err = parse(&full[..cut]).unwrap_err();
            assert!(
                matches!(
                    err,
                    EnvelopeError::Truncated | EnvelopeError::Malformed { .. }
                ),
                "cut at {cut}: {err:?}"
            );
        }
        // Cut at a line boundary (a lost tail of recipients): no `end`.
        let cut = full.find("rcpt to=carol").unwrap();
        assert_eq!(parse(&full[..cut]), Err(EnvelopeError::Truncated));
        assert_eq!(parse(""), Err(EnvelopeError::Truncated));
        assert_eq!(
            parse(&full[..full.len() - 1]),
            Err(EnvelopeError::Truncated)
        );
    }

    #[test]
    fn malformed_table() {
        let base = serialize(&minimal());
        let rcpt = "rcpt to=b@x state=pending attempts=0 next=5 delay-notified=no";
        // (transformation of the minimal file, line the error names)
        let table: Vec<(String, usize)> = vec![
            (base.replace("held yes\n", ""), 8),
            (base.replace("held yes\n", "held yes\nheld no\n"), 9),
            (base.replace("held yes", "held maybe"), 8),
            (base.replace("size 0", "size -1"), 7),
            (base.replace("size 0", "size +1"), 7),
            (base.replace("size 0", "size 99999999999999999999999"), 7),
            (base.replace("created 0", "created "), 4),
            (base.replace("body 7BIT", "body 8bit"), 5),
            (base.replace("id A", "id A B"), 2),
            (base.replace("id A", "id A%2"), 2),
            (base.replace("id A", "id A%zz"), 2),
            (base.replace("id A", "id %FF"), 2),
            (base.replace("sender <>", "sender <a@b>"), 3),
            (base.replace("id A", "id\tA"), 2),
            (base.replace("id A\n", "id A\r\n"), 2),
            (base.replace("id A", "id A\u{e9}"), 2),
            (base.replace("id A", "colour blue"), 2),
            (base.replace("id A", "id"), 2),
            (base.replace("end\n", "end\nend\n"), 10),
            (base.replace("end\n", "end\n\n"), 10),
            (base.replace("end\n", &format!("{rcpt} bogus=1\nend\n")), 9),
            (
                base.replace("end\n", &format!("{rcpt} state=failed\nend\n")),
                9,
            ),
            (base.replace("end\n", &format!("{rcpt} notify\nend\n")), 9),
            (base.replace("end\n", &format!("{rcpt}  reply=x\nend\n")), 9),
            (
                base.replace("end\n", &format!("{}\nend\n", rcpt.replace(" next=5", ""))),
                9,
            ),
            (
                base.replace(
                    "end\n",
                    &format!("{}\nend\n", rcpt.replace("pending", "done")),
                ),
                9,
            ),
            (
                base.replace("end\n", &format!("{}\nend\n", rcpt.replace("=0", "=-1"))),
                9,
            ),
        ];
        for (text, line) in table {
            match parse(&text) {
                Err(EnvelopeError::Malformed { line: got, .. }) => {
                    assert_eq!(got, line, "{text:?}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        // Sanity: the recipient line itself is fine.
        assert!(parse(&base.replace("end\n", &format!("{rcpt}\nend\n"))).is_ok());
    }

    /// A hostile reply (CR LF, a forged field, a forged recipient) stays
    /// inside its own value.
    #[test]
    fn reply_cannot_inject_lines() {
        let mut entry = minimal();
        entry.recipients.push(QueuedRecipient {
            address: "b@x".into(),
            orcpt: None,
            notify: None,
            state: RecipientState::Pending,
            attempts: 0,
            next_attempt: 0,
            last_reply: Some("451 x\r\nheld no\nrcpt to=evil@x state=pending end\n".into()),
            delay_notified: false,
        });
        let text = serialize(&entry);
        assert_eq!(text.lines().count(), 10);
        assert!(text.lines().all(|l| !l.contains(['\r', '\t'])));
        assert_eq!(parse(&text).unwrap(), entry);
    }

    #[test]
    fn encoding_table() {
        let table = [
            ("", ""),
            ("plain@example.org", "plain@example.org"),
            ("a b", "a%20b"),
            ("50%", "50%25"),
            ("<>", "%3C%3E"),
            ("\r\n\t\0\x7f", "%0D%0A%09%00%7F"),
            ("é", "%C3%A9"),
            ("key=value;x,y", "key=value;x,y"),
        ];
        for (plain, encoded) in table {
            assert_eq!(encode(plain), encoded);
            assert_eq!(decode(1, encoded).unwrap(), plain);
        }
        assert_eq!(decode(1, "%c3%a9").unwrap(), "é");
        for bad in ["%", "%4", "%G0", "a%", "%C3", "<", ">"] {
            assert!(decode(1, bad).is_err(), "{bad:?}");
        }
    }

    fn weird_string() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[ \t\r\n%<>=a-]{0,8}",
            Just(String::new()),
            Just("<>".to_string()),
            Just("end".to_string()),
            Just("-".to_string()),
        ]
    }

    fn recipient() -> impl Strategy<Value = QueuedRecipient> {
        (
            weird_string(),
            proptest::option::of(weird_string()),
            proptest::option::of(weird_string()),
            prop_oneof![
                Just(RecipientState::Pending),
                Just(RecipientState::Delivered),
                Just(RecipientState::Failed)
            ],
            any::<u32>(),
            any::<i64>(),
            proptest::option::of(weird_string()),
            any::<bool>(),
        )
            .prop_map(
                |(
                    address,
                    orcpt,
                    notify,
                    state,
                    attempts,
                    next_attempt,
                    last_reply,
                    delay_notified,
                )| {
                    QueuedRecipient {
                        address,
                        orcpt,
                        notify,
                        state,
                        attempts,
                        next_attempt,
                        last_reply,
                        delay_notified,
                    }
                },
            )
    }

    fn entry() -> impl Strategy<Value = QueueEntry> {
        (
            (
                weird_string(),
                proptest::option::of(weird_string()),
                any::<i64>(),
                proptest::option::of(weird_string()),
                proptest::option::of(weird_string()),
            ),
            (any::<bool>(), any::<bool>(), any::<u64>(), any::<bool>()),
            proptest::collection::vec(recipient(), 0..5),
        )
            .prop_map(
                |(
                    (id, sender, created, envid, ret),
                    (body_8bit, smtputf8, size, held),
                    recipients,
                )| {
                    QueueEntry {
                        id,
                        sender,
                        created,
                        envid,
                        ret,
                        body_8bit,
                        smtputf8,
                        size,
                        held,
                        recipients,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn round_trip(entry in entry()) {
            let text = serialize(&entry);
            prop_assert!(text.bytes().all(|b| b == b'\n' || (b' '..=b'~').contains(&b)));
            prop_assert_eq!(text.lines().count(), 11 + entry.recipients.len()
                - usize::from(entry.envid.is_none()) - usize::from(entry.ret.is_none()));
            prop_assert_eq!(parse(&text), Ok(entry));
        }

        #[test]
        fn encoding_round_trip(value in any::<String>()) {
            let encoded = encode(&value);
            prop_assert!(encoded.bytes().all(|b| (b'!'..=b'~').contains(&b) && b != b'<' && b != b'>'));
            prop_assert_eq!(decode(1, &encoded), Ok(value));
        }

        #[test]
        fn parse_never_panics(text in "[a-z0-9 =%<>\n-]{0,200}") {
            let _ = parse(&text);
            let _ = parse(&format!("version 1\n{text}"));
        }
    }
}
