//! The configuration file, in two steps (STYLE.md §2.6): [`RawConfig`]
//! mirrors the TOML with every field optional; flags are merged into it; and
//! [`Settings::resolve`] validates once, producing typed values.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use ipnet::IpNet;
use mailroom_core::Domain;
use mailroom_server::ServerConfig;
use serde::Deserialize;

use crate::cli::{Cli, ServeArgs};

/// The TOML file as written. Unknown keys are errors, so a typo never
/// silently falls back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub hostname: Option<String>,
    pub domains: Option<Vec<String>>,
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    pub store_pool_size: Option<u32>,
    pub postmaster: Option<String>,
    pub run_as: Option<String>,
    pub trusted_networks: Option<Vec<IpNet>>,
    pub plaintext_auth_networks: Option<Vec<IpNet>>,
    pub relay_map: Option<std::collections::BTreeMap<String, String>>,
    pub dns: Option<String>,
    pub listen: Option<RawListen>,
    pub smtp: Option<RawSmtp>,
    pub pop3: Option<RawPop3>,
    pub limits: Option<RawLimits>,
    pub queue: Option<RawQueue>,
    pub tls: Option<RawTls>,
    pub mail_auth: Option<RawMailAuth>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMailAuth {
    /// Check SPF, DKIM and DMARC on mail arriving on the SMTP port.
    pub verify: Option<bool>,
    /// DKIM-sign relayed mail from domains with a key in the store.
    pub sign: Option<bool>,
    /// Refuse DMARC failures of p=reject domains (550 5.7.1).
    pub dmarc_reject: Option<bool>,
    /// Flag DMARC failures of p=quarantine domains (X-Spam-Flag: YES).
    pub dmarc_quarantine: Option<bool>,
    /// SPF fail: "mark" (header only) or "reject" (550 5.7.23).
    pub spf_fail: Option<String>,
    /// DNS failure leaving the verdict open: "tempfail" (451) or "accept".
    pub dns_error: Option<String>,
    /// Clients not checked (besides authenticated and trusted ones).
    pub exempt_networks: Option<Vec<IpNet>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListen {
    pub smtp: Option<String>,
    pub submission: Option<String>,
    pub smtps: Option<String>,
    pub pop3: Option<String>,
    pub pop3s: Option<String>,
    /// Prometheus endpoint; off by default.
    pub metrics: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSmtp {
    pub max_message_size: Option<u64>,
    pub max_recipients: Option<usize>,
    pub max_errors: Option<u32>,
    pub max_hops: Option<usize>,
    pub vrfy: Option<bool>,
    pub expn: Option<bool>,
    /// Seconds to wait for the next command (RFC 5321 §4.5.3.2.7).
    pub command_timeout: Option<u64>,
    /// Seconds to wait for the next block of message data (§4.5.3.2.5).
    pub data_timeout: Option<u64>,
    /// Slowest message data accepted, octets per second (0: no minimum).
    pub min_data_rate: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPop3 {
    /// Seconds of inactivity before autologout (RFC 1939 §3).
    pub timeout: Option<u64>,
    /// Seconds of delay after a failed login (grows with repeated failures).
    pub login_failure_delay: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueue {
    /// Delays between attempts, e.g. ["5m", "10m", "20m", "40m", "1h"]; the
    /// last one repeats.
    pub retry_schedule: Option<Vec<String>>,
    /// Give up (bounce) after this long, e.g. "5d".
    pub max_age: Option<String>,
    /// Send a delay notice after this long ("off" for never), e.g. "4h".
    pub delay_notice_after: Option<String>,
    /// TCP port of remote mail exchangers (25; tests point it elsewhere).
    pub smtp_port: Option<u16>,
    /// Domains whose mail must go over STARTTLS (else: opportunistic).
    pub require_tls: Option<Vec<String>>,
    /// Open connections to one destination at most.
    pub max_connections_per_destination: Option<usize>,
    /// Deliveries in progress at once.
    pub max_workers: Option<usize>,
    /// How long a claim on a queue entry lasts without renewal, e.g. "10m":
    /// how soon another node takes over the work of one that died.
    pub lease: Option<String>,
    /// Ceiling on every wait for a receiving server's reply, e.g. "2m"
    /// (default: RFC 5321's own timeouts, 2 to 10 minutes).
    pub reply_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    /// PEM certificate chain. Default: DATA_DIR/tls/cert.pem, generated
    /// self-signed for the hostname on first start.
    pub cert: Option<PathBuf>,
    /// PEM private key. Default: DATA_DIR/tls/key.pem.
    pub key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
}

/// Reads the config file named by `--config`, or an empty one.
pub(crate) fn load_raw(cli: &Cli) -> anyhow::Result<RawConfig> {
    match &cli.config {
        Some(path) => read_raw(path),
        None => Ok(RawConfig::default()),
    }
}

/// Reads and parses one config file.
pub(crate) fn read_raw(path: &Path) -> anyhow::Result<RawConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config {}", path.display()))
}

/// The data dir when neither flag, environment nor config names one.
pub(crate) const DEFAULT_DATA_DIR: &str = "./mailroom-data";

/// The store when neither flag nor config names one.
pub(crate) const DEFAULT_STORE: &str = "maildir:";

/// The data dir: flag, then `MAILROOM_DATA_DIR`, then the config, then [`DEFAULT_DATA_DIR`].
pub(crate) fn data_dir(cli: &Cli, raw: &RawConfig) -> PathBuf {
    data_dir_from(cli.data_dir.as_deref(), raw)
}

/// [`data_dir`] for callers without a parsed [`Cli`] (sendmail).
pub(crate) fn data_dir_from(flag: Option<&Path>, raw: &RawConfig) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_path_buf();
    }
    if let Some(dir) = std::env::var_os("MAILROOM_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = &raw.data_dir {
        return dir.clone();
    }
    PathBuf::from(DEFAULT_DATA_DIR)
}

/// The store URL: flag, then config, then the embedded default.
pub(crate) fn store_url(cli: &Cli, raw: &RawConfig) -> anyhow::Result<String> {
    let url = cli
        .store
        .clone()
        .or_else(|| raw.store.clone())
        .unwrap_or_else(|| DEFAULT_STORE.to_string());
    if url == "maildir:" || url.starts_with("maildir:") {
        return Ok(url);
    }
    if crate::stores::is_postgres(&url) {
        return Ok(url);
    }
    bail!("unknown store {url:?}: expected maildir: or postgres://…")
}

/// Fails clearly when a command that does not create the data dir finds none.
pub(crate) fn require_data_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.is_dir() {
        bail!(
            "data dir {} does not exist (run `mailroom serve` or `mailroom user add` first)",
            dir.display()
        );
    }
    Ok(())
}

