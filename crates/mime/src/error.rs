//! The one error type of this crate.

/// Why a message could not be described or composed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MimeError {
    /// `describe`/`attachments`: the input has no header section at all
    /// (empty input, or binary data that is not a message).
    #[error("not a mail message: no header fields found")]
    NotAMessage,
    /// `describe`/`attachments`: mail-parser panicked on this input, and the
    /// panic was caught so that hostile input cannot take the caller down.
    /// The known cases are mail-parser's `debug_assert!`s and integer
    /// overflow checks, which only debug builds have (tests/hostile.rs).
    #[error("the MIME parser failed on this message")]
    ParserFailed,
    /// `compose`: an address is not `addr-spec` or `Name <addr-spec>` with an
    /// RFC 5321 mailbox inside (or it needs SMTPUTF8, which `compose` does
    /// not produce yet).
    #[error("invalid {field} address {value:?}")]
    InvalidAddress {
        /// The header the address was meant for (`From`, `To`, `Cc`, `Bcc`).
        field: &'static str,
        /// The address as given.
        value: String,
    },
    /// `compose`: the Message-ID is not `<left@right>` in printable ASCII.
    #[error("invalid Message-ID {0:?}")]
    InvalidMessageId(String),
    /// `compose`: a header value (subject, display name) holds a CR, LF or
    /// another control character, which would end the header field early
    /// (header injection).
    #[error("control character in the {0} header")]
    ControlCharacterInHeader(&'static str),
    /// `compose`: a line of the output would exceed the 998-octet limit of
    /// RFC 5322 §2.1.1, typically because of an address too long to fold.
    #[error("line {line} of the composed message is longer than 998 octets")]
    LineTooLong {
        /// 1-based line number in the composed message.
        line: usize,
    },
    /// `compose`: the output has a CR or LF that is not part of a CRLF, or
    /// does not end with CRLF. The inputs are checked before building, so
    /// this is a bug in this crate or in mail-builder.
    #[error("line {line} of the composed message does not end with CRLF")]
    BareLineEnd {
        /// 1-based line number in the composed message.
        line: usize,
    },
}
