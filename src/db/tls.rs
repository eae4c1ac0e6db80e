//! TLS to Postgres, as libpq's `sslmode` and `sslrootcert` URL parameters
//! say (the `postgres` crate reads only `disable`, `prefer` and `require`
//! and verifies nothing itself): the connection is encrypted by rustls (the
//! TLS stack the HTTP client uses already), and the server's certificate
//! is checked as libpq checks it:
//!
//! | sslmode | TLS | certificate checked |
//! |---|---|---|
//! | `disable` | never | – |
//! | `allow`, `prefer` (libpq's default, and ours) | when the server offers it | no |
//! | `require` | always | no; against `sslrootcert` when given (as `verify-ca`) |
//! | `verify-ca` | always | chain to `sslrootcert` |
//! | `verify-full` | always | chain to `sslrootcert`, and the host name |
//!
//! `sslrootcert` is a PEM file of CA certificates, or `system` for the
//! system's roots (the default of the two verifying modes when it is absent).

use anyhow::{bail, Context, Result};
use postgres::config::SslMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How a connection is secured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    Disable,
    Prefer,
    Require,
    /// The chain checked against these roots (`verify-ca`, or `require`
    /// with `sslrootcert`); `full`: the host name too (`verify-full`).
    Verify {
        roots: Roots,
        full: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    System,
    File(std::path::PathBuf),
}

/// Takes `sslmode` and `sslrootcert` out of a database URL (or a
/// `key=value` connection string); returns the rest, for the `postgres`
/// crate, and the TLS it asks for.
pub fn split(url: &str) -> Result<(String, Tls)> {
    let (mut mode, mut root) = (None, None);
    // Whether a parameter stays in the URL.
    let mut keep = |pair: &str| -> Result<bool> {
        match pair.split_once('=') {
            Some(("sslmode", v)) => mode = Some(v.to_string()),
            Some(("sslrootcert", v)) => root = Some(v.to_string()),
            Some((k, _)) if k.starts_with("ssl") && k != "sslnegotiation" => {
                bail!("the database URL's `{k}` is not supported (sslmode and sslrootcert are)")
            }
            _ => return Ok(true),
        }
        Ok(false)
    };
    let rest = match url.split_once('?') {
        Some((base, query)) if url.contains("://") => {
            let kept: Vec<&str> = query
                .split('&')
                .filter_map(|p| keep(p).map(|k| k.then_some(p)).transpose())
                .collect::<Result<_>>()?;
            match kept.is_empty() {
                true => base.to_string(),
                false => format!("{base}?{}", kept.join("&")),
            }
        }
        _ if url.contains("://") => url.to_string(),
        _ => {
            let kept: Vec<&str> = url
                .split_whitespace()
                .filter_map(|p| keep(p).map(|k| k.then_some(p)).transpose())
                .collect::<Result<_>>()?;
            kept.join(" ")
        }
    };
    let roots = |root: Option<String>| match root.as_deref() {
        None | Some("system") => Roots::System,
        Some(path) => Roots::File(path.into()),
    };
    let tls = match mode.as_deref().unwrap_or("prefer") {
        "disable" => Tls::Disable,
        "allow" | "prefer" => Tls::Prefer,
        "require" if root.is_none() => Tls::Require,
        "require" | "verify-ca" => Tls::Verify { roots: roots(root), full: false },
        "verify-full" => Tls::Verify { roots: roots(root), full: true },
        other => bail!(
            "the database URL's sslmode `{other}`: use disable, allow, prefer, require, verify-ca or verify-full"
        ),
    };
    Ok((rest, tls))
}

impl Tls {
    /// The `postgres` crate's mode for this.
    pub fn mode(&self) -> SslMode {
        match self {
            Tls::Disable => SslMode::Disable,
            Tls::Prefer => SslMode::Prefer,
            Tls::Require | Tls::Verify { .. } => SslMode::Require,
        }
    }

    /// The connector (reads the CA file).
    pub fn connector(&self) -> Result<MakeRustlsConnect> {
        let provider = Arc::new(crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match self {
            Tls::Disable | Tls::Prefer | Tls::Require => Arc::new(Unchecked(provider.clone())),
            Tls::Verify { roots, full } => {
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots.load()?), provider.clone())
                        .build()
                        .context("the database's CA certificates")?;
                match full {
                    true => webpki,
                    false => Arc::new(AnyName(webpki)),
                }
            }
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }
}

impl Roots {
    fn load(&self) -> Result<RootCertStore> {
        let mut store = RootCertStore::empty();
        match self {
            Roots::System => {
                let found = rustls_native_certs::load_native_certs();
                store.add_parsable_certificates(found.certs);
            }
            Roots::File(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .with_context(|| format!("reading sslrootcert {}", path.display()))?;
                for cert in certs {
                    store.add(cert).with_context(|| format!("a certificate of {}", path.display()))?;
                }
            }
        }
        anyhow::ensure!(!store.is_empty(), "no CA certificate to check the database's against ({self:?})");
        Ok(store)
    }
}

/// `prefer` and `require` without a CA, as libpq: encrypted, but any
/// certificate is taken (the handshake's signatures are still checked).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain is checked, the name in the certificate is not.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_leave_the_url() {
        let (rest, tls) =
            split("postgres://u@h:5432/db?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x")
                .unwrap();
        assert_eq!(rest, "postgres://u@h:5432/db?application_name=x");
        assert_eq!(tls, Tls::Verify { roots: Roots::File("/ca.pem".into()), full: true });
        assert_eq!(split("postgres://u@h/db").unwrap(), ("postgres://u@h/db".into(), Tls::Prefer));
        assert_eq!(split("postgres://u@h/db?sslmode=require").unwrap().1, Tls::Require);
        assert_eq!(
            split("postgres://u@h/db?sslmode=require&sslrootcert=system").unwrap().1,
            Tls::Verify { roots: Roots::System, full: false }
        );
        assert_eq!(split("host=h sslmode=disable user=u").unwrap(), ("host=h user=u".into(), Tls::Disable));
    }

    #[test]
    fn unknown_tls_parameters_are_refused() {
        let err = split("postgres://u@h/db?sslmode=sometimes").unwrap_err().to_string();
        assert!(err.contains("sslmode `sometimes`"), "{err}");
        let err = split("postgres://u@h/db?sslcert=/c.pem").unwrap_err().to_string();
        assert!(err.contains("`sslcert` is not supported"), "{err}");
    }
}
