//! `mailroom fetch`: a POP3 client in the spirit of fetchmail and getmail.
//! It downloads the messages it has not fetched before (by UIDL) into a
//! local Maildir and, unless `--keep`, deletes them from the server once
//! the local copy is on stable storage.
//!
//! The protocol is `mailroom_pop3_proto::ClientSession` (pure); this file is
//! the thin tokio glue around it (socket, TLS, timeouts) plus the local side:
//! the Maildir writer, the record of fetched UIDLs, and the progress report.
//!
//! # TLS
//!
//! `--tls` speaks TLS from the first byte (pop3s, RFC 8314). Otherwise the
//! connection starts in clear and upgrades with STLS (RFC 2595) when the
//! server offers it; `--starttls` makes the upgrade mandatory. Without TLS
//! the password is sent only to a server on a loopback address (DESIGN.md:
//! AUTH only over TLS, except loopback); elsewhere fetch stops before
//! logging in, and `--no-tls` (loopback only) skips STLS even when offered.
//! The certificate is checked against the system's CA bundle
//! (`SSL_CERT_FILE`, else the usual distribution paths) plus `--ca FILE`;
//! there are no built-in roots, so on a machine without a bundle `--ca` is
//! needed. `--insecure` skips the certificate check (self-signed test
//! servers) but still checks the handshake signatures.
//!
//! # What is stored
//!
//! Each message is written exactly as RETR delivered it once the
//! byte-stuffing is undone: CRLF line ends, the form mailroom's own store
//! keeps (store-maildir), so the file size is the POP3 size. The name is
//! the store's unique name plus `,S=<size>`.
//!
//! # Durability and resuming (no duplicates, no loss)
//!
//! `DIR/.mailroom-fetch-uidls` records, per account (`pop3://user@host:port`),
//! the UIDLs already fetched. It is rewritten atomically (temporary file,
//! fsync, rename, fsync of DIR) at the start and end of a run, and appended
//! to (one line, fdatasync) during it; a torn last line is ignored. Every
//! new message goes through these steps:
//!
//! 1. RETR into `tmp/<base>`; fsync the file and `tmp/`.
//! 2. Append `<account> <uidl> <name>` to the record, fdatasync. From here
//!    the message counts as fetched.
//! 3. Rename `tmp/<base>` to `new/<name>`; fsync `new/`.
//! 4. Unless `--keep`, DELE it. QUIT at the end commits the deletions
//!    (RFC 1939 §6: nothing is removed without QUIT).
//!
//! A crash (or a dropped connection) anywhere leaves one of these states,
//! which the next run sorts out:
//!
//! - before 2: no record, the message is still on the server and is fetched
//!   again. Only a stray `tmp/` file remains; files in `tmp/` older than 36
//!   hours are removed (the Maildir rule).
//! - between 2 and 3: the record names the file; the next run finds it in
//!   `tmp/` and finishes the rename. Records that carry a name are checked
//!   this way at every start; if the file is in none of `tmp/`, `new/` or
//!   `cur/` (someone removed it meanwhile), the record is dropped and the
//!   message fetched again: a duplicate is possible then, a loss never.
//! - after 3, before QUIT's `+OK`: the message is recorded and still on the
//!   server: it is not fetched again, and without `--keep` it is deleted
//!   this time.
//!
//! A lock (`DIR/.mailroom-fetch.lock`, flock) keeps two fetches out of one
//! Maildir at a time. Records of UIDLs the server no longer lists are
//! dropped, so the file does not grow without bound.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, IsTerminal as _, Write as _};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mailroom_pop3_proto::{
    Capabilities, ClientConfig, ClientEvent, ClientSession, CommandKind, SendError, UidEntry,
};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::UsageError;

/// `mailroom fetch` flags (INTERFACE.md).
#[derive(Debug, Args)]
pub(crate) struct FetchArgs {
    /// The POP3 server, HOST:PORT ([v6addr]:PORT for IPv6); the port
    /// defaults to 110, or 995 with --tls.
    #[arg(long, value_name = "HOST:PORT")]
    pub server: String,
    /// The user name to log in as.
    #[arg(long, value_name = "USER")]
    pub user: String,
    /// Read the password from one line of standard input (else
    /// $MAILROOM_PASSWORD, else a terminal prompt).
    #[arg(long)]
    pub password_stdin: bool,
    /// The Maildir to deliver into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub maildir: PathBuf,
    /// Leave the messages on the server; the next run fetches only new ones.
    #[arg(long)]
    pub keep: bool,
    /// Implicit TLS from the first byte (pop3s, usually port 995).
    #[arg(long, conflicts_with = "starttls")]
    pub tls: bool,
    /// Require STLS (by default it is used when offered, and required unless
    /// the server is on a loopback address).
    #[arg(long)]
    pub starttls: bool,
    /// Never use TLS, even when offered. Only for a server on a loopback
    /// address: the password travels in clear.
    #[arg(long, conflicts_with_all = ["tls", "starttls", "ca", "insecure"])]
    pub no_tls: bool,
    /// Also trust the CA certificate(s) in this PEM file.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// Do not verify the server's certificate (self-signed test servers).
    #[arg(long)]
    pub insecure: bool,
    /// Seconds to wait for the server at any step before giving up.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
}

