//! Publish through the write API, then read everything back over HTTP, as
//! cargo, the CLI, a browser and a mirror would.

use crate::support;

use cairn::archive::builder::TarballBuilder;
use serde_json::Value;
use support::{client, git, Server};

const GZ: &str = "application/gzip";
const ZST: &str = "application/zstd";

fn package(name: &str, version: &str) -> TarballBuilder {
    TarballBuilder::new(name, version)
        .file("README.md", format!("# {name}\n\nversion {version}\n").as_bytes())
}

#[test]
fn publish_then_read_everything_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token.clone().expect("first start prints a bootstrap token");

    let tarball = package("Hello_World", "1.2.0").gzip();
    let resp = server.put("Hello_World", "1.2.0", &token, tarball.clone(), GZ);
    assert_eq!(resp.status(), 201);
    for h in ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"] {
        assert!(resp.headers().contains_key(h), "missing {h}");
    }
    let published: Value = resp.json().unwrap();
    let (sha, _) = cairn::store::digests(&tarball);
    assert_eq!(published["sha256"], sha);
    assert_eq!(published["sizeBytes"], tarball.len());
    let commit = published["indexCommit"].as_str().unwrap().to_string();

    // A second version, zstd this time.
    let zst = package("Hello_World", "1.10.0-beta.1").zstd();
    assert_eq!(server.put("Hello_World", "1.10.0-beta.1", &token, zst, ZST).status(), 201);

    // The index file, at cargo's path for the lowercased name.
    let resp = server.get("/index/he/ll/hello_world");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "public, max-age=60");
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let text = resp.text().unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["name"], "Hello_World");
    assert_eq!(lines[0]["vers"], "1.2.0");
    assert_eq!(lines[0]["cksum"], sha);
    assert_eq!(lines[0]["fmt"], "tar.gz");
    assert_eq!(lines[1]["fmt"], "tar.zst");
    assert_eq!(lines[0]["v"], 1);
    assert_eq!(lines[0]["yanked"], false);
    let pubtime = lines[0]["pubtime"].as_str().unwrap();
    assert_eq!(pubtime.len(), 20, "YYYY-MM-DDTHH:MM:SSZ: {pubtime}");
    assert!(pubtime.ends_with('Z'));

    // ETag revalidation.
    let resp = client()
        .get(format!("{}/index/he/ll/hello_world", server.url))
        .header("If-None-Match", &etag)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 304);

    // config.json, usable by cargo as a sparse registry.
    let config: Value = server.get("/index/config.json").json().unwrap();
    assert_eq!(config["dl"], format!("{}/blobs/sha256/{{sha256-checksum}}", server.url));
    assert_eq!(config["api"], server.url);
    assert_eq!(config["pubkey"], server.pubkey);

    // Package and version documents.
    let doc: Value = server.get("/api/v1/packages/hello_world.json").json().unwrap();
    assert_eq!(doc["name"], "Hello_World");
    assert_eq!(doc["latestVersion"], "1.2.0", "a prerelease is not the latest");
    assert_eq!(doc["owners"][0], "admin");
    assert_eq!(doc["versions"][0]["version"], "1.10.0-beta.1", "newest first in SemVer order");
    let vdoc: Value = server.get("/api/v1/packages/hello_world/1.2.0.json").json().unwrap();
    assert_eq!(vdoc["sha256"], sha);
    let readme = server.get("/api/v1/packages/hello_world/1.2.0/readme.md");
    assert_eq!(readme.status(), 200);
    assert!(readme.headers()["content-type"].to_str().unwrap().starts_with("text/markdown"));
    assert_eq!(readme.text().unwrap(), "# Hello_World\n\nversion 1.2.0\n");
    let html = server.get("/api/v1/packages/hello_world/1.2.0/readme.html");
    assert_eq!(html.headers()["content-security-policy"], cairn::layout::PAGE_CSP);
    assert_eq!(
        html.text().unwrap(),
        "<h1>Hello_World</h1>\n<p>version 1.2.0</p>\n",
        "rendered once, at publish"
    );
    let owners: Value = server.get("/api/v1/packages/hello_world/owners.json").json().unwrap();
    assert_eq!(owners["owners"][0]["login"], "admin");
    let recent: Value = server.get("/api/v1/recent.json").json().unwrap();
    assert_eq!(recent["publishes"][0]["version"], "1.10.0-beta.1");
    let health: Value = server.get("/api/v1/health.json").json().unwrap();
    assert_eq!(health["packages"], 1);
    assert_eq!(health["versions"], 2);
    assert_ne!(health["indexCommit"], commit, "health follows the latest commit");

    // The blob, byte for byte, immutable.
    let resp = server.get(&format!("/blobs/sha256/{sha}"));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(resp.headers()["content-type"], "application/octet-stream", "the index line's fmt says which");
    assert_eq!(resp.bytes().unwrap().to_vec(), tarball);

    // The signature: minisign-verify in Rust, every trusted-comment field.
    let sig = server.get(&format!("/blobs/sha256/{sha}.minisig")).text().unwrap();
    let att = cairn::sign::verify(&server.pubkey, &tarball, &sig).unwrap();
    assert_eq!(att.registry, "cairn");
    assert_eq!(att.name, "Hello_World");
    assert_eq!(att.version, "1.2.0");
    assert_eq!(att.sha256, sha);
    assert_eq!(att.blake3, blake3::hash(&tarball).to_hex().to_string());
    assert!(cairn::sign::verify(&server.pubkey, b"other bytes", &sig).is_err());

    // ... and with the reference minisign tool, with the public key file.
    let pubfile = server.get("/minisign.pub");
    assert_eq!(pubfile.headers()["cache-control"], "public, max-age=300");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("pkg.tar.gz"), &tarball).unwrap();
    std::fs::write(work.path().join("pkg.tar.gz.minisig"), &sig).unwrap();
    std::fs::write(work.path().join("minisign.pub"), pubfile.text().unwrap()).unwrap();
    let out = std::process::Command::new("minisign")
        .args(["-V", "-p", "minisign.pub", "-m", "pkg.tar.gz"])
        .current_dir(work.path())
        .output()
        .expect("the minisign command is installed");
    assert!(out.status.success(), "minisign -V: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("Trusted comment: {}", att_comment(&att))), "{stdout}");
    std::fs::write(work.path().join("pkg.tar.gz"), b"tampered").unwrap();
    let out = std::process::Command::new("minisign")
        .args(["-V", "-p", "minisign.pub", "-m", "pkg.tar.gz"])
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "minisign must refuse tampered bytes");

    // A package that does not exist is a 404: the small HTML page outside
    // /api/ (cargo reads only the status), the JSON error shape under it.
    let resp = server.get("/index/no/pe/nope");
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let resp = server.get("/api/v1/packages/nope.json");
    assert_eq!(resp.status(), 404);
    let err: Value = resp.json().unwrap();
    assert_eq!(err["error"], "not-found");
}

