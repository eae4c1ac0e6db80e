//! The blob store: tarballs by the SHA-256 of their exact bytes, each with its
//! `.minisig` beside it, at the static root's `blobs/sha256/`.

use std::io;
use std::sync::Arc;

use crate::layout::StaticRoot;

#[derive(Clone)]
pub struct BlobStore {
    root: Arc<StaticRoot>,
}

impl BlobStore {
    pub fn new(root: Arc<StaticRoot>) -> BlobStore {
        BlobStore { root }
    }

    /// Stores a tarball and its signature (on a disk blob first; in a
    /// bucket both requests at once, so for a moment a signature may show
    /// before its bytes, though no line names either yet). A blob already
    /// there is never rewritten (its name is its content). Not yet
    /// durable: the writer makes a whole group durable with one
    /// `StaticRoot::sync` before committing.
    pub fn put(&self, sha256: &str, bytes: &[u8], minisig: &str) -> io::Result<()> {
        let l = self.root.layout();
        self.root.put_new_unanswered(&l.blob(sha256), bytes)?;
        self.root.put(&l.signature(sha256), minisig.as_bytes())
    }

    /// As [`Store::put`], both files durable now (one blob outside a
    /// write group's batch, which ends with a flush of the whole root).
    pub fn put_durable(&self, sha256: &str, bytes: &[u8], minisig: &str) -> io::Result<()> {
        let l = self.root.layout();
        self.root.put_durable(&l.blob(sha256), bytes)?;
        self.root.put_durable(&l.signature(sha256), minisig.as_bytes())
    }

    pub fn read(&self, sha256: &str) -> io::Result<Option<Vec<u8>>> {
        self.root.read(&self.root.layout().blob(sha256))
    }

    pub fn read_signature(&self, sha256: &str) -> io::Result<Option<Vec<u8>>> {
        self.root.read(&self.root.layout().signature(sha256))
    }

    /// The stored tarball's size, `None` if it is not stored.
    pub fn size(&self, sha256: &str) -> io::Result<Option<u64>> {
        self.root.size(&self.root.layout().blob(sha256))
    }

    /// How long ago the tarball was stored.
    pub fn age(&self, sha256: &str) -> io::Result<Option<std::time::Duration>> {
        self.root.age(&self.root.layout().blob(sha256))
    }

    /// Every stored blob's hex name.
    pub fn list(&self) -> io::Result<Vec<String>> {
        let mut names = self.root.list(&self.root.layout().blobs_dir())?;
        names.retain(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()));
        Ok(names)
    }

    pub fn exists(&self, sha256: &str) -> bool {
        let l = self.root.layout();
        self.root.exists(&l.blob(sha256)) && self.root.exists(&l.signature(sha256))
    }

    /// Removes a blob and its signature (hard delete, or a blob no index
    /// line points at), durably.
    pub fn remove(&self, sha256: &str) -> io::Result<()> {
        let l = self.root.layout();
        self.root.remove(&l.signature(sha256))?;
        self.root.remove(&l.blob(sha256))?;
        self.root.sync()
    }
}

/// Lowercase hex SHA-256 and BLAKE3 of `bytes`.
pub fn digests(bytes: &[u8]) -> (String, String) {
    use sha2::Digest;
    let sha = sha2::Sha256::digest(bytes);
    (hex(&sha), blake3::hash(bytes).to_hex().to_string())
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
