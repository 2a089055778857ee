//! The embedded storage engine: users, aliases and Maildir maildrops in
//! plain files under the data dir, readable by standard tools (Dovecot,
//! mutt, mblaze see the same mail).
//!
//! It owns the on-disk layout below and the durability of everything in
//! it. It does not decide who is a recipient (the server's router does,
//! with [`mailroom_store::AliasTable`]), hash passwords
//! ([`mailroom_store::password`]) or speak any protocol.
//!
//! # On-disk layout
//!
//! ```text
//! DATA_DIR/
//!   users          name:argon2-phc-hash, one line per user       (0600)
//!   secrets        name:secret for APOP / CRAM-MD5 opt-ins only   (0600)
//!   users.lock     flock: writers exclusive, reloading readers shared
//!   .users.tmp     .secrets.tmp: a write in progress (replaced by rename)
//!   aliases        aliases(5), edited by the operator
//!   dkim/DOMAIN/SELECTOR.key   DKIM private keys, PEM (0600); the newest
//!                  signs ([`MaildirDkimKeys`])
//!   mail/NAME/     one Maildir per user, created on first delivery or login
//!     tmp/         messages being written
//!     new/         delivered, not yet seen by a MUA
//!     cur/         seen by a MUA; names may end in ":2,<flags>"
//!     .pop3.lock   flock held by the POP3 session that has the maildrop
//! ```
//!
//! - **Users** are lower-case names of 1–64 `[a-z0-9._-]`, not starting
//!   with `.` or `-`. The CLI (`mailroom user add`) and a running server
//!   share the files: writes lock `users.lock`, replace the files by
//!   write-fsync-rename and fsync `DATA_DIR`; readers cache the parsed
//!   users and re-read when the stat of `users` (inode, size, mtime, ctime)
//!   changes, so a change is seen at the next look-up. Secrets live in their
//!   own file so that the hashes can be shared (backups, audits) without
//!   the plaintext-equivalent secrets.
//! - **Aliases** are re-parsed when the file's stat changes; a missing file
//!   is an empty table, and refused or malformed entries are logged.
//! - **Messages** are stored with CRLF line ends, exactly the octets a POP3
//!   RETR sends before byte-stuffing, so the file size is the POP3 size
//!   and RETR streams the file unchanged. File names are
//!   `<secs>.M<micros>P<pid>Q<counter>.<host>,S=<size>`, the Maildir spec's
//!   unique name plus Dovecot's `,S=` size field, so a listing needs no
//!   stat. The POP3 uid (UIDL) is the name before its first `,` or `:`,
//!   which survives a MUA moving the file to `cur/` and adding flags.
//!
//! # Durability
//!
//! [`MailStore::deliver`] writes the message once into the first
//! recipient's `tmp/`, fsyncs it, hard-links it into every recipient's
//! `new/`, fsyncs each `new/`, and only then returns: the caller's 250
//! follows a durable store (DESIGN.md principle 2). Concurrent deliveries
//! into one directory share directory fsyncs (group commit, see
//! `sync.rs`). The tmp/ name is unlinked afterwards without an fsync of
//! `tmp/`: if a crash loses that unlink, a duplicate sits in `tmp/`, which
//! no reader lists and the 36-hour sweep removes. On any error the files of
//! that delivery are removed. A POP3
//! QUIT's deletions are unlinked and the directories fsync'd before
//! [`Maildrop::commit`] returns.
//!
//! # Locking
//!
//! A POP3 session holds an exclusive non-blocking `flock` on
//! `.pop3.lock`. flock belongs to an open file description, so two
//! sessions in one process exclude each other just as two processes do,
//! and the kernel releases it when the process dies: a crashed server
//! never locks a user out.

mod dkim;
mod fsutil;
mod maildir;
mod names;
mod queue;
mod readahead;
mod sync;
mod users;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mailroom_store::{
    AliasTable, IncomingMessage, MailStore, Maildrop, NewUser, StoreError, User, UserDb,
};

use crate::fsutil::{Cached, read_with_stamp};
use crate::maildir::{Maildirs, join_error};
use crate::sync::DirSyncer;
use crate::users::{UserFiles, canonical_name, check_value};

