//! cairn in front of a cargo sparse registry (SPEC section 16): the real
//! crates and crates.io lines of ../shared/fixtures/crates-io-mini served by
//! nginx as the upstream, cargo and cairn's CLI as the clients.

use crate::support;

use cairn::archive::builder::TarballBuilder;
use cairn::archive::ManifestKind;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::upstream::{fixture, manifest, sha256_of, Upstream};
use support::user::User;
use support::Server;

/// `cairn serve` on `data` with the fixture as its upstream `crates-io`.
fn cairn_in_front(data: &Path, up: &Upstream, extra: &str) -> Server {
    upstream_config(data, up, extra);
    Server::start(data)
}

/// A data directory whose registry.toml names `up` (with `extra`).
fn upstream_config(data: &Path, up: &Upstream, extra: &str) {
    std::fs::create_dir_all(data).unwrap();
    let toml = format!("[[upstreams]]\nname = \"crates-io\"\nindex = \"{}\"\n{extra}", up.index());
    std::fs::write(data.join("registry.toml"), toml).unwrap();
}

/// A CARGO_HOME whose crates.io is cairn (`replace-with`), which is also
/// the registry `corp` to publish to.
fn cargo_home(dir: &Path, cairn: &str) -> PathBuf {
    let home = dir.to_path_buf();
    std::fs::create_dir_all(&home).unwrap();
    let config = format!(
        "[source.crates-io]\nreplace-with = \"corp\"\n\n[source.corp]\nregistry = \"sparse+{cairn}/index/\"\n\n\
         [registries.corp]\nindex = \"sparse+{cairn}/index/\"\n\n[net]\nretry = 0\n\n[term]\ncolor = \"never\"\n"
    );
    std::fs::write(home.join("config.toml"), config).unwrap();
    home
}

fn cargo(home: &Path, dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("cargo")
        .args(args)
        .current_dir(dir)
        .env("CARGO_HOME", home)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("CARGO_REGISTRIES_CRATES_IO_PROTOCOL")
        .output()
        .unwrap()
}

