//! [`MtaConfig`]: everything the outbound agent is told by the binary.

use std::net::SocketAddr;
use std::time::Duration;

use mailroom_queue::schedule::RetryPolicy;

/// The outbound agent's settings. The binary maps its TOML and flags onto
/// this; each default is stated at its field, with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct MtaConfig {
    /// This host's name: sent in EHLO (RFC 5321 §4.1.1.1), used as the
    /// `Reporting-MTA` and `MAILER-DAEMON@` domain of bounces, and to spot
    /// MX records that point back at us (RFC 5321 §5.1). Default:
    /// `localhost`, like the embedded server's default `--hostname`.
    pub hostname: String,
    /// Routes that skip DNS: `(domain, "host:port")`. An exact domain match
    /// (case-insensitive) wins; `"*"` is the smarthost for every other
    /// remote domain. The host may be a name (A/AAAA looked up) or an IP
    /// address (`[::1]:25` for IPv6). Default: empty (MX routing).
    pub relay_map: Vec<(String, String)>,
    /// The name server for MX/A/AAAA look-ups (tests run their own).
    /// Default: `None`, the system resolver from `/etc/resolv.conf`.
    pub dns: Option<SocketAddr>,
    /// How long one DNS query may take before it counts as a temporary
    /// failure (two tries per query). Default: 5 seconds, resolv.conf's.
    pub dns_timeout: Duration,
    /// The TCP port of mail exchangers. Default: 25 (RFC 5321 §4.5.4);
    /// tests point it at their sink's port.
    pub smtp_port: u16,
    /// Retry schedule, expiry and delay notices. Default:
    /// [`RetryPolicy::default`] (5m, 10m, 20m, 40m then hourly; 5 days;
    /// delay notice after 4 hours).
    pub policy: RetryPolicy,
    /// Domains whose mail must go over TLS (STARTTLS required, RFC 3207):
    /// a server that does not offer it gets a temporary failure, never the
    /// message in plaintext. Certificates are still not verified (see the
    /// crate docs). Default: empty (opportunistic TLS everywhere).
    pub require_tls: Vec<String>,
    /// Open connections to one destination at most. Default: 10 (half of
    /// Postfix's `default_destination_concurrency_limit`): enough for
    /// throughput, polite to the receiver. Connections open one per four
    /// messages waiting, up to this limit.
    pub max_connections_per_destination: usize,
    /// Messages being delivered at once (each claimed queue entry counts
    /// one until its results are stored). Default: 50.
    pub max_workers: usize,
    /// How long a TCP connect may take before the next address is tried.
    /// Default: 30 seconds, Postfix's `smtp_connect_timeout`.
    pub connect_timeout: Duration,
    /// A ceiling on every RFC 5321 §4.5.3.2 timeout (greeting, MAIL, RCPT,
    /// DATA, each data block, the reply to the final dot, other commands
    /// and the TLS handshake). Default: `None`, the RFC's own values (5
    /// minutes; 2 for the 354, 3 per data block, 10 after the dot), which a
    /// receiver may rely on; a lower ceiling frees a worker stuck on a
    /// stalled receiver sooner (`[queue] reply_timeout`).
    pub reply_timeout: Option<Duration>,
    /// How often the queue is polled for due entries when nobody calls
    /// [`crate::Mta::notify`]. Default: 1 second.
    pub poll_interval: Duration,
    /// How long a claim on a queue entry lasts without renewal; it is
    /// renewed every third of this while the delivery runs, so an agent
    /// that dies loses its claims within one lease and another node takes
    /// the work over (RFC 5321 §4.5.4.1 allows the duplicate that may
    /// follow). Whole seconds, at least one. Default: 10 minutes
    /// (`[queue] lease`).
    pub lease: Duration,
    /// How long an idle connection is kept open for more mail to the same
    /// destination. Default: 5 seconds (Postfix caches for 2): long enough
    /// to catch a burst, short enough not to hog the receiver.
    pub idle_timeout: Duration,
    /// On shutdown, how long deliveries already under way may take to
    /// finish before `run` returns anyway (their claims then lapse with the
    /// lease). Default: 30 seconds.
    pub drain_timeout: Duration,
}

impl Default for MtaConfig {
    fn default() -> MtaConfig {
        MtaConfig {
            hostname: "localhost".to_string(),
            relay_map: Vec::new(),
            dns: None,
            dns_timeout: Duration::from_secs(5),
            smtp_port: 25,
            policy: RetryPolicy::default(),
            require_tls: Vec::new(),
            max_connections_per_destination: 10,
            max_workers: 50,
            connect_timeout: Duration::from_secs(30),
            reply_timeout: None,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(10 * 60),
            idle_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(30),
        }
    }
}
