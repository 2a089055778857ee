//! `VRFY` (RFC 5321 §4.1.1.6): `"VRFY" SP String CRLF`; the argument is
//! required.

use super::{Command, CommandError, text_argument};

const USAGE: &str = "VRFY <user name>";

pub(super) fn parse(args: Option<&[u8]>) -> Result<Command, CommandError> {
    let argument = text_argument(args, USAGE)?.ok_or(CommandError::Syntax { usage: USAGE })?;
    Ok(Command::Vrfy {
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
            Ok(Command::Vrfy {
                argument: a.to_string(),
            })
        };
        let table = [
            ("VRFY alice", ok("alice")),
            ("vrfy <alice@example.org>", ok("<alice@example.org>")),
            ("VRFY  Alice Smith ", ok("Alice Smith")),
            ("VRFY", Err(501)),
            ("VRFY   ", Err(501)),
            ("VRFY a\x1bb", Err(501)),
        ];
        for (line, want) in table {
            assert_eq!(code(line), want, "{line:?}");
        }
    }
}
