//! Incremental reader for the DATA body (RFC 5321 §4.1.1.4, §4.5.2).
//!
//! [`DataDecoder`] takes the bytes after the 354 reply in chunks split
//! anywhere, removes dot-stuffing, finds the end of data, and checks the
//! text as it goes:
//!
//! * The end of data is exactly CR LF "." CR LF (the CR LF of the DATA
//!   command line counts, so "." CR LF first thing is an empty message).
//! * A bare CR or bare LF never ends the data or a line (SMTP smuggling,
//!   CVE-2023-51764): the decoder reads on to the real terminator and then
//!   fails the message, so the session stays in sync (RFC 5321 §2.3.8).
//! * Over-long lines (RFC 5321 §4.5.3.1.6), NUL octets (RFC 2045 §2.7/§2.8;
//!   we offer no BINARYMIME) and messages over the size limit also fail the
//!   message at its end. Once a message has failed, nothing more is stored,
//!   so memory stays bounded whatever the client sends.
//!
//! The common case costs one scan for CR/LF/NUL and one `extend_from_slice`
//! per line; only the bytes around line ends go through the state machine.

use crate::codes;
use crate::reply::Reply;

/// Decodes one DATA body. Create one per message.
#[derive(Debug, Clone)]
pub struct DataDecoder {
    state: State,
    data: Vec<u8>,
    /// Decoded octets so far, stored or not.
    size: u64,
    /// Decoded octets on the current line, without its CR LF.
    line_len: usize,
    max_size: u64,
    max_line: usize,
    bare_line_ending: bool,
    nul: bool,
    line_too_long: bool,
    too_big: bool,
}

/// The end of a DATA body: how much of the last input it used, and the
/// message or why it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Octets of the input passed to this [`DataDecoder::feed`] call that
    /// belong to the body, up to and including the terminating CR LF.
    /// The rest is the next command.
    pub consumed: usize,
    /// The un-stuffed message without the terminating "." CR LF, or why it
    /// must be rejected.
    pub result: Result<Vec<u8>, DataError>,
}

/// Why a DATA body (or a BDAT message) is rejected. In every case the
/// whole body was read, so the session is still in sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// A CR or LF that is not part of a CR LF pair: a broken client, or an
    /// SMTP smuggling attempt (CVE-2023-51764). 554 5.6.0.
    #[error("bare CR or LF in message")]
    BareLineEnding,
    /// A NUL octet, which neither 7bit nor 8bit MIME data may hold. 554 5.6.0.
    #[error("NUL octet in message")]
    Nul,
    /// A line longer than the text line limit. 500 5.5.6.
    #[error("line too long in message")]
    LineTooLong,
    /// More octets than the message size limit. 552 5.3.4.
    #[error("message too big")]
    TooBig,
}

impl DataDecoder {
    /// A decoder for a body of at most `max_size` octets (after
    /// un-stuffing) and lines of at most `max_line` octets including CR LF
    /// (measured after un-stuffing).
    pub fn new(max_size: u64, max_line: usize) -> Self {
        DataDecoder {
            state: State::LineStart,
            data: Vec::new(),
            size: 0,
            line_len: 0,
            max_size,
            max_line,
            bare_line_ending: false,
            nul: false,
            line_too_long: false,
            too_big: false,
        }
    }

