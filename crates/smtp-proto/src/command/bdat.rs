//! `BDAT` (RFC 3030 §2): `"BDAT" SP chunk-size [ SP end-marker ] CRLF`,
//! `chunk-size = 1*DIGIT`, `end-marker = "LAST"`. Exactly chunk-size octets
//! follow the command line.

use super::{Command, CommandError, text_argument};

/// A parsed BDAT command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bdat {
    /// How many octets follow the command line.
    pub size: u64,
    /// True for the last chunk of the message.
    pub last: bool,
}

pub(super) fn parse(args: Option<&[u8]>) -> Result<Command, CommandError> {
    let syntax = || CommandError::Syntax { usage: USAGE };
    let text = text_argument(args, USAGE)?.ok_or_else(syntax)?;
    let mut words = text.split(' ').filter(|w| !w.is_empty());
    let size = words.next().ok_or_else(syntax)?;
    if !size.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax());
    }
    // A size we cannot represent cannot be read exactly: refuse it.
    let size = size.parse::<u64>().map_err(|_| syntax())?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(syntax()),
    };
    if words.next().is_some() {
        return Err(syntax());
    }
    Ok(Command::Bdat(Bdat { size, last }))
}

const USAGE: &str = "BDAT <size> [LAST]";

#[cfg(test)]
mod tests {
    use super::super::tests::code;
    use super::*;

    #[test]
    fn table() {
        let bdat = |size, last| Ok(Command::Bdat(Bdat { size, last }));
        let table = [
            ("BDAT 0 LAST", bdat(0, true)),
            ("BDAT 100", bdat(100, false)),
            ("bdat 100 last", bdat(100, true)),
            ("BDAT 007", bdat(7, false)),
            ("BDAT 18446744073709551615", bdat(u64::MAX, false)),
            ("BDAT 18446744073709551616", Err(501)),
            ("BDAT", Err(501)),
            ("BDAT LAST", Err(501)),
            ("BDAT -1", Err(501)),
            ("BDAT +1", Err(501)),
            ("BDAT 1 FIRST", Err(501)),
            ("BDAT 1 LAST x", Err(501)),
        ];
        for (line, want) in table {
            assert_eq!(code(line), want, "{line:?}");
        }
    }
}
