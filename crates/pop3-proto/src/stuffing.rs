//! Byte-stuffing of a message as RETR and TOP send it (RFC 1939 §3).
//!
//! The session never holds message content: the driver streams it from the
//! store through a [`ByteStuffer`] straight to the socket.

/// Streaming encoder for the body of a multi-line response.
///
/// RFC 1939 §3: "If any line of the multi-line response begins with the
/// termination octet, the line is 'byte-stuffed' by pre-pending the
/// termination octet to that line". [`ByteStuffer::finish`] then ends the
/// response with the termination line, so the client sees the end exactly
/// where the message ends.
///
/// Stored messages have CRLF line ends (`store::MessageInfo`). Should one
/// hold a bare CR or LF anyway, it goes out as CRLF: mailroom never sends a
/// bare line end, and a bare LF before the terminator would hide the end of
/// the response from the client. (The size announced in `+OK n octets` is
/// then a little off, which only a store breaking its contract can cause.)
#[derive(Debug, Clone)]
pub struct ByteStuffer {
    /// The next byte starts a line.
    at_line_start: bool,
    /// The previous chunk ended in CR: its LF may be the next byte.
    pending_cr: bool,
}

impl ByteStuffer {
    /// A stuffer at the start of a message.
    pub fn new() -> Self {
        ByteStuffer {
            at_line_start: true,
            pending_cr: false,
        }
    }

