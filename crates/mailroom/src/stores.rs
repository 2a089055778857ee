//! Opens the store `--store URL` names: `maildir:` (embedded, in the data
//! dir) or `postgres://…` (shared by every node; the data dir still holds
//! the TLS key). The binary is the only place that builds a concrete store.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use mailroom_store::{MailStore, QueueStore, UserDb};
use mailroom_store_maildir::{MaildirQueue, MaildirStore};
use mailroom_store_postgres::PgStore;

/// The three store handles every agent works through.
pub(crate) struct Stores {
    pub mail: Arc<dyn MailStore>,
    pub users: Arc<dyn UserDb>,
    pub queue: Arc<dyn QueueStore>,
}

/// True for a PostgreSQL URL.
pub(crate) fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens every handle of the store at `url`.
pub(crate) async fn open(url: &str, data_dir: &Path, hostname: &str) -> anyhow::Result<Stores> {
    if is_postgres(url) {
        let store = PgStore::connect(url).await?;
        let (mail, users, queue) = store.handles();
        return Ok(Stores { mail, users, queue });
    }
    let store = Arc::new(
        MaildirStore::open(data_dir, hostname)
            .with_context(|| format!("opening the store in {}", data_dir.display()))?,
    );
    let queue: Arc<dyn QueueStore> = Arc::new(
        MaildirQueue::open(data_dir)
            .with_context(|| format!("opening the queue in {}", data_dir.display()))?,
    );
    Ok(Stores {
        mail: store.clone(),
        users: store,
        queue,
    })
}
