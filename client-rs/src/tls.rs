//! Trusting a server's certificate: [`RootCertificate`], a CA (or a self-signed server
//! certificate) to trust beside the usual ones, for a server on `https://`/`wss://` whose
//! certificate no public authority signed (a company CA, a test certificate).
//!
//! Without one, HTTPS is checked against the operating system's trust store (reqwest's
//! platform verifier) and WSS against the Mozilla roots that `webpki-roots` carries. With
//! one or more, both trust them too: the same roots for both halves of a connection, so
//! a server reachable over HTTPS is reachable over WSS.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::ClientError;

/// One or more certificates to trust as roots, from PEM or DER.
///
/// ```no_run
/// use atomsync_client::{Options, RootCertificate};
/// let ca = RootCertificate::from_pem_file("/etc/atomsync/ca.pem")?;
/// let options = Options::new("https://sync.internal:8443/sync").add_root_certificate(ca);
/// # Ok::<(), atomsync_client::ClientError>(())
/// ```
#[derive(Clone)]
pub struct RootCertificate {
    certs: Arc<[CertificateDer<'static>]>,
}

impl RootCertificate {
    /// Every certificate of a PEM text (`-----BEGIN CERTIFICATE-----` blocks; anything else
    /// in it is skipped). Errors: [`ClientError::InvalidCertificate`] when it holds none
    /// or a block does not decode.
    pub fn from_pem(pem: &[u8]) -> Result<RootCertificate, ClientError> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClientError::InvalidCertificate(format!("not PEM: {e}")))?;
        if certs.is_empty() {
            return Err(ClientError::InvalidCertificate(
                "no certificate in it (expected -----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        Ok(RootCertificate {
            certs: certs.into(),
        })
    }

    /// [`from_pem`](Self::from_pem) of a file; the error names the file.
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<RootCertificate, ClientError> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|e| {
            ClientError::InvalidCertificate(format!("{}: cannot read: {e}", path.display()))
        })?;
        RootCertificate::from_pem(&pem).map_err(|e| match e {
            ClientError::InvalidCertificate(why) => {
                ClientError::InvalidCertificate(format!("{}: {why}", path.display()))
            }
            other => other,
        })
    }

    /// One certificate in DER. It is parsed when a connection is made: a bad one makes
    /// that connection fail with [`ClientError::InvalidCertificate`].
    pub fn from_der(der: impl Into<Vec<u8>>) -> RootCertificate {
        RootCertificate {
            certs: vec![CertificateDer::from(der.into())].into(),
        }
    }
}

impl RootCertificate {
    /// The certificates, DER-encoded: for tools that build their own TLS clients.
    pub fn ders(&self) -> impl Iterator<Item = &[u8]> {
        self.certs.iter().map(|c| c.as_ref())
    }
}

impl PartialEq for RootCertificate {
    fn eq(&self, other: &Self) -> bool {
        self.certs == other.certs
    }
}

impl Eq for RootCertificate {}

impl Hash for RootCertificate {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for cert in self.certs.iter() {
            cert.as_ref().hash(state);
        }
    }
}

impl fmt::Debug for RootCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RootCertificate({} certificates)", self.certs.len())
    }
}

/// The HTTP client of a connection: the platform's roots, and `roots` beside them.
pub(crate) fn http_client(
    roots: &[RootCertificate],
    connect_timeout: std::time::Duration,
) -> Result<reqwest::Client, ClientError> {
    let mut certs = Vec::new();
    for cert in roots.iter().flat_map(|r| r.certs.iter()) {
        certs.push(
            reqwest::Certificate::from_der(cert.as_ref())
                .map_err(|e| ClientError::InvalidCertificate(e.to_string()))?,
        );
    }
    let mut builder = reqwest::Client::builder().connect_timeout(connect_timeout);
    if !certs.is_empty() {
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|e| ClientError::InvalidCertificate(format!("cannot use the roots: {e}")))
}

/// The WebSocket's TLS connector when `roots` are given (`None`: tokio-tungstenite's
/// default, the Mozilla roots): the Mozilla roots and `roots`, on the ring provider.
pub(crate) fn ws_connector(
    roots: &[RootCertificate],
) -> Result<Option<tokio_tungstenite::Connector>, ClientError> {
    if roots.is_empty() {
        return Ok(None);
    }
    let mut store =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in roots.iter().flat_map(|r| r.certs.iter()) {
        store
            .add(cert.clone())
            .map_err(|e| ClientError::InvalidCertificate(format!("not a usable root: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::InvalidCertificate(e.to_string()))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Some(tokio_tungstenite::Connector::Rustls(Arc::new(config))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOT_A_CERT: &str = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";

    #[test]
    fn pem_without_a_certificate_is_refused_with_the_reason() {
        let err = RootCertificate::from_pem(b"hello").unwrap_err().to_string();
        assert!(err.contains("no certificate"), "{err}");
        let err = RootCertificate::from_pem(NOT_A_CERT.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not PEM"), "{err}");
        let err = RootCertificate::from_pem_file("/nonexistent/ca.pem")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn a_bad_der_root_fails_the_connection_not_the_process() {
        let bad = RootCertificate::from_der(vec![1, 2, 3]);
        assert!(matches!(
            ws_connector(&[bad]),
            Err(ClientError::InvalidCertificate(_))
        ));
    }
}
