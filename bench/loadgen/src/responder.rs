//! A trivial in-process POP3 and SMTP responder for `selftest`: it answers
//! from memory, checks nothing, and runs on one thread of its own, so the
//! rates the load generator reaches against it bound what the load
//! generator itself can measure.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use tokio::net::TcpListener;

use crate::conn::Conn;

/// The responder's listening addresses.
pub(crate) struct Responder {
    pub(crate) pop3: SocketAddr,
    pub(crate) smtp: SocketAddr,
}

/// Starts the responder on a new thread with a single-threaded runtime;
/// it serves `messages` messages of `size` octets and lives as long as
/// the process.
pub(crate) fn start(messages: usize, size: usize) -> Result<Responder> {
    let std_pop3 = std::net::TcpListener::bind("127.0.0.1:0").context("bind")?;
    let std_smtp = std::net::TcpListener::bind("127.0.0.1:0").context("bind")?;
    std_pop3.set_nonblocking(true)?;
    std_smtp.set_nonblocking(true)?;
    let addrs = Responder {
        pop3: std_pop3.local_addr()?,
        smtp: std_smtp.local_addr()?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut retr = b"+OK message follows\r\n".to_vec();
    retr.extend_from_slice(&stuffed(&crate::maildrop::message(0, size)));
    retr.extend_from_slice(b".\r\n");
    let retr: Arc<[u8]> = retr.into();
    std::thread::Builder::new()
        .name("responder".into())
        .spawn(move || {
            runtime.block_on(async move {
                let (Ok(pop3), Ok(smtp)) = (
                    TcpListener::from_std(std_pop3),
                    TcpListener::from_std(std_smtp),
                ) else {
                    return;
                };
                tokio::spawn(async move {
                    while let Ok((s, _)) = smtp.accept().await {
                        tokio::spawn(smtp_session(Conn::new(s)));
                    }
                });
                while let Ok((s, _)) = pop3.accept().await {
                    tokio::spawn(pop3_session(
                        Conn::new(s),
                        Arc::clone(&retr),
                        messages,
                        size,
                    ));
                }
            });
        })?;
    Ok(addrs)
}

fn stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 8);
    let mut at_line_start = true;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    out
}

/// Answers POP3 commands; replies to pipelined commands go out in one write.
async fn pop3_session(mut conn: Conn, retr: Arc<[u8]>, messages: usize, size: usize) {
    let stat = format!("+OK {messages} {}\r\n", messages * size).into_bytes();
    if conn.send(b"+OK responder ready\r\n").await.is_err() {
        return;
    }
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        let quit = {
            let Ok(Some(line)) = conn.line_or_eof().await else {
                return;
            };
            let verb = line.get(..4).unwrap_or(line).to_ascii_uppercase();
            match &verb[..] {
                b"RETR" => out.extend_from_slice(&retr),
                b"STAT" => out.extend_from_slice(&stat),
                b"CAPA" => out.extend_from_slice(b"+OK\r\nUSER\r\nPIPELINING\r\n.\r\n"),
                b"QUIT" => out.extend_from_slice(b"+OK bye\r\n"),
                _ => out.extend_from_slice(b"+OK\r\n"),
            }
            verb == b"QUIT"
        };
        if quit || !conn.has_buffered() || out.len() >= 32 * 1024 {
            if conn.send(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if quit {
            conn.close().await;
            return;
        }
    }
}

/// Answers SMTP commands; swallows DATA up to the terminator.
async fn smtp_session(mut conn: Conn) {
    if conn.send(b"220 responder ESMTP\r\n").await.is_err() {
        return;
    }
    let mut out = Vec::with_capacity(1024);
    loop {
        let (data, quit) = {
            let Ok(Some(line)) = conn.line_or_eof().await else {
                return;
            };
            let verb = line.get(..4).unwrap_or(line).to_ascii_uppercase();
            match &verb[..] {
                b"EHLO" => out.extend_from_slice(b"250-responder\r\n250 PIPELINING\r\n"),
                b"DATA" => out.extend_from_slice(b"354 go ahead\r\n"),
                b"QUIT" => out.extend_from_slice(b"221 bye\r\n"),
                _ => out.extend_from_slice(b"250 ok\r\n"),
            }
            (verb == b"DATA", verb == b"QUIT")
        };
        if data || quit || !conn.has_buffered() {
            if conn.send(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if data {
            if conn.dot_body().await.is_err() {
                return;
            }
            out.extend_from_slice(b"250 accepted\r\n");
            if !conn.has_buffered() {
                if conn.send(&out).await.is_err() {
                    return;
                }
                out.clear();
            }
        }
        if quit {
            conn.close().await;
            return;
        }
    }
}
