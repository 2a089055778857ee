//! What the session asks its driver (events) and what it hands over (the
//! envelope of an accepted transaction).

use std::fmt;

use mailroom_core::Address;

use crate::command::{MailParams, Recipient};

/// Something the driver must know about or decide. Events marked "needs a
/// decision" leave the session waiting ([`crate::ServerSession::poll_event`]
/// returns `None`) until the driver answers with
/// [`crate::ServerSession::accept`], [`crate::ServerSession::respond`],
/// [`crate::ServerSession::auth_challenge`] or
/// [`crate::ServerSession::auth_succeeded`].
#[derive(Clone, PartialEq, Eq)]
pub enum Event {
    /// `MAIL FROM` passed syntax and sequence checks. Needs a decision:
    /// `accept()` (250 2.1.0) or `respond(reply)`; a 2xx starts the
    /// transaction.
    MailFrom {
        /// The sender; `None` is the null reverse path `<>`.
        reverse_path: Option<Address>,
        /// The MAIL parameters.
        params: MailParams,
    },
    /// `RCPT TO` passed syntax, sequence and limit checks. Needs a decision:
    /// `accept()` (250 2.1.5) or `respond(reply)`; a 2xx adds the recipient.
    RcptTo {
        /// The proposed recipient.
        recipient: Recipient,
    },
    /// VRFY, only when `config.vrfy` or the session is authenticated. Needs
    /// a decision: `respond(reply)`.
    Vrfy {
        /// The argument as sent.
        argument: String,
    },
    /// EXPN, only when `config.expn` or the session is authenticated. Needs
    /// a decision: `respond(reply)`.
    Expn {
        /// The argument as sent.
        argument: String,
    },
    /// A complete message: after DATA's CR LF . CR LF (un-stuffed, without
    /// the terminator) or after BDAT … LAST. Needs a decision:
    /// `respond(reply)`, 250 only once the message is on stable storage.
    /// Whatever the reply, the transaction is over afterwards.
    Message {
        /// The transaction's envelope.
        envelope: Envelope,
        /// The message octets.
        data: Vec<u8>,
    },
    /// STARTTLS was accepted and `220 2.0.0` is queued. Input buffered after
    /// the STARTTLS line was discarded (RFC 3207 §4.2; CVE-2011-0411). The
    /// driver flushes the output, runs the TLS handshake on the raw
    /// connection, then calls `tls_established()` (or `respond(reply)` if
    /// the handshake cannot start: the session then closes).
    StartTls,
    /// AUTH with an offered mechanism. Needs a decision:
    /// `auth_challenge(..)`, `auth_succeeded(identity)` or
    /// `respond(failure)`.
    Auth {
        /// The mechanism, upper-cased.
        mechanism: String,
        /// The initial response (base64, not decoded); `=` on the wire is
        /// the empty string here.
        initial_response: Option<String>,
    },
    /// The client's answer to a 334 challenge (base64, not decoded). A `*`
    /// never shows up here: it cancels the exchange with 501 5.0.0 in the
    /// session. Needs a decision like [`Event::Auth`].
    AuthResponse {
        /// The line as sent, without CR LF.
        line: String,
    },
    /// HELO or EHLO was answered; informational only.
    Helo {
        /// The client's name for itself, as sent.
        domain: String,
        /// True for EHLO.
        extended: bool,
    },
    /// QUIT was answered with 221; the driver flushes the output and closes.
    Quit,
}

impl fmt::Debug for Event {
    /// Like a derived `Debug`, but SASL data (which carries passwords) is
    /// redacted and message data is shown only by its length, so events
    /// can be logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::MailFrom {
                reverse_path,
                params,
            } => f
                .debug_struct("MailFrom")
                .field("reverse_path", reverse_path)
                .field("params", params)
                .finish(),
            Event::RcptTo { recipient } => f
                .debug_struct("RcptTo")
                .field("recipient", recipient)
                .finish(),
            Event::Vrfy { argument } => f.debug_struct("Vrfy").field("argument", argument).finish(),
            Event::Expn { argument } => f.debug_struct("Expn").field("argument", argument).finish(),
            Event::Message { envelope, data } => f
                .debug_struct("Message")
                .field("envelope", envelope)
                .field("data", &format_args!("<{} octets>", data.len()))
                .finish(),
            Event::StartTls => f.write_str("StartTls"),
            Event::Auth {
                mechanism,
                initial_response,
            } => f
                .debug_struct("Auth")
                .field("mechanism", mechanism)
                .field(
                    "initial_response",
                    &initial_response
                        .as_ref()
                        .map(|_| format_args!("<redacted>")),
                )
                .finish(),
            Event::AuthResponse { .. } => f
                .debug_struct("AuthResponse")
                .field("line", &format_args!("<redacted>"))
                .finish(),
            Event::Helo { domain, extended } => f
                .debug_struct("Helo")
                .field("domain", domain)
                .field("extended", extended)
                .finish(),
            Event::Quit => f.write_str("Quit"),
        }
    }
}

/// The envelope of one transaction (RFC 5321 §2.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The HELO/EHLO name the client gave.
    pub helo: String,
    /// True when the client greeted with EHLO.
    pub esmtp: bool,
    /// The sender; `None` is the null sender `<>`.
    pub reverse_path: Option<Address>,
    /// The MAIL parameters.
    pub mail_params: MailParams,
    /// The accepted recipients, in order.
    pub recipients: Vec<Recipient>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_credentials_and_message_text() {
        let auth = Event::Auth {
            mechanism: "PLAIN".into(),
            initial_response: Some("AHVzZXIAcGFzcw==".into()),
        };
        assert_eq!(
            format!("{auth:?}"),
            "Auth { mechanism: \"PLAIN\", initial_response: Some(<redacted>) }"
        );
        let response = Event::AuthResponse {
            line: "c2VjcmV0".into(),
        };
        assert!(!format!("{response:?}").contains("c2VjcmV0"));
        let message = Event::Message {
            envelope: Envelope {
                helo: "c".into(),
                esmtp: true,
                reverse_path: None,
                mail_params: MailParams::default(),
                recipients: vec![],
            },
            data: b"secret text".to_vec(),
        };
        let shown = format!("{message:?}");
        assert!(
            shown.contains("<11 octets>") && !shown.contains("secret"),
            "{shown}"
        );
    }
}
