//! The checks every downloaded tarball passes before anything is unpacked:
//! its SHA-256 (and BLAKE3, when the index line gives one) equal what was
//! asked for, and the registry's minisign signature verifies with the pinned
//! key and binds exactly this registry, name, version and both digests.

use super::trust::Trust;
use crate::sign::SignatureError;

/// What the client asked for: from an index line or a lock entry.
#[derive(Debug, Clone)]
pub struct Expected {
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// The index line's BLAKE3; `None` when installing from a lock file.
    pub blake3: Option<String>,
}

impl Expected {
    pub fn from_line(line: &crate::index::IndexLine) -> Expected {
        Expected {
            name: line.name.clone(),
            version: line.vers.clone(),
            sha256: line.cksum.clone(),
            blake3: Some(line.blake3.clone()).filter(|b| !b.is_empty()),
        }
    }
}

/// Why a blob was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("checksum mismatch for {name} {version}: expected SHA-256 {expected}, got {got}")]
    Sha256 { name: String, version: String, expected: String, got: String },
    #[error("BLAKE3 mismatch for {name} {version}: the index says {expected}, got {got}")]
    Blake3 { name: String, version: String, expected: String, got: String },
    #[error("bad signature on {name} {version}: {error} (key {key})")]
    BadSignature { name: String, version: String, key: String, error: Box<SignatureError> },
    #[error("the signature on {name} {version} is {error}: refusing it")]
    Unattested { name: String, version: String, error: Box<SignatureError> },
}

pub fn verify(bytes: &[u8], minisig: &str, trust: &Trust, want: &Expected) -> Result<(), VerifyError> {
    let (name, version) = (want.name.clone(), want.version.clone());
    let (sha256, blake3) = crate::store::digests(bytes);
    if !sha256.eq_ignore_ascii_case(&want.sha256) {
        return Err(VerifyError::Sha256 { name, version, expected: want.sha256.clone(), got: sha256 });
    }
    if let Some(b) = &want.blake3 {
        if !b.eq_ignore_ascii_case(&blake3) {
            return Err(VerifyError::Blake3 { name, version, expected: b.clone(), got: blake3 });
        }
    }
    let attested = crate::sign::Attestation {
        registry: trust.name.clone(),
        name: want.name.clone(),
        version: want.version.clone(),
        sha256,
        blake3,
        upstream: None,
    };
    match crate::sign::verify_attested(&trust.pubkey, bytes, minisig, &attested) {
        Err(error @ SignatureError::Invalid(_)) => Err(VerifyError::BadSignature {
            name,
            version,
            key: trust.pubkey.clone(),
            error: Box::new(error),
        }),
        Err(error @ SignatureError::Mismatch { .. }) => {
            Err(VerifyError::Unattested { name, version, error: Box::new(error) })
        }
        Ok(()) => Ok(()),
    }
}
