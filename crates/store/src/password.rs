//! Password hashing: Argon2id in PHC string form, shared by `user add` and
//! every AUTH path.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes `password` with Argon2id (the crate's default parameters, which
/// follow OWASP's recommendation) and a random salt.
pub fn hash(password: &str) -> Result<String, HashError> {
    let hashed: Result<PasswordHash, _> = Argon2::default().hash_password(password.as_bytes());
    hashed
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// True when `password` matches the PHC `stored` hash. A malformed stored
/// hash never matches.
pub fn verify(stored: &str, password: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// The working memory of Argon2 verifications, kept by a thread that runs
/// many of them, and released ([`Argon2Memory::release`]) when it goes idle.
///
/// The area is reserved at no less than [`MIN_MAPPED_BLOCKS`] so that the
/// allocator maps it on its own and unmaps it when it is freed: glibc does
/// that above 32 MiB whatever it has learned, while a smaller area, freed,
/// raises its mapping threshold and the next one comes from the heap, where
/// small allocations land in it and keep it resident (a burst of logins
/// left hundreds of MiB that way). Only the blocks a check uses are
/// touched, so the unused reservation costs no memory.
#[derive(Default)]
pub struct Argon2Memory(Vec<argon2::Block>);

/// The least working area reserved, in 1 KiB blocks (33 MiB).
const MIN_MAPPED_BLOCKS: usize = 33 * 1024;

impl Argon2Memory {
    /// Gives the working area back to the system.
    pub fn release(&mut self) {
        self.0 = Vec::new();
    }

    /// Bytes of working area held.
    pub fn held(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<argon2::Block>()
    }
}

impl std::fmt::Debug for Argon2Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Argon2Memory({} blocks)", self.0.len())
    }
}

/// Largest working area [`verify_in`] keeps (128 MiB of 1 KiB blocks:
/// Dovecot's default is 64 MiB, ours 19 MiB); a stored hash asking for more
/// is verified in memory of its own, freed afterwards.
const MAX_KEPT_BLOCKS: usize = 128 * 1024;

/// [`verify`], in `memory` (grown as the stored parameters need).
pub fn verify_in(stored: &str, password: &str, memory: &mut Argon2Memory) -> bool {
    use argon2::{Algorithm, Params, Version};
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let blocks = params.block_count();
    if blocks > MAX_KEPT_BLOCKS {
        return verify(stored, password);
    }
    if memory.0.len() < blocks {
        if memory.0.capacity() < blocks {
            memory.0 = Vec::with_capacity(blocks.max(MIN_MAPPED_BLOCKS));
        }
        memory.0.resize(blocks, argon2::Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let hashed = argon2::Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt.as_ref(),
        &mut out,
        &mut memory.0[..blocks],
    );
    // Constant time: the comparison must not tell how much matched.
    hashed.is_ok()
        && out.len() == expected.len()
        && out
            .iter()
            .zip(expected.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let h = hash("correct horse").unwrap_or_default();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify(&h, "correct horse"));
        assert!(!verify(&h, "wrong"));
        assert!(!verify("not a hash", "correct horse"));
    }

    #[test]
    fn verify_in_agrees_with_verify_and_reuses_its_memory() {
        let mut memory = Argon2Memory::default();
        let h = hash("correct horse").unwrap_or_default();
        assert!(verify_in(&h, "correct horse", &mut memory));
        let kept = memory.0.len();
        assert!(kept > 0);
        assert!(memory.held() >= MIN_MAPPED_BLOCKS * 1024);
        assert!(!verify_in(&h, "correct horsf", &mut memory));
        assert!(!verify_in(&h, "", &mut memory));
        assert!(!verify_in("not a hash", "correct horse", &mut memory));
        // Other parameters and variants, as another tool may have written
        // them (argon2i, argon2d, version 0x10, other costs).
        let salt = "c29tZXNhbHRzb21lc2FsdA";
        for (alg, version, params) in [
            (
                argon2::Algorithm::Argon2i,
                argon2::Version::V0x13,
                (64, 3, 1),
            ),
            (
                argon2::Algorithm::Argon2d,
                argon2::Version::V0x10,
                (32, 1, 2),
            ),
            (
                argon2::Algorithm::Argon2id,
                argon2::Version::V0x13,
                (19456, 2, 1),
            ),
        ] {
            use argon2::password_hash::PasswordHasher;
            let params =
                argon2::Params::new(params.0, params.1, params.2, None).unwrap_or_default();
            let hasher = argon2::Argon2::new(alg, version, params);
            let salt = argon2::password_hash::phc::Salt::from_b64(salt).ok();
            let Some(salt) = salt else { panic!("salt") };
            let stored: PasswordHash = hasher
                .hash_password_with_salt(b"pw", &salt)
                .unwrap_or_else(|e| panic!("{e}"));
            let stored = stored.to_string();
            assert!(verify(&stored, "pw"), "{stored}");
            assert!(verify_in(&stored, "pw", &mut memory), "{stored}");
            assert!(!verify_in(&stored, "px", &mut memory), "{stored}");
        }
        assert_eq!(memory.0.len(), kept.max(19456));
    }
}
