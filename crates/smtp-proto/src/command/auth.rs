//! `AUTH` (RFC 4954 §4): `"AUTH" SP sasl-mech [SP initial-response] CRLF`,
//! `initial-response = base64 / "="`.

use super::{Command, CommandError, text_argument};

/// A parsed AUTH command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// The SASL mechanism, upper-cased (`PLAIN`, `LOGIN`, …).
    pub mechanism: String,
    /// The initial response, still base64; `=` (an empty response, RFC 4954
    /// §4) becomes the empty string.
    pub initial_response: Option<String>,
}

pub(super) fn parse(args: Option<&[u8]>) -> Result<Command, CommandError> {
    let syntax = || CommandError::Syntax { usage: USAGE };
    let text = text_argument(args, USAGE)?.ok_or_else(syntax)?;
    let mut words = text.split(' ').filter(|w| !w.is_empty());
    let mechanism = words.next().ok_or_else(syntax)?;
    // RFC 4422 §3.1: sasl-mech = 1*20mech-char, mech-char = UPPER-ALPHA / DIGIT / HYPHEN / UNDERSCORE.
    let mech_ok = mechanism.len() <= 20
        && mechanism
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !mech_ok {
        return Err(syntax());
    }
    let initial_response = match words.next() {
        None => None,
        Some("=") => Some(String::new()),
        Some(r) if is_base64(r) => Some(r.to_string()),
        Some(_) => return Err(CommandError::BadBase64),
    };
    if words.next().is_some() {
        return Err(syntax());
    }
    Ok(Command::Auth(Auth {
        mechanism: mechanism.to_ascii_uppercase(),
        initial_response,
    }))
}

/// True when `s` uses only the base64 alphabet with padding at the end
/// only (RFC 4648 §4). Decoding, and the length check, are the SASL
/// mechanism's job.
pub(crate) fn is_base64(s: &str) -> bool {
    let data = s.trim_end_matches('=');
    s.len() - data.len() <= 2
        && data
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

const USAGE: &str = "AUTH <mechanism> [initial-response]";

#[cfg(test)]
mod tests {
    use super::super::tests::code;
    use super::*;

    #[test]
    fn table() {
        let auth = |m: &str, r: Option<&str>| {
            Ok(Command::Auth(Auth {
                mechanism: m.to_string(),
                initial_response: r.map(str::to_string),
            }))
        };
        let table = [
            ("AUTH PLAIN", auth("PLAIN", None)),
            (
                "auth plain AGFsaWNlAHNlY3JldA==",
                auth("PLAIN", Some("AGFsaWNlAHNlY3JldA==")),
            ),
            ("AUTH PLAIN =", auth("PLAIN", Some(""))),
            ("AUTH SCRAM-SHA-256", auth("SCRAM-SHA-256", None)),
            ("AUTH LOGIN dXNlcg==", auth("LOGIN", Some("dXNlcg=="))),
            ("AUTH", Err(501)),
            ("AUTH PL@IN", Err(501)),
            ("AUTH ABCDEFGHIJKLMNOPQRSTU", Err(501)),
            ("AUTH PLAIN a b", Err(501)),
            ("AUTH PLAIN not*base64", Err(501)),
            ("AUTH PLAIN a=b", Err(501)),
            ("AUTH PLAIN a===", Err(501)),
        ];
        for (line, want) in table {
            assert_eq!(code(line), want, "{line:?}");
        }
        let reply = Command::parse(b"AUTH PLAIN ***").map_err(|e| e.reply().to_bytes());
        assert_eq!(reply, Err(b"501 5.5.2 Cannot decode response\r\n".to_vec()));
    }
}
