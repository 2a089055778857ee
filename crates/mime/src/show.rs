//! `mailroom show`: decoded headers, the MIME tree and the attachments of a
//! message, on top of mail-parser.
//!
//! mail-parser does the parsing (headers, RFC 2047, RFC 2231, charsets,
//! transfer encodings, broken boundaries). What it lacks and this module
//! adds: part numbers, decoded sizes in octets, a bound on the nesting we
//! walk, byte-exact attachment data (mail-parser hands text parts back
//! converted to UTF-8), safe unique file names, and the text `show` prints.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};

use mail_parser::decoders::DecodeFnc;
use mail_parser::parsers::MessageStream;
use mail_parser::{Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};

use crate::MimeError;
use crate::filename::NameAllocator;

/// What `mailroom show` tells about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSummary {
    /// The top-level header fields in message order, unfolded, with RFC 2047
    /// encoded words decoded.
    pub headers: Vec<HeaderField>,
    /// Every MIME entity, depth first, parents before children (the order
    /// of Python's `Message.walk()`). `parts[0]` is the message itself.
    pub parts: Vec<PartSummary>,
}

/// One decoded header field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderField {
    /// The field name as written in the message.
    pub name: String,
    /// The value: unfolded, encoded words decoded, control characters
    /// replaced by U+FFFD so that printing it cannot drive a terminal.
    pub value: String,
}

/// One MIME entity of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSummary {
    /// Position in the tree, as mblaze's mshow(1) numbers parts: the message
    /// is `1`, the children of entity `P` are `P.1`, `P.2`, … and the
    /// message inside a `message/rfc822` entity `P` is `P.1`. Unlike IMAP
    /// section numbers, every entity (multiparts too) gets a number.
    pub path: String,
    /// Nesting depth; the message itself is 0.
    pub depth: usize,
    /// Media type `type/subtype`, lowercased. Without a Content-Type field
    /// it is the RFC 2045 §5.2 / RFC 2046 §5.1.5 default: `text/plain`, or
    /// `message/rfc822` inside `multipart/digest`.
    pub content_type: String,
    /// The Content-Type parameters (names lowercased, RFC 2231 values
    /// decoded), in header order.
    pub parameters: Vec<(String, String)>,
    /// Content-Transfer-Encoding as written (lowercased); `None` when the
    /// field is absent, which means 7bit (RFC 2045 §6.1).
    pub transfer_encoding: Option<String>,
    /// Octets of the body after undoing the transfer encoding (no charset
    /// conversion); `None` for multipart entities.
    pub size: Option<usize>,
    /// Content-Disposition type (`inline`, `attachment`), lowercased.
    pub disposition: Option<String>,
    /// The file name the message gives: Content-Disposition `filename`, else
    /// Content-Type `name`. Untrusted; see `attachment`.
    pub filename: Option<String>,
    /// When this entity is one of the message's attachments: the sanitised
    /// file name `attachments` gives it.
    pub attachment: Option<String>,
    /// What was wrong with this entity, if anything (undecodable body,
    /// missing boundary, nesting cut off).
    pub problem: Option<String>,
}

/// An attachment, decoded, ready to be written to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// A safe file name: one path component, no control characters, no
    /// leading dot, not empty, unique within the message (ignoring case).
    pub filename: String,
    /// Media type `type/subtype`, lowercased.
    pub content_type: String,
    /// The octets after undoing the transfer encoding; for a
    /// `message/rfc822` attachment, the attached message.
    pub data: Vec<u8>,
}

/// Parses `raw` (one message, CRLF or LF line ends) and describes it.
///
/// Never panics: malformed input gives a best-effort tree with `problem`
/// notes. Fails when there is no header section at all
/// ([`MimeError::NotAMessage`]), or when mail-parser panics
/// ([`MimeError::ParserFailed`], caught; known only in debug builds).
pub fn describe(raw: &[u8]) -> Result<MessageSummary, MimeError> {
    guarded(|| {
        let message = parse(raw)?;
        let mut walk = Walk::new(false);
        walk.message(&message, "1".to_owned(), 0, false);
        let headers = decoded_headers(&message);
        dismantle(message);
        Ok(MessageSummary {
            headers,
            parts: walk.parts,
        })
    })
}

