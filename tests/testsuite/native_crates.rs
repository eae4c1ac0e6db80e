//! A `.crate` through the native write API (SPEC section 3): `PUT
//! /api/v1/packages/{name}/{version}` takes a crate as well as a cairn.toml
//! package, and writes the index line cargo's own publish would, from the
//! normalized Cargo.toml inside it. Checked against real crates and the
//! lines crates.io serves for them (../shared/fixtures/crates-io-mini).

use crate::support;

use serde_json::{Map, Value};
use std::path::PathBuf;
use support::Server;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/crates-io-mini")
}

/// The fields of an index line that cargo resolves with, nulls and empty
/// optional fields left out (crates.io omits some that cairn writes as null).
fn resolved(line: &Value) -> Map<String, Value> {
    let keep = ["name", "vers", "deps", "cksum", "features", "features2", "links", "v", "rust_version"];
    let mut out = Map::new();
    for key in keep {
        match line.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(deps)) if key == "deps" => {
                let deps = deps.iter().map(|d| Value::Object(without_nulls(d))).collect();
                out.insert(key.into(), Value::Array(deps));
            }
            Some(v) => drop(out.insert(key.into(), v.clone())),
        }
    }
    // `v` 1 is the default.
    if out.get("v") == Some(&Value::from(1)) {
        out.remove("v");
    }
    out
}

fn without_nulls(v: &Value) -> Map<String, Value> {
    v.as_object().unwrap().iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[test]
fn every_fixture_crate_gets_the_line_crates_io_serves() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    let manifest = std::fs::read_to_string(fixture().join("MANIFEST.tsv")).unwrap();
    let mut checked = 0;
    for row in manifest.lines().skip(1) {
        let [name, version, sha256, _size] = row.split('\t').collect::<Vec<_>>()[..] else { panic!("{row}") };
        let bytes = std::fs::read(fixture().join(format!("crates/{name}/{version}/download"))).unwrap();
        let resp = server.put(name, version, &token, bytes, "application/gzip");
        assert_eq!(resp.status(), 201, "{name} {version}: {}", resp.text().unwrap());

        let path = cairn::index::package_path(name);
        let upstream = std::fs::read_to_string(fixture().join("index").join(&path)).unwrap();
        let want: Value = upstream
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|l| l["vers"] == version)
            .unwrap();
        let served = server.get(&format!("/index/{path}")).text().unwrap();
        let got: Value = serde_json::from_str(served.lines().last().unwrap()).unwrap();
        assert_eq!(got["cksum"], sha256);
        assert_eq!(resolved(&got), resolved(&want), "{name} {version}");
        checked += 1;
    }
    assert_eq!(checked, 40, "every crate of the fixture");
}

#[test]
fn a_crate_that_is_not_gzip_or_has_no_manifest_is_refused() {
    use cairn::archive::builder::TarballBuilder;
    use cairn::archive::ManifestKind;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    // A crate in zstd: no cargo could download it.
    let body = TarballBuilder::new("zcrate", "1.0.0").manifest_kind(ManifestKind::Cargo).zstd();
    let resp = server.put("zcrate", "1.0.0", &token, body, "application/zstd");
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().unwrap();
    assert!(err.to_string().contains("gzip tarball"), "{err}");
    // Neither manifest: the error names both.
    let body = TarballBuilder::new("bare", "1.0.0").no_manifest().gzip();
    let resp = server.put("bare", "1.0.0", &token, body, "application/gzip");
    assert_eq!(resp.status(), 400);
    let err = resp.text().unwrap();
    assert!(err.contains("bare-1.0.0/cairn.toml") && err.contains("bare-1.0.0/Cargo.toml"), "{err}");
    assert_eq!(server.get("/index/ba/re/bare").status(), 404, "nothing written");
    assert_eq!(server.get("/index/zc/ra/zcrate").status(), 404, "nothing written");
}
