//! SMTP commands (RFC 5321 §4.1.1 plus the ESMTP extensions we offer): one
//! file per command, each with its syntax, parameters and table tests.
//!
//! [`Command::parse`] takes one command line without its CRLF (framing, line
//! limits and bare CR/LF are the session's job) and returns either the
//! command or a [`CommandError`] that knows its reply. Parsing is pure
//! syntax: whether a command is allowed *now* (RFC 5321 §4.1.4 sequencing)
//! is decided by [`crate::ServerSession`].

mod auth;
mod bdat;
mod data;
mod ehlo;
mod expn;
mod helo;
mod help;
mod mail;
mod noop;
mod params;
mod path;
mod quit;
mod rcpt;
mod rset;
mod starttls;
mod vrfy;

pub use auth::Auth;
pub(crate) use auth::is_base64;
pub use bdat::Bdat;
pub use mail::{BodyType, Mail, MailParams, Ret};
pub use rcpt::{ForwardPath, Notify, RcptParams, Recipient};

use crate::codes;
use crate::reply::Reply;

/// One parsed SMTP command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `HELO <domain>` (RFC 5321 §4.1.1.1).
    Helo {
        /// The client's name for itself, as sent (not verified).
        domain: String,
    },
    /// `EHLO <domain>` (RFC 5321 §4.1.1.1).
    Ehlo {
        /// The client's name for itself, as sent (not verified).
        domain: String,
    },
    /// `MAIL FROM:<reverse-path> [params]` (RFC 5321 §4.1.1.2).
    Mail(Mail),
    /// `RCPT TO:<forward-path> [params]` (RFC 5321 §4.1.1.3).
    Rcpt(Recipient),
    /// `DATA` (RFC 5321 §4.1.1.4).
    Data,
    /// `BDAT <size> [LAST]` (RFC 3030 §2).
    Bdat(Bdat),
    /// `RSET` (RFC 5321 §4.1.1.5).
    Rset,
    /// `NOOP [string]` (RFC 5321 §4.1.1.9); the argument is ignored.
    Noop,
    /// `QUIT` (RFC 5321 §4.1.1.10).
    Quit,
    /// `HELP [topic]` (RFC 5321 §4.1.1.8).
    Help {
        /// The topic asked about, if any.
        topic: Option<String>,
    },
    /// `VRFY <string>` (RFC 5321 §4.1.1.6).
    Vrfy {
        /// The user or mailbox to verify.
        argument: String,
    },
    /// `EXPN <string>` (RFC 5321 §4.1.1.7).
    Expn {
        /// The list to expand.
        argument: String,
    },
    /// `STARTTLS` (RFC 3207 §4).
    StartTls,
    /// `AUTH <mechanism> [initial-response]` (RFC 4954 §4).
    Auth(Auth),
}

/// Why a command line is not a valid command. Each variant maps to exactly
/// one reply ([`CommandError::reply`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The verb is not one we know (or the line is empty): 500 5.5.2.
    #[error("unrecognized command")]
    Unrecognized,
    /// SEND, SOML, SAML or TURN, which RFC 5321 Appendix F retired: 502 5.5.1.
    #[error("{0} was retired by RFC 5321")]
    Retired(&'static str),
    /// Missing, extra or malformed arguments: 501 5.5.4 with the usage.
    #[error("syntax error; usage: {usage}")]
    Syntax {
        /// The command's usage line, echoed in the reply.
        usage: &'static str,
    },
    /// The MAIL reverse path is not a valid path or mailbox: 501 5.1.7.
    #[error("bad sender address syntax")]
    BadSender,
    /// The RCPT forward path is not a valid path or mailbox: 501 5.1.3.
    #[error("bad recipient address syntax")]
    BadRecipient,
    /// A MAIL/RCPT parameter we do not implement (RFC 5321 §4.1.1.11):
    /// 555 5.5.4.
    #[error("unsupported parameter {0}")]
    UnknownParameter(String),
    /// A non-ASCII address in a transaction without SMTPUTF8 (RFC 6531
    /// §3.5): 553 5.6.7.
    #[error("address needs SMTPUTF8")]
    Utf8Required,
    /// An AUTH initial response that is not base64 (RFC 4954 §4): 501 5.5.2.
    #[error("initial response is not base64")]
    BadBase64,
}

