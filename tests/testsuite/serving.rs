//! The serving rules of SPEC section 6, checked with the same assertions
//! against `cairn serve` and against the real nginx (Debian's package, with
//! the shipped configuration of tools/deploy/nginx/) on one data directory;
//! names that look like fixed files; search freshness through the delta;
//! client addresses behind the proxy; the CDN purge hook.

use crate::support;

use cairn::archive::builder::TarballBuilder;
use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{client, free_port, set_config, Nginx, Server};

const GZ: &str = "application/gzip";

fn publish(server: &Server, token: &str, name: &str, version: &str, description: &str) -> Value {
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"{version}\"\ndescription = \"{description}\"\nkeywords = [\"servingtest\"]\n"
    );
    let readme = format!("# {name}\n\n{}\n", "A README long enough to be worth compressing. ".repeat(20));
    let tarball =
        TarballBuilder::new(name, version).manifest(manifest).file("README.md", readme.as_bytes()).gzip();
    let resp = server.put(name, version, token, tarball, GZ);
    assert_eq!(resp.status(), 201, "{name} {version}");
    resp.json().unwrap()
}

fn get(c: &Client, url: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = c.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().unwrap()
}

fn header<'a>(r: &'a Response, name: &str) -> &'a str {
    r.headers().get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b).read_to_end(&mut out).unwrap();
    out
}

fn unbrotli(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::BrotliDecompress(&mut &b[..], &mut out).unwrap();
    out
}

/// cairn (no search timer) and nginx on one data directory; cairn's
/// public URL is nginx's, so `dl` and `api` go through nginx too. Returns
/// the bootstrap token as well.
fn start_both(data: &Path) -> (Server, Nginx, String) {
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let first = Server::start_with(data, &[("CAIRN_RATE_LIMIT", "off")], &["--public-url", &public]);
    let token = first.token.clone().expect("a bootstrap token");
    drop(first);
    set_config(data, &[("search_interval = 60", "search_interval = 0")]);
    let server = Server::start_with(data, &[("CAIRN_RATE_LIMIT", "off")], &["--public-url", &public]);
    let nginx = Nginx::start(data, port, &server.url);
    (server, nginx, token)
}

