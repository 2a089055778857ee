//! `mailroom-loadgen`: the load generator behind `bench/pop3.sh`.
//!
//! Subcommands:
//!
//! - `pop3-retr`: one POP3 session that retrieves every message (RETR 1..N,
//!   optionally pipelined), without DELE;
//! - `pop3-sessions`: many whole POP3 sessions (connect, greeting, USER,
//!   PASS, STAT, QUIT), some at a time;
//! - `smtp`: SMTP intake (EHLO, then MAIL, RCPT, DATA per message);
//! - `maildrop`: writes a benchmark maildrop in mailroom's or Dovecot's
//!   storage form;
//! - `hold`: opens many SMTP connections and keeps them idle (server RSS
//!   per connection; connection caps answer 421);
//! - `slowloris`: sockets that send one byte of a never-ending command line
//!   every few seconds, until the server's timeout closes them;
//! - `selftest`: runs the loads against a trivial in-process responder, to
//!   show how far the load generator itself goes.
//!
//! Each load prints one JSON line. With `--watch-pid PID` it also samples
//! the server's process tree (see `watch.rs`): peak RSS/PSS and the CPU
//! time the server used during the load. The load generator reports its
//! own CPU time too, so a run shows whether it was the bottleneck.
//!
//! The runtime is single-threaded by default (`--threads 1`): against a
//! real server on the same machine, every core the load generator leaves
//! alone is one the server can use.

mod conn;
mod hold;
mod maildrop;
mod pop3;
mod responder;
mod smtp;
mod stats;
mod watch;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::stats::own_cpu_seconds;
use crate::watch::{Peak, Watcher};

#[derive(Parser)]
#[command(
    name = "mailroom-loadgen",
    version,
    about = "POP3 and SMTP load generator for mailroom's benchmarks"
)]
struct Cli {
    /// Runtime worker threads (1 = a single-threaded runtime).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One session: USER/PASS, STAT, RETR 1..N, QUIT (no DELE).
    Pop3Retr(RetrArgs),
    /// Whole sessions: connect, greeting, USER, PASS, STAT, QUIT.
    Pop3Sessions(SessionsArgs),
    /// SMTP intake: EHLO, then MAIL, RCPT, DATA and the message; QUIT.
    Smtp(SmtpArgs),
    /// Writes a benchmark maildrop into a Maildir.
    Maildrop(MaildropArgs),
    /// Opens many SMTP connections, holds them idle, reports server RSS.
    Hold(HoldArgs),
    /// Slow clients: one byte of a command line every few seconds.
    Slowloris(SlowArgs),
    /// Runs every load against a trivial in-process responder.
    Selftest(SelftestArgs),
}

#[derive(Args)]
struct Sources {
    /// Source addresses, spread round-robin: `127.0.0.1,127.0.0.2` or
    /// `127.0.0.1-4` (every 127.0.0.x is loopback on Linux).
    #[arg(long, default_value = "127.0.0.1")]
    sources: String,
    /// Connects (and greetings awaited) in flight at once.
    #[arg(long, default_value_t = 256)]
    parallel: usize,
}

#[derive(Args)]
struct HoldArgs {
    #[command(flatten)]
    server: Server,
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    #[command(flatten)]
    sources: Sources,
    /// Send EHLO on each connection before holding it.
    #[arg(long)]
    ehlo: bool,
    /// Seconds to hold the connections open.
    #[arg(long, default_value_t = 5)]
    hold_secs: u64,
    /// The server's pid, for VmRSS before, while held and after.
    #[arg(long, value_name = "PID")]
    watch_pid: Option<u32>,
}

#[derive(Args)]
struct SlowArgs {
    #[command(flatten)]
    server: Server,
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    #[command(flatten)]
    sources: Sources,
    /// Milliseconds between two bytes.
    #[arg(long, default_value_t = 3000)]
    interval_ms: u64,
    /// Stop after this many seconds; connections still open then are
    /// reported as such.
    #[arg(long, default_value_t = 120)]
    duration_secs: u64,
    /// Reconnect whenever the server closes a socket (keeps the pressure
    /// on for the whole duration).
    #[arg(long)]
    reconnect: bool,
}

