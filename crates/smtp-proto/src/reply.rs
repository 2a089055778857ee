//! SMTP replies (RFC 5321 §4.2) with RFC 3463 enhanced status codes.

use std::fmt;

/// One SMTP reply: what the peer sees.
///
/// Build replies through [`crate::codes`] so that every code in the product
/// has a name; [`Reply::new`] and [`Reply::multiline`] are the escape hatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code (RFC 5321 §4.2.1), 200..=599.
    pub code: u16,
    /// The RFC 3463 enhanced status code, written at the start of every line
    /// (RFC 2034 §4). `None` for the greeting, HELO/EHLO and the
    /// intermediate 334/354 replies.
    pub enhanced: Option<EnhancedCode>,
    /// The text lines, without codes and without line endings.
    pub lines: Vec<String>,
}

impl Reply {
    /// A single-line reply.
    pub fn new(code: u16, enhanced: Option<EnhancedCode>, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply (RFC 5321 §4.2.1: `250-first`, …, `250 last`).
    /// An empty `lines` writes one line with no text.
    pub fn multiline(code: u16, enhanced: Option<EnhancedCode>, lines: Vec<String>) -> Reply {
        Reply {
            code,
            enhanced,
            lines,
        }
    }

    /// True for positive completion (2xx) and positive intermediate (3xx)
    /// replies.
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// True for 2xx replies only.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// Appends the wire form: `250-2.0.0 first\r\n250 2.0.0 last\r\n`.
    ///
    /// Text is sanitised so the output is always well-formed: CR, LF and
    /// other control characters in a line become spaces (a reply line must
    /// never be able to inject a second reply).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let empty = [String::new()];
        let lines: &[String] = if self.lines.is_empty() {
            &empty
        } else {
            &self.lines
        };
        let last = lines.len() - 1;
        for (i, line) in lines.iter().enumerate() {
            // RFC 5321 §4.2: Reply-code "-" text for all but the last line,
            // Reply-code SP text for the last one.
            let sep = if i == last { ' ' } else { '-' };
            let mut text = String::new();
            if let Some(enhanced) = self.enhanced {
                text.push_str(&enhanced.to_string());
                if !line.is_empty() {
                    text.push(' ');
                }
            }
            text.extend(line.chars().map(|c| if c.is_control() { ' ' } else { c }));
            let code = self.code.min(999);
            // RFC 4954 §4: continue-req = "334" SP [base64] CRLF, so an
            // empty SASL challenge keeps its space.
            if text.is_empty() && i == last && self.code != 334 {
                out.extend_from_slice(format!("{code:03}\r\n").as_bytes());
            } else {
                out.extend_from_slice(format!("{code:03}{sep}{text}\r\n").as_bytes());
            }
        }
    }

    /// The wire form as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

impl fmt::Display for Reply {
    /// The wire form, for logs (lines joined by CRLF, as sent).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

/// An RFC 3463 enhanced status code `class.subject.detail`, e.g. `5.1.1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnhancedCode(pub u8, pub u16, pub u16);

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(reply: &Reply) -> String {
        String::from_utf8_lossy(&reply.to_bytes()).into_owned()
    }

    #[test]
    fn single_and_multi_line() {
        let table = [
            (Reply::new(250, None, "ok"), "250 ok\r\n"),
            (
                Reply::new(250, Some(EnhancedCode(2, 0, 0)), "Ok"),
                "250 2.0.0 Ok\r\n",
            ),
            (Reply::new(354, None, ""), "354\r\n"),
            (Reply::new(334, None, ""), "334 \r\n"),
            (
                Reply::new(250, Some(EnhancedCode(2, 0, 0)), ""),
                "250 2.0.0\r\n",
            ),
            (Reply::multiline(250, None, vec![]), "250\r\n"),
            (
                Reply::multiline(
                    250,
                    None,
                    vec!["host".into(), "PIPELINING".into(), "HELP".into()],
                ),
                "250-host\r\n250-PIPELINING\r\n250 HELP\r\n",
            ),
            (
                Reply::multiline(
                    550,
                    Some(EnhancedCode(5, 1, 1)),
                    vec!["a".into(), "b".into()],
                ),
                "550-5.1.1 a\r\n550 5.1.1 b\r\n",
            ),
            (
                Reply::multiline(250, None, vec!["".into(), "".into()]),
                "250-\r\n250\r\n",
            ),
        ];
        for (reply, want) in table {
            assert_eq!(wire(&reply), want, "{reply:?}");
        }
    }

    #[test]
    fn control_characters_cannot_inject_lines() {
        let reply = Reply::new(250, None, "a\r\n250 injected\0");
        assert_eq!(wire(&reply), "250 a  250 injected \r\n");
    }

    #[test]
    fn positive_classes() {
        assert!(Reply::new(250, None, "").is_positive());
        assert!(Reply::new(354, None, "").is_positive());
        assert!(!Reply::new(354, None, "").is_success());
        assert!(!Reply::new(421, None, "").is_positive());
        assert!(!Reply::new(550, None, "").is_positive());
        assert_eq!(EnhancedCode(5, 7, 11).to_string(), "5.7.11");
    }
}
