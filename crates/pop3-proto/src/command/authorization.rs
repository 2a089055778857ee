//! Commands of the AUTHORIZATION state: USER, PASS, APOP (RFC 1939 §7) and
//! AUTH (RFC 5034 §4). STLS, CAPA and QUIT take no arguments and are parsed
//! in `mod.rs`.

use super::{Command, CommandError, Secret, arguments};
use crate::apop::is_digest_syntax;

/// `USER name`: exactly one argument.
pub(super) fn user(rest: Option<&str>) -> Result<Command, CommandError> {
    const USAGE: &str = "USER name";
    match arguments(rest, USAGE)?.as_slice() {
        [name] => Ok(Command::User {
            name: (*name).to_owned(),
        }),
        _ => Err(CommandError::Syntax { usage: USAGE }),
    }
}

/// `PASS string`. RFC 1939 §7: "Since the PASS command has exactly one
/// argument, a POP3 server may treat spaces in the argument as part of the
/// password, instead of as argument separators." mailroom does: the password
/// is everything after `PASS `.
pub(super) fn pass(rest: Option<&str>) -> Result<Command, CommandError> {
    match rest {
        Some(password) if !password.is_empty() => Ok(Command::Pass {
            password: Secret::new(password),
        }),
        _ => Err(CommandError::Syntax {
            usage: "PASS string",
        }),
    }
}

/// `APOP name digest`; the digest is 32 lowercase hex digits (RFC 1939 §7).
pub(super) fn apop(rest: Option<&str>) -> Result<Command, CommandError> {
    const USAGE: &str = "APOP name digest";
    match arguments(rest, USAGE)?.as_slice() {
        [name, digest] if is_digest_syntax(digest) => Ok(Command::Apop {
            name: (*name).to_owned(),
            digest: (*digest).to_owned(),
        }),
        _ => Err(CommandError::Syntax { usage: USAGE }),
    }
}

/// `AUTH [mechanism [initial-response]]` (RFC 5034 §4). The mechanism name
/// is case-insensitive (RFC 4422 §3.1); the initial response stays encoded
/// until the session knows the mechanism is one it allows.
pub(super) fn auth(rest: Option<&str>) -> Result<Command, CommandError> {
    const USAGE: &str = "AUTH [mechanism [initial-response]]";
    match arguments(rest, USAGE)?.as_slice() {
        [] => Ok(Command::Auth {
            mechanism: None,
            initial_response: None,
        }),
        [mechanism] => Ok(Command::Auth {
            mechanism: Some(mechanism.to_ascii_uppercase()),
            initial_response: None,
        }),
        [mechanism, initial] => Ok(Command::Auth {
            mechanism: Some(mechanism.to_ascii_uppercase()),
            initial_response: Some(Secret::new(*initial)),
        }),
        _ => Err(CommandError::Syntax { usage: USAGE }),
    }
}