/// The attachments of `raw`, decoded, with safe unique file names: the
/// parts mail-parser does not take as the message text (files, images,
/// attached messages, text parts outside the displayed body). An attached
/// message is one attachment; its own attachments are not listed apart.
pub fn attachments(raw: &[u8]) -> Result<Vec<Attachment>, MimeError> {
    guarded(|| {
        let message = parse(raw)?;
        let mut walk = Walk::new(true);
        walk.message(&message, "1".to_owned(), 0, false);
        dismantle(message);
        Ok(walk.attachments)
    })
}

impl MessageSummary {
    /// The text `mailroom show` prints: the header fields, a blank line,
    /// then one line per MIME entity, indented by depth:
    ///
    /// ```text
    /// Subject: Grüße
    ///
    /// 1 multipart/mixed
    ///   1.1 text/plain; charset="utf-8" (quoted-printable, 120 octets)
    ///   1.2 application/pdf (base64, 5120 octets) attachment "a.pdf" -> a.pdf
    /// ```
    ///
    /// The `boundary` parameter is left out: it is framing, not content.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for field in &self.headers {
            let _ = writeln!(out, "{}: {}", field.name, field.value);
        }
        out.push('\n');
        for part in &self.parts {
            out.extend(std::iter::repeat_n("  ", part.depth));
            out.push_str(&part.path);
            out.push(' ');
            out.push_str(&part.content_type);
            for (name, value) in &part.parameters {
                if name != "boundary" {
                    let _ = write!(out, "; {name}={}", quoted(value));
                }
            }
            if let Some(size) = part.size {
                let encoding = part.transfer_encoding.as_deref().unwrap_or("7bit");
                let _ = write!(out, " ({}, {size} octets)", printable(encoding));
            }
            if let Some(disposition) = &part.disposition {
                let _ = write!(out, " {}", printable(disposition));
            }
            if let Some(filename) = &part.filename {
                let _ = write!(out, " {}", quoted(filename));
            }
            if let Some(saved_as) = &part.attachment {
                let _ = write!(out, " -> {saved_as}");
            }
            if let Some(problem) = &part.problem {
                let _ = write!(out, " [{problem}]");
            }
            out.push('\n');
        }
        out
    }
}

/// Runs `f`, turning a panic (a mail-parser bug on hostile input; it also
/// has `debug_assert!`s) into an error instead of taking the caller down.
fn guarded<T>(f: impl FnOnce() -> Result<T, MimeError>) -> Result<T, MimeError> {
    panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or(Err(MimeError::ParserFailed))
}

fn parse(raw: &[u8]) -> Result<Message<'_>, MimeError> {
    MessageParser::new()
        .parse(raw)
        .ok_or(MimeError::NotAMessage)
}

/// Drops `message` without recursion. mail-parser nests attached messages
/// as `PartType::Message(Message)` to any depth (it parses them without
/// recursing), and the derived `Drop` would recurse once per level: 20 000
/// nested `message/rfc822` headers (under 1 MB) overflow a 2 MiB stack.
fn dismantle(message: Message<'_>) {
    let mut pending = vec![message];
    while let Some(mut message) = pending.pop() {
        for part in &mut message.parts {
            if let PartType::Message(inner) = std::mem::take(&mut part.body) {
                pending.push(inner);
            }
        }
    }
}

/// Walks the part tree of a message, collecting part summaries and, when
/// asked, attachment data.
struct Walk {
    parts: Vec<PartSummary>,
    attachments: Vec<Attachment>,
    names: NameAllocator,
    with_data: bool,
}

impl Walk {
    fn new(with_data: bool) -> Self {
        Self {
            parts: Vec::new(),
            attachments: Vec::new(),
            names: NameAllocator::default(),
            with_data,
        }
    }

