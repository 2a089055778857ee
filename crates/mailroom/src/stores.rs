//! Opens the store `--store URL` names: `maildir:` (embedded, in the data
//! dir) or `postgres://…` (shared by every node; the data dir still holds
//! the TLS key). The binary is the only place that builds a concrete store.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use mailroom_store::{DkimKeyStore, MailStore, QueueStore, UserDb};
use mailroom_store_maildir::{MaildirDkimKeys, MaildirQueue, MaildirStore};
use mailroom_store_postgres::{PgOptions, PgStore};

/// The store handles every agent works through.
pub(crate) struct Stores {
    pub mail: Arc<dyn MailStore>,
    pub users: Arc<dyn UserDb>,
    pub queue: Arc<dyn QueueStore>,
    /// The DKIM keys nodes share.
    pub dkim: Arc<dyn DkimKeyStore>,
}

/// True for a PostgreSQL URL.
pub(crate) fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens every handle of the store at `url`.
pub(crate) async fn open(url: &str, data_dir: &Path, hostname: &str) -> anyhow::Result<Stores> {
    open_with(url, data_dir, hostname, None).await
}

/// [`open`], with `pool_size` connections to PostgreSQL (`None`: the
/// store's default) for `serve`.
pub(crate) async fn open_with(
    url: &str,
    data_dir: &Path,
    hostname: &str,
    pool_size: Option<u32>,
) -> anyhow::Result<Stores> {
    if is_postgres(url) {
        let mut options = PgOptions::default();
        if let Some(size) = pool_size {
            options = options.max_connections(size);
        }
        let store = PgStore::connect_with(url, options).await?;
        let (mail, users, queue) = store.handles();
        return Ok(Stores {
            mail,
            users,
            queue,
            dkim: store.dkim_keys(),
        });
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
        dkim: Arc::new(MaildirDkimKeys::new(data_dir)),
    })
}

/// Opens only the DKIM keys of the store at `url`: for the embedded store
/// nothing is created (the keys are files under `data_dir/dkim`).
pub(crate) async fn open_dkim(url: &str, data_dir: &Path) -> anyhow::Result<Arc<dyn DkimKeyStore>> {
    if is_postgres(url) {
        return Ok(PgStore::connect(url).await?.dkim_keys());
    }
    Ok(Arc::new(MaildirDkimKeys::new(data_dir)))
}
