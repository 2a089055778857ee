//! The part of a message `TOP msg n` sends (RFC 1939 §7).

/// Streaming cut of a message for `TOP msg n`.
///
/// RFC 1939 §7: "the POP3 server sends the headers of the message, the blank
/// line separating the headers from the body, and then the number of lines of
/// the indicated message's body". A message without a blank line is all
/// header and goes out whole; so does one with fewer body lines than asked.
///
/// The driver pushes the message through the filter, sends what it returns
/// through a [`ByteStuffer`](crate::ByteStuffer), and may stop reading the
/// message once [`TopFilter::done`] is true. Lines end at LF, so the cut is
/// the same for CRLF and (non-conforming) LF-only messages.
#[derive(Debug, Clone)]
pub struct TopFilter {
    part: Part,
    /// Where the current line stands: no byte yet, only a CR, or content.
    line: LineStart,
}

impl TopFilter {
    /// A filter that passes the header section, the blank line and at most
    /// `body_lines` lines of the body.
    pub fn new(body_lines: u64) -> Self {
        TopFilter {
            part: Part::Headers { body_lines },
            line: LineStart::Empty,
        }
    }

    /// The prefix of `chunk` to send. Once the filter is done it returns the
    /// empty slice.
    pub fn push<'a>(&mut self, chunk: &'a [u8]) -> &'a [u8] {
        if self.done() {
            return &[];
        }
        for (i, &byte) in chunk.iter().enumerate() {
            let line = self.line;
            self.line = match byte {
                b'\n' => LineStart::Empty,
                b'\r' if line == LineStart::Empty => LineStart::OnlyCr,
                _ => LineStart::Content,
            };
            if byte != b'\n' {
                continue;
            }
            let remaining = match self.part {
                Part::Done => return &[],
                Part::Headers { body_lines } if line != LineStart::Content => body_lines,
                Part::Headers { .. } => continue,
                Part::Body { remaining } => remaining - 1,
            };
            if remaining == 0 {
                self.part = Part::Done;
                return &chunk[..=i];
            }
            self.part = Part::Body { remaining };
        }
        chunk
    }

    /// True once everything TOP sends has passed: the rest of the message
    /// is not needed.
    pub fn done(&self) -> bool {
        self.part == Part::Done
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// In the header section; the body lines to send after it.
    Headers { body_lines: u64 },
    /// In the body, `remaining` (at least 1) lines still to send.
    Body { remaining: u64 },
    /// Everything to send has been returned.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineStart {
    Empty,
    OnlyCr,
    Content,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Whole-input reference: cut `message` at the end of the blank line
    /// plus `n` more lines, independently of the streaming code.
    fn reference(message: &[u8], n: u64) -> Vec<u8> {
        let mut end = 0;
        let mut in_body = false;
        let mut left = n;
        for line in message.split_inclusive(|&b| b == b'\n') {
            if !line.ends_with(b"\n") {
                end += line.len();
                break;
            }
            if in_body {
                if left == 0 {
                    break;
                }
                left -= 1;
            } else if line == b"\r\n" || line == b"\n" {
                in_body = true;
            }
            end += line.len();
            if in_body && left == 0 {
                break;
            }
        }
        message[..end].to_vec()
    }

    fn filter(chunks: &[&[u8]], n: u64) -> (Vec<u8>, bool) {
        let mut top = TopFilter::new(n);
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend_from_slice(top.push(chunk));
        }
        (out, top.done())
    }

    const MESSAGE: &[u8] = b"Subject: hi\r\nFrom: a@b\r\n\r\none\r\ntwo\r\nthree\r\n";

    #[test]
    fn table() {
        let rows: &[(&[u8], u64, &[u8], bool)] = &[
            (MESSAGE, 0, b"Subject: hi\r\nFrom: a@b\r\n\r\n", true),
            (MESSAGE, 1, b"Subject: hi\r\nFrom: a@b\r\n\r\none\r\n", true),
            (MESSAGE, 3, MESSAGE, true),
            (MESSAGE, 4, MESSAGE, false),
            (MESSAGE, u64::MAX, MESSAGE, false),
            // No blank line: all header.
            (
                b"Subject: hi\r\nFrom: a@b\r\n",
                0,
                b"Subject: hi\r\nFrom: a@b\r\n",
                false,
            ),
            // Blank line but no body.
            (b"Subject: hi\r\n\r\n", 0, b"Subject: hi\r\n\r\n", true),
            (b"Subject: hi\r\n\r\n", 5, b"Subject: hi\r\n\r\n", false),
            // Empty header section: the message starts with the blank line.
            (b"\r\nbody\r\nmore\r\n", 1, b"\r\nbody\r\n", true),
            (b"", 0, b"", false),
            // A last line without line end.
            (b"S: x\r\n\r\nbody", 5, b"S: x\r\n\r\nbody", false),
            // A CR inside a line does not make it blank.
            (
                b"S: x\r\n\r\r\nbody\r\n\r\nb\r\n",
                0,
                b"S: x\r\n\r\r\nbody\r\n\r\n",
                true,
            ),
            // LF-only messages cut the same way.
            (b"S: x\n\none\ntwo\n", 1, b"S: x\n\none\n", true),
        ];
        for (input, n, expected, done) in rows {
            assert_eq!(reference(input, *n), expected.to_vec(), "reference {n}");
            for pieces in mailroom_testkit::splittings(input, 10) {
                assert_eq!(
                    filter(&pieces, *n),
                    (expected.to_vec(), *done),
                    "TOP {n} of {:?} split as {pieces:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn done_filter_passes_nothing() {
        let mut top = TopFilter::new(0);
        assert_eq!(top.push(b"S: x\r\n\r\nbody"), b"S: x\r\n\r\n");
        assert!(top.done());
        assert_eq!(top.push(b"more\r\n"), b"");
    }

    fn message() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"\r\n".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"Header: value".to_vec()),
            Just(b"x".to_vec()),
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn chunked_equals_reference(
            message in message(),
            n in 0u64..6,
            points in proptest::collection::vec(0usize..200, 0..6),
        ) {
            let mut points: Vec<usize> = points.into_iter().filter(|&p| p < message.len()).collect();
            points.sort_unstable();
            points.dedup();
            let mut pieces = Vec::new();
            let mut start = 0;
            for p in points {
                pieces.push(&message[start..p]);
                start = p;
            }
            pieces.push(&message[start..]);
            let (out, _) = filter(&pieces, n);
            prop_assert_eq!(out, reference(&message, n));
        }
    }
}