/// Every rule of section 6 that a static read shows, against one base URL.
fn check_rules(base: &str, data: &Path, blob: &str, who: &str) {
    let c = client();
    let url = |p: &str| format!("{base}{p}");
    let public_read = |r: &Response, what: &str| {
        assert_eq!(header(r, "access-control-allow-origin"), "*", "{who} {what}: CORS");
        assert_eq!(header(r, "x-content-type-options"), "nosniff", "{who} {what}: nosniff");
    };

    let css = cairn::site::assets::asset_url(&cairn::layout::Layout::public(), "site");
    // Cache-Control and Content-Type by path.
    for (path, cache, ctype) in [
        ("/index/config.json", "public, max-age=60", "application/json"),
        ("/index/3/a/all", "public, max-age=60", "text/plain; charset=utf-8"),
        ("/minisign.pub", "public, max-age=300", "text/plain; charset=utf-8"),
        ("/api/v1/health.json", "public, max-age=10", "application/json"),
        ("/api/v1/packages/all.json", "public, max-age=60", "application/json"),
        ("/api/v1/packages/stats.json", "public, max-age=60", "application/json"),
        ("/api/v1/packages/all/1.0.0.json", "public, max-age=60", "application/json"),
        ("/api/v1/packages/all/1.0.0/readme.md", "public, max-age=60", "text/markdown; charset=utf-8"),
        ("/api/v1/packages/all/1.0.0/readme.html", "public, max-age=60", "text/html; charset=utf-8"),
        ("/api/v1/packages/all/advisories.json", "public, max-age=300", "application/json"),
        ("/api/v1/advisories/all.json", "public, max-age=300", "application/json"),
        ("/api/v1/search/manifest.json", "public, max-age=5", "application/json"),
        ("/api/v1/search/delta.json", "public, max-age=5", "application/json"),
        ("/api/v1/listings/name/1.json", "public, max-age=60", "application/json"),
        (&format!("/blobs/sha256/{blob}"), "public, max-age=31536000, immutable", "application/octet-stream"),
        (
            &format!("/blobs/sha256/{blob}.minisig"),
            "public, max-age=31536000, immutable",
            "text/plain; charset=utf-8",
        ),
        ("/", "public, max-age=60", "text/html; charset=utf-8"),
        ("/p/all", "public, max-age=60", "text/html; charset=utf-8"),
        ("/p/all/1.0.0", "public, max-age=60", "text/html; charset=utf-8"),
        ("/search", "public, max-age=60", "text/html; charset=utf-8"),
        // Every invitation's link is the one invitation page.
        ("/invitations/a-token", "public, max-age=60", "text/html; charset=utf-8"),
        (&css, "public, max-age=31536000, immutable", "text/css; charset=utf-8"),
    ] {
        let r = get(&c, &url(path), &[]);
        assert_eq!(r.status(), 200, "{who} {path}");
        assert_eq!(header(&r, "cache-control"), cache, "{who} {path}");
        assert_eq!(header(&r, "content-type"), ctype, "{who} {path}");
        assert!(!header(&r, "etag").is_empty(), "{who} {path}: ETag");
        let csp = if ctype.starts_with("text/html") { cairn::layout::PAGE_CSP } else { "" };
        assert_eq!(header(&r, "content-security-policy"), csp, "{who} {path}: CSP on HTML only");
        public_read(&r, path);
        let key = cairn::server::files::key_of(path).unwrap();
        let key = if path.starts_with("/p/") || path == "/search" || path == "/" { key.page() } else { key };
        let on_disk = std::fs::read(data.join("static").join(key.as_str())).unwrap();
        assert_eq!(r.bytes().unwrap().to_vec(), on_disk, "{who} {path}: the file's bytes");
    }

    // ETag → 304, with the validator and the public headers.
    let doc = "/api/v1/packages/all.json";
    let r = get(&c, &url(doc), &[]);
    let etag = header(&r, "etag").to_string();
    let plain = r.bytes().unwrap();
    let r = get(&c, &url(doc), &[("If-None-Match", &etag)]);
    assert_eq!(r.status(), 304, "{who}");
    assert_eq!(header(&r, "etag"), etag, "{who}");
    assert_eq!(header(&r, "cache-control"), "public, max-age=60", "{who}");
    public_read(&r, "304");

    // HEAD: the headers of a GET, no body.
    let r = c.head(url(doc)).send().unwrap();
    assert_eq!(r.status(), 200, "{who}");
    assert_eq!(header(&r, "content-length"), plain.len().to_string(), "{who}");
    assert!(r.bytes().unwrap().is_empty(), "{who}");

    // gzip and br, with Vary, decoding to the same bytes; identity without asking.
    assert!(plain.len() > 256, "{who}: the document is big enough to compress");
    for (enc, decode) in [("gzip", gunzip as fn(&[u8]) -> Vec<u8>), ("br", unbrotli)] {
        let r = get(&c, &url(doc), &[("Accept-Encoding", enc)]);
        assert_eq!(r.status(), 200, "{who} {enc}");
        assert_eq!(header(&r, "content-encoding"), enc, "{who} {enc}");
        assert!(header(&r, "vary").contains("Accept-Encoding"), "{who} {enc}");
        let body = r.bytes().unwrap();
        assert!(body.len() < plain.len(), "{who} {enc}: smaller");
        assert_eq!(decode(&body), plain.to_vec(), "{who} {enc}: same document");
    }
    let r = get(&c, &url(doc), &[]);
    assert_eq!(header(&r, "content-encoding"), "", "{who}");
    assert!(header(&r, "vary").contains("Accept-Encoding"), "{who}: Vary on the identity answer too");

    // Blobs: sent as stored; Range → 206 / 416; a resumed download is whole.
    let blob_url = url(&format!("/blobs/sha256/{blob}"));
    let stored = std::fs::read(data.join("static/blobs/sha256").join(blob)).unwrap();
    let r = get(&c, &blob_url, &[("Accept-Encoding", "gzip, br")]);
    assert_eq!(header(&r, "content-encoding"), "", "{who}: tarballs as stored");
    assert_eq!(r.bytes().unwrap().to_vec(), stored, "{who}");
    let r = get(&c, &blob_url, &[("Range", "bytes=0-9")]);
    assert_eq!(r.status(), 206, "{who}");
    assert_eq!(header(&r, "content-range"), format!("bytes 0-9/{}", stored.len()), "{who}");
    public_read(&r, "206");
    let head = r.bytes().unwrap().to_vec();
    let r = get(&c, &blob_url, &[("Range", "bytes=10-")]);
    assert_eq!(r.status(), 206, "{who}");
    let rest = r.bytes().unwrap().to_vec();
    assert_eq!([head, rest].concat(), stored, "{who}: two ranges make the blob");
    let r = get(&c, &blob_url, &[("Range", &format!("bytes={}-", stored.len()))]);
    assert_eq!(r.status(), 416, "{who}");
    assert_eq!(header(&r, "content-range"), format!("bytes */{}", stored.len()), "{who}");
    // A range of a signature (text, compressible) with gzip accepted: a 206
    // is of the stored bytes, never compressed; a server may answer 200
    // with the whole (compressed) file instead.
    let sig = std::fs::read(data.join("static/blobs/sha256").join(format!("{blob}.minisig"))).unwrap();
    let r = get(&c, &format!("{blob_url}.minisig"), &[("Range", "bytes=0-9"), ("Accept-Encoding", "gzip")]);
    match r.status().as_u16() {
        206 => {
            assert_eq!(header(&r, "content-encoding"), "", "{who}: a compressed 206");
            assert_eq!(r.bytes().unwrap().to_vec(), sig[..10].to_vec(), "{who}");
        }
        200 => {
            let gz = header(&r, "content-encoding") == "gzip";
            let body = r.bytes().unwrap().to_vec();
            assert_eq!(if gz { gunzip(&body) } else { body }, sig, "{who}");
        }
        other => panic!("{who}: {other} for a range of a signature"),
    }
    // Range elsewhere is ignored.
    let r = get(&c, &url(doc), &[("Range", "bytes=0-9")]);
    assert_eq!(r.status(), 200, "{who}: no ranges on documents");

    // 404s: JSON under /api/, HTML elsewhere; dotfiles are never served.
    let r = get(&c, &url("/api/v1/packages/no-such-package.json"), &[]);
    assert_eq!(r.status(), 404, "{who}");
    assert_eq!(header(&r, "content-type"), "application/json", "{who}");
    assert_eq!(header(&r, "x-content-type-options"), "nosniff", "{who}");
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"], "not-found", "{who}");
    let r = get(&c, &url("/no/such/page"), &[]);
    assert_eq!(r.status(), 404, "{who}");
    assert!(header(&r, "content-type").starts_with("text/html"), "{who}");
    assert_eq!(header(&r, "content-security-policy"), cairn::layout::PAGE_CSP, "{who}: the 404 page");
    public_read(&r, "404");
    assert!(r.text().unwrap().contains("There is no page at this address"), "{who}: the site's 404 page");
    for hidden in ["/api/v1/.tmp-serving-test", "/.tmp-serving-test", "/.generation"] {
        assert_eq!(get(&c, &url(hidden), &[]).status(), 404, "{who} {hidden}");
    }

    // The write API: no wildcard CORS, nosniff all the same.
    let r = get(&c, &url("/api/v1/health"), &[]);
    assert_eq!(r.status(), 200, "{who}");
    assert_eq!(header(&r, "access-control-allow-origin"), "", "{who}: no CORS on the API");
    assert_eq!(header(&r, "x-content-type-options"), "nosniff", "{who}");
    let health: Value = r.json().unwrap();
    assert!(health["uptimeSec"].is_u64(), "{who}: {health}");
    assert!(health["checks"]["db"]["latencyMs"].is_number(), "{who}: {health}");
}

