//! The accept loop every listener runs: the connection caps (with the
//! protocol's own refusal), counters, and one tracing span per session.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use crate::config::ListenerKind;
use crate::io::write_all;
use crate::limits::ConnectionSlot;
use crate::{Context, Shutdown, ids};

/// Accepts connections on `listener` until `shutdown` fires, running
/// `session` for each one that fits under the caps. A connection over a cap
/// gets `refusal(hostname)` (the protocol's "too many connections" reply)
/// and is closed.
pub(crate) async fn accept_loop<S, F>(
    ctx: Arc<Context>,
    listener: TcpListener,
    kind: ListenerKind,
    mut shutdown: Shutdown,
    refusal: fn(&str) -> Vec<u8>,
    session: S,
) where
    S: Fn(Arc<Context>, TcpStream, SocketAddr, ListenerKind, Shutdown, ConnectionSlot) -> F,
    F: Future<Output = std::io::Result<()>> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            _ = shutdown.triggered() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Usually EMFILE/ENFILE: back off instead of spinning or exiting.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        metrics::counter!("mailroom_connections_total", "service" => kind.name()).increment(1);
        let Some(slot) = ctx.limits.acquire(peer.ip()) else {
            metrics::counter!("mailroom_connections_refused_total", "service" => kind.name())
                .increment(1);
            tracing::warn!(%peer, service = kind.name(), "connection limit reached");
            // Built per refusal: the hostname may change on reload.
            let refusal = refusal(&ctx.config().hostname);
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = write_all(&mut stream, &refusal, Duration::from_secs(5)).await;
            });
            continue;
        };
        let id = ids::new_id();
        // Span names are static: one per protocol, as the logs have them.
        let span = match kind {
            ListenerKind::Pop3 | ListenerKind::Pop3s => {
                tracing::info_span!("pop3", session = %id, %peer, service = kind.name())
            }
            ListenerKind::Smtp | ListenerKind::Submission | ListenerKind::Smtps => {
                tracing::info_span!("smtp", session = %id, %peer, service = kind.name())
            }
        };
        let run = session(ctx.clone(), stream, peer, kind, shutdown.clone(), slot);
        tokio::spawn(
            async move {
                if let Err(err) = run.await {
                    tracing::debug!(error = %err, "connection ended");
                }
            }
            .instrument(span),
        );
    }
}