/// Runs `mailroom fetch`.
pub(crate) fn run(args: &FetchArgs) -> anyhow::Result<()> {
    let endpoint = Endpoint::parse(&args.server, args.tls)?;
    if args.timeout == 0 {
        return Err(UsageError("--timeout must be at least 1 second".into()).into());
    }
    let tls = tls_config(args.ca.as_deref(), args.insecure)?;
    // Open (and lock) the Maildir before asking for the password or
    // connecting: a wrong path fails at once.
    let mut maildir = LocalMaildir::open(&args.maildir)?;
    let password = crate::password_input::read_password(
        args.password_stdin,
        &format!("Password for {}@{}: ", args.user, endpoint.host),
    )?;
    let reporter = Reporter::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = runtime.block_on(fetch(
        args,
        &endpoint,
        tls,
        &password,
        &mut maildir,
        &reporter,
    ));
    reporter.finish();
    let summary = outcome?;
    reporter.line(&summary.describe(args, &endpoint));
    if summary.failed > 0 {
        bail!(
            "{} message(s) could not be retrieved (the server refused them); the others were fetched",
            summary.failed
        );
    }
    if let Some(problem) = summary.quit_problem {
        bail!(
            "the messages were fetched, but the server could not delete them ({problem}); the next run deletes them"
        );
    }
    Ok(())
}

/// What one run did.
#[derive(Debug, Default)]
struct Summary {
    fetched: u64,
    bytes: u64,
    deleted: u64,
    failed: u64,
    /// `-ERR` to QUIT: the deletions did not happen.
    quit_problem: Option<String>,
}

impl Summary {
    fn describe(&self, args: &FetchArgs, endpoint: &Endpoint) -> String {
        let mut line = format!(
            "fetched {} new message(s), {} octets, from {} into {}",
            self.fetched,
            self.bytes,
            endpoint.display(),
            args.maildir.display()
        );
        if args.keep {
            line.push_str("; left on the server (--keep)");
        } else if self.quit_problem.is_none() {
            line.push_str(&format!("; {} deleted from the server", self.deleted));
        }
        line
    }
}

/// The whole exchange, from connecting to QUIT.
async fn fetch(
    args: &FetchArgs,
    endpoint: &Endpoint,
    tls: Arc<rustls::ClientConfig>,
    password: &str,
    maildir: &mut LocalMaildir,
    reporter: &Reporter,
) -> anyhow::Result<Summary> {
    let timeout = Duration::from_secs(args.timeout);
    let connector = TlsConnector::from(tls);
    let mut conn = Connection::open(endpoint, args.tls, &connector, timeout).await?;

    match conn.event().await? {
        ClientEvent::Greeting { .. } => {}
        ClientEvent::Rejected { response, .. } => {
            bail!("the server refused the connection: {response}")
        }
        other => bail!("unexpected greeting from the server: {other:?}"),
    }
    let mut capabilities = conn.capabilities().await?;
    if args.no_tls {
        if !conn.loopback {
            bail!(
                "--no-tls: {} is not on a loopback address: refusing to send the password in clear",
                endpoint.display()
            );
        }
    } else if !conn.session.is_tls() {
        let offered = capabilities.as_ref().is_some_and(Capabilities::stls);
        if offered || args.starttls {
            conn.starttls(&connector).await?;
            // RFC 2595 §4: forget what was learnt in clear, ask again.
            capabilities = conn.capabilities().await?;
        } else if !conn.loopback {
            bail!(
                "{} does not offer STLS: refusing to send the password in clear (use --tls if it speaks pop3s)",
                endpoint.display()
            );
        }
    }
    conn.login(&args.user, password, capabilities.as_ref())
        .await?;

    // UIDL is what makes resuming safe: without it, fetch stops here.
    conn.send(ClientSession::uidl)?;
    let uids = match conn.event().await? {
        ClientEvent::UidListing(entries) => entries,
        ClientEvent::Rejected { response, .. } => bail!(
            "the server does not support UIDL ({response}), which fetch needs to avoid duplicates"
        ),
        other => bail!("unexpected answer to UIDL: {other:?}"),
    };
    conn.send(ClientSession::list)?;
    let sizes: HashMap<u64, u64> = match conn.event().await? {
        ClientEvent::Listing(entries) => entries.into_iter().map(|e| (e.msg, e.size)).collect(),
        ClientEvent::Rejected { response, .. } => bail!("LIST failed: {response}"),
        other => bail!("unexpected answer to LIST: {other:?}"),
    };
    let mut seen_uids = HashSet::new();
    for entry in &uids {
        if !seen_uids.insert(entry.uid.as_str()) {
            bail!(
                "the server lists UIDL {:?} twice: refusing to fetch, since a UIDL must identify one message",
                entry.uid
            );
        }
    }

    let account = endpoint.account(&args.user);
    maildir.state.prune(&account, &seen_uids)?;
    let (old, new): (Vec<&UidEntry>, Vec<&UidEntry>) = uids
        .iter()
        .partition(|e| maildir.state.contains(&account, &e.uid));
    let total: u64 = new
        .iter()
        .map(|e| sizes.get(&e.msg).copied().unwrap_or(0))
        .sum();
    let mut summary = Summary::default();
    let mut deleted = Vec::new();
    if !args.keep {
        // Fetched by an earlier run that did not get to QUIT.
        for entry in &old {
            conn.dele(entry.msg).await?;
            deleted.push(entry.uid.clone());
        }
    }
    reporter.start(new.len() as u64, total);
    for (i, entry) in new.iter().enumerate() {
        let size = sizes.get(&entry.msg).copied();
        reporter.next_message(i as u64 + 1, new.len() as u64, size);
        let Some(stored) = conn.retr(entry.msg, maildir, reporter).await? else {
            summary.failed += 1;
            continue;
        };
        let name = maildir.commit(stored, &account, &entry.uid)?;
        summary.fetched += 1;
        summary.bytes += name.size;
        reporter.message_done(i as u64 + 1, new.len() as u64, &entry.uid, &name);
        if !args.keep {
            conn.dele(entry.msg).await?;
            deleted.push(entry.uid.clone());
        }
    }

    conn.send(ClientSession::quit)?;
    match conn.event().await? {
        ClientEvent::SignedOff { .. } => {
            summary.deleted = deleted.len() as u64;
            maildir.state.forget(&account, &deleted);
        }
        ClientEvent::Rejected { response, .. } => {
            summary.quit_problem = Some(response.to_string());
        }
        other => bail!("unexpected answer to QUIT: {other:?}"),
    }
    conn.close().await;
    maildir.state.compact()?;
    Ok(summary)
}

