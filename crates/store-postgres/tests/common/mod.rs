//! What the PostgreSQL tests share: finding the test cluster, and a fresh
//! database per test.
//!
//! `MAILROOM_TEST_PG` is the URL of a database the tests may use to create
//! and drop others (`scripts/pg-test-cluster.sh start` prints one). Unset,
//! the PostgreSQL tests are skipped with a message on a developer machine
//! and fail when `CI=true` (STYLE.md §2.9 item 7).
#![allow(dead_code)] // each test binary uses its own part
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{AssertSqlSafe, Connection as _};

/// The base URL, or `None` (after saying why) when the tests must skip.
pub(crate) fn pg_base_url() -> Option<String> {
    match std::env::var("MAILROOM_TEST_PG") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                !ci(),
                "MAILROOM_TEST_PG is unset and CI=true: the PostgreSQL tests must run in CI \
                 (export MAILROOM_TEST_PG=\"$(scripts/pg-test-cluster.sh start)\")"
            );
            eprintln!(
                "skipped: MAILROOM_TEST_PG is unset \
                 (export MAILROOM_TEST_PG=\"$(scripts/pg-test-cluster.sh start)\" to run it)"
            );
            None
        }
    }
}

/// True under CI, where a test that cannot run must fail instead of skip.
pub(crate) fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The test-cluster script, `scripts/pg-test-cluster.sh`.
pub(crate) fn cluster_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-test-cluster.sh")
}

/// A database of its own for one test, created from `MAILROOM_TEST_PG`.
pub(crate) struct TestDb {
    /// Its URL, for `PgStore::connect`.
    pub(crate) url: String,
    base: String,
    name: String,
}

impl TestDb {
    /// Creates `mr_t_<pid>_<n>` on the cluster of `base`.
    pub(crate) async fn create(base: &str) -> TestDb {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "mr_t_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = sqlx::PgConnection::connect(base).await.unwrap();
        // Concurrent CREATE DATABASE from one template may collide; retry.
        let mut tries = 0;
        loop {
            let created = sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&mut admin)
                .await;
            match created {
                Ok(_) => break,
                Err(e) if tries < 20 => {
                    tries += 1;
                    eprintln!("CREATE DATABASE {name}: {e}; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("CREATE DATABASE {name}: {e}"),
            }
        }
        let _ = admin.close().await;
        TestDb {
            url: with_database(base, &name),
            base: base.to_string(),
            name,
        }
    }

    /// Drops the database (connections still open are cut).
    pub(crate) async fn drop_db(self) {
        let mut admin = sqlx::PgConnection::connect(&self.base).await.unwrap();
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .unwrap();
        let _ = admin.close().await;
    }

    /// A plain connection, for looking at or tampering with the tables.
    pub(crate) async fn connect(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.url).await.unwrap()
    }
}

/// `base` with its database name replaced by `name` (query string kept).
pub(crate) fn with_database(base: &str, name: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (base, None),
    };
    let authority_start = head.find("://").map_or(0, |i| i + 3);
    let path_start = head[authority_start..]
        .find('/')
        .map_or(head.len(), |i| authority_start + i);
    let mut url = format!("{}/{name}", &head[..path_start]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

#[test]
fn database_names_are_replaced() {
    for (base, want) in [
        ("postgres://u@h:1/db", "postgres://u@h:1/x"),
        ("postgres://u@h:1", "postgres://u@h:1/x"),
        (
            "postgres://u@h:1/db?sslmode=disable",
            "postgres://u@h:1/x?sslmode=disable",
        ),
        ("postgresql://h/", "postgresql://h/x"),
    ] {
        assert_eq!(with_database(base, "x"), want);
    }
}
