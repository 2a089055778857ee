//! `RSET` (RFC 5321 §4.1.1.5): `"RSET" CRLF`, no argument.

use super::{Command, CommandError, no_argument};

const USAGE: &str = "RSET";

pub(super) fn parse(args: Option<&[u8]>) -> Result<Command, CommandError> {
    no_argument(args, USAGE)?;
    Ok(Command::Rset)
}

#[cfg(test)]
mod tests {
    use super::super::tests::code;
    use super::*;

    #[test]
    fn table() {
        let table = [
            ("RSET", Ok(Command::Rset)),
            ("rset", Ok(Command::Rset)),
            ("RSET ", Ok(Command::Rset)),
            ("RSET x", Err(501)),
            ("RSET  :", Err(501)),
        ];
        for (line, want) in table {
            assert_eq!(code(line), want, "{line:?}");
        }
    }
}
