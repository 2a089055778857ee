//! Outbound DKIM signing (RFC 6376 §5): relaxed/relaxed, one key per
//! domain, chosen by the domain of the `From:` field so the signature
//! aligns for DMARC (RFC 7489 §3.1.1).

use std::collections::HashMap;

use mail_auth::AuthenticatedMessage;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};

use crate::keys::{Inner, PrivateKey};
use crate::results;

/// Header fields signed when present (RFC 6376 §5.4.1's list of what
/// should be, plus MIME and list fields whose change alters meaning).
/// `From` is required; the rest are signed when the message has them.
const SIGNED: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Sender",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// One domain's signing key.
#[derive(Debug)]
pub struct DomainKey {
    /// The `d=` domain, lower case.
    pub domain: String,
    /// The `s=` selector.
    pub selector: String,
    /// The private key.
    pub key: PrivateKey,
}

/// Why a message was not signed although a key matched.
#[derive(Debug, thiserror::Error)]
#[error("DKIM signing failed: {0}")]
pub struct SignError(String);

/// A key ready to sign for its domain.
struct Entry {
    domain: String,
    selector: String,
    algorithm: &'static str,
    signer: Built,
}

enum Built {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

impl Entry {
    fn new(key: DomainKey) -> Entry {
        let domain = key.domain.trim_end_matches('.').to_ascii_lowercase();
        let algorithm = key.key.algorithm().signature_algorithm();
        let signer = match key.key.into_inner() {
            Inner::Rsa(rsa) => Built::Rsa(
                DkimSigner::from_key(rsa)
                    .domain(domain.as_str())
                    .selector(key.selector.as_str())
                    .headers(SIGNED.iter().copied())
                    .header_canonicalization(Canonicalization::Relaxed)
                    .body_canonicalization(Canonicalization::Relaxed),
            ),
            Inner::Ed25519(ed) => Built::Ed25519(
                DkimSigner::from_key(ed)
                    .domain(domain.as_str())
                    .selector(key.selector.as_str())
                    .headers(SIGNED.iter().copied())
                    .header_canonicalization(Canonicalization::Relaxed)
                    .body_canonicalization(Canonicalization::Relaxed),
            ),
        };
        Entry {
            domain,
            selector: key.selector,
            algorithm,
            signer,
        }
    }
}

/// The signing keys, by domain.
#[derive(Default)]
pub struct Signer {
    keys: HashMap<String, Entry>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.describe()).finish()
    }
}

impl Signer {
    /// A signer with these keys (a later key for the same domain wins).
    pub fn new(keys: impl IntoIterator<Item = DomainKey>) -> Signer {
        Signer {
            keys: keys
                .into_iter()
                .map(|k| {
                    let entry = Entry::new(k);
                    (entry.domain.clone(), entry)
                })
                .collect(),
        }
    }

    /// True without any key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// `(domain, selector, algorithm)` of every key, sorted by domain.
    pub fn describe(&self) -> Vec<(String, String, &'static str)> {
        let mut out: Vec<_> = self
            .keys
            .values()
            .map(|k| (k.domain.clone(), k.selector.clone(), k.algorithm))
            .collect();
        out.sort();
        out
    }

    /// The key for the author domain `domain`: its own, else the nearest
    /// parent's (relaxed alignment, RFC 7489 §3.1.1, accepts a parent
    /// in the same organizational domain).
    fn key_for(&self, domain: &str) -> Option<&Entry> {
        let mut candidate = domain.trim_end_matches('.').to_ascii_lowercase();
        loop {
            if let Some(key) = self.keys.get(&candidate) {
                return Some(key);
            }
            // Never climb to a single label (a TLD).
            match candidate.split_once('.') {
                Some((_, parent)) if parent.contains('.') => candidate = parent.to_string(),
                _ => return None,
            }
        }
    }

    /// The `DKIM-Signature:` field (ending in CRLF) to put on top of
    /// `message`, when its `From:` domain has a key and the message is
    /// ours to sign: mail that came in from the internet carries our own
    /// `Authentication-Results` (`hostname`) and is never signed, so a
    /// forged `From:` of one of our domains forwarded through an alias
    /// does not get our signature. `Ok(None)`: nothing to sign.
    pub fn sign(&self, message: &[u8], hostname: &str) -> Result<Option<Vec<u8>>, SignError> {
        if self.keys.is_empty() || results::has_own(message, hostname) {
            return Ok(None);
        }
        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            return Ok(None);
        };
        // RFC 7489 §6.6.1: with several From addresses there is no single
        // author domain to align with; sign only when they agree.
        let mut domains = parsed
            .froms()
            .iter()
            .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()));
        let Some(domain) = domains.next() else {
            return Ok(None);
        };
        if domains.any(|d| d != domain) {
            return Ok(None);
        }
        let Some(key) = self.key_for(&domain) else {
            return Ok(None);
        };
        let signature = match &key.signer {
            Built::Rsa(signer) => signer.sign(message),
            Built::Ed25519(signer) => signer.sign(message),
        };
        let signature = signature.map_err(|e| SignError(e.to_string()))?;
        Ok(Some(signature.to_header().into_bytes()))
    }
}