// ---------------------------------------------------------------------------
// The connection: socket, TLS, and the client session.

/// Where to connect.
#[derive(Debug, Clone)]
struct Endpoint {
    /// Host name or IP address, without brackets.
    host: String,
    port: u16,
}

impl Endpoint {
    /// `HOST:PORT`, `[v6]:PORT`, or a bare host (port 110, 995 with TLS).
    fn parse(text: &str, tls: bool) -> anyhow::Result<Endpoint> {
        let default_port = if tls { 995 } else { 110 };
        let bad = || UsageError(format!("--server {text:?}: expected HOST:PORT"));
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
            }
        } else {
            match text.rsplit_once(':') {
                Some((host, _)) if host.contains(':') => (text, None),
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad().into());
        }
        let port = match port {
            None => default_port,
            Some(p) => p.parse().ok().filter(|&p| p != 0).ok_or_else(bad)?,
        };
        Ok(Endpoint {
            host: host.to_owned(),
            port,
        })
    }

    fn display(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The key of this account's records: `pop3://user@host:port`, the
    /// user percent-encoded so the key has no spaces.
    fn account(&self, user: &str) -> String {
        let mut key = String::from("pop3://");
        for b in user.bytes() {
            if (0x21..=0x7e).contains(&b) && !b"%@/:".contains(&b) {
                key.push(char::from(b));
            } else {
                key.push_str(&format!("%{b:02X}"));
            }
        }
        key.push('@');
        key.push_str(&self.display().to_ascii_lowercase());
        key
    }
}

/// The socket, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Between taking the plain stream for the handshake and getting TLS.
    Gone,
}

/// One POP3 connection: the socket and the client session, read and written
/// with a timeout on every step.
struct Connection {
    stream: Stream,
    session: ClientSession,
    buf: Vec<u8>,
    timeout: Duration,
    /// The peer is on a loopback address: a password may go in clear.
    loopback: bool,
    /// The name the certificate must carry (a DNS name or an IP address).
    host: String,
    display: String,
}

impl Connection {
    async fn open(
        endpoint: &Endpoint,
        implicit_tls: bool,
        connector: &TlsConnector,
        timeout: Duration,
    ) -> anyhow::Result<Connection> {
        let display = endpoint.display();
        let tcp = tokio::time::timeout(
            timeout,
            TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
        )
        .await
        .map_err(|_| anyhow!("connecting to {display}: timed out"))?
        .with_context(|| format!("connecting to {display}"))?;
        let _ = tcp.set_nodelay(true);
        let loopback = tcp
            .peer_addr()
            .map(|a| is_loopback(a.ip()))
            .unwrap_or(false);
        let mut conn = Connection {
            stream: Stream::Plain(tcp),
            session: ClientSession::new(ClientConfig::default()),
            buf: vec![0; 64 * 1024],
            timeout,
            loopback,
            host: endpoint.host.clone(),
            display,
        };
        if implicit_tls {
            conn.handshake(connector).await?;
            conn.session = ClientSession::new_tls(ClientConfig::default());
        }
        Ok(conn)
    }

    /// Runs the TLS handshake on the plain stream.
    async fn handshake(&mut self, connector: &TlsConnector) -> anyhow::Result<()> {
        let server_name = ServerName::try_from(self.host.clone()).map_err(|_| {
            UsageError(format!(
                "--server: {:?} is not a host name a certificate can carry",
                self.host
            ))
        })?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            bail!("internal error: TLS requested twice");
        };
        let tls = tokio::time::timeout(self.timeout, connector.connect(server_name, tcp))
            .await
            .map_err(|_| anyhow!("TLS handshake with {}: timed out", self.display))?
            .with_context(|| format!("TLS handshake with {}", self.display))?;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    /// STLS, then the handshake (RFC 2595 §4).
    async fn starttls(&mut self, connector: &TlsConnector) -> anyhow::Result<()> {
        self.send(ClientSession::stls)?;
        match self.event().await? {
            ClientEvent::TlsReady => {}
            ClientEvent::Rejected { response, .. } => bail!(
                "{} refused STLS ({response}): refusing to go on without TLS",
                self.display
            ),
            other => bail!("unexpected answer to STLS: {other:?}"),
        }
        self.handshake(connector).await?;
        self.session.tls_established();
        Ok(())
    }

