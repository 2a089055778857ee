//! `MAIL` (RFC 5321 §4.1.1.2): `"MAIL FROM:" Reverse-path [SP
//! Mail-parameters] CRLF`, with the parameters of SIZE (RFC 1870), 8BITMIME
//! (RFC 6152), SMTPUTF8 (RFC 6531), DSN (RFC 3461) and AUTH (RFC 4954 §5).

use mailroom_core::Address;

use super::params::{self, Param};
use super::{Command, CommandError, path, text_argument};

/// A parsed MAIL command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The sender; `None` is the null reverse path `<>` (RFC 5321 §4.5.5).
    pub reverse_path: Option<Address>,
    /// The ESMTP parameters.
    pub params: MailParams,
}

/// The parameters of MAIL FROM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// `SIZE=` (RFC 1870 §6): the client's size estimate, in octets.
    /// Values too large for a `u64` saturate (and are then over any limit).
    pub size: Option<u64>,
    /// `BODY=` (RFC 6152 §2); 7BIT when absent.
    pub body: BodyType,
    /// `SMTPUTF8` (RFC 6531 §3.4): addresses and headers may be UTF-8.
    pub smtputf8: bool,
    /// `RET=` (RFC 3461 §4.3): what a failure DSN returns.
    pub ret: Option<Ret>,
    /// `ENVID=` (RFC 3461 §4.4), xtext-decoded.
    pub envid: Option<String>,
    /// `AUTH=` (RFC 4954 §5), xtext-decoded; `<>` stays `<>`.
    pub auth: Option<String>,
}

/// The message body type declared with `BODY=` (RFC 6152). BINARYMIME (RFC
/// 3030) is not offered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyType {
    /// `BODY=7BIT`, or no BODY parameter.
    #[default]
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
}

/// `RET=` (RFC 3461 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    /// `RET=FULL`: return the whole message in a failure DSN.
    Full,
    /// `RET=HDRS`: return only the headers.
    Headers,
}

pub(super) fn parse(args: Option<&[u8]>) -> Result<Command, CommandError> {
    let syntax = CommandError::Syntax { usage: USAGE };
    let text = text_argument(args, USAGE)?.ok_or(syntax.clone())?;
    let rest = match text.get(..5) {
        Some(prefix) if prefix.eq_ignore_ascii_case("FROM:") => text.get(5..).unwrap_or_default(),
        _ => return Err(syntax),
    };
    // Many clients send "MAIL FROM: <a@b>": tolerate one space.
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let (inside, params_text) = path::split(rest).ok_or(CommandError::BadSender)?;
    let params = mail_params(&params::split(params_text, USAGE)?)?;
    let reverse_path = if inside.is_empty() {
        None
    } else {
        let mailbox = path::strip_source_route(inside).ok_or(CommandError::BadSender)?;
        let address = Address::parse(mailbox, true).map_err(|_| CommandError::BadSender)?;
        // RFC 6531 §3.5: a UTF-8 address needs the SMTPUTF8 parameter.
        if address.is_utf8() && !params.smtputf8 {
            return Err(CommandError::Utf8Required);
        }
        Some(address)
    };
    Ok(Command::Mail(Mail {
        reverse_path,
        params,
    }))
}

