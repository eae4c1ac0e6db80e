//! The local cache under `$XDG_CACHE_HOME/cairn`:
//!
//! ```text
//! blobs/sha256/{hex}                      tarballs, content-addressed, shared by every registry
//! registries/{key}/sigs/{hex}.minisig     each registry's signature of a blob
//! registries/{key}/index/{path}           sparse index files, with {path}.etag beside them
//! ```
//!
//! Only verified blobs are written; every read is verified again by the caller.

use anyhow::Result;
use sha2::Digest;
use std::path::{Path, PathBuf};

use super::config::cache_dir;

// Cache files are written with `fsutil::write_replace` (temp file + rename,
// no fsync): an entry lost or torn by a crash costs a download (blobs are
// verified on every read, a bad index body is refetched), so the cache does
// not pay for durability.

pub struct Cache {
    pub root: PathBuf,
    registry: PathBuf,
}

/// A file-system-safe, collision-free key for a registry URL.
pub fn registry_key(url: &str) -> String {
    let host = url.split("://").nth(1).unwrap_or(url);
    let readable: String =
        host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).take(48).collect();
    let hash = crate::store::hex(&sha2::Sha256::digest(url.as_bytes()));
    format!("{readable}-{}", &hash[..12])
}

impl Cache {
    pub fn open(url: &str) -> Result<Cache> {
        Ok(Cache::at(&cache_dir()?, url))
    }

    pub fn at(root: &Path, url: &str) -> Cache {
        Cache { root: root.to_path_buf(), registry: root.join("registries").join(registry_key(url)) }
    }

    fn index_path(&self, path: &str) -> PathBuf {
        self.registry.join("index").join(path)
    }

    /// The cached ETag and body of an index file.
    pub fn index_get(&self, path: &str) -> Option<(String, Vec<u8>)> {
        let p = self.index_path(path);
        let etag = std::fs::read_to_string(p.with_extension("etag")).ok()?;
        let body = std::fs::read(&p).ok()?;
        Some((etag, body))
    }

    /// Best effort: a cache that cannot be written only costs a download.
    pub fn index_put(&self, path: &str, etag: &str, body: &[u8]) {
        let p = self.index_path(path);
        let _ = crate::fsutil::write_replace(&p, body)
            .and_then(|_| crate::fsutil::write_replace(&p.with_extension("etag"), etag.as_bytes()));
    }

    pub fn index_remove(&self, path: &str) {
        let p = self.index_path(path);
        let _ = std::fs::remove_file(p.with_extension("etag"));
        let _ = std::fs::remove_file(p);
    }

    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(sha256)
    }

    fn sig_path(&self, sha256: &str) -> PathBuf {
        self.registry.join("sigs").join(format!("{sha256}.minisig"))
    }

    pub fn blob_get(&self, sha256: &str) -> Option<(Vec<u8>, String)> {
        let sig = std::fs::read_to_string(self.sig_path(sha256)).ok()?;
        let bytes = std::fs::read(self.blob_path(sha256)).ok()?;
        Some((bytes, sig))
    }

    /// Stores a verified blob and its signature (blob first).
    pub fn blob_put(&self, sha256: &str, bytes: &[u8], sig: &str) -> Result<()> {
        let blob = self.blob_path(sha256);
        if !blob.is_file() {
            crate::fsutil::write_replace(&blob, bytes)?;
        }
        crate::fsutil::write_replace(&self.sig_path(sha256), sig.as_bytes())?;
        Ok(())
    }
}
