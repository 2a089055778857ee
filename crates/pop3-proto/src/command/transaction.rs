//! Commands of the TRANSACTION state that take arguments: LIST, RETR, DELE
//! (RFC 1939 §5), TOP and UIDL (RFC 1939 §7). STAT, NOOP and RSET take none
//! and are parsed in `mod.rs`.

use super::{Command, CommandError, arguments, number};

/// `LIST [msg]`.
pub(super) fn list(rest: Option<&str>) -> Result<Command, CommandError> {
    const USAGE: &str = "LIST [msg]";
    Ok(Command::List {
        msg: optional_message(rest, USAGE)?,
    })
}

/// `UIDL [msg]`.
pub(super) fn uidl(rest: Option<&str>) -> Result<Command, CommandError> {
    const USAGE: &str = "UIDL [msg]";
    Ok(Command::Uidl {
        msg: optional_message(rest, USAGE)?,
    })
}

/// `RETR msg`.
pub(super) fn retr(rest: Option<&str>) -> Result<Command, CommandError> {
    Ok(Command::Retr {
        msg: message(rest, "RETR msg")?,
    })
}

/// `DELE msg`.
pub(super) fn dele(rest: Option<&str>) -> Result<Command, CommandError> {
    Ok(Command::Dele {
        msg: message(rest, "DELE msg")?,
    })
}

/// `TOP msg n`. RFC 1939 §7: n is "a non-negative number"; the digits-only
/// syntax refuses a sign.
pub(super) fn top(rest: Option<&str>) -> Result<Command, CommandError> {
    const USAGE: &str = "TOP msg n";
    match arguments(rest, USAGE)?.as_slice() {
        [msg, lines] => Ok(Command::Top {
            msg: number(msg, USAGE)?,
            lines: number(lines, USAGE)?,
        }),
        _ => Err(CommandError::Syntax { usage: USAGE }),
    }
}

fn message(rest: Option<&str>, usage: &'static str) -> Result<u64, CommandError> {
    match arguments(rest, usage)?.as_slice() {
        [msg] => number(msg, usage),
        _ => Err(CommandError::Syntax { usage }),
    }
}

fn optional_message(rest: Option<&str>, usage: &'static str) -> Result<Option<u64>, CommandError> {
    match arguments(rest, usage)?.as_slice() {
        [] => Ok(None),
        [msg] => number(msg, usage).map(Some),
        _ => Err(CommandError::Syntax { usage }),
    }
}