fn att_comment(att: &cairn::sign::Attestation) -> String {
    att.trusted_comment()
}

#[test]
fn git_clone_of_index_git_equals_the_static_index() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    for (i, name) in ["a", "ab", "abc", "abcd", "serde_json"].iter().enumerate() {
        for v in 0..3 {
            let version = format!("{i}.{v}.0");
            let resp = server.put(name, &version, &token, package(name, &version).gzip(), GZ);
            assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
        }
    }
    let work = tempfile::tempdir().unwrap();
    let out = git(work.path(), &["clone", "-q", &format!("{}/index.git", server.url), "clone"]);
    assert!(out.status.success(), "git clone: {}", String::from_utf8_lossy(&out.stderr));
    let clone = work.path().join("clone");
    let files = |root: &std::path::Path, skip_git: bool| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = walkdir::WalkDir::new(root)
            .into_iter()
            .filter_entry(|e| !(skip_git && e.file_name() == ".git"))
            .flatten()
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                (
                    e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let cloned = files(&clone, true);
    assert_eq!(cloned, files(&server.static_root().join("index"), false));
    assert_eq!(cloned.len(), 6, "config.json and five index files");
    // Each publish is one commit with the SPEC's message and trailer.
    let log = git(&clone, &["log", "--format=%s|%(trailers:key=Published-By,valueonly)", "-n", "1"]);
    let log = String::from_utf8_lossy(&log.stdout);
    assert_eq!(log.trim(), "publish serde_json 4.2.0|admin");
    let count = git(&clone, &["rev-list", "--count", "HEAD"]);
    assert_eq!(String::from_utf8_lossy(&count.stdout).trim(), "16", "config commit and 15 publishes");
    // The dumb protocol needs no loose objects: everything is packed.
    let loose: Vec<_> = walkdir::WalkDir::new(server.static_root().join("index.git/objects"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.path().parent().unwrap().file_name().unwrap().len() == 2)
        .collect();
    assert!(loose.is_empty(), "loose objects: {loose:?}");
    // Geometric consolidation keeps the packs a clone fetches few.
    let listed = std::fs::read_to_string(server.static_root().join("index.git/objects/info/packs")).unwrap();
    let packs = listed.lines().filter(|l| l.starts_with("P ")).count();
    assert!((1..=5).contains(&packs), "16 groups left {packs} packs listed");
}

#[test]
fn republishing_a_version_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    let first = package("dup", "1.0.0").gzip();
    assert_eq!(server.put("dup", "1.0.0", &token, first.clone(), GZ).status(), 201);
    let before = server.static_files();
    for body in [first, package("dup", "1.0.0").file("extra.txt", b"x").gzip()] {
        let resp = server.put("dup", "1.0.0", &token, body, GZ);
        assert_eq!(resp.status(), 409);
        let err: Value = resp.json().unwrap();
        assert_eq!(err["error"], "conflict");
    }
    // Build metadata does not make a new version.
    let resp = server.put("dup", "1.0.0+build5", &token, package("dup", "1.0.0+build5").gzip(), GZ);
    assert_eq!(resp.status(), 409);
    assert_eq!(server.static_files(), before, "a refused publish writes nothing");
}

