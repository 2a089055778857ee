//! SIGHUP: `serve` reads its configuration again (the same `--config` file
//! and flags, flags still winning), reloads the DKIM keys from the store
//! and the TLS certificate, and puts them in force for sessions and
//! deliveries that start from then on. A configuration that does not
//! validate is refused whole and the old one stays; settings that only a
//! restart can change keep their old values, named in one warning.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use mailroom_mta::Mta;
use mailroom_server::tls::TlsHandle;
use mailroom_server::{Context, ListenerKind};
use mailroom_store::DkimKeyStore;

use crate::cli::{Cli, ServeArgs};
use crate::config::{self, Settings};

/// What `serve` set up at start and cannot change while it runs: sockets
/// are bound, privileges dropped, the store opened, the worker pool sized.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fixed {
    listen: Vec<(ListenerKind, SocketAddr)>,
    metrics: Option<SocketAddr>,
    run_as: Option<String>,
    pub data_dir: PathBuf,
    store_url: String,
    store_pool_size: u32,
    max_workers: usize,
}

impl Fixed {
    pub(crate) fn of(settings: &Settings, data_dir: &std::path::Path, store_url: &str) -> Fixed {
        Fixed {
            listen: settings.listen.clone(),
            metrics: settings.metrics,
            run_as: settings.run_as.clone(),
            data_dir: data_dir.to_path_buf(),
            store_url: store_url.to_string(),
            store_pool_size: settings.store_pool_size,
            max_workers: settings.mta.max_workers,
        }
    }

    /// The config keys whose values differ in `new`: each needs a restart.
    fn changed_keys(&self, new: &Fixed) -> Vec<String> {
        let mut keys = Vec::new();
        for kind in [
            ListenerKind::Smtp,
            ListenerKind::Submission,
            ListenerKind::Smtps,
            ListenerKind::Pop3,
            ListenerKind::Pop3s,
        ] {
            let find = |list: &[(ListenerKind, SocketAddr)]| {
                list.iter().find(|(k, _)| *k == kind).map(|(_, a)| *a)
            };
            if find(&self.listen) != find(&new.listen) {
                keys.push(format!("listen.{}", kind.name()));
            }
        }
        if self.metrics != new.metrics {
            keys.push("listen.metrics".into());
        }
        if self.data_dir != new.data_dir {
            keys.push("data_dir".into());
        }
        if self.store_url != new.store_url {
            keys.push("store".into());
        }
        if self.store_pool_size != new.store_pool_size {
            keys.push("store_pool_size".into());
        }
        if self.run_as != new.run_as {
            keys.push("run_as".into());
        }
        if self.max_workers != new.max_workers {
            keys.push("queue.max_workers".into());
        }
        keys
    }
}

/// Everything a reload swaps, and where it reads from.
pub(crate) struct Reloader<'a> {
    pub cli: &'a Cli,
    pub args: &'a ServeArgs,
    pub fixed: Fixed,
    pub ctx: Arc<Context>,
    pub mta: Arc<Mta>,
    pub tls: Arc<TlsHandle>,
    pub dkim: Arc<dyn DkimKeyStore>,
}

