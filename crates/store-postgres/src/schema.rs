//! Embedded migrations and the schema version check.
//!
//! The migrations are plain SQL files compiled into the binary and applied
//! in order, all in one transaction, under a transaction-scoped advisory
//! lock: two nodes starting at once serialise here, and the second finds the
//! work done. `schema_version` holds one row, the version the database is
//! at. sqlx's own migrator is not used: it runs each file in its own
//! transaction and would report a newer database as a missing migration,
//! where we want one plain sentence at start-up.

use std::io;

use mailroom_store::StoreError;
use sqlx::postgres::PgConnection;
use sqlx::{Acquire as _, AssertSqlSafe, Connection};

use crate::db_error;

/// The schema version this build writes and reads. A database at a higher
/// version is refused at start.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// `MIGRATIONS[n]` takes the schema from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_dkim_keys.sql"),
];

/// Key of the advisory lock migrations take: "mailroom" in ASCII.
const LOCK_KEY: i64 = 0x6d61_696c_726f_6f6d;

/// Brings the database to [`SCHEMA_VERSION`], or refuses one that is newer.
/// `target` names the database in errors.
pub(crate) async fn migrate(conn: &mut PgConnection, target: &str) -> Result<(), StoreError> {
    let failed = |e| db_error(&format!("migrating PostgreSQL at {target}"), e);
    let mut tx = Connection::begin(conn).await.map_err(failed)?;
    let conn = tx.acquire().await.map_err(failed)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await
        .map_err(failed)?;
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        .execute(&mut *conn)
        .await
        .map_err(failed)?;
    let current: Option<i32> = sqlx::query_scalar("SELECT max(version) FROM schema_version")
        .fetch_one(&mut *conn)
        .await
        .map_err(failed)?;
    let current = current.unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(StoreError::Io(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "PostgreSQL at {target} has schema version {current}, newer than this \
                 mailroom knows ({SCHEMA_VERSION}): upgrade mailroom on this node"
            ),
        )));
    }
    if current < 0 {
        return Err(StoreError::Corrupt(format!(
            "PostgreSQL at {target}: schema_version holds {current}"
        )));
    }
    if current == SCHEMA_VERSION {
        return tx.commit().await.map_err(failed);
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        // Compiled-in migration files, not input.
        sqlx::raw_sql(AssertSqlSafe(*sql))
            .execute(&mut *conn)
            .await
            .map_err(|e| {
                db_error(
                    &format!(
                        "migrating PostgreSQL at {target} from schema version {from} to {}",
                        from + 1
                    ),
                    e,
                )
            })?;
    }
    sqlx::raw_sql("DELETE FROM schema_version")
        .execute(&mut *conn)
        .await
        .map_err(failed)?;
    sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
        .bind(SCHEMA_VERSION)
        .execute(&mut *conn)
        .await
        .map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    tracing::info!(database = %target, from = current, to = SCHEMA_VERSION, "PostgreSQL schema migrated");
    Ok(())
}
