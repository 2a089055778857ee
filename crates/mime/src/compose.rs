//! `mailroom send`: composing a message from a draft, on top of
//! mail-builder.
//!
//! mail-builder writes the header fields (folding, RFC 2047 encoded words
//! for non-ASCII text and display names, RFC 2231 file names, the Date
//! format) and the MIME framing. This module decides what it would decide
//! otherwise, because layer 0 code must be deterministic and strict:
//!
//! - the multipart boundary is derived from the draft (mail-builder's own
//!   reads the clock) and checked against the encoded bodies;
//! - the text body is 7bit or quoted-printable as RFC 2045 asks (mail-builder
//!   may pick base64 and leaves control characters unescaped in
//!   quoted-printable), and always gets CRLF line ends;
//! - every attachment is base64, including text/* files, so that their
//!   octets come back exactly;
//! - inputs that would break the header syntax are refused, and the output
//!   is checked: CRLF only, no line over 998 octets.

use mail_builder::MessageBuilder;
use mail_builder::encoders::{Base64Encoder, QuotedPrintableEncoder};
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::{BodyPart, MimePart};

use crate::MimeError;
use crate::content_type::guess_content_type;
use crate::filename::sanitize;

/// A message to compose: what `mailroom send` collects from its flags and
/// standard input. The caller supplies the time and the Message-ID, which
/// keeps this crate free of clocks and randomness.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draft {
    /// The author: `addr@example.org` or `Name <addr@example.org>`.
    pub from: String,
    /// Primary recipients, same forms as `from`.
    pub to: Vec<String>,
    /// Carbon-copy recipients.
    pub cc: Vec<String>,
    /// Blind-copy recipients: checked, but never written into the message
    /// (RFC 5322 §3.6.3); the envelope carries them.
    pub bcc: Vec<String>,
    /// The subject, any Unicode text without control characters.
    pub subject: String,
    /// The text body; any line ends (CRLF, LF, CR) become CRLF.
    pub body: String,
    /// Files to attach: (file name, contents). The name is reduced to its
    /// last path component and its extension picks the media type.
    pub attachments: Vec<(String, Vec<u8>)>,
    /// Origination date, seconds since the Unix epoch (written in UTC).
    pub date: i64,
    /// The Message-ID, with or without its angle brackets: `<id@host>`.
    pub message_id: String,
}

/// Composes `draft` into an RFC 5322 message with CRLF line ends: Date,
/// Message-ID, From, To, Cc, Subject and MIME-Version, then a
/// `text/plain; charset=utf-8` body, in a `multipart/mixed` with one base64
/// part per attachment when there are attachments.
pub fn compose(draft: &Draft) -> Result<Vec<u8>, MimeError> {
    let from = mailbox("From", &draft.from)?;
    let to = mailboxes("To", &draft.to)?;
    let cc = mailboxes("Cc", &draft.cc)?;
    mailboxes("Bcc", &draft.bcc)?;
    if draft.subject.chars().any(char::is_control) {
        return Err(MimeError::ControlCharacterInHeader("Subject"));
    }
    let message_id = message_id(&draft.message_id)?;

    let mut builder = MessageBuilder::new()
        .date(Date::new(draft.date))
        .message_id(message_id)
        .from(from);
    if !to.is_empty() {
        builder = builder.to(Address::new_list(to));
    } else if cc.is_empty() {
        // RFC 5322 §3.6.3 allows no destination field, but an empty group
        // is what sendmail and most user agents write for Bcc-only mail.
        // (mail-builder's group would quote the name: written raw.)
        builder = builder.header("To", Raw::new("undisclosed-recipients:;"));
    }
    if !cc.is_empty() {
        builder = builder.cc(Address::new_list(cc));
    }
    builder = builder
        .subject(Text::new(draft.subject.as_str()))
        .header("MIME-Version", Raw::new("1.0"));

    let text = text_part(&draft.body);
    let body = if draft.attachments.is_empty() {
        text.part
    } else {
        let mut literals = Vec::new();
        let mut parts = Vec::with_capacity(draft.attachments.len() + 1);
        for part in std::iter::once(text).chain(
            draft
                .attachments
                .iter()
                .map(|(name, data)| attachment_part(name, data)),
        ) {
            literals.extend(part.literal);
            parts.push(part.part);
        }
        let boundary = boundary(draft, &literals);
        MimePart::new(
            ContentType::new("multipart/mixed").attribute("boundary", boundary),
            parts,
        )
    };
    let output = builder.body(body).write_to_vec().unwrap_or_default();
    check_lines(&output)?;
    Ok(output)
}