    /// CAPA; `None` when the server does not know it (RFC 2449 is optional).
    async fn capabilities(&mut self) -> anyhow::Result<Option<Capabilities>> {
        self.send(ClientSession::capa)?;
        match self.event().await? {
            ClientEvent::Capabilities(capabilities) => Ok(Some(capabilities)),
            ClientEvent::Rejected { .. } => Ok(None),
            other => bail!("unexpected answer to CAPA: {other:?}"),
        }
    }

    /// USER/PASS when the server lists USER (or lists nothing), else AUTH
    /// PLAIN when it lists SASL PLAIN.
    async fn login(
        &mut self,
        user: &str,
        password: &str,
        capabilities: Option<&Capabilities>,
    ) -> anyhow::Result<()> {
        let plain = capabilities.is_some_and(|c| !c.user() && c.sasl("PLAIN"));
        let invalid = |_| {
            anyhow!(
                "the user name or password cannot be sent over POP3 (control characters, or too long)"
            )
        };
        if plain {
            self.session.auth_plain(user, password).map_err(invalid)?;
            self.flush().await?;
        } else {
            self.session.user(user).map_err(|e| match e {
                SendError::InvalidArgument => anyhow!(
                    "the user name {user:?} cannot be sent with USER (spaces or control characters)"
                ),
                other => anyhow!(other),
            })?;
            self.flush().await?;
            match self.event().await? {
                ClientEvent::Accepted { .. } => {}
                ClientEvent::Rejected { response, .. } => bail!("login refused: {response}"),
                other => bail!("unexpected answer to USER: {other:?}"),
            }
            self.session.pass(password).map_err(invalid)?;
            self.flush().await?;
        }
        match self.event().await? {
            ClientEvent::Accepted { .. } => Ok(()),
            ClientEvent::Rejected { response, .. } => bail!("login failed: {response}"),
            other => bail!("unexpected answer to the login: {other:?}"),
        }
    }

    async fn dele(&mut self, msg: u64) -> anyhow::Result<()> {
        self.send(|s| s.dele(msg))?;
        match self.event().await? {
            ClientEvent::Accepted {
                command: CommandKind::Dele,
                ..
            } => Ok(()),
            ClientEvent::Rejected { response, .. } => bail!("DELE {msg} failed: {response}"),
            other => bail!("unexpected answer to DELE: {other:?}"),
        }
    }

    /// RETR into a new file in the Maildir's `tmp/`; `None` when the server
    /// refused this message (it stays on the server).
    async fn retr(
        &mut self,
        msg: u64,
        maildir: &LocalMaildir,
        reporter: &Reporter,
    ) -> anyhow::Result<Option<Draft>> {
        self.send(|s| s.retr(msg))?;
        let mut draft = None;
        loop {
            match self.event().await? {
                ClientEvent::MessageStart { .. } => draft = Some(maildir.draft()?),
                ClientEvent::MessageData(data) => {
                    let draft = draft
                        .as_mut()
                        .ok_or_else(|| anyhow!("internal error: message data before its start"))?;
                    draft.write(&data)?;
                    reporter.progress(data.len() as u64);
                }
                ClientEvent::MessageEnd { .. } => {
                    return draft
                        .map(Some)
                        .ok_or_else(|| anyhow!("internal error: message end before its start"));
                }
                ClientEvent::Rejected { response, .. } => {
                    reporter.line(&format!("warning: RETR {msg} refused: {response}"));
                    return Ok(None);
                }
                other => bail!("unexpected answer to RETR: {other:?}"),
            }
        }
    }

    /// Asks the session for a command and writes it out.
    fn send(
        &mut self,
        command: impl FnOnce(&mut ClientSession) -> Result<(), SendError>,
    ) -> anyhow::Result<()> {
        command(&mut self.session).context("internal error: POP3 command out of sequence")
    }

    /// The next event, reading (and writing pending output) as needed.
    async fn event(&mut self) -> anyhow::Result<ClientEvent> {
        loop {
            self.flush().await?;
            if let Some(event) = self
                .session
                .poll_event()
                .with_context(|| format!("POP3 protocol error from {}", self.display))?
            {
                return Ok(event);
            }
            // The AUTH PLAIN continuation is produced while polling.
            self.flush().await?;
            let read = match &mut self.stream {
                Stream::Plain(s) => tokio::time::timeout(self.timeout, s.read(&mut self.buf)).await,
                Stream::Tls(s) => tokio::time::timeout(self.timeout, s.read(&mut self.buf)).await,
                Stream::Gone => bail!("internal error: connection lost during TLS set-up"),
            };
            let n = match read {
                Err(_) => bail!(
                    "{} did not answer within {} seconds",
                    self.display,
                    self.timeout.as_secs()
                ),
                Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
                Ok(result) => result.with_context(|| format!("reading from {}", self.display))?,
            };
            if n == 0 {
                bail!("{} closed the connection", self.display);
            }
            self.session.handle_input(&self.buf[..n]);
        }
    }

