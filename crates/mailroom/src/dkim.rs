//! `mailroom dkim generate|show`: DKIM keys in the data dir and the DNS
//! records a domain publishes; and [`load_signer`], which `serve` uses.
//!
//! Keys live in `DATA_DIR/dkim/DOMAIN/SELECTOR.key` (PEM, mode 0600, the
//! directories 0700). A domain may hold several selectors while a new key
//! is being published; the newest file (by modification time) signs.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, bail};
use mailroom_core::Domain;
use mailroom_mailauth::keys::{self, Algorithm, PrivateKey};
use mailroom_mailauth::{DomainKey, Signer};

use crate::cli::{Cli, DkimCommand};

/// Where a domain's keys are.
fn domain_dir(data_dir: &Path, domain: &str) -> PathBuf {
    data_dir.join("dkim").join(domain)
}

/// One key file found on disk.
struct KeyFile {
    selector: String,
    path: PathBuf,
    modified: SystemTime,
    key: PrivateKey,
}

/// The domain's keys, newest (the signing one) first. Files that are not
/// `SELECTOR.key` are ignored; a key file that does not parse is an error.
fn domain_keys(data_dir: &Path, domain: &str) -> anyhow::Result<Vec<KeyFile>> {
    let dir = domain_dir(data_dir, domain);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        let Some(selector) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".key"))
            .filter(|s| keys::valid_selector(s))
            .map(str::to_string)
        else {
            continue;
        };
        let pem = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let key =
            PrivateKey::from_pem(&pem).with_context(|| format!("DKIM key {}", path.display()))?;
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        found.push(KeyFile {
            selector,
            path,
            modified,
            key,
        });
    }
    found.sort_by(|a, b| {
        b.modified
            .cmp(&a.modified)
            .then_with(|| a.selector.cmp(&b.selector))
    });
    Ok(found)
}

/// Every domain's signing key, for `serve`. No `dkim` directory: no keys.
pub(crate) fn load_signer(data_dir: &Path) -> anyhow::Result<Signer> {
    let root = data_dir.join("dkim");
    let entries = match fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Signer::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", root.display())),
    };
    let mut keys = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", root.display()))?;
        let Some(domain) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !entry.path().is_dir() {
            continue;
        }
        if let Some(newest) = domain_keys(data_dir, &domain)?.into_iter().next() {
            tracing::info!(domain = %domain, selector = %newest.selector, algorithm = %newest.key.algorithm().signature_algorithm(), "DKIM signing key");
            keys.push(DomainKey {
                domain,
                selector: newest.selector,
                key: newest.key,
            });
        }
    }
    Ok(Signer::new(keys))
}

pub(crate) fn run(cli: &Cli, cmd: &DkimCommand) -> anyhow::Result<()> {
    let raw = crate::config::load_raw(cli)?;
    let data_dir = crate::config::data_dir(cli, &raw);
    match cmd {
        DkimCommand::Generate {
            domain,
            selector,
            algorithm,
        } => {
            let domain = parse_domain(domain)?;
            if !keys::valid_selector(selector) {
                bail!(crate::UsageError(format!(
                    "selector {selector:?}: letters, digits, hyphens and dots only"
                )));
            }
            let algorithm: Algorithm = algorithm
                .parse()
                .map_err(|e| crate::UsageError(format!("{e}")))?;
            crate::serve::create_data_dir(&data_dir)?;
            let path = domain_dir(&data_dir, &domain).join(format!("{selector}.key"));
            if path.exists() {
                bail!(
                    "{} exists: pick another --selector to add a key (the newest one signs)",
                    path.display()
                );
            }
            let pair = keys::generate(algorithm)?;
            write_key(&path, pair.private_pem.as_bytes())?;
            eprintln!(
                "mailroom: wrote {} ({}); restart serve to sign with it",
                path.display(),
                algorithm.signature_algorithm()
            );
            print_records(&data_dir, &domain)
        }
        DkimCommand::Show { domain } => {
            let domain = parse_domain(domain)?;
            print_records(&data_dir, &domain)
        }
    }
}

fn parse_domain(text: &str) -> anyhow::Result<String> {
    let domain = Domain::parse(text.trim_end_matches('.'), true)
        .map_err(|e| crate::UsageError(format!("domain {text:?}: {e}")))?;
    Ok(domain.as_str().to_ascii_lowercase())
}

/// Prints the TXT records for `domain` as zone-file lines, each after a
/// `;` comment: every DKIM key (the signing one first), then SPF and DMARC.
fn print_records(data_dir: &Path, domain: &str) -> anyhow::Result<()> {
    let found = domain_keys(data_dir, domain)?;
    if found.is_empty() {
        bail!(
            "no DKIM key for {domain} in {} (run `mailroom dkim generate {domain}`)",
            domain_dir(data_dir, domain).display()
        );
    }
    let mut out = String::new();
    for (i, file) in found.iter().enumerate() {
        let role = if i == 0 {
            "signs"
        } else {
            "older; keep published until mail signed with it is delivered"
        };
        out.push_str(&format!(
            "; DKIM public key of {domain}, selector {} ({}, {}; {role})\n",
            file.selector,
            file.key.algorithm().signature_algorithm(),
            file.path.display()
        ));
        out.push_str(&keys::zone_line(
            &keys::record_name(&file.selector, domain),
            &file.key.txt_value(),
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

/// Writes a new key file readable by its owner only: a temporary file
/// (0600, exclusive), fsync, rename, fsync of the directory.
fn write_key(path: &Path, pem: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("key path has no directory")?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    let result = (|| -> anyhow::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(pem)?;
        file.sync_all()?;
        fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
        mailroom_store_maildir::sync_dir(dir)
            .with_context(|| format!("syncing {}", dir.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