const FIXED_LOOKALIKES: [&str; 8] =
    ["all", "manifest", "delta", "stats", "recent", "health", "listings", "users"];

#[test]
fn static_reads_follow_the_serving_rules_on_cairn_and_on_nginx() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (server, nginx, token) = start_both(&data);

    // Packages named like fixed files, each with its own documents.
    let mut blob = String::new();
    for name in FIXED_LOOKALIKES {
        let published = publish(&server, &token, name, "1.0.0", &format!("the {name} package"));
        if name == "all" {
            blob = published["sha256"].as_str().unwrap().to_string();
        }
    }
    // Reserved names stay reserved.
    for name in ["index", "search"] {
        let tarball = TarballBuilder::new(name, "1.0.0").gzip();
        assert_eq!(server.put(name, "1.0.0", &token, tarball, GZ).status(), 400, "{name}");
    }
    // An advisory for `all`: its file is the package's, not all advisories'.
    let osv = dir.path().join("adv.json");
    let advisory = json!({"id": "CAIRN-2026-0100", "modified": "2026-05-01T00:00:00Z", "summary": "all is affected",
        "affected": [{"package": {"name": "all"}, "versions": ["1.0.0"]}]});
    std::fs::write(&osv, advisory.to_string()).unwrap();
    let cairn = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(args)
            .arg("--data")
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    cairn(&["admin", "advisory", "add", osv.to_str().unwrap()]);
    cairn(&["rebuild", "all"]);
    let root = data.join("static");
    for name in FIXED_LOOKALIKES {
        let doc = support::read_json(root.join(format!("api/v1/packages/{name}.json")));
        assert_eq!(doc["name"], name);
        let version = support::read_json(root.join(format!("api/v1/packages/{name}/1.0.0.json")));
        assert_eq!(version["name"], name);
        let owners = support::read_json(root.join(format!("api/v1/packages/{name}/owners.json")));
        assert!(owners["owners"].is_array(), "{name}");
    }
    let mine = support::read_json(root.join("api/v1/packages/all/advisories.json"));
    assert_eq!(
        (mine["name"].as_str(), mine["advisories"][0]["id"].as_str()),
        (Some("all"), Some("CAIRN-2026-0100"))
    );
    let all = support::read_json(root.join("api/v1/advisories/all.json"));
    assert_eq!(all["advisories"][0]["affected_packages"][0]["name"], "all");
    let stats = support::read_json(root.join("api/v1/stats.json"));
    assert!(stats["topAllTime"].is_array(), "the registry's stats.json is not the package `stats`");
    let health = support::read_json(root.join("api/v1/health.json"));
    assert_eq!(health["packages"], FIXED_LOOKALIKES.len());
    std::fs::write(root.join("api/v1/.tmp-serving-test"), b"half a file").unwrap();
    std::fs::write(root.join(".tmp-serving-test"), b"half a file").unwrap();

    check_rules(&server.url, &data, &blob, "cairn");
    check_rules(&nginx.url, &data, &blob, "nginx");

    // Writes through nginx reach cairn, without wildcard CORS.
    let tarball = TarballBuilder::new("via-nginx", "1.0.0").gzip();
    let r = client()
        .put(format!("{}/api/v1/packages/via-nginx/1.0.0", nginx.url))
        .bearer_auth(&token)
        .header("Content-Type", GZ)
        .body(tarball)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "access-control-allow-origin"), "");
    assert_eq!(get(&client(), &format!("{}/api/v1/packages/via-nginx.json", nginx.url), &[]).status(), 200);
}

