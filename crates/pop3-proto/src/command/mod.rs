//! POP3 commands: syntax only (RFC 1939 §3, RFC 2449, RFC 2595, RFC 5034).
//!
//! Which commands are allowed in which state is the session's business; this
//! module turns one line (without its CRLF) into a [`Command`] or says why it
//! cannot. The commands of the AUTHORIZATION state live in
//! `authorization.rs`, those of the TRANSACTION state in `transaction.rs`.
//!
//! RFC 1939 §3: "Commands in the POP3 consist of a case-insensitive keyword,
//! possibly followed by one or more arguments. ... Keywords and arguments
//! are each separated by a single SPACE character." mailroom holds clients
//! to that: a doubled or trailing space is a syntax error. It does not hold
//! them to the 40-character argument limit of the same section, which
//! passwords and SASL initial responses routinely exceed (RFC 2449 §4 and
//! RFC 5034 §4 bound the whole line instead).

mod authorization;
mod transaction;

use std::fmt;

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `USER name` (RFC 1939 §7).
    User {
        /// The mailbox name, as sent.
        name: String,
    },
    /// `PASS string` (RFC 1939 §7). The password is the rest of the line and
    /// may hold spaces.
    Pass {
        /// The password.
        password: Secret,
    },
    /// `APOP name digest` (RFC 1939 §7).
    Apop {
        /// The mailbox name, as sent.
        name: String,
        /// 32 lowercase hex digits.
        digest: String,
    },
    /// `AUTH [mechanism [initial-response]]` (RFC 5034 §4). Without a
    /// mechanism it asks for the list of mechanisms, a common extension.
    Auth {
        /// The mechanism name, upper-cased.
        mechanism: Option<String>,
        /// The base64 initial response, still encoded; `=` stands for an
        /// empty one.
        initial_response: Option<Secret>,
    },
    /// `STLS` (RFC 2595 §4).
    Stls,
    /// `CAPA` (RFC 2449 §5).
    Capa,
    /// `QUIT` (RFC 1939 §4 and §6).
    Quit,
    /// `STAT` (RFC 1939 §5).
    Stat,
    /// `LIST [msg]` (RFC 1939 §5).
    List {
        /// The message number, 1-based; `None` lists them all.
        msg: Option<u64>,
    },
    /// `RETR msg` (RFC 1939 §5).
    Retr {
        /// The message number, 1-based.
        msg: u64,
    },
    /// `DELE msg` (RFC 1939 §5).
    Dele {
        /// The message number, 1-based.
        msg: u64,
    },
    /// `NOOP` (RFC 1939 §5).
    Noop,
    /// `RSET` (RFC 1939 §5).
    Rset,
    /// `TOP msg n` (RFC 1939 §7).
    Top {
        /// The message number, 1-based.
        msg: u64,
        /// How many body lines to send.
        lines: u64,
    },
    /// `UIDL [msg]` (RFC 1939 §7).
    Uidl {
        /// The message number, 1-based; `None` lists them all.
        msg: Option<u64>,
    },
}

impl Command {
    /// Parses one command line, CRLF already removed.
    ///
    /// Numbers too large for `u64` saturate: they name no message, which is
    /// the session's "no such message", not a syntax error.
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        // RFC 1939 §3: keywords and arguments are printable. UTF-8 is let
        // through for user names and passwords; control characters never.
        if line.iter().any(|&b| b.is_ascii_control()) {
            return Err(CommandError::InvalidCharacters);
        }
        let line = std::str::from_utf8(line).map_err(|_| CommandError::InvalidCharacters)?;
        let (keyword, rest) = match line.split_once(' ') {
            Some((keyword, rest)) => (keyword, Some(rest)),
            None => (line, None),
        };
        match keyword.to_ascii_uppercase().as_str() {
            "USER" => authorization::user(rest),
            "PASS" => authorization::pass(rest),
            "APOP" => authorization::apop(rest),
            "AUTH" => authorization::auth(rest),
            "STLS" => no_arguments(rest, Command::Stls, "STLS"),
            "CAPA" => no_arguments(rest, Command::Capa, "CAPA"),
            "QUIT" => no_arguments(rest, Command::Quit, "QUIT"),
            "STAT" => no_arguments(rest, Command::Stat, "STAT"),
            "NOOP" => no_arguments(rest, Command::Noop, "NOOP"),
            "RSET" => no_arguments(rest, Command::Rset, "RSET"),
            "LIST" => transaction::list(rest),
            "RETR" => transaction::retr(rest),
            "DELE" => transaction::dele(rest),
            "TOP" => transaction::top(rest),
            "UIDL" => transaction::uidl(rest),
            _ => Err(CommandError::Unknown),
        }
    }
}

