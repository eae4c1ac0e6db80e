//! Advisories (SPEC sections 5, 6, 9, 10): `cairn admin advisory add`
//! commits a validated OSV file, the job lists the affected versions of this
//! registry, and `cairn audit` reports a lockfile's findings fetching only
//! the files it needs.

use crate::support;

use cairn::archive::builder::TarballBuilder;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use support::{read_json, validate, Server};

fn cairn(args: &[&str], data: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args(args).env_remove("CAIRN_REGISTRY").env("CAIRN_LOG", "warn");
    if let Some(d) = data {
        cmd.arg("--data").arg(d);
    }
    cmd.output().unwrap()
}

fn commits(server: &Server) -> Vec<String> {
    let out = support::git(&server.static_root().join("index.git"), &["log", "--format=%s", "main"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

fn lockfile(packages: &[(&str, &str)]) -> String {
    let mut s = "version = 1\n".to_string();
    for (n, v) in packages {
        s += &format!(
            "\n[[package]]\nname = \"{n}\"\nversion = \"{v}\"\nchecksum = \"{}\"\ndependencies = []\n",
            "0".repeat(64)
        );
    }
    s
}

/// Serves `root` over HTTP (one request per connection) and records the paths asked for.
fn static_server(root: PathBuf) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            log.lock().unwrap().push(path.clone());
            let mut stream = stream;
            let head = |status: &str, len: usize| {
                format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
            };
            match std::fs::read(root.join(path.trim_start_matches('/'))) {
                Ok(body) => {
                    let _ = stream.write_all(head("200 OK", body.len()).as_bytes());
                    let _ = stream.write_all(&body);
                }
                Err(_) => {
                    let _ = stream.write_all(head("404 Not Found", 0).as_bytes());
                }
            }
            let _ = reader.read(&mut [0u8; 0]);
        }
    });
    (url, seen)
}

