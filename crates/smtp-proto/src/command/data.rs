//! `DATA` (RFC 5321 §4.1.1.4): `"DATA" CRLF`, no argument.

use super::{Command, CommandError, no_argument};

const USAGE: &str = "DATA";

pub(super) fn parse(args: Option<&[u8]>) -> Result<Command, CommandError> {
    no_argument(args, USAGE)?;
    Ok(Command::Data)
}

#[cfg(test)]
mod tests {
    use super::super::tests::code;
    use super::*;

    #[test]
    fn table() {
        let table = [
            ("DATA", Ok(Command::Data)),
            ("data", Ok(Command::Data)),
            ("DATA ", Ok(Command::Data)),
            ("DATA x", Err(501)),
            ("DATA  :", Err(501)),
        ];
        for (line, want) in table {
            assert_eq!(code(line), want, "{line:?}");
        }
    }
}