#[derive(Args)]
struct Server {
    /// The server, HOST:PORT.
    #[arg(long)]
    server: String,
}

#[derive(Args)]
struct Watch {
    /// Sample this process and its descendants (peak RSS/PSS, CPU time).
    #[arg(long, value_name = "PID")]
    watch_pid: Option<u32>,
    /// Memory sampling interval for --watch-pid, milliseconds; 0 = no
    /// sampling (CPU time and the root's VmHWM only, which is exact for a
    /// one-process server).
    #[arg(long, default_value_t = 100)]
    watch_interval_ms: u64,
    /// Sample PSS too, every fifth sample (costly for processes with much
    /// memory mapped).
    #[arg(long)]
    watch_pss: bool,
}

#[derive(Args)]
struct RetrArgs {
    #[command(flatten)]
    server: Server,
    #[arg(long)]
    user: String,
    #[arg(long)]
    password: String,
    /// Messages to retrieve [default: all that STAT reports].
    #[arg(long)]
    count: Option<usize>,
    /// RETR commands in flight (1 = wait for each reply; more needs
    /// PIPELINING in CAPA).
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Retrieve messages 1..COUNT this many times in the session (a longer
    /// run measures a steadier rate).
    #[arg(long, default_value_t = 1)]
    passes: usize,
    /// Drive the connection from the tokio event loop instead of blocking
    /// reads and writes (the default for this one-connection load).
    #[arg(long, conflicts_with = "busy_poll")]
    event_loop: bool,
    /// Busy-poll the connection instead of sleeping in reads: the client
    /// is awake when each reply lands, so the rate measures the server's
    /// turnaround rather than the cost of waking the client (it keeps one
    /// CPU busy).
    #[arg(long)]
    busy_poll: bool,
    #[command(flatten)]
    watch: Watch,
}

#[derive(Args)]
struct SessionsArgs {
    #[command(flatten)]
    server: Server,
    /// The user; with --users K, worker i logs in as USER<i mod K>.
    #[arg(long)]
    user: String,
    #[arg(long)]
    password: String,
    /// Distinct users (0 = everyone is --user). Both servers refuse or
    /// limit concurrent sessions of one user (mailroom's maildrop lock,
    /// Dovecot's mail_max_userip_connections), so concurrent loads want
    /// --users equal to --concurrency.
    #[arg(long, default_value_t = 0)]
    users: usize,
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    #[arg(long, default_value_t = 10)]
    concurrency: usize,
    #[command(flatten)]
    watch: Watch,
}

#[derive(Args)]
struct SmtpArgs {
    #[command(flatten)]
    server: Server,
    #[arg(long)]
    from: String,
    #[arg(long)]
    to: String,
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    #[arg(long, default_value_t = 10)]
    concurrency: usize,
    /// Message size in octets, header included.
    #[arg(long, default_value_t = 2048)]
    size: usize,
    /// Messages per session.
    #[arg(long, default_value_t = 1)]
    per_session: usize,
    /// Send MAIL, RCPT and DATA as one group (RFC 2920).
    #[arg(long)]
    pipelining: bool,
    #[arg(long, default_value = "loadgen.example.test")]
    helo: String,
    #[command(flatten)]
    watch: Watch,
}

#[derive(Args)]
struct MaildropArgs {
    /// The Maildir (tmp/, new/ and cur/ are created).
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value_t = 5000)]
    count: usize,
    /// Octets per message in CRLF form.
    #[arg(long, default_value_t = 2048)]
    size: usize,
    #[arg(long, value_enum)]
    layout: maildrop::Layout,
}

#[derive(Args)]
struct SelftestArgs {
    #[arg(long, default_value_t = 5000)]
    messages: usize,
    #[arg(long, default_value_t = 2048)]
    size: usize,
    #[arg(long, default_value_t = 2000)]
    sessions: usize,
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
    #[arg(long, default_value_t = 16)]
    pipeline: usize,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()?
    };
    let failed = runtime.block_on(run(cli.command))?;
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

fn resolve(addr: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .with_context(|| format!("{addr}: no address"))
}

