//! Writes a benchmark maildrop straight into a Maildir, in the form each
//! server stores itself:
//!
//! - mailroom: CRLF line ends, `new/<secs>.M<usecs>P<pid>Q<i>.bench,S=<size>`;
//! - Dovecot: LF line ends, as its LDA/LMTP store them, named
//!   `new/<secs>.M<usecs>P<pid>.bench,S=<LF size>,W=<CRLF size>` (the sizes
//!   Dovecot itself puts in the names it writes).
//!
//! `<secs>` counts up one second per message (oldest first) and `<usecs>`
//! is pseudo-random, as in names written by real deliveries. It matters:
//! Dovecot keys its uidlist by a PJW hash of the name, and names whose
//! seconds and `M` field both count up with the message number (an earlier
//! version of this generator) collide into ~1000 buckets for 5000 messages,
//! which made every Dovecot login spend ~150 ms of CPU in
//! `maildir_filename_base_cmp`. With random microseconds the 5000 names
//! hash to ~4995 distinct values.
//!
//! Every message is exactly `size` octets in its CRLF form (what STAT, LIST
//! and RETR count for both servers) and has one body line that starts with
//! a '.', so both servers byte-stuff it on RETR.

use std::fs;
use std::path::Path;

use anyhow::{Context as _, Result};

/// Which server's storage conventions to follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Layout {
    /// CRLF files named `…,S=<size>`.
    Mailroom,
    /// LF files named `…,S=<LF size>,W=<CRLF size>`.
    Dovecot,
}

/// Message `i` in its CRLF form, exactly `size` octets (or its header, if
/// that is longer).
pub(crate) fn message(i: usize, size: usize) -> Vec<u8> {
    let mut m = format!(
        "Return-Path: <bench@example.test>\r\n\
         From: Bench <bench@example.test>\r\n\
         To: Alice <alice@example.test>\r\n\
         Subject: benchmark message {i}\r\n\
         Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n\
         Message-ID: <{i}.bench@example.test>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         .A line that starts with a dot, so RETR must byte-stuff it.\r\n"
    )
    .into_bytes();
    const LINE: &[u8] =
        b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod t";
    while m.len() + 2 < size {
        let take = (size - m.len() - 2).min(LINE.len());
        m.extend_from_slice(&LINE[..take]);
        m.extend_from_slice(b"\r\n");
    }
    // 1 or 2 octets short (a line needs 3): lengthen the dotted line.
    let at = memchr::memmem::find(&m, b"byte-stuff it.").map_or(0, |p| p + 13);
    while m.len() < size {
        m.insert(at, b'.');
    }
    m
}

/// `message` with LF line ends.
fn to_lf(crlf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(crlf.len());
    let mut rest = crlf;
    while let Some(i) = memchr::memmem::find(rest, b"\r\n") {
        out.extend_from_slice(&rest[..i]);
        out.push(b'\n');
        rest = &rest[i + 2..];
    }
    out.extend_from_slice(rest);
    out
}

/// Creates `dir/{tmp,new,cur}` and `count` messages in `new/`; returns the
/// octets written.
pub(crate) fn write(dir: &Path, count: usize, size: usize, layout: Layout) -> Result<u64> {
    for sub in ["tmp", "new", "cur"] {
        fs::create_dir_all(dir.join(sub)).with_context(|| format!("creating {}", dir.display()))?;
    }
    let pid = std::process::id();
    let mut total = 0u64;
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
    for i in 0..count {
        // One second apart, oldest first: both servers number by age.
        let secs = 1_700_000_000 + i;
        let usecs = random.next() % 1_000_000;
        let crlf = message(i, size);
        let (name, data) = match layout {
            Layout::Mailroom => (
                format!("{secs}.M{usecs}P{pid}Q{i}.bench,S={}", crlf.len()),
                crlf,
            ),
            Layout::Dovecot => {
                let lf = to_lf(&crlf);
                (
                    format!(
                        "{secs}.M{usecs}P{pid}.bench,S={},W={}",
                        lf.len(),
                        crlf.len()
                    ),
                    lf,
                )
            }
        };
        let path = dir.join("new").join(name);
        fs::write(&path, &data).with_context(|| format!("writing {}", path.display()))?;
        total += data.len() as u64;
    }
    Ok(total)
}

/// A tiny deterministic generator (xorshift64), so that runs are
/// repeatable without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_sizes_and_one_dotted_line() {
        let header = message(7, 0).len();
        for size in [0, header + 1, header + 2, header + 3, 2048, 4096] {
            let m = message(7, size);
            assert_eq!(m.len(), size.max(header), "size {size}");
            assert!(m.ends_with(b"\r\n"));
            assert_eq!(memchr::memmem::find_iter(&m, b"\r\n.").count(), 1);
            let lf = to_lf(&m);
            assert!(!lf.contains(&b'\r'));
            let lines = m.iter().filter(|&&b| b == b'\n').count();
            assert_eq!(lf.len(), m.len() - lines);
        }
    }

    /// Dovecot's `maildir_filename_base_hash` (a PJW hash up to the ':').
    fn dovecot_hash(name: &str) -> u32 {
        let mut h: u32 = 0;
        for &b in name.as_bytes().iter().take_while(|&&b| b != b':') {
            h = (h << 4).wrapping_add(u32::from(b));
            let g = h & 0xf000_0000;
            if g != 0 {
                h ^= g >> 24;
                h ^= g;
            }
        }
        h
    }

    #[test]
    fn dovecot_names_do_not_collide() {
        let dir = std::env::temp_dir().join(format!("loadgen-names-{}", std::process::id()));
        write(&dir, 2000, 300, Layout::Dovecot).unwrap_or_default();
        let names: Vec<String> = fs::read_dir(dir.join("new"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(names.len(), 2000);
        let distinct: std::collections::HashSet<u32> =
            names.iter().map(|n| dovecot_hash(n)).collect();
        assert!(distinct.len() > 1990, "{} distinct hashes", distinct.len());
    }
}