fn mail_params(list: &[Param<'_>]) -> Result<MailParams, CommandError> {
    let syntax = || CommandError::Syntax { usage: USAGE };
    let mut out = MailParams::default();
    for p in list {
        let key = p.keyword.to_ascii_uppercase();
        match (key.as_str(), p.value) {
            ("SIZE", Some(v)) if v.bytes().all(|b| b.is_ascii_digit()) => {
                out.size = Some(v.parse().unwrap_or(u64::MAX));
            }
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => out.body = BodyType::SevenBit,
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => {
                out.body = BodyType::EightBitMime
            }
            // RFC 3030 §3: we do not advertise BINARYMIME.
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("BINARYMIME") => {
                return Err(CommandError::UnknownParameter(format!("BODY={v}")));
            }
            ("SMTPUTF8", None) => out.smtputf8 = true,
            ("RET", Some(v)) if v.eq_ignore_ascii_case("FULL") => out.ret = Some(Ret::Full),
            ("RET", Some(v)) if v.eq_ignore_ascii_case("HDRS") => out.ret = Some(Ret::Headers),
            // RFC 3461 §4.4: "the ENVID esmtp-value MUST be 100 characters or less".
            ("ENVID", Some(v)) if v.len() <= 100 => {
                out.envid = Some(params::xtext_decode(v).ok_or_else(syntax)?)
            }
            ("AUTH", Some("<>")) => out.auth = Some("<>".to_string()),
            ("AUTH", Some(v)) => out.auth = Some(params::xtext_decode(v).ok_or_else(syntax)?),
            ("SIZE" | "BODY" | "SMTPUTF8" | "RET" | "ENVID" | "AUTH", _) => return Err(syntax()),
            _ => return Err(CommandError::UnknownParameter(p.keyword.to_string())),
        }
    }
    Ok(out)
}

const USAGE: &str = "MAIL FROM:<address> [parameters]";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::code;
    use super::*;

    fn mail(addr: Option<&str>, params: MailParams) -> Result<Command, u16> {
        let reverse_path = addr.map(|a| Address::parse(a, true).unwrap());
        Ok(Command::Mail(Mail {
            reverse_path,
            params,
        }))
    }

    #[test]
    fn paths() {
        let d = MailParams::default;
        let table = [
            (
                "MAIL FROM:<a@example.org>",
                mail(Some("a@example.org"), d()),
            ),
            (
                "mail from:<a@example.org>",
                mail(Some("a@example.org"), d()),
            ),
            (
                "MAIL FROM: <a@example.org>",
                mail(Some("a@example.org"), d()),
            ),
            ("MAIL FROM:<>", mail(None, d())),
            (
                "MAIL FROM:<@relay.example:a@example.org>",
                mail(Some("a@example.org"), d()),
            ),
            (
                "MAIL FROM:<@r1.example,@r2.example:a@example.org>",
                mail(Some("a@example.org"), d()),
            ),
            (
                "MAIL FROM:<\"john doe\"@example.org>",
                mail(Some("\"john doe\"@example.org"), d()),
            ),
            (
                "MAIL FROM:<a@[192.0.2.1]>",
                mail(Some("a@[192.0.2.1]"), d()),
            ),
            (
                "MAIL FROM:<a@example.org>   ",
                mail(Some("a@example.org"), d()),
            ),
            ("MAIL", Err(501)),
            ("MAIL TO:<a@b.c>", Err(501)),
            ("MAIL FROM <a@b.c>", Err(501)),
            ("MAIL FROM:  <a@b.c>", Err(501)),
            ("MAIL FROM:a@b.c", Err(501)),
            ("MAIL FROM:<a@b.c", Err(501)),
            ("MAIL FROM:<a b@c.d>", Err(501)),
            ("MAIL FROM:<postmaster>", Err(501)),
            ("MAIL FROM:<a@b.c>x", Err(501)),
            ("MAIL FROM:<@r1.example:>", Err(501)),
            ("MAIL FROM:<j\u{fc}rgen@example.de>", Err(553)),
            ("MAIL FROM:<a@b.c> SIZE=1 SIZE=2", Err(501)),
        ];
        for (line, want) in table {
            assert_eq!(code(line), want, "{line:?}");
        }
        // The enhanced codes tell sender from recipient problems.
        let reply = Command::parse(b"MAIL FROM:<a b@c.d>").map_err(|e| e.reply().to_bytes());
        assert_eq!(
            reply,
            Err(b"501 5.1.7 Bad sender address syntax\r\n".to_vec())
        );
    }

    #[test]
    fn parameters() {
        let with = |f: fn(&mut MailParams)| {
            let mut p = MailParams::default();
            f(&mut p);
            mail(Some("a@example.org"), p)
        };
        let table = [
            (
                "MAIL FROM:<a@example.org> SIZE=1000",
                with(|p| p.size = Some(1000)),
            ),
            (
                "MAIL FROM:<a@example.org> size=0",
                with(|p| p.size = Some(0)),
            ),
            (
                "MAIL FROM:<a@example.org> SIZE=99999999999999999999999",
                with(|p| p.size = Some(u64::MAX)),
            ),
            (
                "MAIL FROM:<a@example.org> BODY=8BITMIME",
                with(|p| p.body = BodyType::EightBitMime),
            ),
            (
                "MAIL FROM:<a@example.org> body=7bit",
                with(|p| p.body = BodyType::SevenBit),
            ),
            (
                "MAIL FROM:<a@example.org> SMTPUTF8",
                with(|p| p.smtputf8 = true),
            ),
            (
                "MAIL FROM:<a@example.org> RET=HDRS",
                with(|p| p.ret = Some(Ret::Headers)),
            ),
            (
                "MAIL FROM:<a@example.org> RET=full",
                with(|p| p.ret = Some(Ret::Full)),
            ),
            (
                "MAIL FROM:<a@example.org> ENVID=QQ+2B1",
                with(|p| p.envid = Some("QQ+1".into())),
            ),
            (
                "MAIL FROM:<a@example.org> AUTH=<>",
                with(|p| p.auth = Some("<>".into())),
            ),
            (
                "MAIL FROM:<a@example.org> AUTH=e+2Bf@x.org",
                with(|p| p.auth = Some("e+f@x.org".into())),
            ),
            (
                "MAIL FROM:<a@example.org> SIZE=12 BODY=8BITMIME",
                with(|p| {
                    p.size = Some(12);
                    p.body = BodyType::EightBitMime;
                }),
            ),
            ("MAIL FROM:<a@example.org> SIZE", Err(501)),
            ("MAIL FROM:<a@example.org> SIZE=-1", Err(501)),
            ("MAIL FROM:<a@example.org> SIZE=1k", Err(501)),
            ("MAIL FROM:<a@example.org> BODY=9BIT", Err(501)),
            ("MAIL FROM:<a@example.org> BODY=BINARYMIME", Err(555)),
            ("MAIL FROM:<a@example.org> SMTPUTF8=yes", Err(501)),
            ("MAIL FROM:<a@example.org> RET=SOME", Err(501)),
            ("MAIL FROM:<a@example.org> ENVID=a+zz", Err(501)),
            ("MAIL FROM:<a@example.org> X-UNKNOWN=1", Err(555)),
            ("MAIL FROM:<a@example.org> NOTIFY=NEVER", Err(555)),
        ];
        for (line, want) in table {
            assert_eq!(code(line), want, "{line:?}");
        }
        let long_envid = format!("MAIL FROM:<a@example.org> ENVID={}", "x".repeat(101));
        assert_eq!(code(&long_envid), Err(501));
    }

    #[test]
    fn utf8_addresses_need_smtputf8() {
        let line = "MAIL FROM:<j\u{fc}rgen@b\u{fc}cher.example> SMTPUTF8";
        match code(line) {
            Ok(Command::Mail(m)) => {
                assert!(m.params.smtputf8);
                assert_eq!(
                    m.reverse_path.map(|a| a.to_string()).as_deref(),
                    Some("j\u{fc}rgen@b\u{fc}cher.example")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(code("MAIL FROM:<a@b\u{fc}cher.example>"), Err(553));
        assert_eq!(
            Command::parse("MAIL FROM:<a@b\u{fc}cher.example>".as_bytes())
                .map_err(|e| e.reply().to_bytes()),
            Err(b"553 5.6.7 SMTPUTF8 required for this address\r\n".to_vec())
        );
    }
}
