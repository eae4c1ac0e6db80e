//! The registry's minisign key and the one signed format: the trusted comment
//! `cairn-v1 registry={r} name={n} version={v} sha256={hex} blake3={hex}`,
//! with ` upstream={u}` after it on a version cached from an upstream
//! (SPEC section 16). Only this module writes or parses it.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// The fields a signature binds a tarball to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestation {
    pub registry: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub blake3: String,
    /// The upstream a cached version came from (none: published here).
    pub upstream: Option<String>,
}

impl Attestation {
    /// What a registry's signature of a version it published binds: its
    /// index line's fields.
    pub fn of_line(registry: &str, line: &crate::index::IndexLine) -> Attestation {
        Attestation {
            registry: registry.to_string(),
            name: line.name.clone(),
            version: line.vers.clone(),
            sha256: line.cksum.clone(),
            blake3: line.blake3.clone(),
            upstream: None,
        }
    }

    pub fn trusted_comment(&self) -> String {
        let upstream = self.upstream.as_ref().map(|u| format!(" upstream={u}")).unwrap_or_default();
        format!(
            "cairn-v1 registry={} name={} version={} sha256={} blake3={}{upstream}",
            self.registry, self.name, self.version, self.sha256, self.blake3
        )
    }

    /// Parses a trusted comment; any other shape is an error.
    pub fn parse(comment: &str) -> Result<Attestation> {
        let mut parts = comment.split(' ');
        if parts.next() != Some("cairn-v1") {
            bail!("trusted comment is not a cairn-v1 attestation");
        }
        let mut field = |key: &str| -> Result<String> {
            let part = parts.next().unwrap_or_default();
            match part.strip_prefix(key).and_then(|r| r.strip_prefix('=')) {
                Some(v) if !v.is_empty() => Ok(v.to_string()),
                _ => bail!("trusted comment lacks `{key}=`"),
            }
        };
        let mut a = Attestation {
            registry: field("registry")?,
            name: field("name")?,
            version: field("version")?,
            sha256: field("sha256")?,
            blake3: field("blake3")?,
            upstream: None,
        };
        if let Some(part) = parts.next() {
            match part.strip_prefix("upstream=") {
                Some(u) if !u.is_empty() => a.upstream = Some(u.to_string()),
                _ => bail!("trusted comment has extra fields"),
            }
        }
        if parts.next().is_some() {
            bail!("trusted comment has extra fields");
        }
        Ok(a)
    }
}

/// Why a signature is refused.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// Unparsable, legacy (`Ed`), not made by the key, or not over these bytes.
    #[error("{0:#}")]
    Invalid(anyhow::Error),
    /// Valid, but binds the bytes to another registry, package or digest.
    #[error("valid, but attests {field}={signed}, not {wanted}")]
    Mismatch { field: &'static str, signed: String, wanted: String },
}

/// [`verify`], then requires the attestation to be exactly `want`, field by
/// field: a valid signature over the wrong fields is a failure (SPEC section 4).
pub fn verify_attested(
    public_base64: &str,
    bytes: &[u8],
    minisig: &str,
    want: &Attestation,
) -> Result<(), SignatureError> {
    let got = verify(public_base64, bytes, minisig).map_err(SignatureError::Invalid)?;
    let fields = [
        ("registry", got.registry, &want.registry),
        ("name", got.name, &want.name),
        ("version", got.version, &want.version),
        ("sha256", got.sha256, &want.sha256),
        ("blake3", got.blake3, &want.blake3),
    ];
    match fields.into_iter().find(|(_, signed, wanted)| signed != *wanted) {
        Some((field, signed, wanted)) => {
            Err(SignatureError::Mismatch { field, signed, wanted: wanted.clone() })
        }
        None => Ok(()),
    }
}

/// The registry's signing key pair.
pub struct SigningKey {
    secret: minisign::SecretKey,
    public: minisign::PublicKey,
}

