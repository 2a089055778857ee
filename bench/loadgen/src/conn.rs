//! A buffered TCP connection that reads CRLF lines and dot-terminated
//! bodies (POP3 multi-line responses, SMTP DATA) without per-byte work:
//! lines are found with `memchr`, bodies by searching for `"\n."` only, so a
//! 2 KB message costs a couple of vectorised scans.

use std::net::SocketAddr;

use anyhow::{Context as _, Result, bail};
use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How much spare room each read offers the kernel.
const READ_SIZE: usize = 64 * 1024;
/// Consumed bytes are dropped from the front of the buffer once there are
/// this many (or when everything has been consumed).
const COMPACT_AT: usize = 32 * 1024;
/// How long one read may wait for the server.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// A line longer than this is a protocol error, not a reason to grow forever.
const MAX_LINE: usize = 64 * 1024;

/// The socket under a [`Conn`].
enum Transport {
    /// Driven by the tokio runtime: many connections on one thread.
    Event(TcpStream),
    /// Blocking reads and writes on the calling thread, for a load of one
    /// connection: a reply wakes the reader directly, with no event loop
    /// (no epoll round) in between, as in a simple mail client.
    Blocking(std::net::TcpStream),
    /// Like `Blocking`, but a read that finds nothing tries again at once
    /// instead of sleeping (busy-polling, as sockperf's `--busy-poll` and
    /// netperf's latency tests do): the client is awake when the reply
    /// lands, so neither side pays for waking it. It keeps one CPU busy.
    Spinning(std::net::TcpStream),
}

/// One connection with its read buffer.
pub(crate) struct Conn {
    stream: Transport,
    /// Initialised storage, grown by `fill`; input occupies `pos..end`.
    buf: Vec<u8>,
    /// Start of the unconsumed input in `buf`.
    pos: usize,
    /// End of the input read so far.
    end: usize,
}

impl Conn {
    /// Connects to `addr` with Nagle off (commands are small and sent one
    /// write at a time).
    pub(crate) async fn connect(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        Ok(Conn::new(stream))
    }

    /// Connects to `addr` for blocking use (see [`Transport::Blocking`]),
    /// or busy-polling with `spin` ([`Transport::Spinning`]); the async
    /// methods then complete without ever yielding.
    pub(crate) fn connect_blocking(addr: SocketAddr, spin: bool) -> Result<Conn> {
        let stream = std::net::TcpStream::connect_timeout(&addr, READ_TIMEOUT)
            .with_context(|| format!("connecting to {addr}"))?;
        let _ = stream.set_nodelay(true);
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .context("setting a read timeout")?;
        stream
            .set_write_timeout(Some(READ_TIMEOUT))
            .context("setting a write timeout")?;
        if spin {
            stream
                .set_nonblocking(true)
                .context("making the socket non-blocking")?;
            return Ok(Conn::with(Transport::Spinning(stream)));
        }
        Ok(Conn::with(Transport::Blocking(stream)))
    }

    /// Wraps an accepted or connected stream.
    pub(crate) fn new(stream: TcpStream) -> Conn {
        let _ = stream.set_nodelay(true);
        Conn::with(Transport::Event(stream))
    }

    fn with(stream: Transport) -> Conn {
        Conn {
            stream,
            // Grown (and zeroed) by the first read, not for a connection
            // that never reads.
            buf: Vec::new(),
            pos: 0,
            end: 0,
        }
    }

