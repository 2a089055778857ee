//! What the caller asks to send (a [`Transaction`]) and what became of each
//! recipient (a [`TransactionResult`]).

use std::fmt;

use crate::reply::Reply;
use crate::timeout::ClientTimeout;

/// One mail transaction: an envelope for one message (RFC 5321 §3.3). The
/// message itself is streamed by the driver after
/// [`crate::ClientEvent::SendData`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The reverse-path, `local@domain` without brackets. `None` (or an
    /// empty string) is the null reverse-path `<>` of bounces
    /// (RFC 5321 §4.5.5).
    pub reverse_path: Option<String>,
    /// The recipients, in the order their outcomes are reported.
    pub recipients: Vec<RecipientSpec>,
    /// The message size in octets, CRLF included (RFC 1870 §5), declared as
    /// `SIZE=` and checked against the server's limit before sending.
    pub size: u64,
    /// The body holds 8-bit octets; needs 8BITMIME (RFC 6152).
    pub needs_8bit: bool,
    /// The header holds UTF-8 (RFC 6532); needs SMTPUTF8 (RFC 6531), and
    /// implies `needs_8bit`. Non-ASCII addresses in the envelope set this
    /// need by themselves.
    pub needs_smtputf8: bool,
    /// DSN envelope identifier (RFC 3461 §4.4), sent xtext-encoded as
    /// `ENVID=` when the server offers DSN.
    pub envid: Option<String>,
    /// DSN `RET=` (RFC 3461 §4.3), sent when the server offers DSN.
    pub ret: Option<Ret>,
}

/// One recipient of a [`Transaction`].
///
/// The DSN parameters are sent only when the server offers DSN. When it
/// does not, RFC 3461 §4.1 leaves it to the relaying MTA to issue a
/// "relayed" DSN for `NOTIFY=SUCCESS`; the caller can see the server's
/// extensions in [`crate::ClientSession::extensions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientSpec {
    /// The forward-path, `local@domain` without brackets.
    pub address: String,
    /// DSN `NOTIFY=` (RFC 3461 §4.1).
    pub notify: Option<Notify>,
    /// DSN `ORCPT=`: the original recipient address, unencoded; it is sent
    /// as `rfc822;` + xtext (RFC 3461 §4.2), or `utf-8;` for a non-ASCII
    /// address (RFC 6533 §3).
    pub orcpt: Option<String>,
}

impl RecipientSpec {
    /// A recipient with no DSN parameters.
    pub fn new(address: impl Into<String>) -> RecipientSpec {
        RecipientSpec {
            address: address.into(),
            notify: None,
            orcpt: None,
        }
    }
}

/// DSN `NOTIFY=` (RFC 3461 §4.1): on which events the sender wants a DSN.
/// All `false` is `NEVER`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Notify {
    /// `SUCCESS`: on delivery.
    pub success: bool,
    /// `FAILURE`: on a bounce.
    pub failure: bool,
    /// `DELAY`: while delivery is delayed.
    pub delay: bool,
}

impl Notify {
    /// `NOTIFY=NEVER`.
    pub const NEVER: Notify = Notify {
        success: false,
        failure: false,
        delay: false,
    };

    /// Parses the parameter value: `NEVER`, or a comma-separated list of
    /// `SUCCESS`, `FAILURE` and `DELAY`, in any case. `None` for anything
    /// else (RFC 3461 §4.1 forbids `NEVER` together with other keywords).
    pub fn parse(value: &str) -> Option<Notify> {
        if value.eq_ignore_ascii_case("NEVER") {
            return Some(Notify::NEVER);
        }
        let mut notify = Notify::NEVER;
        for word in value.split(',') {
            let flag = match word.to_ascii_uppercase().as_str() {
                "SUCCESS" => &mut notify.success,
                "FAILURE" => &mut notify.failure,
                "DELAY" => &mut notify.delay,
                _ => return None,
            };
            *flag = true;
        }
        Some(notify)
    }
}

impl fmt::Display for Notify {
    /// The parameter value: `NEVER` or e.g. `SUCCESS,FAILURE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<&str> = [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ]
        .into_iter()
        .filter_map(|(on, word)| on.then_some(word))
        .collect();
        if words.is_empty() {
            f.write_str("NEVER")
        } else {
            f.write_str(&words.join(","))
        }
    }
}

/// DSN `RET=` (RFC 3461 §4.3): how much of the message a failure DSN
/// returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ret {
    /// `RET=FULL`: the whole message.
    Full,
    /// `RET=HDRS`: the header only.
    Hdrs,
}

impl Ret {
    /// The parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        }
    }
}

/// What became of each recipient of one transaction, in the order of
/// [`Transaction::recipients`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionResult {
    /// Each recipient's address as given, with its outcome.
    pub per_recipient: Vec<(String, Outcome)>,
}

impl TransactionResult {
    /// True when every recipient was delivered.
    pub fn all_delivered(&self) -> bool {
        self.per_recipient
            .iter()
            .all(|(_, outcome)| matches!(outcome, Outcome::Delivered(_)))
    }
}

/// The outcome for one recipient. Replies are classified as the issue and
/// RFC 5321 §4.2.1 say: 2yz done, 4yz (and any connection failure) retry,
/// 5yz bounce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server took responsibility for the message (the reply to the
    /// final `.`).
    Delivered(Reply),
    /// Retry later: a 4yz reply, a 421, a lost or timed-out connection.
    TemporaryFailure(Failure),
    /// Bounce: a 5yz reply, or a need the server cannot meet.
    PermanentFailure(Failure),
}

