//! SASL pieces for `AUTH` (RFC 5034): a strict base64 decoder (RFC 4648 §4)
//! and the PLAIN message (RFC 4616 §2).
//!
//! The decoder is ours, not a crate's, because it is twenty lines and must be
//! strict in ways general decoders are not by default: no whitespace, padding
//! required, and no non-zero bits in the last character.

use std::fmt;

/// Why a SASL response is not base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Base64Error {
    /// The length is not a multiple of four (padding missing or extra bytes).
    #[error("base64 length is not a multiple of 4")]
    Length,
    /// A byte outside the base64 alphabet, or `=` before the end.
    #[error("invalid base64 character")]
    Character,
    /// The last character carries bits that decoding drops: not the
    /// canonical encoding of any octet string (RFC 4648 §3.5).
    #[error("non-canonical base64 padding bits")]
    NonCanonical,
}

/// Why a decoded PLAIN message is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PlainError {
    /// Not exactly three fields separated by NUL.
    #[error("PLAIN message needs exactly two NUL separators")]
    Fields,
    /// A field is not UTF-8 (RFC 4616 §2: "UTF8-SAFE").
    #[error("PLAIN field is not UTF-8")]
    Encoding,
    /// The authentication identity or the password is empty (RFC 4616 §2
    /// requires at least one character in both).
    #[error("PLAIN authcid or passwd is empty")]
    Empty,
}

/// The three fields of a PLAIN message.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PlainMessage {
    /// The identity to act as; empty means "the same as `authcid`".
    pub(crate) authzid: String,
    /// The identity whose password this is.
    pub(crate) authcid: String,
    /// The password.
    pub(crate) password: String,
}

/// Decodes strict base64 (RFC 4648 §4, with padding). The empty input
/// decodes to nothing.
pub(crate) fn decode_base64(input: &[u8]) -> Result<Vec<u8>, Base64Error> {
    if !input.len().is_multiple_of(4) {
        return Err(Base64Error::Length);
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let quads = input.len() / 4;
    for (i, quad) in input.chunks_exact(4).enumerate() {
        let pad = if i + 1 == quads {
            quad.iter().rev().take_while(|&&c| c == b'=').count()
        } else {
            0
        };
        if pad > 2 {
            return Err(Base64Error::Character);
        }
        let mut bits: u32 = 0;
        for (j, &c) in quad.iter().enumerate() {
            let value = if j < 4 - pad {
                sextet(c).ok_or(Base64Error::Character)?
            } else {
                0
            };
            bits = (bits << 6) | u32::from(value);
        }
        let [_, a, b, c] = bits.to_be_bytes();
        let dropped = match pad {
            2 => u32::from(b) | u32::from(c),
            1 => u32::from(c),
            _ => 0,
        };
        if dropped != 0 {
            return Err(Base64Error::NonCanonical);
        }
        out.extend_from_slice(&[a, b, c][..3 - pad]);
    }
    Ok(out)
}

/// Splits a PLAIN message: `[authzid] NUL authcid NUL passwd` (RFC 4616 §2).
pub(crate) fn parse_plain(message: &[u8]) -> Result<PlainMessage, PlainError> {
    let mut fields = message.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(PlainError::Fields);
    };
    let text = |field: &[u8]| {
        std::str::from_utf8(field)
            .map(str::to_owned)
            .map_err(|_| PlainError::Encoding)
    };
    let plain = PlainMessage {
        authzid: text(authzid)?,
        authcid: text(authcid)?,
        password: text(password)?,
    };
    if plain.authcid.is_empty() || plain.password.is_empty() {
        return Err(PlainError::Empty);
    }
    Ok(plain)
}

// Never print a password, even in a debug log.
impl fmt::Debug for PlainMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainMessage")
            .field("authzid", &self.authzid)
            .field("authcid", &self.authcid)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The value of one base64 character (RFC 4648 §4, Table 1).
fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Test-only encoder, the reference the decoder is checked against.
#[cfg(test)]
pub(crate) fn encode_base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn rfc4648_test_vectors() {
        // RFC 4648 §10.
        let vectors: &[(&str, &str)] = &[
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(
                decode_base64(encoded.as_bytes()),
                Ok(plain.as_bytes().to_vec()),
                "{encoded}"
            );
            assert_eq!(encode_base64(plain.as_bytes()), *encoded);
        }
    }

    #[test]
    fn rejects_everything_not_strict() {
        let rows: &[(&str, Base64Error)] = &[
            ("Zg", Base64Error::Length),
            ("Zg=", Base64Error::Length),
            ("Zm9vY", Base64Error::Length),
            ("=", Base64Error::Length),
            ("Zg=a", Base64Error::Character),
            ("Z===", Base64Error::Character),
            ("====", Base64Error::Character),
            ("Zg==Zm9v", Base64Error::Character),
            ("Zm 9", Base64Error::Character),
            ("Zm9v\n", Base64Error::Length),
            ("Zm-_", Base64Error::Character),
            ("Zh==", Base64Error::NonCanonical),
            ("Zm9=", Base64Error::NonCanonical),
        ];
        for (input, error) in rows {
            assert_eq!(decode_base64(input.as_bytes()), Err(*error), "{input:?}");
        }
    }

    #[test]
    fn plain_messages() {
        let plain = |z: &str, c: &str, p: &str| {
            Ok(PlainMessage {
                authzid: z.into(),
                authcid: c.into(),
                password: p.into(),
            })
        };
        let rows: &[(&[u8], Result<PlainMessage, PlainError>)] = &[
            (b"\0alice\0secret", plain("", "alice", "secret")),
            (b"alice\0alice\0secret", plain("alice", "alice", "secret")),
            (b"\0alice\0pass word", plain("", "alice", "pass word")),
            (b"\0al\xc3\xafce\0s", plain("", "al\u{ef}ce", "s")),
            (b"", Err(PlainError::Fields)),
            (b"alice\0secret", Err(PlainError::Fields)),
            (b"\0alice\0secret\0", Err(PlainError::Fields)),
            (b"\0\0secret", Err(PlainError::Empty)),
            (b"\0alice\0", Err(PlainError::Empty)),
            (b"\0alice\0\xff", Err(PlainError::Encoding)),
        ];
        for (input, expected) in rows {
            assert_eq!(
                &parse_plain(input),
                expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn debug_redacts_the_password() {
        let plain = parse_plain(b"\0alice\0hunter2");
        assert!(!format!("{plain:?}").contains("hunter2"));
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(decode_base64(encode_base64(&bytes).as_bytes()), Ok(bytes));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_base64(&bytes);
        }
    }
}
