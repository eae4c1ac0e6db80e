//! cargo's publish metadata (the JSON half of `PUT /api/v1/crates/new`) and
//! its conversion to an index line, the way crates.io writes it:
//!
//! - `version_req` becomes `req`;
//! - a renamed dependency (`explicit_name_in_toml`) is written with `name` =
//!   the key in Cargo.toml and `package` = the crate's real name;
//! - features whose values use `dep:` or `?/` move to `features2`, and the
//!   line gets `v: 2` (older cargo versions skip such lines otherwise);
//! - `links`, `rust_version`, each dependency's `target`, `kind`, `optional`,
//!   `default_features`, `features` and `registry` are kept as sent;
//! - dependencies are sorted as crates.io sorts them ([`dep_key`]);
//! - `cksum` is the SHA-256 of the `.crate` and `fmt` is `tar.gz`.

use bytes::Bytes;
use serde::Deserialize;
use std::collections::BTreeMap;

use super::{IndexDep, IndexLine};

/// cargo's `NewCrate`: what `cargo publish` sends. Fields cairn does not keep
/// (authors, categories, badges, documentation, homepage, ...) are accepted
/// and ignored, so newer cargo versions can add fields freely.
#[derive(Debug, Clone, Deserialize)]
pub struct NewCrate {
    pub name: String,
    pub vers: String,
    #[serde(default)]
    pub deps: Vec<NewCrateDependency>,
    #[serde(default)]
    pub features: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub license: Option<String>,
    #[serde(default)]
    pub repository: Option<String>,
    /// The readme's text, when the crate has one.
    #[serde(default)]
    pub readme: Option<String>,
    #[serde(default)]
    pub links: Option<String>,
    #[serde(default)]
    pub rust_version: Option<String>,
}

/// cargo's `NewCrateDependency`. `name` is the crate's real name; a renamed
/// dependency carries its Cargo.toml key in `explicit_name_in_toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct NewCrateDependency {
    pub name: String,
    pub version_req: String,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub optional: bool,
    #[serde(default = "yes")]
    pub default_features: bool,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default = "normal")]
    pub kind: String,
    #[serde(default)]
    pub registry: Option<String>,
    #[serde(default)]
    pub explicit_name_in_toml: Option<String>,
}

fn yes() -> bool {
    true
}

fn normal() -> String {
    "normal".into()
}

impl NewCrate {
    /// Parses the metadata and checks what the index line relies on: the
    /// version is SemVer, each requirement parses, each kind is one cargo knows.
    pub fn parse(json: &[u8]) -> Result<NewCrate, String> {
        let meta: NewCrate =
            serde_json::from_slice(json).map_err(|e| format!("invalid publish metadata JSON: {e}"))?;
        meta.check()
    }

    /// [`NewCrate::parse`]'s checks, of metadata from elsewhere (a
    /// `.crate`'s own Cargo.toml: [`super::crate_manifest`]).
    pub fn check(self) -> Result<NewCrate, String> {
        let meta = self;
        semver::Version::parse(&meta.vers).map_err(|e| format!("invalid version `{}`: {e}", meta.vers))?;
        for d in &meta.deps {
            semver::VersionReq::parse(&d.version_req).map_err(|e| {
                format!("dependency `{}` has an invalid version requirement `{}`: {e}", d.name, d.version_req)
            })?;
            if !matches!(d.kind.as_str(), "normal" | "dev" | "build") {
                return Err(format!("dependency `{}` has an unknown kind `{}`", d.name, d.kind));
            }
            crate::name::validate(&d.name).map_err(|e| format!("dependency `{}`: {e}", d.name))?;
        }
        // The keywords reach the index line as sent (unless Cargo.toml has its own).
        crate::archive::check_keywords(&meta.keywords).map_err(|e| e.to_string())?;
        Ok(meta)
    }
}

