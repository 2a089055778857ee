//! DKIM keys (RFC 6376 §3.6.1, RFC 8463): generation, PEM files, the public
//! key and the TXT record that publishes it.
//!
//! RSA private keys are stored as PKCS#1 (`BEGIN RSA PRIVATE KEY`), Ed25519
//! keys as PKCS#8 (`BEGIN PRIVATE KEY`): the forms OpenSSL, OpenDKIM and
//! dkimpy read. The RSA public key is published as a SubjectPublicKeyInfo
//! (what `openssl rsa -pubout` prints and every verifier accepts), the
//! Ed25519 one as its 32 raw bytes (RFC 8463 §4.2).

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::dkim::generate::DkimKeyPair;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// Bits of a generated RSA key: RFC 8301 §3.2 asks for at least 1024 and
/// recommends 2048; 2048 is what the large providers publish and still
/// fits a TXT record in two strings.
pub const RSA_BITS: usize = 2048;

/// A DKIM signing algorithm (RFC 6376 §3.3, RFC 8463 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `rsa-sha256`: the default, verified everywhere.
    Rsa,
    /// `ed25519-sha256`: small keys, not yet verified everywhere, so a
    /// domain using it usually also signs with RSA.
    Ed25519,
}

impl Algorithm {
    /// The `k=` tag of the key record.
    pub fn key_type(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }

    /// The `a=` tag of signatures made with it.
    pub fn signature_algorithm(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa-sha256",
            Algorithm::Ed25519 => "ed25519-sha256",
        }
    }
}

impl FromStr for Algorithm {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Algorithm, KeyError> {
        match s.to_ascii_lowercase().as_str() {
            "rsa" | "rsa-sha256" => Ok(Algorithm::Rsa),
            "ed25519" | "ed25519-sha256" => Ok(Algorithm::Ed25519),
            _ => Err(KeyError::UnknownAlgorithm(s.to_string())),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key_type())
    }
}

/// What can go wrong with a key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not `rsa` or `ed25519`.
    #[error("unknown DKIM algorithm {0:?} (use rsa or ed25519)")]
    UnknownAlgorithm(String),
    /// The file holds no PEM private key.
    #[error("no PEM private key found")]
    NoPem,
    /// The PEM holds a key that is neither RSA nor Ed25519, or is damaged.
    #[error("not a usable RSA or Ed25519 private key: {0}")]
    Unusable(String),
    /// Key generation failed (no randomness).
    #[error("key generation failed: {0}")]
    Generate(String),
}

/// A freshly generated key: the PEM to store and the parsed key.
pub struct KeyPair {
    /// The private key as PEM, to be written to a file only its owner reads.
    pub private_pem: String,
    /// The same key, ready to sign.
    pub key: PrivateKey,
}

/// Generates a new key pair.
pub fn generate(algorithm: Algorithm) -> Result<KeyPair, KeyError> {
    let (label, der) = match algorithm {
        Algorithm::Rsa => (
            "RSA PRIVATE KEY",
            DkimKeyPair::generate_rsa(RSA_BITS)
                .map_err(|e| KeyError::Generate(e.to_string()))?
                .private_key()
                .to_vec(),
        ),
        Algorithm::Ed25519 => (
            "PRIVATE KEY",
            Ed25519Key::generate_pkcs8().map_err(|e| KeyError::Generate(e.to_string()))?,
        ),
    };
    let private_pem = pem(label, &der);
    let key = PrivateKey::from_pem(private_pem.as_bytes())?;
    Ok(KeyPair { private_pem, key })
}

/// A private key ready to sign.
pub struct PrivateKey {
    inner: Inner,
}

pub(crate) enum Inner {
    Rsa(RsaKey<Sha256>),
    Ed25519(Ed25519Key),
}

impl fmt::Debug for PrivateKey {
    // Never the key material, even in debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({})", self.algorithm())
    }
}

impl PrivateKey {
    /// Reads a PEM private key: PKCS#1 RSA, or PKCS#8 RSA or Ed25519.
    pub fn from_pem(pem: &[u8]) -> Result<PrivateKey, KeyError> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| KeyError::NoPem)?;
        let inner = match der {
            PrivateKeyDer::Pkcs1(_) => Inner::Rsa(
                RsaKey::<Sha256>::from_key_der(der)
                    .map_err(|e| KeyError::Unusable(e.to_string()))?,
            ),
            PrivateKeyDer::Pkcs8(pkcs8) => {
                let bytes = pkcs8.secret_pkcs8_der().to_vec();
                match RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(
                    PrivatePkcs8KeyDer::from(bytes.clone()),
                )) {
                    Ok(rsa) => Inner::Rsa(rsa),
                    Err(_) => Inner::Ed25519(
                        Ed25519Key::from_pkcs8_maybe_unchecked_der(&bytes)
                            .map_err(|e| KeyError::Unusable(e.to_string()))?,
                    ),
                }
            }
            _ => {
                return Err(KeyError::Unusable(
                    "SEC1 (EC) keys are not DKIM keys".into(),
                ));
            }
        };
        Ok(PrivateKey { inner })
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            Inner::Rsa(_) => Algorithm::Rsa,
            Inner::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// The public key as published in `p=`: SubjectPublicKeyInfo DER for
    /// RSA, the raw 32 bytes for Ed25519.
    pub fn public_key(&self) -> Vec<u8> {
        match &self.inner {
            Inner::Rsa(rsa) => rsa_spki(&rsa.public_key()),
            Inner::Ed25519(ed) => ed.public_key(),
        }
    }

    /// The value of the key's TXT record (RFC 6376 §3.6.1):
    /// `v=DKIM1; k=rsa; p=<base64>`.
    pub fn txt_value(&self) -> String {
        format!(
            "v=DKIM1; k={}; p={}",
            self.algorithm().key_type(),
            STANDARD.encode(self.public_key())
        )
    }

    pub(crate) fn into_inner(self) -> Inner {
        self.inner
    }
}

