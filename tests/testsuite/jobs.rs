//! Batch jobs over a real registry: the static rebuild (idempotent, with
//! listings and user pages) and search (shards, manifest, and the shared
//! test vectors of index/search-vectors.json).

use crate::support;

use cairn::archive::builder::TarballBuilder;
use serde_json::Value;
use std::process::Command;
use support::Server;

fn cairn(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).output().unwrap()
}

fn rebuild(server: &Server, job: &str) -> Value {
    let out = cairn(&["rebuild", job, "--data", server.data.to_str().unwrap()]);
    assert!(out.status.success(), "rebuild {job}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn search(server: &Server, query: &str) -> Vec<String> {
    // A configuration directory of its own: search pins the registry's key.
    let config = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["search", "--registry", &server.url, "--json", "--limit", "5", query])
        .env("CAIRN_CONFIG_DIR", config.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "search {query}: {}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    results.iter().map(|r| r["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn search_passes_the_shared_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    support::publish_corpus(&server);
    let report = rebuild(&server, "search");
    assert_eq!(report["search"]["packages"], 24);
    let manifest: Value = server.get("/api/v1/search/manifest.json").json().unwrap();
    assert_eq!(manifest["docs"], 24);
    let generation = manifest["generation"].as_str().unwrap();
    for i in 0..manifest["shards"].as_array().unwrap().len() {
        let resp = server.get(&format!("/api/v1/search/{generation}-{i}.json"));
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["cache-control"], "public, max-age=31536000, immutable");
    }
    let mut failures = Vec::new();
    for v in support::search_vectors()["vectors"].as_array().unwrap() {
        let query = v["query"].as_str().unwrap();
        let want: Vec<String> =
            v["top"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect();
        let got = search(&server, query);
        let ok = if want.is_empty() {
            got.is_empty()
        } else {
            got.len() >= want.len() && got[..want.len()] == want[..]
        };
        if !ok {
            failures.push(format!("{query:?}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Rebuilding with no change names the same shards.
    rebuild(&server, "search");
    let again: Value = server.get("/api/v1/search/manifest.json").json().unwrap();
    assert_eq!(again["shards"], manifest["shards"]);
}

#[test]
fn static_rebuild_is_complete_and_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    support::publish_corpus(&server);
    let root = server.static_root();
    // Lose some derived files, as a fresh mirror or a wiped CDN origin would.
    std::fs::remove_dir_all(root.join("api/v1/packages/serde")).unwrap();
    std::fs::remove_file(root.join("index/to/ml/toml"))
        .unwrap_or_else(|_| std::fs::remove_file(root.join("index/4/t/toml")).unwrap_or(()));
    std::fs::remove_file(root.join("index/3/l/log")).unwrap();
    let first = rebuild(&server, "static");
    assert!(first["static"]["written"].as_u64().unwrap() > 0);
    assert_eq!(server.get("/index/3/l/log").status(), 200);
    let vdoc: Value = server.get("/api/v1/packages/serde/1.0.0.json").json().unwrap();
    assert_eq!(vdoc["version"], "1.0.0");
    let second = rebuild(&server, "static");
    assert_eq!(second["static"]["written"], 0, "a second run changes nothing: {second}");

    // Listings: by name, paginated.
    let page: Value = server.get("/api/v1/listings/name/1.json").json().unwrap();
    assert_eq!(page["total"], 24);
    assert_eq!(page["pages"], 1);
    let names: Vec<&str> =
        page["packages"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| n.to_ascii_lowercase());
    assert_eq!(names, sorted);
    let newest: Value = server.get("/api/v1/listings/newest/1.json").json().unwrap();
    let times: Vec<&str> =
        newest["packages"].as_array().unwrap().iter().map(|p| p["updatedAt"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    assert_eq!(server.get("/api/v1/listings/downloads/1.json").status(), 200);
    // The user page lists what the user owns, and never an email.
    let user: Value = server.get("/api/v1/users/admin.json").json().unwrap();
    assert_eq!(user["packages"].as_array().unwrap().len(), 24);
    assert!(user.get("email").is_none());
}

#[test]
fn static_rebuild_restores_readmes_from_the_archives() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    let with = TarballBuilder::new("with-readme", "1.0.0").file("README.md", b"# With\n\nText.\n").gzip();
    assert_eq!(server.put("with-readme", "1.0.0", &token, with, "application/gzip").status(), 201);
    let without = TarballBuilder::new("without-readme", "1.0.0").gzip();
    assert_eq!(server.put("without-readme", "1.0.0", &token, without, "application/gzip").status(), 201);
    let root = server.static_root();
    let with_dir = root.join("api/v1/packages/with-readme");
    std::fs::remove_dir_all(&with_dir).unwrap();
    std::fs::remove_file(root.join("api/v1/packages/without-readme/1.0.0.json")).unwrap();

    rebuild(&server, "static");
    assert_eq!(std::fs::read(with_dir.join("1.0.0/readme.md")).unwrap(), b"# With\n\nText.\n");
    let html = with_dir.join("1.0.0/readme.html");
    assert_eq!(std::fs::read_to_string(&html).unwrap(), "<h1>With</h1>\n<p>Text.</p>\n");
    // A README kept without its rendering (a registry from before pages) gets one.
    std::fs::remove_file(&html).unwrap();
    rebuild(&server, "static");
    assert_eq!(std::fs::read_to_string(&html).unwrap(), "<h1>With</h1>\n<p>Text.</p>\n");
    let doc: Value = server.get("/api/v1/packages/with-readme/1.0.0.json").json().unwrap();
    assert_eq!(doc["readme"], "/api/v1/packages/with-readme/1.0.0/readme.md");
    let doc: Value = server.get("/api/v1/packages/without-readme/1.0.0.json").json().unwrap();
    assert_eq!(doc["readme"], Value::Null);
    assert!(!root.join("api/v1/packages/without-readme/1.0.0").exists());
    assert_eq!(rebuild(&server, "static")["static"]["written"], 0);
}

#[test]
fn the_search_timer_keeps_listings_and_user_pages_current() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    let body = TarballBuilder::new("first", "1.0.0").gzip();
    assert_eq!(server.put("first", "1.0.0", &token, body, "application/gzip").status(), 201);
    server.kill();
    support::set_config(dir.path(), &[("search_interval = 60", "search_interval = 1")]);
    let server = Server::start(dir.path());
    let names = |path: &str| -> Vec<String> {
        let resp = server.get(path);
        if resp.status() != 200 {
            return Vec::new();
        }
        let doc: Value = resp.json().unwrap();
        doc["packages"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect()
    };
    let wait_for = |path: &str, want: &[&str]| {
        support::eventually(|| names(path) == want, || format!("{path}: {:?}, never {want:?}", names(path)))
    };
    wait_for("/api/v1/listings/newest/1.json", &["first"]);
    let body = TarballBuilder::new("second", "1.0.0").gzip();
    assert_eq!(server.put("second", "1.0.0", &token, body, "application/gzip").status(), 201);
    wait_for("/api/v1/listings/newest/1.json", &["second", "first"]);
    wait_for("/api/v1/listings/name/1.json", &["first", "second"]);
    wait_for("/api/v1/users/admin.json", &["first", "second"]);
}

#[test]
fn user_pages_list_what_each_user_owns() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let alice = server.add_user("alice");
    let bob = server.add_user("bob");
    for (token, name) in [(&alice, "zeta-shared"), (&alice, "alpha"), (&bob, "bravo")] {
        let tarball = TarballBuilder::new(name, "1.0.0").gzip();
        assert_eq!(server.put(name, "1.0.0", token, tarball, "application/gzip").status(), 201);
    }
    let resp = support::client()
        .put(format!("{}/api/v1/packages/zeta-shared/owners", server.url))
        .bearer_auth(&alice)
        .json(&serde_json::json!({ "users": ["bob"] }))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    rebuild(&server, "search");
    let names = |login: &str| -> Vec<String> {
        let page: Value = server.get(&format!("/api/v1/users/{login}.json")).json().unwrap();
        assert_eq!(page["login"], login);
        page["packages"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names("alice"), ["alpha", "zeta-shared"]);
    assert_eq!(names("bob"), ["bravo", "zeta-shared"]);
    assert_eq!(names("admin"), Vec::<String>::new());
}

/// The names of a listing page, and its `total` and `pages`.
#[track_caller]
fn listing(server: &Server, path: &str) -> (Vec<String>, u64, u64) {
    let resp = server.get(path);
    assert_eq!(resp.status(), 200, "{path}");
    assert_eq!(resp.headers()["cache-control"], "public, max-age=60", "{path}");
    let page: Value = resp.json().unwrap();
    support::validate("listing", &page);
    let names = page["packages"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string());
    (names.collect(), page["total"].as_u64().unwrap(), page["pages"].as_u64().unwrap())
}

#[test]
fn kind_and_keyword_listings_hold_their_packages_and_paginate() {
    let dir = tempfile::tempdir().unwrap();
    // Without the search timer, whose run would race the rebuilds below.
    let mut first = Server::start(dir.path());
    let token = first.token.clone().unwrap();
    first.kill();
    support::set_config(dir.path(), &[("search_interval = 60", "search_interval = 0")]);
    let server = Server::start(dir.path());
    let publish = |name: &str, version: &str, kind: Option<&str>, keywords: &[&str]| {
        let kind = kind.map(|k| format!("kind = {k:?}\n")).unwrap_or_default();
        let manifest =
            format!("[package]\nname = {name:?}\nversion = {version:?}\n{kind}keywords = {keywords:?}\n");
        let body = TarballBuilder::new(name, version).manifest(manifest).gzip();
        let resp = server.put(name, version, &token, body, "application/gzip");
        assert_eq!(resp.status(), 201, "{name}: {}", resp.text().unwrap());
    };
    // 101 packages with the keyword `bulk`: two pages; every third a skill.
    let bulk: Vec<String> = (0..101).map(|i| format!("bulk-{i:03}")).collect();
    for (i, name) in bulk.iter().enumerate() {
        publish(name, "1.0.0", (i % 3 == 0).then_some("skill"), &["bulk", "Git"]);
    }
    publish("lonely", "1.0.0", Some("MCP"), &["rare"]);
    // One download of bulk-100 ranks it first.
    let sha = server.get("/api/v1/packages/bulk-100/1.0.0.json").json::<Value>().unwrap()["sha256"].clone();
    let log = dir.path().join("access.log");
    let line = format!(
        "127.0.0.1 - - [01/Nov/2026:10:00:00 +0000] \"GET /blobs/sha256/{} HTTP/1.1\" 200 1 \"-\" \"cargo\"\n",
        sha.as_str().unwrap()
    );
    std::fs::write(&log, line).unwrap();
    let out = cairn(&[
        "rebuild",
        "all",
        "--access-log",
        log.to_str().unwrap(),
        "--data",
        server.data.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let by_downloads: Vec<String> =
        std::iter::once("bulk-100".to_string()).chain(bulk[..100].iter().cloned()).collect();
    let (first, total, pages) = listing(&server, "/api/v1/keywords/bulk/1.json");
    assert_eq!((total, pages), (101, 2));
    assert_eq!(first, by_downloads[..100]);
    let (second, _, _) = listing(&server, "/api/v1/keywords/bulk/2.json");
    assert_eq!(second, by_downloads[100..]);
    // Keywords and kinds are listed lowercased; a package without a kind is a library.
    assert_eq!(listing(&server, "/api/v1/keywords/git/1.json").1, 101);
    let skills: Vec<String> = bulk.iter().step_by(3).cloned().collect();
    assert_eq!(listing(&server, "/api/v1/kinds/skill/1.json"), (skills.clone(), 34, 1));
    let libraries = listing(&server, "/api/v1/kinds/library/1.json");
    assert_eq!((libraries.1, libraries.0[0].as_str()), (67, "bulk-100"));
    assert_eq!(listing(&server, "/api/v1/kinds/mcp/1.json").0, ["lonely"]);
    assert_eq!(listing(&server, "/api/v1/keywords/rare/1.json").0, ["lonely"]);

    // New latest versions move packages out: the second page and the
    // listings nobody uses any more go.
    publish("bulk-100", "2.0.0", None, &["git"]);
    publish("lonely", "2.0.0", Some("skill"), &[]);
    rebuild(&server, "search");
    assert_eq!(listing(&server, "/api/v1/keywords/bulk/1.json"), (bulk[..100].to_vec(), 100, 1));
    assert_eq!(server.get("/api/v1/keywords/bulk/2.json").status(), 404);
    assert_eq!(server.get("/api/v1/kinds/mcp/1.json").status(), 404);
    assert_eq!(server.get("/api/v1/keywords/rare/1.json").status(), 404);
    assert!(!server.static_root().join("api/v1/kinds/mcp").exists());
    assert_eq!(listing(&server, "/api/v1/kinds/skill/1.json").0.last().unwrap(), "lonely");
}
