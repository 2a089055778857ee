//! SMTP replies as a client reads them (RFC 5321 §4.2), with the RFC 3463
//! enhanced status codes of RFC 2034, and the incremental [`ReplyParser`].

use std::fmt;

/// One SMTP reply from the server: its code, its enhanced status code when
/// the server sent one, and its text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code (RFC 5321 §4.2.1), 200..=559.
    pub code: u16,
    /// The RFC 3463 enhanced status code `class.subject.detail` from the
    /// start of the first line (RFC 2034 §4), when present and of the same
    /// class as `code`.
    pub enhanced: Option<(u8, u16, u16)>,
    /// The text of each line, without the code, separator, enhanced code
    /// and line ending.
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply, for tests and for callers building a synthetic
    /// reply.
    pub fn new(code: u16, enhanced: Option<(u8, u16, u16)>, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced,
            lines: vec![text.into()],
        }
    }

    /// 2yz: the command succeeded (RFC 5321 §4.2.1).
    pub fn is_positive_completion(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 3yz: the server waits for more (354 after DATA, 334 during AUTH).
    pub fn is_positive_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// 4yz: transient negative completion; the same command may succeed
    /// later, so the recipient is retried.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5yz: permanent negative completion; the recipient is bounced.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The text lines joined by single spaces (for logs and DSN
    /// diagnostic codes).
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }
}

impl fmt::Display for Reply {
    /// `550 5.1.1 text of all lines`: one line, as a DSN `Diagnostic-Code`
    /// or a log wants it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some((class, subject, detail)) = self.enhanced {
            write!(f, " {class}.{subject}.{detail}")?;
        }
        let text = self.text();
        if !text.is_empty() {
            write!(f, " {text}")?;
        }
        Ok(())
    }
}

/// Why the server's bytes are not a well-formed reply. Every one of these
/// ends the connection: once framing is lost, no later reply can be
/// matched to its command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A LF not preceded by CR. Lenient servers (or a proxy rewriting line
    /// ends) send this; RFC 5321 §2.3.8 says lines end in CRLF only.
    #[error("bare LF in reply")]
    BareLf,
    /// A CR not followed by LF: a broken server, or an attempt to make two
    /// parsers disagree about where a reply ends.
    #[error("bare CR in reply")]
    BareCr,
    /// A line longer than the limit (including CRLF): not an SMTP server,
    /// or one sending garbage.
    #[error("reply line longer than {0} octets")]
    LineTooLong(usize),
    /// More continuation lines than the limit: a runaway server.
    #[error("reply longer than {0} lines")]
    TooManyLines(usize),
    /// The line does not start with a reply code `[2-5][0-5][0-9]`
    /// (RFC 5321 §4.2): typically not an SMTP server at all (an HTTP or
    /// TLS peer), or a 1yz code, which SMTP does not use.
    #[error("malformed reply code")]
    BadCode,
    /// The code is followed by something other than SP, `-` or CRLF.
    #[error("malformed separator after reply code")]
    BadSeparator,
    /// A continuation line has a different code from the first line
    /// (RFC 5321 §4.2.1 requires the same code on every line).
    #[error("reply code changed within a multi-line reply ({first} then {line})")]
    CodeMismatch {
        /// The code of the first line.
        first: u16,
        /// The differing code.
        line: u16,
    },
    /// A control character (other than HT) in reply text; RFC 5321 §4.2
    /// `textstring` is HT and printable characters only.
    #[error("control character in reply text")]
    ControlCharacter,
}

/// Largest reply line accepted, in octets including its CRLF. RFC 5321
/// §4.5.3.1.5 makes 512 the size every implementation must handle; real
/// servers send longer text (URLs in rejections), so allow four times that.
pub const MAX_REPLY_LINE: usize = 2048;

/// Most lines accepted in one reply. A generous EHLO reply has about 20.
pub const MAX_REPLY_LINES: usize = 100;

