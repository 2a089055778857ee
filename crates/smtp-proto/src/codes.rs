//! Every reply mailroom sends, by name (RFC 5321 §4.2.2 reply codes,
//! RFC 3463 enhanced status codes).
//!
//! Driver code never writes a bare number: it calls one of these. Texts are
//! short and generic; they never name files, settings or which check failed.
//! The greeting, HELO/EHLO replies (RFC 2034 §3) and the 334/354
//! intermediate replies carry no enhanced code; every other reply does.

use crate::reply::{EnhancedCode, Reply};

// ---------------------------------------------------------------- greeting

/// `220 <host> ESMTP mailroom ready` (RFC 5321 §4.3.1; no enhanced code).
pub fn greeting(host: &str) -> Reply {
    Reply::new(220, None, format!("{host} ESMTP mailroom ready"))
}

/// `250 <host>`: the reply to HELO (RFC 5321 §4.1.1.1).
pub fn helo_ok(host: &str) -> Reply {
    Reply::new(250, None, host)
}

/// The multi-line reply to EHLO: the host name, then one extension keyword
/// (with its parameters) per line (RFC 5321 §4.1.1.1).
pub fn ehlo_ok(host: &str, extensions: Vec<String>) -> Reply {
    let mut lines = Vec::with_capacity(extensions.len() + 1);
    lines.push(host.to_string());
    lines.extend(extensions);
    Reply::multiline(250, None, lines)
}

// ---------------------------------------------------------------- 2xx / 3xx

/// `250 2.0.0 Ok`: RSET, NOOP, and any other plain success.
pub fn ok() -> Reply {
    Reply::new(250, Some(OK), "Ok")
}

/// `250 2.1.0 Ok`: the default reply accepting MAIL FROM.
pub fn sender_ok() -> Reply {
    Reply::new(250, Some(SENDER_OK), "Ok")
}

/// `250 2.1.5 Ok`: the default reply accepting RCPT TO.
pub fn recipient_ok() -> Reply {
    Reply::new(250, Some(RECIPIENT_OK), "Ok")
}

/// `250 2.0.0 Ok: queued as <id>`: the message is on stable storage.
pub fn message_accepted(queue_id: &str) -> Reply {
    Reply::new(250, Some(OK), format!("Ok: queued as {queue_id}"))
}

/// `250 2.0.0 <n> octets received`: a non-last BDAT chunk (RFC 3030 §2).
pub fn chunk_received(octets: u64) -> Reply {
    Reply::new(250, Some(OK), format!("{octets} octets received"))
}

/// `250 2.1.5 <mailbox>`: VRFY found exactly this mailbox (RFC 5321 §3.5.1).
pub fn vrfy_ok(mailbox: &str) -> Reply {
    Reply::new(250, Some(RECIPIENT_OK), mailbox)
}

/// `250-2.1.5 …`: EXPN's list, one mailbox per line (RFC 5321 §3.5.2).
pub fn expn_list(mailboxes: Vec<String>) -> Reply {
    Reply::multiline(250, Some(RECIPIENT_OK), mailboxes)
}

/// `252 2.5.0 Cannot VRFY user, but will accept message and attempt
/// delivery` (RFC 5321 §3.5.3): VRFY without revealing anything.
pub fn vrfy_cannot_verify() -> Reply {
    Reply::new(
        252,
        Some(EnhancedCode(2, 5, 0)),
        "Cannot VRFY user, but will accept message and attempt delivery",
    )
}

/// `214 2.0.0 …`: the HELP text (RFC 5321 §4.1.1.8).
pub fn help() -> Reply {
    Reply::multiline(
        214,
        Some(OK),
        vec![
            "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY EXPN STARTTLS AUTH"
                .to_string(),
            "See RFC 5321".to_string(),
        ],
    )
}

/// `220 2.0.0 Ready to start TLS` (RFC 3207 §4).
pub fn ready_to_start_tls() -> Reply {
    Reply::new(220, Some(OK), "Ready to start TLS")
}

/// `221 2.0.0 <host> closing connection`: the reply to QUIT.
pub fn closing(host: &str) -> Reply {
    Reply::new(221, Some(OK), format!("{host} closing connection"))
}

/// `235 2.7.0 Authentication successful` (RFC 4954 §6).
pub fn auth_succeeded() -> Reply {
    Reply::new(
        235,
        Some(EnhancedCode(2, 7, 0)),
        "Authentication successful",
    )
}

