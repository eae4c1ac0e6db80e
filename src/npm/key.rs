//! The registry's npm signing key (ECDSA P-256, SPEC section 18): derived
//! from its minisign key, so every server holding that key signs alike,
//! and signing deterministically (RFC 6979), so a packument derived twice
//! is the same bytes. `npm audit signatures` checks `dist.signatures`
//! against the key document at `{door}/-/npm/v1/keys`.

use base64::prelude::{Engine, BASE64_STANDARD, BASE64_STANDARD_NO_PAD};
use p256::ecdsa::signature::Signer;
use p256::pkcs8::EncodePublicKey;
use sha2::{Digest, Sha256};

use crate::sign::SigningKey;

pub struct Key {
    signing: p256::ecdsa::SigningKey,
    /// The public key as SubjectPublicKeyInfo DER, base64 (npm's `key`).
    public: String,
    /// `SHA256:{base64 of its digest}`, as npm's own key ids are written.
    pub keyid: String,
}

impl Key {
    pub fn of(registry_key: &SigningKey) -> Key {
        // A seed outside the curve's order (odds 2^-32) takes the next counter.
        let signing = (0u32..)
            .find_map(|n| {
                let seed = registry_key.derive_seed(&format!("cairn npm signing key {n}"));
                p256::ecdsa::SigningKey::from_slice(&seed).ok()
            })
            .expect("a valid scalar");
        let der =
            p256::PublicKey::from(signing.verifying_key()).to_public_key_der().expect("a P-256 key encodes");
        let keyid = format!("SHA256:{}", BASE64_STANDARD_NO_PAD.encode(Sha256::digest(der.as_bytes())));
        Key { signing, public: BASE64_STANDARD.encode(der.as_bytes()), keyid }
    }

    /// `dist.signatures[].sig`: DER, base64, over `{name}@{version}:{integrity}`.
    pub fn sign(&self, name: &str, version: &str, integrity: &str) -> String {
        let sig: p256::ecdsa::Signature =
            self.signing.sign(format!("{name}@{version}:{integrity}").as_bytes());
        BASE64_STANDARD.encode(sig.to_der().as_bytes())
    }

    /// The key document npm reads (`GET {door}/-/npm/v1/keys`).
    pub fn document(&self) -> serde_json::Value {
        serde_json::json!({ "keys": [{
            "expires": null,
            "keyid": self.keyid,
            "keytype": "ecdsa-sha2-nistp256",
            "scheme": "ecdsa-sha2-nistp256",
            "key": self.public,
        }]})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;

    #[test]
    fn signatures_are_deterministic_and_verify_with_the_published_key() {
        let dir = tempfile::tempdir().unwrap();
        let registry_key = SigningKey::generate(&dir.path().join("k")).unwrap();
        let (a, b) = (Key::of(&registry_key), Key::of(&registry_key));
        assert_eq!(a.keyid, b.keyid);
        let sig = a.sign("left-pad", "1.0.0", "sha512-abc");
        assert_eq!(sig, b.sign("left-pad", "1.0.0", "sha512-abc"));
        let der = BASE64_STANDARD.decode(&a.public).unwrap();
        let public = p256::ecdsa::VerifyingKey::from_public_key_der(&der).unwrap();
        let sig = p256::ecdsa::Signature::from_der(&BASE64_STANDARD.decode(sig).unwrap()).unwrap();
        assert!(public.verify(b"left-pad@1.0.0:sha512-abc", &sig).is_ok());
        assert!(public.verify(b"left-pad@1.0.1:sha512-abc", &sig).is_err());
    }
}
