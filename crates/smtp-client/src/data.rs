//! The message body on the wire after `354`: dot-stuffing and the
//! terminator (RFC 5321 §4.5.2), streamed chunk by chunk.

/// Encodes a message for DATA, incrementally.
///
/// - A line starting with `.` gets a second `.` (RFC 5321 §4.5.2
///   transparency), so the only line that is a lone `.` is the terminator.
/// - [`DataEncoder::finish`] ends an unterminated last line with CRLF and
///   appends `.` CRLF.
///
/// The input is meant to be CRLF-lined already (it is what the queue
/// stored). A bare LF or a bare CR in it is treated as a line end and
/// written as CRLF: the output never holds a bare CR or LF, so no
/// receiver, however lenient, can find an end of data (or a second
/// message) that a strict one would not (SMTP smuggling, CVE-2023-51766
/// and friends).
///
/// ```
/// use mailroom_smtp_client::DataEncoder;
///
/// let mut out = Vec::new();
/// let mut encoder = DataEncoder::new();
/// encoder.encode(b"Subject: hi\r\n\r\n.dot", &mut out);
/// encoder.encode(b"\r\nend", &mut out);
/// encoder.finish(&mut out);
/// assert_eq!(out, b"Subject: hi\r\n\r\n..dot\r\nend\r\n.\r\n");
/// ```
#[derive(Debug, Clone)]
pub struct DataEncoder {
    /// The next byte written starts a line (so a `.` there is doubled).
    at_line_start: bool,
    /// The previous chunk ended in CR; whether it was a line end or a bare
    /// CR depends on the next byte.
    pending_cr: bool,
}

impl DataEncoder {
    /// An encoder at the start of the message.
    pub fn new() -> DataEncoder {
        DataEncoder {
            at_line_start: true,
            pending_cr: false,
        }
    }

    /// Appends the wire form of `chunk` to `out`. Chunks may split lines
    /// and CRLF pairs anywhere.
    pub fn encode(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.reserve(chunk.len() + chunk.len() / 64 + 2);
        let mut i = 0;
        while i < chunk.len() {
            let byte = chunk[i];
            if self.pending_cr {
                self.pending_cr = false;
                self.end_line(out);
                if byte == b'\n' {
                    i += 1;
                    continue;
                }
                // A bare CR: already written as a line end; `byte` starts
                // the next line and is handled below.
            }
            match byte {
                b'\r' => {
                    self.pending_cr = true;
                    i += 1;
                }
                b'\n' => {
                    // Bare LF: a line end, written as CRLF.
                    self.end_line(out);
                    i += 1;
                }
                _ => {
                    if self.at_line_start && byte == b'.' {
                        out.push(b'.');
                    }
                    let end = chunk[i..]
                        .iter()
                        .position(|&b| b == b'\r' || b == b'\n')
                        .map_or(chunk.len(), |p| i + p);
                    out.extend_from_slice(&chunk[i..end]);
                    self.at_line_start = false;
                    i = end;
                }
            }
        }
    }

    /// Ends the message: completes the last line and appends the
    /// end-of-data indicator `.` CRLF (RFC 5321 §4.1.1.4).
    pub fn finish(mut self, out: &mut Vec<u8>) {
        if self.pending_cr || !self.at_line_start {
            self.end_line(out);
        }
        out.extend_from_slice(b".\r\n");
    }

    /// Encodes a whole message in one call.
    pub fn encode_all(message: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(message.len() + 5);
        let mut encoder = DataEncoder::new();
        encoder.encode(message, &mut out);
        encoder.finish(&mut out);
        out
    }

    fn end_line(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\r\n");
        self.at_line_start = true;
    }
}

