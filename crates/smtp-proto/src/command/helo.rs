//! `HELO` (RFC 5321 §4.1.1.1): `"HELO" SP Domain CRLF`.

use super::{Command, CommandError, text_argument};

const USAGE: &str = "HELO <domain>";

pub(super) fn parse(args: Option<&[u8]>) -> Result<Command, CommandError> {
    Ok(Command::Helo {
        domain: client_name(args, USAGE)?,
    })
}

/// The client's name from HELO/EHLO: the first token of the argument.
///
/// We accept any non-empty token, not only RFC 5321 `Domain /
/// address-literal`: clients send odd names (bare host names, underscores)
/// and rejecting them gains nothing. Control characters are refused because
/// the name ends up in a `Received:` header.
pub(super) fn client_name(
    args: Option<&[u8]>,
    usage: &'static str,
) -> Result<String, CommandError> {
    let text = text_argument(args, usage)?.ok_or(CommandError::Syntax { usage })?;
    let token = text.split([' ', '\t']).next().unwrap_or_default();
    if token.is_empty() {
        return Err(CommandError::Syntax { usage });
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::tests::code;
    use super::*;

    #[test]
    fn table() {
        let helo = |d: &str| {
            Ok(Command::Helo {
                domain: d.to_string(),
            })
        };
        let table = [
            ("HELO client.example", helo("client.example")),
            ("helo [192.0.2.1]", helo("[192.0.2.1]")),
            ("HELO odd_name", helo("odd_name")),
            ("HELO name trailing words", helo("name")),
            ("HELO  spaced", helo("spaced")),
            ("HELO", Err(501)),
            ("HELO ", Err(501)),
            ("HELO a\x7fb", Err(501)),
        ];
        for (line, want) in table {
            assert_eq!(code(line), want, "{line:?}");
        }
    }
}
