//! `mailroom serve`: binds every listener, then runs the inbound agent until
//! SIGTERM or SIGINT, and stops gracefully (nothing accepted is lost).
//! SIGHUP reloads the configuration, the DKIM keys and the certificate
//! (`reload`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use mailroom_mta::Mta;
use mailroom_server::tls::TlsHandle;
use mailroom_server::{Context, Listener, Shutdown};

use crate::cli::{Cli, ServeArgs};
use crate::config::{self, Settings};
use crate::local_delivery::ServerLocalDelivery;
use crate::reload::{Fixed, Reloader};

/// How long a graceful stop waits for sessions before giving up on them.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

pub(crate) fn run(cli: &Cli, args: &ServeArgs) -> anyhow::Result<()> {
    let raw = config::load_raw(cli)?;
    let data_dir = config::data_dir(cli, &raw);
    let store_url = config::store_url(cli, &raw)?;
    let settings = Settings::resolve(raw, args)?;
    init_logging(cli.log_format.as_deref())?;
    // Two crypto providers may be linked; name ours before any TLS use.
    let _ = rustls::crypto::ring::default_provider().install_default();
    warn_if_hostname_unqualified(&settings);
    create_data_dir(&data_dir)?;
    raise_file_limit();
    let run_as = match &settings.run_as {
        Some(name) if rustix::process::geteuid().is_root() => {
            Some(crate::privileges::RunAs::lookup(name)?)
        }
        Some(name) => {
            tracing::info!(run_as = %name, "not started as root; run_as ignored");
            None
        }
        None => None,
    };
    if rustix::process::geteuid().is_root() && settings.run_as.is_none() {
        tracing::warn!(
            "running as root with no run_as user configured; consider run_as = \"mailroom\""
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let reload = ReloadFrom {
        cli,
        args,
        data_dir: data_dir.clone(),
        store_url: store_url.clone(),
    };
    runtime.block_on(serve(settings, &data_dir, &store_url, run_as, reload))
}

/// Where a SIGHUP reads the configuration again: the same `--config` file
/// and flags, and what the start resolved that cannot change.
struct ReloadFrom<'a> {
    cli: &'a Cli,
    args: &'a ServeArgs,
    data_dir: PathBuf,
    store_url: String,
}

/// DESIGN.md: a bare hostname is fine for the embedded default, but remote
/// servers reject mail from a HELO name that is not a fully qualified
/// domain.
pub(crate) fn warn_if_hostname_unqualified(settings: &Settings) {
    let smarthost = settings.mta.relay_map.iter().any(|(d, _)| d == "*");
    let configured_to_relay =
        !settings.server.trusted_networks.is_empty() || settings.mta.dns.is_some();
    if !settings.server.hostname.contains('.') && !smarthost && configured_to_relay {
        tracing::warn!(hostname = %settings.server.hostname, "hostname is not a fully qualified domain name; mail relayed to the internet may be refused");
    }
}

async fn serve(
    settings: Settings,
    data_dir: &Path,
    store_url: &str,
    run_as: Option<crate::privileges::RunAs>,
    reload: ReloadFrom<'_>,
) -> anyhow::Result<()> {
    // Handlers first: a SIGTERM that arrives as soon as `ready` is printed
    // must stop the server gracefully, not kill it.
    let signals = Signals::install()?;
    let metrics_handle = match settings.metrics {
        Some(_) => Some(crate::metrics::install()?),
        None => None,
    };
    let hostname = settings.server.hostname.clone();
    let fixed = Fixed::of(&settings, &reload.data_dir, &reload.store_url);
    let tls = Arc::new(load_tls(&settings, data_dir)?);
    let mut listeners = Vec::new();
    let mut bound = Vec::new();
    for (kind, addr) in &settings.listen {
        let socket =
            bind_listener(*addr).with_context(|| format!("binding {} on {addr}", kind.name()))?;
        let local = socket
            .local_addr()
            .with_context(|| format!("address of {} listener", kind.name()))?;
        bound.push((kind.name(), local));
        listeners.push(Listener {
            kind: *kind,
            socket,
        });
    }
    let metrics_listener = match settings.metrics {
        Some(addr) => {
            let socket = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding metrics on {addr}"))?;
            bound.push((
                "metrics",
                socket
                    .local_addr()
                    .context("address of the metrics listener")?,
            ));
            Some(socket)
        }
        None => None,
    };
    // Every port is bound: from here on nothing needs root. No session runs
    // before this point, so no client byte is read with privileges.
    // The embedded store's DKIM key files are read while their owner may
    // still be root; PostgreSQL's keys once the store is open.
    let file_keys = if settings.mail_auth.sign && !crate::stores::is_postgres(store_url) {
        Some(crate::dkim::load_signer_from_files(data_dir).await?)
    } else {
        None
    };
    if let Some(run_as) = &run_as {
        run_as.drop_to(data_dir)?;
    }
    let stores = crate::stores::open_with(
        store_url,
        data_dir,
        &hostname,
        Some(settings.store_pool_size),
    )
    .await?;
    let dkim = match file_keys {
        Some(signer) => signer,
        None if settings.mail_auth.sign => crate::dkim::load_signer(stores.dkim.as_ref()).await?,
        None => mailroom_mailauth::Signer::default(),
    };
    let queue = stores.queue.clone();
    let queue_for_metrics = queue.clone();
    let verifier = verifier(&settings)?;
    let mta = Arc::new(
        Mta::new(settings.mta)
            .context("configuring outbound delivery")?
            .with_dkim(dkim),
    );
    let notify = Arc::new(tokio::sync::Notify::new());
    let dkim_store = stores.dkim.clone();
    let ctx = Context::new(
        settings.server,
        stores.mail,
        stores.users,
        Some(tls.clone()),
        Some(queue.clone()),
        notify.clone(),
        verifier,
    );
    let (shutdown, trigger) = Shutdown::new();
    let server = tokio::spawn(mailroom_server::run(
        ctx.clone(),
        listeners,
        shutdown.clone(),
    ));
    // The server wakes the MTA through `notify` after each enqueue.
    let waker = {
        let mta = mta.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = notify.notified() => mta.notify(),
                    _ = shutdown.triggered() => break,
                }
            }
        })
    };
    let reloader = Reloader {
        cli: reload.cli,
        args: reload.args,
        fixed,
        ctx: ctx.clone(),
        mta: mta.clone(),
        tls: tls.clone(),
        dkim: dkim_store,
    };
    let local = Arc::new(ServerLocalDelivery(ctx));
    let mta_task = {
        let mut shutdown = shutdown.clone();
        tokio::spawn(mta.run(queue, local, async move { shutdown.triggered().await }))
    };
    let metrics_task = match (metrics_listener, metrics_handle) {
        (Some(listener), Some(handle)) => Some(tokio::spawn(crate::metrics::serve(
            listener,
            handle,
            queue_for_metrics,
            shutdown.clone(),
        ))),
        _ => None,
    };
    drop(shutdown);
    // INTERFACE.md: one plain line per listener, whatever the log format, then `ready`.
    for (service, addr) in &bound {
        eprintln!("listening {service} {addr}");
    }
    eprintln!("ready");
    // systemd Type=notify readiness (a no-op without NOTIFY_SOCKET).
    if let Err(err) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %err, "readiness notification failed");
    }
    tracing::info!(hostname = %hostname, data_dir = %data_dir.display(), "mailroom started");
    wait_for_stop_signal(signals, &reloader).await?;
    tracing::info!("stopping: no new connections; finishing sessions");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    if tokio::time::timeout(DRAIN_LIMIT, trigger.shutdown_and_drain())
        .await
        .is_err()
    {
        tracing::warn!("some sessions did not finish in time");
    }
    let _ = server.await;
    let _ = mta_task.await;
    let _ = waker.await;
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// SPF/DKIM/DMARC verification as configured (`None`: off).
pub(crate) fn verifier(
    settings: &Settings,
) -> anyhow::Result<Option<Arc<mailroom_mailauth::Verifier>>> {
    if !settings.mail_auth.verify {
        return Ok(None);
    }
    // The same resolver set-up as MX routing: `--dns`, its timeout.
    let resolver = mailroom_mailauth::dns::resolver(settings.mta.dns, settings.mta.dns_timeout)
        .context("configuring the DNS resolver for mail authentication")?;
    Ok(Some(Arc::new(mailroom_mailauth::Verifier::new(
        resolver,
        &settings.server.hostname,
        settings.mail_auth.policy.clone(),
    ))))
}

