//! Socket helpers shared by the SMTP and POP3 drivers.

use std::io;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Size of the transient read buffer. It is allocated only while bytes are
/// ready, so an idle connection holds no read buffer at all.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// The outcome of waiting for client bytes: the bytes themselves, or (for
/// [`crate::stream::Stream::read_into`]) how many were read.
pub(crate) enum Input<D = Vec<u8>> {
    /// Bytes arrived.
    Data(D),
    /// The client closed the connection.
    Closed,
    /// Nothing arrived within the timeout.
    TimedOut,
}

/// Waits up to `timeout` for bytes from `stream`.
pub(crate) async fn read_some(stream: &TcpStream, timeout: Duration) -> io::Result<Input> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, stream.readable()).await {
            Err(_) => return Ok(Input::TimedOut),
            Ok(ready) => ready?,
        }
        // Uninitialised capacity: the kernel fills it, nothing zeroes it
        // first.
        let mut buf = Vec::with_capacity(READ_CHUNK);
        match stream.try_read_buf(&mut buf) {
            Ok(0) => return Ok(Input::Closed),
            Ok(_) => return Ok(Input::Data(buf)),
            // A spurious readiness: wait again.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Writes all of `bytes`, failing if the client does not take them within
/// `timeout` (a client that never reads must not pin the session forever).
pub(crate) async fn write_all(
    stream: &mut TcpStream,
    bytes: &[u8],
    timeout: Duration,
) -> io::Result<()> {
    match tokio::time::timeout(timeout, stream.write_all(bytes)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client did not read",
        )),
    }
}
