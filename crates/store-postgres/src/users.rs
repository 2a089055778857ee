//! The user directory (`users`, `user_secrets`) and the alias table
//! (`aliases`).

use std::sync::Arc;
use std::time::Instant;

pub(crate) use mailroom_store::names::{canonical_user_name as canonical_name, check_value};
use mailroom_store::{AliasTable, NewUser, StoreError, User, UserDb};
use sqlx::Row as _;

use crate::{PgStore, db_error};

/// The last alias table read, and what it was read from.
#[derive(Default)]
pub(crate) struct AliasCache {
    table: Arc<AliasTable>,
    /// The aliases(5) text the rows formatted to: when the next read gives
    /// the same text, the table (and its `Arc`) is kept and nothing is
    /// logged again.
    text: String,
    loaded: Option<Instant>,
}

#[async_trait::async_trait]
impl UserDb for PgStore {
    async fn lookup(&self, name: &str) -> Result<Option<User>, StoreError> {
        // A name that cannot be a user is simply not one (no error to tell
        // it from an unknown user: no enumeration hints).
        let Ok(name) = canonical_name(name) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT u.name, u.password_hash, s.secret FROM users u \
             LEFT JOIN user_secrets s ON s.name = u.name WHERE u.name = $1",
        )
        .bind(&name)
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(|e| db_error("looking up a user", e))?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    async fn list(&self) -> Result<Vec<User>, StoreError> {
        // COLLATE "C": byte order, as the embedded engine sorts, whatever
        // the database's locale.
        let rows = sqlx::query(
            "SELECT u.name, u.password_hash, s.secret FROM users u \
             LEFT JOIN user_secrets s ON s.name = u.name ORDER BY u.name COLLATE \"C\"",
        )
        .fetch_all(&self.inner.pool)
        .await
        .map_err(|e| db_error("listing users", e))?;
        rows.iter().map(user_from_row).collect()
    }

    async fn add(&self, user: NewUser) -> Result<(), StoreError> {
        let name = canonical_name(&user.name)?;
        check_value("password hash", &user.password_hash)?;
        if let Some(secret) = &user.shared_secret {
            check_value("shared secret", secret)?;
        }
        let failed = |e| db_error("adding a user", e);
        let mut tx = self.inner.pool.begin().await.map_err(failed)?;
        let inserted = sqlx::query(
            "INSERT INTO users (name, password_hash) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&name)
        .bind(&user.password_hash)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::UserExists(name));
        }
        if let Some(secret) = &user.shared_secret {
            sqlx::query("INSERT INTO user_secrets (name, secret) VALUES ($1, $2)")
                .bind(&name)
                .bind(secret)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        tx.commit().await.map_err(failed)
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
        let failed = |e| db_error("changing a password", e);
        let mut tx = self.inner.pool.begin().await.map_err(failed)?;
        let updated = sqlx::query("UPDATE users SET password_hash = $2 WHERE name = $1")
            .bind(&name)
            .bind(&password_hash)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NoSuchUser(name));
        }
        match shared_secret {
            None => {}
            Some(None) => {
                sqlx::query("DELETE FROM user_secrets WHERE name = $1")
                    .bind(&name)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
            }
            Some(Some(secret)) => {
                sqlx::query(
                    "INSERT INTO user_secrets (name, secret) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET secret = EXCLUDED.secret",
                )
                .bind(&name)
                .bind(&secret)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            }
        }
        tx.commit().await.map_err(failed)
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        let name = canonical_name(name)?;
        // The secret goes with it (ON DELETE CASCADE); the mail stays.
        let deleted = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(&name)
            .execute(&self.inner.pool)
            .await
            .map_err(|e| db_error("deleting a user", e))?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NoSuchUser(name));
        }
        Ok(())
    }

    async fn aliases(&self) -> Result<Arc<AliasTable>, StoreError> {
        let mut cache = self.inner.aliases.lock().await;
        if let Some(loaded) = cache.loaded
            && loaded.elapsed() < self.inner.options.alias_cache
        {
            return Ok(Arc::clone(&cache.table));
        }
        let rows =
            sqlx::query("SELECT name, target FROM aliases ORDER BY lower(name) COLLATE \"C\", id")
                .fetch_all(&self.inner.pool)
                .await
                .map_err(|e| db_error("reading the aliases", e))?;
        let mut pairs = Vec::with_capacity(rows.len());
        for row in &rows {
            let name: String = row
                .try_get("name")
                .map_err(|e| db_error("reading the aliases", e))?;
            let target: String = row
                .try_get("target")
                .map_err(|e| db_error("reading the aliases", e))?;
            pairs.push((name, target));
        }
        let text = format_aliases(&pairs);
        if cache.loaded.is_none() || text != cache.text {
            let (table, warnings) = AliasTable::parse(&text);
            for warning in warnings {
                tracing::warn!(source = "aliases table", "{warning}");
            }
            tracing::info!(aliases = table.len(), "aliases loaded");
            cache.table = Arc::new(table);
            cache.text = text;
        }
        cache.loaded = Some(Instant::now());
        Ok(Arc::clone(&cache.table))
    }
}