/// Runs one command; `true` when some operations failed (the figures are
/// printed anyway).
async fn run(command: Command) -> Result<bool> {
    match command {
        Command::Pop3Retr(a) => {
            let addr = resolve(&a.server.server)?;
            let load = pop3::RetrLoad {
                addr,
                user: &a.user,
                password: &a.password,
                count: a.count,
                passes: a.passes,
                pipeline: a.pipeline,
                blocking: !a.event_loop,
                spin: a.busy_poll,
            };
            let (r, watched) =
                pop3::retr(load, || Watching::start(&a.watch), Watching::stop).await?;
            println!("{}", retr_json(&a.server.server, &r, watched));
            Ok(false)
        }
        Command::Pop3Sessions(a) => {
            let addr = resolve(&a.server.server)?;
            let w = Watching::start(&a.watch);
            let r = pop3::sessions(
                addr,
                &a.user,
                &a.password,
                a.users,
                a.sessions,
                a.concurrency,
            )
            .await?;
            let failed = r.failures.count > 0;
            println!(
                "{}",
                sessions_json(&a.server.server, a.concurrency, r, w.stop())
            );
            Ok(failed)
        }
        Command::Smtp(a) => {
            let addr = resolve(&a.server.server)?;
            let w = Watching::start(&a.watch);
            let r = smtp::run(smtp::SmtpLoad {
                addr,
                from: a.from,
                to: a.to,
                messages: a.messages,
                concurrency: a.concurrency,
                size: a.size,
                per_session: a.per_session,
                pipelining: a.pipelining,
                helo: a.helo,
            })
            .await?;
            let failed = r.failures.count > 0;
            println!(
                "{}",
                smtp_json(&a.server.server, a.concurrency, r, w.stop())
            );
            Ok(failed)
        }
        Command::Maildrop(a) => {
            let octets = maildrop::write(&a.dir, a.count, a.size, a.layout)?;
            println!(
                "{{\"test\":\"maildrop\",\"dir\":{:?},\"messages\":{},\"file_octets\":{octets}}}",
                a.dir.display().to_string(),
                a.count
            );
            Ok(false)
        }
        Command::Hold(a) => {
            let addr = resolve(&a.server.server)?;
            let r = hold::hold(hold::HoldLoad {
                addr,
                sources: hold::parse_sources(&a.sources.sources)?,
                connections: a.connections,
                parallel: a.sources.parallel,
                ehlo: a.ehlo,
                hold: Duration::from_secs(a.hold_secs),
                watch_pid: a.watch_pid,
            })
            .await?;
            println!("{}", hold_json(&a.server.server, a.connections, &r));
            Ok(false)
        }
        Command::Slowloris(a) => {
            let addr = resolve(&a.server.server)?;
            let r = hold::slowloris(hold::SlowLoad {
                addr,
                sources: hold::parse_sources(&a.sources.sources)?,
                connections: a.connections,
                parallel: a.sources.parallel,
                interval: Duration::from_millis(a.interval_ms.max(1)),
                duration: Duration::from_secs(a.duration_secs),
                reconnect: a.reconnect,
            })
            .await?;
            println!("{}", slow_json(&a.server.server, a.interval_ms, r));
            Ok(false)
        }
        Command::Selftest(a) => selftest(a).await,
    }
}

