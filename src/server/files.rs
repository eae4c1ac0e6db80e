//! The embedded static file server for the whole static root: the same
//! answers a CDN or nginx in front of the static root would give (ETag and
//! 304, the Cache-Control of SPEC section 6, Content-Type).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use warp::http::{header, Response, StatusCode};
use warp::hyper::Body;

/// Maps a URL path to a file under `root`; refuses traversal and dotfiles
/// (temporary files of atomic writes start with a dot).
pub fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    for seg in url_path.split('/').filter(|s| !s.is_empty()) {
        let seg = super::url::decode_segment(seg);
        if seg.starts_with('.') || seg.contains(['/', '\\', '\0']) {
            return None;
        }
        path.push(seg);
    }
    Some(path)
}

/// Cache-Control by path, as SPEC section 6 lists it.
pub fn cache_control(url_path: &str) -> &'static str {
    let p = url_path;
    if p.starts_with("/blobs/") {
        "public, max-age=31536000, immutable"
    } else if p.starts_with("/index/") || p.starts_with("/index.git/") {
        "public, max-age=60"
    } else if p == "/minisign.pub" {
        "public, max-age=300"
    } else if p == "/api/v1/health.json" {
        "public, max-age=10"
    } else if p.starts_with("/api/v1/search/") && p != "/api/v1/search/manifest.json" {
        "public, max-age=31536000, immutable"
    } else if p.starts_with("/api/v1/advisories/") || p.ends_with("stats.json") {
        "public, max-age=300"
    } else if p.starts_with("/api/v1/") {
        "public, max-age=60"
    } else {
        "public, max-age=300"
    }
}

fn content_type(url_path: &str, head: &[u8]) -> &'static str {
    let ext = url_path.rsplit('/').next().and_then(|f| f.rsplit_once('.')).map(|(_, e)| e);
    match ext {
        Some("json") => "application/json",
        Some("html") => "text/html; charset=utf-8",
        Some("md") => "text/markdown; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("minisig") | Some("pub") => "text/plain; charset=utf-8",
        Some("pack") | Some("idx") => "application/octet-stream",
        _ if url_path.starts_with("/blobs/") => {
            if head.starts_with(&[0x1f, 0x8b]) {
                "application/gzip"
            } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                "application/zstd"
            } else {
                "application/octet-stream"
            }
        }
        _ if url_path.starts_with("/index.git/objects/") => "application/octet-stream",
        _ => "text/plain; charset=utf-8",
    }
}

/// A strong validator from the file's identity: atomic writes replace the
/// inode, so (inode, size, mtime) changes whenever the content does.
fn etag(meta: &std::fs::Metadata) -> String {
    format!(
        "\"{:x}-{:x}-{:x}\"",
        meta.ino(),
        meta.len(),
        meta.mtime_nsec() as u64 ^ (meta.mtime() as u64) << 30
    )
}

fn etag_matches(if_none_match: &str, tag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == tag)
}

/// Serves `url_path` from `root`; `None` when there is no such file.
/// Files up to this size are read without leaving the async task.
const INLINE_MAX: u64 = 64 * 1024;

pub async fn serve(
    root: &Path,
    url_path: &str,
    if_none_match: Option<&str>,
    head_only: bool,
) -> Option<Response<Body>> {
    let path = resolve(root, url_path)?;
    let inm = if_none_match.map(str::to_string);
    let url_path = url_path.to_string();
    // Small files (index files, documents: the bulk of requests) are read
    // right here, as nginx does in its event loop: from the page cache that
    // costs microseconds, less than a hop to the blocking pool and back.
    // Anything larger takes one trip to the blocking pool. Either way the
    // file is opened once and stat'ed open, so the ETag describes the bytes
    // read even if the file is replaced meanwhile.
    if std::fs::metadata(&path).is_ok_and(|m| m.len() <= INLINE_MAX) {
        return read_file(path, &url_path, inm.as_deref(), head_only);
    }
    tokio::task::spawn_blocking(move || read_file(path, &url_path, inm.as_deref(), head_only)).await.ok()?
}

fn read_file(
    mut path: PathBuf,
    url_path: &str,
    inm: Option<&str>,
    head_only: bool,
) -> Option<Response<Body>> {
    use std::io::Read;
    let mut file = std::fs::File::open(&path).ok()?;
    let mut meta = file.metadata().ok()?;
    let mut url_path = url_path.to_string();
    if meta.is_dir() {
        path.push("index.html");
        file = std::fs::File::open(&path).ok()?;
        meta = file.metadata().ok()?;
        url_path = format!("{}/index.html", url_path.trim_end_matches('/'));
    }
    if !meta.is_file() {
        return None;
    }
    let tag = etag(&meta);
    let builder = Response::builder()
        .header(header::ETAG, &tag)
        .header(header::CACHE_CONTROL, cache_control(&url_path));
    if inm.is_some_and(|inm| etag_matches(inm, &tag)) {
        return Some(builder.status(StatusCode::NOT_MODIFIED).body(Body::empty()).unwrap());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).ok()?;
    let builder = builder
        .header(header::CONTENT_TYPE, content_type(&url_path, &bytes[..bytes.len().min(4)]))
        .header(header::CONTENT_LENGTH, bytes.len());
    let body = if head_only { Body::empty() } else { Body::from(bytes) };
    Some(builder.status(StatusCode::OK).body(body).unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_traversal_and_dotfiles() {
        let root = Path::new("/srv");
        assert_eq!(resolve(root, "/index/config.json"), Some(PathBuf::from("/srv/index/config.json")));
        assert_eq!(resolve(root, "/a/../b"), None);
        assert_eq!(resolve(root, "/a/%2e%2e/b"), None);
        assert_eq!(resolve(root, "/a/%2Fb"), None);
        assert_eq!(resolve(root, "/blobs/.tmp-1-2"), None);
    }

    #[test]
    fn cache_control_follows_the_spec_table() {
        assert_eq!(cache_control("/blobs/sha256/ab"), "public, max-age=31536000, immutable");
        assert_eq!(cache_control("/index/3/a/abc"), "public, max-age=60");
        assert_eq!(cache_control("/api/v1/health.json"), "public, max-age=10");
        assert_eq!(cache_control("/minisign.pub"), "public, max-age=300");
        assert_eq!(cache_control("/"), "public, max-age=300");
    }

    #[test]
    fn if_none_match_accepts_lists_and_weak_tags() {
        assert!(etag_matches("\"a\", W/\"b\"", "\"b\""));
        assert!(!etag_matches("\"a\"", "\"b\""));
    }
}
