//! APOP (RFC 1939 §7): the greeting's timestamp, and the digest a client
//! proves its shared secret with.
//!
//! The session only checks the digest's syntax; the driver looks up the
//! user's shared secret and compares with [`apop_verify`].

use md5::{Digest, Md5};

/// The lowercase hex MD5 of `timestamp` followed by `secret`, as RFC 1939 §7
/// defines the APOP digest. `timestamp` includes its angle brackets.
pub fn apop_digest(timestamp: &str, secret: &str) -> String {
    let mut hasher = Md5::new();
    hasher.update(timestamp.as_bytes());
    hasher.update(secret.as_bytes());
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(32);
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    hex
}

/// True when `digest` (as the client sent it) is the APOP digest of
/// `timestamp` and `secret`. The comparison takes the same time wherever the
/// strings differ, so timing does not leak how much of a guess was right.
pub fn apop_verify(timestamp: &str, secret: &str, digest: &str) -> bool {
    let expected = apop_digest(timestamp, secret);
    if expected.len() != digest.len() {
        return false;
    }
    expected
        .bytes()
        .zip(digest.bytes())
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

/// A greeting timestamp mailroom will send: `<...>` of printable ASCII
/// without spaces (RFC 1939 §7 uses an RFC 822 msg-id). Anything else would
/// break the greeting line, so APOP is then not offered.
pub(crate) fn is_valid_timestamp(timestamp: &str) -> bool {
    timestamp.len() >= 3
        && timestamp.starts_with('<')
        && timestamp.ends_with('>')
        && timestamp.bytes().all(|b| b.is_ascii_graphic())
}

/// RFC 1939 §7: the digest is "a 16-octet value which is sent in hexadecimal
/// format, using lower-case ASCII characters".
pub(crate) fn is_digest_syntax(digest: &str) -> bool {
    digest.len() == 32
        && digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_TIMESTAMP: &str = "<1896.697170952@dbc.mtview.ca.us>";

    #[test]
    fn rfc1939_example() {
        // RFC 1939 §7, the APOP example. The RFC's shared secret is
        // "tanstaaf" (eight letters); "tanstaafl" gives a6f0dd34...
        assert_eq!(
            apop_digest(RFC_TIMESTAMP, "tanstaaf"),
            "c4c9334bac560ecc979e58001b3e22fb"
        );
    }

    #[test]
    fn verify_compares_exactly() {
        let good = "c4c9334bac560ecc979e58001b3e22fb";
        assert!(apop_verify(RFC_TIMESTAMP, "tanstaaf", good));
        assert!(!apop_verify(RFC_TIMESTAMP, "tanstaag", good));
        assert!(!apop_verify(
            RFC_TIMESTAMP,
            "tanstaaf",
            &good.to_uppercase()
        ));
        assert!(!apop_verify(RFC_TIMESTAMP, "tanstaaf", &good[..31]));
        assert!(!apop_verify(RFC_TIMESTAMP, "tanstaaf", ""));
    }

    #[test]
    fn syntax_checks() {
        assert!(is_valid_timestamp(RFC_TIMESTAMP));
        assert!(is_valid_timestamp("<1.2.3@localhost>"));
        assert!(!is_valid_timestamp(""));
        assert!(!is_valid_timestamp("<>x"));
        assert!(!is_valid_timestamp("<a b@c>"));
        assert!(!is_valid_timestamp("<a\r\n@c>"));
        assert!(is_digest_syntax("c4c9334bac560ecc979e58001b3e22fb"));
        assert!(!is_digest_syntax("C4C9334BAC560ECC979E58001B3E22FB"));
        assert!(!is_digest_syntax("c4c9334bac560ecc979e58001b3e22f"));
        assert!(!is_digest_syntax("g4c9334bac560ecc979e58001b3e22fb"));
    }
}
