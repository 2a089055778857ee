//! Final delivery of queued mail to local recipients (mail injected with
//! `sendmail`, bounces to local senders): routed exactly as an SMTP RCPT for
//! a local domain would be, then written into the maildrops with its
//! `Return-Path:`.

use std::sync::Arc;

use mailroom_core::Address;
use mailroom_smtp_proto::ForwardPath;
use mailroom_store::{IncomingMessage, QueueEntry, QueuedRecipient};

use crate::router::{Route, Router};
use crate::{Context, ids, time, trace};

/// Why a queued message could not be delivered locally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalFailure {
    /// Try again later (store error, disk full).
    #[error("temporary local delivery failure: {0}")]
    Temporary(String),
    /// Will never work (unknown user).
    #[error("permanent local delivery failure: {0}")]
    Permanent(String),
}

impl Context {
    /// True when mail for `domain` is delivered here.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        mailroom_core::Domain::parse(domain, true).is_ok_and(|d| self.config().is_local_domain(&d))
    }

    /// Delivers `message` (as queued: trace headers included, no
    /// Return-Path) to the local `address`, following aliases. An alias's
    /// remote members are queued anew.
    pub async fn deliver_queued(
        &self,
        address: &str,
        sender: Option<&str>,
        message: &[u8],
    ) -> Result<(), LocalFailure> {
        let address = Address::parse(address, true)
            .map_err(|e| LocalFailure::Permanent(format!("bad address: {e}")))?;
        let config = self.config();
        let router = Router {
            config: &config,
            users: self.users.as_ref(),
        };
        let (users, remote) = match router.route(&ForwardPath::Mailbox(address), false).await {
            Ok(Route::Local(users, remote)) => (users, remote),
            Ok(Route::Relay(_)) => {
                return Err(LocalFailure::Permanent("not a local domain".into()));
            }
            Err(reply) => {
                let text = reply.lines.join(" ");
                return Err(if reply.code >= 500 {
                    LocalFailure::Permanent(format!("{} {text}", reply.code))
                } else {
                    LocalFailure::Temporary(format!("{} {text}", reply.code))
                });
            }
        };
        if !remote.is_empty() {
            self.requeue(&remote, sender, message).await?;
        }
        if users.is_empty() {
            return Ok(());
        }
        let sender = sender.and_then(|s| Address::parse(s, true).ok());
        let mut prefix = Vec::new();
        trace::return_path(sender.as_ref(), &mut prefix);
        let incoming = IncomingMessage {
            prefix,
            body: Arc::new(message.to_vec()),
        };
        self.store
            .deliver(&users, &incoming)
            .await
            .map_err(|e| LocalFailure::Temporary(e.to_string()))
    }

    async fn requeue(
        &self,
        remote: &[Address],
        sender: Option<&str>,
        message: &[u8],
    ) -> Result<(), LocalFailure> {
        let Some(queue) = &self.queue else {
            return Err(LocalFailure::Permanent(
                "no queue for remote alias members".into(),
            ));
        };
        let now = time::unix_now();
        let entry = QueueEntry {
            id: ids::new_id(),
            sender: sender.map(str::to_string),
            created: now,
            envid: None,
            ret: None,
            body_8bit: message.iter().any(|b| *b >= 0x80),
            smtputf8: remote.iter().any(Address::is_utf8),
            size: message.len() as u64,
            held: false,
            recipients: remote
                .iter()
                .map(|a| QueuedRecipient::pending(a.to_string(), now))
                .collect(),
        };
        let incoming = IncomingMessage {
            prefix: Vec::new(),
            body: Arc::new(message.to_vec()),
        };
        queue
            .enqueue(&entry, &incoming)
            .await
            .map_err(|e| LocalFailure::Temporary(e.to_string()))?;
        self.queue_notify.notify_one();
        Ok(())
    }
}
