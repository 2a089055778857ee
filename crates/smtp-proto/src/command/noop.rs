//! `NOOP` (RFC 5321 §4.1.1.9): `"NOOP" [ SP String ] CRLF`; the argument
//! "has no effect", so any bytes are accepted and ignored.

use super::{Command, CommandError};

pub(super) fn parse(_args: Option<&[u8]>) -> Result<Command, CommandError> {
    Ok(Command::Noop)
}

#[cfg(test)]
mod tests {
    use super::super::tests::code;
    use super::*;

    #[test]
    fn table() {
        let table = [
            ("NOOP", Ok(Command::Noop)),
            ("noop anything at all", Ok(Command::Noop)),
            ("NOOP :-)", Ok(Command::Noop)),
        ];
        for (line, want) in table {
            assert_eq!(code(line), want, "{line:?}");
        }
    }
}
