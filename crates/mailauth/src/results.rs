//! `Authentication-Results` fields that name us (RFC 8601 §5): an MTA
//! must remove those arriving from outside, or a forger could claim our
//! verdicts; and one still present on a queued message therefore is ours,
//! written when the message came in from the internet.

use std::ops::Range;

const FIELD: &[u8] = b"authentication-results";

/// The header fields of `message`, each as (name, whole field including
/// its folded lines and final line break), up to the empty line.
fn fields(message: &[u8]) -> Vec<(Range<usize>, Range<usize>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < message.len() {
        let line_end = line_end_of(message, pos);
        if line_end == pos || message[pos] == b'\r' && line_end == pos + 1 {
            // Empty line: the body starts.
            break;
        }
        let start = pos;
        pos = next_line(message, line_end);
        while pos < message.len() && (message[pos] == b' ' || message[pos] == b'\t') {
            pos = next_line(message, line_end_of(message, pos));
        }
        let name_end = message[start..pos]
            .iter()
            .position(|&b| b == b':')
            .map_or(start, |i| start + i);
        out.push((start..name_end, start..pos));
    }
    out
}

/// Index of the `\n` ending the line that starts at `pos` (or the end).
fn line_end_of(message: &[u8], pos: usize) -> usize {
    message[pos..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(message.len(), |i| pos + i)
}

fn next_line(message: &[u8], newline: usize) -> usize {
    (newline + 1).min(message.len())
}

/// The authserv-id of an `Authentication-Results` value: its first token,
/// after any comment (RFC 8601 §2.2).
fn authserv_id(value: &[u8]) -> String {
    let mut rest = value;
    loop {
        let trimmed = rest.trim_ascii_start();
        if let Some(after) = trimmed.strip_prefix(b"(") {
            // Skip a comment (nesting and quoted pairs are rare enough
            // here to treat the first `)` as its end).
            rest = after
                .iter()
                .position(|&b| b == b')')
                .map_or(&[][..], |i| &after[i + 1..]);
            continue;
        }
        let end = trimmed
            .iter()
            .position(|&b| b == b';' || b == b'(' || b.is_ascii_whitespace())
            .unwrap_or(trimmed.len());
        return String::from_utf8_lossy(&trimmed[..end]).to_ascii_lowercase();
    }
}

fn is_ours(message: &[u8], name: &Range<usize>, whole: &Range<usize>, host: &str) -> bool {
    message[name.clone()]
        .trim_ascii()
        .eq_ignore_ascii_case(FIELD)
        && authserv_id(&message[name.end + 1..whole.end]) == host
}

/// True when `message` carries an `Authentication-Results` field whose
/// authserv-id is `hostname`.
pub fn has_own(message: &[u8], hostname: &str) -> bool {
    let host = hostname.trim_end_matches('.').to_ascii_lowercase();
    fields(message)
        .iter()
        .any(|(name, whole)| is_ours(message, name, whole, &host))
}

/// `message` without its `Authentication-Results` fields naming
/// `hostname`; `None` when it has none (the common case: no copy).
pub fn strip_own(message: &[u8], hostname: &str) -> Option<Vec<u8>> {
    let host = hostname.trim_end_matches('.').to_ascii_lowercase();
    let drop: Vec<Range<usize>> = fields(message)
        .into_iter()
        .filter(|(name, whole)| is_ours(message, name, whole, &host))
        .map(|(_, whole)| whole)
        .collect();
    if drop.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(message.len());
    let mut pos = 0;
    for range in drop {
        out.extend_from_slice(&message[pos..range.start]);
        pos = range.end;
    }
    out.extend_from_slice(&message[pos..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const HOST: &str = "mx.example.org";

    #[test]
    fn removes_only_ours_and_keeps_the_rest_byte_exact() {
        let message = b"Received: from a\r\n\tby b; now\r\n\
Authentication-Results: MX.example.org;\r\n\tdkim=pass header.d=bank.example\r\n\
Authentication-Results: other.example; spf=fail\r\n\
authentication-results : (forged) mx.example.org; dmarc=pass\r\n\
Subject: hi\r\n\
\r\n\
Authentication-Results: mx.example.org; body text stays\r\n";
        assert!(has_own(message, HOST));
        let stripped = strip_own(message, "mx.example.org.").unwrap();
        assert_eq!(
            String::from_utf8(stripped.clone()).unwrap(),
            "Received: from a\r\n\tby b; now\r\n\
Authentication-Results: other.example; spf=fail\r\n\
Subject: hi\r\n\
\r\n\
Authentication-Results: mx.example.org; body text stays\r\n"
        );
        assert!(!has_own(&stripped, HOST));
        assert_eq!(strip_own(&stripped, HOST), None);
    }

    #[test]
    fn a_prefix_of_our_name_is_not_ours() {
        let message = b"Authentication-Results: mx.example.org.evil; spf=pass\r\n\r\nbody";
        assert!(!has_own(message, HOST));
        let message = b"Authentication-Results: mx.example.org 1; spf=pass\r\n\r\nbody";
        assert!(has_own(message, HOST));
    }

    #[test]
    fn odd_messages() {
        assert!(!has_own(b"", HOST));
        assert!(!has_own(b"\r\n\r\n", HOST));
        assert!(has_own(
            b"Authentication-Results: mx.example.org; none",
            HOST
        ));
        assert_eq!(
            strip_own(b"Authentication-Results: mx.example.org; none", HOST),
            Some(Vec::new())
        );
        // Bare LF line ends (a queued message from elsewhere).
        let message = b"Authentication-Results: mx.example.org; x\n a\nTo: b\n\nbody\n";
        assert_eq!(strip_own(message, HOST), Some(b"To: b\n\nbody\n".to_vec()));
    }
}
