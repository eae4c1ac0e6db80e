//! Every static file a full rebuild emits validates against its JSON Schema
//! in index/schema/, and no JSON document is left without one.

use crate::support;

use cairn::archive::builder::TarballBuilder;
use serde_json::Value;
use support::Server;

#[test]
fn everything_a_rebuild_emits_matches_its_schema() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    let manifest = |name: &str, v: &str| {
        format!(
            "[package]\nname = \"{name}\"\nversion = \"{v}\"\ndescription = \"The {name} package\"\nlicense = \"MIT\"\nkeywords = [\"demo\"]\nrepository = \"https://example.org/{name}\"\n\n[dependencies]\nbase = \"^1.0\"\n"
        )
    };
    for (name, v) in [("base", "1.0.0"), ("base", "1.1.0-rc.1"), ("app", "0.1.0"), ("Tool_Kit", "2.0.0")] {
        let body =
            TarballBuilder::new(name, v).manifest(manifest(name, v)).file("README.md", b"# hi\n").zstd();
        assert_eq!(server.put(name, v, &token, body, "application/zstd").status(), 201);
    }
    let yank = support::client()
        .delete(format!("{}/api/v1/packages/base/1.1.0-rc.1", server.url))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(yank.status(), 200);
    let advisory = dir.path().join("advisory.json");
    let osv = serde_json::json!({
        "id": "CAIRN-2026-0001", "modified": "2026-11-01T00:00:00Z", "summary": "A flaw in base",
        "affected": [{ "package": { "name": "base" },
                       "ranges": [{ "type": "SEMVER", "events": [{ "introduced": "0" }, { "fixed": "1.1.0" }] }] }],
    });
    std::fs::write(&advisory, osv.to_string()).unwrap();
    let log = dir.path().join("access.log");
    let sha = server.get("/api/v1/packages/base/1.0.0.json").json::<Value>().unwrap()["sha256"].clone();
    let line = format!(
        "127.0.0.1 - - [01/Nov/2026:10:00:00 +0000] \"GET /blobs/sha256/{} HTTP/1.1\" 200 123 \"-\" \"cargo\"\n",
        sha.as_str().unwrap()
    );
    std::fs::write(&log, line).unwrap();
    let cairn = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(args)
            .arg("--data")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    cairn(&["admin", "advisory", "add", advisory.to_str().unwrap()]);
    cairn(&["rebuild", "all", "--access-log", log.to_str().unwrap()]);

    let root = server.static_root();
    let (failures, checked) = support::validate_static_tree(&root);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for schema in [
        "index-config",
        "index-line",
        "package",
        "version",
        "owners",
        "recent",
        "health",
        "listing",
        "user",
        "search-manifest",
        "search-shard",
    ] {
        assert!(checked.contains_key(schema), "nothing checked against {schema}: {checked:?}");
    }
}