fn cargo_ok(home: &Path, dir: &Path, args: &[&str]) -> String {
    let out = cargo(home, dir, args);
    assert!(out.status.success(), "cargo {args:?}:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The fixture's seed project, copied to `dir`, without its lock.
fn seed_project(dir: &Path) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::copy(fixture().join("Cargo.toml"), dir.join("Cargo.toml")).unwrap();
    std::fs::copy(fixture().join("src/lib.rs"), dir.join("src/lib.rs")).unwrap();
}

fn json(resp: reqwest::blocking::Response) -> Value {
    resp.json().unwrap()
}

/// The acceptance path: cargo resolves, fetches and builds a project
/// whose dependencies all come from the upstream through cairn, publishes
/// a crate of its own to the same cairn, and builds again from a fresh
/// CARGO_HOME with the upstream stopped.
#[test]
fn cargo_builds_through_cairn_and_keeps_building_with_the_upstream_down() {
    let tmp = tempfile::tempdir().unwrap();
    let mut up = Upstream::start(tmp.path());
    let server = cairn_in_front(&tmp.path().join("data"), &up, "");
    let project = tmp.path().join("project");
    seed_project(&project);
    let home = cargo_home(&tmp.path().join("cargo-home"), &server.url);
    cargo_ok(&home, &project, &["generate-lockfile"]);
    let lock = std::fs::read_to_string(project.join("Cargo.lock")).unwrap();
    assert_eq!(lock, std::fs::read_to_string(fixture().join("Cargo.lock")).unwrap(), "the same resolution");
    cargo_ok(&home, &project, &["fetch", "--locked"]);

    // Every crate came through cairn, stored, signed and logged; the index
    // files are the upstream's bytes.
    for (name, version, sha256) in manifest() {
        let root = server.static_root();
        assert!(root.join(format!("blobs/sha256/{sha256}")).is_file(), "{name} {version} stored");
        let sig = std::fs::read_to_string(root.join(format!("blobs/sha256/{sha256}.minisig"))).unwrap();
        assert!(sig.contains(&format!("name={name} version={version} sha256={sha256}")), "{sig}");
        assert!(sig.contains(" upstream=crates-io"), "{sig}");
    }
    let path = cairn::index::package_path("hex");
    let served = server.get(&format!("/index/{path}")).bytes().unwrap();
    assert_eq!(
        &served[..],
        &std::fs::read(fixture().join("index").join(&path)).unwrap()[..],
        "byte for byte"
    );
    let doc = json(server.get("/api/v1/packages/hex.json"));
    assert_eq!(doc["upstream"], "crates-io", "{doc}");
    let page = server.get("/p/hex").text().unwrap();
    assert!(page.contains("Cached from the upstream registry <strong>crates-io</strong>"), "{page}");
    let doc = json(server.get("/api/v1/packages/hex/0.4.3.json"));
    assert!(doc["logIndex"].as_u64().is_some(), "{doc}");
    // Search shows it, marked with its upstream (the delta, before any search job).
    let found = json(server.get("/api/v1/crates?q=hex"));
    let hit = found["crates"].as_array().unwrap().iter().find(|c| c["name"] == "hex").cloned();
    assert_eq!(hit.map(|h| h["upstream"].clone()), Some(Value::from("crates-io")), "{found}");
    let log = support::git(&server.static_root().join("index.git"), &["log", "--format=%s%n%b", "main"]);
    let log = String::from_utf8_lossy(&log.stdout).into_owned();
    assert!(log.contains("cache hex\nUpstream: crates-io"), "{log}");

    // A crate of the company's own, published with cargo to the same URL.
    let own = tmp.path().join("own");
    std::fs::create_dir_all(own.join("src")).unwrap();
    std::fs::write(
        own.join("Cargo.toml"),
        "[package]\nname = \"corp-widgets\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlicense = \"MIT\"\ndescription = \"ours\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(own.join("src/lib.rs"), "pub fn widgets() -> u32 { 7 }\n").unwrap();
    let token = server.token.clone().unwrap();
    let out = cargo(&home, &own, &["publish", "--registry", "corp", "--token", &token, "--no-verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(server.get(&format!("/index/{}", cairn::index::package_path("corp-widgets"))).status(), 200);

    // Every document of the cached packages (and the search delta) matches
    // its schema; their index files are the upstream's lines, not cairn's
    // (index-line.schema.json is the line of a publish here).
    let (errors, _) = support::validate_static_tree(&server.static_root());
    let errors: Vec<&String> = errors.iter().filter(|e| !e.contains("(index-line)")).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // fsck finds the cached lines, blobs and signatures whole (a line
    // whose blob nobody asked for yet is no finding).
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["fsck", "--data"])
        .arg(&server.data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The upstream goes away: a fresh CARGO_HOME still builds everything cached.
    up.stop();
    let fresh = cargo_home(&tmp.path().join("cargo-home-2"), &server.url);
    cargo_ok(&fresh, &project, &["fetch", "--locked"]);
    cargo_ok(&fresh, &project, &["build", "--locked", "--offline"]);
    // A name never asked for has nothing to fall back on. (Not one the
    // fixture's crates depend on: brought ahead while the upstream was up,
    // the upstream's 404 for it is remembered, and a 404 stays a 404.)
    let resp = server.get(&format!("/index/{}", cairn::index::package_path("never-asked-for")));
    assert_eq!(resp.status(), 502);
    assert_eq!(json(resp)["error"], "upstream-unavailable");
}

/// The upstream's bytes must be the ones its line names: tampered bytes
/// are refused with 502 `upstream-mismatch`, stored nowhere, and shown in
/// health; the untampered file is then fetched and served.
#[test]
fn tampered_upstream_bytes_are_refused_and_stored_nowhere() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Upstream::start(tmp.path());
    let server = cairn_in_front(&tmp.path().join("data"), &up, "");
    let sha256 = sha256_of("hex", "0.4.3");
    let file = up.dir.join("crates/hex/0.4.3/download");
    let good = std::fs::read(&file).unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    std::fs::write(&file, &bad).unwrap();
    assert_eq!(server.get(&format!("/index/{}", cairn::index::package_path("hex"))).status(), 200);
    let resp = server.get(&format!("/blobs/sha256/{sha256}"));
    assert_eq!(resp.status(), 502);
    let body = json(resp);
    assert_eq!(body["error"], "upstream-mismatch", "{body}");
    assert!(!server.static_root().join(format!("blobs/sha256/{sha256}")).exists());
    assert!(!server.static_root().join(format!("blobs/sha256/{sha256}.minisig")).exists());
    let health = json(server.get("/api/v1/health"));
    let refused = &health["upstreams"]["mismatches"][0];
    assert_eq!(
        (refused["name"].as_str(), refused["want"].as_str()),
        (Some("hex"), Some(sha256.as_str())),
        "{health}"
    );

    std::fs::write(&file, &good).unwrap();
    let resp = server.get(&format!("/blobs/sha256/{sha256}"));
    assert_eq!(resp.status(), 200);
    assert_eq!(&resp.bytes().unwrap()[..], &good[..]);
}

fn crate_upload(name: &str, version: &str) -> Vec<u8> {
    TarballBuilder::new(name, version).manifest_kind(ManifestKind::Cargo).gzip()
}

/// Dependency confusion: a name the upstream offers cannot be published
/// or registered locally (cached or not) until an administrator claims
/// it; the claim takes the cached lines out of the index.
#[test]
fn a_name_the_upstream_offers_needs_a_claim_before_a_local_publish() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Upstream::start(tmp.path());
    let server = cairn_in_front(&tmp.path().join("data"), &up, "");
    let token = server.token.clone().unwrap();
    let hex = format!("/index/{}", cairn::index::package_path("hex"));
    assert_eq!(server.get(&hex).status(), 200, "cached");
    let resp = server.put("hex", "9.9.9", &token, crate_upload("hex", "9.9.9"), "application/gzip");
    assert_eq!(resp.status(), 409);
    assert_eq!(json(resp)["error"], "upstream-name");
    // Not cached yet, but the upstream knows it: one request says so.
    let resp = support::api(
        &server,
        reqwest::Method::POST,
        "/packages",
        &token,
        Some(serde_json::json!({ "name": "ryu" })),
    );
    assert_eq!(resp.status(), 409);
    assert_eq!(json(resp)["error"], "upstream-name");

    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["admin", "upstream", "claim", "hex", "--data"])
        .arg(&server.data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    support::eventually(|| server.get(&hex).status() == 404, || "the cached lines leave the index".into());
    let resp = server.put("hex", "9.9.9", &token, crate_upload("hex", "9.9.9"), "application/gzip");
    assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
    let lines = server.get(&hex).text().unwrap();
    assert_eq!(lines.lines().count(), 1, "the local version alone: {lines}");
    assert!(lines.contains("\"vers\":\"9.9.9\""));
}

/// A local package stays local when the upstream later offers the same
/// name: cairn never asks the upstream for it.
#[test]
fn a_local_name_the_upstream_offers_later_stays_local() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Upstream::start(tmp.path());
    let server = cairn_in_front(&tmp.path().join("data"), &up, "");
    let token = server.token.clone().unwrap();
    let resp =
        server.put("corp-only", "1.0.0", &token, crate_upload("corp-only", "1.0.0"), "application/gzip");
    assert_eq!(resp.status(), 201);
    // Its publish asked the upstream once, before the name was local.
    let asked = up.requests().len();
    let path = cairn::index::package_path("corp-only");
    let hex = std::fs::read(up.dir.join("index").join(cairn::index::package_path("hex"))).unwrap();
    let theirs = String::from_utf8(hex).unwrap().replace("\"hex\"", "\"corp-only\"");
    std::fs::create_dir_all(up.dir.join("index").join(&path).parent().unwrap()).unwrap();
    std::fs::write(up.dir.join("index").join(&path), theirs).unwrap();
    let served = server.get(&format!("/index/{path}")).text().unwrap();
    assert_eq!(served.lines().count(), 1, "{served}");
    assert!(served.contains("\"vers\":\"1.0.0\""));
    assert_eq!(up.requests().len(), asked, "{:?}", up.requests());
}

/// The cooldown: versions younger than `min_age` (by `pubtime`, else by
/// when cairn first saw them) are held back; older ones are served.
#[test]
fn versions_younger_than_min_age_are_held_back() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Upstream::start(tmp.path());
    let path = cairn::index::package_path("hex");
    let file = up.dir.join("index").join(&path);
    let mut text = std::fs::read_to_string(&file).unwrap();
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let sum = "ab".repeat(32);
    text.push_str(&format!(
        "{{\"name\": \"hex\", \"vers\": \"0.4.4\", \"deps\": [], \"cksum\": \"{sum}\", \"features\": {{}}, \"yanked\": false, \"pubtime\": \"{now}\"}}\n"
    ));
    text.push_str(&format!(
        "{{\"name\": \"hex\", \"vers\": \"0.4.5\", \"deps\": [], \"cksum\": \"{sum}\", \"features\": {{}}, \"yanked\": false}}\n"
    ));
    std::fs::write(&file, &text).unwrap();
    let server = cairn_in_front(&tmp.path().join("data"), &up, "min_age = \"3d\"\n");
    let served = server.get(&format!("/index/{path}")).text().unwrap();
    let original = std::fs::read_to_string(fixture().join("index").join(&path)).unwrap();
    assert_eq!(served, original, "the two young versions wait");
}