/// Runs `cairn search --json` against `base`; the names found.
fn cairn_search(base: &str, q: &str) -> Vec<String> {
    // A configuration directory of its own: search pins the registry's key.
    let config = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["search", "--registry", base, "--json", q])
        .env("CAIRN_CONFIG_DIR", config.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "search {q}: {}", String::from_utf8_lossy(&out.stderr));
    let hits: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    hits.iter().map(|h| h["name"].as_str().unwrap().to_string()).collect()
}

fn cargo_api_search(base: &str, q: &str) -> Vec<(String, String)> {
    let r: Value =
        client().get(format!("{base}/api/v1/crates?q={q}&per_page=10")).send().unwrap().json().unwrap();
    let crates = r["crates"].as_array().unwrap();
    crates
        .iter()
        .map(|c| (c["name"].as_str().unwrap().into(), c["max_version"].as_str().unwrap().into()))
        .collect()
}

fn delta(base: &str) -> Value {
    client().get(format!("{base}/api/v1/search/delta.json")).send().unwrap().json().unwrap()
}

#[test]
fn a_publish_is_searchable_at_once_and_the_search_job_folds_the_delta() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (server, nginx, token) = start_both(&data);

    // No shards yet: the delta alone answers (never a 404).
    assert!(!data.join("static/api/v1/search/manifest.json").exists());
    let started = Instant::now();
    publish(&server, &token, "quokka-http", "1.0.0", "A small HTTP client");
    for base in [&server.url, &nginx.url] {
        assert_eq!(cairn_search(base, "quokka"), ["quokka-http"], "{base}");
        assert_eq!(cargo_api_search(base, "quokka"), [("quokka-http".into(), "1.0.0".into())], "{base}");
        assert_eq!(delta(base)["packages"][0]["name"], "quokka-http");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    // A newer version, then a yank of it: the delta follows each.
    publish(&server, &token, "quokka-http", "1.1.0", "A small HTTP client, now faster");
    assert_eq!(cargo_api_search(&nginx.url, "faster"), [("quokka-http".into(), "1.1.0".into())]);
    let r = client()
        .delete(format!("{}/api/v1/packages/quokka-http/1.1.0", server.url))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let d = delta(&nginx.url);
    assert_eq!(d["packages"][0]["doc"]["version"], "1.0.0", "{d}");
    assert_eq!(cargo_api_search(&server.url, "quokka"), [("quokka-http".into(), "1.0.0".into())]);
    support::validate("search-delta", &d);

    // The search job builds shards for this head and empties the delta.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["rebuild", "search", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["search"]["deltaLeft"], 0, "{report}");
    assert_eq!(delta(&server.url)["packages"], json!([]));
    assert_eq!(cairn_search(&nginx.url, "quokka"), ["quokka-http"]);

    // After the build: a new package is in the delta only, and both are found.
    publish(&server, &token, "quokka-json", "0.1.0", "JSON for quokkas");
    let mut found = cairn_search(&server.url, "quokka");
    found.sort();
    assert_eq!(found, ["quokka-http", "quokka-json"]);
    assert_eq!(delta(&server.url)["packages"].as_array().unwrap().len(), 1);
}

