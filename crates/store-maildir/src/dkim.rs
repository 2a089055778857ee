//! DKIM keys as files: `DATA_DIR/dkim/DOMAIN/SELECTOR.key` (PEM, mode
//! 0600; the directories 0700). The newest file (by modification time)
//! signs; its mtime is the key's `created`.
//!
//! A key is written to a temporary name in the domain's directory (0600,
//! exclusive create), fsync'd, hard-linked to `SELECTOR.key`, and the
//! directory fsync'd before `add` returns. A link, not a rename: it fails
//! when the name exists, so two `dkim generate` runs for one selector
//! cannot replace each other's key. Temporary names start with a dot and
//! do not end in `.key`, so a crash that leaves one behind adds no key.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use mailroom_store::dkim::{check_new_key, check_selector, pem_algorithm};
use mailroom_store::{DkimKey, DkimKeyStore, NewDkimKey, StoreError};

use crate::fsutil::sync_dir;
use crate::maildir::join_error;

/// The DKIM keys of one data dir. Opening it touches nothing, so `serve`
/// can read keys before it drops privileges without creating anything.
#[derive(Debug, Clone)]
pub struct MaildirDkimKeys {
    data_dir: PathBuf,
}

impl MaildirDkimKeys {
    /// The keys under `data_dir/dkim`.
    pub fn new(data_dir: &Path) -> Self {
        MaildirDkimKeys {
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// Where a domain's keys are: `DATA_DIR/dkim/DOMAIN`.
    pub fn domain_dir(&self, domain: &str) -> PathBuf {
        self.root().join(domain)
    }

    fn root(&self) -> PathBuf {
        self.data_dir.join(DKIM)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&MaildirDkimKeys) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || work(&this))
            .await
            .map_err(join_error)?
    }

    fn list(&self) -> Result<Vec<DkimKey>, StoreError> {
        let root = self.root();
        let mut domains: Vec<String> = Vec::new();
        for entry in read_dir(&root)? {
            let entry = entry.map_err(|e| io_error(&root, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !name.starts_with('.') && entry.path().is_dir() {
                domains.push(name);
            }
        }
        domains.sort();
        let mut keys = Vec::new();
        for domain in domains {
            keys.extend(self.domain_keys(&domain)?);
        }
        Ok(keys)
    }

    /// One domain's keys, newest first (equal times: by selector).
    fn domain_keys(&self, domain: &str) -> Result<Vec<DkimKey>, StoreError> {
        let dir = self.domain_dir(domain);
        let mut found = Vec::new();
        for entry in read_dir(&dir)? {
            let entry = entry.map_err(|e| io_error(&dir, e))?;
            let path = entry.path();
            let Some(selector) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(KEY_SUFFIX))
                .filter(|s| check_selector(s).is_ok())
                .map(str::to_string)
            else {
                continue;
            };
            let (key, modified) = read_key(&path, domain, selector)?;
            found.push((modified, key));
        }
        found.sort_by(|(a_time, a), (b_time, b)| {
            b_time.cmp(a_time).then_with(|| a.selector.cmp(&b.selector))
        });
        Ok(found.into_iter().map(|(_, key)| key).collect())
    }

    fn add(&self, key: NewDkimKey) -> Result<DkimKey, StoreError> {
        let domain = check_new_key(&key)?;
        let root = self.root();
        if make_dir(&root)? {
            sync_dir(&self.data_dir).map_err(|e| io_error(&self.data_dir, e))?;
        }
        let dir = self.domain_dir(&domain);
        if make_dir(&dir)? {
            sync_dir(&root).map_err(|e| io_error(&root, e))?;
        }
        let path = dir.join(format!("{}{KEY_SUFFIX}", key.selector));
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let tmp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let written = write_new(&tmp, key.private_pem.as_bytes()).and_then(|()| {
            fs::hard_link(&tmp, &path).map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => {
                    StoreError::KeyExists(format!("{domain} selector {}", key.selector))
                }
                _ => io_error(&path, e),
            })
        });
        let _ = fs::remove_file(&tmp);
        written?;
        sync_dir(&dir).map_err(|e| io_error(&dir, e))?;
        let (stored, _) = read_key(&path, &domain, key.selector)?;
        Ok(stored)
    }

    fn delete(&self, domain: &str, selector: &str) -> Result<bool, StoreError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        mailroom_store::dkim::check_domain(&domain)?;
        check_selector(selector)?;
        let dir = self.domain_dir(&domain);
        let path = dir.join(format!("{selector}{KEY_SUFFIX}"));
        match fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(&dir).map_err(|e| io_error(&dir, e))?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error(&path, e)),
        }
    }
}

#[async_trait::async_trait]
impl DkimKeyStore for MaildirDkimKeys {
    async fn dkim_keys(&self) -> Result<Vec<DkimKey>, StoreError> {
        self.blocking(|this| this.list()).await
    }

