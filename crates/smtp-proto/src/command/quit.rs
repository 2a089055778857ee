//! `QUIT` (RFC 5321 §4.1.1.10): `"QUIT" CRLF`, no argument.

use super::{Command, CommandError, no_argument};

const USAGE: &str = "QUIT";

pub(super) fn parse(args: Option<&[u8]>) -> Result<Command, CommandError> {
    no_argument(args, USAGE)?;
    Ok(Command::Quit)
}

#[cfg(test)]
mod tests {
    use super::super::tests::code;
    use super::*;

    #[test]
    fn table() {
        let table = [
            ("QUIT", Ok(Command::Quit)),
            ("quit", Ok(Command::Quit)),
            ("QUIT ", Ok(Command::Quit)),
            ("QUIT x", Err(501)),
            ("QUIT  :", Err(501)),
        ];
        for (line, want) in table {
            assert_eq!(code(line), want, "{line:?}");
        }
    }
}
