//! The MTA's seam to local delivery, implemented over the inbound agent's
//! routing and store (the binary is the only place the two agents meet
//! besides the queue).

use std::sync::Arc;

use mailroom_mta::{LocalDelivery, LocalDeliveryError};
use mailroom_server::{Context, LocalFailure};

/// Delivers queued mail for local domains through the server's router.
pub(crate) struct ServerLocalDelivery(pub Arc<Context>);

#[async_trait::async_trait]
impl LocalDelivery for ServerLocalDelivery {
    async fn is_local(&self, domain: &str) -> bool {
        self.0.is_local_domain(domain)
    }

    async fn deliver(
        &self,
        address: &str,
        sender: Option<&str>,
        message: &[u8],
    ) -> Result<(), LocalDeliveryError> {
        self.0
            .deliver_queued(address, sender, message)
            .await
            .map_err(|e| match e {
                LocalFailure::Temporary(text) => LocalDeliveryError::Temporary(text),
                LocalFailure::Permanent(text) => LocalDeliveryError::Permanent(text),
            })
    }
}
