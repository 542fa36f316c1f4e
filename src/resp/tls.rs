//! TLS on the client port: builds the rustls acceptor from the PEM files
//! named by `--tls-*` (once, at startup, with errors that name the file),
//! and runs each connection's handshake under a time limit.
//!
//! The `ring` provider is named explicitly rather than relying on a process
//! default, so another dependency enabling a second provider cannot make
//! the choice ambiguous.

use crate::config::{TlsAuthClients, TlsSettings};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// Longest a client may take to finish the handshake. It runs in the
/// connection's own task, so a slow client holds only its own slot.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS setting that cannot be used. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A required file was not given (the config check should catch this).
    #[error("--tls-port needs {0}")]
    Missing(&'static str),
    /// The file could not be read.
    #[error("cannot read {flag} {path}: {cause}")]
    Read {
        /// Which setting named it.
        flag: &'static str,
        /// File.
        path: PathBuf,
        /// Cause (not a `source`: the message already says it, once).
        cause: std::io::Error,
    },
    /// The file is not PEM, or holds none of what it should.
    #[error("{flag} {path}: {detail}")]
    Content {
        /// Which setting named it.
        flag: &'static str,
        /// File.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Certificate and key each parsed but cannot be used together (the key
    /// does not match the certificate, or one of them is not usable).
    #[error("--tls-cert-file {cert} with --tls-key-file {key}: {cause}")]
    Pair {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// What rustls found.
        cause: String,
    },
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsSetupError> {
    std::fs::read(path).map_err(|cause| TlsSetupError::Read {
        flag,
        path: path.to_path_buf(),
        cause,
    })
}

fn content(flag: &'static str, path: &Path, detail: impl ToString) -> TlsSetupError {
    TlsSetupError::Content {
        flag,
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// Every certificate in a PEM file; an error if there is none.
fn certificates(
    flag: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let pem = read(flag, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| content(flag, path, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(content(flag, path, "no PEM certificate found"));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    const FLAG: &str = "--tls-key-file";
    let pem = read(FLAG, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            content(FLAG, path, "no PEM private key found")
        }
        e => content(FLAG, path, format!("not valid PEM: {e}")),
    })
}

fn required<'a>(file: &'a Option<PathBuf>, flag: &'static str) -> Result<&'a Path, TlsSetupError> {
    file.as_deref().ok_or(TlsSetupError::Missing(flag))
}

/// Reads the certificate, key and CA files and builds the acceptor for the
/// TLS port.
pub fn acceptor(settings: &TlsSettings) -> Result<TlsAcceptor, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert_path = required(&settings.cert_file, "--tls-cert-file")?;
    let key_path = required(&settings.key_file, "--tls-key-file")?;
    let chain = certificates("--tls-cert-file", cert_path)?;
    let key = private_key(key_path)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Pair {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
            cause: e.to_string(),
        })?;
    let builder = match settings.auth_clients {
        TlsAuthClients::No => builder.with_no_client_auth(),
        auth => {
            const FLAG: &str = "--tls-ca-cert-file";
            let ca_path = required(&settings.ca_cert_file, FLAG)?;
            let mut roots = RootCertStore::empty();
            for cert in certificates(FLAG, ca_path)? {
                roots.add(cert).map_err(|e| {
                    content(FLAG, ca_path, format!("not a usable CA certificate: {e}"))
                })?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = if auth == TlsAuthClients::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|e| {
                content(FLAG, ca_path, format!("cannot check clients with it: {e}"))
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    // Checks that the key parses and belongs to the certificate.
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsSetupError::Pair {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
            cause: match e {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                    "the key does not belong to the certificate".into()
                }
                e => e.to_string(),
            },
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Runs the server side of the handshake. `None` if the client fails it,
/// is too slow, or the server stops meanwhile; the caller just drops the
/// socket (a client speaking plain RESP to this port ends up here).
pub async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    stop: &CancellationToken,
) -> Option<TlsStream<TcpStream>> {
    let addr = stream.peer_addr().ok();
    let failure = tokio::select! {
        done = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => match done {
            Ok(Ok(tls)) => return Some(tls),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("not finished within {HANDSHAKE_TIMEOUT:?}"),
        },
        _ = stop.cancelled() => return None,
    };
    metrics::counter!("dynkv_tls_handshake_failures_total").increment(1);
    tracing::debug!(client = ?addr, "TLS handshake failed: {failure}");
    None
}
