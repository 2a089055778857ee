//! What the client reads: status lines (RFC 1939 §3), extended response
//! codes (RFC 2449 §8, RFC 3206) and multi-line data blocks.
//!
//! Every fixed text the server sends is a named constant on [`Response`], so
//! no reply is spelled out inline in the state machine and tests can name the
//! reply they expect.

use std::borrow::Cow;
use std::fmt;

/// The status indicator that starts every response line (RFC 1939 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `+OK`: the command succeeded.
    Ok,
    /// `-ERR`: the command failed.
    Err,
}

impl Status {
    /// The indicator as sent on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "+OK",
            Status::Err => "-ERR",
        }
    }
}

/// An extended response code, sent in brackets right after the status
/// indicator (RFC 2449 §8). mailroom announces `RESP-CODES` and
/// `AUTH-RESP-CODE` in CAPA, so clients may act on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespCode {
    /// `[IN-USE]` (RFC 2449 §8.1.1): the maildrop is locked by another
    /// session; the client should not retry at once.
    InUse,
    /// `[LOGIN-DELAY]` (RFC 2449 §8.1.2): the user logs in more often than
    /// the server allows. Not sent by mailroom today.
    LoginDelay,
    /// `[SYS/TEMP]` (RFC 3206 §4): a temporary server-side failure; the
    /// same command may work later.
    SysTemp,
    /// `[SYS/PERM]` (RFC 3206 §4): a permanent server-side failure.
    SysPerm,
    /// `[AUTH]` (RFC 3206 §5): the credentials were not accepted; the client
    /// should ask the user again rather than retry.
    Auth,
}

impl RespCode {
    /// The code as sent on the wire, brackets included.
    pub const fn as_str(self) -> &'static str {
        match self {
            RespCode::InUse => "[IN-USE]",
            RespCode::LoginDelay => "[LOGIN-DELAY]",
            RespCode::SysTemp => "[SYS/TEMP]",
            RespCode::SysPerm => "[SYS/PERM]",
            RespCode::Auth => "[AUTH]",
        }
    }
}

/// One status line: `+OK text` or `-ERR [CODE] text`.
///
/// [`Response::write_to`] guarantees a well-formed line whatever the text
/// holds: control characters become spaces and the line is cut to the 512
/// octets, CRLF included, that RFC 2449 §4 allows a response line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: Status,
    code: Option<RespCode>,
    text: Cow<'static, str>,
}

impl Response {
    /// This error, saying that the session ends for too many errors.
    pub fn closing(&self) -> Response {
        let text = if self.text.is_empty() {
            Cow::Borrowed("too many errors, closing")
        } else {
            Cow::Owned(format!("{}; too many errors, closing", self.text))
        };
        Response {
            status: self.status,
            code: self.code,
            text,
        }
    }

    /// A `+OK` response with fixed text.
    pub const fn ok(text: &'static str) -> Self {
        Response {
            status: Status::Ok,
            code: None,
            text: Cow::Borrowed(text),
        }
    }

    /// An `-ERR` response with fixed text.
    pub const fn err(text: &'static str) -> Self {
        Response {
            status: Status::Err,
            code: None,
            text: Cow::Borrowed(text),
        }
    }

    /// An `-ERR` response with an extended response code.
    pub const fn err_code(code: RespCode, text: &'static str) -> Self {
        Response {
            status: Status::Err,
            code: Some(code),
            text: Cow::Borrowed(text),
        }
    }

    /// A response with text built at run time.
    pub fn new(status: Status, code: Option<RespCode>, text: impl Into<String>) -> Self {
        Response {
            status,
            code,
            text: Cow::Owned(text.into()),
        }
    }

    /// `+OK` or `-ERR`.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The extended response code, if any.
    pub fn code(&self) -> Option<RespCode> {
        self.code
    }