/// A cached index file is revalidated after `refresh`: an upstream yank
/// becomes a `cache` commit; nothing changed costs a 304 and no commit.
#[test]
fn a_cached_index_file_follows_the_upstream_after_refresh() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Upstream::start(tmp.path());
    let server = cairn_in_front(&tmp.path().join("data"), &up, "refresh = 1\n");
    let path = cairn::index::package_path("hex");
    let url = format!("/index/{path}");
    assert_eq!(server.get(&url).status(), 200);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(server.get(&url).status(), 200);
    let commits = |server: &Server| {
        let log = support::git(&server.static_root().join("index.git"), &["log", "--format=%s", "main"]);
        String::from_utf8_lossy(&log.stdout).lines().filter(|s| *s == "cache hex").count()
    };
    assert_eq!(commits(&server), 1, "a 304 commits nothing");
    let file = up.dir.join("index").join(&path);
    let text = std::fs::read_to_string(&file).unwrap();
    let yanked = text.replacen("\"yanked\": false", "\"yanked\": true", 1);
    std::fs::write(&file, &yanked).unwrap();
    support::eventually(
        || server.get(&url).text().unwrap() == yanked,
        || "the yank reaches cairn after refresh".into(),
    );
    assert_eq!(commits(&server), 2);
}

/// `max_cache_bytes`: the least recently fetched blobs go (their
/// signatures and lines stay) and come back from the upstream on demand.
#[test]
fn blobs_over_max_cache_bytes_are_evicted_and_fetched_again() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Upstream::start(tmp.path());
    let server = cairn_in_front(&tmp.path().join("data"), &up, "max_cache_bytes = 1\n");
    let all = manifest();
    let pick = |n: &str| all.iter().find(|(name, _, _)| name == n).unwrap().clone();
    let (hex, ryu) = (pick("hex"), pick("ryu"));
    for (name, _, _) in [&hex, &ryu] {
        assert_eq!(server.get(&format!("/index/{}", cairn::index::package_path(name))).status(), 200);
    }
    let blob = |sha: &str| server.static_root().join(format!("blobs/sha256/{sha}"));
    assert_eq!(server.get(&format!("/blobs/sha256/{}", hex.2)).status(), 200);
    assert!(blob(&hex.2).is_file());
    assert_eq!(server.get(&format!("/blobs/sha256/{}", ryu.2)).status(), 200);
    assert!(!blob(&hex.2).exists(), "the older blob is evicted");
    assert!(blob(&format!("{}.minisig", hex.2)).is_file(), "its signature stays");
    let resp = server.get(&format!("/blobs/sha256/{}", hex.2));
    assert_eq!(resp.status(), 200);
    let fetched = up.requests().iter().filter(|r| r.contains("/crates/hex/0.4.3/download")).count();
    assert_eq!(fetched, 2, "fetched again on demand");
}