/// A leaf part with its body already transfer-encoded.
struct EncodedPart {
    part: MimePart<'static>,
    /// The body when it goes unencoded (7bit): the boundary must not occur
    /// in it. Base64 and quoted-printable bodies cannot hold the boundary.
    literal: Option<Vec<u8>>,
}

fn text_part(body: &str) -> EncodedPart {
    let text = crlf_lines(body);
    let (encoding, encoded) = if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
    {
        // RFC 2045 §6.7 (1) wants control characters escaped in
        // quoted-printable, and §2.7 forbids NUL in 7bit; mail-builder's
        // quoted-printable copies them through, so such text goes base64.
        ("base64", base64(text.as_bytes()).into_bytes())
    } else if !text.is_ascii() || text.split("\r\n").any(|line| line.len() > TEXT_LINE_LIMIT) {
        let encoded = QuotedPrintableEncoder::new()
            .preserve_line_breaks()
            .encode(text.as_bytes())
            .unwrap_or_default();
        ("quoted-printable", encoded)
    } else {
        ("7bit", text.into_bytes())
    };
    EncodedPart {
        literal: (encoding == "7bit").then(|| encoded.clone()),
        part: MimePart::new(
            ContentType::new("text/plain").attribute("charset", "utf-8"),
            BodyPart::Binary(encoded.into()),
        )
        .transfer_encoding(encoding),
    }
}

fn attachment_part(name: &str, data: &[u8]) -> EncodedPart {
    let mut filename = sanitize(name);
    if filename.is_empty() {
        filename = "attachment".to_owned();
    }
    let mut media_type = guess_content_type(&filename);
    if media_type == "message/rfc822" {
        // RFC 2046 §5.2.1: a message/rfc822 body may only be 7bit, 8bit or
        // binary. One that is not already a canonical 7bit message is sent
        // as an opaque file instead, so that it still arrives unchanged.
        if is_canonical_7bit(data) {
            return EncodedPart {
                part: MimePart::new(
                    ContentType::new(media_type),
                    BodyPart::Binary(data.to_vec().into()),
                )
                .attachment(filename)
                .transfer_encoding("7bit"),
                literal: Some(data.to_vec()),
            };
        }
        media_type = "application/octet-stream";
    }
    EncodedPart {
        part: MimePart::new(
            ContentType::new(media_type).attribute("name", filename.clone()),
            BodyPart::Binary(base64(data).into_bytes().into()),
        )
        .attachment(filename)
        .transfer_encoding("base64"),
        literal: None,
    }
}

/// `text` with every line end (CRLF, lone LF, lone CR) as CRLF, and a
/// final CRLF when the text does not end with one (RFC 5322 §2.3: the
/// body is lines).
fn crlf_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 32 + 2);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push_str("\r\n");
            }
            '\n' => out.push_str("\r\n"),
            c => out.push(c),
        }
    }
    if !out.is_empty() && !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out
}

/// Base64 in lines of 76 characters ending in CRLF (RFC 2045 §6.8).
fn base64(data: &[u8]) -> String {
    let encoded = Base64Encoder::new()
        .wrap_lines()
        .encode(data)
        .unwrap_or_default();
    String::from_utf8_lossy(&encoded).into_owned()
}

/// Whether `data` can be a 7bit message/rfc822 body as is: US-ASCII
/// without NUL, CRLF line ends only, lines of at most 998 octets (RFC 2045
/// §2.7 "7bit data").
fn is_canonical_7bit(data: &[u8]) -> bool {
    let mut previous = b'\n';
    let mut line_length = 0usize;
    for (index, &byte) in data.iter().enumerate() {
        match byte {
            0 | 0x80..=0xFF => return false,
            b'\r' if data.get(index + 1) != Some(&b'\n') => return false,
            b'\n' if previous != b'\r' => return false,
            b'\n' => line_length = 0,
            b'\r' => {}
            _ => {
                line_length += 1;
                if line_length > MAX_LINE_OCTETS {
                    return false;
                }
            }
        }
        previous = byte;
    }
    !data.is_empty()
}

