//! Identifiers for sessions and accepted messages: unique within a host and
//! sortable by time, short enough for logs and `250 … queued as` replies.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A new id: microseconds since the epoch and a process-wide counter, in
/// base 32 (Crockford alphabet, upper case), plus the pid so two processes
/// on one data dir never collide.
pub fn new_id() -> String {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = String::with_capacity(24);
    push_base32(&mut out, micros, 11);
    push_base32(&mut out, u64::from(count & 0xF_FFFF), 4);
    push_base32(&mut out, u64::from(std::process::id()), 4);
    out
}

fn push_base32(out: &mut String, mut value: u64, digits: usize) {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut buf = [b'0'; 13];
    for slot in buf.iter_mut().take(digits).rev() {
        *slot = ALPHABET[(value & 31) as usize];
        value >>= 5;
    }
    out.extend(buf[..digits].iter().map(|&b| b as char));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_fixed_length() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 19);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}
