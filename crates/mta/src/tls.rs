//! The TLS client configuration for STARTTLS to mail exchangers.
//!
//! RFC 7435 opportunistic security: encryption whenever the peer offers
//! it, without authenticating the peer. MX host names come from unsigned
//! DNS and most MX certificates do not match them (or are self-signed), so
//! verifying would either bounce mail or push senders back to plaintext —
//! and plaintext is what an attacker who can forge certificates could force
//! anyway by stripping STARTTLS. Encryption still defeats passive
//! eavesdropping. Authenticated transport (MTA-STS, DANE) is a later wave;
//! it will use a verifying configuration, not this one.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// A client configuration (ring provider, safe default versions) that
/// accepts any server certificate but still checks the handshake
/// signatures, so the session keys are bound to the key the server showed.
/// Also what `mailroom fetch --insecure` uses for self-signed test servers.
pub fn opportunistic_client_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { algorithms }))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// RFC 7435 §1.3: "the default is to not authenticate the peer". Accepts
/// every certificate chain; see the module docs for why.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