impl Command {
    /// Parses one command line, without its terminating CRLF. Verbs are
    /// case-insensitive (RFC 5321 §2.4); trailing spaces and tabs are
    /// ignored.
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        let line = trim_trailing_blanks(line);
        let (verb, args) = match line.iter().position(|&b| b == b' ') {
            Some(i) => {
                let (verb, rest) = line.split_at(i);
                (verb, Some(rest.get(1..).unwrap_or_default()))
            }
            None => (line, None),
        };
        let is = |name: &str| verb.eq_ignore_ascii_case(name.as_bytes());
        if is("HELO") {
            helo::parse(args)
        } else if is("EHLO") {
            ehlo::parse(args)
        } else if is("MAIL") {
            mail::parse(args)
        } else if is("RCPT") {
            rcpt::parse(args)
        } else if is("DATA") {
            data::parse(args)
        } else if is("BDAT") {
            bdat::parse(args)
        } else if is("RSET") {
            rset::parse(args)
        } else if is("NOOP") {
            noop::parse(args)
        } else if is("QUIT") {
            quit::parse(args)
        } else if is("HELP") {
            help::parse(args)
        } else if is("VRFY") {
            vrfy::parse(args)
        } else if is("EXPN") {
            expn::parse(args)
        } else if is("STARTTLS") {
            starttls::parse(args)
        } else if is("AUTH") {
            auth::parse(args)
        } else {
            // RFC 5321 Appendix F: retired commands get a clear 502, not 500.
            let retired = RETIRED.iter().find(|name| is(name));
            Err(retired.map_or(CommandError::Unrecognized, |name| {
                CommandError::Retired(name)
            }))
        }
    }
}

impl CommandError {
    /// The reply the client gets for this error.
    pub fn reply(&self) -> Reply {
        match self {
            CommandError::Unrecognized => codes::command_unrecognized(),
            CommandError::Retired(verb) => codes::retired(verb),
            CommandError::Syntax { usage } => codes::syntax(usage),
            CommandError::BadSender => codes::bad_sender_syntax(),
            CommandError::BadRecipient => codes::bad_recipient_syntax(),
            CommandError::UnknownParameter(_) => codes::unknown_parameter(),
            CommandError::Utf8Required => codes::utf8_required(),
            CommandError::BadBase64 => codes::auth_bad_base64(),
        }
    }
}

/// The argument text of a command: valid UTF-8 with no control characters,
/// or a syntax error with `usage`. `None` when there is no argument.
fn text_argument<'a>(
    args: Option<&'a [u8]>,
    usage: &'static str,
) -> Result<Option<&'a str>, CommandError> {
    let Some(args) = args else { return Ok(None) };
    let text = std::str::from_utf8(args).map_err(|_| CommandError::Syntax { usage })?;
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(CommandError::Syntax { usage });
    }
    let text = text.trim_matches([' ', '\t']);
    Ok((!text.is_empty()).then_some(text))
}

/// For commands that take no argument (RFC 5321: `RSET CRLF`, …).
fn no_argument(args: Option<&[u8]>, usage: &'static str) -> Result<(), CommandError> {
    match args {
        Some(a) if a.iter().any(|&b| b != b' ' && b != b'\t') => {
            Err(CommandError::Syntax { usage })
        }
        _ => Ok(()),
    }
}

fn trim_trailing_blanks(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = line {
        line = rest;
    }
    line
}

/// RFC 5321 Appendix F.3–F.6: commands that RFC 821 had and RFC 5321 retired.
const RETIRED: [&str; 4] = ["SEND", "SOML", "SAML", "TURN"];

#[cfg(test)]
mod tests {
    use super::*;

    /// Shared by the per-command table tests: the reply code a line gets,
    /// or the command.
    pub(super) fn code(line: &str) -> Result<Command, u16> {
        Command::parse(line.as_bytes()).map_err(|e| e.reply().code)
    }

    #[test]
    fn verbs_and_dispatch() {
        let table: [(&str, Result<Command, u16>); 14] = [
            ("", Err(500)),
            ("   ", Err(500)),
            ("FOO", Err(500)),
            (" NOOP", Err(500)),
            ("NOOP\0", Err(500)),
            ("noop", Ok(Command::Noop)),
            ("NoOp  ", Ok(Command::Noop)),
            ("NOOP\t", Ok(Command::Noop)),
            ("send FROM:<a@b>", Err(502)),
            ("SOML", Err(502)),
            ("SAML", Err(502)),
            ("TURN", Err(502)),
            ("ETRN x", Err(500)),
            ("MAILX FROM:<a@b>", Err(500)),
        ];
        for (line, want) in table {
            assert_eq!(code(line), want, "{line:?}");
        }
        assert_eq!(
            Command::parse(b"TURN").map_err(|e| e.reply().to_bytes()),
            Err(b"502 5.5.1 TURN was retired by RFC 5321\r\n".to_vec())
        );
    }

    #[test]
    fn non_utf8_and_controls_in_arguments() {
        assert_eq!(
            Command::parse(b"VRFY \xff\xfe").map_err(|e| e.reply().code),
            Err(501)
        );
        assert_eq!(
            Command::parse(b"VRFY a\x01b").map_err(|e| e.reply().code),
            Err(501)
        );
        assert_eq!(
            Command::parse(b"NOOP \xff").map_err(|e| e.reply().code),
            Ok(Command::Noop)
        );
    }
}
