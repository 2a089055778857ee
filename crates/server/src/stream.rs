//! A client connection that may be upgraded to TLS mid-session (STARTTLS,
//! STLS) or start in TLS (smtps, pop3s).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;

use crate::io::{Input, READ_CHUNK, read_some};

/// Plain TCP or TLS over TCP.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while a handshake is in progress.
    Upgrading,
}

impl Stream {
    /// Waits up to `timeout` for bytes. Plain connections hold no read
    /// buffer while idle; TLS ones read through rustls' own buffer.
    pub(crate) async fn read_some(&mut self, timeout: Duration) -> io::Result<Input> {
        if let Stream::Plain(tcp) = self {
            return read_some(tcp, timeout).await;
        }
        let mut buf = vec![0u8; READ_CHUNK];
        let idle = std::pin::pin!(tokio::time::sleep(timeout));
        Ok(match self.read_into(&mut buf, idle, timeout).await? {
            Input::Data(n) => {
                buf.truncate(n);
                Input::Data(buf)
            }
            Input::Closed => Input::Closed,
            Input::TimedOut => Input::TimedOut,
        })
    }

    /// Waits up to `timeout` for bytes and reads them into `buf`, for a
    /// driver that keeps a small buffer of its own (POP3 commands are
    /// short lines): no allocation per read. `idle` is the session's timer,
    /// set again here: pushing one timer's deadline on costs less than a
    /// new timer per read.
    pub(crate) async fn read_into(
        &mut self,
        buf: &mut [u8],
        mut idle: Pin<&mut Sleep>,
        timeout: Duration,
    ) -> io::Result<Input<usize>> {
        idle.as_mut().reset(Instant::now() + timeout);
        tokio::select! {
            biased;
            read = AsyncReadExt::read(self, buf) => match read {
                Ok(0) => Ok(Input::Closed),
                Ok(n) => Ok(Input::Data(n)),
                Err(e) => Err(e),
            },
            () = idle => Ok(Input::TimedOut),
        }
    }

    /// Writes all of `bytes` within `timeout`.
    pub(crate) async fn write_all(
        &mut self,
        mut bytes: &[u8],
        timeout: Duration,
    ) -> io::Result<()> {
        // Most replies fit in the socket buffer at once: written without a
        // timer. What does not fit waits below, bounded in time.
        if let Stream::Plain(tcp) = self {
            while !bytes.is_empty() {
                match tcp.try_write(bytes) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => bytes = &bytes[n..],
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            if bytes.is_empty() {
                return Ok(());
            }
        }
        let write = async {
            self.write_all_inner(bytes).await?;
            self.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client did not read",
            )),
        }
    }

    async fn write_all_inner(&mut self, bytes: &[u8]) -> io::Result<()> {
        AsyncWriteExt::write_all(self, bytes).await
    }

    /// Ends the connection: TLS sends its close_notify alert first (RFC 8446
    /// §6.1), then the TCP write side is shut. Best effort, bounded in time.
    pub(crate) async fn close(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), AsyncWriteExt::shutdown(self)).await;
    }

    /// Performs the server side of a TLS handshake on this connection.
    pub(crate) async fn upgrade(
        &mut self,
        acceptor: tokio_rustls::TlsAcceptor,
        timeout: Duration,
    ) -> io::Result<()> {
        let Stream::Plain(tcp) = std::mem::replace(self, Stream::Upgrading) else {
            return Err(io::Error::other("TLS already active"));
        };
        match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => {
                *self = Stream::Tls(Box::new(tls));
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }

    /// The TLS protocol version and cipher suite, for logs and `Received:`.
    pub(crate) fn tls_description(&self) -> Option<String> {
        match self {
            Stream::Tls(tls) => {
                let (_, conn) = tls.get_ref();
                let version = conn
                    .protocol_version()
                    .and_then(|v| v.as_str())
                    .unwrap_or("TLS");
                let suite = conn
                    .negotiated_cipher_suite()
                    .and_then(|s| s.suite().as_str())
                    .unwrap_or("");
                Some(
                    format!("{version} {suite}")
                        .trim()
                        .replace('_', "-")
                        .to_string(),
                )
            }
            _ => None,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Upgrading => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Upgrading => Poll::Ready(Err(io::Error::other("connection is upgrading"))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Upgrading => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Upgrading => Poll::Ready(Ok(())),
        }
    }
}
