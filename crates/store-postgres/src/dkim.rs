//! DKIM keys (`dkim_keys`, migration 0002): one row per domain and
//! selector, so every node signs with the keys `dkim generate` stored on
//! any of them. The newest row of a domain (by `created`, then `id`) signs.

use mailroom_store::dkim::{check_domain, check_new_key, check_selector};
use mailroom_store::{DkimAlgorithm, DkimKey, DkimKeyStore, NewDkimKey, StoreError};
use sqlx::Row as _;
use sqlx::postgres::PgRow;

use crate::{PgStore, db_error};

/// SQLSTATE unique_violation: the (domain, selector) is taken.
const UNIQUE_VIOLATION: &str = "23505";

/// The columns [`key_from_row`] reads (a macro: queries must be literals).
macro_rules! columns {
    () => {
        "domain, selector, algorithm, private_key, \
         extract(epoch FROM created)::bigint AS created"
    };
}

#[async_trait::async_trait]
impl DkimKeyStore for PgStore {
    async fn dkim_keys(&self) -> Result<Vec<DkimKey>, StoreError> {
        // COLLATE "C": byte order, as the embedded engine sorts domains.
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM dkim_keys ORDER BY domain COLLATE \"C\", created DESC, id DESC"
        ))
        .fetch_all(&self.inner.pool)
        .await
        .map_err(|e| db_error("listing DKIM keys", e))?;
        rows.iter().map(key_from_row).collect()
    }

    async fn add_dkim_key(&self, key: NewDkimKey) -> Result<DkimKey, StoreError> {
        let domain = check_new_key(&key)?;
        let row = sqlx::query(concat!(
            "INSERT INTO dkim_keys (domain, selector, algorithm, private_key) \
             VALUES ($1, $2, $3, $4) RETURNING ",
            columns!()
        ))
        .bind(&domain)
        .bind(&key.selector)
        .bind(key.algorithm.as_str())
        .bind(&key.private_pem)
        .fetch_one(&self.inner.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.code().as_deref() == Some(UNIQUE_VIOLATION) => {
                StoreError::KeyExists(format!("{domain} selector {}", key.selector))
            }
            _ => db_error("storing a DKIM key", e),
        })?;
        key_from_row(&row)
    }

    async fn delete_dkim_key(&self, domain: &str, selector: &str) -> Result<bool, StoreError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        check_domain(&domain)?;
        check_selector(selector)?;
        let done = sqlx::query("DELETE FROM dkim_keys WHERE domain = $1 AND selector = $2")
            .bind(&domain)
            .bind(selector)
            .execute(&self.inner.pool)
            .await
            .map_err(|e| db_error("deleting a DKIM key", e))?;
        Ok(done.rows_affected() > 0)
    }
}

fn key_from_row(row: &PgRow) -> Result<DkimKey, StoreError> {
    let read = |e| db_error("reading a DKIM key", e);
    let algorithm: String = row.try_get("algorithm").map_err(read)?;
    Ok(DkimKey {
        domain: row.try_get("domain").map_err(read)?,
        selector: row.try_get("selector").map_err(read)?,
        algorithm: DkimAlgorithm::from_name(&algorithm)
            .ok_or_else(|| StoreError::Corrupt(format!("DKIM key algorithm {algorithm:?}")))?,
        private_pem: row.try_get("private_key").map_err(read)?,
        created: row.try_get("created").map_err(read)?,
    })
}
