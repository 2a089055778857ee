//! Server side of the SASL mechanisms SMTP AUTH (RFC 4954) and POP3 AUTH
//! (RFC 5034) offer: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login)
//! and CRAM-MD5 (RFC 2195). Pure: the caller checks the credential.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use md5::Md5;

/// What a finished exchange yields for the caller to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    /// PLAIN or LOGIN: a password to check against the Argon2id hash.
    Password(String),
    /// CRAM-MD5: the challenge we sent and the client's hex HMAC-MD5 digest.
    CramMd5 { challenge: String, digest: String },
}

/// The next step of an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send this base64 challenge and wait for the next line.
    Challenge(String),
    /// Done: verify this user's credential.
    Done {
        user: String,
        credential: Credential,
    },
    /// The client's line is not base64 (RFC 4954 §4: 501 5.5.2).
    Malformed,
    /// Decoded, but not credentials this server accepts: a PLAIN message
    /// without its three fields, an authzid naming another user, text that
    /// is not UTF-8. The authentication fails (535 5.7.8), as RFC 4616 §2
    /// has it for an authzid the server will not act as.
    Refused,
}

/// One SASL exchange in progress.
pub(crate) struct Exchange {
    state: State,
}

enum State {
    Plain,
    LoginUser,
    LoginPassword { user: String },
    CramMd5 { challenge: String },
    Finished,
}

/// Mechanisms this server knows, by their SASL names.
pub(crate) const MECHANISMS: [&str; 3] = ["PLAIN", "LOGIN", "CRAM-MD5"];

impl Exchange {
    /// Starts `mechanism` (case-insensitive) with an optional initial
    /// response (`=` is an empty one, RFC 4954 §4). `None` for an unknown
    /// mechanism. `nonce` makes the CRAM-MD5 challenge unique.
    pub(crate) fn start(
        mechanism: &str,
        initial: Option<&str>,
        nonce: &str,
        hostname: &str,
    ) -> Option<(Exchange, Step)> {
        let mut exchange = match mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" => Exchange {
                state: State::Plain,
            },
            "LOGIN" => Exchange {
                state: State::LoginUser,
            },
            "CRAM-MD5" => {
                // RFC 2195 §2: the challenge looks like a msg-id.
                let challenge = format!("<{nonce}@{hostname}>");
                let step = Step::Challenge(BASE64.encode(challenge.as_bytes()));
                return Some((
                    Exchange {
                        state: State::CramMd5 { challenge },
                    },
                    step,
                ));
            }
            _ => return None,
        };
        let step = match (initial, &exchange.state) {
            (Some(response), _) => exchange.step(response),
            (None, State::Plain) => Step::Challenge(String::new()),
            // "Username:"
            (None, _) => Step::Challenge("VXNlcm5hbWU6".to_string()),
        };
        Some((exchange, step))
    }

    /// Feeds the client's next (base64) line.
    pub(crate) fn step(&mut self, line: &str) -> Step {
        let Some(decoded) = decode(line) else {
            self.state = State::Finished;
            return Step::Malformed;
        };
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Plain => plain(&decoded),
            State::LoginUser => match String::from_utf8(decoded) {
                Ok(user) if !user.is_empty() => {
                    self.state = State::LoginPassword { user };
                    // "Password:"
                    Step::Challenge("UGFzc3dvcmQ6".to_string())
                }
                _ => Step::Refused,
            },
            State::LoginPassword { user } => match String::from_utf8(decoded) {
                Ok(password) => Step::Done {
                    user,
                    credential: Credential::Password(password),
                },
                Err(_) => Step::Refused,
            },
            State::CramMd5 { challenge } => {
                let text = String::from_utf8(decoded).unwrap_or_default();
                match text.rsplit_once(' ') {
                    Some((user, digest)) if !user.is_empty() && digest.len() == 32 => Step::Done {
                        user: user.to_string(),
                        credential: Credential::CramMd5 {
                            challenge,
                            digest: digest.to_ascii_lowercase(),
                        },
                    },
                    _ => Step::Refused,
                }
            }
            State::Finished => Step::Malformed,
        }
    }
}