/// `cairn fetch` of a cached crate checks it as it checks a local one:
/// its signature (naming the upstream) and its entry in the log.
#[test]
fn cairn_fetch_verifies_a_cached_crate_by_signature_and_log() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Upstream::start(tmp.path());
    let server = cairn_in_front(&tmp.path().join("data"), &up, "");
    let user = User::new();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let out = user.ok(&work, &["fetch", "hex@0.4.3", "--registry", &server.url]);
    let fetched = std::fs::read(work.join(out.trim())).unwrap();
    let sha256 = sha256_of("hex", "0.4.3");
    assert_eq!(cairn::store::digests(&fetched).0, sha256);
    let proof = user.ok(&work, &["log", "proof", "hex@0.4.3", "--registry", &server.url]);
    use base64::Engine;
    let extra = proof.lines().find_map(|l| l.strip_prefix("extra ")).expect("the proof carries its entry");
    let entry = base64::engine::general_purpose::STANDARD.decode(extra).unwrap();
    let entry = String::from_utf8(entry).unwrap();
    assert!(entry.starts_with(&format!("cairn-log-v1 cache hex 0.4.3 {sha256} ")), "{entry}");
}

/// `cairn upstream fetch LOCKFILE` warms the cache: every crate the lock
/// pins is stored afterwards; `cairn upstream list` shows them.
#[test]
fn upstream_fetch_warms_the_cache_from_a_lockfile() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Upstream::start(tmp.path());
    let server = cairn_in_front(&tmp.path().join("data"), &up, "");
    let user = User::new();
    let lock = fixture().join("Cargo.lock");
    let out = user.ok(tmp.path(), &["upstream", "fetch", lock.to_str().unwrap(), "--registry", &server.url]);
    assert!(out.contains("40 packages cached"), "{out}");
    for (name, version, sha256) in manifest() {
        assert!(server.static_root().join(format!("blobs/sha256/{sha256}")).is_file(), "{name} {version}");
    }
    let list = user.ok(tmp.path(), &["upstream", "list", "--data", server.data.to_str().unwrap()]);
    let hex = list.lines().find(|l| l.starts_with("hex\t")).unwrap_or_else(|| panic!("{list}"));
    let f: Vec<&str> = hex.split('\t').collect();
    let size = std::fs::metadata(fixture().join("crates/hex/0.4.3/download")).unwrap().len();
    assert_eq!(&f[1..5], &["crates-io", "9", "1", &size.to_string()], "{list}");
    // The 40 misses came at once, and their rows were written in batches:
    // every one of them is counted, with its size.
    let column =
        |i: usize| list.lines().skip(1).map(move |l| l.split('\t').nth(i).unwrap().parse::<u64>().unwrap());
    let sizes: u64 = manifest()
        .iter()
        .map(|(n, v, _)| std::fs::metadata(fixture().join(format!("crates/{n}/{v}/download"))).unwrap().len())
        .sum();
    assert_eq!((column(3).sum::<u64>(), column(4).sum::<u64>()), (40, sizes), "{list}");
}