    /// Writes all of `bytes`.
    pub(crate) async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.stream {
            Transport::Event(s) => s.write_all(bytes).await.context("write")?,
            Transport::Blocking(s) => std::io::Write::write_all(s, bytes).context("write")?,
            Transport::Spinning(s) => {
                let mut rest = bytes;
                spin_until(|| {
                    let n = std::io::Write::write(s, rest)?;
                    if n == 0 {
                        return Err(std::io::ErrorKind::WriteZero.into());
                    }
                    rest = &rest[n..];
                    Ok(rest.is_empty().then_some(()))
                })
                .context("write")?;
            }
        }
        Ok(())
    }

    /// True when unconsumed input is buffered (a pipelined peer).
    pub(crate) fn has_buffered(&self) -> bool {
        self.pos < self.end
    }

    /// Reads more input after the unconsumed part; an error at end of stream.
    async fn fill(&mut self) -> Result<()> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
        } else if self.pos >= COMPACT_AT {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.buf.len() - self.end < READ_SIZE / 2 {
            self.buf.resize(self.buf.len() + READ_SIZE, 0);
        }
        let room = &mut self.buf[self.end..];
        // A server that never answers (a handshake lost in a full accept
        // queue, say) fails the operation instead of hanging the load.
        let timed_out = || anyhow::anyhow!("no data from the server within {READ_TIMEOUT:?}");
        let n = match &mut self.stream {
            Transport::Event(s) => tokio::time::timeout(READ_TIMEOUT, s.read(room))
                .await
                .map_err(|_| timed_out())?
                .context("read")?,
            Transport::Blocking(s) => match std::io::Read::read(s, room) {
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(timed_out());
                }
                other => other.context("read")?,
            },
            Transport::Spinning(s) => {
                spin_until(|| std::io::Read::read(s, room).map(Some)).context("read")?
            }
        };
        if n == 0 {
            bail!("connection closed by the peer");
        }
        self.end += n;
        Ok(())
    }

    /// The next line without its line end (CRLF, or a bare LF), consumed.
    /// `None` when the peer closed the connection before a new line began.
    pub(crate) async fn line_or_eof(&mut self) -> Result<Option<&[u8]>> {
        let mut searched = self.pos;
        let end = loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[searched..self.end]) {
                break searched + i;
            }
            if self.end - self.pos > MAX_LINE {
                bail!("line longer than {MAX_LINE} octets");
            }
            let offset = searched - self.pos;
            let empty = !self.has_buffered();
            if let Err(e) = self.fill().await {
                if empty {
                    return Ok(None);
                }
                return Err(e);
            }
            searched = self.pos + offset;
        };
        let start = self.pos;
        self.pos = end + 1;
        let line = &self.buf[start..end];
        Ok(Some(line.strip_suffix(b"\r").unwrap_or(line)))
    }

    /// The next line, consumed; an error if the peer closed the connection.
    pub(crate) async fn line(&mut self) -> Result<&[u8]> {
        match self.line_or_eof().await? {
            Some(line) => Ok(line),
            None => bail!("connection closed by the peer"),
        }
    }

    /// Reads a dot-terminated body whose first line starts at the current
    /// position (RFC 1939 §3 / RFC 5321 §4.5.2) and returns its octets after
    /// un-stuffing, line ends included, the terminating ".CRLF" excluded.
    ///
    /// Only line starts that hold a '.' are looked at: the body is searched
    /// for `"\n."`, everything in between is counted in bulk.
    pub(crate) async fn dot_body(&mut self) -> Result<u64> {
        let mut octets: u64 = 0;
        loop {
            // At a line start. Any well-formed body has at least 3 more
            // octets from here (at worst the terminator ".\r\n").
            while self.end - self.pos < 3 {
                self.fill().await?;
            }
            let head = &self.buf[self.pos..self.pos + 3];
            if head[0] == b'.' {
                if head[1] == b'\r' && head[2] == b'\n' {
                    self.pos += 3;
                    return Ok(octets);
                }
                // A stuffed dot: not part of the message.
                self.pos += 1;
            }
            // Skip to the next line start that holds a '.'.
            loop {
                if let Some(i) = memmem::find(&self.buf[self.pos..self.end], b"\n.") {
                    octets += (i + 1) as u64;
                    self.pos += i + 1;
                    break;
                }
                // Count all but a final '\n', which may precede a '.'.
                let avail = self.end - self.pos;
                let keep = usize::from(self.buf[..self.end].last() == Some(&b'\n'));
                octets += (avail - keep) as u64;
                self.pos += avail - keep;
                self.fill().await?;
            }
        }
    }

    /// Shuts the write side down (after QUIT), ignoring errors.
    pub(crate) async fn close(mut self) {
        match &mut self.stream {
            Transport::Event(s) => {
                let _ = s.shutdown().await;
            }
            Transport::Blocking(s) | Transport::Spinning(s) => {
                let _ = s.shutdown(std::net::Shutdown::Write);
            }
        }
    }
}