/// Why a command line could not be parsed. Each variant maps to one `-ERR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The keyword is not a command mailroom knows: a typo, an extension
    /// mailroom does not implement, or a client of another protocol.
    #[error("unknown command")]
    Unknown,
    /// A known keyword with wrong arguments: missing, extra, doubled spaces,
    /// or not a number where one is needed. Carries the usage line the
    /// reply echoes.
    #[error("syntax error, usage: {usage}")]
    Syntax {
        /// The command's usage, e.g. `TOP msg n`.
        usage: &'static str,
    },
    /// Control characters or invalid UTF-8 in the line.
    #[error("invalid characters in command")]
    InvalidCharacters,
}

/// A string holding a secret (a password, a SASL response). Its `Debug`
/// prints `<redacted>`, so a logged command never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret itself, by value.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Splits the arguments after the keyword on single spaces. `None` (no
/// space after the keyword) is no argument; an empty piece means a doubled,
/// leading or trailing space.
fn arguments<'a>(rest: Option<&'a str>, usage: &'static str) -> Result<Vec<&'a str>, CommandError> {
    let Some(rest) = rest else {
        return Ok(Vec::new());
    };
    let arguments: Vec<&str> = rest.split(' ').collect();
    if arguments.iter().any(|a| a.is_empty()) {
        return Err(CommandError::Syntax { usage });
    }
    Ok(arguments)
}

fn no_arguments(
    rest: Option<&str>,
    command: Command,
    usage: &'static str,
) -> Result<Command, CommandError> {
    match rest {
        None => Ok(command),
        Some(_) => Err(CommandError::Syntax { usage }),
    }
}