    /// Visits `message`'s root entity. Attachments are only collected for
    /// the message given to `describe` (depth 0): an attached message is
    /// one attachment, not the source of more.
    fn message(&mut self, message: &Message<'_>, path: String, depth: usize, in_digest: bool) {
        let attachment_ids: HashSet<u32> = if depth == 0 {
            message.attachments.iter().copied().collect()
        } else {
            HashSet::new()
        };
        let context = Context {
            message,
            attachment_ids: &attachment_ids,
        };
        self.part(&context, 0, path, depth, in_digest);
    }

    fn part(
        &mut self,
        context: &Context<'_, '_>,
        id: u32,
        path: String,
        depth: usize,
        in_digest: bool,
    ) {
        let Some(part) = context.message.parts.get(id as usize) else {
            return;
        };
        let (content_type, parameters, mut problem) = media_type(part, in_digest);
        let octets = octets(&context.message.raw_message, part);
        if part.is_encoding_problem && problem.is_none() {
            // mail-parser's flag covers undecodable bodies, missing
            // delimiters and missing bodies alike.
            problem = Some(
                match (&part.body, octets.as_deref()) {
                    (PartType::Message(_), _) => "malformed attached message",
                    (_, Some([])) => "malformed: no body",
                    _ => "malformed: body shown as found",
                }
                .to_owned(),
            );
        }
        let filename = part.attachment_name().map(printable);
        let attachment = context.attachment_ids.contains(&id).then(|| {
            let stem = format!("part-{path}");
            self.names
                .allocate(part.attachment_name(), &stem, &content_type)
        });
        if let (true, Some(name), Some(data)) = (self.with_data, &attachment, &octets) {
            self.attachments.push(Attachment {
                filename: name.clone(),
                content_type: content_type.clone(),
                data: data.to_vec(),
            });
        }
        let index = self.parts.len();
        self.parts.push(PartSummary {
            path: path.clone(),
            depth,
            content_type: content_type.clone(),
            parameters,
            transfer_encoding: part
                .content_transfer_encoding()
                .map(|e| printable(e.trim()).to_ascii_lowercase()),
            size: octets.as_ref().map(|o| o.len()),
            disposition: part
                .content_disposition()
                .map(|d| printable(&d.c_type).to_ascii_lowercase()),
            filename,
            attachment,
            problem,
        });

        let has_children = match &part.body {
            PartType::Multipart(children) => !children.is_empty(),
            PartType::Message(_) => true,
            _ => false,
        };
        if has_children && depth + 1 >= MAX_DEPTH {
            if let Some(summary) = self.parts.get_mut(index) {
                let cut = format!("nested deeper than {MAX_DEPTH} levels: not shown");
                summary.problem = Some(match summary.problem.take() {
                    Some(earlier) => format!("{earlier}; {cut}"),
                    None => cut,
                });
            }
            return;
        }
        match &part.body {
            PartType::Multipart(children) => {
                let digest = content_type == "multipart/digest";
                for (n, &child) in children.iter().enumerate() {
                    // A part cannot contain itself or an earlier part; this
                    // guards the walk against a malformed id list.
                    if child <= id {
                        continue;
                    }
                    self.part(
                        context,
                        child,
                        format!("{path}.{}", n + 1),
                        depth + 1,
                        digest,
                    );
                }
            }
            PartType::Message(inner) => {
                self.message(inner, format!("{path}.1"), depth + 1, false);
            }
            _ => {}
        }
    }
}

/// The message a part belongs to, and which of its parts are attachments.
struct Context<'a, 'm> {
    message: &'a Message<'m>,
    attachment_ids: &'a HashSet<u32>,
}