/// RFC 4616 §2: `[authzid] NUL authcid NUL passwd`. We act only as the
/// authenticated user, so an authzid must be empty or name that user.
fn plain(decoded: &[u8]) -> Step {
    let mut parts = decoded.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Step::Refused;
    };
    let (Ok(authzid), Ok(user), Ok(password)) = (
        std::str::from_utf8(authzid),
        std::str::from_utf8(authcid),
        std::str::from_utf8(password),
    ) else {
        return Step::Refused;
    };
    if user.is_empty() || (!authzid.is_empty() && !authzid.eq_ignore_ascii_case(user)) {
        return Step::Refused;
    }
    Step::Done {
        user: user.to_string(),
        credential: Credential::Password(password.to_string()),
    }
}

fn decode(line: &str) -> Option<Vec<u8>> {
    let line = line.trim_end();
    if line == "=" {
        return Some(Vec::new());
    }
    BASE64.decode(line).ok()
}

/// RFC 2195: the hex HMAC-MD5 of the challenge keyed with the shared secret.
pub(crate) fn cram_md5_digest(secret: &str, challenge: &str) -> String {
    let Ok(mut mac) = Hmac::<Md5>::new_from_slice(secret.as_bytes()) else {
        // HMAC accepts keys of any length; this branch cannot be taken.
        return String::new();
    };
    mac.update(challenge.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares without an early exit, so timing does not reveal the prefix.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_with_and_without_initial_response() {
        let ir = BASE64.encode(b"\0tim\0tanstaaftanstaaf");
        let (_, step) =
            Exchange::start("plain", Some(&ir), "n", "h").unwrap_or_else(|| panic!("PLAIN known"));
        assert_eq!(
            step,
            Step::Done {
                user: "tim".into(),
                credential: Credential::Password("tanstaaftanstaaf".into())
            }
        );
        let (mut ex, step) =
            Exchange::start("PLAIN", None, "n", "h").unwrap_or_else(|| panic!("PLAIN known"));
        assert_eq!(step, Step::Challenge(String::new()));
        assert!(matches!(ex.step(&ir), Step::Done { .. }));
        // An authzid for another user, a missing field, an empty message
        // ("=") are refused; what is not base64 is malformed.
        for (bad, expected) in [
            (BASE64.encode(b"root\0tim\0pw"), Step::Refused),
            (BASE64.encode(b"tim\0pw"), Step::Refused),
            ("=".to_string(), Step::Refused),
            ("!!!".to_string(), Step::Malformed),
        ] {
            let (_, step) = Exchange::start("PLAIN", Some(&bad), "n", "h")
                .unwrap_or_else(|| panic!("PLAIN known"));
            assert_eq!(step, expected, "{bad}");
        }
    }

    #[test]
    fn login_two_steps() {
        let (mut ex, step) =
            Exchange::start("LOGIN", None, "n", "h").unwrap_or_else(|| panic!("LOGIN known"));
        assert_eq!(step, Step::Challenge("VXNlcm5hbWU6".into()));
        assert_eq!(
            ex.step(&BASE64.encode("alice")),
            Step::Challenge("UGFzc3dvcmQ6".into())
        );
        assert_eq!(
            ex.step(&BASE64.encode("s3cret")),
            Step::Done {
                user: "alice".into(),
                credential: Credential::Password("s3cret".into())
            }
        );
    }

    #[test]
    fn cram_md5_rfc2195_example() {
        // RFC 2195 §2 example.
        let digest = cram_md5_digest(
            "tanstaaftanstaaf",
            "<1896.697170952@postoffice.reston.mci.net>",
        );
        assert_eq!(digest, "b913a602c7eda7a495b4e6e7334d3890");
        let (mut ex, step) = Exchange::start(
            "CRAM-MD5",
            None,
            "1896.697170952",
            "postoffice.reston.mci.net",
        )
        .unwrap_or_else(|| panic!("CRAM-MD5 known"));
        assert_eq!(
            step,
            Step::Challenge("PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+".into())
        );
        let response = BASE64.encode("tim b913a602c7eda7a495b4e6e7334d3890");
        assert_eq!(
            ex.step(&response),
            Step::Done {
                user: "tim".into(),
                credential: Credential::CramMd5 {
                    challenge: "<1896.697170952@postoffice.reston.mci.net>".into(),
                    digest: digest.clone()
                }
            }
        );
        assert!(Exchange::start("GSSAPI", None, "n", "h").is_none());
    }
}
