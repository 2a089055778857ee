//! `EHLO` (RFC 5321 §4.1.1.1): `"EHLO" SP ( Domain / address-literal ) CRLF`.

use super::{Command, CommandError, helo::client_name};

const USAGE: &str = "EHLO <domain>";

pub(super) fn parse(args: Option<&[u8]>) -> Result<Command, CommandError> {
    Ok(Command::Ehlo {
        domain: client_name(args, USAGE)?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::code;
    use super::*;

    #[test]
    fn table() {
        let ehlo = |d: &str| {
            Ok(Command::Ehlo {
                domain: d.to_string(),
            })
        };
        let table = [
            ("EHLO client.example", ehlo("client.example")),
            ("ehlo [IPv6:::1]", ehlo("[IPv6:::1]")),
            ("EhLo localhost", ehlo("localhost")),
            ("EHLO", Err(501)),
            ("EHLO   ", Err(501)),
            ("EHLO \u{e9}t\u{e9}.example", ehlo("\u{e9}t\u{e9}.example")),
        ];
        for (line, want) in table {
            assert_eq!(code(line), want, "{line:?}");
        }
        assert_eq!(
            Command::parse(b"EHLO").map_err(|e| e.reply().to_bytes()),
            Err(b"501 5.5.4 Syntax: EHLO <domain>\r\n".to_vec())
        );
    }
}
