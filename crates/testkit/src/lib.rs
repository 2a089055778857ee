//! Test helpers shared by mailroom's crates. Only ever a dev-dependency.
//!
//! - [`splittings`]: every way to cut an input for chunked-parser tests.
//! - [`dns`]: an in-process DNS server answering from a table (MX, A,
//!   AAAA, TXT, NXDOMAIN, SERVFAIL, timeouts) for routing tests.
//! - [`MemoryQueue`]: an in-memory `QueueStore`.
//! - [`ED25519_PEM`]: a DKIM test key.
//! - [`corpus`]: where the external mail corpora (CPython's email test
//!   data, mail-parser's .eml files) are on this machine.

pub mod corpus;
pub mod dns;
mod queue;

pub use queue::MemoryQueue;

/// An Ed25519 private key in PKCS#8 PEM: RFC 8410 §10.3's example, for
/// DKIM key store and signing tests.
pub const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
    MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
    -----END PRIVATE KEY-----\n";

use rand::{Rng, SeedableRng, rngs::StdRng};

/// Every way to cut `input` into chunks that a parser must treat alike: whole,
/// one byte at a time, every single split point, and `random` random
/// splittings from a fixed seed (so failures reproduce).
pub fn splittings(input: &[u8], random: usize) -> Vec<Vec<&[u8]>> {
    let mut out = vec![vec![input]];
    out.push(input.chunks(1).collect());
    for i in 1..input.len() {
        out.push(vec![&input[..i], &input[i..]]);
    }
    let mut rng = StdRng::seed_from_u64(0x6d61_696c_726f_6f6d);
    for _ in 0..random {
        let mut pieces = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let n = rng.random_range(1..=rest.len().min(64));
            let (head, tail) = rest.split_at(n);
            pieces.push(head);
            rest = tail;
        }
        out.push(pieces);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_splitting_concatenates_to_the_input() {
        let input = b"EHLO x\r\nQUIT\r\n";
        let all = splittings(input, 10);
        assert_eq!(all.len(), 2 + (input.len() - 1) + 10);
        for pieces in all {
            assert_eq!(pieces.concat(), input.to_vec());
        }
    }
}
