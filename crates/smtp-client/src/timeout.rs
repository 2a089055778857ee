//! Which RFC 5321 §4.5.3.2 timeout applies while the client waits. The
//! session names it; the driver owns the clock.

use std::time::Duration;

/// The timeout the driver should arm now, as returned by
/// [`crate::ClientSession::next_timeout`]. When it expires the driver calls
/// [`crate::ClientSession::timed_out`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientTimeout {
    /// Waiting for the 220 greeting (RFC 5321 §4.5.3.2.1, 5 minutes).
    Initial,
    /// Waiting for the reply to MAIL (§4.5.3.2.2, 5 minutes).
    Mail,
    /// Waiting for the reply to RCPT (§4.5.3.2.3, 5 minutes).
    Rcpt,
    /// Waiting for the 354 to DATA (§4.5.3.2.4, 2 minutes).
    DataInit,
    /// Streaming the message: each write of a data block must finish in
    /// this time (§4.5.3.2.5, 3 minutes).
    DataBlock,
    /// Waiting for the reply to the final `.` (§4.5.3.2.6, 10 minutes: the
    /// server may be delivering or scanning the message).
    DataTermination,
    /// Waiting for the reply to EHLO, HELO, STARTTLS, AUTH, RSET or QUIT,
    /// or for the driver's TLS handshake. RFC 5321 sets no value for these;
    /// the 5 minutes of its other command timeouts is used.
    Command,
    /// Nothing is expected from the server (the session is ready and idle,
    /// or finished). How long to keep an idle connection is the driver's
    /// choice.
    Idle,
}

impl ClientTimeout {
    /// The duration to wait; `None` for [`ClientTimeout::Idle`].
    pub fn duration(self) -> Option<Duration> {
        match self {
            ClientTimeout::Initial => Some(INITIAL_TIMEOUT),
            ClientTimeout::Mail => Some(MAIL_TIMEOUT),
            ClientTimeout::Rcpt => Some(RCPT_TIMEOUT),
            ClientTimeout::DataInit => Some(DATA_INIT_TIMEOUT),
            ClientTimeout::DataBlock => Some(DATA_BLOCK_TIMEOUT),
            ClientTimeout::DataTermination => Some(DATA_TERMINATION_TIMEOUT),
            ClientTimeout::Command => Some(COMMAND_TIMEOUT),
            ClientTimeout::Idle => None,
        }
    }

    /// A short name for logs and failure texts ("waiting for the RCPT
    /// reply").
    pub fn describe(self) -> &'static str {
        match self {
            ClientTimeout::Initial => "waiting for the greeting",
            ClientTimeout::Mail => "waiting for the MAIL reply",
            ClientTimeout::Rcpt => "waiting for the RCPT reply",
            ClientTimeout::DataInit => "waiting for the DATA reply",
            ClientTimeout::DataBlock => "sending the message",
            ClientTimeout::DataTermination => "waiting for the reply to the end of data",
            ClientTimeout::Command => "waiting for a command reply",
            ClientTimeout::Idle => "idle",
        }
    }
}

/// RFC 5321 §4.5.3.2.1: initial 220 message, 5 minutes.
pub const INITIAL_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// RFC 5321 §4.5.3.2.2: MAIL command, 5 minutes.
pub const MAIL_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// RFC 5321 §4.5.3.2.3: RCPT command, 5 minutes.
pub const RCPT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// RFC 5321 §4.5.3.2.4: DATA initiation, 2 minutes.
pub const DATA_INIT_TIMEOUT: Duration = Duration::from_secs(2 * 60);
/// RFC 5321 §4.5.3.2.5: data block, 3 minutes per send.
pub const DATA_BLOCK_TIMEOUT: Duration = Duration::from_secs(3 * 60);
/// RFC 5321 §4.5.3.2.6: DATA termination, 10 minutes.
pub const DATA_TERMINATION_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Commands RFC 5321 gives no timeout for (EHLO, STARTTLS, AUTH, RSET,
/// QUIT), and the TLS handshake: 5 minutes, like MAIL and RCPT.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_match_rfc_5321() {
        let minutes = |t: ClientTimeout| t.duration().map(|d| d.as_secs() / 60);
        assert_eq!(minutes(ClientTimeout::Initial), Some(5));
        assert_eq!(minutes(ClientTimeout::Mail), Some(5));
        assert_eq!(minutes(ClientTimeout::Rcpt), Some(5));
        assert_eq!(minutes(ClientTimeout::DataInit), Some(2));
        assert_eq!(minutes(ClientTimeout::DataBlock), Some(3));
        assert_eq!(minutes(ClientTimeout::DataTermination), Some(10));
        assert_eq!(minutes(ClientTimeout::Command), Some(5));
        assert_eq!(minutes(ClientTimeout::Idle), None);
    }
}