    /// Writes what the session queued.
    async fn flush(&mut self) -> anyhow::Result<()> {
        let out = self.session.take_output();
        if out.is_empty() {
            return Ok(());
        }
        let write = async {
            match &mut self.stream {
                Stream::Plain(s) => {
                    s.write_all(&out).await?;
                    s.flush().await
                }
                Stream::Tls(s) => {
                    s.write_all(&out).await?;
                    s.flush().await
                }
                Stream::Gone => Err(io::Error::other("connection lost during TLS set-up")),
            }
        };
        tokio::time::timeout(self.timeout, write)
            .await
            .map_err(|_| anyhow!("writing to {}: timed out", self.display))?
            .with_context(|| format!("writing to {}", self.display))
    }

    /// Closes the connection (TLS close_notify when TLS), ignoring errors:
    /// the server already answered QUIT.
    async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            match &mut self.stream {
                Stream::Plain(s) => s.shutdown().await,
                Stream::Tls(s) => s.shutdown().await,
                Stream::Gone => Ok(()),
            }
        })
        .await;
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

// ---------------------------------------------------------------------------
// TLS configuration

/// The client configuration: the system roots plus `--ca`, or no
/// verification at all with `--insecure`. Ring provider (DESIGN.md).
pub(crate) fn tls_config(
    ca: Option<&Path>,
    insecure: bool,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    if insecure {
        // Any certificate, but the handshake signatures are still checked.
        return mailroom_mta::tls::opportunistic_client_config().context("setting up TLS");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?;
    let mut roots = RootCertStore::empty();
    if let Some(bundle) = system_bundle() {
        // A bundle we cannot read is not fatal: --ca may be all we need.
        if let Ok(certs) = CertificateDer::pem_file_iter(&bundle) {
            roots.add_parsable_certificates(certs.flatten());
        }
    }
    if let Some(ca) = ca {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
            .and_then(|certs| certs.collect())
            .with_context(|| format!("reading --ca {}", ca.display()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(UsageError(format!(
                "--ca {}: no usable certificate in the file",
                ca.display()
            ))
            .into());
        }
    }
    if roots.is_empty() {
        bail!(
            "no trusted CA certificates: this system has no CA bundle (set SSL_CERT_FILE), so pass --ca FILE (or --insecure for a test server)"
        );
    }
    Ok(Arc::new(
        builder.with_root_certificates(roots).with_no_client_auth(),
    ))
}

/// The system's PEM bundle: `SSL_CERT_FILE`, else the first of the usual
/// paths that exists (Debian/Ubuntu, Fedora/RHEL, openSUSE, Alpine/BSD).
fn system_bundle() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SSL_CERT_FILE") {
        return Some(PathBuf::from(path));
    }
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/ssl/cert.pem",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------
// The local Maildir and the record of fetched UIDLs

/// The destination Maildir, locked for this run, with its UIDL record.
/// File work is done inline on the one async thread: there is one
/// connection and nothing else to run meanwhile.
struct LocalMaildir {
    root: PathBuf,
    host: String,
    state: UidlState,
    _lock: File,
}

impl LocalMaildir {
    /// Creates the Maildir if needed, locks it, loads the record and
    /// finishes what a crashed run left half done.
    fn open(root: &Path) -> anyhow::Result<LocalMaildir> {
        let created =
            mkdir(root).with_context(|| format!("creating Maildir {}", root.display()))?;
        if !root.is_dir() {
            bail!("{} is not a directory", root.display());
        }
        let mut fresh = false;
        for sub in ["tmp", "new", "cur"] {
            fresh |= mkdir(&root.join(sub))
                .with_context(|| format!("creating {}", root.join(sub).display()))?;
        }
        if fresh {
            mailroom_store_maildir::sync_dir(root)
                .with_context(|| format!("syncing {}", root.display()))?;
        }
        if created && let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = mailroom_store_maildir::sync_dir(parent);
        }
        let lock = lock_file(&root.join(LOCK_FILE))?;
        let host = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        let mut maildir = LocalMaildir {
            root: root.to_path_buf(),
            host: mailroom_store_maildir::sanitise_host(&host),
            state: UidlState::load(root)?,
            _lock: lock,
        };
        maildir.recover()?;
        maildir.sweep_tmp();
        maildir.state.compact()?;
        Ok(maildir)
    }

    /// Resolves the records that name a file (see the module docs).
    fn recover(&mut self) -> anyhow::Result<()> {
        let journal = std::mem::take(&mut self.state.journal);
        for (account, uid, name) in journal {
            if self.resolve(&name)? {
                self.state.insert(&account, &uid);
            } else {
                self.state.dirty = true;
            }
        }
        Ok(())
    }

    /// Makes sure a recorded message is in `new/` (or still in `cur/`).
    /// False when it is nowhere: the record is dropped and the message
    /// fetched again.
    fn resolve(&self, name: &str) -> anyhow::Result<bool> {
        let base = name.split(',').next().unwrap_or(name);
        if name.is_empty() || base.contains('/') || name.contains('/') {
            bail!(
                "{}: malformed file name {name:?}",
                self.state.path.display()
            );
        }
        let tmp = self.root.join("tmp").join(base);
        let new = self.root.join("new").join(name);
        if tmp.is_file() {
            if new.exists() {
                fs::remove_file(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
            } else {
                fs::rename(&tmp, &new)
                    .with_context(|| format!("moving {} into new/", tmp.display()))?;
                self.sync(&self.root.join("new"))?;
            }
            return Ok(true);
        }
        if new.exists() {
            return Ok(true);
        }
        // A mail reader may have moved it to cur/, adding ":2,<flags>".
        let cur = self.root.join("cur");
        let in_cur = fs::read_dir(&cur)
            .with_context(|| format!("reading {}", cur.display()))?
            .flatten()
            .any(|e| e.file_name().to_string_lossy().split(':').next() == Some(name));
        Ok(in_cur)
    }

    /// Removes files left in `tmp/` for more than 36 hours (the Maildir
    /// rule): writes that a crash interrupted before they were recorded.
    fn sweep_tmp(&self) {
        let Ok(entries) = fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        let Some(limit) = SystemTime::now().checked_sub(Duration::from_secs(36 * 3600)) else {
            return;
        };
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < limit);
            if old && entry.file_type().is_ok_and(|t| t.is_file()) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// A new file in `tmp/`.
    fn draft(&self) -> anyhow::Result<Draft> {
        let base = mailroom_store_maildir::unique_base(&self.host);
        let path = self.root.join("tmp").join(&base);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Draft {
            writer: BufWriter::with_capacity(64 * 1024, file),
            path,
            base,
            size: 0,
            done: false,
        })
    }

    /// Steps 1–3 of the module docs: the message becomes durable, recorded
    /// as fetched, and visible in `new/`.
    fn commit(&mut self, mut draft: Draft, account: &str, uid: &str) -> anyhow::Result<StoredName> {
        draft.finish()?;
        self.sync(&self.root.join("tmp"))?;
        let name = format!("{},S={}", draft.base, draft.size);
        self.state.append(account, uid, &name)?;
        let new = self.root.join("new").join(&name);
        fs::rename(&draft.path, &new)
            .with_context(|| format!("moving {} into new/", draft.path.display()))?;
        draft.done = true;
        self.sync(&self.root.join("new"))?;
        Ok(StoredName {
            name,
            size: draft.size,
        })
    }

    fn sync(&self, dir: &Path) -> anyhow::Result<()> {
        mailroom_store_maildir::sync_dir(dir).with_context(|| format!("syncing {}", dir.display()))
    }
}

