//! `STARTTLS` (RFC 3207 §4): `"STARTTLS" CRLF`, no argument.

use super::{Command, CommandError, no_argument};

const USAGE: &str = "STARTTLS";

pub(super) fn parse(args: Option<&[u8]>) -> Result<Command, CommandError> {
    no_argument(args, USAGE)?;
    Ok(Command::StartTls)
}

#[cfg(test)]
mod tests {
    use super::super::tests::code;
    use super::*;

    #[test]
    fn table() {
        let table = [
            ("STARTTLS", Ok(Command::StartTls)),
            ("starttls", Ok(Command::StartTls)),
            ("STARTTLS ", Ok(Command::StartTls)),
            ("STARTTLS x", Err(501)),
            ("STARTTLS  :", Err(501)),
        ];
        for (line, want) in table {
            assert_eq!(code(line), want, "{line:?}");
        }
    }
}
