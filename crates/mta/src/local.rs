//! The seam to local delivery: recipients whose domain is local are handed
//! to the binary's maildrop store instead of SMTP (bounces to local senders
//! land in their maildrop this way).

/// Local delivery, implemented by the binary over its `MailStore` (with
/// alias expansion and the user directory). The MTA never touches a
/// maildrop itself.
#[async_trait::async_trait]
pub trait LocalDelivery: Send + Sync {
    /// True when `domain` (lower case, no trailing dot) is one of this
    /// server's local domains.
    async fn is_local(&self, domain: &str) -> bool;

    /// Delivers `message` (CRLF line ends, as queued) to the local
    /// `address`; `sender` is the envelope's reverse path (`None` for the
    /// null sender) for the `Return-Path:` added at final delivery. Returns
    /// only once the copy is durable.
    async fn deliver(
        &self,
        address: &str,
        sender: Option<&str>,
        message: &[u8],
    ) -> Result<(), LocalDeliveryError>;
}

/// Why a local delivery failed. The text is one line, shown in the queue
/// and in a bounce: no paths, no internals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalDeliveryError {
    /// Retry later: the disk is full, the store is unreachable, the
    /// maildrop is over quota with `452 4.2.2` semantics.
    #[error("{0}")]
    Temporary(String),
    /// Bounce: no such user (`5.1.1`), quota exceeded permanently
    /// (`5.2.2`). Start the text with the RFC 3463 code when there is one.
    #[error("{0}")]
    Permanent(String),
}