#[test]
fn advisories_from_add_to_audit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let token = server.token.clone().unwrap();
    for (name, v) in [
        ("foo", "0.9.0"),
        ("foo", "1.0.0"),
        ("foo", "1.1.0"),
        ("foo", "1.2.0-rc.1"),
        ("foo", "1.2.0"),
        ("foo", "2.0.0"),
        ("foo", "2.0.1"),
        ("Bar_Baz", "0.1.0"),
        ("Bar_Baz", "0.2.0"),
        ("clean", "1.0.0"),
    ] {
        let body = TarballBuilder::new(name, v).gzip();
        assert_eq!(server.put(name, v, &token, body, "application/gzip").status(), 201, "{name} {v}");
    }
    let root = server.static_root();
    let before = commits(&server);

    // A range with a fix (prereleases of the fix are affected), a
    // last_affected range, and an explicit version list (another spelling
    // of the name: `-` for `_`).
    let a1 = json!({
        "schema_version": "1.6.0",
        "id": "CAIRN-2026-0001",
        "modified": "2026-05-01T00:00:00Z",
        "summary": "foo mishandles bar",
        "affected": [{
            "package": {"ecosystem": "cairn", "name": "foo"},
            "ranges": [
                {"type": "SEMVER", "events": [{"introduced": "1.0.0"}, {"fixed": "1.2.0"}]},
                {"type": "SEMVER", "events": [{"introduced": "2.0.0"}, {"last_affected": "2.0.0"}]}
            ]
        }]
    });
    let a2 = json!({
        "id": "CAIRN-2026-0002",
        "modified": "2026-05-02T00:00:00Z",
        "affected": [{"package": {"name": "bar-baz"}, "versions": ["0.1.0"]}]
    });
    for (file, adv) in [("a1.json", &a1), ("a2.json", &a2)] {
        let path = dir.path().join(file);
        std::fs::write(&path, serde_json::to_vec_pretty(adv).unwrap()).unwrap();
        let out = cairn(&["admin", "advisory", "add", path.to_str().unwrap()], Some(&data));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let after = commits(&server);
    assert_eq!(after.len(), before.len() + 2, "one commit per advisory: {after:?}");
    assert_eq!(after[0], "advisory CAIRN-2026-0002");
    assert_eq!(after[1], "advisory CAIRN-2026-0001");
    assert!(root.join("index/advisories/CAIRN-2026-0001.json").is_file());

    // The same file again commits nothing.
    let out = cairn(&["admin", "advisory", "add", dir.path().join("a1.json").to_str().unwrap()], Some(&data));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(commits(&server).len(), after.len());

    // Malformed advisories are refused with a reason and commit nothing.
    let bad = [
        (
            json!({"id": "../../etc/x", "modified": "2026-05-01T00:00:00Z", "affected": [{"package": {"name": "foo"}, "versions": ["1.0.0"]}]}),
            "safe file name",
        ),
        (
            json!({"id": "BAD-1", "modified": "2026-05-01T00:00:00Z", "affected": [{"package": {"name": "foo"}, "ranges": [{"type": "SEMVER", "events": [{"introduced": "one"}]}]}]}),
            "SemVer",
        ),
        (
            json!({"id": "BAD-2", "affected": [{"package": {"name": "foo"}, "versions": ["1.0.0"]}]}),
            "modified",
        ),
    ];
    for (adv, why) in bad {
        let path = dir.path().join("bad.json");
        std::fs::write(&path, serde_json::to_vec(&adv).unwrap()).unwrap();
        let out = cairn(&["admin", "advisory", "add", path.to_str().unwrap()], Some(&data));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(why), "{why}: {stderr}");
    }
    std::fs::write(dir.path().join("bad.json"), b"{not json").unwrap();
    let out =
        cairn(&["admin", "advisory", "add", dir.path().join("bad.json").to_str().unwrap()], Some(&data));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(commits(&server).len(), after.len(), "nothing committed");
    assert!(!root.join("index/advisories/BAD-1.json").exists());

    // The documents, as `add` left them and as the job rewrites them.
    let check = || {
        let foo = read_json(root.join("api/v1/packages/foo/advisories.json"));
        validate("advisories-package", &foo);
        assert_eq!(foo["advisories"][0]["id"], "CAIRN-2026-0001");
        assert_eq!(foo["advisories"][0]["summary"], "foo mishandles bar", "OSV passes through");
        assert_eq!(
            foo["advisories"][0]["affected_versions"],
            json!(["1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0"])
        );
        let bar = read_json(root.join("api/v1/packages/bar_baz/advisories.json"));
        validate("advisories-package", &bar);
        assert_eq!(bar["name"], "Bar_Baz");
        assert_eq!(bar["advisories"][0]["affected_versions"], json!(["0.1.0"]));
        let index = read_json(root.join("api/v1/advisories/index.json"));
        validate("advisories-index", &index);
        assert_eq!(
            index,
            json!({
                "bar_baz": [{"id": "CAIRN-2026-0002", "modified": "2026-05-02T00:00:00Z", "fixed": []}],
                "foo": [{"id": "CAIRN-2026-0001", "modified": "2026-05-01T00:00:00Z", "fixed": ["1.2.0"]}],
            })
        );
        let all = read_json(root.join("api/v1/advisories/all.json"));
        validate("advisories-all", &all);
        assert_eq!(all["advisories"].as_array().unwrap().len(), 2);
        assert_eq!(
            all["advisories"][1]["affected_packages"],
            json!([{"name": "Bar_Baz", "affected_versions": ["0.1.0"]}])
        );
        assert!(!root.join("api/v1/packages/clean/advisories.json").exists());
    };
    check();
    let out = cairn(&["rebuild", "advisories"], Some(&data));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["advisories"]["advisories"], 2, "{report:#}");
    assert_eq!(report["advisories"]["written"], 0, "idempotent: {report:#}");
    check();

    // `cairn audit` against a plain static server that counts requests.
    // Its own configuration directory: the registry's key is pinned there.
    let (url, seen) = static_server(root.clone());
    let client_config = tempfile::tempdir().unwrap();
    let audit = |lock: &Path| {
        seen.lock().unwrap().clear();
        let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["audit", lock.to_str().unwrap(), "--registry", &url])
            .env("CAIRN_CONFIG_DIR", client_config.path())
            .env("CAIRN_LOG", "warn")
            .output()
            .unwrap();
        let mut paths = seen.lock().unwrap().clone();
        assert_eq!(paths.first().map(String::as_str), Some("/index/config.json"), "the key is checked first");
        paths.remove(0);
        (out.status.code(), String::from_utf8(out.stdout).unwrap(), paths)
    };
    let lock = dir.path().join("cairn.lock");
    std::fs::write(&lock, lockfile(&[("Bar_Baz", "0.1.0"), ("clean", "1.0.0"), ("foo", "1.1.0")])).unwrap();
    let (code, stdout, paths) = audit(&lock);
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(
        stdout,
        "CAIRN-2026-0002 Bar_Baz 0.1.0 (fixed: none)\nCAIRN-2026-0001 foo 1.1.0 (fixed: 1.2.0)\n"
    );
    let mut paths_sorted = paths.clone();
    paths_sorted.sort();
    assert_eq!(
        paths_sorted,
        [
            "/api/v1/advisories/index.json",
            "/api/v1/packages/bar_baz/advisories.json",
            "/api/v1/packages/foo/advisories.json"
        ],
        "only the files the lockfile needs"
    );
    assert_eq!(paths[0], "/api/v1/advisories/index.json");

    // A clean lockfile: exit 0, nothing printed, only the index fetched.
    std::fs::write(&lock, lockfile(&[("clean", "1.0.0"), ("foo", "1.2.0"), ("Bar_Baz", "0.2.0")])).unwrap();
    let (code, stdout, _) = audit(&lock);
    assert_eq!((code, stdout.as_str()), (Some(0), ""));
    std::fs::write(&lock, lockfile(&[("clean", "1.0.0")])).unwrap();
    let (code, _, paths) = audit(&lock);
    assert_eq!((code, paths), (Some(0), vec!["/api/v1/advisories/index.json".to_string()]));

    // A Cargo.lock: registry packages are checked, the workspace member is not.
    let cargo_lock = dir.path().join("Cargo.lock");
    std::fs::write(
        &cargo_lock,
        "version = 4\n\n[[package]]\nname = \"foo\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"foo\"\nversion = \"2.0.0\"\nsource = \"sparse+http://127.0.0.1/index/\"\nchecksum = \"00\"\n",
    )
    .unwrap();
    let (code, stdout, _) = audit(&cargo_lock);
    assert_eq!((code, stdout.as_str()), (Some(1), "CAIRN-2026-0001 foo 2.0.0 (fixed: 1.2.0)\n"));

    // Usage errors exit 2; an unreachable registry is an error (1).
    assert_eq!(cairn(&["audit", "--no-such-flag"], None).status.code(), Some(2));
    let out = cairn(&["audit", lock.to_str().unwrap(), "--registry", "http://127.0.0.1:9"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http://127.0.0.1:9/index/config.json") && err.contains("after 4 attempts"),
        "{err}"
    );
}