/// An air-gapped registry: `cairn import --upstream` fills the cache from
/// a directory with the upstream unreachable. An index file found there is
/// kept byte for byte; other crates get the line `cargo publish` would have
/// made (crates.io's line but its `pubtime`); cargo fetches every crate.
#[test]
fn an_air_gapped_registry_serves_what_cairn_import_brought() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // Nothing listens there.
    let nowhere = format!("sparse+http://127.0.0.1:{}/index/", support::free_port());
    std::fs::write(
        data.join("registry.toml"),
        format!("[[upstreams]]\nname = \"crates-io\"\nindex = \"{nowhere}\"\n"),
    )
    .unwrap();
    let server = Server::start(&data);
    let dir = tmp.path().join("import");
    std::fs::create_dir_all(dir.join("index/3/h")).unwrap();
    assert!(Command::new("cp").arg("-R").arg(fixture().join("crates")).arg(&dir).status().unwrap().success());
    let hex_path = cairn::index::package_path("hex");
    std::fs::copy(fixture().join("index").join(&hex_path), dir.join("index").join(&hex_path)).unwrap();
    let user = User::new();
    let out = user.ok(
        tmp.path(),
        &["import", "--upstream", "crates-io", dir.to_str().unwrap(), "--data", data.to_str().unwrap()],
    );
    assert!(out.contains("40 crates"), "{out}");

    let served = server.get(&format!("/index/{hex_path}")).bytes().unwrap();
    assert_eq!(&served[..], &std::fs::read(fixture().join("index").join(&hex_path)).unwrap()[..]);
    let ryu_path = cairn::index::package_path("ryu");
    let served = server.get(&format!("/index/{ryu_path}")).text().unwrap();
    assert_eq!(served.lines().count(), 1, "{served}");
    let mut derived: Value = serde_json::from_str(served.trim()).unwrap();
    let theirs = std::fs::read_to_string(fixture().join("index").join(&ryu_path)).unwrap();
    let mut theirs: Value = theirs
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["vers"] == "1.0.23")
        .unwrap();
    theirs.as_object_mut().unwrap().remove("pubtime");
    derived.as_object_mut().unwrap().remove("pubtime");
    assert_eq!(derived, theirs, "the line cargo publish would have made");

    let project = tmp.path().join("project");
    seed_project(&project);
    std::fs::copy(fixture().join("Cargo.lock"), project.join("Cargo.lock")).unwrap();
    let home = cargo_home(&tmp.path().join("cargo-home"), &server.url);
    cargo_ok(&home, &project, &["fetch", "--locked"]);
}

