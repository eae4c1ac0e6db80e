//! The blob store: tarballs by the SHA-256 of their exact bytes, each with its
//! `.minisig` beside it, under `static/blobs/sha256/`.

use std::io;
use std::path::{Path, PathBuf};

use crate::fsutil;

#[derive(Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    pub fn new(static_root: &Path) -> BlobStore {
        BlobStore { dir: static_root.join("blobs").join("sha256") }
    }

    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256)
    }

    pub fn sig_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.minisig"))
    }

    /// The URL path of a blob under the static root.
    pub fn url_path(sha256: &str) -> String {
        format!("/blobs/sha256/{sha256}")
    }

    /// Stores a tarball and its signature (blob first: a signature never
    /// exists without its bytes). Not yet durable: the writer makes a whole
    /// group durable with one `fsutil::sync_filesystem` before committing.
    pub fn put(&self, sha256: &str, bytes: &[u8], minisig: &str) -> io::Result<()> {
        fsutil::write_replace(&self.blob_path(sha256), bytes)?;
        fsutil::write_replace(&self.sig_path(sha256), minisig.as_bytes())
    }

    pub fn exists(&self, sha256: &str) -> bool {
        self.blob_path(sha256).is_file() && self.sig_path(sha256).is_file()
    }

    /// Removes a blob and its signature (hard delete, or a blob no index
    /// line points at).
    pub fn remove(&self, sha256: &str) -> io::Result<()> {
        for p in [self.sig_path(sha256), self.blob_path(sha256)] {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        fsutil::sync_dir(&self.dir)
    }

    /// Every stored blob's hex name.
    pub fn list(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for entry in rd {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                out.push(name);
            }
        }
        Ok(out)
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
