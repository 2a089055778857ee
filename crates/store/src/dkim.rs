//! DKIM private keys: what every node that signs must share (DESIGN.md
//! principle 4). Engines keep them; the binary generates them and parses
//! the PEM (`mailroom-mailauth`), the store only holds it.
//!
//! A domain may have several keys (selectors) while a new one is being
//! published; the newest signs. Keys are never changed in place: rotation
//! adds a key under a new selector.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::StoreError;

/// The key's signing algorithm (RFC 6376 §3.3, RFC 8463).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DkimAlgorithm {
    /// rsa-sha256.
    Rsa,
    /// ed25519-sha256.
    Ed25519,
}

impl DkimAlgorithm {
    /// The name engines store: `rsa` or `ed25519` (the `k=` tag).
    pub fn as_str(self) -> &'static str {
        match self {
            DkimAlgorithm::Rsa => "rsa",
            DkimAlgorithm::Ed25519 => "ed25519",
        }
    }

    /// The inverse of [`DkimAlgorithm::as_str`].
    pub fn from_name(name: &str) -> Option<DkimAlgorithm> {
        match name {
            "rsa" => Some(DkimAlgorithm::Rsa),
            "ed25519" => Some(DkimAlgorithm::Ed25519),
            _ => None,
        }
    }
}

/// One stored key.
#[derive(Clone, PartialEq, Eq)]
pub struct DkimKey {
    /// The signing domain (`d=`), lower case.
    pub domain: String,
    /// The selector (`s=`).
    pub selector: String,
    /// What kind of key the PEM holds.
    pub algorithm: DkimAlgorithm,
    /// The private key, PEM.
    pub private_pem: String,
    /// Unix seconds when it was stored.
    pub created: i64,
}

impl std::fmt::Debug for DkimKey {
    // Never the key material, even in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKey")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// What `dkim generate` asks the store to keep.
#[derive(Clone, PartialEq, Eq)]
pub struct NewDkimKey {
    /// The signing domain; the engine lower-cases it.
    pub domain: String,
    /// The selector; a new one for the domain.
    pub selector: String,
    /// What kind of key the PEM holds.
    pub algorithm: DkimAlgorithm,
    /// The private key, PEM.
    pub private_pem: String,
}

impl std::fmt::Debug for NewDkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewDkimKey")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The DKIM keys of every domain.
#[async_trait::async_trait]
pub trait DkimKeyStore: Send + Sync {
    /// Every key, sorted by domain; within a domain the newest (the one
    /// that signs) first.
    async fn dkim_keys(&self) -> Result<Vec<DkimKey>, StoreError>;
    /// Stores a new key durably. [`StoreError::KeyExists`] when the domain
    /// already has the selector (two nodes adding it at once: one wins);
    /// [`StoreError::InvalidKey`] for a bad domain, selector or PEM.
    async fn add_dkim_key(&self, key: NewDkimKey) -> Result<DkimKey, StoreError>;
    /// Removes a key; `false` when there was none.
    async fn delete_dkim_key(&self, domain: &str, selector: &str) -> Result<bool, StoreError>;
}

/// Checks a new key before an engine stores it; returns the domain in
/// lower case. Domain and selector become file names in the embedded
/// engine, so nothing but DNS labels passes.
pub fn check_new_key(key: &NewDkimKey) -> Result<String, StoreError> {
    let domain = key.domain.trim_end_matches('.').to_ascii_lowercase();
    check_domain(&domain)?;
    check_selector(&key.selector)?;
    match pem_algorithm(&key.private_pem) {
        Some(found) if found == key.algorithm => Ok(domain),
        Some(found) => Err(StoreError::InvalidKey(format!(
            "the PEM holds an {} key, not {}",
            found.as_str(),
            key.algorithm.as_str()
        ))),
        None => Err(StoreError::InvalidKey(
            "not a PEM RSA or Ed25519 private key".into(),
        )),
    }
}

/// A domain as keys are filed under: lower-case DNS labels (letters,
/// digits, hyphens), at most 253 octets.
pub fn check_domain(domain: &str) -> Result<(), StoreError> {
    if domain.len() <= 253 && domain.bytes().all(|b| !b.is_ascii_uppercase()) && dns_labels(domain)
    {
        Ok(())
    } else {
        Err(StoreError::InvalidKey(format!("domain {domain:?}")))
    }
}

/// A selector (RFC 6376 §3.1: a dot-atom of DNS labels).
pub fn check_selector(selector: &str) -> Result<(), StoreError> {
    if selector.len() <= 200 && dns_labels(selector) {
        Ok(())
    } else {
        Err(StoreError::InvalidKey(format!("selector {selector:?}")))
    }
}

fn dns_labels(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The algorithm of a PEM private key, from its label and, for PKCS#8,
/// its AlgorithmIdentifier (RFC 5958 §2); `None` when it is neither an RSA
/// nor an Ed25519 key. Needed by the embedded engine, whose files carry
/// only the PEM.
pub fn pem_algorithm(pem: &str) -> Option<DkimAlgorithm> {
    let (label, body) = pem_body(pem)?;
    match label {
        "RSA PRIVATE KEY" => Some(DkimAlgorithm::Rsa),
        "PRIVATE KEY" => {
            let der = STANDARD.decode(body).ok()?;
            match pkcs8_algorithm_oid(&der)? {
                RSA_ENCRYPTION => Some(DkimAlgorithm::Rsa),
                ED25519 => Some(DkimAlgorithm::Ed25519),
                _ => None,
            }
        }
        _ => None,
    }
}

/// rsaEncryption, 1.2.840.113549.1.1.1 (RFC 8017 Appendix C).
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-Ed25519, 1.3.101.112 (RFC 8410 §3).
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// The label and the base64 text (whitespace removed) of the first PEM
/// block (RFC 7468 §2).
fn pem_body(pem: &str) -> Option<(&str, String)> {
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + 11..];
    let label_end = rest.find("-----")?;
    let label = &rest[..label_end];
    let body_and_end = &rest[label_end + 5..];
    let end = body_and_end.find(&format!("-----END {label}-----"))?;
    let body = body_and_end[..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    Some((label, body))
}

/// The OID of `PrivateKeyInfo.privateKeyAlgorithm`: SEQUENCE { INTEGER
/// version, SEQUENCE { OID, … }, … }.
fn pkcs8_algorithm_oid(der: &[u8]) -> Option<&[u8]> {
    let (tag, info, _) = tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, _version, rest) = tlv(info)?;
    if tag != 0x02 {
        return None;
    }
    let (tag, algorithm, _) = tlv(rest)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, oid, _) = tlv(algorithm)?;
    (tag == 0x06).then_some(oid)
}