/// (`type/subtype`, parameters, problem) of a part.
fn media_type(
    part: &MessagePart<'_>,
    in_digest: bool,
) -> (String, Vec<(String, String)>, Option<String>) {
    let is_multipart = matches!(part.body, PartType::Multipart(_));
    let Some(content_type) = part.content_type() else {
        // RFC 2046 §5.1.5: in a digest the default is message/rfc822.
        let default = if in_digest {
            "message/rfc822"
        } else {
            "text/plain"
        };
        return (default.to_owned(), Vec::new(), None);
    };
    let parameters = content_type
        .attributes()
        .unwrap_or_default()
        .iter()
        .map(|a| (printable(&a.name).to_ascii_lowercase(), printable(&a.value)))
        .collect();
    let main = printable(content_type.ctype()).to_ascii_lowercase();
    let (media_type, mut problem) = match content_type.subtype() {
        Some(sub) if !main.is_empty() && !sub.is_empty() => (
            format!("{main}/{}", printable(sub).to_ascii_lowercase()),
            None,
        ),
        // RFC 2045 §5.2: a syntactically invalid Content-Type means
        // text/plain; mail-parser still parses `multipart` with a boundary
        // as a multipart, which RFC 2046 §5.1.3 treats as mixed.
        _ if is_multipart => (
            "multipart/mixed".to_owned(),
            Some("malformed Content-Type: taken as multipart/mixed".to_owned()),
        ),
        _ => (
            "text/plain".to_owned(),
            Some("malformed Content-Type: taken as text/plain".to_owned()),
        ),
    };
    if media_type.starts_with("multipart/") && !is_multipart && problem.is_none() {
        problem = Some("multipart without a usable boundary: taken as text".to_owned());
    }
    (media_type, parameters, problem)
}

/// The body of a leaf or message part with its transfer encoding undone
/// (and no charset conversion); `None` for multiparts. `raw` is the
/// `raw_message` of the message the part belongs to, which its offsets
/// index.
fn octets<'a>(raw: &'a [u8], part: &'a MessagePart<'_>) -> Option<Cow<'a, [u8]>> {
    let body = || {
        raw.get(part.offset_body as usize..part.offset_end as usize)
            .unwrap_or_default()
    };
    match &part.body {
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => Some(Cow::Borrowed(bytes)),
        // mail-parser converted these to UTF-8 from their charset: decode the
        // transfer encoding again from the raw octets. On an encoding
        // problem it has already reset `encoding` to None.
        PartType::Text(_) | PartType::Html(_) => Some(match part.encoding {
            Encoding::None => Cow::Borrowed(body()),
            Encoding::Base64 => redecode(body(), MessageStream::decode_base64_mime),
            Encoding::QuotedPrintable => {
                redecode(body(), MessageStream::decode_quoted_printable_mime)
            }
        }),
        // An attached message: the raw octets when it was not encoded
        // (mail-parser parsed it in place), else its decoded copy.
        PartType::Message(inner) => Some(match part.encoding {
            Encoding::None => Cow::Borrowed(body()),
            _ => Cow::Borrowed(&inner.raw_message),
        }),
        PartType::Multipart(_) => None,
    }
}

/// Undoes a transfer encoding with the decoder mail-parser used while
/// parsing; the raw octets when that fails.
fn redecode<'a>(body: &'a [u8], decoder: DecodeFnc<'a>) -> Cow<'a, [u8]> {
    let mut stream = MessageStream::new(body);
    match decoder(&mut stream, b"") {
        (usize::MAX, _) => Cow::Borrowed(body),
        (_, decoded) => decoded,
    }
}

/// The top-level header fields, each value decoded as unstructured text
/// (RFC 5322 §2.2.1) so that every field, not only Subject, shows encoded
/// words decoded.
fn decoded_headers(message: &Message<'_>) -> Vec<HeaderField> {
    let raw: &[u8] = &message.raw_message;
    let Some(root) = message.parts.first() else {
        return Vec::new();
    };
    root.headers
        .iter()
        .map(|header| {
            let name = raw
                .get(header.offset_field as usize..header.offset_start as usize)
                .map(|n| String::from_utf8_lossy(n))
                .map(|n| n.trim_end().trim_end_matches(':').trim_end().to_owned())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| header.name().to_owned());
            let value = raw
                .get(header.offset_start as usize..header.offset_end as usize)
                .map(decode_unstructured)
                .unwrap_or_default();
            HeaderField {
                name: printable(&name),
                value: printable(&value),
            }
        })
        .collect()
}