/// Why a recipient failed: the server's words, or the client's own
/// decision when no reply applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server's reply (to MAIL, RCPT, DATA or the final `.`).
    Remote(Reply),
    /// Decided locally, with no reply from the server.
    Local(LocalReason),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Remote(reply) => write!(f, "{reply}"),
            Failure::Local(reason) => write!(f, "{reason}"),
        }
    }
}

/// Failures the client decides without a reply. The text starts with the
/// RFC 3463 enhanced status code a DSN should carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalReason {
    /// The body is 8-bit and the server lacks 8BITMIME. RFC 6152 §3: such a
    /// message must not be sent as is; mailroom does not downgrade, so it
    /// bounces.
    Needs8BitMime,
    /// An envelope address is non-ASCII and the server lacks SMTPUTF8
    /// (RFC 6531 §3.2; X.6.7 "non-ASCII addresses not permitted").
    NeedsSmtpUtf8Address,
    /// The header is UTF-8 and the server lacks SMTPUTF8 (RFC 6531 §3.2;
    /// X.6.9 "UTF-8 header message cannot be transferred").
    NeedsSmtpUtf8Message,
    /// The message is larger than the server's declared SIZE, which it
    /// would refuse with 552 (RFC 1870 §4).
    MessageTooBig {
        /// The message size.
        size: u64,
        /// The server's fixed maximum.
        limit: u64,
    },
    /// The reverse-path is not a valid mailbox (X.1.7); it was never sent.
    InvalidSender,
    /// The recipient address is not a valid mailbox (X.1.3); it was never
    /// sent.
    InvalidRecipient,
    /// The connection dropped before the outcome was known (X.4.2).
    ConnectionLost,
    /// The server did not answer in time (X.4.2).
    TimedOut(ClientTimeout),
    /// The server broke the protocol (malformed or unexpected reply), so
    /// the outcome is unknown (X.5.0).
    ProtocolError,
}

impl LocalReason {
    /// True when retrying cannot help (the 5.x.x reasons).
    pub fn is_permanent(&self) -> bool {
        self.enhanced().0 == 5
    }

    /// The RFC 3463 enhanced status code for a DSN.
    pub fn enhanced(&self) -> (u8, u16, u16) {
        match self {
            LocalReason::Needs8BitMime => (5, 6, 3),
            LocalReason::NeedsSmtpUtf8Address => (5, 6, 7),
            LocalReason::NeedsSmtpUtf8Message => (5, 6, 9),
            LocalReason::MessageTooBig { .. } => (5, 3, 4),
            LocalReason::InvalidSender => (5, 1, 7),
            LocalReason::InvalidRecipient => (5, 1, 3),
            LocalReason::ConnectionLost | LocalReason::TimedOut(_) => (4, 4, 2),
            LocalReason::ProtocolError => (4, 5, 0),
        }
    }
}

impl fmt::Display for LocalReason {
    /// `5.6.3 remote server does not support 8BITMIME`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (class, subject, detail) = self.enhanced();
        write!(f, "{class}.{subject}.{detail} ")?;
        match self {
            LocalReason::Needs8BitMime => f.write_str("remote server does not support 8BITMIME"),
            LocalReason::NeedsSmtpUtf8Address => {
                f.write_str("remote server does not support SMTPUTF8 (non-ASCII address)")
            }
            LocalReason::NeedsSmtpUtf8Message => {
                f.write_str("remote server does not support SMTPUTF8 (UTF-8 header)")
            }
            LocalReason::MessageTooBig { size, limit } => {
                write!(f, "message size {size} exceeds remote server limit {limit}")
            }
            LocalReason::InvalidSender => f.write_str("invalid sender address syntax"),
            LocalReason::InvalidRecipient => f.write_str("invalid recipient address syntax"),
            LocalReason::ConnectionLost => f.write_str("connection lost"),
            LocalReason::TimedOut(timeout) => write!(f, "timed out {}", timeout.describe()),
            LocalReason::ProtocolError => f.write_str("remote server protocol error"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_parse_and_display() {
        let table = [
            ("NEVER", Some("NEVER")),
            ("never", Some("NEVER")),
            ("SUCCESS", Some("SUCCESS")),
            ("delay,failure", Some("FAILURE,DELAY")),
            ("SUCCESS,FAILURE,DELAY", Some("SUCCESS,FAILURE,DELAY")),
            ("NEVER,SUCCESS", None),
            ("", None),
            ("SUCCESS,", None),
            ("SUCCESS FAILURE", None),
        ];
        for (input, want) in table {
            assert_eq!(
                Notify::parse(input).map(|n| n.to_string()).as_deref(),
                want,
                "{input:?}"
            );
        }
    }

    #[test]
    fn local_reasons_carry_their_codes() {
        assert_eq!(
            LocalReason::Needs8BitMime.to_string(),
            "5.6.3 remote server does not support 8BITMIME"
        );
        assert_eq!(
            LocalReason::MessageTooBig {
                size: 11,
                limit: 10
            }
            .to_string(),
            "5.3.4 message size 11 exceeds remote server limit 10"
        );
        assert_eq!(
            LocalReason::TimedOut(ClientTimeout::Rcpt).to_string(),
            "4.4.2 timed out waiting for the RCPT reply"
        );
        assert!(LocalReason::NeedsSmtpUtf8Address.is_permanent());
        assert!(!LocalReason::ConnectionLost.is_permanent());
        assert!(!LocalReason::ProtocolError.is_permanent());
    }
}
