//! What became of one recipient on one attempt, in the terms the queue,
//! the log and the DSN need.

use std::fmt;

use mailroom_smtp_client::{Failure, Outcome, Reply};

/// An RFC 3463 enhanced status code, `class.subject.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status {
    /// 2 success, 4 persistent transient failure, 5 permanent failure.
    pub class: u8,
    /// The subject (1 addressing, 2 mailbox, 3 mail system, 4 network and
    /// routing, 5 protocol, 6 content, 7 security).
    pub subject: u16,
    /// The detail within the subject.
    pub detail: u16,
}

impl Status {
    /// A status from its three parts.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Status {
        Status {
            class,
            subject,
            detail,
        }
    }

    /// The reply's own enhanced code (RFC 2034) or, when it has none, the
    /// generic `X.0.0` of its class (RFC 3463 §3.1: "X.0.0 Other undefined
    /// status").
    pub fn from_reply(reply: &Reply) -> Status {
        match reply.enhanced {
            Some((class, subject, detail)) => Status::new(class, subject, detail),
            None => Status::new(u8::try_from(reply.code / 100).unwrap_or(4), 0, 0),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// How an attempt ended for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The next hop (or the local maildrop) took it.
    Delivered,
    /// Retry later.
    Temporary,
    /// Bounce.
    Permanent,
    /// Not tried (shutdown came first): no attempt is counted.
    NotAttempted,
}

/// One recipient's result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempt {
    pub(crate) kind: Kind,
    pub(crate) status: Status,
    /// The SMTP reply behind the result, one line (`550 5.1.1 no such
    /// user`): the DSN's `Diagnostic-Code: smtp; …`. `None` for results
    /// decided without one (a lost connection, a DNS failure).
    pub(crate) reply: Option<String>,
    /// One line for the log, `queue show` and the bounce's text part.
    pub(crate) text: String,
    /// The host that answered (`Remote-MTA: dns; …`).
    pub(crate) remote_mta: Option<String>,
    /// The route tried when no host answered (`mx example.org`), for the
    /// log line.
    pub(crate) relay: Option<String>,
    /// Delivered to a next hop that offers DSN, which then owes the
    /// sender any success notice (RFC 3461 §5.2.2); otherwise a requested
    /// success notice is ours to send, as `relayed` (RFC 3461 §4.1).
    pub(crate) next_hop_dsn: bool,
    /// Delivered into a local maildrop (`Action: delivered`).
    pub(crate) local: bool,
}

impl Attempt {
    /// A result decided here, without an SMTP reply.
    pub(crate) fn local_failure(
        permanent: bool,
        status: Status,
        text: impl Into<String>,
    ) -> Attempt {
        Attempt {
            kind: if permanent {
                Kind::Permanent
            } else {
                Kind::Temporary
            },
            status,
            reply: None,
            text: text.into(),
            remote_mta: None,
            relay: None,
            next_hop_dsn: false,
            local: false,
        }
    }

    /// Not tried at all.
    pub(crate) fn not_attempted() -> Attempt {
        Attempt {
            kind: Kind::NotAttempted,
            status: Status::new(4, 0, 0),
            reply: None,
            text: "not attempted (shutting down)".to_string(),
            remote_mta: None,
            relay: None,
            next_hop_dsn: false,
            local: false,
        }
    }

    /// The SMTP client's outcome for one recipient on a connection to
    /// `remote_mta`.
    pub(crate) fn from_outcome(outcome: &Outcome, remote_mta: &str, next_hop_dsn: bool) -> Attempt {
        let (kind, failure) = match outcome {
            Outcome::Delivered(reply) => {
                return Attempt {
                    kind: Kind::Delivered,
                    status: Status::from_reply(reply),
                    reply: Some(reply.to_string()),
                    text: reply.to_string(),
                    remote_mta: Some(remote_mta.to_string()),
                    relay: None,
                    next_hop_dsn,
                    local: false,
                };
            }
            Outcome::TemporaryFailure(failure) => (Kind::Temporary, failure),
            Outcome::PermanentFailure(failure) => (Kind::Permanent, failure),
        };
        let (status, reply) = match failure {
            Failure::Remote(reply) => (Status::from_reply(reply), Some(reply.to_string())),
            Failure::Local(reason) => {
                let (class, subject, detail) = reason.enhanced();
                (Status::new(class, subject, detail), None)
            }
        };
        Attempt {
            kind,
            status,
            reply,
            text: failure.to_string(),
            remote_mta: Some(remote_mta.to_string()),
            relay: None,
            next_hop_dsn,
            local: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use mailroom_smtp_client::LocalReason;

    use super::*;

    #[test]
    fn statuses_from_replies() {
        let table = [
            (Reply::new(550, Some((5, 1, 1)), "no such user"), "5.1.1"),
            (Reply::new(550, None, "no"), "5.0.0"),
            (Reply::new(451, None, "later"), "4.0.0"),
            (Reply::new(250, Some((2, 0, 0)), "ok"), "2.0.0"),
        ];
        for (reply, want) in table {
            assert_eq!(Status::from_reply(&reply).to_string(), want, "{reply}");
        }
    }

    #[test]
    fn outcomes_map_to_attempts() {
        let reply = Reply::new(550, Some((5, 1, 1)), "no such user");
        let permanent = Outcome::PermanentFailure(Failure::Remote(reply));
        let attempt = Attempt::from_outcome(&permanent, "mx.example", true);
        assert_eq!(attempt.kind, Kind::Permanent);
        assert_eq!(attempt.reply.as_deref(), Some("550 5.1.1 no such user"));
        assert_eq!(attempt.remote_mta.as_deref(), Some("mx.example"));

        let lost = Outcome::TemporaryFailure(Failure::Local(LocalReason::ConnectionLost));
        let attempt = Attempt::from_outcome(&lost, "mx.example", false);
        assert_eq!(attempt.kind, Kind::Temporary);
        assert_eq!(attempt.status, Status::new(4, 4, 2));
        assert_eq!(attempt.reply, None);
        assert_eq!(attempt.text, "4.4.2 connection lost");
    }
}