/// Runs `step` until it returns `Some`, again at once whenever the socket
/// would block (see [`Transport::Spinning`]), for up to [`READ_TIMEOUT`].
fn spin_until<T>(mut step: impl FnMut() -> std::io::Result<Option<T>>) -> std::io::Result<T> {
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    let mut tries = 0u32;
    loop {
        match step() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::hint::spin_loop();
                tries = tries.wrapping_add(1);
                if tries.is_multiple_of(4096) && std::time::Instant::now() > deadline {
                    return Err(std::io::ErrorKind::TimedOut.into());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tokio::net::TcpListener;

    /// Sends `chunks` (one write each, with a yield between) to a fresh
    /// connection and returns what `read` makes of it.
    async fn feed<T>(chunks: Vec<Vec<u8>>, read: impl AsyncFnOnce(&mut Conn) -> T) -> T {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for c in chunks {
                s.write_all(&c).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        });
        let mut conn = Conn::connect(addr).await.unwrap();
        let out = read(&mut conn).await;
        writer.await.unwrap();
        out
    }

    fn splits(data: &[u8], step: usize) -> Vec<Vec<u8>> {
        data.chunks(step).map(<[u8]>::to_vec).collect()
    }

    const RESPONSE: &[u8] =
        b"+OK 30 octets\r\n..dot\r\nplain\r\n..\r\n\r\n...two\r\nend\r\n.\r\n+OK next\r\n";

    #[tokio::test]
    async fn body_octets_are_unstuffed_whatever_the_splits() {
        // Un-stuffed: ".dot\r\nplain\r\n.\r\n\r\n..two\r\nend\r\n" = 30.
        for step in [1, 2, 3, 5, 7, RESPONSE.len()] {
            let (status, octets, next) = feed(splits(RESPONSE, step), async |c: &mut Conn| {
                let status = c.line().await.unwrap().to_vec();
                let octets = c.dot_body().await.unwrap();
                let next = c.line().await.unwrap().to_vec();
                (status, octets, next)
            })
            .await;
            assert_eq!(status, b"+OK 30 octets");
            assert_eq!(octets, 30, "step {step}");
            assert_eq!(next, b"+OK next");
        }
    }

    /// The busy-polling transport reads the same, from a peer that writes
    /// in pieces with pauses (reads that find nothing in between), and
    /// sends a command the peer receives whole.
    #[tokio::test]
    async fn busy_polling_reads_what_arrives_in_pieces() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            for piece in splits(RESPONSE, 7) {
                std::io::Write::write_all(&mut s, &piece).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            let mut command = [0u8; 6];
            std::io::Read::read_exact(&mut s, &mut command).unwrap();
            command
        });
        let mut conn = Conn::connect_blocking(addr, true).unwrap();
        assert!(matches!(conn.stream, Transport::Spinning(_)));
        assert_eq!(conn.line().await.unwrap(), b"+OK 30 octets");
        assert_eq!(conn.dot_body().await.unwrap(), 30);
        assert_eq!(conn.line().await.unwrap(), b"+OK next");
        conn.send(b"QUIT\r\n").await.unwrap();
        assert_eq!(&peer.join().unwrap(), b"QUIT\r\n");
    }

    #[tokio::test]
    async fn empty_body_and_eof() {
        let data = b"+OK\r\n.\r\n".to_vec();
        let (octets, eof) = feed(splits(&data, 1), async |c: &mut Conn| {
            c.line().await.unwrap();
            let octets = c.dot_body().await.unwrap();
            let eof = c.line_or_eof().await.unwrap().is_none();
            (octets, eof)
        })
        .await;
        assert_eq!(octets, 0);
        assert!(eof);
    }

    #[tokio::test]
    async fn long_bodies_cross_compaction() {
        let mut data = b"+OK\r\n".to_vec();
        let mut want = 0u64;
        for i in 0..5000 {
            let line = if i % 7 == 0 {
                format!("..{i} starts with a dot\r\n")
            } else {
                format!("line {i} of a long body\r\n")
            };
            want += line.len() as u64 - u64::from(i % 7 == 0);
            data.extend_from_slice(line.as_bytes());
        }
        data.extend_from_slice(b".\r\n");
        let octets = feed(splits(&data, 4093), async |c: &mut Conn| {
            c.line().await.unwrap();
            c.dot_body().await.unwrap()
        })
        .await;
        assert_eq!(octets, want);
    }
}