// For other Maildir writers (`mailroom fetch`): unique names, durable renames.
pub use crate::dkim::MaildirDkimKeys;
pub use crate::fsutil::sync_dir;
pub use crate::names::{sanitise_host, unique_base};
pub use crate::queue::MaildirQueue;

/// The embedded store over one data dir. Cheap to clone; all clones share
/// caches and the group-commit state.
#[derive(Clone)]
pub struct MaildirStore {
    inner: Arc<Inner>,
}

/// What every clone and every open maildrop shares.
pub(crate) struct Inner {
    data_dir: PathBuf,
    /// The host part of new file names, already sanitised.
    pub(crate) host: String,
    users: UserFiles,
    aliases: Cached<AliasTable>,
    pub(crate) maildirs: Maildirs,
    pub(crate) syncer: DirSyncer,
}

impl MaildirStore {
    /// Opens the store in `data_dir`, creating `mail/` if missing.
    /// `hostname` goes into new file names (Maildir spec: unique per host).
    /// Fails when `data_dir` does not exist, is not a directory, or is not
    /// writable (the caller creates it: `serve` and `user add` do).
    pub fn open(data_dir: &Path, hostname: &str) -> Result<Self, StoreError> {
        let meta = std::fs::metadata(data_dir).map_err(|e| {
            StoreError::Io(io::Error::new(
                e.kind(),
                format!("data directory {}: {e}", data_dir.display()),
            ))
        })?;
        if !meta.is_dir() {
            return Err(StoreError::Io(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("data directory {} is not a directory", data_dir.display()),
            )));
        }
        rustix::fs::access(
            data_dir,
            rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
        )
        .map_err(|e| {
            StoreError::Io(io::Error::new(
                io::Error::from(e).kind(),
                format!("data directory {} is not writable", data_dir.display()),
            ))
        })?;
        let mail_dir = data_dir.join(MAIL);
        let created = fsutil::mkdir(&mail_dir).map_err(|e| {
            StoreError::Io(io::Error::new(
                e.kind(),
                format!("creating {}: {e}", mail_dir.display()),
            ))
        })?;
        if created {
            sync_dir(data_dir).map_err(StoreError::from_io)?;
        }
        Ok(MaildirStore {
            inner: Arc::new(Inner {
                data_dir: data_dir.to_path_buf(),
                host: names::sanitise_host(hostname),
                users: UserFiles::new(data_dir),
                aliases: Cached::new(),
                maildirs: Maildirs::new(mail_dir),
                syncer: DirSyncer::default(),
            }),
        })
    }

    /// The data dir this store lives in.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// Where `user`'s Maildir is (or will be): `DATA_DIR/mail/NAME`.
    pub fn maildir_path(&self, user: &str) -> Result<PathBuf, StoreError> {
        Ok(self.inner.maildirs_root().join(canonical_name(user)?))
    }

    /// Runs blocking file work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(join_error)?
    }
}

impl Inner {
    fn maildirs_root(&self) -> PathBuf {
        self.data_dir.join(MAIL)
    }

    fn aliases(&self) -> Result<Arc<AliasTable>, StoreError> {
        let path = self.data_dir.join(ALIASES);
        self.aliases.get(&path, || {
            let Some((stamp, bytes)) = read_with_stamp(&path).map_err(StoreError::from_io)? else {
                return Ok((None, AliasTable::default()));
            };
            let text = String::from_utf8_lossy(&bytes);
            if matches!(text, std::borrow::Cow::Owned(_)) {
                tracing::warn!(file = %path.display(), "aliases file is not valid UTF-8");
            }
            let (table, warnings) = AliasTable::parse(&text);
            for warning in warnings {
                tracing::warn!(file = %path.display(), "{warning}");
            }
            tracing::info!(file = %path.display(), aliases = table.len(), "aliases loaded");
            Ok((Some(stamp), table))
        })
    }