#[test]
fn behind_nginx_each_client_is_counted_apart_and_forged_addresses_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    drop(Server::start_with(&data, &[], &["--public-url", &public]));
    let text = std::fs::read_to_string(data.join("registry.toml")).unwrap();
    let text = text.replace("trusted_proxies = []", "trusted_proxies = [\"127.0.0.1\"]");
    // The anonymous bucket: 3 requests, then none for a long while.
    let anon = regex_free_replace(&text, "[rate_limit.anonymous]", "burst = 30", "burst = 3");
    let anon = regex_free_replace(&anon, "[rate_limit.anonymous]", "per_seconds = 2", "per_seconds = 3600");
    std::fs::write(data.join("registry.toml"), anon).unwrap();
    let server = Server::start_with(&data, &[], &["--public-url", &public]);
    let nginx = Nginx::start(&data, port, &server.url);

    // Clients on other loopback addresses (127.0.0.0/8 is all loopback).
    let from = |ip: &str| Client::builder().local_address(ip.parse::<IpAddr>().unwrap()).build().unwrap();
    let (a, b, c) = (from("127.0.0.2"), from("127.0.0.3"), from("127.0.0.4"));
    let health = |client: &Client, base: &str, xff: Option<&str>| {
        let mut req = client.get(format!("{base}/api/v1/health"));
        if let Some(x) = xff {
            req = req.header("X-Forwarded-For", x);
        }
        req.send().unwrap().status().as_u16()
    };
    for _ in 0..3 {
        assert_eq!(health(&a, &nginx.url, None), 200);
    }
    assert_eq!(health(&a, &nginx.url, None), 429, "a's bucket is empty");
    // A forged entry from a: nginx appends a's address, which still counts.
    assert_eq!(health(&a, &nginx.url, Some("127.0.0.99")), 429);
    // b is another client.
    assert_eq!(health(&b, &nginx.url, None), 200);
    // Straight to cairn from an untrusted address, the header is ignored:
    // c claiming to be b spends c's own bucket, not b's...
    for _ in 0..3 {
        assert_eq!(health(&c, &server.url, Some("127.0.0.3")), 200);
    }
    assert_eq!(health(&c, &server.url, Some("127.0.0.3")), 429);
    // ...so b still has two left.
    assert_eq!(health(&b, &nginx.url, None), 200);
    assert_eq!(health(&b, &nginx.url, None), 200);
    assert_eq!(health(&b, &nginx.url, None), 429);

    // The audit row of a refused write names the real client.
    let d = from("127.0.0.5");
    let r = d
        .post(format!("{}/api/v1/tokens", nginx.url))
        .header("X-Forwarded-For", "10.9.9.9")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let conn = rusqlite::Connection::open(data.join("state.db")).unwrap();
    let addr: String =
        conn.query_row("SELECT addr FROM audit ORDER BY id DESC LIMIT 1", [], |r| r.get(0)).unwrap();
    assert_eq!(addr, "127.0.0.5");
}

