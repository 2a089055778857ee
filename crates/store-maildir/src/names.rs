//! Maildir file names: making unique ones, and reading size and uid back
//! out of names other agents may have written.
//!
//! Maildir spec (cr.yp.to/proto/maildir.html): a name is
//! `time.unique.host`, unique per host and instant; after a move to `cur/`
//! a reader appends `:2,<flags>`. Dovecot adds `,S=<size>` (and `,W=`)
//! fields before the `:`, which lets a listing skip the stat of every file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Builds a unique name for a new message of `size` octets:
/// `<secs>.M<micros>P<pid>Q<counter>.<host>,S=<size>`. Time, pid and a
/// process-wide counter make it unique among every process on this host,
/// including one restarted with the same pid.
pub(crate) fn unique(host: &str, size: u64) -> String {
    format!("{},S={size}", unique_base(host))
}

/// The unique part of a new message's name,
/// `<secs>.M<micros>P<pid>Q<counter>.<host>`, for writers that learn the
/// size only once the message is written (`mailroom fetch`): they write
/// `tmp/<base>` and rename it to `new/<base>,S=<size>`. `host` must come
/// from [`sanitise_host`].
pub fn unique_base(host: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // A clock before 1970 is a broken host; 0 still gives a unique name.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.M{}P{}Q{n}.{host}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
    )
}

/// The host part of a name. Maildir spec: "replace / with \057 and : with
/// \072"; we also encode `,` (it starts our `,S=` field, as in Dovecot), `\`
/// itself, and anything outside printable ASCII, so names stay valid uids.
pub fn sanitise_host(host: &str) -> String {
    let mut out = String::new();
    for b in host.bytes() {
        if (0x21..=0x7e).contains(&b) && !b"/:,\\".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\{b:03o}"));
        }
    }
    if out.is_empty() {
        out.push_str("localhost");
    }
    out
}

/// What a listing learns from a file name alone.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct NameInfo<'a> {
    /// Everything before the first `,` or `:`: the same in `new/` and
    /// `cur/`, whatever flags a reader added.
    pub(crate) base: &'a [u8],
    /// `S=` when present and numeric.
    pub(crate) size: Option<u64>,
    /// The leading decimal seconds, for ordering oldest first.
    pub(crate) secs: Option<u64>,
}

pub(crate) fn parse(name: &[u8]) -> NameInfo<'_> {
    let before_info = match name.iter().position(|&b| b == b':') {
        Some(i) => &name[..i],
        None => name,
    };
    let mut fields = before_info.split(|&b| b == b',');
    let base = fields.next().unwrap_or_default();
    let size = fields
        .find_map(|f| f.strip_prefix(b"S="))
        .and_then(|digits| std::str::from_utf8(digits).ok()?.parse().ok());
    let digits = base.iter().take_while(|b| b.is_ascii_digit()).count();
    let secs = std::str::from_utf8(&base[..digits])
        .ok()
        .and_then(|s| s.parse().ok());
    NameInfo { base, size, secs }
}

/// The microseconds of a `<secs>.M<micros>…` name (ours, and the Maildir
/// convention others follow), 0 for a name without them: orders the
/// messages of one second by arrival, which comparing the names as text
/// does not (`M99999` sorts after `M100000`).
pub(crate) fn micros(base: &[u8]) -> u32 {
    let secs = base.iter().take_while(|b| b.is_ascii_digit()).count();
    let Some(rest) = base[secs..].strip_prefix(b".M") else {
        return 0;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits])
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// The POP3 unique id for a base name. RFC 1939 §7: "The unique-id of a
/// message is an arbitrary server-determined string, consisting of one to 70
/// characters in the range 0x21 to 0x7E". Our own names always qualify; any
/// other base is replaced by its 16-digit FNV-1a hash, which (unlike std's
/// `DefaultHasher`) never changes between builds.
pub(crate) fn uid(base: &[u8]) -> String {
    if (1..=70).contains(&base.len()) && base.iter().all(|b| (0x21..=0x7e).contains(b)) {
        // All bytes are ASCII: from_utf8 cannot fail.
        if let Ok(s) = std::str::from_utf8(base) {
            return s.to_string();
        }
    }
    format!("{:016x}", fnv1a64(base))
}

