//! The serving rules of a static-root path, by its URL (SPEC section 6's
//! table): Cache-Control (with a CDN's `s-maxage`), Content-Type, the
//! pages' Content-Security-Policy, compression and ranges. `cairn serve`,
//! the shipped nginx configuration and an object store's object headers
//! all follow them.

use std::borrow::Cow;

/// What shared caches in front of the static root are told (`[cdn]`,
/// SPEC section 13): with a purge configured, every change of an index
/// file or a package's document is purged from them, so they may keep
/// those for `s_maxage` seconds while clients keep their own max-age.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Edge {
    /// No purge: shared caches follow the clients' max-age.
    #[default]
    Expiring,
    /// Purged on change: `s-maxage` on index files and documents.
    Purged { s_maxage: u64 },
}

/// Cache-Control of a static file by its URL path (SPEC section 6's
/// table), with the shared caches' `s-maxage` of `edge` where it applies.
pub fn cache_control(url_path: &str, edge: Edge) -> Cow<'static, str> {
    let rule = client_cache_control(url_path);
    match edge {
        Edge::Purged { s_maxage } if purged_at_the_edge(url_path) => {
            format!("{rule}, s-maxage={s_maxage}").into()
        }
        _ => rule.into(),
    }
}

/// The files a write group changes, and so purges, whenever they change:
/// index files and a package's documents (not its stats and advisories,
/// which the batch jobs write). Listings, pages and the summaries keep
/// their max-age at the edge too.
fn purged_at_the_edge(url_path: &str) -> bool {
    url_path.starts_with("/index/")
        || url_path.starts_with("/npm/")
        || (url_path.starts_with("/api/v1/packages/")
            && !package_file(url_path, "stats.json")
            && !package_file(url_path, "advisories.json"))
}

/// Whether `url_path` is the file `file` of a package's own directory, not
/// the document of a package named like that file (`/api/v1/packages/stats.json`).
fn package_file(url_path: &str, file: &str) -> bool {
    url_path
        .strip_prefix("/api/v1/packages/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(_, f)| f == file)
}

/// The clients' Cache-Control of a static file by its URL path.
fn client_cache_control(url_path: &str) -> &'static str {
    const IMMUTABLE: &str = "public, max-age=31536000, immutable";
    let p = url_path;
    if super::key::split_org(p.trim_start_matches('/')).is_some() {
        return "private, max-age=60";
    }
    let package_file = |f: &str| package_file(p, f);
    if p.starts_with("/blobs/") || p.starts_with("/assets/") || p.starts_with("/log/tile/") {
        IMMUTABLE
    } else if p.starts_with("/index/") || p.starts_with("/index.git/") {
        "public, max-age=60"
    } else if p == "/minisign.pub" || p == "/log/keys" {
        "public, max-age=300"
    } else if p == "/api/v1/health.json" {
        "public, max-age=10"
    } else if p == "/api/v1/search/manifest.json"
        || p == "/api/v1/search/delta.json"
        || p == "/log/checkpoint"
    {
        "public, max-age=5"
    } else if p.starts_with("/api/v1/search/") {
        IMMUTABLE
    } else if p == "/api/v1/stats.json"
        || p.starts_with("/api/v1/advisories/")
        || package_file("stats.json")
        || package_file("advisories.json")
    {
        "public, max-age=300"
    } else {
        "public, max-age=60"
    }
}

/// Content-Type of a static file by its URL path. Blobs are
/// `application/octet-stream`: a tarball is gzip or zstd, which its index
/// line's `fmt` says, and a server in front (nginx, a bucket) cannot sniff.
pub fn content_type(url_path: &str) -> &'static str {
    let file = url_path.rsplit('/').next().unwrap_or("");
    let ext = file.rsplit_once('.').map(|(_, e)| e);
    match ext {
        Some("json") => "application/json",
        Some("html") => "text/html; charset=utf-8",
        Some("md") => "text/markdown; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("xml") => "application/atom+xml",
        Some("minisig") | Some("pub") => "text/plain; charset=utf-8",
        // Packuments and the key document: a package's name may hold a dot.
        _ if is_npm_document(url_path) => "application/json",
        _ if url_path.starts_with("/blobs/") || url_path.starts_with("/log/tile/") => {
            "application/octet-stream"
        }
        _ if url_path.starts_with("/index.git/objects/") => "application/octet-stream",
        _ => "text/plain; charset=utf-8",
    }
}

/// Whether a URL path is a document of an npm door (a packument, the
/// keys), public or a private organisation's.
fn is_npm_document(url_path: &str) -> bool {
    let below = match super::key::split_org(url_path.trim_start_matches('/')) {
        Some((_, below)) => below,
        None => url_path.trim_start_matches('/'),
    };
    below.starts_with("npm/") && !below.starts_with("npm/-/blobs/")
}

/// The Content-Security-Policy of every HTML answer (site pages,
/// `readme.html`, the 404 page; SPEC section 11): scripts and styles from
/// the registry itself only, images also from https.
pub const PAGE_CSP: &str =
    "default-src 'self'; img-src 'self' https: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The Content-Security-Policy an answer of this Content-Type carries.
pub fn content_security_policy(content_type: &str) -> Option<&'static str> {
    content_type.starts_with("text/html").then_some(PAGE_CSP)
}

/// Whether a file of this Content-Type is sent compressed to a client that
/// asks: text and JSON, never tarballs or git objects.
pub fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || ["application/json", "image/svg+xml", "application/atom+xml"].contains(&content_type)
}

/// Files smaller than this are sent as they are: compression would save
/// less than its headers cost (nginx and cairn use the same threshold).
pub const COMPRESS_MIN_BYTES: usize = 256;

/// Whether a client may send `Range` for this path (blobs: resumable downloads).
pub fn ranges_allowed(url_path: &str) -> bool {
    url_path.starts_with("/blobs/")
}