/// Typed settings for `serve`. `Debug` lets a test compare what the
/// documented defaults and an empty file resolve to (config_keys.rs).
#[derive(Debug)]
pub(crate) struct Settings {
    pub server: ServerConfig,
    pub listen: Vec<(mailroom_server::ListenerKind, SocketAddr)>,
    pub run_as: Option<String>,
    /// Connections `serve` keeps to PostgreSQL. Default: the store's (20).
    pub store_pool_size: u32,
    /// Certificate and key paths from the config (`None`: the data dir's
    /// generated pair).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub mta: mailroom_mta::MtaConfig,
    /// Where the Prometheus endpoint listens, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// SPF/DKIM/DMARC verification and DKIM signing.
    pub mail_auth: MailAuthSettings,
}

/// The `[mail_auth]` table, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MailAuthSettings {
    /// Verify inbound mail on the SMTP port. Default: true.
    pub verify: bool,
    /// Sign outbound mail with the store's DKIM keys. Default: true.
    pub sign: bool,
    /// What verification does with its results.
    pub policy: mailroom_mailauth::VerifyPolicy,
}

/// Parses `30s`, `5m`, `2h`, `5d` or a plain number of seconds.
pub(crate) fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .with_context(|| format!("{text:?} is not a duration like 30s, 5m, 2h, 5d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("{text:?} is not a duration like 30s, 5m, 2h, 5d"),
    };
    Ok(Duration::from_secs(secs))
}