/// The index line of a published crate; `pubtime` is set by the writer.
pub fn index_line(meta: &NewCrate, cksum: &str, blake3: &str, size: u64) -> IndexLine {
    let mut deps: Vec<IndexDep> = meta.deps.iter().map(index_dep).collect();
    deps.sort_by(|a, b| dep_key(a).cmp(&dep_key(b)));
    let (features, features2) = split_features(&meta.features);
    IndexLine {
        name: meta.name.clone(),
        vers: meta.vers.clone(),
        deps,
        cksum: cksum.to_string(),
        features,
        yanked: false,
        links: meta.links.clone(),
        v: if features2.is_some() { 2 } else { 1 },
        features2,
        rust_version: meta.rust_version.clone(),
        pubtime: None,
        blake3: blake3.to_string(),
        size,
        fmt: "tar.gz".into(),
        kind: None,
        description: meta.description.clone(),
        license: meta.license.clone(),
        keywords: meta.keywords.clone(),
        repository: meta.repository.clone(),
        provenance: None,
        npm: None,
        log_index: None,
    }
}

/// crates.io's order: by name, then kind (normal, build, dev), then the
/// other fields (a dependency without a target first). Checked against the
/// 661 lines with two or more dependencies in
/// ../shared/fixtures/crates-io-mini, all in this order (sorting by the
/// fields in their serialized order instead misplaced 93 of them: a
/// target's normal dependency comes before the same crate's dev one).
#[allow(clippy::type_complexity)]
fn dep_key(
    d: &IndexDep,
) -> (&str, u8, &str, &[String], bool, bool, &Option<String>, &Option<String>, &Option<String>) {
    let kind = match d.kind.as_str() {
        "normal" => 0,
        "build" => 1,
        _ => 2,
    };
    (&d.name, kind, &d.req, &d.features, d.optional, d.default_features, &d.target, &d.registry, &d.package)
}

/// The index line of a crate: [`index_line`] of cargo's metadata, then
/// [`prefer_manifest`] of its `.crate`'s Cargo.toml. The one way both
/// publish routes make it (cargo's, and the native route's for a `.crate`).
pub fn crate_line(
    meta: &NewCrate,
    m: &crate::archive::Manifest,
    cksum: &str,
    blake3: &str,
    size: u64,
) -> IndexLine {
    let mut line = index_line(meta, cksum, blake3, size);
    prefer_manifest(&mut line, m);
    line
}

/// Where the `.crate`'s own Cargo.toml states a field, its value wins over
/// the metadata's (crates.io reads these from the tarball too): the bytes are
/// what gets built, so the index must not claim other `links` or
/// `rust-version`. Dependencies and features stay the metadata's, which is
/// cargo's resolved view of the manifest.
pub fn prefer_manifest(line: &mut IndexLine, m: &crate::archive::Manifest) {
    let pick = |ours: &mut Option<String>, theirs: &Option<String>| {
        if theirs.is_some() {
            ours.clone_from(theirs);
        }
    };
    pick(&mut line.links, &m.links);
    pick(&mut line.rust_version, &m.rust_version);
    pick(&mut line.description, &m.description);
    pick(&mut line.license, &m.license);
    pick(&mut line.repository, &m.repository);
    if !m.keywords.is_empty() {
        line.keywords.clone_from(&m.keywords);
    }
}

fn index_dep(d: &NewCrateDependency) -> IndexDep {
    // As crates.io does: an explicit name always yields `package`.
    let (name, package) = match &d.explicit_name_in_toml {
        Some(key) => (key.clone(), Some(d.name.clone())),
        None => (d.name.clone(), None),
    };
    IndexDep {
        name,
        req: d.version_req.clone(),
        features: d.features.clone(),
        optional: d.optional,
        default_features: d.default_features,
        target: d.target.clone(),
        kind: d.kind.clone(),
        registry: d.registry.clone(),
        package,
    }
}