impl SigningKey {
    /// Generates a new key and writes the secret (mode 0600) and the public
    /// key file (standard minisign two-line format).
    /// A new key, its secret written to `secret_path` (the caller
    /// publishes [`SigningKey::public_key_file`]).
    pub fn generate(secret_path: &Path) -> Result<SigningKey> {
        let kp = minisign::KeyPair::generate_unencrypted_keypair()?;
        // Unencrypted (the server signs unattended), so stored as raw key bytes.
        write_secret(secret_path, &kp.sk.to_bytes())?;
        Ok(SigningKey { secret: kp.sk, public: kp.pk })
    }

    pub fn load(secret_path: &Path) -> Result<SigningKey> {
        let bytes =
            std::fs::read(secret_path).with_context(|| format!("reading {}", secret_path.display()))?;
        let secret = minisign::SecretKey::from_bytes(&bytes).context("loading the registry's secret key")?;
        let public = minisign::PublicKey::from_secret_key(&secret)?;
        Ok(SigningKey { secret, public })
    }

    /// A secret of its own for `context`, derived from this key: the same
    /// on every server that holds it (the npm signing key, SPEC section 18).
    pub fn derive_seed(&self, context: &str) -> [u8; 32] {
        blake3::derive_key(context, &self.secret.to_bytes())
    }

    /// The base64 line of the public key (`RW…`), as in config.json.
    pub fn public_base64(&self) -> String {
        self.public.to_base64()
    }

    /// The standard two-line `minisign.pub` file.
    pub fn public_key_file(&self) -> String {
        self.public.to_box().expect("public key encodes").into_string()
    }

    /// Signs `bytes` (prehashed, algorithm `ED`) with the attestation as the
    /// trusted comment; returns the `.minisig` file text.
    pub fn sign(&self, bytes: &[u8], att: &Attestation) -> Result<String> {
        let untrusted = format!("signature from cairn registry {}", att.registry);
        let sig = minisign::sign(
            Some(&self.public),
            &self.secret,
            bytes,
            Some(&att.trusted_comment()),
            Some(&untrusted),
        )?;
        Ok(sig.into_string())
    }
}

/// Verifies a `.minisig` over `bytes` with a base64 public key, refusing
/// legacy (non-prehashed) signatures, and returns the attestation it carries.
/// Callers compare every field with what they asked for.
pub fn verify(public_base64: &str, bytes: &[u8], minisig: &str) -> Result<Attestation> {
    let pk = minisign_verify::PublicKey::from_base64(public_base64)
        .map_err(|e| anyhow::anyhow!("bad public key: {e}"))?;
    let sig =
        minisign_verify::Signature::decode(minisig).map_err(|e| anyhow::anyhow!("bad signature: {e}"))?;
    pk.verify(bytes, &sig, false).map_err(|e| anyhow::anyhow!("signature does not verify: {e}"))?;
    Attestation::parse(sig.trusted_comment())
}

fn write_secret(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    crate::fsutil::sync_dir(path.parent().unwrap())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att() -> Attestation {
        Attestation {
            registry: "test".into(),
            name: "foo".into(),
            version: "1.0.0".into(),
            sha256: "ab".repeat(32),
            blake3: "cd".repeat(32),
            upstream: None,
        }
    }

    #[test]
    fn signs_and_verifies_with_the_attestation() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate(&dir.path().join("k")).unwrap();
        let reloaded = SigningKey::load(&dir.path().join("k")).unwrap();
        assert_eq!(key.public_base64(), reloaded.public_base64());
        let sig = reloaded.sign(b"hello", &att()).unwrap();
        assert_eq!(verify(&key.public_base64(), b"hello", &sig).unwrap(), att());
        assert!(verify(&key.public_base64(), b"hellp", &sig).is_err());
    }

    #[test]
    fn trusted_comment_round_trips_and_rejects_other_shapes() {
        assert_eq!(Attestation::parse(&att().trusted_comment()).unwrap(), att());
        assert!(Attestation::parse("timestamp:1").is_err());
        assert!(Attestation::parse(&(att().trusted_comment() + " x=y")).is_err());
        let cached = Attestation { upstream: Some("crates-io".into()), ..att() };
        assert!(cached.trusted_comment().ends_with(" upstream=crates-io"));
        assert_eq!(Attestation::parse(&cached.trusted_comment()).unwrap(), cached);
        assert!(Attestation::parse(&(cached.trusted_comment() + " x=y")).is_err());
    }
}