/// The name the key record is published at (RFC 6376 §3.6.2.1).
pub fn record_name(selector: &str, domain: &str) -> String {
    format!("{selector}._domainkey.{domain}")
}

/// A zone-file line for a TXT record; values over 255 octets are split
/// into several character-strings (RFC 1035 §3.3.14; RFC 6376 §3.6.2.2
/// joins them back without spaces).
pub fn zone_line(name: &str, value: &str) -> String {
    let strings: Vec<String> = split_txt(value)
        .into_iter()
        .map(|part| format!("\"{part}\""))
        .collect();
    format!("{name}. IN TXT {}", strings.join(" "))
}

/// `value` cut into pieces of at most 255 octets (the values here are
/// ASCII, so any cut is a character boundary).
pub fn split_txt(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = value;
    while rest.len() > 255 {
        let (head, tail) = rest.split_at(255);
        parts.push(head);
        rest = tail;
    }
    parts.push(rest);
    parts
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo (RFC 5280
/// §4.1.2.7) with the rsaEncryption algorithm (RFC 8017 Appendix A.1).
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    // SEQUENCE { OID 1.2.840.113549.1.1.1, NULL }
    const ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0x00];
    bit_string.extend_from_slice(pkcs1);
    let mut inner = ALGORITHM.to_vec();
    der_tlv(0x03, &bit_string, &mut inner);
    let mut out = Vec::with_capacity(inner.len() + 4);
    der_tlv(0x30, &inner, &mut out);
    out
}

fn der_tlv(tag: u8, value: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rsa_round_trip_through_pem() {
        let pair = generate(Algorithm::Rsa).unwrap();
        assert!(
            pair.private_pem
                .starts_with("-----BEGIN RSA PRIVATE KEY-----\n")
        );
        let again = PrivateKey::from_pem(pair.private_pem.as_bytes()).unwrap();
        assert_eq!(again.algorithm(), Algorithm::Rsa);
        assert_eq!(again.public_key(), pair.key.public_key());
        let spki = again.public_key();
        // SEQUENCE, long form length, then the rsaEncryption algorithm.
        assert_eq!(spki[0], 0x30);
        assert_eq!(
            &spki[4..19],
            &[
                0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
                0x00
            ]
        );
        assert_eq!(spki.len(), 294, "a 2048-bit key's SPKI is 294 octets");
        let txt = again.txt_value();
        assert!(txt.starts_with("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"));
        assert_eq!(split_txt(&txt).len(), 2);
    }

    #[test]
    fn ed25519_round_trip_through_pem() {
        let pair = generate(Algorithm::Ed25519).unwrap();
        assert!(
            pair.private_pem
                .starts_with("-----BEGIN PRIVATE KEY-----\n")
        );
        let again = PrivateKey::from_pem(pair.private_pem.as_bytes()).unwrap();
        assert_eq!(again.algorithm(), Algorithm::Ed25519);
        assert_eq!(again.public_key().len(), 32);
        assert_eq!(again.public_key(), pair.key.public_key());
        assert!(again.txt_value().starts_with("v=DKIM1; k=ed25519; p="));
    }

    #[test]
    fn rejects_what_is_not_a_key() {
        assert!(matches!(
            PrivateKey::from_pem(b"hello"),
            Err(KeyError::NoPem)
        ));
        assert!(
            PrivateKey::from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_err()
        );
        assert!("dsa".parse::<Algorithm>().is_err());
        assert_eq!("ED25519".parse::<Algorithm>().unwrap(), Algorithm::Ed25519);
    }

    #[test]
    fn zone_lines_split_long_values() {
        let value = "x".repeat(300);
        let line = zone_line("s._domainkey.example.com", &value);
        assert_eq!(
            line,
            format!(
                "s._domainkey.example.com. IN TXT \"{}\" \"{}\"",
                "x".repeat(255),
                "x".repeat(45)
            )
        );
        assert_eq!(split_txt("short"), vec!["short"]);
    }
}