/// `334 <challenge>`: a SASL server challenge, base64 (RFC 4954 §4; no
/// enhanced code on intermediate replies).
pub fn auth_challenge(challenge_base64: &str) -> Reply {
    Reply::new(334, None, challenge_base64)
}

/// `354 End data with <CR><LF>.<CR><LF>` (RFC 5321 §4.1.1.4).
pub fn start_data() -> Reply {
    Reply::new(354, None, "End data with <CR><LF>.<CR><LF>")
}

// ---------------------------------------------------------------- 4xx

/// `421 4.3.2 <host> Service shutting down`: graceful stop.
pub fn service_shutting_down(host: &str) -> Reply {
    Reply::new(
        421,
        Some(EnhancedCode(4, 3, 2)),
        format!("{host} Service shutting down, closing connection"),
    )
}

/// `421 4.7.0 <host> Too many connections, try again later`.
pub fn too_many_connections(host: &str) -> Reply {
    Reply::new(
        421,
        Some(SECURITY),
        format!("{host} Too many connections, try again later"),
    )
}

/// `421 4.4.2 <host> Timeout exceeded, closing connection` (RFC 5321
/// §4.5.3.2).
pub fn timeout(host: &str) -> Reply {
    Reply::new(
        421,
        Some(EnhancedCode(4, 4, 2)),
        format!("{host} Timeout exceeded, closing connection"),
    )
}

/// `421 4.7.0 <host> Too many errors, closing connection`: the client hit
/// `max_errors`.
pub fn too_many_errors(host: &str) -> Reply {
    Reply::new(
        421,
        Some(SECURITY),
        format!("{host} Too many errors, closing connection"),
    )
}

/// `451 4.3.0 Local error in processing`: a temporary failure on our side.
pub fn local_error() -> Reply {
    Reply::new(
        451,
        Some(EnhancedCode(4, 3, 0)),
        "Local error in processing",
    )
}

/// `452 4.3.1 Insufficient system storage`.
pub fn no_space() -> Reply {
    Reply::new(
        452,
        Some(EnhancedCode(4, 3, 1)),
        "Insufficient system storage",
    )
}

/// `452 4.2.2 Mailbox full`: a temporary over-quota condition.
pub fn quota_exceeded_temporary() -> Reply {
    Reply::new(452, Some(EnhancedCode(4, 2, 2)), "Mailbox full")
}

/// `452 4.5.3 Too many recipients` (RFC 5321 §4.5.3.1.10: the client
/// retries the rest later).
pub fn too_many_recipients() -> Reply {
    Reply::new(452, Some(EnhancedCode(4, 5, 3)), "Too many recipients")
}

/// `454 4.7.0 TLS not available due to temporary reason` (RFC 3207 §4).
pub fn tls_not_available() -> Reply {
    Reply::new(
        454,
        Some(SECURITY),
        "TLS not available due to temporary reason",
    )
}

/// `454 4.7.0 Temporary authentication failure` (RFC 4954 §6).
pub fn auth_temporary_failure() -> Reply {
    Reply::new(454, Some(SECURITY), "Temporary authentication failure")
}

// ---------------------------------------------------------------- 5xx

/// `500 5.5.2 Command unrecognized`.
pub fn command_unrecognized() -> Reply {
    Reply::new(500, Some(SYNTAX), "Command unrecognized")
}

/// `500 5.5.2 Bare CR or LF in command line`: RFC 5321 §2.3.8 allows CR and
/// LF only together, as the line terminator.
pub fn bare_line_ending_in_command() -> Reply {
    Reply::new(
        500,
        Some(SYNTAX),
        "Bare CR or LF in command line: lines must end with CRLF",
    )
}

/// `500 5.5.6 Line too long` (RFC 5321 §4.5.3.1.4 / §4.5.3.1.6).
pub fn line_too_long() -> Reply {
    Reply::new(500, Some(EnhancedCode(5, 5, 6)), "Line too long")
}

/// `501 5.5.4 Syntax: <usage>`: bad arguments; echoes the command's usage.
pub fn syntax(usage: &str) -> Reply {
    Reply::new(501, Some(INVALID_ARGUMENTS), format!("Syntax: {usage}"))
}

/// `501 5.1.7 Bad sender address syntax` (RFC 3463 §3.2).
pub fn bad_sender_syntax() -> Reply {
    Reply::new(
        501,
        Some(EnhancedCode(5, 1, 7)),
        "Bad sender address syntax",
    )
}