impl Settings {
    /// Merges flags over the file and validates everything once.
    pub(crate) fn resolve(raw: RawConfig, args: &ServeArgs) -> anyhow::Result<Settings> {
        use mailroom_server::ListenerKind as K;
        let mut server = ServerConfig::default();
        let hostname = args
            .hostname
            .clone()
            .or(raw.hostname)
            .unwrap_or_else(|| "localhost".to_string());
        Domain::parse(&hostname, false).with_context(|| format!("hostname {hostname:?}"))?;
        server.hostname = hostname.to_lowercase();
        let mut domains = BTreeSet::new();
        for name in raw
            .domains
            .unwrap_or_default()
            .iter()
            .chain(args.domains.iter())
        {
            domains.insert(Domain::parse(name, true).with_context(|| format!("domain {name:?}"))?);
        }
        server.local_domains = domains;
        server.postmaster = raw.postmaster.map(|p| p.to_lowercase());
        if let Some(nets) = raw.trusted_networks {
            server.trusted_networks = nets;
        }
        if let Some(nets) = raw.plaintext_auth_networks {
            server.plaintext_auth_networks = nets;
        }
        let smtp = raw.smtp.unwrap_or_default();
        if let Some(v) = smtp.max_message_size {
            server.max_message_size = v;
        }
        if let Some(v) = smtp.max_recipients {
            if v < 100 {
                bail!("smtp.max_recipients: RFC 5321 §4.5.3.1.8 requires at least 100");
            }
            server.max_recipients = v;
        }
        if let Some(v) = smtp.max_errors {
            server.max_errors = v;
        }
        if let Some(v) = smtp.max_hops {
            server.max_hops = v;
        }
        if let Some(v) = smtp.vrfy {
            server.vrfy = v;
        }
        if let Some(v) = smtp.expn {
            server.expn = v;
        }
        if let Some(v) = smtp.command_timeout {
            server.command_timeout = Duration::from_secs(v.max(1));
        }
        if let Some(v) = smtp.data_timeout {
            server.data_timeout = Duration::from_secs(v.max(1));
        }
        if let Some(v) = smtp.min_data_rate {
            server.min_data_rate = v;
        }
        let pop3 = raw.pop3.unwrap_or_default();
        if let Some(v) = pop3.timeout {
            server.pop3_timeout = Duration::from_secs(v.max(1));
        }
        if let Some(v) = pop3.login_failure_delay {
            if !(0.0..=60.0).contains(&v) {
                bail!("pop3.login_failure_delay: between 0 and 60 seconds");
            }
            server.login_failure_delay = Duration::from_secs_f64(v);
        }
        let limits = raw.limits.unwrap_or_default();
        if let Some(v) = limits.max_connections {
            server.max_connections = v.max(1);
        }
        if let Some(v) = limits.max_connections_per_ip {
            server.max_connections_per_ip = v.max(1);
        }

        let file = raw.listen.unwrap_or_default();
        let mut listen = Vec::new();
        let table = [
            (K::Smtp, &args.smtp, &file.smtp, "127.0.0.1:2525"),
            (
                K::Submission,
                &args.submission,
                &file.submission,
                "127.0.0.1:2587",
            ),
            (K::Smtps, &args.smtps, &file.smtps, "127.0.0.1:2465"),
            (K::Pop3, &args.pop3, &file.pop3, "127.0.0.1:1100"),
            (K::Pop3s, &args.pop3s, &file.pop3s, "127.0.0.1:1995"),
        ];
        for (kind, flag, from_file, default) in table {
            let value = flag
                .clone()
                .or_else(|| from_file.clone())
                .unwrap_or_else(|| default.to_string());
            if value.eq_ignore_ascii_case("off") {
                continue;
            }
            let addr: SocketAddr = value
                .parse()
                .with_context(|| format!("listen.{}: {value:?} is not an address like 127.0.0.1:25 or [::1]:25 (or `off`)", kind.name()))?;
            listen.push((kind, addr));
        }
        let mut mta = mailroom_mta::MtaConfig {
            hostname: server.hostname.clone(),
            ..Default::default()
        };
        let mut relay: Vec<(String, String)> =
            raw.relay_map.unwrap_or_default().into_iter().collect();
        for entry in &args.relay_map {
            let Some((domain, target)) = entry.split_once('=') else {
                bail!("--relay-map {entry:?}: expected DOMAIN=HOST:PORT");
            };
            relay.push((domain.trim().to_lowercase(), target.trim().to_string()));
        }
        mta.relay_map = relay;
        if let Some(dns) = args.dns.clone().or(raw.dns) {
            mta.dns = Some(
                dns.parse()
                    .with_context(|| format!("dns: {dns:?} is not HOST:PORT like 127.0.0.1:53"))?,
            );
        }
        let queue = raw.queue.unwrap_or_default();
        if let Some(list) = queue.retry_schedule {
            let schedule = list
                .iter()
                .map(|d| parse_duration(d))
                .collect::<anyhow::Result<Vec<_>>>()
                .context("queue.retry_schedule")?;
            if schedule.is_empty() {
                bail!("queue.retry_schedule: at least one delay");
            }
            mta.policy.schedule = schedule;
        }
        if let Some(age) = queue.max_age {
            mta.policy.max_age = parse_duration(&age).context("queue.max_age")?;
        }
        if let Some(after) = queue.delay_notice_after {
            mta.policy.delay_notice_after = if after == "off" {
                None
            } else {
                Some(parse_duration(&after).context("queue.delay_notice_after")?)
            };
        }
        if let Some(port) = queue.smtp_port {
            mta.smtp_port = port;
        }
        if let Some(domains) = queue.require_tls {
            mta.require_tls = domains.into_iter().map(|d| d.to_lowercase()).collect();
        }
        if let Some(n) = queue.max_connections_per_destination {
            mta.max_connections_per_destination = n.max(1);
        }
        if let Some(n) = queue.max_workers {
            mta.max_workers = n.max(1);
        }
        if let Some(lease) = queue.lease {
            let lease = parse_duration(&lease).context("queue.lease")?;
            if lease.is_zero() {
                bail!("queue.lease: must be at least 1s");
            }
            mta.lease = lease;
        }
        if let Some(ceiling) = queue.reply_timeout {
            let ceiling = parse_duration(&ceiling).context("queue.reply_timeout")?;
            if ceiling.is_zero() {
                bail!("queue.reply_timeout: must be at least 1s");
            }
            mta.reply_timeout = Some(ceiling);
        }
        let metrics = match args.metrics.clone().or(file.metrics.clone()) {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("off") => None,
            Some(v) => Some(v.parse::<SocketAddr>().with_context(|| {
                format!("listen.metrics: {v:?} is not an address like 127.0.0.1:9587 (or `off`)")
            })?),
        };
        let auth = raw.mail_auth.unwrap_or_default();
        let mut policy = mailroom_mailauth::VerifyPolicy::default();
        if let Some(v) = auth.dmarc_reject {
            policy.dmarc_reject = v;
        }
        if let Some(v) = auth.dmarc_quarantine {
            policy.dmarc_quarantine = v;
        }
        if let Some(v) = auth.spf_fail {
            policy.spf_fail = match v.as_str() {
                "mark" => mailroom_mailauth::SpfFailAction::Mark,
                "reject" => mailroom_mailauth::SpfFailAction::Reject,
                _ => bail!("mail_auth.spf_fail: {v:?} is not \"mark\" or \"reject\""),
            };
        }
        if let Some(v) = auth.dns_error {
            policy.temp_fail_on_dns_error = match v.as_str() {
                "tempfail" => true,
                "accept" => false,
                _ => bail!("mail_auth.dns_error: {v:?} is not \"tempfail\" or \"accept\""),
            };
        }
        if let Some(nets) = auth.exempt_networks {
            server.mail_auth_exempt = nets;
        }
        let mail_auth = MailAuthSettings {
            verify: auth.verify.unwrap_or(true),
            sign: auth.sign.unwrap_or(true),
            policy,
        };
        let tls = raw.tls.unwrap_or_default();
        if tls.cert.is_some() != tls.key.is_some() {
            bail!("tls.cert and tls.key go together: set both or neither");
        }
        if raw.store_pool_size == Some(0) {
            bail!("store_pool_size: must be at least 1");
        }
        Ok(Settings {
            server,
            listen,
            run_as: raw.run_as,
            store_pool_size: raw
                .store_pool_size
                .unwrap_or(mailroom_store_postgres::PgOptions::default().max_connections),
            tls_cert: tls.cert,
            tls_key: tls.key,
            mta,
            metrics,
            mail_auth,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn serve_args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["mailroom", "serve"];
        argv.extend_from_slice(extra);
        match Cli::parse_from(argv).command {
            crate::cli::Command::Serve(args) => args,
            _ => unreachable!("parsed serve"),
        }
    }

    #[test]
    fn unknown_keys_and_bad_listeners_are_errors() {
        assert!(toml::from_str::<RawConfig>("hostnme = \"x\"").is_err());
        assert!(toml::from_str::<RawConfig>("[smtp]\nvrfyy = true").is_err());
        let raw: RawConfig = toml::from_str("[listen]\nsmtp = \"nonsense\"").unwrap_or_default();
        assert!(Settings::resolve(raw, &serve_args(&[])).is_err());
    }

    #[test]
    fn mail_auth_values_are_checked_and_default_safely() {
        let settings = Settings::resolve(RawConfig::default(), &serve_args(&[]));
        let settings = match settings {
            Ok(s) => s,
            Err(err) => panic!("{err}"),
        };
        assert!(settings.mail_auth.verify && settings.mail_auth.sign);
        assert!(settings.mail_auth.policy.dmarc_reject);
        assert_eq!(
            settings.mail_auth.policy.spf_fail,
            mailroom_mailauth::SpfFailAction::Mark
        );
        assert_eq!(settings.server.mail_auth_exempt.len(), 2);
        for (toml, key) in [
            ("[mail_auth]\nspf_fail = \"drop\"", "mail_auth.spf_fail"),
            ("[mail_auth]\ndns_error = \"ignore\"", "mail_auth.dns_error"),
        ] {
            let raw: RawConfig = toml::from_str(toml).unwrap_or_default();
            match Settings::resolve(raw, &serve_args(&[])) {
                Ok(_) => panic!("{toml} must be refused"),
                Err(err) => assert!(err.to_string().contains(key), "{err}"),
            }
        }
        let raw: RawConfig = toml::from_str(
            "[mail_auth]\nspf_fail = \"reject\"\nexempt_networks = []\nverify = false",
        )
        .unwrap_or_default();
        let settings = Settings::resolve(raw, &serve_args(&[])).ok();
        let settings = settings.as_ref();
        assert_eq!(
            settings.map(|s| s.mail_auth.policy.spf_fail),
            Some(mailroom_mailauth::SpfFailAction::Reject)
        );
        assert_eq!(settings.map(|s| s.server.mail_auth_exempt.len()), Some(0));
        assert_eq!(settings.map(|s| s.mail_auth.verify), Some(false));
    }

    #[test]
    fn flags_override_the_file_and_off_disables() {
        let raw: RawConfig =
            toml::from_str("hostname = \"file.example\"\n[listen]\nsmtp = \"127.0.0.1:25\"")
                .unwrap_or_default();
        let args = serve_args(&[
            "--hostname",
            "Flag.Example",
            "--smtp",
            "127.0.0.1:0",
            "--pop3",
            "off",
            "--domain",
            "Example.TEST",
        ]);
        let settings = match Settings::resolve(raw, &args) {
            Ok(s) => s,
            Err(err) => panic!("{err}"),
        };
        assert_eq!(settings.server.hostname, "flag.example");
        assert!(
            settings
                .listen
                .iter()
                .all(|(k, _)| *k != mailroom_server::ListenerKind::Pop3)
        );
        let smtp = settings
            .listen
            .iter()
            .find(|(k, _)| *k == mailroom_server::ListenerKind::Smtp);
        assert_eq!(smtp.map(|(_, a)| a.port()), Some(0));
        assert!(
            settings
                .server
                .local_domains
                .iter()
                .any(|d| d.as_str() == "example.test")
        );
    }
}
