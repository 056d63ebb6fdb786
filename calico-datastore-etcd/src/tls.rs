//! TLS client configuration for `https` members: the CA that verifies them and our client
//! certificate, read from files or given inline.

use std::path::Path;
use std::time::Duration;

use calico_datastore::{CertValidity, EtcdTls, Pem, certificate_validity};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// System CA bundles, tried in order when no CA is configured (Debian/Ubuntu, Fedora/RHEL,
/// Alpine/others), after `$SSL_CERT_FILE`.
const SYSTEM_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// Builds the client TLS configuration; `handshake_timeout` bounds each handshake. Also
/// returns the validity of the client certificate, when there is one and it decodes (to
/// explain a rejection). Errors name the file (or inline field) that is missing or holds
/// no PEM of the expected kind.
pub(crate) fn client_config(
    tls: &EtcdTls,
    handshake_timeout: Duration,
) -> Result<(ClientTlsConfig, Option<CertValidity>), String> {
    let ca = match &tls.ca {
        Some(pem) => read(pem, "CA certificate", "CERTIFICATE")?,
        None => system_roots()?,
    };
    let mut config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .timeout(handshake_timeout);
    let mut validity = None;
    if let Some(id) = &tls.client {
        let cert = read(&id.cert, "client certificate", "CERTIFICATE")?;
        let key = read(&id.key, "client key", "PRIVATE KEY")?;
        validity = certificate_validity(&cert);
        config = config.identity(Identity::from_pem(cert, key));
    }
    Ok((config, validity))
}

/// Reads PEM text and checks that it holds a block whose label ends with `label`.
fn read(pem: &Pem, what: &str, label: &str) -> Result<Vec<u8>, String> {
    let text = match pem {
        Pem::File(path) => std::fs::read(path)
            .map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))?,
        Pem::Inline(text) => text.as_bytes().to_vec(),
    };
    if !has_block(&text, label) {
        return Err(format!("the {what} {pem} holds no PEM \"{label}\" block"));
    }
    Ok(text)
}

/// Whether `text` has a `-----BEGIN ...LABEL-----` line.
fn has_block(text: &[u8], label: &str) -> bool {
    String::from_utf8_lossy(text).lines().any(|l| {
        l.trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
            .is_some_and(|l| l.ends_with(label))
    })
}

/// The system's trusted CAs, for `https` members when no CA is configured.
fn system_roots() -> Result<Vec<u8>, String> {
    let from_env = std::env::var_os("SSL_CERT_FILE");
    let candidates = from_env
        .iter()
        .map(Path::new)
        .chain(SYSTEM_BUNDLES.iter().map(Path::new));
    for path in candidates {
        if let Ok(text) = std::fs::read(path)
            && has_block(&text, "CERTIFICATE")
        {
            return Ok(text);
        }
    }
    Err(format!(
        "an https endpoint without a CA certificate (etcdCACertFile / ETCD_CA_CERT_FILE) \
         needs the system's CA bundle, and none was found ($SSL_CERT_FILE, {})",
        SYSTEM_BUNDLES.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_are_recognised_by_label() {
        let cert = b"junk\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(has_block(cert, "CERTIFICATE"));
        assert!(!has_block(cert, "PRIVATE KEY"));
        for key in ["EC PRIVATE KEY", "PRIVATE KEY", "RSA PRIVATE KEY"] {
            let text = format!("-----BEGIN {key}-----\nAA\n-----END {key}-----\n");
            assert!(has_block(text.as_bytes(), "PRIVATE KEY"), "{key}");
        }
        assert!(!has_block(b"CERTIFICATE", "CERTIFICATE"));
    }

    #[test]
    fn missing_and_wrong_files_are_named() {
        let tls = EtcdTls {
            ca: Some(Pem::File("/nonexistent/ca.pem".into())),
            client: None,
        };
        let e = client_config(&tls, Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("CA certificate /nonexistent/ca.pem"), "{e}");
        let tls = EtcdTls {
            ca: Some(Pem::Inline("not pem".into())),
            client: None,
        };
        let e = client_config(&tls, Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("(inline PEM) holds no PEM"), "{e}");
    }
}