#[test]
fn confusable_reserved_and_respelled_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    assert_eq!(
        server.put("google-auth", "1.0.0", &token, package("google-auth", "1.0.0").gzip(), GZ).status(),
        201
    );
    let before = server.static_files();
    let cases = [
        ("g00gle-auth", 409, "conflict"),
        ("Google_Auth", 409, "conflict"),
        ("googleauth", 409, "conflict"),
        ("cairn", 400, "invalid"),
        ("Admin", 400, "invalid"),
        ("con", 400, "invalid"),
        ("lpt9", 400, "invalid"),
    ];
    for (name, status, code) in cases {
        let resp = server.put(name, "2.0.0", &token, package(name, "2.0.0").gzip(), GZ);
        assert_eq!(resp.status(), status, "{name}");
        let err: Value = resp.json().unwrap();
        assert_eq!(err["error"], code, "{name}");
        assert!(!err["message"].as_str().unwrap().is_empty());
    }
    let err: Value = server
        .put("Google_Auth", "2.0.0", &token, package("Google_Auth", "2.0.0").gzip(), GZ)
        .json()
        .unwrap();
    assert!(err["message"].as_str().unwrap().contains("google-auth"), "names the existing spelling: {err}");
    assert_eq!(server.static_files(), before);
}

#[test]
fn only_owners_publish_new_versions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let alice = server.add_user("alice");
    let bob = server.add_user("bob");
    assert_eq!(server.put("owned", "1.0.0", &alice, package("owned", "1.0.0").gzip(), GZ).status(), 201);
    let resp = server.put("owned", "1.1.0", &bob, package("owned", "1.1.0").gzip(), GZ);
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.json::<Value>().unwrap()["error"], "forbidden");
    assert_eq!(server.put("owned", "1.1.0", &alice, package("owned", "1.1.0").gzip(), GZ).status(), 201);
    // No token, a malformed token, and a well-formed unknown token.
    let body = package("owned", "1.2.0").gzip();
    let resp = client()
        .put(format!("{}/api/v1/packages/owned/1.2.0", server.url))
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(server.put("owned", "1.2.0", "cairn_nope", body.clone(), GZ).status(), 401);
    let forged = cairn::db::token::generate();
    assert_eq!(server.put("owned", "1.2.0", &forged, body.clone(), GZ).status(), 401);
    // cargo's bare token form is accepted.
    let resp = client()
        .put(format!("{}/api/v1/packages/owned/1.2.0", server.url))
        .header("Authorization", &alice)
        .header("Content-Type", GZ)
        .body(body)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
}