    async fn add_dkim_key(&self, key: NewDkimKey) -> Result<DkimKey, StoreError> {
        self.blocking(move |this| this.add(key)).await
    }

    async fn delete_dkim_key(&self, domain: &str, selector: &str) -> Result<bool, StoreError> {
        let (domain, selector) = (domain.to_string(), selector.to_string());
        self.blocking(move |this| this.delete(&domain, &selector))
            .await
    }
}

/// Reads one key file: the key, and its mtime in nanoseconds for ordering.
fn read_key(path: &Path, domain: &str, selector: String) -> Result<(DkimKey, i128), StoreError> {
    let bytes = fs::read(path).map_err(|e| io_error(path, e))?;
    let meta = fs::metadata(path).map_err(|e| io_error(path, e))?;
    let pem = String::from_utf8(bytes)
        .map_err(|_| StoreError::Corrupt(format!("{}: not a PEM file", path.display())))?;
    let algorithm = pem_algorithm(&pem).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "{}: not a PEM RSA or Ed25519 private key",
            path.display()
        ))
    })?;
    let key = DkimKey {
        domain: domain.to_string(),
        selector,
        algorithm,
        private_pem: pem,
        created: meta.mtime(),
    };
    Ok((
        key,
        i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
    ))
}

/// The entries of `dir`; none when it does not exist.
fn read_dir(dir: &Path) -> Result<Vec<io::Result<fs::DirEntry>>, StoreError> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries.collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_error(dir, e)),
    }
}

/// Creates a 0700 directory; `true` when it was new (its parent then needs
/// an fsync).
fn make_dir(dir: &Path) -> Result<bool, StoreError> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_error(dir, e)),
    }
}

/// A new file readable by its owner only, on disk before this returns.
fn write_new(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    file.write_all(data).map_err(|e| io_error(path, e))?;
    file.sync_all().map_err(|e| io_error(path, e))
}

/// An I/O error naming the file (a full disk stays [`StoreError::NoSpace`]).
fn io_error(path: &Path, e: io::Error) -> StoreError {
    match StoreError::from_io(e) {
        StoreError::Io(e) => {
            StoreError::Io(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        }
        other => other,
    }
}

const DKIM: &str = "dkim";
const KEY_SUFFIX: &str = ".key";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;

    use mailroom_store::DkimAlgorithm;

    use super::*;

    use mailroom_testkit::ED25519_PEM as ED_PEM;

    fn new_key(domain: &str, selector: &str) -> NewDkimKey {
        NewDkimKey {
            domain: domain.into(),
            selector: selector.into(),
            algorithm: DkimAlgorithm::Ed25519,
            private_pem: ED_PEM.into(),
        }
    }

    #[tokio::test]
    async fn keys_are_private_files_in_the_documented_place() {
        let dir = tempfile::tempdir().unwrap();
        let keys = MaildirDkimKeys::new(dir.path());
        keys.add_dkim_key(new_key("Example.ORG", "s1"))
            .await
            .unwrap();
        let path = dir.path().join("dkim/example.org/s1.key");
        assert_eq!(fs::read_to_string(&path).unwrap(), ED_PEM);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("dkim")), 0o700);
        assert_eq!(mode(&dir.path().join("dkim/example.org")), 0o700);
        // Nothing but the key is left in the directory.
        let names: Vec<_> = fs::read_dir(dir.path().join("dkim/example.org"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["s1.key"]);
    }

    #[tokio::test]
    async fn files_placed_by_hand_are_read_and_other_files_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let domain_dir = dir.path().join("dkim/example.net");
        fs::create_dir_all(&domain_dir).unwrap();
        fs::write(domain_dir.join("old.key"), ED_PEM).unwrap();
        fs::write(domain_dir.join("README"), "not a key").unwrap();
        fs::write(domain_dir.join(".tmp-1-0"), "left by a crash").unwrap();
        fs::write(dir.path().join("dkim/stray-file"), "x").unwrap();
        let keys = MaildirDkimKeys::new(dir.path());
        let listed = keys.dkim_keys().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].domain, "example.net");
        assert_eq!(listed[0].selector, "old");
        assert_eq!(listed[0].algorithm, DkimAlgorithm::Ed25519);
        // A damaged key file is an error, not a silently unsigned domain.
        fs::write(domain_dir.join("bad.key"), "garbage").unwrap();
        assert!(matches!(
            keys.dkim_keys().await,
            Err(StoreError::Corrupt(_))
        ));
    }

    #[tokio::test]
    async fn no_dkim_directory_is_no_keys() {
        let dir = tempfile::tempdir().unwrap();
        let keys = MaildirDkimKeys::new(dir.path());
        assert!(keys.dkim_keys().await.unwrap().is_empty());
        assert!(!keys.delete_dkim_key("example.org", "s1").await.unwrap());
        assert!(!dir.path().join("dkim").exists());
    }
}