/// The shipped nginx configuration in front: an index file or blob it
/// lacks falls back to cairn, which fills it from the upstream; cargo
/// fetches the whole project through nginx.
#[test]
fn nginx_in_front_falls_back_to_cairn_for_what_it_lacks() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Upstream::start(tmp.path());
    let data = tmp.path().join("data");
    upstream_config(&data, &up, "refresh = 1\n");
    let (server, nginx) = support::Nginx::in_front(&data);
    let project = tmp.path().join("project");
    seed_project(&project);
    std::fs::copy(fixture().join("Cargo.lock"), project.join("Cargo.lock")).unwrap();
    let home = cargo_home(&tmp.path().join("cargo-home"), &nginx.url);
    cargo_ok(&home, &project, &["fetch", "--locked"]);
    for (name, version, sha256) in manifest() {
        assert!(server.static_root().join(format!("blobs/sha256/{sha256}")).is_file(), "{name} {version}");
    }
    // Now a static file of nginx's: the same bytes, from the root.
    let path = cairn::index::package_path("hex");
    let resp = reqwest::blocking::get(format!("{}/index/{path}", nginx.url)).unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(&resp.bytes().unwrap()[..], &std::fs::read(fixture().join("index").join(&path)).unwrap()[..]);
    // nginx never asks cairn for a file it has: the server's sweep keeps
    // the cached copy following the upstream (a yank, here).
    let file = up.dir.join("index").join(&path);
    let yanked = std::fs::read_to_string(&file).unwrap().replacen("\"yanked\": false", "\"yanked\": true", 1);
    std::fs::write(&file, &yanked).unwrap();
    support::eventually(
        || reqwest::blocking::get(format!("{}/index/{path}", nginx.url)).unwrap().text().unwrap() == yanked,
        || "the yank reaches nginx's static file".into(),
    );
}

/// The deployment as cargo meets it: the shipped nginx with TLS and
/// HTTP/2 in front of a cairn that proxies the upstream. cargo multiplexes
/// its index reads over one HTTP/2 connection (over HTTP/1.1 it asks two
/// at a time), and resolves the fixture's project to the fixture's lock.
#[test]
fn cargo_resolves_over_http2_through_the_shipped_nginx_with_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Upstream::start(tmp.path());
    let data = tmp.path().join("data");
    upstream_config(&data, &up, "");
    let tls = support::Tls::self_signed(tmp.path());
    let port = support::free_port();
    let public = format!("https://127.0.0.1:{port}");
    let server =
        support::Server::start_with(&data, &[("CAIRN_RATE_LIMIT", "off")], &["--public-url", &public]);
    let nginx = support::Nginx::start_with(&data, port, &server.url, Some(&tls));
    let project = tmp.path().join("project");
    seed_project(&project);
    let home = cargo_home(&tmp.path().join("cargo-home"), &nginx.url);
    let cainfo = format!("\n[http]\ncainfo = \"{}\"\n", tls.cert.display());
    std::fs::write(
        home.join("config.toml"),
        std::fs::read_to_string(home.join("config.toml")).unwrap() + &cainfo,
    )
    .unwrap();
    cargo_ok(&home, &project, &["generate-lockfile"]);
    cargo_ok(&home, &project, &["fetch", "--locked"]);
    assert_eq!(
        std::fs::read_to_string(project.join("Cargo.lock")).unwrap(),
        std::fs::read_to_string(fixture().join("Cargo.lock")).unwrap()
    );
    // Every index read and download came over HTTP/2.
    let log = std::fs::read_to_string(nginx.run_dir.join("access.log")).unwrap();
    let reads: Vec<&str> =
        log.lines().filter(|l| l.contains("GET /index/") || l.contains("GET /blobs/")).collect();
    assert!(reads.len() >= 38 + 40, "{log}");
    assert!(reads.iter().all(|l| l.contains(" HTTP/2.0\"")), "{log}");
}