/// Replaces `from` with `to` in the table that starts at `table`.
fn regex_free_replace(text: &str, table: &str, from: &str, to: &str) -> String {
    let start = text.find(table).unwrap_or_else(|| panic!("no {table} in registry.toml:\n{text}"));
    let (head, tail) = text.split_at(start);
    let at = tail.find(from).unwrap_or_else(|| panic!("no {from} under {table}"));
    format!("{head}{}{to}{}", &tail[..at], &tail[at + from.len()..])
}

#[test]
fn the_cdn_purge_hook_receives_the_paths_a_write_changed() {
    // A receiver on 127.0.0.1 that records each POST's body.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = format!("http://{}/purge", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = std::io::BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    let mut body = vec![0u8; length];
                    reader.read_exact(&mut body).unwrap();
                    let _ = tx.send(serde_json::from_slice(&body).unwrap());
                    let _ = std::io::Write::write_all(
                        reader.get_mut(),
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                    break;
                }
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(Server::start(&data));
    let text = std::fs::read_to_string(data.join("registry.toml")).unwrap();
    std::fs::write(
        data.join("registry.toml"),
        text.replace("[cdn]", &format!("[cdn]\npurge_url = \"{hook}\"")),
    )
    .unwrap();
    let server = Server::start(&data);
    let token = server.add_user("pat");
    publish(&server, &token, "purged", "1.0.0", "purge me");
    // The purges so far: the start's (the summaries it rewrote), then the publish's.
    let mut bodies = Vec::new();
    while let Ok(body) = rx.recv_timeout(Duration::from_secs(if bodies.is_empty() { 10 } else { 1 })) {
        bodies.push(body);
    }
    let paths: Vec<&str> =
        bodies.iter().flat_map(|b| b["paths"].as_array().unwrap()).map(|p| p.as_str().unwrap()).collect();
    for want in [
        "/index/pu/rg/purged",
        "/api/v1/packages/purged.json",
        "/api/v1/packages/purged/1.0.0.json",
        "/api/v1/packages/purged/owners.json",
        "/api/v1/search/delta.json",
        "/api/v1/health.json",
    ] {
        assert!(paths.contains(&want), "{want} not in {paths:?}");
    }
    assert!(paths.iter().all(|p| p.starts_with('/')), "{paths:?}");
}
