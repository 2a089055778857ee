//! `HELP` (RFC 5321 §4.1.1.8): `"HELP" [ SP String ] CRLF`.

use super::{Command, CommandError, text_argument};

const USAGE: &str = "HELP [topic]";

pub(super) fn parse(args: Option<&[u8]>) -> Result<Command, CommandError> {
    let topic = text_argument(args, USAGE)?.map(str::to_string);
    Ok(Command::Help { topic })
}

#[cfg(test)]
mod tests {
    use super::super::tests::code;
    use super::*;

    #[test]
    fn table() {
        let table = [
            ("HELP", Ok(Command::Help { topic: None })),
            ("help ", Ok(Command::Help { topic: None })),
            (
                "HELP MAIL",
                Ok(Command::Help {
                    topic: Some("MAIL".to_string()),
                }),
            ),
            ("HELP a\x00", Err(501)),
        ];
        for (line, want) in table {
            assert_eq!(code(line), want, "{line:?}");
        }
    }
}
