//! TLS for the client's reads: the trust reqwest gives on its own (the
//! bundled Mozilla roots and the system's), with the roots loaded at the
//! first certificate to check instead of when the client is built. Loading
//! them reads and parses some 300 files of `/etc/ssl` (~5 ms), which every
//! command paid before its first request, though most speak plain HTTP to
//! a local registry or make no request at all (an install from the lock).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use std::sync::{Arc, OnceLock};

/// The client configuration, with reqwest's protocol versions and ALPN.
pub fn config() -> anyhow::Result<rustls::ClientConfig> {
    let provider =
        CryptoProvider::get_default().cloned().unwrap_or_else(|| Arc::new(crypto::ring::default_provider()));
    let verifier = LazyRoots { provider: provider.clone(), webpki: OnceLock::new() };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// rustls's WebPKI verifier over the roots, built when first needed. The
/// handshake signatures are checked as it checks them, without the roots.
#[derive(Debug)]
struct LazyRoots {
    provider: Arc<CryptoProvider>,
    webpki: OnceLock<Result<Arc<WebPkiServerVerifier>, String>>,
}

impl LazyRoots {
    fn webpki(&self) -> Result<&WebPkiServerVerifier, Error> {
        let built = self.webpki.get_or_init(|| {
            let mut roots = RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            // As reqwest: a system certificate that does not parse is skipped.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| format!("no TLS root certificates: {e}"))
        });
        built.as_deref().map_err(|e| Error::General(e.clone()))
    }
}

impl ServerCertVerifier for LazyRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.webpki()?.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roots_load_at_the_first_certificate_which_must_chain_to_them() {
        let provider = Arc::new(crypto::ring::default_provider());
        let v = LazyRoots { provider, webpki: OnceLock::new() };
        assert!(!v.supported_verify_schemes().is_empty());
        assert!(v.webpki.get().is_none(), "nothing loaded before a certificate is checked");
        let name = ServerName::try_from("registry.example").unwrap();
        let junk = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        let err = v.verify_server_cert(&junk, &[], &name, &[], UnixTime::now()).unwrap_err();
        assert!(matches!(err, Error::InvalidCertificate(_)), "{err:?}");
        assert!(v.webpki.get().is_some_and(Result::is_ok), "the roots are loaded");
        // A certificate that is no server's (a root itself, not for this name) is refused too.
        let root = rustls_native_certs::load_native_certs().certs.into_iter().next();
        if let Some(root) = root {
            assert!(v.verify_server_cert(&root, &[], &name, &[], UnixTime::now()).is_err());
        }
        assert!(config().is_ok());
    }
}