/// The admin listener adds advisories as the CLI does: a valid OSV file is
/// committed once (201, then 200 for the same bytes) and its documents are
/// there with the answer; a malformed one is a 400 with the JSON error body
/// and commits nothing.
#[test]
fn the_admin_listener_adds_advisories() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[], &["--admin-listen", "127.0.0.1:0"]);
    let token = server.token.clone().unwrap();
    let body = TarballBuilder::new("foo", "1.0.0").gzip();
    assert_eq!(server.put("foo", "1.0.0", &token, body, "application/gzip").status(), 201);
    let http = support::client();
    let add = |adv: &[u8]| {
        let r =
            http.post(format!("{}/admin/advisories", server.admin_url.as_ref().unwrap())).body(adv.to_vec());
        let r = r.send().unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    let before = commits(&server);
    let adv = json!({
        "id": "CAIRN-2026-0101",
        "modified": "2026-05-01T00:00:00Z",
        "affected": [{"package": {"name": "foo"}, "versions": ["1.0.0"]}]
    });
    let bytes = serde_json::to_vec(&adv).unwrap();
    assert_eq!(add(&bytes), (201, json!({"id": "CAIRN-2026-0101", "added": true})));
    let root = server.static_root();
    assert_eq!(std::fs::read(root.join("index/advisories/CAIRN-2026-0101.json")).unwrap(), bytes);
    let foo = read_json(root.join("api/v1/packages/foo/advisories.json"));
    assert_eq!(foo["advisories"][0]["affected_versions"], json!(["1.0.0"]));
    assert_eq!(commits(&server).len(), before.len() + 1);
    assert_eq!(add(&bytes), (200, json!({"id": "CAIRN-2026-0101", "added": false})));
    assert_eq!(commits(&server).len(), before.len() + 1, "the same bytes again commit nothing");

    for bad in [&b"{not json"[..], br#"{"id": "BAD-3", "affected": []}"#] {
        let (status, doc) = add(bad);
        assert_eq!(status, 400, "{doc}");
        assert_eq!(doc["error"], "invalid", "{doc}");
        assert!(doc["message"].as_str().unwrap().contains("not a valid OSV advisory"), "{doc}");
    }
    assert_eq!(commits(&server).len(), before.len() + 1, "nothing committed");
    assert!(!root.join("index/advisories/BAD-3.json").exists());
}