/// A boundary that appears in none of the bodies (RFC 2046 §5.1.1). It
/// starts with `=_`, which base64 and quoted-printable output cannot
/// contain (RFC 2045 §6.7 escapes `=`, §6.8 has no `_`); the `literals`
/// (7bit text, attached messages) are searched. Derived from the
/// Message-ID and date, so the same draft always gives the same message.
fn boundary(draft: &Draft, literals: &[Vec<u8>]) -> String {
    let seed = fnv1a(draft.message_id.as_bytes()) ^ (draft.date as u64).rotate_left(32);
    let mut counter = 0u64;
    loop {
        let candidate = format!("=_mailroom_{:016x}", fnv1a(&(seed ^ counter).to_le_bytes()));
        let found = |body: &Vec<u8>| {
            body.windows(candidate.len())
                .any(|window| window == candidate.as_bytes())
        };
        if !literals.iter().any(found) {
            return candidate;
        }
        // Each body can hold only so many distinct candidates, so this ends.
        counter += 1;
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `Name <addr-spec>` or `addr-spec` → mail-builder's address. The display
/// name may be quoted; mail-builder quotes or RFC 2047-encodes it again.
fn mailbox(field: &'static str, input: &str) -> Result<Address<'static>, MimeError> {
    let invalid = || MimeError::InvalidAddress {
        field,
        value: input.to_owned(),
    };
    let input = input.trim();
    if input.chars().any(char::is_control) {
        return Err(MimeError::ControlCharacterInHeader(field));
    }
    let (name, addr) = match (input.rfind('<'), input.strip_suffix('>')) {
        (Some(open), Some(inner)) => (
            inner.get(..open).unwrap_or_default().trim(),
            inner.get(open + 1..).unwrap_or_default().trim(),
        ),
        (None, None) => ("", input),
        _ => return Err(invalid()),
    };
    // SMTPUTF8 addresses (RFC 6531) would need message/global; not yet.
    mailroom_core::Address::parse(addr, false).map_err(|_| invalid())?;
    let name = unquote(name);
    let name = (!name.is_empty()).then_some(name);
    Ok(Address::new_address(name, addr.to_owned()))
}

fn mailboxes(field: &'static str, inputs: &[String]) -> Result<Vec<Address<'static>>, MimeError> {
    inputs.iter().map(|input| mailbox(field, input)).collect()
}

/// A display name as typed, without its surrounding quotes and with `\x`
/// escapes undone.
fn unquote(name: &str) -> String {
    let Some(inner) = name
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return name.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

/// The inside of a `msg-id` (RFC 5322 §3.6.4: `"<" id-left "@" id-right
/// ">"`), checked to be printable US-ASCII with one `@` between two
/// non-empty sides.
fn message_id(input: &str) -> Result<MessageId<'static>, MimeError> {
    let inner = input
        .strip_prefix('<')
        .and_then(|rest| rest.strip_suffix('>'))
        .unwrap_or(input);
    let valid = inner
        .bytes()
        .all(|b| (33..=126).contains(&b) && b != b'<' && b != b'>')
        && inner.split_once('@').is_some_and(|(left, right)| {
            !left.is_empty() && !right.is_empty() && !right.contains('@')
        });
    if !valid {
        return Err(MimeError::InvalidMessageId(input.to_owned()));
    }
    Ok(MessageId::new(inner.to_owned()))
}

/// RFC 5322 §2.1.1 / §2.3: lines end in CRLF (no lone CR or LF) and hold at
/// most 998 octets. mail-builder folds header fields, but cannot fold a
/// single overlong token such as an address.
fn check_lines(message: &[u8]) -> Result<(), MimeError> {
    let mut rest = message;
    let mut line = 0;
    while !rest.is_empty() {
        line += 1;
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            return Err(MimeError::BareLineEnd { line });
        };
        let content = rest.get(..lf).unwrap_or_default();
        rest = rest.get(lf + 1..).unwrap_or_default();
        let Some(content) = content.strip_suffix(b"\r") else {
            return Err(MimeError::BareLineEnd { line });
        };
        if content.contains(&b'\r') {
            return Err(MimeError::BareLineEnd { line });
        }
        if content.len() > MAX_LINE_OCTETS {
            return Err(MimeError::LineTooLong { line });
        }
    }
    Ok(())
}

/// RFC 5322 §2.1.1: "Each line of characters MUST be no more than 998
/// characters ... excluding the CRLF."
const MAX_LINE_OCTETS: usize = 998;

/// Text lines longer than this go quoted-printable: RFC 5322 §2.1.1 says
/// lines SHOULD be no more than 78 characters.
const TEXT_LINE_LIMIT: usize = 78;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn crlf_lines_table() {
        let rows = [
            ("", ""),
            ("a", "a\r\n"),
            ("a\n", "a\r\n"),
            ("a\r\n", "a\r\n"),
            ("a\rb", "a\r\nb\r\n"),
            ("a\r\r\nb\n\n", "a\r\n\r\nb\r\n\r\n"),
            ("\n", "\r\n"),
        ];
        for (input, expected) in rows {
            assert_eq!(crlf_lines(input), expected, "{input:?}");
        }
    }

    #[test]
    fn canonical_7bit_table() {
        let long = format!("{}\r\n", "x".repeat(999));
        let rows: [(&[u8], bool); 9] = [
            (b"Subject: x\r\n\r\nbody\r\n", true),
            (b"no final line end", true),
            (b"", false),
            (b"lf\n", false),
            (b"cr\r", false),
            (b"cr\rx\r\n", false),
            (b"nul\0\r\n", false),
            (b"8bit \xc3\xa9\r\n", false),
            (long.as_bytes(), false),
        ];
        for (input, expected) in rows {
            assert_eq!(is_canonical_7bit(input), expected, "{input:?}");
        }
    }

    #[test]
    fn message_id_table() {
        for ok in ["<a@b>", "a@b", "<a.b+c@[1.2.3.4]>"] {
            assert!(message_id(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "<>",
            "<@b>",
            "<a@>",
            "<a b@c>",
            "<a@b",
            "<a<@b>",
            "<é@b>",
            "<a@b>\r\n",
            "<x@y@z>",
        ] {
            assert_eq!(
                message_id(bad),
                Err(MimeError::InvalidMessageId(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn mailbox_table() {
        let ok = [
            ("a@example.org", None, "a@example.org"),
            (" a@example.org ", None, "a@example.org"),
            ("<a@example.org>", None, "a@example.org"),
            ("Alice <a@example.org>", Some("Alice"), "a@example.org"),
            (
                "\"Doe, J\\\"x\\\"\" <a@example.org>",
                Some("Doe, J\"x\""),
                "a@example.org",
            ),
            ("Jürgen <j@example.org>", Some("Jürgen"), "j@example.org"),
        ];
        for (input, name, email) in ok {
            match mailbox("To", input).unwrap() {
                Address::Address(address) => {
                    assert_eq!(address.name.as_deref(), name, "{input:?}");
                    assert_eq!(address.email, email, "{input:?}");
                }
                other => panic!("{other:?}"),
            }
        }
        for bad in [
            "",
            "a",
            "a@",
            "Alice <a@example.org",
            "a@example.org>",
            "<>",
            "a b@c.d",
        ] {
            assert!(
                matches!(mailbox("To", bad), Err(MimeError::InvalidAddress { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn check_lines_table() {
        let long = format!("{}\r\n", "x".repeat(999));
        let rows: [(&[u8], Result<(), MimeError>); 7] = [
            (b"a\r\nb\r\n", Ok(())),
            (b"", Ok(())),
            (b"a\r\nb", Err(MimeError::BareLineEnd { line: 2 })),
            (b"a\nb\r\n", Err(MimeError::BareLineEnd { line: 1 })),
            (b"a\r\nb\rc\r\n", Err(MimeError::BareLineEnd { line: 2 })),
            (long.as_bytes(), Err(MimeError::LineTooLong { line: 1 })),
            (&long.as_bytes()[1..], Ok(())),
        ];
        for (input, expected) in rows {
            assert_eq!(check_lines(input), expected, "{input:?}");
        }
    }
}