/// `501 5.1.3 Bad recipient address syntax` (RFC 3463 §3.2).
pub fn bad_recipient_syntax() -> Reply {
    Reply::new(
        501,
        Some(EnhancedCode(5, 1, 3)),
        "Bad recipient address syntax",
    )
}

/// `501 5.0.0 Authentication cancelled`: the client sent `*` (RFC 4954 §4).
pub fn auth_cancelled() -> Reply {
    Reply::new(501, Some(EnhancedCode(5, 0, 0)), "Authentication cancelled")
}

/// `501 5.5.2 Cannot decode response`: an AUTH response that is not base64
/// (RFC 4954 §4).
pub fn auth_bad_base64() -> Reply {
    Reply::new(501, Some(SYNTAX), "Cannot decode response")
}

/// `502 5.5.1 <VERB> was retired by RFC 5321`: SEND, SOML, SAML, TURN
/// (RFC 5321 Appendix F).
pub fn retired(verb: &str) -> Reply {
    Reply::new(
        502,
        Some(BAD_SEQUENCE),
        format!("{verb} was retired by RFC 5321"),
    )
}

/// `502 5.5.1 Command not implemented`.
pub fn not_implemented() -> Reply {
    Reply::new(502, Some(BAD_SEQUENCE), "Command not implemented")
}

/// `503 5.5.1 <text>`: a command out of sequence (RFC 5321 §4.1.4).
pub fn bad_sequence(text: &str) -> Reply {
    Reply::new(503, Some(BAD_SEQUENCE), text)
}

/// `504 5.5.4 Unrecognized authentication type` (RFC 4954 §4).
pub fn auth_mechanism_unsupported() -> Reply {
    Reply::new(
        504,
        Some(INVALID_ARGUMENTS),
        "Unrecognized authentication type",
    )
}

/// `530 5.7.0 Authentication required` (RFC 4954 §6).
pub fn auth_required() -> Reply {
    Reply::new(530, Some(EnhancedCode(5, 7, 0)), "Authentication required")
}

/// `535 5.7.8 Authentication credentials invalid` (RFC 4954 §6).
pub fn auth_failed() -> Reply {
    Reply::new(
        535,
        Some(EnhancedCode(5, 7, 8)),
        "Authentication credentials invalid",
    )
}

/// `538 5.7.11 Encryption required for requested authentication mechanism`
/// (RFC 4954 §6).
pub fn encryption_required() -> Reply {
    Reply::new(
        538,
        Some(EnhancedCode(5, 7, 11)),
        "Encryption required for requested authentication mechanism",
    )
}

/// `550 5.1.1 User unknown`.
pub fn user_unknown() -> Reply {
    Reply::new(550, Some(EnhancedCode(5, 1, 1)), "User unknown")
}

/// `550 5.7.1 Relaying denied`: never an open relay.
pub fn relay_denied() -> Reply {
    Reply::new(550, Some(EnhancedCode(5, 7, 1)), "Relaying denied")
}

/// `550 5.7.1 Sender rejected`.
pub fn sender_rejected() -> Reply {
    Reply::new(550, Some(EnhancedCode(5, 7, 1)), "Sender rejected")
}

/// `552 5.2.2 Mailbox full`: a permanent over-quota condition.
pub fn quota_exceeded() -> Reply {
    Reply::new(552, Some(EnhancedCode(5, 2, 2)), "Mailbox full")
}

/// `552 5.3.4 Message size exceeds fixed limit` (RFC 1870 §6).
pub fn message_too_big() -> Reply {
    Reply::new(
        552,
        Some(EnhancedCode(5, 3, 4)),
        "Message size exceeds fixed limit",
    )
}

/// `553 5.7.1 Sender address not owned by the authenticated user`
/// (RFC 6409 §6.1: the submission server may check the sender).
pub fn sender_not_owned() -> Reply {
    Reply::new(
        553,
        Some(EnhancedCode(5, 7, 1)),
        "Sender address not owned by the authenticated user",
    )
}

/// `553 5.6.7 SMTPUTF8 required for this address` (RFC 6531 §3.5).
pub fn utf8_required() -> Reply {
    Reply::new(
        553,
        Some(EnhancedCode(5, 6, 7)),
        "SMTPUTF8 required for this address",
    )
}