/// A message being written into `tmp/`. Removed on drop unless committed.
struct Draft {
    writer: BufWriter<File>,
    path: PathBuf,
    base: String,
    size: u64,
    done: bool,
}

impl Draft {
    fn write(&mut self, data: &[u8]) -> anyhow::Result<()> {
        self.writer
            .write_all(data)
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.size += data.len() as u64;
        Ok(())
    }

    /// Flushes and fsyncs the file.
    fn finish(&mut self) -> anyhow::Result<()> {
        self.writer
            .flush()
            .and_then(|()| self.writer.get_ref().sync_all())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

impl Drop for Draft {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Where a message went.
struct StoredName {
    name: String,
    size: u64,
}

/// `DIR/.mailroom-fetch-uidls`: the UIDLs already fetched, per account.
///
/// ```text
/// mailroom-fetch-uidls 1
/// pop3://alice@mail.example.org:995 UID
/// pop3://alice@mail.example.org:995 UID 1732700000.M1P2Q3.host,S=1234
/// ```
///
/// The first line names the format and its version. A line with a file
/// name was appended during a run and is checked at the next start; the
/// rewrite at the end of each run drops the names.
struct UidlState {
    path: PathBuf,
    records: BTreeMap<String, BTreeSet<String>>,
    /// Appended records with a file name, still to check (see
    /// [`LocalMaildir::recover`]).
    journal: Vec<(String, String, String)>,
    /// The file differs from `records` (names to drop, a torn line, pruned
    /// records): rewrite at the next [`UidlState::compact`].
    dirty: bool,
    /// Open for appending once the file is known to be whole.
    appender: Option<File>,
}

impl UidlState {
    fn load(root: &Path) -> anyhow::Result<UidlState> {
        let path = root.join(STATE_FILE);
        let mut state = UidlState {
            path,
            records: BTreeMap::new(),
            journal: Vec::new(),
            dirty: false,
            appender: None,
        };
        let bytes = match fs::read(&state.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                state.dirty = true;
                return Ok(state);
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", state.path.display())),
        };
        let complete = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(end) => &bytes[..=end],
            None => &[][..],
        };
        // A torn last line (a crash during an append) is dropped: its
        // message was not yet moved to new/, and is fetched again.
        state.dirty |= complete.len() != bytes.len();
        let text = std::str::from_utf8(complete).map_err(|_| {
            anyhow!(
                "{} is not UTF-8: remove it to start over",
                state.path.display()
            )
        })?;
        let mut lines = text.lines();
        match lines.next() {
            Some(STATE_HEADER) => {}
            None => state.dirty = true,
            Some(other) => bail!(
                "{}: unknown format {other:?} (expected {STATE_HEADER:?}); written by a newer mailroom?",
                state.path.display()
            ),
        }
        for (number, line) in lines.enumerate() {
            // A block of NULs can be what a crash leaves of an append on
            // some file systems.
            if line.bytes().all(|b| b == 0) {
                state.dirty = true;
                continue;
            }
            let fields: Vec<&str> = line.split(' ').collect();
            match fields[..] {
                [account, uid] if !account.is_empty() && !uid.is_empty() => {
                    state.insert(account, uid);
                }
                [account, uid, name] if !account.is_empty() && !uid.is_empty() => {
                    state
                        .journal
                        .push((account.into(), uid.into(), name.into()));
                    state.dirty = true;
                }
                _ => bail!(
                    "{}: line {} is malformed: {line:?}",
                    state.path.display(),
                    number + 2
                ),
            }
        }
        Ok(state)
    }

    fn contains(&self, account: &str, uid: &str) -> bool {
        self.records.get(account).is_some_and(|s| s.contains(uid))
    }

    fn insert(&mut self, account: &str, uid: &str) {
        self.records
            .entry(account.to_owned())
            .or_default()
            .insert(uid.to_owned());
    }

    /// Drops this account's records of UIDLs the server no longer lists:
    /// those messages are gone (RFC 1939 §7: a UIDL is not reused), and the
    /// file must not grow forever.
    fn prune(&mut self, account: &str, listed: &HashSet<&str>) -> anyhow::Result<()> {
        if let Some(set) = self.records.get_mut(account) {
            let before = set.len();
            set.retain(|uid| listed.contains(uid.as_str()));
            if set.len() != before {
                self.dirty = true;
                self.compact()?;
            }
        }
        Ok(())
    }

    /// Forgets UIDLs whose deletion QUIT confirmed.
    fn forget(&mut self, account: &str, uids: &[String]) {
        if let Some(set) = self.records.get_mut(account) {
            for uid in uids {
                self.dirty |= set.remove(uid);
            }
        }
    }

    /// Records a fetched message, durably, before it is moved to `new/`.
    fn append(&mut self, account: &str, uid: &str, name: &str) -> anyhow::Result<()> {
        if self.appender.is_none() {
            self.compact()?;
            let file = OpenOptions::new()
                .append(true)
                .open(&self.path)
                .with_context(|| format!("opening {}", self.path.display()))?;
            self.appender = Some(file);
        }
        let line = format!("{account} {uid} {name}\n");
        if let Some(file) = &mut self.appender {
            file.write_all(line.as_bytes())
                .and_then(|()| file.sync_data())
                .with_context(|| format!("recording the UIDL in {}", self.path.display()))?;
        }
        self.insert(account, uid);
        // The rewrite at the end replaces the line with its short form.
        self.dirty = true;
        Ok(())
    }

    /// Rewrites the file from `records` if it differs: temporary file,
    /// fsync, rename, fsync of the directory.
    fn compact(&mut self) -> anyhow::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let mut text = String::from(STATE_HEADER);
        text.push('\n');
        for (account, uids) in &self.records {
            for uid in uids {
                text.push_str(&format!("{account} {uid}\n"));
            }
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let write = || -> io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            mailroom_store_maildir::sync_dir(dir)
        };
        write().with_context(|| format!("writing {}", self.path.display()))?;
        // Appends go to the new file from now on.
        self.appender = None;
        self.dirty = false;
        Ok(())
    }
}

/// Creates a directory with mode 0700; `Ok(false)` when it exists.
fn mkdir(path: &Path) -> io::Result<bool> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Takes the fetch lock of a Maildir (flock: released when the process
/// ends, however it ends).
fn lock_file(path: &Path) -> anyhow::Result<File> {
    use rustix::fs::{FlockOperation, flock};
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    loop {
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::WOULDBLOCK) => bail!(
                "another mailroom fetch is writing into {}",
                path.parent().unwrap_or(path).display()
            ),
            Err(e) => return Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }
}

// ---------------------------------------------------------------------------
// Progress

/// A progress bar (messages and bytes) on a terminal; one plain line per
/// message otherwise.
enum Reporter {
    Bar(ProgressBar),
    Lines,
}

impl Reporter {
    fn new() -> Reporter {
        if io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            Reporter::Bar(bar)
        } else {
            Reporter::Lines
        }
    }

