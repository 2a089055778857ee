//! SMTP intake load: sessions of EHLO, then per message MAIL, RCPT, DATA and
//! the message, then QUIT; messages per second accepted (250 after the
//! data) and the latency of each transaction (MAIL sent to 250 received).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use crate::conn::Conn;
use crate::stats::{Failures, Latencies};

/// The load's parameters.
pub(crate) struct SmtpLoad {
    pub(crate) addr: SocketAddr,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) messages: usize,
    pub(crate) concurrency: usize,
    pub(crate) size: usize,
    pub(crate) per_session: usize,
    pub(crate) pipelining: bool,
    pub(crate) helo: String,
}

/// What it measured.
pub(crate) struct SmtpReport {
    /// Messages the server accepted with 250 after the data.
    pub(crate) accepted: usize,
    /// Transactions or sessions that failed.
    pub(crate) failures: Failures,
    /// Sessions opened.
    pub(crate) sessions: usize,
    /// From the first connect to the last QUIT.
    pub(crate) seconds: f64,
    /// Per-message transaction time.
    pub(crate) latencies: Latencies,
    /// Octets of one message as sent (before dot-stuffing, which it never needs).
    pub(crate) message_octets: usize,
}

/// A message of exactly `size` octets (at least its header), CRLF line ends,
/// lines under 80 octets, none starting with '.', ending in CRLF.
pub(crate) fn message(from: &str, to: &str, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: mailroom-loadgen\r\n\
         Message-ID: <loadgen@mailroom.invalid>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    .into_bytes();
    const LINE: &[u8] =
        b"The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrs";
    while m.len() + 2 < size {
        let room = size - m.len() - 2;
        let take = room.min(LINE.len());
        // A last line shorter than 1 octet is just the CRLF.
        m.extend_from_slice(&LINE[..take]);
        m.extend_from_slice(b"\r\n");
    }
    // 1 or 2 octets short (a line needs 3): lengthen the Subject.
    let at = memchr::memmem::find(&m, b"mailroom-loadgen\r\n").map_or(0, |i| i + 16);
    while m.len() < size {
        m.insert(at, b'x');
    }
    m
}

/// Reads one reply (all its lines); returns the code and the last line.
async fn reply(conn: &mut Conn) -> Result<(u16, String)> {
    loop {
        let line = conn.line().await?;
        let code = line
            .get(..3)
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(|c| c.parse::<u16>().ok());
        let Some(code) = code else {
            bail!("malformed reply {:?}", String::from_utf8_lossy(line));
        };
        if line.get(3) != Some(&b'-') {
            return Ok((code, String::from_utf8_lossy(line).into_owned()));
        }
    }
}

/// Reads a reply and fails unless its code is `want`.
async fn expect(conn: &mut Conn, want: u16, what: &str) -> Result<()> {
    let (code, line) = reply(conn).await?;
    if code != want {
        bail!("{what}: {line}");
    }
    Ok(())
}

/// EHLO; returns whether PIPELINING was offered.
async fn ehlo(conn: &mut Conn, helo: &str) -> Result<bool> {
    conn.send(format!("EHLO {helo}\r\n").as_bytes()).await?;
    let mut pipelining = false;
    loop {
        let line = conn.line().await?;
        if !line.starts_with(b"250") {
            bail!("EHLO: {}", String::from_utf8_lossy(line));
        }
        pipelining |= line
            .get(4..)
            .is_some_and(|k| k.eq_ignore_ascii_case(b"PIPELINING"));
        if line.get(3) != Some(&b'-') {
            return Ok(pipelining);
        }
    }
}