/// The signals serve handles, installed before anything is announced.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }
}

/// Waits for SIGTERM or SIGINT; SIGHUP meanwhile reloads the configuration,
/// the DKIM keys and the certificate (sessions already running keep what
/// they started with; the next ones get the new settings).
async fn wait_for_stop_signal(signals: Signals, reloader: &Reloader<'_>) -> anyhow::Result<()> {
    let Signals {
        mut term,
        mut int,
        mut hup,
    } = signals;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => reloader.reload().await,
        }
    }
}

/// The configured certificate, or the data dir's self-signed one, made on
/// first start for the hostname.
fn load_tls(settings: &Settings, data_dir: &Path) -> anyhow::Result<TlsHandle> {
    let (cert, key) = tls_files_for(
        settings.tls_cert.as_deref(),
        settings.tls_key.as_deref(),
        data_dir,
        &settings.server.hostname,
    )?;
    TlsHandle::load(&cert, &key).context("loading the TLS certificate")
}

/// The certificate and key files to use: the configured pair, or the data
/// dir's self-signed one, generated for `hostname` when missing or when it
/// was generated for another name (`tls/cert.hostname` records which; a
/// pair put there by hand has no record and is left alone).
pub(crate) fn tls_files_for(
    cert: Option<&Path>,
    key: Option<&Path>,
    data_dir: &Path,
    hostname: &str,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let files = match (cert, key) {
        (Some(cert), Some(key)) => (cert.to_path_buf(), key.to_path_buf()),
        _ => {
            let dir = data_dir.join("tls");
            let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
            let made_for = std::fs::read_to_string(dir.join(GENERATED_FOR)).ok();
            let renamed = made_for
                .as_deref()
                .is_some_and(|name| name.trim() != hostname);
            if !cert.exists() || !key.exists() || renamed {
                generate_self_signed(hostname, &dir, &cert, &key)?;
                tracing::info!(cert = %cert.display(), %hostname, "generated a self-signed certificate");
            }
            (cert, key)
        }
    };
    Ok(files)
}

