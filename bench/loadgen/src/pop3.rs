//! POP3 loads: RETR throughput in one session, and whole sessions per second.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use crate::conn::Conn;
use crate::stats::{Failures, Latencies};

/// A line as text for error messages.
fn text(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

/// Reads a status line; an error unless it is `+OK`. Returns the text after
/// `+OK`.
async fn ok(conn: &mut Conn, what: &str) -> Result<String> {
    let line = conn.line().await?;
    if line.starts_with(b"+OK") {
        Ok(text(&line[3..]).trim().to_string())
    } else {
        bail!("{what}: {}", text(line))
    }
}

/// Greeting, USER, PASS on `conn`: a session in the TRANSACTION state.
async fn login(mut conn: Conn, user: &str, password: &str) -> Result<Conn> {
    ok(&mut conn, "greeting").await?;
    conn.send(format!("USER {user}\r\n").as_bytes()).await?;
    ok(&mut conn, "USER").await?;
    conn.send(format!("PASS {password}\r\n").as_bytes()).await?;
    ok(&mut conn, "PASS").await?;
    Ok(conn)
}

/// STAT: (messages, octets).
async fn stat(conn: &mut Conn) -> Result<(usize, u64)> {
    conn.send(b"STAT\r\n").await?;
    let reply = ok(conn, "STAT").await?;
    let mut fields = reply.split_ascii_whitespace();
    let count = fields.next().and_then(|f| f.parse().ok());
    let size = fields.next().and_then(|f| f.parse().ok());
    match (count, size) {
        (Some(c), Some(s)) => Ok((c, s)),
        _ => bail!("STAT: unexpected reply {reply:?}"),
    }
}

/// True when CAPA lists PIPELINING.
async fn has_pipelining(conn: &mut Conn) -> Result<bool> {
    conn.send(b"CAPA\r\n").await?;
    ok(conn, "CAPA").await?;
    let mut found = false;
    loop {
        let line = conn.line().await?;
        if line == b"." {
            return Ok(found);
        }
        found |= line.eq_ignore_ascii_case(b"PIPELINING");
    }
}

async fn quit(mut conn: Conn) -> Result<()> {
    conn.send(b"QUIT\r\n").await?;
    ok(&mut conn, "QUIT").await?;
    conn.close().await;
    Ok(())
}

/// What one RETR session measured.
pub(crate) struct RetrReport {
    /// Messages STAT announced.
    pub(crate) stat_messages: usize,
    /// Octets STAT announced.
    pub(crate) stat_octets: u64,
    /// Messages retrieved.
    pub(crate) messages: usize,
    /// Message octets received (un-stuffed, CRLF line ends).
    pub(crate) octets: u64,
    /// From the first RETR sent to the last message's terminator.
    pub(crate) seconds: f64,
    /// Login (greeting to +OK after PASS) and STAT.
    pub(crate) login_seconds: f64,
    /// The pipeline depth actually used.
    pub(crate) pipeline: usize,
}

/// What one RETR session does.
pub(crate) struct RetrLoad<'a> {
    pub(crate) addr: SocketAddr,
    pub(crate) user: &'a str,
    pub(crate) password: &'a str,
    /// Messages to retrieve (default: all that STAT reports).
    pub(crate) count: Option<usize>,
    /// How many times over to retrieve them.
    pub(crate) passes: usize,
    /// RETR commands in flight.
    pub(crate) pipeline: usize,
    /// Blocking reads and writes (see `conn::Transport::Blocking`).
    pub(crate) blocking: bool,
    /// Busy-polling reads and writes (see `conn::Transport::Spinning`).
    pub(crate) spin: bool,
}