/// Runs the load.
pub(crate) async fn run(load: SmtpLoad) -> Result<SmtpReport> {
    let mut body = message(&load.from, &load.to, load.size);
    let message_octets = body.len();
    body.extend_from_slice(b".\r\n");
    let body: Arc<[u8]> = body.into();
    let envelope: Arc<[u8]> = format!(
        "MAIL FROM:<{}> SIZE={message_octets}\r\nRCPT TO:<{}>\r\nDATA\r\n",
        load.from, load.to
    )
    .into_bytes()
    .into();
    let load = Arc::new(load);
    let next = Arc::new(AtomicUsize::new(0));
    let per_session = load.per_session.max(1);
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..load.concurrency.max(1) {
        let (load, next, body, envelope) = (
            Arc::clone(&load),
            Arc::clone(&next),
            Arc::clone(&body),
            Arc::clone(&envelope),
        );
        workers.push(tokio::spawn(async move {
            let mut w = Worker::default();
            loop {
                let first = next.fetch_add(per_session, Ordering::Relaxed);
                if first >= load.messages {
                    break;
                }
                let count = per_session.min(load.messages - first);
                w.sessions += 1;
                if let Err(e) = w.session(&load, count, &envelope, &body).await {
                    w.failures.record(format!("{e:#}"));
                }
            }
            w
        }));
    }
    let mut report = SmtpReport {
        accepted: 0,
        failures: Failures::default(),
        sessions: 0,
        seconds: 0.0,
        latencies: Latencies::default(),
        message_octets,
    };
    for worker in workers {
        let w = worker.await.context("worker task")?;
        report.accepted += w.accepted;
        report.sessions += w.sessions;
        report.failures.merge(w.failures);
        report.latencies.merge(w.latencies);
    }
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

#[derive(Default)]
struct Worker {
    accepted: usize,
    sessions: usize,
    failures: Failures,
    latencies: Latencies,
}

impl Worker {
    /// One session carrying `count` messages.
    async fn session(
        &mut self,
        load: &SmtpLoad,
        count: usize,
        envelope: &[u8],
        body: &[u8],
    ) -> Result<()> {
        let mut conn = Conn::connect(load.addr).await?;
        expect(&mut conn, 220, "greeting").await?;
        let offered = ehlo(&mut conn, &load.helo).await?;
        if load.pipelining && !offered {
            bail!("--pipelining: the server does not offer PIPELINING");
        }
        for _ in 0..count {
            let started = Instant::now();
            if load.pipelining {
                // RFC 2920: MAIL, RCPT and DATA in one group, DATA last.
                conn.send(envelope).await?;
                let mail = reply(&mut conn).await?;
                let rcpt = reply(&mut conn).await?;
                let data = reply(&mut conn).await?;
                if mail.0 != 250 || rcpt.0 != 250 || data.0 != 354 {
                    bail!("envelope refused: {} / {} / {}", mail.1, rcpt.1, data.1);
                }
            } else {
                let mut lines = envelope.split_inclusive(|&b| b == b'\n');
                for (want, what) in [(250, "MAIL"), (250, "RCPT"), (354, "DATA")] {
                    let line = lines.next().unwrap_or_default();
                    conn.send(line).await?;
                    expect(&mut conn, want, what).await?;
                }
            }
            conn.send(body).await?;
            let (code, line) = reply(&mut conn).await?;
            if code == 250 {
                self.accepted += 1;
                self.latencies.record(started.elapsed());
            } else {
                self.failures.record(format!("after DATA: {line}"));
                if code == 421 {
                    return Ok(());
                }
            }
        }
        conn.send(b"QUIT\r\n").await?;
        expect(&mut conn, 221, "QUIT").await?;
        conn.close().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_exact_size() {
        let header = message("a@b", "c@d", 0).len();
        for size in [
            0,
            100,
            header + 1,
            header + 2,
            header + 3,
            header + 77,
            header + 78,
            2048,
            100_000,
        ] {
            let m = message("a@b", "c@d", size);
            assert_eq!(m.len(), size.max(header), "size {size}");
            assert!(m.ends_with(b"\r\n"));
            assert!(!m.windows(3).any(|w| w == b"\n.\r" || w == b"\n.."));
            assert!(m.split(|&b| b == b'\n').all(|l| l.len() < 80));
        }
    }
}