/// crates.io's split: a feature any of whose values uses the newer syntax
/// (`dep:name` or `name?/feature`) goes to `features2`, and so does one
/// that enables a feature gone there (an older cargo could not resolve it
/// either), to a fixpoint; the rest stays. Checked against the 1201 lines
/// of ../shared/fixtures/crates-io-mini (the direct rule alone misplaced
/// 17: hashbrown's `default` enables `default-hasher = ["dep:foldhash"]`).
#[allow(clippy::type_complexity)]
pub fn split_features(
    features: &BTreeMap<String, Vec<String>>,
) -> (BTreeMap<String, Vec<String>>, Option<BTreeMap<String, Vec<String>>>) {
    let mut new: std::collections::BTreeSet<&str> = features
        .iter()
        .filter(|(_, values)| values.iter().any(|v| v.starts_with("dep:") || v.contains("?/")))
        .map(|(k, _)| k.as_str())
        .collect();
    loop {
        let enabling: Vec<&str> = features
            .iter()
            .filter(|(k, values)| {
                !new.contains(k.as_str()) && values.iter().any(|v| new.contains(v.as_str()))
            })
            .map(|(k, _)| k.as_str())
            .collect();
        if enabling.is_empty() {
            break;
        }
        new.extend(enabling);
    }
    let (moved, kept): (BTreeMap<_, _>, BTreeMap<_, _>) =
        features.iter().map(|(k, v)| (k.clone(), v.clone())).partition(|(k, _)| new.contains(k.as_str()));
    (kept, (!moved.is_empty()).then_some(moved))
}

