//! The checks every downloaded tarball passes before anything is unpacked:
//! its SHA-256 (and BLAKE3, when the index line gives one) equal what was
//! asked for, and the registry's minisign signature verifies with the pinned
//! key and binds exactly this registry, name, version and both digests.

use anyhow::{bail, Result};

use super::remote::Trust;
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

pub fn verify(bytes: &[u8], minisig: &str, trust: &Trust, want: &Expected) -> Result<()> {
    let (sha256, blake3) = crate::store::digests(bytes);
    if !sha256.eq_ignore_ascii_case(&want.sha256) {
        bail!(
            "checksum mismatch for {} {}: expected SHA-256 {}, got {sha256}",
            want.name,
            want.version,
            want.sha256
        );
    }
    if let Some(b) = &want.blake3 {
        if !b.eq_ignore_ascii_case(&blake3) {
            bail!("BLAKE3 mismatch for {} {}: the index says {b}, got {blake3}", want.name, want.version);
        }
    }
    let attested = crate::sign::Attestation {
        registry: trust.name.clone(),
        name: want.name.clone(),
        version: want.version.clone(),
        sha256,
        blake3,
    };
    match crate::sign::verify_attested(&trust.pubkey, bytes, minisig, &attested) {
        Err(e @ SignatureError::Invalid(_)) => {
            bail!("bad signature on {} {}: {e} (key {})", want.name, want.version, trust.pubkey)
        }
        Err(e @ SignatureError::Mismatch { .. }) => {
            bail!("the signature on {} {} is {e}: refusing it", want.name, want.version)
        }
        Ok(()) => {}
    }
    Ok(())
}