/// A decimal number (RFC 1939 §3 message numbers and TOP's line count):
/// digits only, so no sign, and saturating at `u64::MAX`.
fn number(argument: &str, usage: &'static str) -> Result<u64, CommandError> {
    if argument.is_empty() || !argument.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CommandError::Syntax { usage });
    }
    Ok(argument.bytes().fold(0u64, |n, digit| {
        n.saturating_mul(10).saturating_add(u64::from(digit - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syntax(usage: &'static str) -> Result<Command, CommandError> {
        Err(CommandError::Syntax { usage })
    }

    #[test]
    fn table() {
        use Command::*;
        let rows: Vec<(&[u8], Result<Command, CommandError>)> = vec![
            // Case-insensitive keywords.
            (b"NOOP", Ok(Noop)),
            (b"noop", Ok(Noop)),
            (b"NoOp", Ok(Noop)),
            (b"NOOP ", syntax("NOOP")),
            (b"NOOP x", syntax("NOOP")),
            (b"STAT", Ok(Stat)),
            (b"RSET", Ok(Rset)),
            (b"CAPA", Ok(Capa)),
            (b"capa x", syntax("CAPA")),
            (b"STLS", Ok(Stls)),
            (b"QUIT", Ok(Quit)),
            (b"QUIT now", syntax("QUIT")),
            // Unknown keywords and junk.
            (b"", Err(CommandError::Unknown)),
            (b" NOOP", Err(CommandError::Unknown)),
            (b"NOOPX", Err(CommandError::Unknown)),
            (b"EHLO example.com", Err(CommandError::Unknown)),
            (b"XTND XMIT", Err(CommandError::Unknown)),
            (b"N\xc3\x96OP", Err(CommandError::Unknown)),
            (b"NO\0OP", Err(CommandError::InvalidCharacters)),
            (b"NOOP\t", Err(CommandError::InvalidCharacters)),
            (b"USER \xff", Err(CommandError::InvalidCharacters)),
            (b"PASS a\x7fb", Err(CommandError::InvalidCharacters)),
            // USER / PASS.
            (
                b"USER alice",
                Ok(User {
                    name: "alice".into(),
                }),
            ),
            (
                b"user Alice@Example.COM",
                Ok(User {
                    name: "Alice@Example.COM".into(),
                }),
            ),
            (
                b"USER j\xc3\xb6rg",
                Ok(User {
                    name: "j\u{f6}rg".into(),
                }),
            ),
            (b"USER", syntax("USER name")),
            (b"USER ", syntax("USER name")),
            (b"USER  alice", syntax("USER name")),
            (b"USER alice ", syntax("USER name")),
            (b"USER alice bob", syntax("USER name")),
            (
                b"PASS secret",
                Ok(Pass {
                    password: Secret::new("secret"),
                }),
            ),
            (
                b"PASS pass word ",
                Ok(Pass {
                    password: Secret::new("pass word "),
                }),
            ),
            (
                b"PASS  lead",
                Ok(Pass {
                    password: Secret::new(" lead"),
                }),
            ),
            (b"PASS", syntax("PASS string")),
            (b"PASS ", syntax("PASS string")),
            // APOP.
            (
                b"APOP mrose c4c9334bac560ecc979e58001b3e22fb",
                Ok(Apop {
                    name: "mrose".into(),
                    digest: "c4c9334bac560ecc979e58001b3e22fb".into(),
                }),
            ),
            (
                b"APOP mrose C4C9334BAC560ECC979E58001B3E22FB",
                syntax("APOP name digest"),
            ),
            (
                b"APOP mrose c4c9334bac560ecc979e58001b3e22f",
                syntax("APOP name digest"),
            ),
            (b"APOP mrose", syntax("APOP name digest")),
            (b"APOP", syntax("APOP name digest")),
            (b"APOP a b c", syntax("APOP name digest")),
            // AUTH.
            (
                b"AUTH",
                Ok(Auth {
                    mechanism: None,
                    initial_response: None,
                }),
            ),
            (
                b"AUTH PLAIN",
                Ok(Auth {
                    mechanism: Some("PLAIN".into()),
                    initial_response: None,
                }),
            ),
            (
                b"auth plain",
                Ok(Auth {
                    mechanism: Some("PLAIN".into()),
                    initial_response: None,
                }),
            ),
            (
                b"AUTH PLAIN AGFsaWNlAHNlY3JldA==",
                Ok(Auth {
                    mechanism: Some("PLAIN".into()),
                    initial_response: Some(Secret::new("AGFsaWNlAHNlY3JldA==")),
                }),
            ),
            (
                b"AUTH PLAIN =",
                Ok(Auth {
                    mechanism: Some("PLAIN".into()),
                    initial_response: Some(Secret::new("=")),
                }),
            ),
            (
                b"AUTH CRAM-MD5",
                Ok(Auth {
                    mechanism: Some("CRAM-MD5".into()),
                    initial_response: None,
                }),
            ),
            (b"AUTH ", syntax("AUTH [mechanism [initial-response]]")),
            (
                b"AUTH PLAIN a b",
                syntax("AUTH [mechanism [initial-response]]"),
            ),
            (
                b"AUTH PLAIN ",
                syntax("AUTH [mechanism [initial-response]]"),
            ),
            // LIST / UIDL.
            (b"LIST", Ok(List { msg: None })),
            (b"LIST 1", Ok(List { msg: Some(1) })),
            (b"list 007", Ok(List { msg: Some(7) })),
            (b"LIST 0", Ok(List { msg: Some(0) })),
            (
                b"LIST 99999999999999999999999",
                Ok(List {
                    msg: Some(u64::MAX),
                }),
            ),
            (b"LIST -1", syntax("LIST [msg]")),
            (b"LIST +1", syntax("LIST [msg]")),
            (b"LIST 1x", syntax("LIST [msg]")),
            (b"LIST ", syntax("LIST [msg]")),
            (b"LIST 1 2", syntax("LIST [msg]")),
            (b"UIDL", Ok(Uidl { msg: None })),
            (b"UIDL 2", Ok(Uidl { msg: Some(2) })),
            (b"UIDL x", syntax("UIDL [msg]")),
            // RETR / DELE.
            (b"RETR 1", Ok(Retr { msg: 1 })),
            (b"retr 12", Ok(Retr { msg: 12 })),
            (b"RETR", syntax("RETR msg")),
            (b"RETR 1 2", syntax("RETR msg")),
            (b"RETR one", syntax("RETR msg")),
            (b"DELE 3", Ok(Dele { msg: 3 })),
            (b"DELE", syntax("DELE msg")),
            (b"DELE  3", syntax("DELE msg")),
            // TOP.
            (b"TOP 1 0", Ok(Top { msg: 1, lines: 0 })),
            (b"top 2 10", Ok(Top { msg: 2, lines: 10 })),
            (
                b"TOP 1 99999999999999999999999",
                Ok(Top {
                    msg: 1,
                    lines: u64::MAX,
                }),
            ),
            (b"TOP 1 -1", syntax("TOP msg n")),
            (b"TOP 1", syntax("TOP msg n")),
            (b"TOP", syntax("TOP msg n")),
            (b"TOP 1 2 3", syntax("TOP msg n")),
            (b"TOP x 1", syntax("TOP msg n")),
        ];
        for (line, expected) in rows {
            assert_eq!(
                Command::parse(line),
                expected,
                "line {:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let Ok(command) = Command::parse(b"PASS hunter2") else {
            panic!("PASS did not parse");
        };
        assert!(!format!("{command:?}").contains("hunter2"));
        let Ok(command) = Command::parse(b"AUTH PLAIN AGFsaWNlAGh1bnRlcjI=") else {
            panic!("AUTH did not parse");
        };
        assert!(!format!("{command:?}").contains("AGFsaWNlAGh1bnRlcjI="));
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            CommandError::Syntax { usage: "TOP msg n" }.to_string(),
            "syntax error, usage: TOP msg n"
        );
    }
}
