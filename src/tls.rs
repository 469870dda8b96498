//! Built-in TLS (`--tls-cert`, `--tls-key`): the PEM files loaded into a rustls server config
//! (ring provider), and reloaded on SIGHUP. A reload swaps the config new handshakes use;
//! connections already open keep the session they negotiated. A reload that fails keeps the
//! old certificate and says why.

use parking_lot::RwLock;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Where the certificate chain and its private key are read from (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A TLS file that cannot be used; the message names the file.
#[derive(Debug, thiserror::Error)]
#[error("TLS {what} {path}: {reason}")]
pub struct TlsError {
    what: &'static str,
    path: String,
    reason: String,
}

/// The certificate new TLS handshakes are served with, swappable at run time.
pub struct Tls {
    files: TlsFiles,
    current: RwLock<TlsAcceptor>,
}

impl Tls {
    /// Load both files now; an error names the file at fault.
    pub fn load(files: TlsFiles) -> Result<Arc<Tls>, TlsError> {
        let acceptor = acceptor(&files)?;
        Ok(Arc::new(Tls {
            files,
            current: RwLock::new(acceptor),
        }))
    }

    /// Read the files again; on success new handshakes use them, on failure the old
    /// certificate stays and the reason is returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = acceptor(&self.files)?;
        *self.current.write() = fresh;
        Ok(())
    }

    /// [`reload`](Self::reload), logging the outcome.
    pub fn reload_and_log(&self) {
        match self.reload() {
            Ok(()) => tracing::info!(
                "TLS: reloaded {} and {}",
                self.files.cert.display(),
                self.files.key.display()
            ),
            Err(e) => tracing::error!("TLS reload failed, keeping the previous certificate: {e}"),
        }
    }

    /// The acceptor for the next handshake.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.current.read().clone()
    }
}

fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let err = |what, path: &Path, reason: String| TlsError {
        what,
        path: path.display().to_string(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| err("certificate", &files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(err(
            "certificate",
            &files.cert,
            "no PEM certificate in it".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        let reason = match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no PEM private key in it".into(),
            other => other.to_string(),
        };
        err("key", &files.key, reason)
    })?;
    // ring, not aws-lc-rs (which needs cmake and nasm to build). rustls 0.23.48 deprecates
    // ring's provider because it has no post-quantum key exchange; X25519 and the NIST curves
    // remain, which every client here negotiates.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err("certificate", &files.cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            err(
                "key",
                &files.key,
                format!("does not fit certificate {}: {e}", files.cert.display()),
            )
        })?;
    // WebSocket upgrades and the HTTP API are served over HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
