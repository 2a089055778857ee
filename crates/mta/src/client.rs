//! The tokio driver of [`ClientSession`]: one TCP connection, STARTTLS on
//! the same socket, the message streamed through a [`DataEncoder`]. It
//! makes no protocol decisions; it reads, feeds, polls and writes, in the
//! order the session documents.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailroom_smtp_client::{
    ClientConfig, ClientError, ClientEvent, ClientSession, ClientTimeout, ConfigError,
    DATA_BLOCK_TIMEOUT, DataEncoder, Extensions, Failure, LocalReason, Outcome, Transaction,
    TransactionResult,
};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Why a connection could not be made ready for mail.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// TCP connect failed: refused, unreachable, reset.
    #[error("connect failed: {0}")]
    Connect(#[source] io::Error),
    /// TCP connect did not finish within the connect timeout.
    #[error("connect timed out")]
    ConnectTimeout,
    /// The session failed before it was ready: greeting or EHLO refused,
    /// STARTTLS missing while required, the TLS handshake failed.
    #[error("{0}")]
    Session(ClientError),
    /// Our own HELO name is unusable (a configuration error).
    #[error("invalid client configuration: {0}")]
    Config(#[from] ConfigError),
}

/// An open SMTP connection, ready for transactions after [`open`](Self::open).
pub(crate) struct Connection {
    session: ClientSession,
    stream: Stream,
    /// The host name this connection reached, for `Remote-MTA` and logs.
    host: String,
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    read_buf: Vec<u8>,
    /// The socket is unusable (a write or read failed): write nothing more.
    broken: bool,
    /// Transactions handed to this connection so far.
    transactions: usize,
    /// Ceiling on the RFC 5321 timeouts (`MtaConfig::reply_timeout`).
    reply_timeout: Option<Duration>,
}

/// How long a connection waits: for the TCP connect, and at most for any
/// reply (see `MtaConfig`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Waits {
    pub(crate) connect: Duration,
    pub(crate) reply: Option<Duration>,
}

