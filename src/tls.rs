//! TLS (`[server.tls]`): the rustls server configuration built from a certificate chain
//! and a private key in PEM files, so that the server speaks HTTPS and pages on `https://`
//! can open `wss://` sockets.
//!
//! rustls 0.23 with the ring provider, named explicitly rather than through a process-wide
//! default: the same provider the clients use, and no choice left to whichever crate
//! installs one first. TLS 1.2 and 1.3, rustls's safe defaults; HTTP/1.1 over it (actix-web
//! adds the ALPN protocol). The files are read once, at start: replacing a certificate
//! takes a restart.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{ConfigError, TlsConfig};

/// The rustls configuration for `tls`: its files read and checked (the key must match the
/// certificate). Errors name the file and what is wrong with it.
pub fn server_config(tls: &TlsConfig) -> Result<ServerConfig, ConfigError> {
    let certs = read_certs(&tls.cert)?;
    let key = read_key(&tls.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("cert", &tls.cert, &format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            ConfigError::Invalid(format!(
                "server.tls.key: the key {} does not fit the certificate {}: {e}",
                tls.key.display(),
                tls.cert.display()
            ))
        })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let pem = read(path, "cert")?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("cert", path, &format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(
            "cert",
            path,
            "holds no certificate (expected -----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let pem = read(path, "key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        invalid(
            "key",
            path,
            &format!("no PEM private key (PKCS#8, PKCS#1 or SEC1) in it: {e}"),
        )
    })
}

fn read(path: &Path, key: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| {
        ConfigError::Invalid(format!(
            "server.tls.{key}: cannot read {}: {e}",
            path.display()
        ))
    })
}

/// `server.tls.KEY: PATH: WHAT`: the key first, so that the error can be placed in the file.
fn invalid(key: &str, path: &Path, what: &str) -> ConfigError {
    ConfigError::Invalid(format!("server.tls.{key}: {}: {what}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_made_certificate_loads_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = write(dir.path(), "cert.pem", &made.cert.pem());
        let key = write(dir.path(), "key.pem", &made.signing_key.serialize_pem());
        let tls = TlsConfig {
            cert: cert.clone(),
            key: key.clone(),
        };
        server_config(&tls).unwrap();

        let other = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
        let wrong_key = write(dir.path(), "other.pem", &other.signing_key.serialize_pem());
        let err = server_config(&TlsConfig {
            cert: cert.clone(),
            key: wrong_key,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("does not fit"), "{err}");

        let err = server_config(&TlsConfig {
            cert: key.clone(),
            key: key.clone(),
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("key.pem") && err.contains("no certificate"),
            "{err}"
        );
        let err = server_config(&TlsConfig {
            cert: cert.clone(),
            key: cert.clone(),
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("cert.pem") && err.contains("private key"),
            "{err}"
        );
        let err = server_config(&TlsConfig {
            cert: dir.path().join("missing.pem"),
            key,
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("server.tls.cert") && err.contains("missing.pem"),
            "{err}"
        );
    }
}