/// A private organisation's registry with its own upstream (`orgs` in the
/// `[[upstreams]]` entry; the public registry not served from it): its
/// members read cached crates under `/orgs/{org}/`, signed and logged in
/// its own log; its 409 and the public registry's are apart.
#[test]
fn a_private_registry_serves_its_own_upstream() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Upstream::start(tmp.path());
    let server = cairn_in_front(&tmp.path().join("data"), &up, "public = false\norgs = [\"acme\"]\n");
    let ann = server.add_user("ann");
    let made = support::api(
        &server,
        reqwest::Method::POST,
        "/orgs",
        &ann,
        Some(serde_json::json!({ "slug": "acme", "visibility": "private" })),
    );
    assert_eq!(made.status(), 201);
    let path = cairn::index::package_path("hex");
    let read =
        |p: &str| support::client().get(format!("{}{p}", server.url)).bearer_auth(&ann).send().unwrap();
    let resp = read(&format!("/orgs/acme/index/{path}"));
    assert_eq!(resp.status(), 200);
    assert_eq!(&resp.bytes().unwrap()[..], &std::fs::read(fixture().join("index").join(&path)).unwrap()[..]);
    let sha256 = sha256_of("hex", "0.4.3");
    assert_eq!(read(&format!("/orgs/acme/blobs/sha256/{sha256}")).status(), 200);
    let root = server.static_root().join("orgs/acme");
    let sig = std::fs::read_to_string(root.join(format!("blobs/sha256/{sha256}.minisig"))).unwrap();
    assert!(sig.contains(" upstream=crates-io"), "{sig}");
    assert!(!server.static_root().join(format!("blobs/sha256/{sha256}")).exists(), "nothing public");
    // The public registry has no upstream: hex is no name there.
    assert_eq!(server.get(&format!("/index/{path}")).status(), 404);
    let token = server.token.clone().unwrap();
    let resp = server.put("hex", "9.9.9", &token, crate_upload("hex", "9.9.9"), "application/gzip");
    assert_eq!(resp.status(), 201, "the public registry may have its own hex");
    // In acme's registry, hex is the upstream's.
    let resp = support::client()
        .put(format!("{}/orgs/acme/api/v1/packages/hex/9.9.9", server.url))
        .bearer_auth(&ann)
        .header("Content-Type", "application/gzip")
        .body(crate_upload("hex", "9.9.9"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(json(resp)["error"], "upstream-name");
}

/// A mirror of a registry in front of an upstream copies what that
/// registry holds: its cached index files byte for byte and the crates it
/// fetched, each verified; it never makes it fetch the rest from the
/// upstream (it asks `Cache-Control: only-if-cached`, answered 504).
#[test]
fn a_mirror_of_a_proxying_registry_copies_what_it_caches() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Upstream::start(tmp.path());
    let server = cairn_in_front(&tmp.path().join("data"), &up, "");
    let path = cairn::index::package_path("hex");
    let sha256 = sha256_of("hex", "0.4.3");
    assert_eq!(server.get(&format!("/index/{path}")).status(), 200);
    assert_eq!(server.get(&format!("/blobs/sha256/{sha256}")).status(), 200);
    let resp = support::client()
        .get(format!("{}/blobs/sha256/{}", server.url, "ab".repeat(32)))
        .header("Cache-Control", "only-if-cached")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404, "no line names it: nothing to fetch either way");
    let user = User::new();
    let mirror = tmp.path().join("mirror");
    let out = user.run(tmp.path(), &["mirror", &server.url, mirror.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("8 blobs the source has not fetched"), "{err}");
    let copied = std::fs::read(mirror.join("static/index").join(&path)).unwrap();
    assert_eq!(copied, std::fs::read(fixture().join("index").join(&path)).unwrap());
    assert!(mirror.join(format!("static/blobs/sha256/{sha256}")).is_file());
    let fetched = up.requests().iter().filter(|r| r.contains("/crates/hex/")).count();
    assert_eq!(fetched, 1, "the mirror made its source fetch nothing more: {:?}", up.requests());
    // Served, the mirror's documents name the upstream and the log entry as
    // the source's do: a client proves the cached crate against the mirror.
    let doc: Value = server.get("/api/v1/packages/hex/0.4.3.json").json().unwrap();
    let copy = Server::start(&mirror);
    let theirs: Value = copy.get("/api/v1/packages/hex/0.4.3.json").json().unwrap();
    assert_eq!((&theirs["upstream"], &theirs["logIndex"]), (&doc["upstream"], &doc["logIndex"]));
    let work = tmp.path().join("from-mirror");
    std::fs::create_dir_all(&work).unwrap();
    let out = user.ok(&work, &["fetch", "hex@0.4.3", "--registry", &copy.url]);
    assert_eq!(cairn::store::digests(&std::fs::read(work.join(out.trim())).unwrap()).0, sha256);
    // fsck finds the mirror whole: a blob its source never fetched is no finding.
    let out =
        Command::new(env!("CARGO_BIN_EXE_cairn")).args(["fsck", "--data"]).arg(&mirror).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
}

/// A cairn registry in front of another cairn registry: the lines it
/// caches keep the upstream's `logIndex` (byte for byte), which names an
/// entry of the upstream's log, so `cairn install` through it proves each
/// cached line by the proxy's own log entry, named in its version document.
#[test]
fn cairn_install_through_a_cairn_registry_in_front_of_another() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Server::start(&tmp.path().join("a"));
    support::user::publish(&a, "leaf-pkg", "1.0.0", &[]);
    support::user::publish(&a, "top-pkg", "1.0.0", &[("leaf-pkg", "^1")]);
    let data = tmp.path().join("b");
    std::fs::create_dir_all(&data).unwrap();
    let toml = format!("[[upstreams]]\nname = \"corp-a\"\nindex = \"{}/index/\"\n", a.url);
    std::fs::write(data.join("registry.toml"), toml).unwrap();
    let b = Server::start(&data);

    let user = User::new();
    let w = tempfile::tempdir().unwrap();
    user.ok(w.path(), &["login", "--registry", &b.url, "--token", b.token.as_ref().unwrap()]);
    let project = w.path().join("p");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("cairn.toml"), "[dependencies]\n").unwrap();
    user.ok(&project, &["install", "top-pkg"]);
    assert_eq!(support::user::installed(&project), ["leaf-pkg", "top-pkg"]);
    // What the proxy serves is the upstream's file, its logIndex included.
    for name in ["leaf-pkg", "top-pkg"] {
        let path = format!("/index/{}", cairn::index::package_path(name));
        let (theirs, ours) = (a.get(&path).text().unwrap(), b.get(&path).text().unwrap());
        assert_eq!(ours, theirs, "{name}");
        assert!(ours.contains("\"logIndex\""), "{ours}");
    }
    // From the lock, in a fresh project, nothing to prove again.
    std::fs::remove_dir_all(project.join("cairn_packages")).unwrap();
    user.ok(&project, &["install"]);
    assert_eq!(support::user::installed(&project), ["leaf-pkg", "top-pkg"]);
}