impl Connection {
    /// Connects to `addr` and drives the session through greeting, EHLO
    /// (HELO) and STARTTLS per `config.tls` until it is ready for mail.
    pub(crate) async fn open(
        host: &str,
        addr: SocketAddr,
        config: ClientConfig,
        tls: Arc<rustls::ClientConfig>,
        waits: Waits,
    ) -> Result<Connection, OpenError> {
        let session = ClientSession::new(config)?;
        let tcp = match timeout(waits.connect, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(error)) => return Err(OpenError::Connect(error)),
            Err(_) => return Err(OpenError::ConnectTimeout),
        };
        // Commands are small and each waits for its reply.
        let _ = tcp.set_nodelay(true);
        let mut connection = Connection {
            session,
            stream: Stream::Plain(tcp),
            host: host.to_string(),
            addr,
            tls,
            read_buf: vec![0; READ_BUFFER],
            broken: false,
            transactions: 0,
            reply_timeout: waits.reply,
        };
        let run = connection.drive(None).await;
        match run.failure {
            Some(error) => Err(OpenError::Session(error)),
            None if run.ready => Ok(connection),
            None => Err(OpenError::Session(ClientError::ConnectionLost)),
        }
    }

    /// The host name this connection reached.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// The address this connection reached.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's extensions (after STARTTLS, those of the second EHLO).
    pub(crate) fn extensions(&self) -> &Extensions {
        self.session.extensions()
    }

    /// True when the connection is under TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.session.is_tls()
    }

    /// True when another transaction may be sent.
    pub(crate) fn is_ready(&self) -> bool {
        self.session.is_ready() && !self.broken
    }

    /// Transactions sent on this connection so far.
    pub(crate) fn transactions(&self) -> usize {
        self.transactions
    }

    /// Runs one transaction, streaming `message` after the 354. Returns
    /// every recipient's outcome; afterwards the connection is either
    /// ready again or finished ([`is_ready`](Self::is_ready)).
    pub(crate) async fn send(&mut self, tx: Transaction, message: &[u8]) -> TransactionResult {
        let addresses: Vec<String> = tx.recipients.iter().map(|r| r.address.clone()).collect();
        self.transactions += 1;
        if self.session.submit(tx).is_err() {
            // Not ready (a bug of ours) or no recipients: nothing was sent.
            return all_temporary(addresses, LocalReason::ProtocolError);
        }
        let run = self.drive(Some(message)).await;
        run.result
            .unwrap_or_else(|| all_temporary(addresses, LocalReason::ConnectionLost))
    }

    /// Says QUIT and closes the connection (best effort; the mail is
    /// already settled).
    pub(crate) async fn quit(mut self) {
        if self.session.quit().is_ok() {
            let _ = timeout(QUIT_TIMEOUT, self.drive(None)).await;
        }
        let _ = timeout(QUIT_TIMEOUT, self.stream.shutdown()).await;
    }

    /// The session loop (see `ClientSession`'s poll order): handle events,
    /// write output, read with the session's timeout. Returns once the
    /// session is ready (and, with `message`, the transaction reported),
    /// or finished.
    async fn drive(&mut self, message: Option<&[u8]>) -> Run {
        let mut run = Run::default();
        loop {
            while let Some(event) = self.session.poll_event() {
                match event {
                    ClientEvent::Ready => run.ready = true,
                    ClientEvent::StartTls => {
                        run.ready = false;
                        self.write_output().await;
                        if self.broken {
                            continue;
                        }
                        match self.start_tls().await {
                            Ok(()) => {
                                if self.session.tls_established().is_err() {
                                    self.session.connection_lost();
                                }
                            }
                            Err(error) => {
                                tracing::debug!(host = %self.host, %error, "TLS handshake failed");
                                self.broken = true;
                                self.session.connection_lost();
                            }
                        }
                    }
                    ClientEvent::SendData => {
                        self.write_output().await;
                        let Some(message) = message else {
                            // A 354 we did not ask for: give up on the
                            // connection rather than send nothing.
                            self.broken = true;
                            self.session.connection_lost();
                            continue;
                        };
                        if self.stream_message(message).await.is_ok() {
                            if self.session.data_sent().is_err() {
                                self.session.connection_lost();
                            }
                        } else {
                            self.broken = true;
                            self.session.connection_lost();
                        }
                    }
                    ClientEvent::TransactionDone(result) => {
                        run.ready = false;
                        run.result = Some(result);
                    }
                    ClientEvent::Closed => run.finished = true,
                    ClientEvent::Failed(error) => {
                        run.finished = true;
                        run.failure = Some(error);
                    }
                }
            }
            self.write_output().await;
            if run.finished || self.session.is_finished() {
                run.ready = false;
                return run;
            }
            if run.ready && (message.is_none() || run.result.is_some()) {
                return run;
            }
            if self.broken {
                self.session.connection_lost();
                continue;
            }
            let wait = self.session.next_timeout();
            let Some(limit) = self.limit(wait) else {
                // The session waits on us, yet we have nothing to give:
                // only a bug of ours gets here. Drop the connection.
                self.session.connection_lost();
                continue;
            };
            match timeout(limit, self.stream.read(&mut self.read_buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.broken = true;
                    self.session.connection_lost();
                }
                Ok(Ok(n)) => self.session.handle_input(&self.read_buf[..n]),
                Err(_) => {
                    self.broken = true;
                    self.session.timed_out();
                }
            }
        }
    }

    /// How long to wait now: the RFC 5321 timeout, under the configured
    /// ceiling; `None` when nothing is awaited.
    fn limit(&self, wait: ClientTimeout) -> Option<Duration> {
        let rfc = wait.duration()?;
        Some(self.reply_timeout.map_or(rfc, |ceiling| rfc.min(ceiling)))
    }

    /// Writes what the session produced. A failure marks the connection
    /// broken; the next loop turn tells the session.
    async fn write_output(&mut self) {
        let output = self.session.take_output();
        if output.is_empty() || self.broken {
            return;
        }
        let limit = self
            .limit(ClientTimeout::Command)
            .unwrap_or(DATA_BLOCK_TIMEOUT);
        match timeout(limit, self.stream.write_all(&output)).await {
            Ok(Ok(())) => {}
            _ => self.broken = true,
        }
    }

    /// RFC 5321 §4.5.2 transparency and the terminator, block by block,
    /// each write under the §4.5.3.2.5 data-block timeout.
    async fn stream_message(&mut self, message: &[u8]) -> io::Result<()> {
        let mut encoder = DataEncoder::new();
        let mut out = Vec::with_capacity(DATA_CHUNK + DATA_CHUNK / 32);
        let mut chunks = message.chunks(DATA_CHUNK).peekable();
        while let Some(chunk) = chunks.next() {
            encoder.encode(chunk, &mut out);
            if chunks.peek().is_some() {
                self.write_block(&out).await?;
                out.clear();
            }
        }
        // The terminator rides with the last block: one write for a
        // small message.
        encoder.finish(&mut out);
        self.write_block(&out).await
    }

    async fn write_block(&mut self, block: &[u8]) -> io::Result<()> {
        let limit = self
            .limit(ClientTimeout::DataBlock)
            .unwrap_or(DATA_BLOCK_TIMEOUT);
        match timeout(limit, self.stream.write_all(block)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "data block timeout",
            )),
        }
    }

    /// The TLS handshake on the same socket (RFC 3207 §4). The server
    /// name is the MX host name when it is one (SNI), else its address.
    async fn start_tls(&mut self) -> io::Result<()> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Err(io::Error::other(
                "STARTTLS on a connection that is not plaintext",
            ));
        };
        let name = ServerName::try_from(self.host.clone())
            .unwrap_or_else(|_| ServerName::IpAddress(self.addr.ip().into()));
        let connector = TlsConnector::from(self.tls.clone());
        let limit = self
            .limit(ClientTimeout::Command)
            .unwrap_or(DATA_BLOCK_TIMEOUT);
        match timeout(limit, connector.connect(name, tcp)).await {
            Ok(Ok(tls)) => {
                self.stream = Stream::Tls(Box::new(tls));
                Ok(())
            }
            Ok(Err(error)) => Err(error),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timeout",
            )),
        }
    }
}

/// What one [`Connection::drive`] call saw.
#[derive(Debug, Default)]
struct Run {
    ready: bool,
    finished: bool,
    result: Option<TransactionResult>,
    failure: Option<ClientError>,
}

/// The socket, before and after STARTTLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Between taking the plaintext socket and the handshake's end, or
    /// after a failed handshake.
    Closed,
}

impl Stream {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
            Stream::Closed => Ok(0),
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(bytes).await,
            Stream::Tls(s) => {
                s.write_all(bytes).await?;
                // rustls buffers: push the records out now.
                s.flush().await
            }
            Stream::Closed => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.shutdown().await,
            Stream::Tls(s) => s.shutdown().await,
            Stream::Closed => Ok(()),
        }
    }
}

fn all_temporary(addresses: Vec<String>, reason: LocalReason) -> TransactionResult {
    TransactionResult {
        per_recipient: addresses
            .into_iter()
            .map(|a| (a, Outcome::TemporaryFailure(Failure::Local(reason.clone()))))
            .collect(),
    }
}

const READ_BUFFER: usize = 8 * 1024;
/// The message is written in blocks of this size, each under the data
/// block timeout.
const DATA_CHUNK: usize = 64 * 1024;
/// QUIT is a courtesy: do not wait long for its reply.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);
