//! The naming rules every engine applies, in one place so that users and
//! queue ids can move between engines and both engines answer alike.

use std::io;

use crate::StoreError;

/// Longest queue id an engine accepts.
pub const MAX_QUEUE_ID_LEN: usize = 128;

/// Checks a user name and returns its canonical (lower-case) form: 1 to 64
/// characters of `[a-z0-9._-]`, not starting with `.` (a hidden file, or
/// `..`) or `-` (an option to a shell tool). The embedded engine makes the
/// name a directory under `mail/`, so this is also what keeps its paths
/// inside the data dir.
pub fn canonical_user_name(name: &str) -> Result<String, StoreError> {
    let lower = name.to_ascii_lowercase();
    let ok = (1..=64).contains(&lower.len())
        && !lower.starts_with(['.', '-'])
        && lower
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(lower)
    } else {
        Err(StoreError::InvalidName(name.escape_debug().to_string()))
    }
}

/// Queue ids: 1–128 of `[A-Za-z0-9._-]`, no leading dot (the embedded
/// engine's ids are file names).
pub fn valid_queue_id(id: &str) -> bool {
    (1..=MAX_QUEUE_ID_LEN).contains(&id.len())
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Refuses an empty stored value (a hash, a secret) or one containing a
/// line break or NUL: the embedded engine's files are line-based, and the
/// other engines keep the same rule so both accept the same users.
pub fn check_value(what: &str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() || value.contains(['\n', '\r', '\0']) {
        // The value itself is never echoed: it is a hash or a secret.
        return Err(StoreError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} is empty or contains a line break"),
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        assert_eq!(canonical_user_name("Alice.B-c_1").unwrap(), "alice.b-c_1");
        for bad in ["", ".x", "-x", "a/b", "a b", "ä", &"a".repeat(65)] {
            assert!(canonical_user_name(bad).is_err(), "{bad:?}");
        }
        assert!(canonical_user_name(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn queue_ids() {
        assert!(valid_queue_id("Ab.9_-"));
        for bad in ["", ".a", "a/b", "a b", &"a".repeat(129)] {
            assert!(!valid_queue_id(bad), "{bad:?}");
        }
        assert!(valid_queue_id(&"a".repeat(128)));
    }

    #[test]
    fn stored_values() {
        assert!(check_value("hash", "$argon2id$x").is_ok());
        for bad in ["", "a\nb", "a\rb", "a\0b"] {
            assert!(check_value("hash", bad).is_err(), "{bad:?}");
        }
    }
}
