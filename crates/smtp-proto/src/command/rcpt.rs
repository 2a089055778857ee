//! `RCPT` (RFC 5321 §4.1.1.3): `"RCPT TO:" ( "<Postmaster@" Domain ">" /
//! "<Postmaster>" / Forward-path ) [SP Rcpt-parameters] CRLF`, with the DSN
//! parameters NOTIFY and ORCPT (RFC 3461 §4.1, §4.2).

use mailroom_core::Address;

use super::params::{self, Param};
use super::{Command, CommandError, path, text_argument};

/// Where RCPT TO points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardPath {
    /// `<Postmaster>` without a domain (any case), which every server must
    /// accept (RFC 5321 §4.1.1.3, §4.5.1).
    Postmaster,
    /// An ordinary mailbox. It may need SMTPUTF8 ([`Address::is_utf8`]);
    /// the session checks that against the transaction.
    Mailbox(Address),
}

/// The parameters of RCPT TO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// `NOTIFY=` (RFC 3461 §4.1): `[Never]`, or some of Success, Failure,
    /// Delay, in the order given.
    pub notify: Option<Vec<Notify>>,
    /// `ORCPT=` (RFC 3461 §4.2) as `addr-type;address` with the xtext
    /// decoded, e.g. `rfc822;user+tag@example.org`.
    pub orcpt: Option<String>,
}

/// One `NOTIFY=` condition (RFC 3461 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    /// Never send a DSN (must stand alone).
    Never,
    /// DSN on successful delivery.
    Success,
    /// DSN on failure.
    Failure,
    /// DSN on delay.
    Delay,
}

/// An accepted (or proposed) recipient: forward path and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// Where the mail goes.
    pub path: ForwardPath,
    /// The RCPT parameters.
    pub params: RcptParams,
}

pub(super) fn parse(args: Option<&[u8]>) -> Result<Command, CommandError> {
    let syntax = CommandError::Syntax { usage: USAGE };
    let text = text_argument(args, USAGE)?.ok_or(syntax.clone())?;
    let rest = match text.get(..3) {
        Some(prefix) if prefix.eq_ignore_ascii_case("TO:") => text.get(3..).unwrap_or_default(),
        _ => return Err(syntax),
    };
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let (inside, params_text) = path::split(rest).ok_or(CommandError::BadRecipient)?;
    let params = rcpt_params(&params::split(params_text, USAGE)?)?;
    let path = if inside.eq_ignore_ascii_case("postmaster") {
        ForwardPath::Postmaster
    } else {
        // The null path `<>` is not a forward path.
        let mailbox = path::strip_source_route(inside).ok_or(CommandError::BadRecipient)?;
        // Parsed permissively; the session refuses UTF-8 without SMTPUTF8
        // (RFC 6531 §3.5), which it knows from the transaction.
        ForwardPath::Mailbox(Address::parse(mailbox, true).map_err(|_| CommandError::BadRecipient)?)
    };
    Ok(Command::Rcpt(Recipient { path, params }))
}

