//! The log's keys and the signed notes they make (C2SP signed-note,
//! tlog-checkpoint, tlog-cosignature/v1): the checkpoint's signature (key
//! type 0x01) and the cosignatures with a time (type 0x04), the registry's
//! own and witnesses'. Bytes in `index/log.md`.
//!
//! The log keys are Ed25519 keys of their own, not the minisign key: a
//! signature made for one protocol must never verify in another, and the
//! cosignature spec asks a distinct key of each cosigner.

use anyhow::{anyhow, bail, Context, Result};
use base64::prelude::{Engine, BASE64_STANDARD};
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use signed_note::{Note, Signature, VerifierList};
use std::path::Path;
use tlog_tiles::Checkpoint;

/// A checkpoint's signature.
pub const ALG_NOTE: u8 = 0x01;
/// A tlog-cosignature/v1 (timestamped) signature.
pub const ALG_COSIGN: u8 = 0x04;

/// A private key with its name (the log's origin, a witness's name) and type.
pub struct Key {
    name: String,
    alg: u8,
    key: SigningKey,
}

/// A public key, from a verifier key string `{name}+{id hex}+{base64(type ‖ key)}`.
#[derive(Clone)]
pub struct PublicKey {
    pub name: String,
    pub alg: u8,
    pub id: u32,
    key: VerifyingKey,
}

fn key_id(name: &str, alg: u8, public: &VerifyingKey) -> u32 {
    signed_note::key_id(name, &[&[alg], public.as_bytes().as_slice()].concat())
}

impl Key {
    /// A key from a known seed (the golden vectors).
    #[cfg(test)]
    pub fn from_seed(name: &str, alg: u8, seed: [u8; 32]) -> Key {
        Key { name: name.to_string(), alg, key: SigningKey::from_bytes(&seed) }
    }

    /// A key of its own for `name`, derived from this one: the same on
    /// every server that holds this key (a private organisation's log,
    /// whose keys no server then has to hand to another).
    pub fn derive(&self, name: &str, alg: u8) -> Result<Key> {
        if !signed_note::is_key_name_valid(name) {
            bail!("{name:?} cannot name a log key (no spaces or '+')");
        }
        let seed = blake3::derive_key(&format!("cairn log key {alg} {name}"), &self.key.to_bytes());
        Ok(Key { name: name.to_string(), alg, key: SigningKey::from_bytes(&seed) })
    }

    pub fn generate(name: &str, alg: u8) -> Result<Key> {
        if !signed_note::is_key_name_valid(name) {
            bail!("{name:?} cannot name a log key (no spaces or '+')");
        }
        Ok(Key { name: name.to_string(), alg, key: SigningKey::generate(&mut rand::rngs::OsRng) })
    }

    /// Reads a key file (`PRIVATE+KEY+{name}+{id}+{base64(type ‖ seed)}`, the
    /// signed-note private key form).
    pub fn load(path: &Path) -> Result<Key> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        // base64 may hold '+': the last field is the rest of the line.
        let f: Vec<&str> = text.trim_end().splitn(5, '+').collect();
        let bytes = match f.as_slice() {
            ["PRIVATE", "KEY", _, _, b64] => BASE64_STANDARD.decode(b64)?,
            _ => bail!("{} is not a log key file", path.display()),
        };
        let (alg, seed) = bytes.split_first().context("empty key")?;
        let seed: [u8; 32] =
            seed.try_into().map_err(|_| anyhow!("{}: not an Ed25519 key", path.display()))?;
        let key = Key { name: f[2].to_string(), alg: *alg, key: SigningKey::from_bytes(&seed) };
        if format!("{:08x}", key.id()) != f[3] {
            bail!("{}: the key ID does not match the key", path.display());
        }
        Ok(key)
    }

    /// Writes the key file durably, readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let seed = [&[self.alg], self.key.to_bytes().as_slice()].concat();
        let text = format!("PRIVATE+KEY+{}+{:08x}+{}\n", self.name, self.id(), BASE64_STANDARD.encode(seed));
        crate::fsutil::write_atomic(path, text.as_bytes())?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        key_id(&self.name, self.alg, &self.key.verifying_key())
    }

    /// The verifier key string clients pin.
    pub fn vkey(&self) -> String {
        let public = [&[self.alg], self.key.verifying_key().as_bytes().as_slice()].concat();
        format!("{}+{:08x}+{}", self.name, self.id(), BASE64_STANDARD.encode(public))
    }

    /// This key's signature line over a note's `text` (a cosignature at `time`).
    fn sign(&self, text: &[u8], time: u64) -> Result<Signature> {
        let sig = match self.alg {
            ALG_NOTE => self.key.sign(text).to_bytes().to_vec(),
            ALG_COSIGN => {
                let sig = self.key.sign(&cosigned_message(text, time));
                [time.to_be_bytes().as_slice(), sig.to_bytes().as_slice()].concat()
            }
            other => bail!("unknown log key type {other:#04x}"),
        };
        Ok(Signature::new(self.name.clone(), self.id(), sig)?)
    }
}