/// `554 5.5.1 No valid recipients` (RFC 5321 §3.3).
pub fn no_valid_recipients() -> Reply {
    Reply::new(554, Some(BAD_SEQUENCE), "No valid recipients")
}

/// `554 5.4.6 Too many hops`: a mail loop (RFC 5321 §6.3).
pub fn mail_loop() -> Reply {
    Reply::new(554, Some(EnhancedCode(5, 4, 6)), "Too many hops")
}

/// `554 5.6.0 Message rejected: bare CR or LF` (RFC 5321 §2.3.8; SMTP
/// smuggling, CVE-2023-51764).
pub fn bare_line_ending_in_data() -> Reply {
    Reply::new(
        554,
        Some(EnhancedCode(5, 6, 0)),
        "Message rejected: bare CR or LF, lines must end with CRLF (RFC 5321 section 2.3.8)",
    )
}

/// `554 5.6.0 Message rejected: NUL octets` (RFC 2045 §2.7/§2.8: neither
/// 7bit nor 8bit data contains NUL, and we offer no BINARYMIME).
pub fn nul_in_data() -> Reply {
    Reply::new(
        554,
        Some(EnhancedCode(5, 6, 0)),
        "Message rejected: NUL octets are not allowed",
    )
}

/// `554 5.7.1 Message rejected`: content refused by policy.
pub fn message_rejected() -> Reply {
    Reply::new(554, Some(EnhancedCode(5, 7, 1)), "Message rejected")
}

/// `555 5.5.4 Unsupported parameter` (RFC 5321 §4.1.1.11).
pub fn unknown_parameter() -> Reply {
    Reply::new(555, Some(INVALID_ARGUMENTS), "Unsupported parameter")
}

// ---------------------------------------------------------------- enhanced codes

/// `2.0.0`: other or undefined success.
pub const OK: EnhancedCode = EnhancedCode(2, 0, 0);
/// `2.1.0`: sender address valid.
pub const SENDER_OK: EnhancedCode = EnhancedCode(2, 1, 0);
/// `2.1.5`: destination address valid.
pub const RECIPIENT_OK: EnhancedCode = EnhancedCode(2, 1, 5);
/// `5.5.1`: invalid command (or command out of sequence).
pub const BAD_SEQUENCE: EnhancedCode = EnhancedCode(5, 5, 1);
/// `5.5.2`: syntax error.
pub const SYNTAX: EnhancedCode = EnhancedCode(5, 5, 2);
/// `5.5.4`: invalid command arguments.
pub const INVALID_ARGUMENTS: EnhancedCode = EnhancedCode(5, 5, 4);
/// `4.7.0`: other or undefined security status (temporary).
pub const SECURITY: EnhancedCode = EnhancedCode(4, 7, 0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_codes_on_the_wire() {
        let table = [
            (
                greeting("mx.example"),
                "220 mx.example ESMTP mailroom ready\r\n",
            ),
            (user_unknown(), "550 5.1.1 User unknown\r\n"),
            (relay_denied(), "550 5.7.1 Relaying denied\r\n"),
            (local_error(), "451 4.3.0 Local error in processing\r\n"),
            (no_space(), "452 4.3.1 Insufficient system storage\r\n"),
            (quota_exceeded(), "552 5.2.2 Mailbox full\r\n"),
            (mail_loop(), "554 5.4.6 Too many hops\r\n"),
            (message_accepted("A1B2"), "250 2.0.0 Ok: queued as A1B2\r\n"),
            (
                service_shutting_down("h"),
                "421 4.3.2 h Service shutting down, closing connection\r\n",
            ),
            (
                too_many_connections("h"),
                "421 4.7.0 h Too many connections, try again later\r\n",
            ),
            (
                timeout("h"),
                "421 4.4.2 h Timeout exceeded, closing connection\r\n",
            ),
            (start_data(), "354 End data with <CR><LF>.<CR><LF>\r\n"),
            (auth_challenge("VXNlcm5hbWU6"), "334 VXNlcm5hbWU6\r\n"),
            (
                expn_list(vec!["<a@x>".into(), "<b@x>".into()]),
                "250-2.1.5 <a@x>\r\n250 2.1.5 <b@x>\r\n",
            ),
            (
                retired("TURN"),
                "502 5.5.1 TURN was retired by RFC 5321\r\n",
            ),
        ];
        for (reply, want) in table {
            assert_eq!(String::from_utf8_lossy(&reply.to_bytes()), want);
        }
    }
}