fn rcpt_params(list: &[Param<'_>]) -> Result<RcptParams, CommandError> {
    let syntax = || CommandError::Syntax { usage: USAGE };
    let mut out = RcptParams::default();
    for p in list {
        let key = p.keyword.to_ascii_uppercase();
        match (key.as_str(), p.value) {
            ("NOTIFY", Some(v)) => out.notify = Some(notify(v).ok_or_else(syntax)?),
            ("ORCPT", Some(v)) => out.orcpt = Some(orcpt(v).ok_or_else(syntax)?),
            ("NOTIFY" | "ORCPT", None) => return Err(syntax()),
            _ => return Err(CommandError::UnknownParameter(p.keyword.to_string())),
        }
    }
    Ok(out)
}

/// RFC 3461 §4.1: `"NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" )`.
fn notify(v: &str) -> Option<Vec<Notify>> {
    let mut out = Vec::new();
    for item in v.split(',') {
        let n = match item.to_ascii_uppercase().as_str() {
            "NEVER" => Notify::Never,
            "SUCCESS" => Notify::Success,
            "FAILURE" => Notify::Failure,
            "DELAY" => Notify::Delay,
            _ => return None,
        };
        if out.contains(&n) {
            return None;
        }
        out.push(n);
    }
    // NEVER must stand alone.
    (out.len() == 1 || !out.contains(&Notify::Never)).then_some(out)
}

/// RFC 3461 §4.2: `addr-type ";" xtext`.
fn orcpt(v: &str) -> Option<String> {
    let (addr_type, xtext) = v.split_once(';')?;
    let type_ok = !addr_type.is_empty()
        && addr_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !type_ok || xtext.is_empty() {
        return None;
    }
    Some(format!("{addr_type};{}", params::xtext_decode(xtext)?))
}

const USAGE: &str = "RCPT TO:<address> [parameters]";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::tests::code;
    use super::*;

    fn rcpt(addr: &str, params: RcptParams) -> Result<Command, u16> {
        let path = ForwardPath::Mailbox(Address::parse(addr, true).unwrap());
        Ok(Command::Rcpt(Recipient { path, params }))
    }

    #[test]
    fn paths() {
        let d = RcptParams::default;
        let pm = Ok(Command::Rcpt(Recipient {
            path: ForwardPath::Postmaster,
            params: d(),
        }));
        let table = [
            ("RCPT TO:<b@example.org>", rcpt("b@example.org", d())),
            ("rcpt to:<b@example.org>", rcpt("b@example.org", d())),
            ("RCPT TO: <b@example.org>", rcpt("b@example.org", d())),
            (
                "RCPT TO:<@hop.example:b@example.org>",
                rcpt("b@example.org", d()),
            ),
            ("RCPT TO:<Postmaster>", pm.clone()),
            ("RCPT TO:<postMASTER>", pm),
            (
                "RCPT TO:<postmaster@example.org>",
                rcpt("postmaster@example.org", d()),
            ),
            (
                "RCPT TO:<j\u{fc}rgen@example.de>",
                rcpt("j\u{fc}rgen@example.de", d()),
            ),
            ("RCPT TO:<>", Err(501)),
            ("RCPT TO:<bob>", Err(501)),
            ("RCPT TO:b@example.org", Err(501)),
            ("RCPT FROM:<b@example.org>", Err(501)),
            ("RCPT", Err(501)),
            ("RCPT TO:<b@example.org> SIZE=10", Err(555)),
        ];
        for (line, want) in table {
            assert_eq!(code(line), want, "{line:?}");
        }
        let reply = Command::parse(b"RCPT TO:<>").map_err(|e| e.reply().to_bytes());
        assert_eq!(
            reply,
            Err(b"501 5.1.3 Bad recipient address syntax\r\n".to_vec())
        );
    }

    #[test]
    fn dsn_parameters() {
        let with = |notify: Option<Vec<Notify>>, orcpt: Option<&str>| {
            rcpt(
                "b@example.org",
                RcptParams {
                    notify,
                    orcpt: orcpt.map(str::to_string),
                },
            )
        };
        use Notify::*;
        let table = [
            (
                "RCPT TO:<b@example.org> NOTIFY=NEVER",
                with(Some(vec![Never]), None),
            ),
            (
                "RCPT TO:<b@example.org> notify=success,delay",
                with(Some(vec![Success, Delay]), None),
            ),
            (
                "RCPT TO:<b@example.org> NOTIFY=FAILURE,SUCCESS,DELAY",
                with(Some(vec![Failure, Success, Delay]), None),
            ),
            (
                "RCPT TO:<b@example.org> ORCPT=rfc822;b+2Btag@example.org",
                with(None, Some("rfc822;b+tag@example.org")),
            ),
            (
                "RCPT TO:<b@example.org> NOTIFY=DELAY ORCPT=rfc822;b@example.org",
                with(Some(vec![Delay]), Some("rfc822;b@example.org")),
            ),
            ("RCPT TO:<b@example.org> NOTIFY=NEVER,SUCCESS", Err(501)),
            ("RCPT TO:<b@example.org> NOTIFY=SUCCESS,SUCCESS", Err(501)),
            ("RCPT TO:<b@example.org> NOTIFY=", Err(501)),
            ("RCPT TO:<b@example.org> NOTIFY=SOMETIMES", Err(501)),
            ("RCPT TO:<b@example.org> NOTIFY", Err(501)),
            ("RCPT TO:<b@example.org> ORCPT=b@example.org", Err(501)),
            ("RCPT TO:<b@example.org> ORCPT=;b@example.org", Err(501)),
            ("RCPT TO:<b@example.org> ORCPT=rfc822;", Err(501)),
            ("RCPT TO:<b@example.org> ORCPT=rfc822;a+G0", Err(501)),
            ("RCPT TO:<b@example.org> X=1", Err(555)),
        ];
        for (line, want) in table {
            assert_eq!(code(line), want, "{line:?}");
        }
    }
}