/// A cairn upstream is verified before anything of it is cached: a line
/// its log did not record, a blob its key did not sign, and other keys
/// than at first contact (pinned in the data directory, so across a
/// restart) are refused with 502 `upstream-mismatch`, and nothing is cached.
#[test]
fn a_cairn_upstream_is_verified_before_anything_is_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Server::start(&tmp.path().join("a"));
    let good = support::user::publish(&a, "good-pkg", "1.0.0", &[]);
    support::user::publish(&a, "lying-pkg", "1.0.0", &[]);
    let unsigned = support::user::publish(&a, "unsigned-pkg", "1.0.0", &[]);
    support::user::publish(&a, "later-pkg", "1.0.0", &[]);
    let data = tmp.path().join("b");
    std::fs::create_dir_all(&data).unwrap();
    let toml = format!("[[upstreams]]\nname = \"corp-a\"\nindex = \"{}/index/\"\n", a.url);
    std::fs::write(data.join("registry.toml"), toml).unwrap();
    let mut b = Server::start(&data);
    let index = |name: &str| format!("/index/{}", cairn::index::package_path(name));

    // Verified: cached; the keys are pinned at this first contact.
    assert_eq!(b.get(&index("good-pkg")).status(), 200);
    assert_eq!(b.get(&format!("/blobs/sha256/{good}")).status(), 200);
    assert!(data.join("upstreams/corp-a.pin.json").is_file());

    // A line its log did not record (the upstream's file edited).
    let file = a.static_root().join(&index("lying-pkg")[1..]);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("\"deps\":[]", "\"deps\":[{\"name\":\"evil\",\"req\":\"^1\",\"features\":[],\"optional\":false,\"default_features\":true,\"target\":null,\"kind\":\"normal\"}]")).unwrap();
    let resp = b.get(&index("lying-pkg"));
    assert_eq!(resp.status(), 502);
    let body = json(resp);
    assert_eq!(body["error"], "upstream-mismatch", "{body}");
    assert!(!b.static_root().join(&index("lying-pkg")[1..]).exists(), "nothing cached");

    // A blob its key did not sign: another blob's signature in its place.
    let sigs = a.static_root().join("blobs/sha256");
    std::fs::copy(sigs.join(format!("{good}.minisig")), sigs.join(format!("{unsigned}.minisig"))).unwrap();
    assert_eq!(b.get(&index("unsigned-pkg")).status(), 200);
    let resp = b.get(&format!("/blobs/sha256/{unsigned}"));
    assert_eq!(resp.status(), 502);
    assert_eq!(json(resp)["error"], "upstream-mismatch");
    assert!(!b.static_root().join(format!("blobs/sha256/{unsigned}")).exists(), "nothing stored");

    // Other keys than at first contact, after a restart of the proxy.
    let config = a.static_root().join("index/config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let key = doc["pubkey"].as_str().unwrap();
    let other = format!("{}{}", &key[..key.len() - 4], if key.ends_with("AAAA") { "BBBB" } else { "AAAA" });
    std::fs::write(&config, text.replace(key, &other)).unwrap();
    support::eventually(
        || a.get("/index/config.json").text().unwrap().contains(&other),
        || "the upstream serves its new key".into(),
    );
    b.kill();
    let b = Server::start(&data);
    let resp = b.get(&index("later-pkg"));
    assert_eq!(resp.status(), 502);
    let body = json(resp);
    assert_eq!(body["error"], "upstream-mismatch");
    assert!(body["message"].as_str().unwrap().contains("first contact"), "{body}");
    // What was cached before is still served.
    assert_eq!(b.get(&index("good-pkg")).status(), 200);
}
