//! `mailroom dkim generate|show`: DKIM keys in the store and the DNS
//! records a domain publishes; and [`load_signer`], which `serve` uses.
//!
//! Keys go through the store (`mailroom_store::DkimKeyStore`), so with
//! `--store postgres://…` every node signs with the keys any node
//! generated. The embedded store keeps them in
//! `DATA_DIR/dkim/DOMAIN/SELECTOR.key` (PEM, mode 0600). A domain may hold
//! several selectors while a new key is being published; the newest signs.

use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, bail};
use mailroom_core::Domain;
use mailroom_mailauth::keys::{self, Algorithm, PrivateKey};
use mailroom_mailauth::{DomainKey, Signer};
use mailroom_store::{DkimAlgorithm, DkimKey, DkimKeyStore, NewDkimKey, StoreError};
use mailroom_store_maildir::MaildirDkimKeys;

use crate::cli::{Cli, DkimCommand};

/// Every domain's signing key (its newest), for `serve`. A key that does
/// not parse is an error: better to refuse to start than to send unsigned
/// mail from a domain that publishes p=reject.
pub(crate) async fn load_signer(store: &dyn DkimKeyStore) -> anyhow::Result<Signer> {
    let mut keys: Vec<DomainKey> = Vec::new();
    for stored in store.dkim_keys().await.context("reading the DKIM keys")? {
        // Listed newest first within a domain: the first one signs.
        if keys.last().is_some_and(|k| k.domain == stored.domain) {
            continue;
        }
        let key = parse(&stored)?;
        tracing::info!(domain = %stored.domain, selector = %stored.selector, algorithm = %key.algorithm().signature_algorithm(), "DKIM signing key");
        keys.push(DomainKey {
            domain: stored.domain,
            selector: stored.selector,
            key,
        });
    }
    Ok(Signer::new(keys))
}

/// The embedded store's keys in `data_dir`, read without opening (or
/// creating) anything else: `serve` reads them before it drops privileges.
pub(crate) async fn load_signer_from_files(data_dir: &Path) -> anyhow::Result<Signer> {
    load_signer(&MaildirDkimKeys::new(data_dir)).await
}

fn parse(stored: &DkimKey) -> anyhow::Result<PrivateKey> {
    PrivateKey::from_pem(stored.private_pem.as_bytes())
        .with_context(|| format!("DKIM key of {} selector {}", stored.domain, stored.selector))
}

pub(crate) fn run(cli: &Cli, cmd: &DkimCommand) -> anyhow::Result<()> {
    let raw = crate::config::load_raw(cli)?;
    let data_dir = crate::config::data_dir(cli, &raw);
    let store_url = crate::config::store_url(cli, &raw)?;
    let postgres = crate::stores::is_postgres(&store_url);
    if !postgres {
        // Key files written by root (0600) would be unreadable to the
        // server once it runs as `run_as` (a SIGHUP reload reads them).
        crate::privileges::become_run_as(raw.run_as.as_deref(), &data_dir)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = crate::stores::open_dkim(&store_url, &data_dir).await?;
        let place = if postgres {
            "the PostgreSQL store".to_string()
        } else {
            data_dir.join("dkim").display().to_string()
        };
        match cmd {
            DkimCommand::Generate {
                domain,
                selector,
                algorithm,
            } => {
                let domain = parse_domain(domain)?;
                if mailroom_store::dkim::check_selector(selector).is_err() {
                    bail!(crate::UsageError(format!(
                        "selector {selector:?}: letters, digits, hyphens and dots only"
                    )));
                }
                let algorithm: Algorithm = algorithm
                    .parse()
                    .map_err(|e| crate::UsageError(format!("{e}")))?;
                if !postgres {
                    crate::serve::create_data_dir(&data_dir)?;
                }
                let pair = keys::generate(algorithm)?;
                let added = store
                    .add_dkim_key(NewDkimKey {
                        domain: domain.clone(),
                        selector: selector.clone(),
                        algorithm: match algorithm {
                            Algorithm::Rsa => DkimAlgorithm::Rsa,
                            Algorithm::Ed25519 => DkimAlgorithm::Ed25519,
                        },
                        private_pem: pair.private_pem,
                    })
                    .await;
                match added {
                    Ok(_) => {}
                    Err(StoreError::KeyExists(_)) => bail!(
                        "{domain} already has a key with selector {selector} in {place}: \
                         pick another --selector to add a key (the newest one signs)"
                    ),
                    Err(e) => return Err(e).context("storing the DKIM key"),
                }
                eprintln!(
                    "mailroom: stored the {} key {selector} of {domain} in {place}; \
                     restart serve to sign with it",
                    algorithm.signature_algorithm()
                );
                print_records(store.as_ref(), &place, &domain).await
            }
            DkimCommand::Show { domain } => {
                let domain = parse_domain(domain)?;
                print_records(store.as_ref(), &place, &domain).await
            }
        }
    })
}

fn parse_domain(text: &str) -> anyhow::Result<String> {
    let domain = Domain::parse(text.trim_end_matches('.'), true)
        .map_err(|e| crate::UsageError(format!("domain {text:?}: {e}")))?;
    Ok(domain.as_str().to_ascii_lowercase())
}

/// Prints the TXT records for `domain` as zone-file lines, each after a
/// `;` comment: every DKIM key (the signing one first), then SPF and DMARC.
async fn print_records(store: &dyn DkimKeyStore, place: &str, domain: &str) -> anyhow::Result<()> {
    let found: Vec<DkimKey> = store
        .dkim_keys()
        .await
        .context("reading the DKIM keys")?
        .into_iter()
        .filter(|k| k.domain == domain)
        .collect();
    if found.is_empty() {
        bail!("no DKIM key for {domain} in {place} (run `mailroom dkim generate {domain}`)");
    }
    let mut out = String::new();
    for (i, stored) in found.iter().enumerate() {
        let key = parse(stored)?;
        let role = if i == 0 {
            "signs"
        } else {
            "older; keep published until mail signed with it is delivered"
        };
        out.push_str(&format!(
            "; DKIM public key of {domain}, selector {} ({}; {role})\n",
            stored.selector,
            key.algorithm().signature_algorithm(),
        ));
        out.push_str(&keys::zone_line(
            &keys::record_name(&stored.selector, domain),
            &key.txt_value(),
        ));
        out.push('\n');
    }
    out.push_str(&format!(
        "; SPF (RFC 7208): the hosts allowed to send mail from @{domain}; \"mx\" means its\n\
         ; MX hosts, so this fits when this server is also the MX (else list it: ip4:ADDR)\n"
    ));
    out.push_str(&keys::zone_line(domain, "v=spf1 mx -all"));
    out.push('\n');
    out.push_str(
        "; DMARC (RFC 7489): what receivers do with mail failing both SPF and DKIM\n\
         ; alignment; aggregate reports go to postmaster. p=none only watches.\n",
    );
    out.push_str(&keys::zone_line(
        &format!("_dmarc.{domain}"),
        &format!("v=DMARC1; p=quarantine; adkim=r; aspf=r; rua=mailto:postmaster@{domain}"),
    ));
    out.push('\n');
    std::io::stdout()
        .write_all(out.as_bytes())
        .context("writing to stdout")
}