/// Splits cargo's publish frame: u32 LE JSON length, the JSON, u32 LE crate
/// length, the `.crate`, and nothing after it.
pub fn split_publish_frame(body: &Bytes) -> Result<(Bytes, Bytes), String> {
    fn read_len(body: &Bytes, at: usize, what: &str) -> Result<usize, String> {
        let b = body
            .get(at..at + 4)
            .ok_or_else(|| format!("malformed publish frame: the body ends before the {what} length"))?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    let json_len = read_len(body, 0, "metadata")?;
    let json_end = 4usize
        .checked_add(json_len)
        .filter(|end| *end <= body.len())
        .ok_or_else(|| format!("malformed publish frame: metadata length {json_len} exceeds the body"))?;
    let crate_len = read_len(body, json_end, "crate")?;
    let crate_start = json_end + 4;
    let rest = body.len() - crate_start;
    if crate_len != rest {
        return Err(format!(
            "malformed publish frame: the crate length says {crate_len} bytes but {rest} bytes follow"
        ));
    }
    if crate_len == 0 {
        return Err("malformed publish frame: the .crate is empty".into());
    }
    Ok((body.slice(4..json_end), body.slice(crate_start..)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_feature_enabling_a_features2_one_goes_there_too() {
        let f = |pairs: &[(&str, &[&str])]| -> BTreeMap<String, Vec<String>> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect()
        };
        let all = f(&[
            ("default", &["hasher", "std"]),
            ("hasher", &["dep:foldhash"]),
            ("std", &[]),
            ("top", &["default"]),
        ]);
        let (kept, moved) = split_features(&all);
        assert_eq!(kept, f(&[("std", &[])]));
        assert_eq!(moved.unwrap().keys().collect::<Vec<_>>(), ["default", "hasher", "top"]);
    }

    #[test]
    fn dependencies_sort_by_name_then_kind() {
        let dep = |kind: &str, target: Option<&str>, features: &[&str]| IndexDep {
            kind: kind.into(),
            target: target.map(String::from),
            features: features.iter().map(|s| s.to_string()).collect(),
            ..IndexDep::normal("getrandom", "^0.4")
        };
        let (normal, dev, dev_target) = (
            dep("normal", Some("cfg(x)"), &["js"]),
            dep("dev", None, &[]),
            dep("dev", Some("cfg(x)"), &["js"]),
        );
        let mut deps = vec![dev_target.clone(), dev.clone(), normal.clone()];
        deps.sort_by(|a, b| dep_key(a).cmp(&dep_key(b)));
        assert_eq!(deps, [normal, dev, dev_target], "fastrand 2.5.0's order on crates.io");
    }

    /// Metadata as cargo 1.7x-1.9x sends it, trimmed to what matters.
    fn sample() -> serde_json::Value {
        json!({
            "name": "tinymid", "vers": "0.2.0",
            "deps": [
                {"optional": false, "default_features": true, "name": "tinybase", "features": ["std"],
                 "version_req": "^0.1", "target": null, "kind": "normal", "explicit_name_in_toml": "base"},
                {"optional": true, "default_features": false, "name": "tinyextra", "features": [],
                 "version_req": "^0.1.0", "target": null, "kind": "normal"},
                {"optional": false, "default_features": true, "name": "libc", "features": [],
                 "version_req": "^0.2", "target": "cfg(unix)", "kind": "normal",
                 "registry": "https://github.com/rust-lang/crates.io-index"},
                {"optional": false, "default_features": true, "name": "cc", "features": [],
                 "version_req": "^1", "target": null, "kind": "build"},
                {"optional": false, "default_features": true, "name": "anyhow", "features": [],
                 "version_req": "=1.0.80", "target": null, "kind": "dev"}
            ],
            "features": {"default": ["std"], "std": ["base/std"], "extra": ["dep:tinyextra"],
                         "weak": ["tinyextra?/fast"]},
            "authors": ["A <a@example.org>"], "description": "middle", "documentation": null,
            "homepage": null, "readme": "# tinymid\n", "readme_file": "README.md",
            "keywords": ["tiny"], "categories": [], "license": "MIT", "license_file": null,
            "repository": "https://example.org/tinymid", "badges": {}, "links": "tinymid-native",
            "rust_version": "1.70"
        })
    }

    fn line_of(v: serde_json::Value) -> IndexLine {
        let meta = NewCrate::parse(&serde_json::to_vec(&v).unwrap()).unwrap();
        index_line(&meta, "ab".repeat(32).as_str(), "cd".repeat(32).as_str(), 1234)
    }

    #[test]
    fn maps_like_crates_io() {
        let line = line_of(sample());
        let doc = serde_json::to_value(&line).unwrap();
        // Sorted by name; renamed dependency under its key with `package`.
        let names: Vec<&str> = line.deps.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["anyhow", "base", "cc", "libc", "tinyextra"]);
        assert_eq!(
            doc["deps"][1],
            json!({"name": "base", "req": "^0.1", "features": ["std"], "optional": false,
                   "default_features": true, "target": null, "kind": "normal", "package": "tinybase"})
        );
        assert_eq!(
            doc["deps"][4],
            json!({"name": "tinyextra", "req": "^0.1.0", "features": [], "optional": true,
                   "default_features": false, "target": null, "kind": "normal"})
        );
        assert_eq!(doc["deps"][3]["target"], "cfg(unix)");
        assert_eq!(doc["deps"][3]["registry"], "https://github.com/rust-lang/crates.io-index");
        assert_eq!(doc["deps"][2]["kind"], "build");
        assert_eq!(doc["deps"][0]["kind"], "dev");
        assert_eq!(doc["deps"][0]["req"], "=1.0.80");
        // New-syntax features move to features2, with v = 2.
        assert_eq!(doc["features"], json!({"default": ["std"], "std": ["base/std"]}));
        assert_eq!(doc["features2"], json!({"extra": ["dep:tinyextra"], "weak": ["tinyextra?/fast"]}));
        assert_eq!(doc["v"], 2);
        assert_eq!(doc["links"], "tinymid-native");
        assert_eq!(doc["rust_version"], "1.70");
        assert_eq!(doc["cksum"], "ab".repeat(32));
        assert_eq!(doc["fmt"], "tar.gz");
        assert_eq!(doc["size"], 1234);
        assert_eq!(doc["yanked"], false);
        assert_eq!(doc["description"], "middle");
        assert_eq!(doc["license"], "MIT");
        assert_eq!(doc["keywords"], json!(["tiny"]));
        assert!(doc.get("kind").is_none(), "crates have no cairn kind");
        // Round-trips through the line parser.
        let back = IndexLine::parse_file(line.to_json().as_bytes()).unwrap();
        assert_eq!(back, vec![line]);
    }

    #[test]
    fn plain_crate_is_v1_without_features2() {
        let line = line_of(json!({"name": "tinybase", "vers": "0.1.0", "deps": [],
                                  "features": {"default": ["std"], "std": []}}));
        let doc = serde_json::to_value(&line).unwrap();
        assert_eq!(doc["v"], 1);
        assert!(doc.get("features2").is_none());
        assert!(doc.get("rust_version").is_none());
        assert_eq!(doc["links"], serde_json::Value::Null);
        assert_eq!(doc["deps"], json!([]));
    }

    #[test]
    fn explicit_name_always_names_the_package() {
        // crates.io writes `package` whenever cargo sent `explicit_name_in_toml`.
        let line = line_of(json!({"name": "a1", "vers": "1.0.0", "features": {}, "deps": [
            {"name": "b1", "version_req": "^1", "features": [], "optional": false, "default_features": true,
             "target": null, "kind": "normal", "explicit_name_in_toml": "b1"}]}));
        assert_eq!(line.deps[0].name, "b1");
        assert_eq!(line.deps[0].package.as_deref(), Some("b1"));
    }

    #[test]
    fn manifest_fields_win() {
        let mut line = line_of(sample());
        let m = crate::archive::Manifest {
            name: "tinymid".into(),
            version: "0.2.0".into(),
            description: Some("from Cargo.toml".into()),
            rust_version: Some("1.74".into()),
            ..Default::default()
        };
        prefer_manifest(&mut line, &m);
        assert_eq!(line.description.as_deref(), Some("from Cargo.toml"));
        assert_eq!(line.rust_version.as_deref(), Some("1.74"));
        // Absent from the manifest: the metadata's value stays.
        assert_eq!(line.links.as_deref(), Some("tinymid-native"));
        assert_eq!(line.keywords, ["tiny"]);
    }

    #[test]
    fn refuses_bad_metadata() {
        let bad = |v: serde_json::Value| NewCrate::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(bad(json!({"name": "x"})).contains("invalid publish metadata JSON"));
        assert!(bad(json!({"name": "x", "vers": "1.0"})).contains("invalid version"));
        let dep = |req: &str, kind: &str| {
            json!({"name": "x", "vers": "1.0.0", "deps": [{"name": "y", "version_req": req,
                   "features": [], "optional": false, "default_features": true, "target": null, "kind": kind}]})
        };
        assert!(bad(dep("not a req", "normal")).contains("invalid version requirement"));
        assert!(bad(dep("^1", "weird")).contains("unknown kind"));
        assert!(NewCrate::parse(b"not json").is_err());
    }

    fn frame(json: &[u8], krate: &[u8]) -> Bytes {
        let mut b = Vec::new();
        b.extend_from_slice(&(json.len() as u32).to_le_bytes());
        b.extend_from_slice(json);
        b.extend_from_slice(&(krate.len() as u32).to_le_bytes());
        b.extend_from_slice(krate);
        Bytes::from(b)
    }

    #[test]
    fn frames() {
        let (j, c) = split_publish_frame(&frame(b"{}", b"crate")).unwrap();
        assert_eq!((&j[..], &c[..]), (&b"{}"[..], &b"crate"[..]));
        let good = frame(b"{}", b"crate");
        for bad in [
            Bytes::new(),
            Bytes::from_static(&[1, 0, 0]),
            good.slice(..good.len() - 1),
            Bytes::from([&good[..], b"x"].concat()),
            frame(b"{}", b""),
            Bytes::from([&u32::MAX.to_le_bytes()[..], b"{}"].concat()),
            Bytes::from([&2u32.to_le_bytes()[..], b"{}", &[5, 0]].concat()),
        ] {
            assert!(split_publish_frame(&bad).unwrap_err().starts_with("malformed publish frame"), "{bad:?}");
        }
    }
}
