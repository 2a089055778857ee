//! Errors, one enum per boundary: the connection failing
//! ([`ClientError`]), the caller misusing the session ([`UsageError`]) and
//! a bad [`crate::ClientConfig`] ([`ConfigError`]).

use mailroom_core::DomainError;

use crate::reply::{Reply, ReplyError};
use crate::timeout::ClientTimeout;

/// Why a connection ended without a QUIT, reported once as
/// [`crate::ClientEvent::Failed`]. Recipients of a transaction in progress
/// are reported first, as temporary failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The greeting was not 220: usually 554 from a server refusing this
    /// client's address (blocklist, RFC 5321 §3.1), or 4yz from an
    /// overloaded one.
    #[error("server refused the connection: {0}")]
    GreetingRefused(Reply),
    /// 421 (RFC 5321 §3.8): the server is shutting down or dropping us
    /// (overload, rate limit, its own timeout while we were idle).
    #[error("server closing the connection: {0}")]
    ServiceClosing(Reply),
    /// EHLO got a 4yz: a transient server problem. (A 5yz falls back to
    /// HELO instead.)
    #[error("EHLO refused: {0}")]
    EhloRejected(Reply),
    /// HELO was refused after EHLO was: the server will not talk to us
    /// (often a policy on our HELO name).
    #[error("HELO refused: {0}")]
    HeloRejected(Reply),
    /// The TLS policy is `Required` and the EHLO reply has no STARTTLS:
    /// a server without TLS, or a man in the middle stripping it.
    #[error("TLS required but the server does not offer STARTTLS")]
    TlsNotOffered,
    /// The TLS policy is `Required` and STARTTLS was refused (RFC 3207 §4:
    /// 454 when the server's TLS is temporarily broken).
    #[error("STARTTLS refused: {0}")]
    StartTlsRejected(Reply),
    /// Credentials are configured but the connection is not under TLS and
    /// plaintext AUTH is not allowed: sending them would expose them.
    #[error("refusing to send credentials over a connection without TLS")]
    AuthWithoutTls,
    /// Credentials are configured but the EHLO reply has no AUTH: the wrong
    /// port (25 instead of 587), or a server that wants TLS first.
    #[error("server does not offer AUTH")]
    AuthNotOffered,
    /// The server offers AUTH but neither PLAIN nor LOGIN.
    #[error("server offers no supported AUTH mechanism (offered: {})", .0.join(" "))]
    NoSupportedAuthMechanism(Vec<String>),
    /// AUTH was refused: wrong credentials (535), or a transient server
    /// problem (454).
    #[error("authentication failed: {0}")]
    AuthFailed(Reply),
    /// RSET after a failed transaction was refused: the server is confused
    /// and the connection cannot be reused.
    #[error("RSET refused: {0}")]
    RsetRejected(Reply),
    /// A reply the current command cannot have, or a reply when no command
    /// was outstanding: a broken server, or desynchronised pipelining.
    #[error("unexpected reply {reply} ({context})")]
    UnexpectedReply {
        /// What the client was waiting for.
        context: &'static str,
        /// The reply.
        reply: Reply,
    },
    /// The server's bytes are not well-formed replies.
    #[error("malformed reply: {0}")]
    Protocol(#[from] ReplyError),
    /// The driver reported the connection closed or broken.
    #[error("connection lost")]
    ConnectionLost,
    /// The driver reported that a timeout expired.
    #[error("timed out {}", .0.describe())]
    TimedOut(ClientTimeout),
}

impl ClientError {
    /// The server's reply behind this error, if any (for a DSN's
    /// `Diagnostic-Code` or a log line).
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            ClientError::GreetingRefused(r)
            | ClientError::ServiceClosing(r)
            | ClientError::EhloRejected(r)
            | ClientError::HeloRejected(r)
            | ClientError::StartTlsRejected(r)
            | ClientError::AuthFailed(r)
            | ClientError::RsetRejected(r) => Some(r),
            ClientError::UnexpectedReply { reply, .. } => Some(reply),
            _ => None,
        }
    }
}

/// The caller called a method the session cannot take in its state. These
/// are bugs in the driver, not in the peer; the session is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// `submit` or `quit` before [`crate::ClientEvent::Ready`], or while a
    /// transaction is still running.
    #[error("the session is not ready for a new command")]
    NotReady,
    /// `submit` with an empty recipient list.
    #[error("a transaction needs at least one recipient")]
    NoRecipients,
    /// `tls_established` without a preceding
    /// [`crate::ClientEvent::StartTls`].
    #[error("no TLS handshake was requested")]
    NotInTlsHandshake,
    /// `data_sent` without a preceding [`crate::ClientEvent::SendData`].
    #[error("no message data was requested")]
    NotSendingData,
}

/// A [`crate::ClientConfig`] that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The HELO name is neither a domain nor an address literal
    /// (RFC 5321 §4.1.1.1); a typo in the config, or a bare IP without
    /// brackets.
    #[error("invalid HELO name: {0}")]
    InvalidHeloName(#[source] DomainError),
    /// The user name is empty.
    #[error("empty user name")]
    EmptyUsername,
    /// The user name or password holds NUL, which SASL PLAIN uses as its
    /// separator (RFC 4616 §2).
    #[error("user name or password contains NUL")]
    CredentialsContainNul,
}
