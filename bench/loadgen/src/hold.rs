//! Connection loads that do not deliver mail: `hold` opens many SMTP
//! connections and keeps them idle (memory per connection, connection
//! caps); `slowloris` keeps sockets busy with one byte every few seconds
//! of a command line that never ends (do the server's timeouts end them?).
//!
//! Connections are spread over source addresses (`--sources`): every
//! 127.0.0.x is a loopback address on Linux, so one machine can be many
//! clients for a per-IP limit.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

use crate::stats::Latencies;

/// Parses `127.0.0.1,127.0.0.2` or `127.0.0.1-4` (the last octet ranges).
pub(crate) fn parse_sources(text: &str) -> Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((base, last)) = part.rsplit_once('-') {
            let first: std::net::Ipv4Addr = base.parse().with_context(|| format!("{part:?}"))?;
            let last: u8 = last.parse().with_context(|| format!("{part:?}"))?;
            let [a, b, c, d] = first.octets();
            if last < d {
                bail!("{part:?}: the range runs backwards");
            }
            for x in d..=last {
                out.push(IpAddr::from([a, b, c, x]));
            }
        } else {
            out.push(part.parse().with_context(|| format!("{part:?}"))?);
        }
    }
    if out.is_empty() {
        bail!("no source address");
    }
    Ok(out)
}

/// Connects to `addr` from `source` (port chosen by the kernel).
pub(crate) async fn connect_from(source: IpAddr, addr: SocketAddr) -> Result<TcpStream> {
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket
        .bind(SocketAddr::new(source, 0))
        .with_context(|| format!("binding {source}"))?;
    let stream = socket
        .connect(addr)
        .await
        .with_context(|| format!("connecting {source} → {addr}"))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Reads one whole SMTP reply (all its lines) within `limit`; its last
/// line, or None when the peer closed first.
async fn read_reply(stream: &mut TcpStream, limit: Duration) -> Result<Option<String>> {
    let mut buf = Vec::with_capacity(256);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        // A complete reply: its last line has a space after the code.
        if let Some(last) = complete_reply(&buf) {
            return Ok(Some(last));
        }
        let mut chunk = [0u8; 512];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .context("no reply in time")??;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The last line of the first complete reply in `buf`, if there is one.
fn complete_reply(buf: &[u8]) -> Option<String> {
    for line in buf.split_inclusive(|&b| b == b'\n') {
        if !line.ends_with(b"\n") {
            return None;
        }
        if line.get(3) != Some(&b'-') {
            return Some(String::from_utf8_lossy(line).trim_end().to_string());
        }
    }
    None
}

/// The server's resident set size now (VmRSS), in KiB.
pub(crate) fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// What `hold` was asked to do.
pub(crate) struct HoldLoad {
    pub(crate) addr: SocketAddr,
    pub(crate) sources: Vec<IpAddr>,
    pub(crate) connections: usize,
    /// Connects in flight at once.
    pub(crate) parallel: usize,
    /// Send EHLO and wait for its reply on each accepted connection.
    pub(crate) ehlo: bool,
    pub(crate) hold: Duration,
    pub(crate) watch_pid: Option<u32>,
}

/// What `hold` saw.
#[derive(Default)]
pub(crate) struct HoldReport {
    /// Connections greeted with 220 (and, with --ehlo, answered 250).
    pub(crate) open: usize,
    /// Greeted with 421 instead.
    pub(crate) refused_421: usize,
    /// The first 421 line, to show its enhanced code.
    pub(crate) first_421: Option<String>,
    /// Connect errors, closes without a greeting, other replies.
    pub(crate) failed: usize,
    pub(crate) first_failure: Option<String>,
    /// 220s per source address, in `sources` order.
    pub(crate) open_per_source: Vec<usize>,
    pub(crate) connect_seconds: f64,
    pub(crate) rss_before_kib: Option<u64>,
    pub(crate) rss_held_kib: Option<u64>,
    pub(crate) rss_after_close_kib: Option<u64>,
    /// Connections still open at the end of the hold (the server closed
    /// none of them, e.g. by a timeout).
    pub(crate) open_at_end: usize,
}

enum Greeted {
    Open(TcpStream),
    Refused(String),
    Failed(String),
}

async fn open_one(addr: SocketAddr, source: IpAddr, ehlo: bool) -> Greeted {
    let mut stream = match connect_from(source, addr).await {
        Ok(s) => s,
        Err(e) => return Greeted::Failed(format!("{e:#}")),
    };
    let limit = Duration::from_secs(60);
    match read_reply(&mut stream, limit).await {
        Ok(Some(line)) if line.starts_with("220") => {}
        Ok(Some(line)) if line.starts_with("421") => return Greeted::Refused(line),
        Ok(Some(line)) => return Greeted::Failed(format!("greeting {line}")),
        Ok(None) => return Greeted::Failed("closed without a greeting".into()),
        Err(e) => return Greeted::Failed(format!("greeting: {e:#}")),
    }
    if ehlo {
        if let Err(e) = stream.write_all(b"EHLO hold.loadgen.test\r\n").await {
            return Greeted::Failed(format!("EHLO: {e}"));
        }
        match read_reply(&mut stream, limit).await {
            Ok(Some(line)) if line.starts_with("250") => {}
            other => return Greeted::Failed(format!("EHLO reply: {other:?}")),
        }
    }
    Greeted::Open(stream)
}

/// Whether the server closed `stream` (EOF or an error, without waiting).
fn closed_by_peer(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.try_read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// Opens the connections, holds them, closes them; samples the server's
/// VmRSS before, while held, and after.
pub(crate) async fn hold(load: HoldLoad) -> Result<HoldReport> {
    let mut report = HoldReport {
        open_per_source: vec![0; load.sources.len()],
        ..HoldReport::default()
    };
    let rss = |pid: Option<u32>| pid.and_then(vm_rss_kib);
    report.rss_before_kib = rss(load.watch_pid);
    let gate = Arc::new(Semaphore::new(load.parallel.max(1)));
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(load.connections);
    for i in 0..load.connections {
        let slot = i % load.sources.len();
        let source = load.sources[slot];
        let gate = Arc::clone(&gate);
        let (addr, ehlo) = (load.addr, load.ehlo);
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            (slot, open_one(addr, source, ehlo).await)
        }));
    }
    let mut held = Vec::with_capacity(load.connections);
    for task in tasks {
        let (slot, greeted) = task.await.context("connect task")?;
        match greeted {
            Greeted::Open(s) => {
                report.open += 1;
                report.open_per_source[slot] += 1;
                held.push(s);
            }
            Greeted::Refused(line) => {
                report.refused_421 += 1;
                report.first_421.get_or_insert(line);
            }
            Greeted::Failed(why) => {
                report.failed += 1;
                report.first_failure.get_or_insert(why);
            }
        }
    }
    report.connect_seconds = t0.elapsed().as_secs_f64();
    eprintln!(
        "hold: {} open, {} refused with 421, {} failed in {:.1}s; holding {:?}",
        report.open, report.refused_421, report.failed, report.connect_seconds, load.hold
    );
    // Let the server settle (sessions allocate on their first read), then
    // take the highest of a few samples over the hold.
    let end = Instant::now() + load.hold;
    let mut peak = None;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(500).min(load.hold)).await;
        peak = peak.max(rss(load.watch_pid));
    }
    report.rss_held_kib = peak.or_else(|| rss(load.watch_pid));
    report.open_at_end = held.iter().filter(|s| !closed_by_peer(s)).count();
    drop(held);
    tokio::time::sleep(Duration::from_secs(2)).await;
    report.rss_after_close_kib = rss(load.watch_pid);
    Ok(report)
}