    /// Appends `chunk`, stuffed, to `out`. Chunks may split lines, and even
    /// CRLF, anywhere.
    ///
    /// A chunk whose line ends are all CRLF (nearly every one: the store
    /// keeps CRLF) is copied whole, or in runs between the lines that start
    /// with '.'. Otherwise the scan stops at every CR and LF (found with a
    /// vectorised search) to repair bare line ends.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut rest = chunk;
        if self.pending_cr {
            let Some(&first) = rest.first() else { return };
            self.pending_cr = false;
            out.extend_from_slice(b"\r\n");
            self.at_line_start = true;
            if first == b'\n' {
                rest = &rest[1..];
            }
        }
        let Some(&last) = rest.last() else { return };
        match scan(rest) {
            Scan::CrlfOnly { dot_lines } => {
                let mut run = 0;
                if self.at_line_start && rest[0] == b'.' {
                    out.push(b'.');
                }
                if dot_lines {
                    // RFC 1939 §3: each "\n." gains a dot after the LF.
                    for lf in memchr::memmem::find_iter(rest, b"\n.") {
                        out.extend_from_slice(&rest[run..=lf]);
                        out.push(b'.');
                        run = lf + 1;
                    }
                }
                out.extend_from_slice(&rest[run..]);
                self.at_line_start = last == b'\n';
                return;
            }
            Scan::BareLineEnds => {}
        }
        out.reserve(rest.len() + rest.len() / 64 + 2);
        // rest[run..i] is still to be copied; i is where the scan stands.
        let mut run = 0;
        let mut i = 0;
        let mut line_start = self.at_line_start;
        while i < rest.len() {
            if line_start && rest[i] == b'.' {
                out.extend_from_slice(&rest[run..i]);
                out.push(b'.');
                run = i;
            }
            let Some(offset) = memchr::memchr2(b'\r', b'\n', &rest[i..]) else {
                line_start = false;
                break;
            };
            let end = i + offset;
            match (rest[end], rest.get(end + 1)) {
                (b'\r', Some(b'\n')) => i = end + 2,
                (b'\r', None) => {
                    // The CR decides nothing until the next byte arrives.
                    out.extend_from_slice(&rest[run..end]);
                    self.pending_cr = true;
                    self.at_line_start = line_start && end == i;
                    return;
                }
                // A bare CR or LF goes out as CRLF.
                _ => {
                    out.extend_from_slice(&rest[run..end]);
                    out.extend_from_slice(b"\r\n");
                    i = end + 1;
                    run = i;
                }
            }
            line_start = true;
        }
        out.extend_from_slice(&rest[run..]);
        self.at_line_start = line_start;
    }

    /// Ends the response: a CRLF if the message did not end with one (an
    /// empty message gets none), then the termination line `.CRLF`.
    pub fn finish(self, out: &mut Vec<u8>) {
        if self.pending_cr || !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// What a chunk holds, as far as stuffing goes.
#[derive(Debug, PartialEq)]
enum Scan {
    /// Every CR is followed by LF and every LF preceded by CR within the
    /// chunk; `dot_lines` when a line after its first starts with '.'.
    CrlfOnly { dot_lines: bool },
    /// A CR or LF not in a CRLF pair, or a CR that ends the chunk.
    BareLineEnds,
}

/// Classifies a non-empty chunk in one pass over adjacent pairs, free of
/// branches so that it compiles to vector code: a few hundred cycles for a
/// small message, where stopping at every line end costs thousands.
fn scan(chunk: &[u8]) -> Scan {
    let (Some(&first), Some(&last)) = (chunk.first(), chunk.last()) else {
        return Scan::CrlfOnly { dot_lines: false };
    };
    // A first LF has no CR before it here; a last CR no LF after it.
    if first == b'\n' || last == b'\r' {
        return Scan::BareLineEnds;
    }
    let (mut bare, mut dots) = (0u8, 0u8);
    for (&a, &b) in chunk.iter().zip(&chunk[1..]) {
        bare |= u8::from((a == b'\r') != (b == b'\n'));
        dots |= u8::from((a == b'\n') & (b == b'.'));
    }
    if bare == 0 {
        Scan::CrlfOnly {
            dot_lines: dots != 0,
        }
    } else {
        Scan::BareLineEnds
    }
}

impl Default for ByteStuffer {
    fn default() -> Self {
        ByteStuffer::new()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The client's side: undo the stuffing of a complete multi-line body
    /// (everything after the status line). `None` when the input is not a
    /// well-formed body: a bare CR or LF, a line starting with a single `.`
    /// other than the terminator, or bytes after the terminator.
    fn unstuff(mut wire: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let end = wire.windows(2).position(|w| w == b"\r\n")?;
            let line = &wire[..end];
            wire = &wire[end + 2..];
            if line.contains(&b'\r') || line.contains(&b'\n') {
                return None;
            }
            match line {
                b"." => return wire.is_empty().then_some(out),
                [b'.', b'.', ..] => out.extend_from_slice(&line[1..]),
                [b'.', ..] => return None,
                _ => out.extend_from_slice(line),
            }
            out.extend_from_slice(b"\r\n");
        }
    }

    fn stuff(chunks: &[&[u8]]) -> Vec<u8> {
        let mut stuffer = ByteStuffer::new();
        let mut out = Vec::new();
        for chunk in chunks {
            stuffer.push(chunk, &mut out);
        }
        stuffer.finish(&mut out);
        out
    }

    /// The byte-at-a-time encoder `push` replaced: the oracle it must agree
    /// with.
    fn reference(chunks: &[&[u8]]) -> Vec<u8> {
        let (mut at_line_start, mut pending_cr) = (true, false);
        let mut out = Vec::new();
        for chunk in chunks {
            for &b in *chunk {
                if pending_cr {
                    pending_cr = false;
                    out.extend_from_slice(b"\r\n");
                    at_line_start = true;
                    if b == b'\n' {
                        continue;
                    }
                }
                match b {
                    b'\r' => pending_cr = true,
                    b'\n' => {
                        out.extend_from_slice(b"\r\n");
                        at_line_start = true;
                    }
                    _ => {
                        if at_line_start && b == b'.' {
                            out.push(b'.');
                        }
                        out.push(b);
                        at_line_start = false;
                    }
                }
            }
        }
        if pending_cr || !at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    #[test]
    fn table() {
        let rows: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b".\r\n", b"..\r\n.\r\n"),
            (b"a\r\n.b\r\n..c\r\n", b"a\r\n..b\r\n...c\r\n.\r\n"),
            (b"a.b\r\n", b"a.b\r\n.\r\n"),
            (b"\r\n.\r\n", b"\r\n..\r\n.\r\n"),
            (b".", b"..\r\n.\r\n"),
            // Bare line ends go out as CRLF.
            (b"a\nb", b"a\r\nb\r\n.\r\n"),
            (b"a\rb", b"a\r\nb\r\n.\r\n"),
            (b"a\r", b"a\r\n.\r\n"),
            (b"\r", b"\r\n.\r\n"),
            (b"a\r\r\n.", b"a\r\n\r\n..\r\n.\r\n"),
            (b"a\n.\n", b"a\r\n..\r\n.\r\n"),
        ];
        for (input, expected) in rows {
            for pieces in mailroom_testkit::splittings(input, 10) {
                assert_eq!(
                    String::from_utf8_lossy(&stuff(&pieces)),
                    String::from_utf8_lossy(expected),
                    "input {:?} split as {pieces:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn scans() {
        let crlf = |dot_lines| Scan::CrlfOnly { dot_lines };
        for (chunk, expected) in [
            (&b""[..], crlf(false)),
            (b"a\r\nb\r\n", crlf(false)),
            (b"a\r\nb", crlf(false)),
            (b".a\r\n", crlf(false)),
            (b"a\r\n.b", crlf(true)),
            (b"a.\r\nb.", crlf(false)),
            (b"a\nb", Scan::BareLineEnds),
            (b"a\rb", Scan::BareLineEnds),
            (b"a\r", Scan::BareLineEnds),
            (b"\na", Scan::BareLineEnds),
            (b"a\r\r\n", Scan::BareLineEnds),
            (b"a\r\n\n.", Scan::BareLineEnds),
        ] {
            assert_eq!(
                scan(chunk),
                expected,
                "{:?}",
                String::from_utf8_lossy(chunk)
            );
        }
    }

    /// CRLF-lined messages: lines of bytes without CR or LF, biased towards
    /// dots so stuffing is exercised.
    fn crlf_message() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![Just(b'.'), Just(b'a'), Just(b' '), any::<u8>()]
            .prop_filter("no line ends", |b| *b != b'\r' && *b != b'\n');
        let line = proptest::collection::vec(byte, 0..12);
        proptest::collection::vec(line, 0..8).prop_map(|lines| {
            let mut message = Vec::new();
            for line in lines {
                message.extend_from_slice(&line);
                message.extend_from_slice(b"\r\n");
            }
            message
        })
    }

    /// Cuts `input` at the given (sorted, deduplicated) points.
    fn cut(input: &[u8], mut points: Vec<usize>) -> Vec<&[u8]> {
        points.retain(|&p| p < input.len());
        points.sort_unstable();
        points.dedup();
        let mut pieces = Vec::new();
        let mut start = 0;
        for p in points {
            pieces.push(&input[start..p]);
            start = p;
        }
        pieces.push(&input[start..]);
        pieces
    }

    proptest! {
        #[test]
        fn unstuffing_returns_the_message(
            message in crlf_message(),
            points in proptest::collection::vec(0usize..128, 0..6),
        ) {
            let wire = stuff(&cut(&message, points));
            prop_assert_eq!(unstuff(&wire), Some(message.clone()));
            // Every line that starts with a dot was stuffed.
            for line in message.split(|&b| b == b'\n') {
                if line.first() == Some(&b'.') {
                    let mut stuffed = vec![b'.'];
                    stuffed.extend_from_slice(line);
                    prop_assert!(wire.windows(stuffed.len()).any(|w| w == stuffed));
                }
            }
        }

        #[test]
        fn agrees_with_the_byte_at_a_time_encoder(
            message in proptest::collection::vec(
                prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), Just(b'a'), any::<u8>()], 0..200),
            points in proptest::collection::vec(0usize..200, 0..8),
        ) {
            let pieces = cut(&message, points);
            prop_assert_eq!(stuff(&pieces), reference(&pieces));
        }

        #[test]
        fn well_formed_messages_agree_with_the_byte_at_a_time_encoder(
            message in crlf_message(),
            points in proptest::collection::vec(0usize..128, 0..4),
        ) {
            // Mostly plain chunks: the copy-whole path.
            let pieces = cut(&message, points);
            prop_assert_eq!(stuff(&pieces), reference(&pieces));
        }

        #[test]
        fn any_bytes_give_a_well_formed_body(
            message in proptest::collection::vec(
                prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), any::<u8>()], 0..64),
            points in proptest::collection::vec(0usize..64, 0..6),
        ) {
            let whole = stuff(&[&message]);
            prop_assert_eq!(stuff(&cut(&message, points)), whole.clone());
            let body = unstuff(&whole);
            prop_assert!(body.is_some(), "{:?}", String::from_utf8_lossy(&whole));
            // finish added a CRLF exactly when the message lacked one.
            let body = body.unwrap_or_default();
            prop_assert!(body.is_empty() || body.ends_with(b"\r\n"));
        }
    }
}