    fn start(&self, messages: u64, bytes: u64) {
        match self {
            Reporter::Bar(bar) => {
                bar.set_length(bytes);
                bar.set_prefix(format!("0/{messages}"));
            }
            Reporter::Lines => {
                eprintln!("mailroom fetch: {messages} new message(s), {bytes} octets");
            }
        }
    }

    fn next_message(&self, index: u64, count: u64, _size: Option<u64>) {
        if let Reporter::Bar(bar) = self {
            bar.set_prefix(format!("{index}/{count}"));
        }
    }

    fn progress(&self, bytes: u64) {
        if let Reporter::Bar(bar) = self {
            bar.inc(bytes);
        }
    }

    fn message_done(&self, index: u64, count: u64, uid: &str, stored: &StoredName) {
        if let Reporter::Lines = self {
            eprintln!(
                "mailroom fetch: {index}/{count} uidl {uid}: {} octets -> new/{}",
                stored.size, stored.name
            );
        }
    }

    /// A line that must show whatever the mode (above the bar).
    fn line(&self, text: &str) {
        match self {
            Reporter::Bar(bar) if !bar.is_finished() => {
                bar.suspend(|| eprintln!("mailroom fetch: {text}"))
            }
            _ => eprintln!("mailroom fetch: {text}"),
        }
    }

