//! Submission fix-ups (RFC 6409 §8): what a message submission agent must
//! add to a message a client left incomplete.

/// Whether `raw` lacks a `Date:` field and a `Message-ID:` field, as
/// `(needs_date, needs_message_id)`.
///
/// RFC 6409 §8.2 lets the MSA add `Date:` and §8.3 has it add
/// `Message-ID:` when the submitted message lacks them (RFC 5322 §3.6.1
/// requires the date, §3.6.4 says every message SHOULD have an id). Only
/// the header section is scanned: it ends at the first empty line, or at
/// the first line that is neither a field nor a continuation (a body that
/// starts without the empty line). A field present with an empty value
/// counts as present, so that no second one is added.
pub fn missing_date_and_message_id(raw: &[u8]) -> (bool, bool) {
    let mut has_date = false;
    let mut has_message_id = false;
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            continue; // folded continuation of the previous field
        }
        let Some(name) = field_name(line) else {
            break;
        };
        has_date |= name.eq_ignore_ascii_case(b"Date");
        has_message_id |= name.eq_ignore_ascii_case(b"Message-ID");
        if has_date && has_message_id {
            break;
        }
    }
    (!has_date, !has_message_id)
}

/// The field name of a header line: RFC 5322 §3.6.8 `ftext` (printable
/// US-ASCII except colon) up to the colon, allowing the obsolete white space
/// before the colon (RFC 5322 §4.5.8 `obs-optional`). `None` for a line
/// that is not a field.
fn field_name(line: &[u8]) -> Option<&[u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = line.get(..colon)?;
    let name = match name.iter().rposition(|&b| b != b' ' && b != b'\t') {
        Some(last) => name.get(..=last)?,
        None => return None,
    };
    name.iter()
        .all(|&b| (33..=126).contains(&b))
        .then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let rows: &[(&[u8], (bool, bool))] = &[
            (
                b"Date: x\r\nMessage-ID: <a@b>\r\n\r\nbody\r\n",
                (false, false),
            ),
            (b"date: x\nmessage-id: <a@b>\n\n", (false, false)),
            (b"DATE : x\r\nMESSAGE-ID\t: <a@b>\r\n\r\n", (false, false)),
            (b"Subject: x\r\n\r\nDate: in the body\r\n", (true, true)),
            (b"Subject: x\r\nDate: y\r\n\r\n", (false, true)),
            (b"Message-ID: <a@b>\r\n", (true, false)),
            // A folded line that happens to read "Date:" is a continuation.
            (b"Subject: x\r\n Date: y\r\n\r\n", (true, true)),
            (b"Subject: x\r\n\tMessage-ID: y\r\n\r\n", (true, true)),
            // Body started without an empty line: scanning stops there.
            (
                b"Subject: x\r\nnot a header line\r\nDate: y\r\n",
                (true, true),
            ),
            (b"Resent-Date: x\r\nX-Message-ID: y\r\n\r\n", (true, true)),
            (b"Date:\r\nMessage-ID:\r\n\r\n", (false, false)),
            (b"", (true, true)),
            (b"\r\nDate: x\r\n", (true, true)),
            (b": x\r\nDate: y\r\n", (true, true)),
        ];
        for (raw, expected) in rows {
            assert_eq!(
                missing_date_and_message_id(raw),
                *expected,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }
}