/// Runs every load against the in-process responder.
async fn selftest(a: SelftestArgs) -> Result<bool> {
    let r = responder::start(a.messages, a.size)?;
    let pop3 = r.pop3.to_string();
    let me = Watch {
        watch_pid: Some(std::process::id()),
        watch_interval_ms: 0,
        watch_pss: false,
    };
    // Blocking, busy-polling, and pipelined on the event loop.
    for (pipeline, spin) in [(1, false), (1, true), (a.pipeline, false)] {
        let load = pop3::RetrLoad {
            addr: r.pop3,
            user: "u",
            password: "p",
            count: None,
            passes: 1,
            pipeline,
            blocking: pipeline == 1,
            spin,
        };
        let (report, watched) = pop3::retr(load, || Watching::start(&me), Watching::stop).await?;
        if report.messages != a.messages || report.octets != report.stat_octets {
            bail!(
                "selftest: {} messages, {} octets retrieved",
                report.messages,
                report.octets
            );
        }
        println!("{}", retr_json(&pop3, &report, watched));
    }
    let w = Watching::start(&me);
    let report = pop3::sessions(r.pop3, "u", "p", a.concurrency, a.sessions, a.concurrency).await?;
    let mut failed = report.failures.count > 0;
    println!("{}", sessions_json(&pop3, a.concurrency, report, w.stop()));
    for pipelining in [false, true] {
        let w = Watching::start(&me);
        let report = smtp::run(smtp::SmtpLoad {
            addr: r.smtp,
            from: "bench@example.test".into(),
            to: "alice@example.test".into(),
            messages: a.messages,
            concurrency: a.concurrency,
            size: a.size,
            per_session: 1,
            pipelining,
            helo: "loadgen.example.test".into(),
        })
        .await?;
        failed |= report.failures.count > 0;
        println!(
            "{}",
            smtp_json(&r.smtp.to_string(), a.concurrency, report, w.stop())
        );
    }
    eprintln!(
        "selftest: the responder runs on its own thread in this process, so \
         server_cpu_s is the whole process (load generator + responder) and \
         client_cpu_s likewise"
    );
    Ok(failed)
}

/// The optional server watcher plus the load generator's own CPU clock.
struct Watching {
    watcher: Option<Watcher>,
    cpu_start: f64,
}

impl Watching {
    fn start(w: &Watch) -> Watching {
        let interval =
            (w.watch_interval_ms > 0).then(|| Duration::from_millis(w.watch_interval_ms));
        Watching {
            watcher: w
                .watch_pid
                .map(|pid| Watcher::start(pid, interval, w.watch_pss)),
            cpu_start: own_cpu_seconds(),
        }
    }

    /// The watcher's findings and the load generator's CPU seconds, less
    /// the sampling thread's.
    fn stop(self) -> (Option<Peak>, f64) {
        let peak = self.watcher.map(Watcher::stop);
        let sampler = peak.map_or(0.0, |p| p.sampler_cpu_seconds);
        (
            peak,
            (own_cpu_seconds() - self.cpu_start - sampler).max(0.0),
        )
    }
}

/// The JSON fields for the watcher and the client's CPU time.
fn watch_fields((peak, client_cpu): (Option<Peak>, f64)) -> String {
    let mut s = format!(",\"client_cpu_s\":{client_cpu:.2}");
    if let Some(p) = peak {
        s.push_str(&format!(
            ",\"server_cpu_s\":{:.2},\"server_root_hwm_kib\":{}",
            p.cpu_seconds, p.root_hwm_kib
        ));
        if p.sampled {
            s.push_str(&format!(
                ",\"server_peak_rss_kib\":{},\"server_max_processes\":{},\"sampler_cpu_s\":{:.2}",
                p.rss_kib, p.processes, p.sampler_cpu_seconds
            ));
        }
        if p.pss_kib > 0 {
            s.push_str(&format!(",\"server_peak_pss_kib\":{}", p.pss_kib));
        }
    }
    s
}

fn rate(n: f64, seconds: f64) -> f64 {
    if seconds > 0.0 { n / seconds } else { 0.0 }
}

fn retr_json(server: &str, r: &pop3::RetrReport, watch: (Option<Peak>, f64)) -> String {
    format!(
        "{{\"test\":\"pop3-retr\",\"server\":{server:?},\"pipeline\":{},\"messages\":{},\
         \"octets\":{},\"stat_messages\":{},\"stat_octets\":{},\"login_s\":{:.4},\
         \"seconds\":{:.4},\"msgs_per_s\":{:.1},\"mb_per_s\":{:.2}{}}}",
        r.pipeline,
        r.messages,
        r.octets,
        r.stat_messages,
        r.stat_octets,
        r.login_seconds,
        r.seconds,
        rate(r.messages as f64, r.seconds),
        rate(r.octets as f64 / 1e6, r.seconds),
        watch_fields(watch)
    )
}