/// What `slowloris` was asked to do.
pub(crate) struct SlowLoad {
    pub(crate) addr: SocketAddr,
    pub(crate) sources: Vec<IpAddr>,
    pub(crate) connections: usize,
    pub(crate) parallel: usize,
    /// One byte per interval.
    pub(crate) interval: Duration,
    /// Give up after this long (connections the server never closed count
    /// as `still_open`).
    pub(crate) duration: Duration,
    /// Open a new connection whenever the server closes one, so that
    /// `connections` sockets stay busy for the whole duration.
    pub(crate) reconnect: bool,
}

/// What `slowloris` saw.
#[derive(Default)]
pub(crate) struct SlowReport {
    /// Connections greeted with 220 (more than `connections` with
    /// reconnects).
    pub(crate) opened: usize,
    pub(crate) failed: usize,
    pub(crate) first_failure: Option<String>,
    /// The server closed the connection.
    pub(crate) closed_by_server: usize,
    /// ...after a 421 reply (RFC 5321 §4.5.3.2: the server may close after
    /// a timeout, and should say so).
    pub(crate) got_421: usize,
    pub(crate) first_reply: Option<String>,
    /// Bytes the client trickled in before the close, summed.
    pub(crate) bytes_sent: u64,
    /// From the greeting to the server's close.
    pub(crate) lifetimes: Latencies,
    pub(crate) still_open: usize,
    pub(crate) seconds: f64,
}