fn decode_unstructured(value: &[u8]) -> String {
    let mut line = value.to_vec();
    // The parser returns a value only once it sees the line end.
    line.push(b'\n');
    MessageStream::new(&line)
        .parse_unstructured()
        .into_text()
        .map(Cow::into_owned)
        .unwrap_or_default()
}

/// `text` with control characters (C0 except TAB, DEL, C1) replaced by
/// U+FFFD: headers and names come from the sender and reach a terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// A parameter value in quotes, `"` and `\` escaped as in RFC 5322
/// quoted-string.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in printable(value).chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// How deep `describe` and `attachments` walk: parts nested deeper are
/// neither listed nor extracted. Real
/// mail rarely nests beyond 5 levels; the bound keeps the walk's recursion
/// small whatever the input.
pub const MAX_DEPTH: usize = 50;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn headers_are_decoded_and_unfolded() {
        let raw = b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and\r\n =?iso-8859-1?q?=E9t=E9?=\r\nFrom: =?utf-8?b?SsO8cmdlbg==?= <j@example.org>\r\nX-Evil: =?utf-8?q?a=1B[31mb?=\r\n\r\nbody\r\n";
        let summary = describe(raw).unwrap();
        let headers: Vec<(&str, &str)> = summary
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_str()))
            .collect();
        assert_eq!(
            headers,
            [
                ("Subject", "Grüße and été"),
                ("From", "Jürgen <j@example.org>"),
                ("X-Evil", "a\u{FFFD}[31mb"),
            ]
        );
    }

    #[test]
    fn single_part_message() {
        let summary = describe(b"Subject: x\n\nhello\n").unwrap();
        assert_eq!(summary.parts.len(), 1);
        let part = &summary.parts[0];
        assert_eq!(part.path, "1");
        assert_eq!(part.content_type, "text/plain");
        assert_eq!(part.size, Some(6));
        assert_eq!(part.transfer_encoding, None);
        assert_eq!(part.attachment, None);
    }

    #[test]
    fn no_headers_is_an_error() {
        assert_eq!(describe(b""), Err(MimeError::NotAMessage));
        assert_eq!(attachments(b""), Err(MimeError::NotAMessage));
    }

    #[test]
    fn text_attachment_keeps_its_charset_octets() {
        // Latin-1 "é" must come back as the single octet E9, not as UTF-8.
        let raw = b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nbody\n--b\nContent-Type: text/plain; charset=iso-8859-1\nContent-Disposition: attachment; filename=\"x.txt\"\nContent-Transfer-Encoding: quoted-printable\n\n=E9t=E9\n--b--\n";
        let found = attachments(raw).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].filename, "x.txt");
        assert_eq!(found[0].data, b"\xe9t\xe9");
        let summary = describe(raw).unwrap();
        assert_eq!(summary.parts[2].size, Some(3));
    }

    #[test]
    fn nesting_is_cut_at_max_depth() {
        let depth = 200;
        let mut raw = String::new();
        for level in 0..depth {
            raw.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{level}\"\n\n--b{level}\n"
            ));
        }
        raw.push_str("Content-Type: text/plain\n\nleaf\n");
        for level in (0..depth).rev() {
            raw.push_str(&format!("--b{level}--\n"));
        }
        let summary = describe(raw.as_bytes()).unwrap();
        assert_eq!(summary.parts.len(), MAX_DEPTH);
        let last = summary.parts.last().unwrap();
        assert_eq!(last.depth, MAX_DEPTH - 1);
        assert!(last.problem.as_deref().unwrap().contains("nested deeper"));
    }
}
