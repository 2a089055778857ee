//! The POP3 driver: accepts connections, runs one [`ServerSession`] per
//! connection, checks credentials, holds the maildrop lock for the session
//! and streams messages. Deletions reach the store only in the UPDATE state,
//! after QUIT (RFC 1939 §6); a dropped connection deletes nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailroom_pop3_proto::{
    ByteStuffer, Credential, Event, LoginFailure, MessageEntry, ServerConfig as SessionConfig,
    ServerSession, TopFilter,
};
use mailroom_store::{Maildrop, MessageBody, StoreError};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::accept::accept_loop;
use crate::auth::{self, Proof, Verdict};
use crate::config::ListenerKind;
use crate::io::Input;
use crate::limits::ConnectionSlot;
use crate::sasl;
use crate::stream::Stream;
use crate::{Context, Shutdown};

/// Accepts POP3 connections on `listener` until `shutdown` fires.
pub async fn serve(
    ctx: Arc<Context>,
    listener: TcpListener,
    kind: ListenerKind,
    shutdown: Shutdown,
) {
    let refusal = |_: &str| b"-ERR [SYS/TEMP] too many connections\r\n".to_vec();
    accept_loop(ctx, listener, kind, shutdown, refusal, session).await;
}

static GREETING_COUNTER: AtomicU64 = AtomicU64::new(0);

/// RFC 1939 §7: a timestamp unique to this greeting, `<pid.counter.clock@host>`.
fn greeting_timestamp(hostname: &str) -> String {
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    let count = GREETING_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("<{}.{}.{}@{}>", std::process::id(), count, clock, hostname)
}

async fn session(
    ctx: Arc<Context>,
    stream: TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    shutdown: Shutdown,
    _slot: ConnectionSlot,
) -> std::io::Result<()> {
    // One snapshot for the whole session: a reload applies to the next one.
    let settings = ctx.config();
    let io_timeout = settings.pop3_timeout;
    let mut stream = Stream::Plain(stream);
    if kind == ListenerKind::Pop3s {
        let Some(tls) = &ctx.tls else { return Ok(()) };
        Box::pin(stream.upgrade(tls.acceptor(), settings.command_timeout)).await?;
    }
    let timestamp = greeting_timestamp(&settings.hostname);
    let config = SessionConfig {
        greeting_timestamp: timestamp.clone(),
        plaintext_login_allowed: settings.plaintext_auth_allowed(peer.ip()),
        stls: ctx.tls.is_some() && kind == ListenerKind::Pop3,
        tls_active: kind == ListenerKind::Pop3s,
        ..SessionConfig::default()
    };
    let mut session = ServerSession::new(config);
    // The open maildrop holds the lock; dropping it releases the lock and
    // deletes nothing (a dropped connection never reaches UPDATE).
    let mut maildrop: Option<Box<dyn Maildrop>> = None;
    // Output not yet written: flushed before the driver waits for input, or
    // earlier once it reaches FLUSH_AT.
    let mut pending: Vec<u8> = Vec::new();
    // Commands are short lines (RFC 2449 §4: 255 octets; AUTH responses a
    // little more): a small buffer in the session itself, read into
    // directly. Pipelined input longer than this takes more reads.
    let mut inbuf = [0u8; 2048];
    let idle = tokio::time::sleep(io_timeout);
    tokio::pin!(idle);
    let stop = shutdown.signal();
    tokio::pin!(stop);
    loop {
        let mut start_tls = false;
        while let Some(event) = session.poll_event() {
            match event {
                Event::Login { user, credential } => {
                    let proof = match credential {
                        Credential::Password(password) => {
                            Proof::Sasl(sasl::Credential::Password(password))
                        }
                        Credential::Apop { digest } => Proof::Apop {
                            timestamp: timestamp.clone(),
                            digest,
                        },
                    };
                    // Boxed, like the TLS handshakes: large futures that
                    // would otherwise size every connection's task.
                    match Box::pin(login(&ctx, peer, &user, proof)).await {
                        Ok(drop) => {
                            let listing = drop
                                .messages()
                                .iter()
                                .map(|m| MessageEntry {
                                    uid: m.uid.clone(),
                                    size: m.size,
                                })
                                .collect();
                            tracing::info!(user = %user.to_lowercase(), messages = drop.messages().len(), "login");
                            maildrop = Some(drop);
                            session.login_succeeded(listing);
                        }
                        Err(why) => session.login_failed(why),
                    }
                }
                Event::Retrieve { index, top_lines } => {
                    let Some(drop) = maildrop.as_ref() else {
                        session.retrieve_failed();
                        continue;
                    };
                    match drop.open(index).await {
                        Ok(body) => {
                            metrics::counter!("mailroom_pop3_retrievals_total").increment(1);
                            session.retrieve_ok();
                            // The status line and the message join what is
                            // pending: one write for a small one, and one for
                            // several small ones the client pipelined.
                            session.append_output(&mut pending);
                            let size = drop.messages().get(index).map_or(0, |m| m.size);
                            send_message(
                                &mut stream,
                                &mut pending,
                                body,
                                size,
                                top_lines,
                                io_timeout,
                            )
                            .await?;
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, index, "message unreadable");
                            session.retrieve_failed();
                        }
                    }
                }
                Event::Quit { deletions } => {
                    let ok = match maildrop.take() {
                        Some(drop) => match drop.commit(&deletions).await {
                            Ok(()) => {
                                tracing::info!(deleted = deletions.len(), "update");
                                true
                            }
                            Err(err) => {
                                tracing::error!(error = %err, "deletions not committed");
                                false
                            }
                        },
                        None => deletions.is_empty(),
                    };
                    session.update_finished(ok);
                }
                Event::StartTls => {
                    start_tls = true;
                    break;
                }
            }
        }
        session.append_output(&mut pending);
        if !pending.is_empty() {
            stream.write_all(&pending, io_timeout).await?;
            pending.clear();
            // Kept for the next reply when small; an idle session keeps no
            // large buffer.
            if pending.capacity() > KEPT_PENDING {
                pending = Vec::new();
            }
        }
        if start_tls {
            let Some(tls) = &ctx.tls else { break };
            // RFC 2595 §4: the session dropped any input pipelined after STLS.
            if let Err(err) =
                Box::pin(stream.upgrade(tls.acceptor(), settings.command_timeout)).await
            {
                tracing::info!(error = %err, "TLS handshake failed");
                break;
            }
            metrics::counter!("mailroom_tls_sessions_total", "service" => kind.name()).increment(1);
            session.tls_established();
            continue;
        }
        if session.is_closed() {
            break;
        }
        // The reply is on its way: the store may read ahead meanwhile.
        if let Some(drop) = &maildrop {
            drop.idle();
        }
        // Input first: the signal is looked at while the session waits, and
        // here for a client whose commands are always already waiting.
        let input = if shutdown.is_triggered() {
            None
        } else {
            tokio::select! {
                biased;
                input = stream.read_into(&mut inbuf, idle.as_mut(), io_timeout) => Some(input?),
                () = &mut stop => None,
            }
        };
        match input {
            Some(Input::Data(n)) => session.handle_input(&inbuf[..n]),
            Some(Input::Closed) => break,
            Some(Input::TimedOut) => session.timed_out(),
            None => {
                // RFC 1939 has no shutdown reply code; closing without UPDATE
                // deletes nothing.
                session.shutdown();
                let out = session.take_output();
                let _ = stream.write_all(&out, Duration::from_secs(5)).await;
                break;
            }
        }
    }
    stream.close().await;
    Ok(())
}

