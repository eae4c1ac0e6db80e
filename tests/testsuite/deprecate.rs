//! Deprecating a package (PATCH, `cairn deprecate`) and deleting a whole
//! package (administrators): one index commit each, the documents, pages,
//! mirrors and the log follow, and bad input writes nothing.

use crate::support;

use serde_json::{json, Value};
use std::path::Path;
use support::user::{publish, User};
use support::Server;

fn head(data: &Path) -> String {
    let out = support::git(&data.join("static/index.git"), &["rev-parse", "refs/heads/main"]);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn subject(data: &Path) -> String {
    let out = support::git(&data.join("static/index.git"), &["log", "-1", "--format=%s", "refs/heads/main"]);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn patch(server: &Server, name: &str, token: &str, body: Value) -> (u16, Value) {
    let resp = support::client()
        .patch(format!("{}/api/v1/packages/{name}", server.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.json().unwrap())
}

fn fsck(data: &Path) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["fsck", "--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fsck: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn owners_deprecate_a_package_and_undo_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let server = Server::start(data);
    let token = server.token.clone().unwrap();
    publish(&server, "libold", "1.0.0", &[]);
    let bob = server.add_user("bob");

    // Refusals write nothing.
    let before = head(data);
    for (who, body, status, code) in [
        (&bob, json!({"deprecated": "mine now"}), 403, "forbidden"),
        (&token, json!({}), 400, "invalid"),
        (&token, json!({"deprecated": "  "}), 400, "invalid"),
        (&token, json!({"deprecated": "x".repeat(1025)}), 400, "invalid"),
        (&token, json!({"deprecated": "old", "replacement": "not a name!"}), 400, "invalid"),
        (&token, json!({"deprecated": "old", "replacement": "LibOld"}), 400, "invalid"),
        (&token, json!({"deprecated": null, "replacement": "libnew"}), 400, "invalid"),
        (&token, json!({"deprecated": "old", "colour": "red"}), 400, "invalid"),
    ] {
        let (got, body_back) = patch(&server, "libold", who, body.clone());
        assert_eq!((got, body_back["error"].as_str().unwrap()), (status, code), "{body}: {body_back}");
        assert!(body_back["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(patch(&server, "nothing-here", &token, json!({"deprecated": "x"})).0, 404);
    assert_eq!(head(data), before, "a refused deprecation committed");

    let asked = json!({"deprecated": "use libnew, which is faster", "replacement": "libnew"});
    let (status, body) = patch(&server, "libold", &token, asked.clone());
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"name": "libold", "deprecated": "use libnew, which is faster", "replacement": "libnew"})
    );
    assert_eq!(subject(data), "deprecate libold");
    let meta: Value = server.get("/index/meta/li/bo/libold.json").json().unwrap();
    assert_eq!(meta, json!({"deprecated": "use libnew, which is faster", "replacement": "libnew"}));
    let doc: Value = server.get("/api/v1/packages/libold.json").json().unwrap();
    assert_eq!(
        (doc["deprecated"].as_str(), doc["replacement"].as_str()),
        (Some("use libnew, which is faster"), Some("libnew"))
    );
    support::validate("package", &doc);
    let page = server.get("/p/libold").text().unwrap();
    assert!(page.contains("Deprecated: ") && page.contains("use libnew, which is faster"), "{page}");
    assert!(page.contains(r#"href="/p/libnew""#), "{page}");
    // The same words again commit nothing.
    let commit = head(data);
    assert_eq!(patch(&server, "libold", &token, asked).0, 200);
    assert_eq!(head(data), commit);
    fsck(data);

    // A mirror keeps it.
    let user = User::new();
    let w = tempfile::tempdir().unwrap();
    let mirror = w.path().join("mirror");
    user.ok(w.path(), &["mirror", &server.url, mirror.to_str().unwrap()]);
    let copied: Value =
        serde_json::from_slice(&std::fs::read(mirror.join("static/api/v1/packages/libold.json")).unwrap())
            .unwrap();
    assert_eq!(copied["deprecated"], "use libnew, which is faster");
    assert!(mirror.join("static/index/meta/li/bo/libold.json").is_file());
    let list: Value =
        serde_json::from_slice(&std::fs::read(mirror.join("static/api/v1/deprecations.json")).unwrap())
            .unwrap();
    assert_eq!(list["libold"]["replacement"], "libnew");

    // Installs warn, and go on.
    let project = tempfile::tempdir().unwrap();
    let out = user.run(project.path(), &["install", "libold", "--registry", &server.url]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("warning: libold is deprecated: use libnew, which is faster; use libnew instead"),
        "{said}"
    );

    // `cairn deprecate --undo` takes it back.
    user.ok(w.path(), &["deprecate", "libold", "--undo", "--registry", &server.url, "--token", &token]);
    assert_eq!(subject(data), "undeprecate libold");
    assert_eq!(server.get("/index/meta/li/bo/libold.json").status(), 404);
    let doc: Value = server.get("/api/v1/packages/libold.json").json().unwrap();
    assert_eq!(doc["deprecated"], Value::Null);
    assert!(!server.get("/p/libold").text().unwrap().contains("Deprecated: "));
    // A resolution asks again (an install from the lock says what the cached meta files say).
    let out = user.run(project.path(), &["update", "--registry", &server.url]);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("deprecated"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And the CLI deprecates with a message.
    user.ok(w.path(), &["deprecate", "libold", "unmaintained", "--registry", &server.url, "--token", &token]);
    assert_eq!(
        server.get("/api/v1/packages/libold.json").json::<Value>().unwrap()["deprecated"],
        "unmaintained"
    );
    // The registry's list of deprecated packages follows every change, and
    // an install reads it rather than the meta files.
    let list: Value = server.get("/api/v1/deprecations.json").json().unwrap();
    assert_eq!(list, json!({"libold": {"deprecated": "unmaintained"}}));
    let out = user.run(project.path(), &["update", "--registry", &server.url]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: libold is deprecated: unmaintained"));
    // A registry without the list (made before it) is asked package by package.
    std::fs::remove_file(data.join("static/api/v1/deprecations.json")).unwrap();
    while server.get("/api/v1/deprecations.json").status() != 404 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = user.run(project.path(), &["update", "--registry", &server.url]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: libold is deprecated: unmaintained"));
    // The next change makes it whole again.
    user.ok(w.path(), &["deprecate", "libold", "--undo", "--registry", &server.url, "--token", &token]);
    user.ok(w.path(), &["deprecate", "libold", "unmaintained", "--registry", &server.url, "--token", &token]);
    let list: Value = server.get("/api/v1/deprecations.json").json().unwrap();
    assert_eq!(list, json!({"libold": {"deprecated": "unmaintained"}}));
    // The log took them all: publish, deprecate, undeprecate, deprecate,
    // undeprecate, deprecate.
    let checkpoint = server.get("/log/checkpoint").text().unwrap();
    assert_eq!(checkpoint.lines().nth(1), Some("6"), "{checkpoint}");
    fsck(data);
}

#[test]
fn an_administrator_deletes_a_whole_package() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let server = Server::start_with(data, &[("CAIRN_RATE_LIMIT", "off")], &["--admin-listen", "127.0.0.1:0"]);
    let token = server.token.clone().unwrap();
    let sums = [publish(&server, "gone", "1.0.0", &[]), publish(&server, "gone", "1.1.0", &[])];
    publish(&server, "kept", "1.0.0", &[("gone", "^1")]);
    assert_eq!(patch(&server, "gone", &token, json!({"deprecated": "going"})).0, 200);

    let user = User::new();
    let w = tempfile::tempdir().unwrap();
    let err = user.fails(w.path(), &["admin", "delete", "no-such", "--data", data.to_str().unwrap()]);
    assert!(err.contains("no package `no-such`"), "{err}");
    let err = user.run(w.path(), &["admin", "delete", "gone", "--data", data.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&err.stderr);
    assert!(err.status.success(), "{said}");
    assert!(said.contains("deleted gone (1.0.0, 1.1.0)"), "{said}");
    assert_eq!(subject(data), "delete gone");

    let tree =
        support::git(&data.join("static/index.git"), &["ls-tree", "-r", "--name-only", "refs/heads/main"]);
    let tree = String::from_utf8(tree.stdout).unwrap();
    assert!(!tree.contains("go/ne/gone") && !tree.contains("meta/"), "{tree}");
    for sum in &sums {
        assert_eq!(server.get(&format!("/blobs/sha256/{sum}")).status(), 404);
        assert_eq!(server.get(&format!("/blobs/sha256/{sum}.minisig")).status(), 404);
    }
    for gone in [
        "/index/go/ne/gone",
        "/index/meta/go/ne/gone.json",
        "/api/v1/packages/gone.json",
        "/api/v1/packages/gone/1.0.0.json",
        "/api/v1/packages/gone/1.1.0/readme.md",
        "/p/gone",
        "/p/gone/1.0.0",
    ] {
        assert_eq!(server.get(gone).status(), 404, "{gone}");
    }
    assert_eq!(server.get("/api/v1/deprecations.json").json::<Value>().unwrap(), json!({}));
    // The name keeps its owner and its version numbers: nobody takes it over.
    let bob = server.add_user("bob");
    let tarball = cairn::archive::builder::TarballBuilder::new("gone", "9.0.0").gzip();
    let resp = server.put("gone", "9.0.0", &bob, tarball, "application/gzip");
    assert_eq!(resp.status(), 403, "{}", resp.text().unwrap());
    let tarball = cairn::archive::builder::TarballBuilder::new("gone", "1.0.0").gzip();
    assert_eq!(server.put("gone", "1.0.0", &token, tarball, "application/gzip").status(), 409);
    assert_eq!(
        server.get("/api/v1/packages/gone/owners.json").json::<Value>().unwrap()["owners"][0]["login"],
        "admin"
    );
    // The search delta says it is gone; the dependent stays.
    let delta: Value = server.get("/api/v1/search/delta.json").json().unwrap();
    let entry = delta["packages"].as_array().unwrap().iter().find(|p| p["name"] == "gone").unwrap();
    assert_eq!(entry["doc"], Value::Null);
    assert_eq!(server.get("/api/v1/packages/kept.json").status(), 200);
    fsck(data);

    // Through the admin API too.
    let admin = server.admin_url.clone().unwrap();
    let c = support::client();
    let resp = c.delete(format!("{admin}/admin/packages/kept")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().unwrap(), json!({"deleted": true, "versions": ["1.0.0"]}));
    let resp = c.delete(format!("{admin}/admin/packages/kept")).send().unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.json::<Value>().unwrap()["error"], "not-found");
    fsck(data);
}

#[test]
fn search_ranks_a_deprecated_package_below_its_equals() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    for name in ["yaml-aa", "yaml-zz"] {
        let manifest =
            format!("[package]\nname = \"{name}\"\nversion = \"1.0.0\"\ndescription = \"YAML parser\"\n");
        let body = cairn::archive::builder::TarballBuilder::new(name, "1.0.0").manifest(manifest).gzip();
        assert_eq!(server.put(name, "1.0.0", &token, body, "application/gzip").status(), 201);
    }
    assert_eq!(patch(&server, "yaml-aa", &token, json!({"deprecated": "use yaml-zz"})).0, 200);
    let delta: Value = server.get("/api/v1/search/delta.json").json().unwrap();
    let entry = delta["packages"].as_array().unwrap().iter().find(|p| p["name"] == "yaml-aa").unwrap();
    assert_eq!(entry["doc"]["deprecated"], true, "{delta:#}");
    let user = User::new();
    let w = tempfile::tempdir().unwrap();
    let search = |q: &str| -> Vec<String> {
        let out = user.ok(w.path(), &["search", "--json", q, "--registry", &server.url]);
        let found: Vec<Value> = serde_json::from_str(&out).unwrap();
        found.iter().map(|r| r["name"].as_str().unwrap().to_string()).collect()
    };
    // From the delta, then from shards: the deprecated one last, unless asked for by name.
    for round in ["delta", "shards"] {
        // Without the deprecation, the name would order yaml-aa first.
        assert_eq!(search("yaml parser"), ["yaml-zz", "yaml-aa"], "{round}");
        assert_eq!(search("yaml-aa")[0], "yaml-aa", "{round}");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["rebuild", "search", "--data", dir.path().to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}