impl Reloader<'_> {
    /// One SIGHUP: logs what happened, never fails the server.
    pub(crate) async fn reload(&self) {
        match self.reload_config().await {
            Ok(summary) => tracing::info!(
                domains = summary.domains,
                dkim_keys = summary.dkim_keys,
                "SIGHUP: configuration reloaded; new sessions use it"
            ),
            Err(problems) => tracing::error!(
                problems = %problems.join("; "),
                "SIGHUP: configuration refused; the old one stays in force"
            ),
        }
    }

    /// Reads, validates and applies the configuration; `Err` carries every
    /// problem found, and then nothing was changed.
    async fn reload_config(&self) -> Result<Summary, Vec<String>> {
        let (settings, fixed) = self.read()?;
        let restart = self.fixed.changed_keys(&fixed);
        if !restart.is_empty() {
            tracing::warn!(
                keys = %restart.join(", "),
                "SIGHUP: these settings change only with a restart; their old values stay in force"
            );
        }
        crate::serve::warn_if_hostname_unqualified(&settings);
        // Everything fallible comes first, so a refusal changes nothing.
        let verifier = crate::serve::verifier(&settings).map_err(|e| vec![format!("{e:#}")])?;
        let signer = if settings.mail_auth.sign {
            crate::dkim::load_signer(self.dkim.as_ref())
                .await
                .map_err(|e| vec![format!("{e:#}")])?
        } else {
            mailroom_mailauth::Signer::default()
        };
        let dkim_keys = signer.describe().len();
        let mut mta = settings.mta;
        mta.max_workers = self.fixed.max_workers;
        self.mta
            .reconfigure(mta, signer)
            .map_err(|e| vec![format!("outbound delivery: {e}")])?;
        let domains = settings.server.local_domains.len();
        self.ctx.reconfigure(settings.server, verifier);
        // The certificate stands apart: a bad one keeps the old one in use
        // but does not hold back the rest (as before configuration reload).
        match crate::serve::tls_files_for(
            settings.tls_cert.as_deref(),
            settings.tls_key.as_deref(),
            &self.fixed.data_dir,
            &self.ctx.config().hostname,
        ) {
            Ok((cert, key)) => match self.tls.reload_from(&cert, &key) {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                Err(err) => {
                    tracing::error!(error = %err, "SIGHUP: certificate not reloaded; keeping the old one")
                }
            },
            Err(err) => {
                tracing::error!(error = %format!("{err:#}"), "SIGHUP: certificate not reloaded; keeping the old one")
            }
        }
        Ok(Summary { domains, dkim_keys })
    }

    /// The configuration as `serve` would resolve it at start now.
    fn read(&self) -> Result<(Settings, Fixed), Vec<String>> {
        let resolved = config::load_raw(self.cli).and_then(|raw| {
            let data_dir = config::data_dir(self.cli, &raw);
            let store_url = config::store_url(self.cli, &raw)?;
            let settings = Settings::resolve(raw, self.args)?;
            let fixed = Fixed::of(&settings, &data_dir, &store_url);
            Ok((settings, fixed))
        });
        match resolved {
            Ok(found) => Ok(found),
            Err(err) => {
                // Name every problem, as `mailroom check` would, when the
                // file can be read; else the one error there is.
                let listed = self
                    .cli
                    .config
                    .as_ref()
                    .and_then(|path| std::fs::read_to_string(path).ok())
                    .map(|text| crate::check::problems(&text))
                    .unwrap_or_default();
                if listed.is_empty() {
                    Err(vec![format!("{err:#}")])
                } else {
                    Err(listed)
                }
            }
        }
    }
}

struct Summary {
    domains: usize,
    dkim_keys: usize,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn fixed(toml: &str) -> Fixed {
        let raw: config::RawConfig = match toml::from_str(toml) {
            Ok(raw) => raw,
            Err(err) => panic!("{err}"),
        };
        let settings = match Settings::resolve(raw, &ServeArgs::default()) {
            Ok(settings) => settings,
            Err(err) => panic!("{err:#}"),
        };
        Fixed::of(&settings, Path::new("/d"), "maildir:")
    }

    #[test]
    fn restart_only_keys_are_named_and_live_ones_are_not() {
        let old = fixed("[listen]\nsmtp = \"127.0.0.1:25\"\npop3 = \"off\"\n");
        let live = fixed(
            "domains = [\"a.test\"]\n[listen]\nsmtp = \"127.0.0.1:25\"\npop3 = \"off\"\n\
             [smtp]\nvrfy = true\n[queue]\nretry_schedule = [\"1m\"]\n",
        );
        assert!(old.changed_keys(&live).is_empty());
        let moved = fixed(
            "run_as = \"mail\"\n[listen]\nsmtp = \"127.0.0.1:26\"\npop3 = \"127.0.0.1:110\"\n\
             metrics = \"127.0.0.1:9587\"\n[queue]\nmax_workers = 7\n",
        );
        assert_eq!(
            old.changed_keys(&moved),
            [
                "listen.smtp",
                "listen.pop3",
                "listen.metrics",
                "run_as",
                "queue.max_workers"
            ]
        );
    }
}
