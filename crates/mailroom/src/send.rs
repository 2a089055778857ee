//! `mailroom send`: composes a MIME message (text body from stdin,
//! attachments in base64, non-ASCII headers as RFC 2047 words) and submits
//! it to a server (submission with STARTTLS and AUTH, or implicit TLS with
//! `--tls`), or queues it locally when no server is named.

use std::io::Read;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use mailroom_mime::Draft;
use mailroom_smtp_client::{
    ClientConfig, ClientEvent, ClientSession, Credentials, DataEncoder, Outcome, RecipientSpec,
    TlsPolicy, Transaction,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cli::Cli;
use crate::config;
use crate::password_input::read_password;

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// Sender address [default: $USER@hostname]
    #[arg(long, value_name = "ADDR")]
    pub from: Option<String>,
    /// Recipient (repeatable).
    #[arg(long, value_name = "ADDR", required = true)]
    pub to: Vec<String>,
    /// Carbon-copy recipient (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub cc: Vec<String>,
    /// Blind-copy recipient (repeatable; not written into the headers).
    #[arg(long, value_name = "ADDR")]
    pub bcc: Vec<String>,
    /// The subject (UTF-8; encoded per RFC 2047 when not ASCII).
    #[arg(long)]
    pub subject: String,
    /// A file to attach (repeatable).
    #[arg(long, value_name = "FILE")]
    pub attach: Vec<PathBuf>,
    /// Submit to this server (HOST:PORT); without it, queue locally.
    #[arg(long, value_name = "HOST:PORT")]
    pub server: Option<String>,
    /// Log in as this user (AUTH PLAIN).
    #[arg(long, value_name = "U")]
    pub user: Option<String>,
    /// Read the password from one line of standard input (the body then
    /// follows on the next lines).
    #[arg(long)]
    pub password_stdin: bool,
    /// Implicit TLS (RFC 8314, port 465).
    #[arg(long)]
    pub tls: bool,
    /// Trust this PEM certificate (or CA) for the server.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// Do not verify the server's certificate (self-signed test servers).
    #[arg(long)]
    pub insecure: bool,
}

pub(crate) fn run(cli: &Cli, args: &SendArgs) -> anyhow::Result<()> {
    let raw = config::load_raw(cli)?;
    let hostname = raw
        .hostname
        .clone()
        .unwrap_or_else(|| "localhost".into())
        .to_lowercase();
    let password = match (&args.server, &args.user) {
        (Some(_), Some(user)) => Some(read_password(
            args.password_stdin,
            &format!("Password for {user}: "),
        )?),
        _ => None,
    };
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .context("reading the body from standard input")?;
    let body = String::from_utf8(body).context("the body on standard input is not UTF-8")?;
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let from = args
        .from
        .clone()
        .unwrap_or_else(|| format!("{user}@{hostname}"));
    let mut attachments = Vec::new();
    for path in &args.attach {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "attachment".into());
        attachments.push((name, data));
    }
    let id = mailroom_server::ids::new_id();
    let host_part = match &args.server {
        Some(server) => server
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(server)
            .trim_matches(['[', ']'])
            .to_string(),
        None => hostname.clone(),
    };
    let draft = Draft {
        from: from.clone(),
        to: args.to.clone(),
        cc: args.cc.clone(),
        bcc: args.bcc.clone(),
        subject: args.subject.clone(),
        body,
        attachments,
        date: mailroom_server::time::unix_now(),
        message_id: format!("<{id}@{}>", message_id_host(&host_part, &hostname)),
    };
    let message = mailroom_mime::compose(&draft).context("composing the message")?;
    let recipients: Vec<String> = args
        .to
        .iter()
        .chain(&args.cc)
        .chain(&args.bcc)
        .cloned()
        .collect();

    let Some(server) = &args.server else {
        let data_dir = config::data_dir(cli, &raw);
        let store_url = config::store_url(cli, &raw)?;
        if !crate::stores::is_postgres(&store_url) {
            config::require_data_dir(&data_dir)?;
        }
        crate::privileges::become_run_as(raw.run_as.as_deref(), &data_dir)?;
        let id =
            crate::sendmail::enqueue(&store_url, &data_dir, Some(&from), &recipients, message)?;
        eprintln!("queued as {id}");
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let credentials = args
        .user
        .clone()
        .zip(password)
        .map(|(u, p)| Credentials::new(u, p));
    runtime.block_on(submit(
        server,
        args,
        &hostname,
        credentials,
        &from,
        &recipients,
        message,
    ))
}