    /// Canonical names of `users`, deduplicated (first occurrence kept), all
    /// existing users.
    fn recipients(&self, users: &[String]) -> Result<Vec<String>, StoreError> {
        let db = self.users.snapshot()?;
        let mut names: Vec<String> = Vec::with_capacity(users.len());
        for user in users {
            let name = canonical_name(user)?;
            if !db.contains_key(&name) {
                return Err(StoreError::NoSuchUser(name));
            }
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Ok(names)
    }
}

#[async_trait::async_trait]
impl UserDb for MaildirStore {
    async fn lookup(&self, name: &str) -> Result<Option<User>, StoreError> {
        // A name that cannot be a user is simply not one (no error to
        // distinguish it from an unknown user: no enumeration hints).
        let Ok(name) = canonical_name(name) else {
            return Ok(None);
        };
        self.blocking(move |inner| Ok(inner.users.snapshot()?.get(&name).cloned()))
            .await
    }

    async fn list(&self) -> Result<Vec<User>, StoreError> {
        self.blocking(|inner| Ok(inner.users.snapshot()?.values().cloned().collect()))
            .await
    }

    async fn add(&self, user: NewUser) -> Result<(), StoreError> {
        let name = canonical_name(&user.name)?;
        check_value("password hash", &user.password_hash)?;
        if let Some(secret) = &user.shared_secret {
            check_value("shared secret", secret)?;
        }
        self.blocking(move |inner| {
            inner.users.modify(|map| {
                if map.contains_key(&name) {
                    return Err(StoreError::UserExists(name.clone()));
                }
                map.insert(
                    name.clone(),
                    User {
                        name: name.clone(),
                        password_hash: user.password_hash,
                        shared_secret: user.shared_secret,
                    },
                );
                Ok(())
            })
        })
        .await
    }

    async fn set_password(
        &self,
        name: &str,
        password_hash: String,
        shared_secret: Option<Option<String>>,
    ) -> Result<(), StoreError> {
        let name = canonical_name(name)?;
        check_value("password hash", &password_hash)?;
        if let Some(Some(secret)) = &shared_secret {
            check_value("shared secret", secret)?;
        }
        self.blocking(move |inner| {
            inner.users.modify(|map| {
                let user = map
                    .get_mut(&name)
                    .ok_or_else(|| StoreError::NoSuchUser(name.clone()))?;
                user.password_hash = password_hash;
                if let Some(secret) = shared_secret {
                    user.shared_secret = secret;
                }
                Ok(())
            })
        })
        .await
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        let name = canonical_name(name)?;
        self.blocking(move |inner| {
            inner.users.modify(|map| {
                map.remove(&name)
                    .map(|_| ())
                    .ok_or_else(|| StoreError::NoSuchUser(name.clone()))
            })
        })
        .await
    }

    async fn aliases(&self) -> Result<Arc<AliasTable>, StoreError> {
        self.blocking(Inner::aliases).await
    }
}

#[async_trait::async_trait]
impl MailStore for MaildirStore {
    async fn deliver(&self, users: &[String], message: &IncomingMessage) -> Result<(), StoreError> {
        let users = users.to_vec();
        // Cheap clone: the body is shared, the prefix is a few header lines.
        let message = message.clone();
        self.blocking(move |inner| {
            let names = inner.recipients(&users)?;
            maildir::deliver(inner, &names, &message).map_err(StoreError::from_io)
        })
        .await
    }

    async fn open_maildrop(&self, user: &str) -> Result<Box<dyn Maildrop>, StoreError> {
        let user = user.to_string();
        let inner = Arc::clone(&self.inner);
        let drop = tokio::task::spawn_blocking(move || {
            let name = inner
                .recipients(std::slice::from_ref(&user))?
                .into_iter()
                .next()
                .ok_or(StoreError::NoSuchUser(user))?;
            maildir::open_maildrop(inner, name)
        })
        .await
        .map_err(join_error)??;
        Ok(Box::new(drop))
    }
}

impl std::fmt::Debug for MaildirStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaildirStore")
            .field("data_dir", &self.inner.data_dir)
            .field("host", &self.inner.host)
            .finish_non_exhaustive()
    }
}

const MAIL: &str = "mail";
const ALIASES: &str = "aliases";

#[cfg(test)]
mod tests;
