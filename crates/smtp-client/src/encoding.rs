//! The small text encodings SMTP parameters need: base64 for AUTH
//! (RFC 4954 §4, RFC 4648 §4), xtext for DSN parameters (RFC 3461 §4) and
//! the `utf-8` address type for ORCPT (RFC 6533 §3).

use std::fmt::Write as _;

/// Standard base64 with padding (RFC 4648 §4).
pub(crate) fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for group in input.chunks(3) {
        let b0 = group[0];
        let b1 = group.get(1).copied().unwrap_or(0);
        let b2 = group.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 63) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if group.len() > 1 { sextet(6) } else { '=' });
        out.push(if group.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

/// xtext (RFC 3461 §4): `xchar` is `!`..=`~` except `+` and `=`; every
/// other octet is `+` and two upper-case hex digits. The result is printable
/// ASCII without spaces, so it can never break out of a MAIL or RCPT
/// parameter.
pub(crate) fn xtext(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for &b in input.as_bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "+{b:02X}");
        }
    }
    out
}

/// The ORCPT value for an original recipient address: `rfc822;` plus xtext
/// for an ASCII address (RFC 3461 §4.2), `utf-8;` plus
/// `utf-8-addr-xtext` for a non-ASCII one (RFC 6533 §3: every character
/// outside printable ASCII, and `+`, `=` and `\`, as `\x{HEX}`). Both forms
/// are pure ASCII, so they are valid with or without SMTPUTF8.
pub(crate) fn orcpt(address: &str) -> String {
    if address.is_ascii() {
        return format!("rfc822;{}", xtext(address));
    }
    let mut out = String::from("utf-8;");
    for c in address.chars() {
        if ('!'..='~').contains(&c) && !matches!(c, '+' | '=' | '\\') {
            out.push(c);
        } else {
            let _ = write!(out, "\\x{{{:X}}}", u32::from(c));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_rfc4648_vectors() {
        // RFC 4648 §10.
        let table = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, want) in table {
            assert_eq!(base64(input.as_bytes()), want, "{input:?}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd, 0x00]), "//79AA==");
        assert_eq!(base64(b"\0user\0pass"), "AHVzZXIAcGFzcw==");
    }

    #[test]
    fn xtext_table() {
        let table = [
            ("abc", "abc"),
            ("a+b=c", "a+2Bb+3Dc"),
            ("a b", "a+20b"),
            ("x\r\nMAIL", "x+0D+0AMAIL"),
            ("\u{e9}", "+C3+A9"),
            ("<id@host>", "<id@host>"),
        ];
        for (input, want) in table {
            assert_eq!(xtext(input), want, "{input:?}");
        }
    }

    #[test]
    fn orcpt_table() {
        let table = [
            ("user@example.org", "rfc822;user@example.org"),
            ("a+tag@example.org", "rfc822;a+2Btag@example.org"),
            ("j\u{fc}rgen@example.de", "utf-8;j\\x{FC}rgen@example.de"),
            (
                "\u{4f8b}+x@\u{4f8b}.jp",
                "utf-8;\\x{4F8B}\\x{2B}x@\\x{4F8B}.jp",
            ),
        ];
        for (input, want) in table {
            assert_eq!(orcpt(input), want, "{input:?}");
        }
    }
}
