//! CRLF line framing of client input (RFC 1939 §3, RFC 2449 §4).
//!
//! Strict on input: a line ends at the first LF, and it is only good when
//! that LF follows a CR and no other CR is in the line. Anything else is
//! reported as an error for that one line, so the session answers it and
//! stays in sync with the client. An over-long line is reported once and
//! then discarded up to its LF, however it arrives in chunks.

use std::fmt;

/// RFC 2449 §4 limits a command line to 255 octets, the terminating CRLF
/// included.
pub(crate) const COMMAND_LINE_LIMIT: usize = 255;

/// SASL responses during AUTH. RFC 5034 sets no limit; this is the 12,288
/// octets RFC 4954 §4 requires of SMTP AUTH lines, room for any PLAIN
/// message.
pub(crate) const SASL_LINE_LIMIT: usize = 12_288;

/// Why a line of client input is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LineError {
    /// The line is longer than the limit (255 octets with CRLF for commands,
    /// RFC 2449 §4). Likely a client or attacker that does not speak POP3;
    /// the rest of the line is discarded.
    #[error("line too long")]
    TooLong,
    /// A CR or LF that is not part of the final CRLF: a client that ends
    /// lines with bare LF, or an attempt to smuggle a second command past a
    /// filter that splits lines differently.
    #[error("bare CR or LF in line")]
    BareLineEnding,
}

/// Buffers input and cuts it into lines.
#[derive(Default)]
pub(crate) struct LineReader {
    buf: Vec<u8>,
    /// `buf[..start]` was already returned as lines. Compacted on the next
    /// push, so a read full of pipelined commands costs one move, not one
    /// per line.
    start: usize,
    /// `buf[start..start + scanned]` holds no LF: do not search it again.
    scanned: usize,
    /// Inside an over-long line that was already reported: drop input up to
    /// and including the next LF.
    discarding: bool,
}

impl LineReader {
    /// Appends input.
    pub(crate) fn push(&mut self, mut bytes: &[u8]) {
        if self.discarding {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(pos) => {
                    self.discarding = false;
                    bytes = &bytes[pos + 1..];
                }
                None => return,
            }
        }
        self.buf.drain(..self.start);
        self.start = 0;
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete line without its CRLF, or `None` until one is
    /// buffered. `limit` counts the CRLF.
    pub(crate) fn next_line(&mut self, limit: usize) -> Option<Result<Vec<u8>, LineError>> {
        if self.discarding {
            return None;
        }
        let pending = &self.buf[self.start..];
        match pending[self.scanned..].iter().position(|&b| b == b'\n') {
            Some(offset) => {
                let end = self.scanned + offset;
                let line = &pending[..end];
                // Length first: an over-long line is one error, whatever it
                // holds and however it was split into chunks.
                let result = if end + 1 > limit {
                    Err(LineError::TooLong)
                } else {
                    match line.split_last() {
                        Some((b'\r', content)) if !content.contains(&b'\r') => Ok(content.to_vec()),
                        _ => Err(LineError::BareLineEnding),
                    }
                };
                self.start += end + 1;
                self.scanned = 0;
                Some(result)
            }
            None if pending.len() >= limit => {
                // Even the LF still to come would not fit.
                self.clear();
                self.discarding = true;
                Some(Err(LineError::TooLong))
            }
            None => {
                self.scanned = pending.len();
                None
            }
        }
    }

    /// Drops everything buffered (after STLS; at the end of the session).
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        self.discarding = false;
    }
}

// Buffered input may hold a password: show only its size.
impl fmt::Debug for LineReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineReader")
            .field("buffered", &(self.buf.len() - self.start))
            .field("discarding", &self.discarding)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Lines = Vec<Result<Vec<u8>, LineError>>;

    fn lines(chunks: &[&[u8]], limit: usize) -> Lines {
        let mut reader = LineReader::default();
        let mut out = Vec::new();
        for chunk in chunks {
            reader.push(chunk);
            while let Some(line) = reader.next_line(limit) {
                out.push(line);
            }
        }
        out
    }

    #[test]
    fn table() {
        let ok = |s: &str| Ok(s.as_bytes().to_vec());
        let rows: Vec<(&[u8], Lines)> = vec![
            (b"NOOP\r\n", vec![ok("NOOP")]),
            (b"\r\n", vec![ok("")]),
            (b"A\r\nB\r\n", vec![ok("A"), ok("B")]),
            (b"NOOP", vec![]),
            (b"NOOP\r", vec![]),
            (b"NOOP\n", vec![Err(LineError::BareLineEnding)]),
            (b"\n", vec![Err(LineError::BareLineEnding)]),
            (b"NO\rOP\r\n", vec![Err(LineError::BareLineEnding)]),
            (b"NOOP\r\r\n", vec![Err(LineError::BareLineEnding)]),
            (
                b"X\nNOOP\r\n",
                vec![Err(LineError::BareLineEnding), ok("NOOP")],
            ),
            (
                b"12345678\r\nNOOP\r\n",
                vec![Err(LineError::TooLong), ok("NOOP")],
            ),
            (b"1234567\r\n", vec![ok("1234567")]),
            (b"1234567\n", vec![Err(LineError::BareLineEnding)]),
            (
                b"123456789012\r\nA\r\n",
                vec![Err(LineError::TooLong), ok("A")],
            ),
            (
                b"12\n4567890123\r\n",
                vec![Err(LineError::BareLineEnding), Err(LineError::TooLong)],
            ),
        ];
        for (input, expected) in rows {
            for pieces in mailroom_testkit::splittings(input, 5) {
                assert_eq!(
                    lines(&pieces, 9),
                    expected,
                    "input {:?} split as {pieces:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn exactly_the_limit_is_accepted() {
        let mut line = vec![b'a'; COMMAND_LINE_LIMIT - 2];
        line.extend_from_slice(b"\r\n");
        assert_eq!(
            lines(&[&line], COMMAND_LINE_LIMIT),
            vec![Ok(vec![b'a'; 253])]
        );
        let mut line = vec![b'a'; COMMAND_LINE_LIMIT - 1];
        line.extend_from_slice(b"\r\n");
        assert_eq!(
            lines(&[&line], COMMAND_LINE_LIMIT),
            vec![Err(LineError::TooLong)]
        );
    }

    #[test]
    fn clear_forgets_a_discard() {
        let mut reader = LineReader::default();
        reader.push(b"0123456789");
        assert_eq!(reader.next_line(5), Some(Err(LineError::TooLong)));
        reader.clear();
        reader.push(b"OK\r\n");
        assert_eq!(reader.next_line(5), Some(Ok(b"OK".to_vec())));
    }

    #[test]
    fn debug_does_not_show_input() {
        let mut reader = LineReader::default();
        reader.push(b"PASS hunter2");
        assert!(!format!("{reader:?}").contains("hunter2"));
    }
}