    /// Consumes `input`. Returns `None` when all of it belonged to the
    /// body and more is needed, or [`Finished`] at the end of data. A
    /// finished decoder consumes nothing more and yields an empty message.
    pub fn feed(&mut self, input: &[u8]) -> Option<Finished> {
        let mut i = 0;
        while let Some(&byte) = input.get(i) {
            match self.state {
                State::InLine => {
                    let rest = input.get(i..).unwrap_or_default();
                    let special = rest
                        .iter()
                        .position(|&b| b == b'\r' || b == b'\n' || b == 0);
                    let text_len = special.unwrap_or(rest.len());
                    self.text(rest.get(..text_len).unwrap_or_default());
                    i += text_len;
                    let Some(&special) = rest.get(text_len) else {
                        break;
                    };
                    i += 1;
                    match special {
                        b'\r' => self.state = State::Cr,
                        b'\n' => {
                            // RFC 5321 §2.3.8: a bare LF is not a line end.
                            self.bare_line_ending = true;
                            self.text(b"\n");
                        }
                        _ => {
                            self.nul = true;
                            self.text(b"\0");
                        }
                    }
                }
                State::LineStart => {
                    if byte == b'.' {
                        i += 1;
                        self.state = State::Dot;
                    } else {
                        self.state = State::InLine;
                    }
                }
                State::Dot => {
                    if byte == b'\r' {
                        i += 1;
                        self.state = State::DotCr;
                    } else {
                        // RFC 5321 §4.5.2: "If the first character is a
                        // period and there are other characters on the line,
                        // the first character is deleted."
                        self.state = State::InLine;
                    }
                }
                State::DotCr => {
                    if byte == b'\n' {
                        i += 1;
                        self.state = State::Done;
                        return Some(Finished {
                            consumed: i,
                            result: self.finish(),
                        });
                    }
                    // "." CR then not LF: a bare CR (e.g. "\r\n.\r.\r\n"
                    // smuggling). Not the end; re-read this byte in the line.
                    self.bare_line_ending = true;
                    self.text(b"\r");
                    self.state = State::InLine;
                }
                State::Cr => {
                    if byte == b'\n' {
                        i += 1;
                        self.line_end();
                    } else {
                        self.bare_line_ending = true;
                        self.text(b"\r");
                        self.state = State::InLine;
                    }
                }
                State::Done => {
                    return Some(Finished {
                        consumed: 0,
                        result: Ok(Vec::new()),
                    });
                }
            }
        }
        if self.state == State::Done {
            return Some(Finished {
                consumed: 0,
                result: Ok(Vec::new()),
            });
        }
        None
    }

    /// Decoded octets so far (including any no longer stored).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds line text (no CR LF) to the message.
    fn text(&mut self, text: &[u8]) {
        self.line_len = self.line_len.saturating_add(text.len());
        // RFC 5321 §4.5.3.1.6: at most 1000 octets including CR LF.
        if self.line_len.saturating_add(2) > self.max_line {
            self.line_too_long = true;
        }
        self.store(text);
    }

    fn line_end(&mut self) {
        self.store(b"\r\n");
        self.line_len = 0;
        self.state = State::LineStart;
    }

    fn store(&mut self, bytes: &[u8]) {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.size > self.max_size {
            self.too_big = true;
        }
        if self.failed() {
            // Stop storing (and free what we had): the message is rejected
            // at its end anyway, and the client controls how much comes.
            if self.data.capacity() > 0 {
                self.data = Vec::new();
            }
            return;
        }
        self.data.extend_from_slice(bytes);
    }

    fn failed(&self) -> bool {
        self.bare_line_ending || self.nul || self.line_too_long || self.too_big
    }

    fn finish(&mut self) -> Result<Vec<u8>, DataError> {
        if self.bare_line_ending {
            Err(DataError::BareLineEnding)
        } else if self.nul {
            Err(DataError::Nul)
        } else if self.too_big {
            Err(DataError::TooBig)
        } else if self.line_too_long {
            Err(DataError::LineTooLong)
        } else {
            Ok(std::mem::take(&mut self.data))
        }
    }
}

impl DataError {
    /// The reply that rejects the message.
    pub fn reply(&self) -> Reply {
        match self {
            DataError::BareLineEnding => codes::bare_line_ending_in_data(),
            DataError::Nul => codes::nul_in_data(),
            DataError::LineTooLong => codes::line_too_long(),
            DataError::TooBig => codes::message_too_big(),
        }
    }
}

/// Checks a message received whole (BDAT, RFC 3030) against the same rules
/// as DATA: CR LF line endings only, no NUL, lines of at most `max_line`
/// octets including CR LF. The size limit is enforced per chunk.
pub fn check_text(message: &[u8], max_line: usize) -> Result<(), DataError> {
    let mut too_long = false;
    let mut rest = message;
    loop {
        let Some(at) = rest
            .iter()
            .position(|&b| b == b'\r' || b == b'\n' || b == 0)
        else {
            too_long |= rest.len().saturating_add(2) > max_line;
            break;
        };
        too_long |= at.saturating_add(2) > max_line;
        match (rest.get(at), rest.get(at + 1)) {
            (Some(b'\r'), Some(b'\n')) => rest = rest.get(at + 2..).unwrap_or_default(),
            (Some(0), _) => return Err(DataError::Nul),
            _ => return Err(DataError::BareLineEnding),
        }
    }
    if too_long {
        Err(DataError::LineTooLong)
    } else {
        Ok(())
    }
}