enum Fate {
    Failed(String),
    Closed {
        lifetime: Duration,
        reply: Option<String>,
        sent: u64,
    },
    StillOpen {
        sent: u64,
    },
}

/// A command line that never ends: "EHLO " and then letters, one byte per
/// interval (a line of 512 octets would take the client half an hour).
async fn trickle(addr: SocketAddr, source: IpAddr, interval: Duration, until: Instant) -> Fate {
    let mut stream = match connect_from(source, addr).await {
        Ok(s) => s,
        Err(e) => return Fate::Failed(format!("{e:#}")),
    };
    match read_reply(&mut stream, Duration::from_secs(60)).await {
        Ok(Some(line)) if line.starts_with("220") => {}
        other => return Fate::Failed(format!("greeting: {other:?}")),
    }
    let greeted = Instant::now();
    let script = b"EHLO slowloris";
    let mut sent: u64 = 0;
    let mut got = Vec::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = tokio::time::Instant::from_std(until);
    loop {
        let mut chunk = [0u8; 512];
        tokio::select! {
            _ = tokio::time::sleep_until(stop) => return Fate::StillOpen { sent },
            _ = tick.tick() => {
                let i = usize::try_from(sent).unwrap_or(0);
                let byte = script.get(i).copied().unwrap_or(b'x');
                if stream.write_all(&[byte]).await.is_err() {
                    return Fate::Closed { lifetime: greeted.elapsed(), reply: complete_reply(&got), sent };
                }
                sent += 1;
            }
            n = stream.read(&mut chunk) => match n {
                Ok(0) | Err(_) => {
                    return Fate::Closed { lifetime: greeted.elapsed(), reply: complete_reply(&got), sent };
                }
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            },
        }
    }
}

/// Runs the slowloris clients until the server has closed every one or
/// the duration ends.
pub(crate) async fn slowloris(load: SlowLoad) -> Result<SlowReport> {
    let t0 = Instant::now();
    let until = t0 + load.duration;
    let gate = Arc::new(Semaphore::new(load.parallel.max(1)));
    let mut tasks = Vec::with_capacity(load.connections);
    for i in 0..load.connections {
        let source = load.sources[i % load.sources.len()];
        let gate = Arc::clone(&gate);
        let (addr, interval) = (load.addr, load.interval);
        let reconnect = load.reconnect;
        tasks.push(tokio::spawn(async move {
            let mut fates = Vec::new();
            // Only the first connects are paced by the gate; reconnects
            // happen one at a time per task anyway.
            let permit = gate.acquire_owned().await;
            drop(permit);
            while Instant::now() < until {
                let fate = trickle(addr, source, interval, until).await;
                let again = match &fate {
                    Fate::Closed { .. } => reconnect,
                    Fate::Failed(_) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        reconnect
                    }
                    Fate::StillOpen { .. } => false,
                };
                fates.push(fate);
                if !again {
                    break;
                }
            }
            fates
        }));
    }
    let mut report = SlowReport::default();
    let fates = {
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.context("slowloris task")?);
        }
        all
    };
    for fate in fates {
        match fate {
            Fate::Failed(why) => {
                report.failed += 1;
                report.first_failure.get_or_insert(why);
            }
            Fate::Closed {
                lifetime,
                reply,
                sent,
            } => {
                report.opened += 1;
                report.closed_by_server += 1;
                report.bytes_sent += sent;
                report.lifetimes.record(lifetime);
                if let Some(r) = reply {
                    if r.starts_with("421") {
                        report.got_421 += 1;
                    }
                    report.first_reply.get_or_insert(r);
                }
            }
            Fate::StillOpen { sent } => {
                report.opened += 1;
                report.still_open += 1;
                report.bytes_sent += sent;
            }
        }
    }
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn source_lists_and_ranges() {
        let s = parse_sources("127.0.0.1-3,127.0.1.9").unwrap();
        assert_eq!(
            s.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.1.9"]
        );
        assert!(parse_sources("127.0.0.5-2").is_err());
        assert!(parse_sources("").is_err());
    }

    #[test]
    fn replies_are_complete_at_their_last_line() {
        assert_eq!(complete_reply(b"220 hi\r\n").as_deref(), Some("220 hi"));
        assert_eq!(
            complete_reply(b"250-a\r\n250 b\r\n").as_deref(),
            Some("250 b")
        );
        assert_eq!(complete_reply(b"250-a\r\n250 b"), None);
        assert_eq!(complete_reply(b"250-a\r\n"), None);
    }
}