#[test]
fn post_audit_answers_from_the_advisory_files() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    for v in ["1.0.0", "1.2.0"] {
        let body = TarballBuilder::new("vulnlib", v).gzip();
        assert_eq!(server.put("vulnlib", v, &token, body, "application/gzip").status(), 201);
    }
    let post = |content_type: &str, body: String| {
        let resp = support::client()
            .post(format!("{}/api/v1/audit", server.url))
            .header("Content-Type", content_type)
            // No authentication: even a bad token is ignored.
            .header("Authorization", "Bearer cairn_not_a_token")
            .body(body)
            .send()
            .unwrap();
        assert!(resp.headers().contains_key("ratelimit-limit"));
        (resp.status().as_u16(), resp.json::<Value>().unwrap())
    };
    let clean_lock = lockfile(&[("vulnlib", "1.2.0")]);
    let (status, err) = post("text/plain", clean_lock.clone());
    assert_eq!((status, err["error"].as_str()), (503, Some("unavailable")), "no advisories job yet: {err}");
    assert!(cairn(&["rebuild", "advisories"], Some(dir.path())).status.success());
    assert_eq!(
        post("text/plain", clean_lock.clone()),
        (200, json!({"advisories": [], "scanned": 1, "clean": true}))
    );

    let osv = json!({
        "id": "CAIRN-2026-0042", "modified": "2026-11-01T00:00:00Z", "summary": "A flaw in vulnlib",
        "affected": [{ "package": { "name": "vulnlib" },
                       "ranges": [{ "type": "SEMVER", "events": [{ "introduced": "0" }, { "fixed": "1.2.0" }] }] }],
    });
    let file = dir.path().join("osv.json");
    std::fs::write(&file, osv.to_string()).unwrap();
    assert!(cairn(&["admin", "advisory", "add", file.to_str().unwrap()], Some(dir.path())).status.success());
    assert!(cairn(&["rebuild", "advisories"], Some(dir.path())).status.success());

    let finding = json!({"id": "CAIRN-2026-0042", "package": "vulnlib", "version": "1.0.0",
                         "summary": "A flaw in vulnlib", "fixed": ["1.2.0"]});
    let affected = json!({"advisories": [finding], "scanned": 2, "clean": false});
    assert_eq!(post("text/plain", clean_lock), (200, json!({"advisories": [], "scanned": 1, "clean": true})));
    let lock = lockfile(&[("vulnlib", "1.0.0"), ("other", "1.0.0")]);
    assert_eq!(post("application/toml", lock), (200, affected.clone()));
    let deps = json!({"dependencies": {"vulnlib": "1.0.0", "other": "3.0.0"}});
    assert_eq!(post("application/json", deps.to_string()), (200, affected.clone()));
    let packages = json!({"packages": [{"name": "Vulnlib", "version": "1.0.0"}, {"name": "vulnlib", "version": "1.2.0"}]});
    let (status, doc) = post("application/json; charset=utf-8", packages.to_string());
    assert_eq!(
        (status, &doc["advisories"][0]["package"], &doc["scanned"]),
        (200, &json!("Vulnlib"), &json!(2))
    );
    // A Cargo.lock: only registry packages count.
    let cargo_lock = "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"vulnlib\"\nversion = \"1.0.0\"\nsource = \"sparse+http://127.0.0.1/index/\"\nchecksum = \"00\"\n";
    let (status, doc) = post("text/plain", cargo_lock.to_string());
    assert_eq!(
        (status, &doc["advisories"][0]["id"], &doc["scanned"]),
        (200, &json!("CAIRN-2026-0042"), &json!(1))
    );

    // Bad bodies.
    for (content_type, body) in [
        ("application/json", "{\"dependencies\": "),
        ("application/json", "{\"lockfile\": {}}"),
        ("application/json", "{}"),
        ("application/json", "{\"packages\": [{\"name\": \"x\"}]}"),
        ("application/toml", "[[package]\nname = 1"),
        ("text/plain", "[[package]]\nname = \"x\"\n"),
    ] {
        let (status, err) = post(content_type, body.to_string());
        assert_eq!((status, err["error"].as_str()), (400, Some("invalid")), "{body}: {err}");
        assert!(err["message"].is_string());
    }
    let (status, err) = post("image/png", "x".into());
    assert_eq!((status, err["error"].as_str()), (415, Some("unsupported-media-type")));
}

/// `POST /api/v1/audit` spends the address's anonymous bucket (burst 30),
/// whatever token it carries.
#[test]
fn post_audit_is_rate_limited_as_an_anonymous_read() {
    let dir = tempfile::tempdir().unwrap();
    let token = Server::start_with_env(dir.path(), &[]).token.clone().unwrap();
    support::slow_anonymous_refill(dir.path());
    let server = Server::start_with_env(dir.path(), &[]);
    let statuses: Vec<u16> = (0..32)
        .map(|_| {
            support::client()
                .post(format!("{}/api/v1/audit", server.url))
                .bearer_auth(&token)
                .json(&json!({"dependencies": {"vulnlib": "1.0.0"}}))
                .send()
                .unwrap()
                .status()
                .as_u16()
        })
        .collect();
    // 503: no advisories job has run; the bucket is spent all the same (the
    // server's start spent one of its 30 on its own probe).
    let served = statuses.iter().take_while(|s| **s == 503).count();
    assert!((28..=30).contains(&served), "{statuses:?}");
    assert!(statuses[served..].iter().all(|s| *s == 429), "{statuses:?}");
}
