//! `EXPN` (RFC 5321 §4.1.1.7): `"EXPN" SP String CRLF`; the argument is
//! required.

use super::{Command, CommandError, text_argument};

const USAGE: &str = "EXPN <list name>";

pub(super) fn parse(args: Option<&[u8]>) -> Result<Command, CommandError> {
    let argument = text_argument(args, USAGE)?.ok_or(CommandError::Syntax { usage: USAGE })?;
    Ok(Command::Expn {
        argument: argument.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::code;
    use super::*;

    #[test]
    fn table() {
        let ok = |a: &str| {
            Ok(Command::Expn {
                argument: a.to_string(),
            })
        };
        let table = [
            ("EXPN alice", ok("alice")),
            ("expn <alice@example.org>", ok("<alice@example.org>")),
            ("EXPN  Alice Smith ", ok("Alice Smith")),
            ("EXPN", Err(501)),
            ("EXPN   ", Err(501)),
            ("EXPN a\x1bb", Err(501)),
        ];
        for (line, want) in table {
            assert_eq!(code(line), want, "{line:?}");
        }
    }
}