/// One DER tag-length-value: (tag, value, what follows).
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, tail) = rest.split_at(count);
        rest = tail;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    if rest.len() < len {
        return None;
    }
    let (value, tail) = rest.split_at(len);
    Some((tag, value, tail))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    use mailroom_testkit::ED25519_PEM as ED_PEM;

    #[test]
    fn selectors() {
        for good in ["mailroom", "s2026-11.eu", "a"] {
            assert!(check_selector(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "-bad",
            "bad-",
            "a..b",
            "a/b",
            "a b",
            "ä",
            &"a".repeat(64),
        ] {
            assert!(check_selector(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn algorithms_from_pem() {
        assert_eq!(pem_algorithm(ED_PEM), Some(DkimAlgorithm::Ed25519));
        assert_eq!(
            pem_algorithm("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"),
            Some(DkimAlgorithm::Rsa)
        );
        // PKCS#8 with rsaEncryption: SEQUENCE { INTEGER 0, SEQUENCE { OID, NULL }, OCTET STRING }.
        let mut der = vec![0x30, 0x14, 0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09];
        der.extend_from_slice(RSA_ENCRYPTION);
        der.extend_from_slice(&[0x05, 0x00, 0x04, 0x00]);
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(&der)
        );
        assert_eq!(pem_algorithm(&pem), Some(DkimAlgorithm::Rsa));
        // An EC key, a certificate, no PEM, a truncated body.
        assert_eq!(
            pem_algorithm("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"),
            None
        );
        assert_eq!(
            pem_algorithm("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            None
        );
        assert_eq!(pem_algorithm("hello"), None);
        assert_eq!(
            pem_algorithm("-----BEGIN PRIVATE KEY-----\nMC4CAQAw\n-----END PRIVATE KEY-----\n"),
            None
        );
    }

    #[test]
    fn new_keys_are_checked() {
        let key = |domain: &str, selector: &str, algorithm| NewDkimKey {
            domain: domain.into(),
            selector: selector.into(),
            algorithm,
            private_pem: ED_PEM.into(),
        };
        assert_eq!(
            check_new_key(&key("Example.COM.", "s1", DkimAlgorithm::Ed25519)).unwrap(),
            "example.com"
        );
        for (domain, selector) in [
            ("..", "s1"),
            ("a/b", "s1"),
            ("", "s1"),
            ("example.com", ""),
            ("example.com", "../x"),
            ("example.com", "-s"),
            ("example.com", "a b"),
        ] {
            assert!(
                matches!(
                    check_new_key(&key(domain, selector, DkimAlgorithm::Ed25519)),
                    Err(StoreError::InvalidKey(_))
                ),
                "{domain:?} {selector:?}"
            );
        }
        assert!(matches!(
            check_new_key(&key("example.com", "s1", DkimAlgorithm::Rsa)),
            Err(StoreError::InvalidKey(_))
        ));
    }
}
