//! The local cache under `$XDG_CACHE_HOME/cairn`:
//!
//! ```text
//! registries/{key}/blobs/{hex}            a tarball with this registry's signature of it:
//!                                         `{signature length}\n`, the signature, the bytes
//! registries/{key}/entries/{static key}    index files and the like: `{length} {etag}\n` then the body
//! ```
//!
//! Only verified blobs are written; every read is verified again by the caller.
//! A blob and its signature are one file (an install writes and reads some
//! 300 of each), kept per registry: a tarball published in two registries is
//! cached twice, each copy with the signature that registry made.

use anyhow::Result;
use sha2::Digest;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use super::config::cache_dir;

// Cache files are written without fsync: an entry lost or torn by a crash
// costs a download (blobs are verified on every read, a bad index body is
// refetched), so the cache does not pay for durability. A file that is not
// there yet is written under its own name (a reader takes it only once it is
// whole: an index body before its ETag, a blob or signature verified on
// every read; an index entry only if its body has the length its first line
// gives, so a torn one is a miss); one that is there is replaced by
// `fsutil::write_replace` (temp file + rename), so a reader sees the old file
// or the new one. An index entry is one file, its ETag in its first line, not
// a body and an ETag beside it: a cold install writes some 300 of them.

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

    /// The file of a revalidated entry, by its static-root key: not under
    /// `index/`, where an earlier client kept an index file's body and its
    /// `.etag` apart, so that neither misreads the other's.
    fn entry_path(&self, key: &str) -> PathBuf {
        self.registry.join("entries").join(key)
    }

    /// The cached ETag and body of a file of the registry (an index file).
    pub fn entry_get(&self, key: &str) -> Option<(String, Vec<u8>)> {
        decode_entry(std::fs::read(self.entry_path(key)).ok()?)
    }

    /// Best effort: a cache that cannot be written only costs a download.
    pub fn entry_put(&self, key: &str, etag: &str, body: &[u8]) {
        // A header value has no line break; an empty ETag is no validator.
        if etag.is_empty() || etag.contains('\n') {
            return;
        }
        let mut entry = format!("{} {etag}\n", body.len()).into_bytes();
        entry.extend_from_slice(body);
        let _ = put(&self.entry_path(key), &entry);
    }

    pub fn entry_remove(&self, key: &str) {
        let _ = std::fs::remove_file(self.entry_path(key));
    }

    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.registry.join("blobs").join(sha256)
    }

    /// A cached blob and its signature; `None` when there is none or its
    /// head is torn (torn bytes fail the caller's verification).
    pub fn blob_get(&self, sha256: &str) -> Option<(Vec<u8>, String)> {
        let mut file = std::fs::read(self.blob_path(sha256)).ok()?;
        let eol = file.iter().position(|&b| b == b'\n')?;
        let len: usize = std::str::from_utf8(&file[..eol]).ok()?.parse().ok()?;
        let sig = file.get(eol + 1..eol + 1 + len)?;
        let sig = String::from_utf8(sig.to_vec()).ok()?;
        file.drain(..eol + 1 + len);
        Some((file, sig))
    }

    /// Stores a verified blob and its signature. A blob the cache holds
    /// already is replaced by these bytes, verified (it did not verify, or
    /// it would not have been downloaded again).
    pub fn blob_put(&self, sha256: &str, bytes: &[u8], sig: &str) -> Result<()> {
        let mut file = format!("{}\n{sig}", sig.len()).into_bytes();
        file.extend_from_slice(bytes);
        put(&self.blob_path(sha256), &file)?;
        Ok(())
    }
}

/// An index entry's ETag and body; `None` for a torn or foreign file.
fn decode_entry(mut entry: Vec<u8>) -> Option<(String, Vec<u8>)> {
    let eol = entry.iter().position(|&b| b == b'\n')?;
    let head = std::str::from_utf8(&entry[..eol]).ok()?;
    let (len, etag) = head.split_once(' ')?;
    let len: usize = len.parse().ok()?;
    if entry.len() - eol - 1 != len || etag.is_empty() {
        return None;
    }
    let etag = etag.to_string();
    entry.drain(..=eol);
    Some((etag, entry))
}

/// Writes `bytes` to `path`: in place when there is no such file, else by
/// a temporary sibling renamed over it.
fn put(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    match put_new(path, bytes) {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => crate::fsutil::write_replace(path, bytes),
        r => r,
    }
}

/// Creates `path` holding `bytes` (and its directory when missing); a file
/// there already is an `AlreadyExists` error, and a failed write leaves none.
fn put_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let create = || std::fs::OpenOptions::new().write(true).create_new(true).open(path);
    let mut file = match create() {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            std::fs::create_dir_all(path.parent().expect("a cache file has a parent directory"))?;
            create()?
        }
        r => r?,
    };
    file.write_all(bytes).inspect_err(|_| {
        let _ = std::fs::remove_file(path);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_written_in_place_then_replaced() {
        let root = tempfile::tempdir().unwrap();
        let cache = Cache::at(root.path(), "http://example.test");
        assert!(cache.entry_get("index/3/a/abc").is_none());
        cache.entry_put("index/3/a/abc", "\"one\"", b"line 1\n");
        assert_eq!(cache.entry_get("index/3/a/abc"), Some(("\"one\"".to_string(), b"line 1\n".to_vec())));
        cache.entry_put("index/3/a/abc", "\"two\"", b"line 1\nline 2\n");
        assert_eq!(
            cache.entry_get("index/3/a/abc"),
            Some(("\"two\"".to_string(), b"line 1\nline 2\n".to_vec()))
        );
        // A torn entry (cut short by a crash or read while written) is a miss.
        let file = cache.entry_path("index/3/a/abc");
        let whole = std::fs::read(&file).unwrap();
        std::fs::write(&file, &whole[..whole.len() - 3]).unwrap();
        assert!(cache.entry_get("index/3/a/abc").is_none());
        cache.entry_put("index/3/a/abc", "\"two\"", b"line 1\nline 2\n");

        assert!(cache.blob_get("ab12").is_none());
        cache.blob_put("ab12", b"tampered", "sig one").unwrap();
        cache.blob_put("ab12", b"bytes\n", "sig\ntwo\n").unwrap();
        assert_eq!(cache.blob_get("ab12"), Some((b"bytes\n".to_vec(), "sig\ntwo\n".to_string())));
        // A blob's file cut inside its signature is a miss; cut later, its
        // bytes are short (and fail verification).
        let file = cache.blob_path("ab12");
        let whole = std::fs::read(&file).unwrap();
        std::fs::write(&file, &whole[..6]).unwrap();
        assert!(cache.blob_get("ab12").is_none());
        std::fs::write(&file, &whole[..whole.len() - 2]).unwrap();
        assert_eq!(cache.blob_get("ab12"), Some((b"byte".to_vec(), "sig\ntwo\n".to_string())));
        // One file per entry and per blob: no temporary file is left behind.
        let mut names: Vec<String> = walk(root.path());
        names.sort();
        assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
        assert_eq!(names.len(), 2, "{names:?}");
    }

    fn walk(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .flat_map(|e| {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p)
                } else {
                    vec![p.display().to_string()]
                }
            })
            .collect()
    }
}