/// Where the decoder is relative to line starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// After CR LF (or at the very start): a "." here is special.
    LineStart,
    /// After a "." at a line start.
    Dot,
    /// After "." CR at a line start: LF ends the data.
    DotCr,
    /// Inside a line.
    InLine,
    /// After a CR inside a line: LF ends the line.
    Cr,
    /// The terminator was seen.
    Done,
}

#[cfg(test)]
mod tests {
    use mailroom_testkit::splittings;

    use super::*;

    /// Feeds `input` in `pieces`, returning the result and the total bytes
    /// consumed.
    fn decode_pieces(
        pieces: &[&[u8]],
        max_size: u64,
        max_line: usize,
    ) -> Option<(usize, Result<Vec<u8>, DataError>)> {
        let mut decoder = DataDecoder::new(max_size, max_line);
        let mut offset = 0;
        for piece in pieces {
            if let Some(f) = decoder.feed(piece) {
                return Some((offset + f.consumed, f.result));
            }
            offset += piece.len();
        }
        None
    }

    /// Decodes `input` in every splitting; all must agree. Returns the
    /// common outcome.
    fn decode(input: &[u8]) -> Option<(usize, Result<Vec<u8>, DataError>)> {
        let whole = decode_pieces(&[input], 1 << 20, 1000);
        for pieces in splittings(input, 20) {
            assert_eq!(
                decode_pieces(&pieces, 1 << 20, 1000),
                whole,
                "{:?} split as {pieces:?}",
                String::from_utf8_lossy(input)
            );
        }
        whole
    }