impl Default for DataEncoder {
    fn default() -> Self {
        DataEncoder::new()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A strict RFC 5321 §4.5.2 receiver, for tests only: splits at CRLF,
    /// requires the last line to be the lone `.`, and removes one leading
    /// `.` from every other line that starts with one. Returns `None` when
    /// the input is not a well-formed DATA stream (bare CR or LF, missing
    /// or early terminator).
    fn decode(wire: &[u8]) -> Option<Vec<u8>> {
        let mut lines = Vec::new();
        let mut rest = wire;
        while !rest.is_empty() {
            let end = rest.windows(2).position(|w| w == b"\r\n")?;
            let line = &rest[..end];
            if line.contains(&b'\r') || line.contains(&b'\n') {
                return None;
            }
            lines.push(line);
            rest = &rest[end + 2..];
        }
        let (last, body) = lines.split_last()?;
        if *last != b"." {
            return None;
        }
        let mut out = Vec::new();
        for line in body {
            if *line == b"." {
                return None; // an early terminator
            }
            out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
            out.extend_from_slice(b"\r\n");
        }
        Some(out)
    }

    /// What the encoder promises to deliver: every bare CR, bare LF or CRLF
    /// is one line end, and a last line without one gets one.
    fn normalize(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < input.len() {
            match input[i] {
                b'\r' if input.get(i + 1) == Some(&b'\n') => {
                    out.extend_from_slice(b"\r\n");
                    i += 2;
                }
                b'\r' | b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    i += 1;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        if !out.is_empty() && !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    fn encode_chunks(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = DataEncoder::new();
        for chunk in chunks {
            encoder.encode(chunk, &mut out);
        }
        encoder.finish(&mut out);
        out
    }

    #[test]
    fn table() {
        let table: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b".\r\n", b"..\r\n.\r\n"),
            (b".", b"..\r\n.\r\n"),
            (b"..x\r\n", b"...x\r\n.\r\n"),
            (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
            (b"a.b\r\n.c\r\n", b"a.b\r\n..c\r\n.\r\n"),
            // Bare LF and bare CR become line ends: never a smuggled end.
            (b"a\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
            (b"a\r.\rb\r", b"a\r\n..\r\nb\r\n.\r\n"),
            (b"a\r\r\nb", b"a\r\n\r\nb\r\n.\r\n"),
            (b"a\n\r\n.\r\n", b"a\r\n\r\n..\r\n.\r\n"),
            (b"\r\n\r\n", b"\r\n\r\n.\r\n"),
        ];
        for (input, want) in table {
            let got = DataEncoder::encode_all(input);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(want),
                "input {:?}",
                String::from_utf8_lossy(input)
            );
            for pieces in mailroom_testkit::splittings(input, 5) {
                assert_eq!(encode_chunks(&pieces), *want, "pieces {pieces:?}");
            }
        }
    }

    /// SMTP smuggling (CVE-2023-51766, CVE-2023-51764, CVE-2023-51765):
    /// `\n.\r\n`, `\r\n.\n` and `\r.\r` must not reach the wire as an end of
    /// data that a lenient receiver would honour.
    #[test]
    fn smuggling_sequences_are_neutralised() {
        for attack in [
            &b"x\n.\r\nMAIL FROM:<a@b>\r\n"[..],
            b"x\r\n.\nRSET\r\n",
            b"x\r.\rQUIT\r\n",
        ] {
            let wire = DataEncoder::encode_all(attack);
            let terminators = wire.windows(5).filter(|w| w == b"\r\n.\r\n").count();
            assert_eq!(terminators, 1, "{:?}", String::from_utf8_lossy(&wire));
            assert!(wire.ends_with(b"\r\n.\r\n"));
            assert!(decode(&wire).is_some());
        }
    }

    fn no_bare_cr_or_lf(wire: &[u8]) -> bool {
        wire.iter().enumerate().all(|(i, &b)| match b {
            b'\r' => wire.get(i + 1) == Some(&b'\n'),
            b'\n' => i > 0 && wire[i - 1] == b'\r',
            _ => true,
        })
    }

    proptest! {
        #[test]
        fn round_trips_in_any_chunks(
            input in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b'a'), any::<u8>()], 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..8),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (input.len() + 1)).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for cut in cuts {
                pieces.push(&input[start..cut]);
                start = cut;
            }
            pieces.push(&input[start..]);
            let wire = encode_chunks(&pieces);
            prop_assert_eq!(&wire, &DataEncoder::encode_all(&input));
            prop_assert!(no_bare_cr_or_lf(&wire));
            // Exactly one CRLF.CRLF (or the lone ".\r\n" of an empty
            // message), and it is at the end.
            let early = wire[..wire.len() - 3].windows(5).any(|w| w == b"\r\n.\r\n");
            prop_assert!(!early && !wire[..wire.len() - 3].starts_with(b".\r\n"));
            prop_assert_eq!(decode(&wire), Some(normalize(&input)));
        }

        #[test]
        fn crlf_input_round_trips_exactly(
            lines in proptest::collection::vec("[.a-z ]{0,20}", 0..20),
        ) {
            let input: Vec<u8> = lines.iter().flat_map(|l| [l.as_bytes(), b"\r\n"].concat()).collect();
            prop_assert_eq!(decode(&DataEncoder::encode_all(&input)), Some(input));
        }
    }
}
