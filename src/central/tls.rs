//! `[tls]`: the centre's certificate, used by the embedded broker (MQTT over TLS) and the API (HTTPS), and a
//! self-signed one for a demo or a test (`crowdgrid tls-selfsigned`).
//!
//! With `[tls]` set, both listeners speak TLS only. The centre's own MQTT clients, and edges, trust `ca` (for a
//! self-signed certificate: the certificate itself, the default) and nothing else.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use serde::{Deserialize, Serialize};

pub use crowdgrid_edge::tls::TlsError;

/// `[tls]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain of the centre (its names must include the host edges and browsers use).
    pub cert: PathBuf,
    /// PEM private key (keep it owner-only).
    pub key: PathBuf,
    /// PEM CA the centre's own clients trust; default: `cert` (a self-signed certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
}

impl TlsConfig {
    /// What clients of this centre trust.
    pub fn trust(&self) -> &Path {
        self.ca.as_deref().unwrap_or(&self.cert)
    }

    /// The rustls server configuration for the API (HTTP/1.1).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let certs = crowdgrid_edge::tls::certs(&self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| TlsError::Trust { path: self.key.display().to_string(), reason: e.to_string() })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The client configuration the centre's own MQTT clients use.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        crowdgrid_edge::tls::client_config(self.trust())
    }
}

/// A self-signed certificate for `hosts` (DNS names or IP addresses), as PEM `(certificate, private key)`.
pub fn self_signed(hosts: &[String]) -> Result<(String, String), rcgen::Error> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
    for h in hosts {
        if !names.contains(h) {
            names.push(h.clone());
        }
    }
    let mut params = rcgen::CertificateParams::new(names)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "crowdgrid centre (self-signed)");
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a self-signed certificate and key into `dir` as `centre.crt` / `centre.key` (key owner-only).
pub fn write_self_signed(dir: &Path, hosts: &[String]) -> Result<TlsConfig, String> {
    let (cert, key) = self_signed(hosts).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (cp, kp) = (dir.join("centre.crt"), dir.join("centre.key"));
    std::fs::write(&cp, cert).map_err(|e| format!("{}: {e}", cp.display()))?;
    crate::credential_cli::write_secret(&kp, key.trim_end()).map_err(|e| format!("{}: {e}", kp.display()))?;
    Ok(TlsConfig { cert: cp, key: kp, ca: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_makes_server_and_client_configs() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write_self_signed(dir.path(), &["centre.example".into()]).unwrap();
        cfg.server_config().unwrap();
        cfg.client_config().unwrap();
        assert_eq!(cfg.trust(), cfg.cert.as_path());
        let bad = TlsConfig { key: dir.path().join("missing.key"), ..cfg };
        assert!(bad.server_config().is_err());
    }
}