/// What a tlog-cosignature/v1 signs: a header, the time, the note's text.
fn cosigned_message(text: &[u8], time: u64) -> Vec<u8> {
    [format!("cosignature/v1\ntime {time}\n").as_bytes(), text].concat()
}

impl PublicKey {
    pub fn parse(vkey: &str) -> Result<PublicKey> {
        let bad = || anyhow!("{vkey:?} is not a verifier key (name+id+key)");
        let mut f = vkey.trim().splitn(3, '+');
        let (name, id, b64) =
            (f.next().ok_or_else(bad)?, f.next().ok_or_else(bad)?, f.next().ok_or_else(bad)?);
        let bytes = BASE64_STANDARD.decode(b64).map_err(|_| bad())?;
        let (alg, key) = bytes.split_first().ok_or_else(bad)?;
        let key: [u8; 32] = key.try_into().map_err(|_| bad())?;
        let key = VerifyingKey::from_bytes(&key).map_err(|_| bad())?;
        let id = u32::from_str_radix(id, 16).map_err(|_| bad())?;
        if !signed_note::is_key_name_valid(name) || ![ALG_NOTE, ALG_COSIGN].contains(alg) {
            return Err(bad());
        }
        if id != key_id(name, *alg, &key) {
            bail!("{vkey:?}: its key ID does not match its key");
        }
        Ok(PublicKey { name: name.to_string(), alg: *alg, id, key })
    }
}

impl signed_note::Verifier for PublicKey {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, text: &[u8], sig: &[u8]) -> bool {
        let check = |msg: &[u8], sig: &[u8]| {
            ed25519_dalek::Signature::from_slice(sig).is_ok_and(|s| self.key.verify(msg, &s).is_ok())
        };
        match self.alg {
            ALG_NOTE => check(text, sig),
            ALG_COSIGN if sig.len() == 72 => {
                let time = u64::from_be_bytes(sig[..8].try_into().expect("8 bytes"));
                time < 1 << 63 && check(&cosigned_message(text, time), &sig[8..])
            }
            _ => false,
        }
    }
}

/// Signs a checkpoint body with the log's key and cosigns it with the
/// registry's time key at `time`; `others` (witnesses' cosignatures of the
/// same body) are kept.
pub fn sign(body: &[u8], note_key: &Key, time_key: &Key, time: u64, others: &[Signature]) -> Result<Vec<u8>> {
    let mut sigs = vec![note_key.sign(body, 0)?, time_key.sign(body, time)?];
    sigs.extend(others.iter().filter(|s| s.name() != note_key.name()).cloned());
    Ok(Note::new(body, &sigs)?.to_bytes())
}

/// A cosignature of `body` by `key` at `time` (what a witness adds).
pub fn cosign(body: &[u8], key: &Key, time: u64) -> Result<Signature> {
    key.sign(body, time)
}

/// The signature lines of a signed note whose text is `body` (`None`: a
/// note of another text, or not a note).
pub fn signatures_of(note: &[u8], body: &[u8]) -> Option<Vec<Signature>> {
    let rest = note.strip_prefix(body)?.strip_prefix(b"\n")?;
    rest.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| Signature::from_bytes(l).ok()).collect()
}

/// Seconds since the epoch, the time of a cosignature.
pub fn now() -> u64 {
    chrono::Utc::now().timestamp().max(0) as u64
}

/// A checkpoint whose signatures checked out.
#[derive(Debug)]
pub struct Verified {
    pub checkpoint: Checkpoint,
    /// The note's text (the checkpoint body).
    pub body: Vec<u8>,
    /// The newest time among the trusted cosignatures (registry and witnesses).
    pub newest_time: u64,
    /// Names of the witnesses whose cosignature verified.
    pub witnesses: Vec<String>,
    /// Every signature line of the note, verified or not.
    pub signatures: Vec<Signature>,
}

