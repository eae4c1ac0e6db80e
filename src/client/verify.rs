//! The checks every downloaded tarball passes before anything is unpacked:
//! its SHA-256 (and BLAKE3, when the index line gives one) equal what was
//! asked for, and the registry's minisign signature verifies with the pinned
//! key and binds exactly this registry, name, version and both digests.

use anyhow::{bail, Result};

use super::remote::Trust;

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
    let att = crate::sign::verify(&trust.pubkey, bytes, minisig).map_err(|e| {
        anyhow::anyhow!("bad signature on {} {}: {e:#} (key {})", want.name, want.version, trust.pubkey)
    })?;
    let fields = [
        ("registry", &att.registry, &trust.name),
        ("name", &att.name, &want.name),
        ("version", &att.version, &want.version),
        ("sha256", &att.sha256, &sha256),
        ("blake3", &att.blake3, &blake3),
    ];
    for (field, signed, wanted) in fields {
        if signed != wanted {
            bail!(
                "the signature on {} {} is valid but attests {field}={signed}, not {wanted}: refusing it",
                want.name,
                want.version
            );
        }
    }
    Ok(())
}