async fn submit(
    server: &str,
    args: &SendArgs,
    hostname: &str,
    credentials: Option<Credentials>,
    from: &str,
    recipients: &[String],
    message: Vec<u8>,
) -> anyhow::Result<()> {
    let addr: SocketAddr = server
        .to_socket_addrs()
        .with_context(|| format!("resolving {server}"))?
        .next()
        .with_context(|| format!("{server} has no address"))?;
    let loopback = is_loopback(addr.ip());
    let tls_config = crate::fetch::tls_config(args.ca.as_deref(), args.insecure)?;
    let connector = tokio_rustls::TlsConnector::from(tls_config);
    let server_name = rustls_pki_types::ServerName::try_from(
        server
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(server)
            .trim_matches(['[', ']'])
            .to_string(),
    )
    .context("server name")?;
    let tcp = tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(addr))
        .await
        .with_context(|| format!("connecting to {server}: timed out"))?
        .with_context(|| format!("connecting to {server}"))?;
    let mut stream = if args.tls {
        Conn::Tls(Box::new(
            connector
                .connect(server_name.clone(), tcp)
                .await
                .context("TLS handshake")?,
        ))
    } else {
        Conn::Plain(tcp)
    };
    let mut config = ClientConfig::new(hostname.to_string());
    // Credentials never travel in clear except to this machine.
    config.tls = if args.tls {
        TlsPolicy::Implicit
    } else if loopback {
        TlsPolicy::Opportunistic
    } else {
        TlsPolicy::Required
    };
    config.allow_plaintext_auth = loopback;
    config.auth = credentials;
    let mut session = ClientSession::new(config).context("client configuration")?;
    let needs_8bit = message.iter().any(|b| *b >= 0x80);
    let tx = Transaction {
        reverse_path: Some(from.to_string()),
        recipients: recipients
            .iter()
            .map(|r| RecipientSpec::new(r.clone()))
            .collect(),
        size: message.len() as u64,
        needs_8bit,
        needs_smtputf8: false,
        envid: None,
        ret: None,
    };
    let mut tx = Some(tx);
    let mut buf = vec![0u8; 8192];
    let mut result = None;
    loop {
        while let Some(event) = session.poll_event() {
            match event {
                ClientEvent::Ready => match tx.take() {
                    Some(tx) => session.submit(tx).context("submitting")?,
                    None => session.quit().context("quitting")?,
                },
                ClientEvent::StartTls => {
                    flush(&mut stream, &mut session).await?;
                    let Conn::Plain(tcp) = std::mem::replace(&mut stream, Conn::Upgrading) else {
                        bail!("STARTTLS on a connection that is already TLS");
                    };
                    let tls = connector
                        .connect(server_name.clone(), tcp)
                        .await
                        .context("STARTTLS handshake")?;
                    stream = Conn::Tls(Box::new(tls));
                    session.tls_established().context("STARTTLS")?;
                }
                ClientEvent::SendData => {
                    flush(&mut stream, &mut session).await?;
                    let encoded = DataEncoder::encode_all(&message);
                    stream
                        .write_all(&encoded)
                        .await
                        .context("sending the message")?;
                    session.data_sent().context("sending the message")?;
                }
                ClientEvent::TransactionDone(done) => result = Some(done),
                ClientEvent::Closed => {
                    return report(result);
                }
                ClientEvent::Failed(err) => bail!("{server}: {err}"),
            }
        }
        flush(&mut stream, &mut session).await?;
        let n = tokio::time::timeout(Duration::from_secs(300), stream.read(&mut buf))
            .await
            .context("the server stopped answering")?
            .context("reading from the server")?;
        if n == 0 {
            session.connection_lost();
            if session.poll_event().is_none() && result.is_some() {
                return report(result);
            }
            continue;
        }
        session.handle_input(&buf[..n]);
    }
}

fn report(result: Option<mailroom_smtp_client::TransactionResult>) -> anyhow::Result<()> {
    let Some(result) = result else {
        bail!("the connection ended before the message was sent")
    };
    let mut failed = Vec::new();
    for (rcpt, outcome) in &result.per_recipient {
        match outcome {
            Outcome::Delivered(reply) => eprintln!("{rcpt}: accepted ({reply})"),
            Outcome::TemporaryFailure(why) | Outcome::PermanentFailure(why) => {
                failed.push(format!("{rcpt}: {why}"))
            }
        }
    }
    if !failed.is_empty() {
        bail!("not sent to {}", failed.join("; "));
    }
    Ok(())
}

/// The connection to the server, plain until STARTTLS or from the start
/// with `--tls`.
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Only while a handshake is in progress.
    Upgrading,
}

impl Conn {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf).await,
            Conn::Tls(s) => s.read(buf).await,
            Conn::Upgrading => Ok(0),
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(bytes).await,
            Conn::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Conn::Upgrading => Err(std::io::Error::other("connection is upgrading")),
        }
    }
}

async fn flush(stream: &mut Conn, session: &mut ClientSession) -> anyhow::Result<()> {
    let out = session.take_output();
    if !out.is_empty() {
        stream
            .write_all(&out)
            .await
            .context("writing to the server")?;
    }
    Ok(())
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The domain for the Message-ID: the submission server's name when it is a
/// domain name, else our hostname (never a bare IP address).
fn message_id_host<'a>(server_host: &'a str, hostname: &'a str) -> &'a str {
    if server_host.contains('.') && server_host.parse::<IpAddr>().is_err() {
        server_host
    } else {
        hostname
    }
}