fn generate_self_signed(hostname: &str, dir: &Path, cert: &Path, key: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let names = vec![hostname.to_string()];
    let certified = rcgen::generate_simple_self_signed(names)
        .context("generating a self-signed certificate")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let write = |path: &Path, text: String, mode: u32| -> anyhow::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .with_context(|| format!("writing {}", path.display()))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        Ok(())
    };
    write(key, certified.signing_key.serialize_pem(), 0o600)?;
    write(cert, certified.cert.pem(), 0o644)?;
    write(&dir.join(GENERATED_FOR), format!("{hostname}\n"), 0o644)?;
    Ok(())
}

/// Next to a generated certificate: the hostname it was made for.
const GENERATED_FOR: &str = "cert.hostname";

/// Pending connections the kernel may queue per listener (capped by
/// net.core.somaxconn). The usual default of 128 overflows under a
/// connection flood before the accept loop can answer 421: clients whose
/// handshake completed into a full queue then wait for a greeting that
/// never comes.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a mail listener with [`LISTEN_BACKLOG`] (SO_REUSEADDR, as a plain
/// bind would set, so a restart need not wait for TIME_WAIT).
fn bind_listener(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Creates the data dir (mode 0700: it holds password hashes and mail).
pub(crate) fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.exists() && !dir.is_dir() {
        anyhow::bail!("data dir {} is not a directory", dir.display());
    }
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating data dir {}", dir.display()))?;
    }
    // Fail at start, not at the first message, when the dir is not writable.
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"")
        .with_context(|| format!("data dir {} is not writable", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Each connection is a file descriptor: use all the process may have.
fn raise_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(err) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %err, "could not raise the open-file limit");
        }
    }
}

fn init_logging(format: Option<&str>) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("MAILROOM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format.unwrap_or("text") {
        "text" => builder.init(),
        "json" => builder.json().init(),
        other => {
            return Err(crate::UsageError(format!(
                "--log-format {other:?}: expected text or json"
            ))
            .into());
        }
    }
    Ok(())
}