#[test]
fn racing_publishes_yield_one_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    for round in 0..5 {
        let version = format!("1.0.{round}");
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|i| {
                    let body = package("race", &version).file("who.txt", format!("{i}").as_bytes()).gzip();
                    let (server, token, version) = (&server, &token, &version);
                    s.spawn(move || server.put("race", version, token, body, GZ).status().as_u16())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = statuses.clone();
        sorted.sort();
        assert_eq!(sorted, vec![201, 409], "round {round}: {statuses:?}");
    }
    let index = server.get("/index/ra/ce/race").text().unwrap();
    assert_eq!(index.lines().count(), 5);
    // The loser's blob is not left behind either.
    let blobs = std::fs::read_dir(server.static_root().join("blobs/sha256")).unwrap().count();
    assert_eq!(blobs, 10, "five blobs and five signatures");
}

#[test]
fn api_responses_carry_rate_limit_headers_and_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(dir.path(), &[]);
    let resp = server.get("/api/v1/health");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["ratelimit-limit"], "30");
    let remaining: u32 = resp.headers()["ratelimit-remaining"].to_str().unwrap().parse().unwrap();
    assert!(remaining < 30);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["checks"]["db"]["status"], "ok");
    let resp = server.get("/api/v1/nothing-here");
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().contains_key("ratelimit-remaining"));
    assert_eq!(resp.json::<Value>().unwrap()["error"], "not-found");
    // The anonymous bucket runs dry: 429 with Retry-After.
    let mut last = None;
    for _ in 0..40 {
        let r = server.get("/api/v1/health");
        if r.status() == 429 {
            last = Some(r);
            break;
        }
    }
    let r = last.expect("the anonymous bucket (30) runs out within 40 requests");
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.json::<Value>().unwrap()["error"], "too-many-requests");
}

#[test]
fn kinds_and_keywords_that_are_not_words_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    let native = |kind: &str, keywords: &str| {
        let manifest = format!(
            "[package]\nname = \"wordy\"\nversion = \"1.0.0\"\nkind = {kind:?}\nkeywords = {keywords}\n"
        );
        TarballBuilder::new("wordy", "1.0.0").manifest(manifest).gzip()
    };
    for (kind, keywords) in [("../x", "[]"), ("skill", "[\"git/hub\"]"), ("a b", "[]")] {
        let resp = server.put("wordy", "1.0.0", &token, native(kind, keywords), GZ);
        assert_eq!(resp.status(), 400, "{kind} {keywords}");
        let err: Value = resp.json().unwrap();
        assert_eq!(err["error"], "invalid", "{err}");
    }
    // cargo's publish metadata: its keywords reach the index line as sent.
    let krate = TarballBuilder::new("wordy", "1.0.0")
        .manifest_kind(cairn::archive::ManifestKind::Cargo)
        .file("src/lib.rs", b"")
        .gzip();
    let meta = serde_json::json!({"name": "wordy", "vers": "1.0.0", "deps": [], "features": {},
                                  "keywords": ["../up"], "description": "d"});
    let json = serde_json::to_vec(&meta).unwrap();
    let mut frame = (json.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&json);
    frame.extend_from_slice(&(krate.len() as u32).to_le_bytes());
    frame.extend_from_slice(&krate);
    let resp = client()
        .put(format!("{}/api/v1/crates/new", server.url))
        .bearer_auth(&token)
        .body(frame)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().unwrap();
    assert!(err["errors"][0]["detail"].as_str().unwrap().contains("../up"), "{err}");
    // Nothing was written.
    assert_eq!(server.get("/index/wo/rd/wordy").status(), 404);
    assert_eq!(server.get("/api/v1/packages/wordy.json").status(), 404);
    // Upper case is a word once lowercased.
    assert_eq!(server.put("wordy", "1.0.0", &token, native("Skill", "[\"Git\"]"), GZ).status(), 201);
}