/// Output is written once this much is pending.
const FLUSH_AT: usize = 32 * 1024;
/// Output buffer capacity a session keeps between replies (a small
/// message and its status line fit).
const KEPT_PENDING: usize = 8 * 1024;

/// Appends one message, byte-stuffed (RFC 1939 §3), with the terminating
/// ".CRLF", to `out`, writing whenever [`FLUSH_AT`] octets are pending; for
/// TOP only the header and the first `top_lines` body lines. What remains
/// in `out` is the caller's to write.
async fn send_message(
    stream: &mut Stream,
    out: &mut Vec<u8>,
    body: MessageBody,
    size: u64,
    top_lines: Option<u64>,
    timeout: Duration,
) -> std::io::Result<()> {
    const CHUNK: usize = 64 * 1024;
    let mut encoder = Encoder {
        stuffer: ByteStuffer::new(),
        top: top_lines.map(TopFilter::new),
    };
    match body {
        // Already in memory (most messages): stuffed straight from the
        // store's buffer.
        MessageBody::Whole(bytes) => {
            for piece in bytes.chunks(CHUNK) {
                if encoder.push(stream, out, piece, timeout).await? {
                    break;
                }
            }
        }
        MessageBody::Stream(mut reader) => {
            // Sized to the message when it is small; `size + 1` lets the
            // first read also see end of file.
            let want = usize::try_from(size).map_or(CHUNK, |s| s.saturating_add(1).min(CHUNK));
            let mut buf = vec![0u8; want];
            out.reserve(want + want / 32 + 8);
            loop {
                let n = reader.read(&mut buf).await?;
                if n == 0 || encoder.push(stream, out, &buf[..n], timeout).await? {
                    break;
                }
            }
        }
    }
    encoder.stuffer.finish(out);
    Ok(())
}

/// The message encoder of one RETR or TOP.
struct Encoder {
    stuffer: ByteStuffer,
    top: Option<TopFilter>,
}

impl Encoder {
    /// Encodes the next piece of the message into `out`, writing once
    /// [`FLUSH_AT`] octets are pending. True once TOP has all it sends.
    async fn push(
        &mut self,
        stream: &mut Stream,
        out: &mut Vec<u8>,
        piece: &[u8],
        timeout: Duration,
    ) -> std::io::Result<bool> {
        let piece = match self.top.as_mut() {
            Some(filter) => filter.push(piece),
            None => piece,
        };
        self.stuffer.push(piece, out);
        if out.len() >= FLUSH_AT {
            stream.write_all(out, timeout).await?;
            out.clear();
        }
        Ok(self.top.as_ref().is_some_and(|f| f.done()))
    }
}

async fn login(
    ctx: &Context,
    peer: SocketAddr,
    user: &str,
    proof: Proof,
) -> Result<Box<dyn Maildrop>, LoginFailure> {
    let name = match auth::verify(ctx, peer.ip(), user, proof).await {
        Verdict::Accepted(name) => name,
        Verdict::Rejected | Verdict::Blocked => return Err(LoginFailure::BadCredentials),
        Verdict::Unavailable => return Err(LoginFailure::TemporaryFailure),
    };
    match ctx.store.open_maildrop(&name).await {
        Ok(drop) => Ok(drop),
        Err(StoreError::Locked) => Err(LoginFailure::InUse),
        Err(err) => {
            tracing::error!(error = %err, "maildrop could not be opened");
            Err(LoginFailure::TemporaryFailure)
        }
    }
}