/// FNV-1a, 64 bits (Fowler, Noll, Vo; draft-eastlake-fnv): stable, simple,
/// well-spread for short strings. Not cryptographic: uids need stability,
/// not secrecy.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn fnv_reference_vectors() {
        // From the FNV reference test suite (draft-eastlake-fnv, fnv64a).
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn parse_table() {
        // name, base, size, secs
        type Row = (&'static [u8], &'static [u8], Option<u64>, Option<u64>);
        let rows: &[Row] = &[
            (
                b"1700000000.M1P2Q3.host,S=120",
                b"1700000000.M1P2Q3.host",
                Some(120),
                Some(1700000000),
            ),
            (
                b"1700000000.M1P2Q3.host,S=120:2,S",
                b"1700000000.M1P2Q3.host",
                Some(120),
                Some(1700000000),
            ),
            (b"1.x,S=5,W=7:2,RS", b"1.x", Some(5), Some(1)),
            (b"1.x,W=7,S=5", b"1.x", Some(5), Some(1)),
            (b"1.x:2,", b"1.x", None, Some(1)),
            (b"1.x:2,S=9", b"1.x", None, Some(1)), // S= after ':' is a flag, not a size
            (b"mutt-abc", b"mutt-abc", None, None),
            (b"1.x,S=notanumber", b"1.x", None, Some(1)),
            (b"", b"", None, None),
        ];
        for (name, base, size, secs) in rows {
            let info = parse(name);
            assert_eq!(
                info,
                NameInfo {
                    base,
                    size: *size,
                    secs: *secs
                },
                "{}",
                String::from_utf8_lossy(name)
            );
        }
    }

    #[test]
    fn micros_of_names() {
        assert_eq!(micros(b"1700000000.M57859P1Q2.host"), 57859);
        assert_eq!(micros(b"1700000000.M100000P1Q3.host"), 100000);
        assert_eq!(micros(b"1700000000.mutt-x.host"), 0);
        assert_eq!(micros(b"1700000000.M.host"), 0);
        assert_eq!(micros(b"mutt-abc"), 0);
        assert_eq!(micros(b""), 0);
    }

    #[test]
    fn unique_names_parse_back() {
        let a = unique(&sanitise_host("mx.example.org"), 42);
        let b = unique(&sanitise_host("mx.example.org"), 42);
        assert_ne!(a, b);
        let info = parse(a.as_bytes());
        assert_eq!(info.size, Some(42));
        assert!(info.secs.is_some());
        assert_eq!(uid(info.base).as_bytes(), info.base);
    }

    #[test]
    fn hosts_are_sanitised() {
        assert_eq!(sanitise_host("a/b:c,d"), "a\\057b\\072c\\054d");
        assert_eq!(sanitise_host("mx.example.org"), "mx.example.org");
        assert_eq!(sanitise_host("a b"), "a\\040b");
        assert_eq!(sanitise_host(""), "localhost");
    }

    #[test]
    fn odd_bases_are_hashed() {
        let long = "x".repeat(71);
        assert_eq!(uid(long.as_bytes()).len(), 16);
        assert_eq!(uid("x".repeat(70).as_bytes()), "x".repeat(70));
        assert_eq!(uid(b"a b"), format!("{:016x}", fnv1a64(b"a b")));
        assert_eq!(uid(b"\xff"), format!("{:016x}", fnv1a64(b"\xff")));
        assert_eq!(uid(b""), "cbf29ce484222325");
    }

    proptest! {
        #[test]
        fn uids_are_always_valid(name in prop::collection::vec(any::<u8>(), 0..100)) {
            let u = uid(parse(&name).base);
            prop_assert!((1..=70).contains(&u.len()));
            prop_assert!(u.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        }
    }
}
