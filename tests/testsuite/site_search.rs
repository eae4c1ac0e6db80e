//! The site's search as you type (site/assets/search.js) in chromium
//! against a real registry: tools/site-test/search-vectors.mjs runs the
//! shared vectors of index/search-vectors.json through it, with the shards
//! built, from the delta alone, and with a fresh publish in the delta.
//! Needs `node` and chromium (CI installs both): without them the tests fail.

use crate::support;

use cairn::archive::builder::TarballBuilder;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::Server;

/// A registry with the vectors' corpus, and without the search timer, so
/// the shards are exactly those a test builds.
fn registry(data: &Path) -> Server {
    let mut first = Server::start(data);
    let token = first.token.clone();
    first.kill();
    support::set_config(data, &[("search_interval = 60", "search_interval = 0")]);
    let mut server = Server::start(data);
    server.token = token;
    support::publish_corpus(&server);
    server
}

fn rebuild_search(server: &Server) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["rebuild", "search", "--data", server.data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "rebuild search: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs search-vectors.mjs (on `vectors`, else the shared file) and
/// fails the test with its output unless every vector passes.
fn run_vectors(server: &Server, vectors: Option<&Path>) {
    let chromium =
        std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(chromium.exists(), "the site tests need chromium at {} (or $CHROMIUM)", chromium.display());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/site-test");
    let out = Command::new("node")
        .arg("search-vectors.mjs")
        .args(vectors)
        .current_dir(&dir)
        .env("CAIRN_URL", &server.url)
        .output()
        .unwrap_or_else(|e| panic!("the site tests need `node` on PATH: {e}"));
    assert!(
        out.status.success(),
        "search-vectors.mjs failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_site_passes_the_shared_vectors_on_shards() {
    let dir = tempfile::tempdir().unwrap();
    let server = registry(dir.path());
    rebuild_search(&server);
    let delta: Value = server.get("/api/v1/search/delta.json").json().unwrap();
    assert_eq!(delta["packages"], serde_json::json!([]), "the build holds every package");
    run_vectors(&server, None);
}

#[test]
fn the_site_passes_the_shared_vectors_on_the_delta_alone() {
    let dir = tempfile::tempdir().unwrap();
    let server = registry(dir.path());
    assert_eq!(server.get("/api/v1/search/manifest.json").status(), 404, "no shards yet");
    run_vectors(&server, None);
}

#[test]
fn the_site_finds_a_fresh_publish_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = registry(dir.path());
    rebuild_search(&server);
    let manifest =
        "[package]\nname = \"zeppelin\"\nversion = \"1.0.0\"\ndescription = \"Schedules an airship fleet\"\nkeywords = [\"airship\"]\n";
    let body = TarballBuilder::new("zeppelin", "1.0.0").manifest(manifest.to_string()).gzip();
    assert_eq!(
        server.put("zeppelin", "1.0.0", server.token.as_ref().unwrap(), body, "application/gzip").status(),
        201
    );
    let delta: Value = server.get("/api/v1/search/delta.json").json().unwrap();
    assert_eq!(delta["packages"][0]["name"], "zeppelin");
    // The shared vectors still pass with the delta merged, and the new
    // package is found by its keyword at once.
    let mut vectors = support::search_vectors();
    vectors["vectors"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"query": "airship", "top": ["zeppelin"]}));
    let file = dir.path().join("vectors.json");
    std::fs::write(&file, vectors.to_string()).unwrap();
    run_vectors(&server, Some(&file));
}