/// One session: login, STAT, RETR 1..=count (`passes` times over) with up
/// to `pipeline` commands outstanding, QUIT (no DELE).
///
/// `start` runs once logged in, right before the first RETR, and `stop`
/// right after the last message (before QUIT), so that a watcher of the
/// server sees neither the login nor the logout; `stop`'s result comes back
/// with the report.
pub(crate) async fn retr<W, S>(
    load: RetrLoad<'_>,
    start: impl FnOnce() -> W,
    stop: impl FnOnce(W) -> S,
) -> Result<(RetrReport, S)> {
    let started = Instant::now();
    let conn = if load.blocking || load.spin {
        Conn::connect_blocking(load.addr, load.spin)?
    } else {
        Conn::connect(load.addr).await?
    };
    let mut conn = login(conn, load.user, load.password).await?;
    let (stat_messages, stat_octets) = stat(&mut conn).await?;
    let login_seconds = started.elapsed().as_secs_f64();
    let count = load.count.unwrap_or(stat_messages);
    if count > stat_messages {
        bail!("--count {count} but the maildrop holds {stat_messages} messages");
    }
    let number = |sent: usize| (sent - 1) % count + 1;
    let count = count * load.passes.max(1);
    let pipeline = load.pipeline;
    let pipeline = pipeline.max(1);
    if pipeline > 1 && !has_pipelining(&mut conn).await? {
        bail!("--pipeline {pipeline}: the server does not advertise PIPELINING in CAPA");
    }
    let mut commands = Vec::with_capacity(16 * pipeline);
    let mut sent = 0usize;
    let mut done = 0usize;
    let mut octets = 0u64;
    let measuring = start();
    let t0 = Instant::now();
    while done < count {
        // Top the pipeline up in one write.
        commands.clear();
        while sent < count && sent - done < pipeline {
            sent += 1;
            commands.extend_from_slice(format!("RETR {}\r\n", number(sent)).as_bytes());
        }
        if !commands.is_empty() {
            conn.send(&commands).await?;
        }
        // Then take every response that is already complete (at least one).
        loop {
            ok(&mut conn, "RETR")
                .await
                .with_context(|| format!("message {}", number(done + 1)))?;
            octets += conn.dot_body().await?;
            done += 1;
            // Top up once half the window is used, so the server always
            // has commands queued while replies are in flight.
            if done == sent || !conn.has_buffered() || sent - done <= pipeline / 2 {
                break;
            }
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let measured = stop(measuring);
    let report = RetrReport {
        stat_messages,
        stat_octets,
        messages: count,
        octets,
        seconds,
        login_seconds,
        pipeline,
    };
    quit(conn).await?;
    Ok((report, measured))
}

/// What a sessions load measured.
pub(crate) struct SessionsReport {
    /// Sessions that completed (QUIT answered +OK).
    pub(crate) ok: usize,
    /// Sessions that failed, with the first few reasons.
    pub(crate) failures: Failures,
    /// From the first connect to the last session's end.
    pub(crate) seconds: f64,
    /// Per-session wall time, connect to QUIT's reply.
    pub(crate) latencies: Latencies,
    /// The messages STAT reported (from the last session).
    pub(crate) stat_messages: usize,
}

/// The user name worker `worker` logs in as: `user` itself, or with
/// `users > 0`, `user` followed by `worker % users`.
pub(crate) fn user_for(user: &str, users: usize, worker: usize) -> String {
    if users == 0 {
        user.to_string()
    } else {
        format!("{user}{}", worker % users)
    }
}

/// `sessions` whole sessions (connect, greeting, USER, PASS, STAT, QUIT),
/// `concurrency` at a time.
pub(crate) async fn sessions(
    addr: SocketAddr,
    user: &str,
    password: &str,
    users: usize,
    sessions: usize,
    concurrency: usize,
) -> Result<SessionsReport> {
    let next = Arc::new(AtomicUsize::new(0));
    let password: Arc<str> = password.into();
    let t0 = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency.max(1) {
        let next = Arc::clone(&next);
        let password = Arc::clone(&password);
        let user = user_for(user, users, worker);
        workers.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            let mut failures = Failures::default();
            let mut stat_messages = 0;
            while next.fetch_add(1, Ordering::Relaxed) < sessions {
                let started = Instant::now();
                let result = async {
                    let mut conn = login(Conn::connect(addr).await?, &user, &password).await?;
                    let (messages, _) = stat(&mut conn).await?;
                    quit(conn).await?;
                    anyhow::Ok(messages)
                }
                .await;
                match result {
                    Ok(messages) => {
                        stat_messages = messages;
                        latencies.record(started.elapsed());
                    }
                    Err(e) => failures.record(format!("{user}: {e:#}")),
                }
            }
            (latencies, failures, stat_messages)
        }));
    }
    let mut latencies = Latencies::default();
    let mut failures = Failures::default();
    let mut stat_messages = 0;
    for worker in workers {
        let (l, f, s) = worker.await.context("worker task")?;
        latencies.merge(l);
        failures.merge(f);
        stat_messages = stat_messages.max(s);
    }
    Ok(SessionsReport {
        ok: latencies.len(),
        failures,
        seconds: t0.elapsed().as_secs_f64(),
        latencies,
        stat_messages,
    })
}
