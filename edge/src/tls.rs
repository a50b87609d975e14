//! TLS towards the broker: a rustls client configuration that trusts one PEM file (the centre's CA, or for a
//! self-signed setup the centre's certificate itself) and nothing else. The edge does not trust the system's
//! web CAs: a crowdgrid broker has a certificate the city issued, and a public CA vouching for some other host
//! is no reason to send it readings. rustls' ring provider is used (no C toolchain beyond what ring needs).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The trust file could not be read or holds no certificate.
    #[error("{path}: {reason}")]
    Trust { path: String, reason: String },
    /// rustls refused the configuration.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The certificates in a PEM file.
pub fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::Trust { path: path.display().to_string(), reason };
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no certificate in the file".into()));
    }
    Ok(certs)
}

/// A client configuration trusting exactly the certificates in `trust` (PEM).
pub fn client_config(trust: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs(trust)? {
        roots.add(c)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Sets `opts` to TLS with `config`.
pub fn use_tls(opts: &mut rumqttc::MqttOptions, config: Arc<ClientConfig>) {
    opts.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(config)));
}
