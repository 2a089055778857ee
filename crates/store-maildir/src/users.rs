//! The users file (`name:hash`) and the secrets file (`name:secret`),
//! shared between the CLI and a running server.
//!
//! Writers (`user add|passwd|del`) hold an exclusive `flock` on `users.lock`
//! for the whole read-modify-write; readers take it shared only while
//! reloading, so they never pair a new `users` with an old `secrets`. Writes
//! replace `secrets` first and `users` last: a reader's stat of `users`
//! alone then notices every change. A crash between the two renames leaves
//! at worst a secret without its user (ignored on load) or, for `del`, a
//! user without a secret; running the command again settles it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) use mailroom_store::names::{canonical_user_name as canonical_name, check_value};
use mailroom_store::{StoreError, User};
use rustix::fs::FlockOperation;

use crate::fsutil::{Cached, FileLock, Version, read_with_stamp, replace_file, sync_dir};

/// Every user, by canonical name.
pub(crate) type UserMap = BTreeMap<String, User>;

/// The users and secrets files of one data dir.
pub(crate) struct UserFiles {
    dir: PathBuf,
    cache: Cached<UserMap>,
}

impl UserFiles {
    pub(crate) fn new(dir: &Path) -> Self {
        UserFiles {
            dir: dir.to_path_buf(),
            cache: Cached::new(),
        }
    }

    /// All users as the files hold them now (one stat when unchanged).
    pub(crate) fn snapshot(&self) -> Result<Arc<UserMap>, StoreError> {
        self.cache.get(&self.dir.join(USERS), || {
            let _shared = self.lock(FlockOperation::LockShared)?;
            self.read()
        })
    }

    /// Runs `change` on a fresh copy of the users under the writers' lock
    /// and stores the result durably (file fsync, rename, directory fsync).
    pub(crate) fn modify(
        &self,
        change: impl FnOnce(&mut UserMap) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // The cache is not touched here: a reader holding the cache lock may
        // be waiting for our flock, and the new stamp invalidates it anyway.
        let _exclusive = self.lock(FlockOperation::LockExclusive)?;
        let (_, before) = self.read()?;
        let mut after = before.clone();
        change(&mut after)?;
        let secrets_changed = secrets_of(&before) != secrets_of(&after);
        if secrets_changed {
            let mut text = String::new();
            for (name, secret) in secrets_of(&after) {
                text.push_str(&format!("{name}:{secret}\n"));
            }
            replace_file(&self.dir, SECRETS, text.as_bytes()).map_err(StoreError::from_io)?;
        }
        let mut text = String::new();
        for user in after.values() {
            text.push_str(&format!("{}:{}\n", user.name, user.password_hash));
        }
        replace_file(&self.dir, USERS, text.as_bytes()).map_err(StoreError::from_io)?;
        sync_dir(&self.dir).map_err(StoreError::from_io)
    }

    fn lock(&self, op: FlockOperation) -> Result<FileLock, StoreError> {
        FileLock::acquire(&self.dir.join(LOCK), op).map_err(StoreError::from_io)
    }

    /// Reads both files (the caller holds the lock, shared or exclusive).
    fn read(&self) -> Result<(Option<Version>, UserMap), StoreError> {
        let users = read_with_stamp(&self.dir.join(USERS)).map_err(StoreError::from_io)?;
        let secrets = read_with_stamp(&self.dir.join(SECRETS)).map_err(StoreError::from_io)?;
        let mut map = UserMap::new();
        let (version, bytes) = users.unzip();
        if let Some(bytes) = bytes {
            for (name, hash) in parse_lines(USERS, &bytes)? {
                map.insert(
                    name.clone(),
                    User {
                        name,
                        password_hash: hash,
                        shared_secret: None,
                    },
                );
            }
        }
        if let Some((_, bytes)) = secrets {
            for (name, secret) in parse_lines(SECRETS, &bytes)? {
                // A secret without its user is a leftover of an interrupted
                // `del` or `add` (see the module doc): ignore it.
                if let Some(user) = map.get_mut(&name) {
                    user.shared_secret = Some(secret);
                }
            }
        }
        Ok((version, map))
    }
}

fn secrets_of(map: &UserMap) -> Vec<(&str, &str)> {
    map.values()
        .filter_map(|u| Some((u.name.as_str(), u.shared_secret.as_deref()?)))
        .collect()
}

/// Parses `name:value` lines. Blank lines and `#` comments are allowed (an
/// operator may edit the file); anything else malformed is an error rather
/// than a silently dropped user. Errors name the line, never the value.
fn parse_lines(file: &str, bytes: &[u8]) -> Result<Vec<(String, String)>, StoreError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| StoreError::Corrupt(format!("{file}: not UTF-8")))?;
    let mut out: Vec<(String, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let corrupt = |why: &str| StoreError::Corrupt(format!("{file} line {}: {why}", i + 1));
        let (name, value) = line.split_once(':').ok_or_else(|| corrupt("no ':'"))?;
        match canonical_name(name) {
            Ok(canonical) if canonical == name => {}
            _ => return Err(corrupt("invalid user name")),
        }
        if value.is_empty() {
            return Err(corrupt("empty value"));
        }
        if !seen.insert(name) {
            return Err(corrupt("duplicate user"));
        }
        out.push((name.to_string(), value.to_string()));
    }
    Ok(out)
}

const USERS: &str = "users";
const SECRETS: &str = "secrets";
const LOCK: &str = "users.lock";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names() {
        for (input, want) in [
            ("alice", Some("alice")),
            ("Alice", Some("alice")),
            ("a.b-c_d9", Some("a.b-c_d9")),
            ("0", Some("0")),
            (&*"x".repeat(64), Some(&*"x".repeat(64))),
            (&*"x".repeat(65), None),
            ("", None),
            (".hidden", None),
            ("..", None),
            ("-rf", None),
            ("a/b", None),
            ("a b", None),
            ("a+b", None),
            ("a:b", None),
            ("jürgen", None),
            ("a\n", None),
        ] {
            let got = canonical_name(input).ok();
            assert_eq!(got.as_deref(), want, "{input:?}");
        }
    }

    #[test]
    fn parse_table() {
        let ok = parse_lines("users", b"# c\n\nalice:$argon2id$x\r\nbob:h:with:colons\n");
        let ok = ok.unwrap_or_default();
        assert_eq!(
            ok,
            [
                ("alice".to_string(), "$argon2id$x".to_string()),
                ("bob".to_string(), "h:with:colons".to_string())
            ]
        );
        for bad in [
            &b"alice\n"[..],
            b"Alice:x\n",
            b"alice:\n",
            b"alice:x\nalice:y\n",
            b"../x:y\n",
            b"\xff:x\n",
        ] {
            assert!(
                matches!(parse_lines("users", bad), Err(StoreError::Corrupt(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