/// Incremental reply parser: push bytes as they arrive, pull complete
/// replies. Strict on framing: lines end in CRLF only.
///
/// "Need more bytes" is `Ok(None)`, not an error. After an error the parser
/// keeps returning it: the stream is out of sync for good.
#[derive(Debug, Clone)]
pub struct ReplyParser {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` that belong to lines already parsed.
    consumed: usize,
    /// The code of the reply being read (set by its first line).
    code: Option<u16>,
    /// Raw text of the lines read so far of the current reply.
    lines: Vec<String>,
    max_line: usize,
    max_lines: usize,
    failed: Option<ReplyError>,
}

impl ReplyParser {
    /// A parser with the default limits [`MAX_REPLY_LINE`] and
    /// [`MAX_REPLY_LINES`].
    pub fn new() -> ReplyParser {
        ReplyParser::with_limits(MAX_REPLY_LINE, MAX_REPLY_LINES)
    }

    /// A parser with explicit limits: `max_line` octets per line including
    /// CRLF (at least 6, so `250\r\n` fits), `max_lines` lines per reply
    /// (at least 1).
    pub fn with_limits(max_line: usize, max_lines: usize) -> ReplyParser {
        ReplyParser {
            buf: Vec::new(),
            consumed: 0,
            code: None,
            lines: Vec::new(),
            max_line: max_line.max(6),
            max_lines: max_lines.max(1),
            failed: None,
        }
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.consumed > 0 {
            self.buf.drain(..self.consumed);
            self.consumed = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete reply, `Ok(None)` when more bytes are needed.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ReplyError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.parse();
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    /// Forgets every buffered byte and any partial reply. Used when the
    /// connection switches to TLS: plaintext that arrived after the
    /// STARTTLS 220 must never be read as if it came over TLS
    /// (RFC 3207 §4.2; CVE-2011-0411 was the server-side twin).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.consumed = 0;
        self.code = None;
        self.lines.clear();
    }

    /// Number of buffered bytes not yet parsed into lines.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed
    }

    fn parse(&mut self) -> Result<Option<Reply>, ReplyError> {
        loop {
            let rest = &self.buf[self.consumed..];
            let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
                // An incomplete line: reject what can already be judged, so
                // a hostile peer cannot make us buffer without bound.
                if let Some(cr) = rest.iter().position(|&b| b == b'\r')
                    && cr + 1 < rest.len()
                {
                    return Err(ReplyError::BareCr);
                }
                if rest.len() >= self.max_line {
                    return Err(ReplyError::LineTooLong(self.max_line));
                }
                return Ok(None);
            };
            if lf + 1 > self.max_line {
                return Err(ReplyError::LineTooLong(self.max_line));
            }
            // RFC 5321 §2.3.8: lines end in CRLF, and CR and LF never
            // appear alone.
            if lf == 0 || rest[lf - 1] != b'\r' {
                return Err(ReplyError::BareLf);
            }
            let line = &rest[..lf - 1];
            if line.contains(&b'\r') {
                return Err(ReplyError::BareCr);
            }
            let (code, last, text) = parse_line(line)?;
            self.consumed += lf + 1;
            if let Some(first) = self.code
                && first != code
            {
                return Err(ReplyError::CodeMismatch { first, line: code });
            }
            if self.lines.len() >= self.max_lines {
                return Err(ReplyError::TooManyLines(self.max_lines));
            }
            self.code = Some(code);
            self.lines.push(text);
            if last {
                self.code = None;
                let lines = std::mem::take(&mut self.lines);
                return Ok(Some(build_reply(code, lines)));
            }
        }
    }
}

impl Default for ReplyParser {
    fn default() -> Self {
        ReplyParser::new()
    }
}

/// Splits one line (without CRLF) into code, "is last line" and text.
fn parse_line(line: &[u8]) -> Result<(u16, bool, String), ReplyError> {
    // RFC 5321 §4.2: Reply-code = %x32-35 %x30-35 %x30-39
    let [a, b, c, rest @ ..] = line else {
        return Err(ReplyError::BadCode);
    };
    if !(b'2'..=b'5').contains(a) || !(b'0'..=b'5').contains(b) || !c.is_ascii_digit() {
        return Err(ReplyError::BadCode);
    }
    let code = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
    let (last, text) = match rest {
        [] => (true, &[][..]),
        [b' ', text @ ..] => (true, text),
        [b'-', text @ ..] => (false, text),
        _ => return Err(ReplyError::BadSeparator),
    };
    // textstring = 1*(%d09 / %d32-126), plus UTF-8 under SMTPUTF8
    // (RFC 6531 §3.3). Invalid UTF-8 is kept, lossily: it is only shown.
    if text.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(ReplyError::ControlCharacter);
    }
    Ok((code, last, String::from_utf8_lossy(text).into_owned()))
}

/// Builds the reply, taking the enhanced status code off every line that
/// carries it (RFC 2034 §4: it prefixes each line of the reply).
fn build_reply(code: u16, mut lines: Vec<String>) -> Reply {
    let enhanced = lines.first().and_then(|first| parse_enhanced(first));
    if let Some((status, prefix_len)) =
        enhanced.filter(|((class, _, _), _)| u16::from(*class) == code / 100)
    {
        let prefix = lines
            .first()
            .and_then(|l| l.get(..prefix_len))
            .unwrap_or_default()
            .to_string();
        for line in &mut lines {
            if let Some(rest) = line.strip_prefix(&prefix)
                && (rest.is_empty() || rest.starts_with(' '))
            {
                *line = rest.strip_prefix(' ').unwrap_or(rest).to_string();
            }
        }
        return Reply {
            code,
            enhanced: Some(status),
            lines,
        };
    }
    Reply {
        code,
        enhanced: None,
        lines,
    }
}

/// Parses `class.subject.detail` at the start of `text` (RFC 3463 §2:
/// class is 2, 4 or 5; subject and detail are 1 to 3 digits), followed by
/// SP or the end. Returns the code and its length in bytes.
fn parse_enhanced(text: &str) -> Option<((u8, u16, u16), usize)> {
    let token = text.split(' ').next()?;
    let mut parts = token.split('.');
    let (class, subject, detail) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let number = |s: &str, max_len: usize| -> Option<u16> {
        if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let class = match class {
        "2" => 2,
        "4" => 4,
        "5" => 5,
        _ => return None,
    };
    Some((
        (class, number(subject, 3)?, number(detail, 3)?),
        token.len(),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Parses all replies in `input`, or the first error.
    fn parse_all(input: &[u8]) -> Result<Vec<Reply>, ReplyError> {
        let mut parser = ReplyParser::new();
        parser.push(input);
        let mut out = Vec::new();
        while let Some(reply) = parser.next_reply()? {
            out.push(reply);
        }
        Ok(out)
    }

    fn reply(code: u16, enhanced: Option<(u8, u16, u16)>, lines: &[&str]) -> Reply {
        Reply {
            code,
            enhanced,
            lines: lines.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn well_formed_replies() {
        let table: &[(&[u8], Reply)] = &[
            (
                b"220 mx.example.org ESMTP\r\n",
                reply(220, None, &["mx.example.org ESMTP"]),
            ),
            (b"250\r\n", reply(250, None, &[""])),
            (b"250 \r\n", reply(250, None, &[""])),
            (b"354 go ahead\r\n", reply(354, None, &["go ahead"])),
            (b"250 2.1.0 Ok\r\n", reply(250, Some((2, 1, 0)), &["Ok"])),
            (b"250 2.0.0\r\n", reply(250, Some((2, 0, 0)), &[""])),
            (
                b"550 5.1.1 no such user\r\n",
                reply(550, Some((5, 1, 1)), &["no such user"]),
            ),
            (
                b"452 4.5.3 too many\r\n",
                reply(452, Some((4, 5, 3)), &["too many"]),
            ),
            (
                b"550 5.100.999 wide\r\n",
                reply(550, Some((5, 100, 999)), &["wide"]),
            ),
            // Class must match the reply code's first digit, else it is text.
            (b"550 2.1.1 odd\r\n", reply(550, None, &["2.1.1 odd"])),
            (b"250 1.2.3 x\r\n", reply(250, None, &["1.2.3 x"])),
            (b"250 2.1 x\r\n", reply(250, None, &["2.1 x"])),
            (b"250 2.1.0.1 x\r\n", reply(250, None, &["2.1.0.1 x"])),
            (b"250 2.1000.0 x\r\n", reply(250, None, &["2.1000.0 x"])),
            (b"250 2.1.0x y\r\n", reply(250, None, &["2.1.0x y"])),
            (b"250 tab\there\r\n", reply(250, None, &["tab\there"])),
            (
                b"250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 1000\r\n",
                reply(250, None, &["mx.example.org", "PIPELINING", "SIZE 1000"]),
            ),
            (b"250-\r\n250 last\r\n", reply(250, None, &["", "last"])),
            (
                b"550-5.7.1 first\r\n550 5.7.1 second\r\n",
                reply(550, Some((5, 7, 1)), &["first", "second"]),
            ),
            // A continuation line without the code keeps its text whole.
            (
                b"550-5.7.1 first\r\n550 see http://x\r\n",
                reply(550, Some((5, 7, 1)), &["first", "see http://x"]),
            ),
            (
                "250 h\u{e9}llo\r\n".as_bytes(),
                reply(250, None, &["h\u{e9}llo"]),
            ),
        ];
        for (input, want) in table {
            let got = parse_all(input);
            assert_eq!(
                got,
                Ok(vec![want.clone()]),
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn malformed_replies() {
        let long = format!("250 {}\r\n", "x".repeat(MAX_REPLY_LINE));
        let many = "250-x\r\n".repeat(MAX_REPLY_LINES) + "250 x\r\n";
        let table: &[(&[u8], ReplyError)] = &[
            (b"250 ok\n", ReplyError::BareLf),
            (b"\n", ReplyError::BareLf),
            (b"250 o\rk\r\n", ReplyError::BareCr),
            (b"250 ok\r250 ok\r\n", ReplyError::BareCr),
            (b"250 ok\rx", ReplyError::BareCr),
            (b"25\r\n", ReplyError::BadCode),
            (b"\r\n", ReplyError::BadCode),
            (b"650 x\r\n", ReplyError::BadCode),
            (b"150 x\r\n", ReplyError::BadCode),
            (b"260 x\r\n", ReplyError::BadCode),
            (b"2a0 x\r\n", ReplyError::BadCode),
            (b"HTTP/1.1 400 Bad Request\r\n", ReplyError::BadCode),
            (b"250x\r\n", ReplyError::BadSeparator),
            (b"2500 x\r\n", ReplyError::BadSeparator),
            (
                b"250-a\r\n251 b\r\n",
                ReplyError::CodeMismatch {
                    first: 250,
                    line: 251,
                },
            ),
            (b"250 nul\0\r\n", ReplyError::ControlCharacter),
            (b"250 esc\x1b[31m\r\n", ReplyError::ControlCharacter),
            (b"250 del\x7f\r\n", ReplyError::ControlCharacter),
            (long.as_bytes(), ReplyError::LineTooLong(MAX_REPLY_LINE)),
            (many.as_bytes(), ReplyError::TooManyLines(MAX_REPLY_LINES)),
        ];
        for (input, want) in table {
            let got = parse_all(input);
            assert_eq!(
                got,
                Err(want.clone()),
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn line_length_limit_is_inclusive_of_crlf() {
        let exact = format!("250 {}\r\n", "x".repeat(MAX_REPLY_LINE - 6));
        assert_eq!(exact.len(), MAX_REPLY_LINE);
        assert!(parse_all(exact.as_bytes()).is_ok());
        let over = format!("250 {}\r\n", "x".repeat(MAX_REPLY_LINE - 5));
        assert_eq!(
            parse_all(over.as_bytes()),
            Err(ReplyError::LineTooLong(MAX_REPLY_LINE))
        );
    }

    #[test]
    fn an_endless_line_fails_without_waiting_for_its_end() {
        let mut parser = ReplyParser::new();
        parser.push(&vec![b'x'; MAX_REPLY_LINE - 1]);
        assert_eq!(parser.next_reply(), Ok(None));
        parser.push(b"x");
        assert_eq!(
            parser.next_reply(),
            Err(ReplyError::LineTooLong(MAX_REPLY_LINE))
        );
        // The error sticks.
        parser.push(b"\r\n250 ok\r\n");
        assert_eq!(
            parser.next_reply(),
            Err(ReplyError::LineTooLong(MAX_REPLY_LINE))
        );
    }

    #[test]
    fn every_splitting_gives_the_same_replies() {
        let input: &[u8] =
            b"220 hi\r\n250-mx\r\n250-PIPELINING\r\n250 2.0.0 SIZE 10\r\n550 5.1.1 no\r\n";
        let want = parse_all(input).unwrap();
        assert_eq!(want.len(), 3);
        for pieces in mailroom_testkit::splittings(input, 50) {
            let mut parser = ReplyParser::new();
            let mut got = Vec::new();
            for piece in &pieces {
                parser.push(piece);
                while let Some(reply) = parser.next_reply().unwrap() {
                    got.push(reply);
                }
            }
            assert_eq!(got, want, "pieces {pieces:?}");
            assert_eq!(parser.buffered(), 0);
        }
    }

    #[test]
    fn errors_are_found_in_every_splitting() {
        for input in [
            &b"250-a\r\n250 b\n"[..],
            b"250 a\rb\r\n",
            b"250-a\r\n550 b\r\n",
        ] {
            let want = parse_all(input).unwrap_err();
            for pieces in mailroom_testkit::splittings(input, 10) {
                let mut parser = ReplyParser::new();
                let mut got = None;
                for piece in &pieces {
                    parser.push(piece);
                    if let Err(e) = parser.next_reply() {
                        got = Some(e);
                        break;
                    }
                }
                assert_eq!(got.as_ref(), Some(&want), "pieces {pieces:?}");
            }
        }
    }

    #[test]
    fn clear_drops_partial_input() {
        let mut parser = ReplyParser::new();
        parser.push(b"220 ready\r\n250-inj");
        assert_eq!(parser.next_reply().unwrap().map(|r| r.code), Some(220));
        parser.clear();
        parser.push(b"250 ok\r\n");
        assert_eq!(parser.next_reply(), Ok(Some(reply(250, None, &["ok"]))));
    }

    #[test]
    fn helpers_classify_and_display() {
        let r = reply(550, Some((5, 1, 1)), &["no such", "user"]);
        assert!(r.is_permanent() && !r.is_transient() && !r.is_positive_completion());
        assert_eq!(r.text(), "no such user");
        assert_eq!(r.to_string(), "550 5.1.1 no such user");
        assert!(reply(451, None, &["x"]).is_transient());
        assert!(reply(354, None, &["x"]).is_positive_intermediate());
        assert!(reply(250, None, &[""]).is_positive_completion());
        assert_eq!(reply(250, None, &[""]).to_string(), "250");
    }
}