fn user_from_row(row: &sqlx::postgres::PgRow) -> Result<User, StoreError> {
    let get = |e| db_error("reading a user", e);
    Ok(User {
        name: row.try_get("name").map_err(get)?,
        password_hash: row.try_get("password_hash").map_err(get)?,
        shared_secret: row.try_get("secret").map_err(get)?,
    })
}

/// Formats `(name, target)` rows, sorted by lower-cased name, as aliases(5)
/// text: one line per name, its targets joined by commas. A row whose name
/// or target holds a line break (which would forge a line), or whose name
/// is empty or starts a comment, is skipped with a warning.
fn format_aliases(rows: &[(String, String)]) -> String {
    let mut text = String::new();
    let mut current: Option<String> = None;
    for (name, target) in rows {
        let name = name.trim();
        let target = target.trim();
        if name.is_empty()
            || name.starts_with('#')
            || name.contains(['\n', '\r'])
            || target.contains(['\n', '\r'])
        {
            tracing::warn!(
                source = "aliases table",
                name = name.escape_debug().to_string(),
                "alias row ignored: empty name, comment or line break"
            );
            continue;
        }
        let key = name.to_lowercase();
        if current.as_deref() == Some(key.as_str()) {
            text.push_str(", ");
        } else {
            if current.is_some() {
                text.push('\n');
            }
            text.push_str(name);
            text.push_str(": ");
            current = Some(key);
        }
        text.push_str(target);
    }
    if current.is_some() {
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn aliases_rows_format_to_one_line_per_name() {
        let text = format_aliases(&rows(&[
            ("staff", "alice"),
            ("Staff", " bob "),
            ("staff", "carol@example.org"),
            ("\"Help Desk\"", "\\helpdesk, staff"),
            ("evil", "x\nroot: |/bin/sh"),
            ("#c", "x"),
            ("", "x"),
        ]));
        assert_eq!(
            text,
            "staff: alice, bob, carol@example.org\n\"Help Desk\": \\helpdesk, staff\n"
        );
        let (table, warnings) = AliasTable::parse(&text);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(table.names().collect::<Vec<_>>(), ["help desk", "staff"]);
        assert_eq!(format_aliases(&[]), "");
    }

    #[test]
    fn canonical_names() {
        for (input, want) in [
            ("alice", Some("alice")),
            ("Alice", Some("alice")),
            ("a.b-c_d9", Some("a.b-c_d9")),
            ("", None),
            (".hidden", None),
            ("-rf", None),
            ("a b", None),
            ("a+b", None),
            ("jürgen", None),
        ] {
            assert_eq!(canonical_name(input).ok().as_deref(), want, "{input:?}");
        }
    }
}