    fn finish(&self) {
        if let Reporter::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// The format line of [`STATE_FILE`].
const STATE_HEADER: &str = "mailroom-fetch-uidls 1";
/// The record of fetched UIDLs, in the Maildir's root (Maildir readers
/// ignore dot files there).
const STATE_FILE: &str = ".mailroom-fetch-uidls";
/// Held (flock) while a fetch writes into the Maildir.
const LOCK_FILE: &str = ".mailroom-fetch.lock";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn endpoints() {
        let ok = |text: &str, tls: bool| {
            let e = Endpoint::parse(text, tls).unwrap();
            (e.host, e.port)
        };
        assert_eq!(
            ok("mail.example.org:1100", false),
            ("mail.example.org".into(), 1100)
        );
        assert_eq!(
            ok("mail.example.org", false),
            ("mail.example.org".into(), 110)
        );
        assert_eq!(
            ok("mail.example.org", true),
            ("mail.example.org".into(), 995)
        );
        assert_eq!(ok("127.0.0.1:110", false), ("127.0.0.1".into(), 110));
        assert_eq!(ok("[::1]:995", false), ("::1".into(), 995));
        assert_eq!(ok("[::1]", true), ("::1".into(), 995));
        assert_eq!(ok("::1", false), ("::1".into(), 110));
        for bad in [
            "",
            ":110",
            "host:",
            "host:0",
            "host:99999",
            "[::1",
            "[::1]x",
            "a b:1",
        ] {
            assert!(Endpoint::parse(bad, false).is_err(), "{bad:?}");
        }
        let e = Endpoint::parse("Mail.Example.org:995", false).unwrap();
        assert_eq!(e.account("a b@c"), "pop3://a%20b%40c@mail.example.org:995");
        let e = Endpoint::parse("[::1]:110", false).unwrap();
        assert_eq!(e.account("alice"), "pop3://alice@[::1]:110");
    }

    #[test]
    fn loopback_addresses() {
        assert!(is_loopback("127.0.0.1".parse().unwrap()));
        assert!(is_loopback("127.1.2.3".parse().unwrap()));
        assert!(is_loopback("::1".parse().unwrap()));
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_loopback("192.0.2.1".parse().unwrap()));
        assert!(!is_loopback("::ffff:192.0.2.1".parse().unwrap()));
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "mailroom-fetch-unit-{tag}-{}-{:?}",
            std::process::id(),
            SystemTime::now()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn state_survives_a_torn_append_and_resolves_pending_files() {
        let dir = temp_dir("state");
        let root = dir.join("Maildir");
        {
            let mut maildir = LocalMaildir::open(&root).unwrap();
            // Fully committed.
            let mut draft = maildir.draft().unwrap();
            draft.write(b"one\r\n").unwrap();
            let one = maildir.commit(draft, "pop3://a@h:1", "u1").unwrap();
            assert!(root.join("new").join(&one.name).is_file());
            // Recorded, but "crashed" before the rename: file still in tmp/.
            let mut draft = maildir.draft().unwrap();
            draft.write(b"two\r\n").unwrap();
            draft.finish().unwrap();
            let name = format!("{},S={}", draft.base, draft.size);
            maildir.state.append("pop3://a@h:1", "u2", &name).unwrap();
            draft.done = true;
            // Recorded, but its file vanished: fetched again.
            maildir
                .state
                .append("pop3://a@h:1", "u3", "1.M1P1Q1.gone,S=3")
                .unwrap();
        }
        // A torn append.
        let mut file = OpenOptions::new()
            .append(true)
            .open(root.join(STATE_FILE))
            .unwrap();
        file.write_all(b"pop3://a@h:1 u4 12").unwrap();
        drop(file);

        let maildir = LocalMaildir::open(&root).unwrap();
        assert!(maildir.state.contains("pop3://a@h:1", "u1"));
        assert!(maildir.state.contains("pop3://a@h:1", "u2"));
        assert!(!maildir.state.contains("pop3://a@h:1", "u3"));
        assert!(!maildir.state.contains("pop3://a@h:1", "u4"));
        let new: Vec<_> = fs::read_dir(root.join("new")).unwrap().flatten().collect();
        assert_eq!(new.len(), 2);
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
        let text = fs::read_to_string(root.join(STATE_FILE)).unwrap();
        assert_eq!(
            text,
            "mailroom-fetch-uidls 1\npop3://a@h:1 u1\npop3://a@h:1 u2\n"
        );
        // A second fetch into the same Maildir is refused while one runs.
        let err = LocalMaildir::open(&root).err().unwrap();
        assert!(err.to_string().contains("another mailroom fetch"), "{err}");
        drop(maildir);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_state_versions_are_refused() {
        let dir = temp_dir("version");
        fs::write(dir.join(STATE_FILE), "mailroom-fetch-uidls 2\n").unwrap();
        let err = LocalMaildir::open(&dir).err().unwrap();
        assert!(err.to_string().contains("unknown format"), "{err}");
        fs::write(
            dir.join(STATE_FILE),
            "mailroom-fetch-uidls 1\nonly-one-field\n",
        )
        .unwrap();
        let err = LocalMaildir::open(&dir).err().unwrap();
        assert!(err.to_string().contains("line 2 is malformed"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
