//! The embedded static file server for the whole static root, with the
//! serving rules of SPEC section 6 that nginx and a CDN in front keep too:
//! GET and HEAD, ETag and 304, gzip and br with `Vary: Accept-Encoding`,
//! `Range` on blobs, `Access-Control-Allow-Origin: *` on public reads, and
//! the headers of `layout::cache_control` and `layout::content_type`.
//!
//! Small files (index files, documents, search files, small tarballs) are
//! answered from the [`HotCache`]: their bytes, validator and compressed
//! variants are kept in memory, each variant compressed once per file
//! version. Larger files are read through the static root's storage on the
//! blocking pool (blobs up to a size) or streamed.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;
use std::io::{Read, Seek};
use std::sync::Arc;

use super::body::{empty, full, Body};
use super::hot::{Encoding, Entry, HotCache};
use crate::layout::{self, Key, ReadSeek, StaticRoot};

/// The static-root key a URL path names (its segments percent-decoded);
/// `None` for traversal and dotfiles ([`Key::from_segments`]).
pub fn key_of(url_path: &str) -> Option<Key> {
    Key::from_segments(url_path.split('/').map(super::url::decode_segment))
}

/// What a read asks for, beyond the path.
pub struct Ask<'a> {
    pub head: bool,
    pub if_none_match: Option<&'a str>,
    pub accept_encoding: Option<&'a str>,
    pub range: Option<&'a str>,
    pub if_range: Option<&'a str>,
}

impl<'a> Ask<'a> {
    /// A plain GET: whole, uncompressed, unconditional.
    pub fn plain() -> Ask<'static> {
        Ask { head: false, if_none_match: None, accept_encoding: None, range: None, if_range: None }
    }

    pub fn of(method: &Method, headers: &'a HeaderMap) -> Ask<'a> {
        let h = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
        Ask {
            head: method == Method::HEAD,
            if_none_match: h(header::IF_NONE_MATCH),
            accept_encoding: h(header::ACCEPT_ENCODING),
            range: h(header::RANGE),
            if_range: h(header::IF_RANGE),
        }
    }
}

/// The static root as `cairn serve` reads it.
pub struct Files {
    root: Arc<StaticRoot>,
    pub cache: Arc<HotCache>,
}

/// Files up to this size are read whole into memory (and cached when the
/// cache takes them); larger ones are streamed.
const STREAM_OVER: u64 = 1 << 20;

impl Files {
    pub fn new(root: Arc<StaticRoot>, cache: Arc<HotCache>) -> Files {
        Files { root, cache }
    }

    /// The site's 404 page, from memory once read.
    pub async fn not_found_page(&self) -> Option<Vec<u8>> {
        let key = Key::new(layout::Layout::public().not_found_page());
        let resp = self.serve(&key, &Ask::plain()).await?;
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        Some(body.to_vec())
    }

    /// Answers a GET or HEAD of `key`; `None` when no file is there.
    pub async fn serve(&self, key: &Key, ask: &Ask<'_>) -> Option<Response<Body>> {
        // The hot path: a cached file, or a directory's cached page.
        for k in [key, &key.page()] {
            if let Some(entry) = self.cache.get(k.as_str()) {
                crate::metrics::get().hot_cache(true);
                return Some(respond(&entry, ask));
            }
        }
        crate::metrics::get().hot_cache(false);
        let root = self.root.clone();
        let (cache, key) = (self.cache.clone(), key.clone());
        let loaded = tokio::task::spawn_blocking(move || load(&root, &cache, key)).await.ok()??;
        Some(match loaded {
            Loaded::Memory(entry) => respond(&entry, ask),
            Loaded::Stream { file, entry } => respond_stream(file, &entry, ask),
        })
    }
}

enum Loaded {
    Memory(Arc<Entry>),
    /// A large file: its headers, and the open file to stream from.
    Stream {
        file: Box<dyn ReadSeek>,
        entry: Arc<Entry>,
    },
}

