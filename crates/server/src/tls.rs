//! TLS for every service (RFC 3207 STARTTLS, RFC 2595 STLS, RFC 8314
//! implicit TLS): certificates from PEM files, reloadable without dropping
//! sessions (SIGHUP), with the ring provider installed explicitly.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig as RustlsConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is missing, unreadable or holds no certificate.
    #[error("certificate {path}: {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The key file is missing, unreadable, or not a private key.
    #[error("private key {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The key does not match the certificate, or rustls refused them.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The current TLS acceptor, swapped atomically on reload. Sessions take a
/// clone when they start a handshake, so a reload never disturbs them.
pub struct TlsHandle {
    // Std locks: held only to clone or replace a value, never across await.
    /// The certificate and key files a plain reload re-reads.
    paths: RwLock<(PathBuf, PathBuf)>,
    current: RwLock<TlsAcceptor>,
}

impl TlsHandle {
    /// Loads the certificate chain and key from PEM files.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let acceptor = build(cert, key)?;
        Ok(TlsHandle {
            paths: RwLock::new((cert.to_path_buf(), key.to_path_buf())),
            current: RwLock::new(acceptor),
        })
    }

    /// Re-reads the files; on error the old certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let (cert, key) = self.paths.read().unwrap_or_else(|p| p.into_inner()).clone();
        self.reload_from(&cert, &key)
    }

    /// Loads the pair from (possibly new) files, which later reloads then
    /// re-read; on error the old certificate and files stay in use.
    pub fn reload_from(&self, cert: &Path, key: &Path) -> Result<(), TlsError> {
        let acceptor = build(cert, key)?;
        *self.paths.write().unwrap_or_else(|p| p.into_inner()) =
            (cert.to_path_buf(), key.to_path_buf());
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = acceptor;
        Ok(())
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn build(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::Certificate {
            path: cert.to_path_buf(),
            reason: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Certificate {
            path: cert.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Certificate {
            path: cert.to_path_buf(),
            reason: "no certificate in file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = RustlsConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