fn failure_fields(f: &stats::Failures) -> String {
    format!(",\"errors\":{},\"first_errors\":{:?}", f.count, f.first)
}

fn sessions_json(
    server: &str,
    concurrency: usize,
    mut r: pop3::SessionsReport,
    watch: (Option<Peak>, f64),
) -> String {
    format!(
        "{{\"test\":\"pop3-sessions\",\"server\":{server:?},\"concurrency\":{concurrency},\
         \"sessions\":{},\"stat_messages\":{}{},\"seconds\":{:.3},\"sessions_per_s\":{:.1},\
         \"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2}{}}}",
        r.ok,
        r.stat_messages,
        failure_fields(&r.failures),
        r.seconds,
        rate(r.ok as f64, r.seconds),
        r.latencies.percentile_ms(50.0),
        r.latencies.percentile_ms(99.0),
        r.latencies.percentile_ms(100.0),
        watch_fields(watch)
    )
}

fn smtp_json(
    server: &str,
    concurrency: usize,
    mut r: smtp::SmtpReport,
    watch: (Option<Peak>, f64),
) -> String {
    format!(
        "{{\"test\":\"smtp\",\"server\":{server:?},\"concurrency\":{concurrency},\
         \"sessions\":{},\"accepted\":{},\"message_octets\":{}{},\"seconds\":{:.3},\
         \"msgs_per_s\":{:.1},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2}{}}}",
        r.sessions,
        r.accepted,
        r.message_octets,
        failure_fields(&r.failures),
        r.seconds,
        rate(r.accepted as f64, r.seconds),
        r.latencies.percentile_ms(50.0),
        r.latencies.percentile_ms(99.0),
        r.latencies.percentile_ms(100.0),
        watch_fields(watch)
    )
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "null".to_string(), |v| v.to_string())
}

fn hold_json(server: &str, wanted: usize, r: &hold::HoldReport) -> String {
    let per_conn = match (r.rss_before_kib, r.rss_held_kib) {
        (Some(before), Some(held)) if r.open > 0 => {
            format!("{:.2}", held.saturating_sub(before) as f64 / r.open as f64)
        }
        _ => "null".to_string(),
    };
    format!(
        "{{\"test\":\"hold\",\"server\":{server:?},\"connections\":{wanted},\"open\":{},\
         \"open_per_source\":{:?},\"refused_421\":{},\"first_421\":{:?},\"failed\":{},\
         \"first_failure\":{:?},\"connect_s\":{:.2},\"open_at_end\":{},\
         \"server_rss_before_kib\":{},\"server_rss_held_kib\":{},\
         \"server_rss_after_close_kib\":{},\"rss_per_connection_kib\":{per_conn}}}",
        r.open,
        r.open_per_source,
        r.refused_421,
        r.first_421.as_deref().unwrap_or(""),
        r.failed,
        r.first_failure.as_deref().unwrap_or(""),
        r.connect_seconds,
        r.open_at_end,
        opt(r.rss_before_kib),
        opt(r.rss_held_kib),
        opt(r.rss_after_close_kib),
    )
}

fn slow_json(server: &str, interval_ms: u64, mut r: hold::SlowReport) -> String {
    format!(
        "{{\"test\":\"slowloris\",\"server\":{server:?},\"interval_ms\":{interval_ms},\
         \"opened\":{},\"failed\":{},\"first_failure\":{:?},\"closed_by_server\":{},\
         \"got_421\":{},\"first_reply\":{:?},\"still_open\":{},\"bytes_sent\":{},\
         \"lifetime_min_s\":{:.1},\"lifetime_p50_s\":{:.1},\"lifetime_max_s\":{:.1},\
         \"seconds\":{:.1}}}",
        r.opened,
        r.failed,
        r.first_failure.as_deref().unwrap_or(""),
        r.closed_by_server,
        r.got_421,
        r.first_reply.as_deref().unwrap_or(""),
        r.still_open,
        r.bytes_sent,
        r.lifetimes.percentile_ms(0.0) / 1000.0,
        r.lifetimes.percentile_ms(50.0) / 1000.0,
        r.lifetimes.percentile_ms(100.0) / 1000.0,
        r.seconds,
    )
}