    /// The human-readable text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Appends the response line, CRLF included, to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(self.status.as_str().as_bytes());
        if let Some(code) = self.code {
            out.push(b' ');
            out.extend_from_slice(code.as_str().as_bytes());
        }
        if !self.text.is_empty() {
            out.push(b' ');
            let room = MAX_RESPONSE_LINE - 2 - (out.len() - start);
            let text = truncate(&self.text, room);
            out.extend(
                text.bytes()
                    .map(|b| if b.is_ascii_control() { b' ' } else { b }),
            );
        }
        out.extend_from_slice(b"\r\n");
    }

    // The fixed replies, grouped by where they are sent.

    /// `+OK` alone: NOOP (RFC 1939 §5) and the first line of TOP (§7).
    pub const OK: Response = Response::ok("");
    /// The reply to QUIT in the AUTHORIZATION state (RFC 1939 §4).
    pub const SIGNING_OFF: Response = Response::ok("mailroom POP3 server signing off");
    /// USER accepted. Always sent, whether the user exists or not, so USER
    /// never reveals which names exist.
    pub const USER_ACCEPTED: Response = Response::ok("send PASS");
    /// The first line of the CAPA list (RFC 2449 §5).
    pub const CAPABILITIES_FOLLOW: Response = Response::ok("Capability list follows");
    /// The first line of `AUTH` without a mechanism: the mechanism list.
    pub const MECHANISMS_FOLLOW: Response = Response::ok("List of SASL mechanisms follows");
    /// The first line of UIDL without an argument (RFC 1939 §7).
    pub const UIDL_FOLLOWS: Response = Response::ok("unique-id listing follows");
    /// STLS accepted (RFC 2595 §4); TLS negotiation starts right after.
    pub const BEGIN_TLS: Response = Response::ok("Begin TLS negotiation");

    /// A keyword mailroom does not know.
    pub const UNKNOWN_COMMAND: Response = Response::err("Unknown command");
    /// Control characters or invalid UTF-8 in a command line.
    pub const INVALID_CHARACTERS: Response = Response::err("Invalid characters in command");
    /// A line longer than the limit (RFC 2449 §4: 255 octets with CRLF).
    pub const LINE_TOO_LONG: Response = Response::err("line too long");
    /// A line with a CR or LF that is not part of the final CRLF.
    pub const BARE_LINE_ENDING: Response = Response::err("bare CR or LF in command line");
    /// A transaction command before login.
    pub const NOT_LOGGED_IN: Response = Response::err("Command not valid before login");
    /// An authorization command after login.
    pub const ALREADY_LOGGED_IN: Response = Response::err("Command not valid after login");
    /// PASS that does not follow a USER (RFC 1939 §7).
    pub const USER_FIRST: Response = Response::err("PASS must follow USER");
    /// USER, PASS or AUTH PLAIN on a connection where a password would travel
    /// in clear (DESIGN.md: AUTH only over TLS, except trusted networks).
    pub const TLS_REQUIRED: Response = Response::err("Plaintext authentication requires TLS");
    /// APOP when the server did not offer it (no timestamp in the greeting).
    pub const APOP_UNAVAILABLE: Response = Response::err("APOP not available");
    /// STLS when the server does not offer it.
    pub const STLS_UNAVAILABLE: Response = Response::err("STLS not available");
    /// STLS once TLS is active (RFC 2595 §4).
    pub const TLS_ALREADY_ACTIVE: Response = Response::err("Command not permitted when TLS active");
    /// AUTH with a mechanism other than PLAIN (RFC 5034 §4).
    pub const UNKNOWN_MECHANISM: Response = Response::err("Unrecognized authentication type");
    /// The client answered `*` to a SASL challenge (RFC 5034 §4).
    pub const AUTH_CANCELLED: Response = Response::err("Authentication cancelled");
    /// A SASL response that is not strict base64 (RFC 5034 §4: the server
    /// "MUST reject the AUTH command").
    pub const INVALID_BASE64: Response = Response::err("Invalid base64 data");
    /// A PLAIN message that is not `authzid NUL authcid NUL passwd` (RFC 4616 §2).
    pub const MALFORMED_PLAIN: Response = Response::err("Malformed PLAIN response");
    /// Unknown user, wrong password, or a refused authorization identity:
    /// one reply for all, so a login never tells which was wrong (RFC 3206 §5).
    pub const AUTH_FAILED: Response = Response::err_code(RespCode::Auth, "Authentication failed");
    /// Another session holds the maildrop (RFC 2449 §8.1.1).
    pub const IN_USE: Response = Response::err_code(RespCode::InUse, "Maildrop already locked");
    /// The login could not be completed for a server-side reason (RFC 3206 §4).
    pub const LOGIN_TEMPORARY_FAILURE: Response =
        Response::err_code(RespCode::SysTemp, "Temporary failure, try again later");
    /// A message number that does not exist or is marked deleted (RFC 1939 §5).
    pub const NO_SUCH_MESSAGE: Response = Response::err("no such message");
    /// RETR or TOP could not read the message (RFC 3206 §4).
    pub const RETRIEVE_FAILED: Response =
        Response::err_code(RespCode::SysTemp, "Message unavailable, try again later");
    /// The UPDATE state could not remove every deleted message (RFC 1939 §6).
    pub const UPDATE_FAILED: Response =
        Response::err_code(RespCode::SysTemp, "some deleted messages not removed");
    /// The server is shutting down (see `ServerSession::shutdown`).
    pub const SHUTTING_DOWN: Response =
        Response::err_code(RespCode::SysTemp, "Server shutting down");
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = Vec::new();
        self.write_to(&mut line);
        line.truncate(line.len() - 2);
        f.write_str(&String::from_utf8_lossy(&line))
    }
}