    #[test]
    fn terminator_and_unstuffing() {
        let ok = |consumed, data: &[u8]| Some((consumed, Ok(data.to_vec())));
        let table: [(&[u8], _); 11] = [
            (b".\r\n", ok(3, b"")),
            (b".\r\nQUIT\r\n", ok(3, b"")),
            (b"Hello\r\n.\r\n", ok(10, b"Hello\r\n")),
            (b"Hello\r\n.\r\nQUIT\r\n", ok(10, b"Hello\r\n")),
            (b"..\r\n.\r\n", ok(7, b".\r\n")),
            (b"...\r\n.\r\n", ok(8, b"..\r\n")),
            (b".x\r\n..y\r\n.\r\n", ok(12, b"x\r\n.y\r\n")),
            (b"a.\r\n.\r\n", ok(7, b"a.\r\n")),
            (b"\r\n\r\n.\r\n", ok(7, b"\r\n\r\n")),
            (b"Hello\r\n", None),
            (b"Hello\r\n.", None),
        ];
        for (input, want) in table {
            assert_eq!(decode(input), want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    /// SMTP smuggling (CVE-2023-51764, and the smtpsmug variants): none of
    /// these sequences ends the data; only the real CR LF . CR LF does, and
    /// then the message is rejected.
    #[test]
    fn smuggling_sequences_do_not_end_data() {
        let sequences: [&[u8]; 12] = [
            b"\n.\n",
            b"\r.\r",
            b"\r.\n",
            b"\n.\r",
            b"\n.\r\n",
            b"\r\n.\n",
            b"\r.\r\n",
            b"\r\n.\r",
            b"\n.\n\n",
            b"\r\n.\r\r\n",
            b"\r\n\n.\r\n",
            b"\r\n.\n\r\n",
        ];
        for seq in sequences {
            let mut input = b"Subject: x\r\n\r\nbody".to_vec();
            input.extend_from_slice(seq);
            input.extend_from_slice(b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nsmuggled\r\n.\r\n");
            let end = input.len();
            input.extend_from_slice(b"QUIT\r\n");
            assert_eq!(
                decode(&input),
                Some((end, Err(DataError::BareLineEnding))),
                "{seq:?}"
            );
        }
    }

    #[test]
    fn nul_next_to_the_dot() {
        for seq in [&b"\r\n.\0\r\n"[..], b"\r\n\0.\r\n", b"\r\n.\r\0\n"] {
            let mut input = b"body".to_vec();
            input.extend_from_slice(seq);
            input.extend_from_slice(b"more\r\n.\r\n");
            let want = if seq == b"\r\n.\r\0\n" {
                DataError::BareLineEnding
            } else {
                DataError::Nul
            };
            assert_eq!(decode(&input), Some((input.len(), Err(want))), "{seq:?}");
        }
    }

    #[test]
    fn line_length_limit() {
        let line = |n: usize| {
            let mut v = vec![b'a'; n];
            v.extend_from_slice(b"\r\n.\r\n");
            v
        };
        assert_eq!(
            decode(&line(998)).map(|r| r.1.map(|d| d.len())),
            Some(Ok(1000))
        );
        assert_eq!(
            decode(&line(999)).map(|r| r.1),
            Some(Err(DataError::LineTooLong))
        );
        // A stuffed dot does not count: the line is 998 octets once decoded.
        let mut stuffed = vec![b'.'];
        stuffed.extend_from_slice(&line(998));
        assert_eq!(
            decode_pieces(&[&stuffed], 1 << 20, 1000).map(|r| r.1.map(|d| d.len())),
            Some(Ok(1000))
        );
    }

    #[test]
    fn size_limit_stops_storing() {
        let mut decoder = DataDecoder::new(10, 1000);
        assert_eq!(decoder.feed(b"0123456789"), None);
        assert_eq!(decoder.feed(b"\r\n"), None);
        assert!(
            decoder.data.capacity() == 0,
            "stored data is dropped once over the limit"
        );
        let chunk = vec![b'x'; 900];
        for _ in 0..100 {
            let mut piece = chunk.clone();
            piece.extend_from_slice(b"\r\n");
            assert_eq!(decoder.feed(&piece), None);
            assert_eq!(decoder.data.capacity(), 0);
        }
        assert_eq!(
            decoder.feed(b".\r\nNOOP\r\n"),
            Some(Finished {
                consumed: 3,
                result: Err(DataError::TooBig)
            })
        );
        // Exactly at the limit is fine.
        let mut decoder = DataDecoder::new(10, 1000);
        assert_eq!(
            decoder.feed(b"01234567\r\n.\r\n").map(|f| f.result),
            Some(Ok(b"01234567\r\n".to_vec()))
        );
    }

    #[test]
    fn finished_decoder_consumes_nothing() {
        let mut decoder = DataDecoder::new(100, 1000);
        assert!(decoder.feed(b".\r\n").is_some());
        assert_eq!(
            decoder.feed(b"x"),
            Some(Finished {
                consumed: 0,
                result: Ok(Vec::new())
            })
        );
        assert_eq!(
            decoder.feed(b""),
            Some(Finished {
                consumed: 0,
                result: Ok(Vec::new())
            })
        );
    }

    #[test]
    fn megabytes_in_large_chunks() {
        let mut body = Vec::new();
        for i in 0..40_000 {
            body.extend_from_slice(
                format!("line {i} with some text to make it longer than short\r\n").as_bytes(),
            );
        }
        let mut input = body.clone();
        input.extend_from_slice(b".\r\n");
        let mut decoder = DataDecoder::new(u64::MAX, 1000);
        let mut result = None;
        for chunk in input.chunks(65536) {
            if let Some(f) = decoder.feed(chunk) {
                result = Some(f.result);
            }
        }
        assert_eq!(result, Some(Ok(body)));
    }

    #[test]
    fn check_text_table() {
        let table: [(&[u8], Result<(), DataError>); 10] = [
            (b"", Ok(())),
            (b"a\r\nb\r\n", Ok(())),
            (b"abcd", Ok(())),
            (b"a\r\nabcde", Err(DataError::LineTooLong)),
            (b"a\nb", Err(DataError::BareLineEnding)),
            (b"a\rb", Err(DataError::BareLineEnding)),
            (b"a\r", Err(DataError::BareLineEnding)),
            (b"a\r\n\r\r\n", Err(DataError::BareLineEnding)),
            (b"a\0", Err(DataError::Nul)),
            (b"12345\r\n", Err(DataError::LineTooLong)),
        ];
        for (input, want) in table {
            assert_eq!(check_text(input, 6), want, "{input:?}");
        }
    }
}