/// Why a checkpoint was refused: its signatures.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("the checkpoint is not a signed note: {0}")]
    Malformed(String),
    #[error("the checkpoint's signature by {0} does not verify")]
    BadSignature(String),
    #[error("the checkpoint has no valid signature by the log key {0}")]
    Unsigned(String),
    #[error("the checkpoint is for log {found:?}, not {wanted:?}")]
    Origin { found: String, wanted: String },
}

/// Verifies a checkpoint's note: the log's signature (required), the
/// registry's time cosignature (if its key is given: a witness checks the
/// log's signature only) and any of `witnesses` (counted).
pub fn verify(
    bytes: &[u8],
    note_key: &PublicKey,
    time_key: Option<&PublicKey>,
    witnesses: &[PublicKey],
) -> Result<Verified, CheckpointError> {
    let note = Note::from_bytes(bytes).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    let mut known: Vec<Box<dyn signed_note::Verifier>> = vec![Box::new(note_key.clone())];
    known.extend(time_key.map(|k| Box::new(k.clone()) as Box<dyn signed_note::Verifier>));
    known.extend(witnesses.iter().cloned().map(|w| Box::new(w) as Box<dyn signed_note::Verifier>));
    let (verified, unverified) = note.verify(&VerifierList::new(known)).map_err(|e| match e {
        signed_note::NoteError::InvalidSignature { name, .. } => CheckpointError::BadSignature(name),
        signed_note::NoteError::UnverifiedNote => CheckpointError::Unsigned(note_key.name.clone()),
        other => CheckpointError::Malformed(other.to_string()),
    })?;
    let by = |k: &PublicKey| verified.iter().find(|s| s.name() == k.name && s.id() == k.id);
    if by(note_key).is_none() {
        return Err(CheckpointError::Unsigned(note_key.name.clone()));
    }
    let time_of =
        |s: &Signature| u64::from_be_bytes(s.signature()[..8].try_into().expect("verified: 72 bytes"));
    let mut newest_time = time_key.and_then(&by).map_or(0, time_of);
    let mut names = Vec::new();
    for w in witnesses {
        if let Some(s) = by(w) {
            newest_time = newest_time.max(time_of(s));
            names.push(w.name.clone());
        }
    }
    let checkpoint =
        Checkpoint::from_bytes(note.text()).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    if checkpoint.origin() != note_key.name {
        return Err(CheckpointError::Origin {
            found: checkpoint.origin().to_string(),
            wanted: note_key.name.clone(),
        });
    }
    let mut signatures = verified;
    signatures.extend(unverified);
    Ok(Verified { checkpoint, body: note.text().to_vec(), newest_time, witnesses: names, signatures })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Vec<u8> {
        b"example.com/log\n3\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n".to_vec()
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_a_changed_one_does_not() {
        let (note, time) = (
            Key::generate("example.com/log", ALG_NOTE).unwrap(),
            Key::generate("example.com/log", ALG_COSIGN).unwrap(),
        );
        let witness = Key::generate("witness.example/w1", ALG_COSIGN).unwrap();
        let signed =
            sign(&body(), &note, &time, 1_700_000_000, &[cosign(&body(), &witness, 1_700_000_100).unwrap()])
                .unwrap();
        let keys = |k: &Key| PublicKey::parse(&k.vkey()).unwrap();
        let v = verify(&signed, &keys(&note), Some(&keys(&time)), &[keys(&witness)]).unwrap();
        assert_eq!(v.checkpoint.size(), 3);
        assert_eq!(v.newest_time, 1_700_000_100);
        assert_eq!(v.witnesses, vec!["witness.example/w1"]);
        // Without the witness key its line is kept, not counted.
        assert_eq!(
            verify(&signed, &keys(&note), Some(&keys(&time)), &[]).unwrap().newest_time,
            1_700_000_000
        );
        let forged = String::from_utf8(signed).unwrap().replacen("\n3\n", "\n4\n", 1);
        assert!(matches!(
            verify(forged.as_bytes(), &keys(&note), Some(&keys(&time)), &[]),
            Err(CheckpointError::BadSignature(_))
        ));
        let other = Key::generate("example.com/log", ALG_NOTE).unwrap();
        assert!(verify(forged.as_bytes(), &keys(&other), Some(&keys(&time)), &[]).is_err());
    }

    #[test]
    fn keys_round_trip_through_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = Key::generate("example.com/log", ALG_COSIGN).unwrap();
        key.save(&dir.path().join("k")).unwrap();
        let back = Key::load(&dir.path().join("k")).unwrap();
        assert_eq!(back.vkey(), key.vkey());
        assert!(PublicKey::parse(&key.vkey().replace("+", "-")).is_err());
    }
}