/// Appends one line of a multi-line response, byte-stuffed (RFC 1939 §3:
/// "If any line of the multi-line response begins with the termination
/// octet, the line is 'byte-stuffed'").
pub(crate) fn write_data_line(out: &mut Vec<u8>, line: &str) {
    if line.starts_with('.') {
        out.push(b'.');
    }
    out.extend(
        line.bytes()
            .map(|b| if b.is_ascii_control() { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

/// Appends the line that ends a multi-line response (RFC 1939 §3).
pub(crate) fn write_terminator(out: &mut Vec<u8>) {
    out.extend_from_slice(b".\r\n");
}

/// The longest text prefix of at most `max` bytes that ends on a character
/// boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// RFC 2449 §4: a response line is at most 512 octets, CRLF included.
const MAX_RESPONSE_LINE: usize = 512;

/// Appends `n` in decimal, without the formatting machinery.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimals() {
        for n in [0, 7, 10, 2048, 99_999, u64::MAX] {
            let mut out = b"x".to_vec();
            super::push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }

    use super::*;

    fn wire(response: &Response) -> String {
        let mut out = Vec::new();
        response.write_to(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn status_lines_are_exact() {
        assert_eq!(wire(&Response::OK), "+OK\r\n");
        assert_eq!(wire(&Response::NO_SUCH_MESSAGE), "-ERR no such message\r\n");
        assert_eq!(
            wire(&Response::AUTH_FAILED),
            "-ERR [AUTH] Authentication failed\r\n"
        );
        assert_eq!(
            wire(&Response::IN_USE),
            "-ERR [IN-USE] Maildrop already locked\r\n"
        );
        assert_eq!(
            wire(&Response::new(Status::Ok, None, "2 320")),
            "+OK 2 320\r\n"
        );
        assert_eq!(
            Response::AUTH_FAILED.to_string(),
            "-ERR [AUTH] Authentication failed"
        );
    }

    #[test]
    fn text_cannot_break_the_line() {
        let r = Response::new(Status::Err, None, "a\r\nb\0c");
        assert_eq!(wire(&r), "-ERR a  b c\r\n");
    }

    #[test]
    fn long_text_is_cut_to_512_octets() {
        let r = Response::new(Status::Err, Some(RespCode::SysTemp), "é".repeat(400));
        let line = wire(&r);
        assert!(line.len() <= 512, "{}", line.len());
        assert!(line.len() >= 510);
        assert!(line.ends_with("\r\n"));
    }

    #[test]
    fn data_lines_are_stuffed() {
        let mut out = Vec::new();
        write_data_line(&mut out, ".hidden");
        write_data_line(&mut out, "plain");
        write_terminator(&mut out);
        assert_eq!(out, b"..hidden\r\nplain\r\n.\r\n");
    }
}
