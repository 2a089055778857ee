//! The Prometheus endpoint (`--metrics ADDR`, off by default): counters the
//! agents record through the `metrics` facade, plus queue gauges computed
//! at scrape time. A deliberately tiny HTTP/1.1 responder: one GET per
//! connection, no keep-alive, nothing else served.

use std::sync::Arc;
use std::time::Duration;

use mailroom_server::Shutdown;
use mailroom_store::QueueStore;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Installs the global recorder; returns the handle that renders it.
pub(crate) fn install() -> anyhow::Result<PrometheusHandle> {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    Ok(handle)
}

/// Answers scrapes on `listener` until shutdown.
pub(crate) async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    queue: Arc<dyn QueueStore>,
    mut shutdown: Shutdown,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.triggered() => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let handle = handle.clone();
        let queue = queue.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(
                Duration::from_secs(10),
                answer(stream, &handle, queue.as_ref()),
            )
            .await;
        });
    }
}

async fn answer(
    mut stream: TcpStream,
    handle: &PrometheusHandle,
    queue: &dyn QueueStore,
) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let (status, body) = if line.starts_with(b"GET /metrics ") || line == b"GET /metrics" {
        queue_gauges(queue).await;
        ("200 OK", handle.render())
    } else {
        (
            "404 Not Found",
            "only /metrics is served here\n".to_string(),
        )
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Queue size and the age of the oldest entry, read when scraped.
async fn queue_gauges(queue: &dyn QueueStore) {
    let Ok(entries) = queue.list().await else {
        return;
    };
    let now = mailroom_server::time::unix_now();
    let oldest = entries
        .iter()
        .map(|e| e.created)
        .min()
        .map(|c| (now - c).max(0))
        .unwrap_or(0);
    metrics::gauge!("mailroom_queue_messages").set(entries.len() as f64);
    metrics::gauge!("mailroom_queue_oldest_age_seconds").set(oldest as f64);
    let held = entries.iter().filter(|e| e.held).count();
    metrics::gauge!("mailroom_queue_held_messages").set(held as f64);
}