/// Opens `key` (or its directory's page), reads it and offers it to the
/// cache; an entry the hit could not check is checked here first.
fn load(root: &StaticRoot, cache: &HotCache, key: Key) -> Option<Loaded> {
    let epoch = cache.epoch();
    let page = key.page();
    for key in [key, page] {
        if let Some(entry) = cache.unchecked(key.as_str(), epoch) {
            return Some(Loaded::Memory(entry));
        }
        // An error is taken as absence too: a store on a filesystem
        // (s3s-fs) fails the GET of a key that is another key's directory.
        let Ok(Some((id, mut file))) = root.open(key.as_str()) else {
            continue;
        };
        if id.size > STREAM_OVER {
            return Some(Loaded::Stream {
                file,
                entry: Arc::new(Entry::new(&key, id, Bytes::new(), cache.edge())),
            });
        }
        let mut bytes = Vec::with_capacity(id.size as usize);
        file.read_to_end(&mut bytes).ok()?;
        return Some(Loaded::Memory(cache.insert(&key, id, Bytes::from(bytes), epoch)));
    }
    None
}

/// Whether `if_none_match` names `tag` (weak comparison, lists, `*`).
fn etag_matches(if_none_match: &str, tag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == tag)
}

/// The headers every answer about a static file carries.
fn base(entry: &Entry, etag: &HeaderValue) -> http::response::Builder {
    let mut b = Response::builder()
        .header(header::ETAG, etag.clone())
        .header(header::CACHE_CONTROL, entry.cache_control.clone())
        .header(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if entry.public {
        b = b.header(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    }
    if entry.compressible {
        b = b.header(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if entry.ranges {
        b = b.header(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    if let Some(csp) = layout::content_security_policy(entry.content_type) {
        b = b.header(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    }
    b
}

fn respond(entry: &Entry, ask: &Ask) -> Response<Body> {
    // A range is of the stored bytes (a signature under /blobs/ is text):
    // then the answer is never compressed.
    let range = ranged(entry, ask);
    let encoding = match ask.accept_encoding {
        Some(accept) if entry.compressible && range.is_none() => Encoding::choose(accept),
        _ => Encoding::Identity,
    };
    // A variant that would not be smaller is not kept: identity then.
    let (body, encoding) = match entry.variant(encoding) {
        Some(b) => (b, encoding),
        None => (entry.body.clone(), Encoding::Identity),
    };
    let etag = entry.etag(encoding);
    let b = base(entry, etag);
    if ask.if_none_match.is_some_and(|inm| etag_matches(inm, entry.etag_str(encoding))) {
        return b.status(StatusCode::NOT_MODIFIED).body(empty()).unwrap();
    }
    let b = b.header(header::CONTENT_TYPE, HeaderValue::from_static(entry.content_type));
    let b = match encoding.name() {
        Some(name) => b.header(header::CONTENT_ENCODING, HeaderValue::from_static(name)),
        None => b,
    };
    if let Some(range) = range {
        return match range {
            Ok((start, end)) => {
                let part = entry.body.slice(start as usize..=end as usize);
                let b = b
                    .status(StatusCode::PARTIAL_CONTENT)
                    .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{}", entry.id.size))
                    .header(header::CONTENT_LENGTH, part.len());
                b.body(if ask.head { empty() } else { full(part) }).unwrap()
            }
            Err(()) => unsatisfiable(b, entry.id.size),
        };
    }
    let b = b.status(StatusCode::OK).header(header::CONTENT_LENGTH, body.len());
    b.body(if ask.head { empty() } else { full(body) }).unwrap()
}

fn unsatisfiable(b: http::response::Builder, size: u64) -> Response<Body> {
    b.status(StatusCode::RANGE_NOT_SATISFIABLE)
        .header(header::CONTENT_RANGE, format!("bytes */{size}"))
        .header(header::CONTENT_LENGTH, 0)
        .body(empty())
        .unwrap()
}

/// The byte range to send, if the request asks for one this file serves:
/// `Ok((first, last))` inclusive, or `Err` when unsatisfiable.
fn ranged(entry: &Entry, ask: &Ask) -> Option<Result<(u64, u64), ()>> {
    if !entry.ranges {
        return None;
    }
    let range = ask.range?;
    // If-Range: the range only if the client's copy is this version.
    if ask.if_range.is_some_and(|tag| tag.trim() != entry.etag_str(Encoding::Identity)) {
        return None;
    }
    parse_range(range, entry.id.size)
}

/// One `bytes=` range against a size. Several ranges, or a header that is
/// not a byte range, are ignored (the whole file is sent, as RFC 9110 allows).
pub fn parse_range(header: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.trim().split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        // The last N bytes.
        let n: u64 = last.parse().ok()?;
        if n == 0 || size == 0 {
            return Some(Err(()));
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let first: u64 = first.parse().ok()?;
        let last: u64 = if last.is_empty() { u64::MAX } else { last.parse().ok()? };
        if last < first {
            return None;
        }
        if first >= size {
            return Some(Err(()));
        }
        (first, last.min(size - 1))
    };
    Some(Ok(range))
}

/// A large file, sent from disk in chunks (identity only: such files are
/// tarballs and packs, never compressed on the wire).
fn respond_stream(mut file: Box<dyn ReadSeek>, entry: &Entry, ask: &Ask) -> Response<Body> {
    let etag = entry.etag(Encoding::Identity);
    let b = base(entry, etag);
    if ask.if_none_match.is_some_and(|inm| etag_matches(inm, entry.etag_str(Encoding::Identity))) {
        return b.status(StatusCode::NOT_MODIFIED).body(empty()).unwrap();
    }
    let b = b.header(header::CONTENT_TYPE, HeaderValue::from_static(entry.content_type));
    let (status, b, start, len) = match ranged(entry, ask) {
        Some(Ok((start, end))) => {
            let b = b.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{}", entry.id.size));
            (StatusCode::PARTIAL_CONTENT, b, start, end - start + 1)
        }
        Some(Err(())) => return unsatisfiable(b, entry.id.size),
        None => (StatusCode::OK, b, 0, entry.id.size),
    };
    let b = b.status(status).header(header::CONTENT_LENGTH, len);
    if ask.head {
        return b.body(empty()).unwrap();
    }
    if file.seek(std::io::SeekFrom::Start(start)).is_err() {
        return b.status(StatusCode::INTERNAL_SERVER_ERROR).body(empty()).unwrap();
    }
    let (tx, body) = super::body::channel();
    tokio::task::spawn_blocking(move || {
        let mut left = len;
        let mut buf = vec![0u8; 256 * 1024];
        while left > 0 {
            let want = buf.len().min(left as usize);
            let n = match file.read(&mut buf[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            left -= n as u64;
            let chunk = Bytes::copy_from_slice(&buf[..n]);
            if tx.blocking_send(Ok(chunk)).is_err() {
                break;
            }
        }
        if left > 0 {
            let _ = tx.blocking_send(Err("the file ended or failed before its length".into()));
        }
    });
    b.body(body).unwrap()
}

/// The 404 of a static read: the JSON error under `/api/`, the site's
/// 404 page (`page`, from the static root) elsewhere; public like the
/// files it stands for (`public`).
pub fn not_found(url_path: &str, public: bool, head: bool, page: Option<Vec<u8>>) -> Response<Body> {
    let (content_type, body) = match (url_path.starts_with("/api/"), page) {
        (false, Some(page)) => ("text/html; charset=utf-8", page),
        (false, None) => ("text/plain; charset=utf-8", b"Not found\n".to_vec()),
        (true, _) => {
            let e = super::ApiError::not_found(format!("no file at {url_path}"));
            ("application/json", e.body())
        }
    };
    let mut b = Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if let Some(csp) = layout::content_security_policy(content_type) {
        b = b.header(header::CONTENT_SECURITY_POLICY, csp);
    }
    if public {
        b = b.header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*");
    }
    b.body(if head { empty() } else { full(body) }).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_traversal_and_dotfiles() {
        assert_eq!(key_of("/index/config.json").as_ref().map(Key::as_str), Some("index/config.json"));
        assert_eq!(key_of("/").as_ref().map(Key::as_str), Some(""));
        assert_eq!(key_of("/a/../b"), None);
        assert_eq!(key_of("/a/%2e%2e/b"), None);
        assert_eq!(key_of("/a/%2Fb"), None);
        assert_eq!(key_of("/blobs/.tmp-1-2"), None);
    }

    #[test]
    fn if_none_match_accepts_lists_and_weak_tags() {
        assert!(etag_matches("\"a\", W/\"b\"", "\"b\""));
        assert!(!etag_matches("\"a\"", "\"b\""));
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=90-1000", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-1000", 100), Some(Ok((0, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=-0", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
