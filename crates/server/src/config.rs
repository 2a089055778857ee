//! The inbound agent's configuration, typed and validated. The binary maps
//! its TOML file and flags onto this; every field's default is documented
//! where it is set, in [`ServerConfig::default`].

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use mailroom_core::Domain;

/// Which service a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerKind {
    /// SMTP relay/MX port (RFC 5321), STARTTLS offered.
    Smtp,
    /// Message submission (RFC 6409), AUTH required.
    Submission,
    /// Submission over implicit TLS (RFC 8314).
    Smtps,
    /// POP3 (RFC 1939), STLS offered.
    Pop3,
    /// POP3 over implicit TLS (RFC 8314).
    Pop3s,
}

impl ListenerKind {
    /// The name used in `listening <service> <addr>` lines and logs.
    pub fn name(self) -> &'static str {
        match self {
            ListenerKind::Smtp => "smtp",
            ListenerKind::Submission => "submission",
            ListenerKind::Smtps => "smtps",
            ListenerKind::Pop3 => "pop3",
            ListenerKind::Pop3s => "pop3s",
        }
    }
}

/// Settings of the inbound agent.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Name in greetings and `Received:` headers.
    pub hostname: String,
    /// Domains whose mail is delivered locally (the hostname is always one).
    pub local_domains: BTreeSet<Domain>,
    /// The user `postmaster@` is delivered to; `None` = the first user.
    pub postmaster: Option<String>,
    /// Largest message accepted (SIZE, RFC 1870).
    pub max_message_size: u64,
    /// Recipients per transaction.
    pub max_recipients: usize,
    /// Protocol errors before the session is cut off with 421.
    pub max_errors: u32,
    /// VRFY answers for unauthenticated sessions (else 252).
    pub vrfy: bool,
    /// EXPN answers for unauthenticated sessions (else 502).
    pub expn: bool,
    /// How long the SMTP server waits for the next command.
    pub command_timeout: Duration,
    /// How long the SMTP server waits for the next chunk of message data.
    pub data_timeout: Duration,
    /// The slowest message data (octets per second) the SMTP server
    /// accepts over the whole message: each block received extends the
    /// message's deadline by its size at this rate, never past
    /// `data_timeout` from now. 0: only the per-block timeout applies.
    pub min_data_rate: u64,
    /// POP3 inactivity autologout.
    pub pop3_timeout: Duration,
    /// Connections open at once, all services together.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_connections_per_ip: usize,
    /// Most `Received:` headers a message may carry; more are taken for a loop.
    pub max_hops: usize,
    /// Networks where AUTH and USER/PASS are allowed without TLS.
    pub plaintext_auth_networks: Vec<IpNet>,
    /// Networks that may relay without AUTH.
    pub trusted_networks: Vec<IpNet>,
    /// Pause before answering a failed login, growing with repeated failures.
    pub login_failure_delay: Duration,
    /// Clients whose mail is not checked with SPF/DKIM/DMARC, besides
    /// authenticated sessions and `trusted_networks`: our own hosts, whose
    /// mail from local domains is DKIM-signed on its way out instead.
    /// Default: loopback (like OpenDKIM's `InternalHosts`), so local
    /// injectors and filters are not checked against public DNS.
    pub mail_auth_exempt: Vec<IpNet>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hostname: "localhost".to_string(),
            local_domains: BTreeSet::new(),
            postmaster: None,
            // 25 MiB: what the large providers accept, and room for attachments.
            max_message_size: 25 * 1024 * 1024,
            // RFC 5321 §4.5.3.1.8: at least 100 recipients must be accepted.
            max_recipients: 100,
            // Postfix's smtpd_hard_error_limit.
            max_errors: 20,
            // Off by default: they let anyone harvest addresses.
            vrfy: false,
            expn: false,
            // RFC 5321 §4.5.3.2.7: the server waits at least 5 minutes for a command.
            command_timeout: Duration::from_secs(300),
            // RFC 5321 §4.5.3.2.5: 3 minutes per data block.
            data_timeout: Duration::from_secs(180),
            // Postfix's smtpd_min_data_rate: a client trickling a byte per
            // block timeout cannot hold a connection for days.
            min_data_rate: 500,
            // RFC 1939 §3: the autologout timer is at least 10 minutes.
            pop3_timeout: Duration::from_secs(600),
            max_connections: 4096,
            // Postfix's smtpd_client_connection_count_limit.
            max_connections_per_ip: 50,
            // RFC 5321 §6.3: a hop count of about 100.
            max_hops: 100,
            plaintext_auth_networks: vec![
                "127.0.0.0/8".parse().unwrap_or_else(|_| IpNet::default()),
                "::1/128".parse().unwrap_or_else(|_| IpNet::default()),
            ],
            trusted_networks: Vec::new(),
            login_failure_delay: Duration::from_secs(1),
            mail_auth_exempt: vec![
                "127.0.0.0/8".parse().unwrap_or_else(|_| IpNet::default()),
                "::1/128".parse().unwrap_or_else(|_| IpNet::default()),
            ],
        }
    }
}

impl ServerConfig {
    /// True when `domain` is one of ours (mail for it is delivered locally).
    pub fn is_local_domain(&self, domain: &Domain) -> bool {
        // `localhost` is always us (RFC 6761 §6.3): `sendmail user` run
        // without the server's config qualifies bare names with it.
        self.local_domains.contains(domain)
            || domain.as_str().eq_ignore_ascii_case(&self.hostname)
            || domain.as_str() == "localhost"
    }

    /// True when mail from a client at `ip` is not verified (SPF, DKIM,
    /// DMARC): a trusted or exempt network.
    pub fn mail_auth_exempt(&self, ip: IpAddr) -> bool {
        self.trusted_networks
            .iter()
            .chain(&self.mail_auth_exempt)
            .any(|net| net.contains(&ip))
    }

    /// True when a client at `ip` may log in without TLS.
    pub fn plaintext_auth_allowed(&self, ip: IpAddr) -> bool {
        self.plaintext_auth_networks
            .iter()
            .any(|net| net.contains(&ip))
    }
}
