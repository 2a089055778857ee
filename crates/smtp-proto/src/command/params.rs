//! ESMTP parameters on MAIL and RCPT (RFC 5321 §4.1.2):
//! `esmtp-param = esmtp-keyword ["=" esmtp-value]`, and RFC 3461 §4 xtext.

use super::CommandError;

/// One `KEYWORD[=value]` parameter, keyword as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Param<'a> {
    pub(super) keyword: &'a str,
    pub(super) value: Option<&'a str>,
}

/// Splits the text after a path into parameters. Parameters are separated
/// by spaces (extra spaces are tolerated).
pub(super) fn split<'a>(s: &'a str, usage: &'static str) -> Result<Vec<Param<'a>>, CommandError> {
    let syntax = || CommandError::Syntax { usage };
    let mut out = Vec::new();
    for item in s.split(' ').filter(|p| !p.is_empty()) {
        let (keyword, value) = match item.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (item, None),
        };
        // esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
        let keyword_ok = keyword.starts_with(|c: char| c.is_ascii_alphanumeric())
            && keyword
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        // esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 under RFC 6531 §3.3.
        let value_ok = value.is_none_or(|v| {
            !v.is_empty() && v.chars().all(|c| c != '=' && !c.is_control() && c != ' ')
        });
        if !keyword_ok || !value_ok {
            return Err(syntax());
        }
        if out
            .iter()
            .any(|p: &Param<'_>| p.keyword.eq_ignore_ascii_case(keyword))
        {
            // A parameter given twice is ambiguous: refuse it.
            return Err(syntax());
        }
        out.push(Param { keyword, value });
    }
    Ok(out)
}

/// Decodes RFC 3461 §4 xtext: `xchar` is `!`..`~` except `+` and `=`;
/// `+XX` is a hex-encoded octet. Non-ASCII characters are let through
/// (RFC 6533 utf-8-xtext). The decoded octets must be UTF-8.
pub(super) fn xtext_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => {
                let hi = hex(bytes.next()?)?;
                let lo = hex(bytes.next()?)?;
                out.push(hi << 4 | lo);
            }
            b'=' => return None,
            33..=126 | 128..=255 => out.push(b),
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_table() {
        let p = |keyword, value| Param { keyword, value };
        assert_eq!(split("", "u"), Ok(vec![]));
        assert_eq!(
            split(" SIZE=10  BODY=8BITMIME", "u"),
            Ok(vec![p("SIZE", Some("10")), p("BODY", Some("8BITMIME"))])
        );
        assert_eq!(split("SMTPUTF8", "u"), Ok(vec![p("SMTPUTF8", None)]));
        assert_eq!(split("X-FOO=a<b>", "u"), Ok(vec![p("X-FOO", Some("a<b>"))]));
        for bad in [
            "SIZE=",
            "=1",
            "-X=1",
            "SIZE=1=2",
            "SI_ZE=1",
            "SIZE=1 size=2",
            "A=\u{7f}",
        ] {
            assert!(split(bad, "u").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn xtext_table() {
        let table = [
            ("abc", Some("abc")),
            ("a+2Bb", Some("a+b")),
            ("a+2bb", Some("a+b")),
            ("+3D", Some("=")),
            ("rfc822+3Ba@b", Some("rfc822;a@b")),
            ("a+2", None),
            ("a+ZZ", None),
            ("a=b", None),
            ("+FF", None),
            ("caf\u{e9}", Some("caf\u{e9}")),
        ];
        for (input, want) in table {
            assert_eq!(xtext_decode(input).as_deref(), want, "{input:?}");
        }
    }
}
