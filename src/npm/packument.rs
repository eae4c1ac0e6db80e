//! A package's packument (`{door}/{name}`, SPEC section 18): npm's document
//! of a package, derived from its index lines, `meta/` file and owners by
//! the package derivation like every other file of the package. Yanked
//! versions leave it (their tarballs stay, so lockfiles keep installing);
//! `latest` is section 6's latest version; each version's `dist` is
//! signed with the registry's npm key.

use serde_json::{json, Map, Value};

use super::manifest::tables;
use super::Key;
use crate::derive::{latest_version, to_bytes, Doc};
use crate::index::{IndexLine, Meta};
use crate::layout::Layout;

/// What the packument is made from.
pub struct Of<'a> {
    pub layout: &'a Layout,
    /// The registry's public URL (tarball URLs are absolute).
    pub url: &'a str,
    pub key: &'a Key,
    pub lines: &'a [IndexLine],
    pub owners: &'a [String],
    pub meta: Option<&'a Meta>,
}

/// The packument, for a package whose versions are npm's (`None` otherwise).
pub fn packument(of: &Of) -> Option<Doc> {
    let first = of.lines.first().filter(|l| l.is_npm())?;
    let name = of.layout.npm_name(&first.name);
    let meta = of.meta.cloned().unwrap_or_default();
    let live: Vec<&IndexLine> = of.lines.iter().filter(|l| !l.yanked && l.is_npm()).collect();
    let mut versions = Map::new();
    let mut time = Map::new();
    for line in &live {
        versions.insert(line.vers.clone(), version(of, &name, line, &meta));
    }
    if let Some(created) = of.lines.iter().filter_map(|l| l.pubtime.clone()).min() {
        time.insert("created".into(), json!(created));
    }
    if let Some(modified) = of.lines.iter().filter_map(|l| l.pubtime.clone()).max() {
        time.insert("modified".into(), json!(modified));
    }
    for line in &live {
        if let Some(t) = &line.pubtime {
            time.insert(line.vers.clone(), json!(t));
        }
    }
    let mut tags = Map::new();
    let latest = latest_version(of.lines).filter(|l| l.is_npm());
    if let Some(latest) = latest {
        tags.insert("latest".into(), json!(latest.vers));
    }
    for (tag, version) in &meta.tags {
        if versions.contains_key(version) && tag != "latest" {
            tags.insert(tag.clone(), json!(version));
        }
    }
    let maintainers: Vec<Value> = of.owners.iter().map(|o| json!({ "name": o })).collect();
    let newest = latest.unwrap_or(first);
    let mut doc = json!({
        "_id": name,
        "name": name,
        "description": newest.description,
        "dist-tags": tags,
        "versions": versions,
        "time": time,
        "maintainers": maintainers,
        "license": newest.license,
    });
    // A revision npm sends back on its edits: this content's own digest.
    let rev = blake3::hash(&to_bytes(&doc)).to_hex();
    doc["_rev"] = json!(format!("{}-{}", of.lines.len(), &rev[..32]));
    Some(Doc { key: of.layout.npm_packument(&first.name), bytes: to_bytes(&doc) })
}

/// One version as npm reads it: its package.json fields, then `dist`.
fn version(of: &Of, name: &str, line: &IndexLine, meta: &Meta) -> Value {
    let mut v = Map::new();
    v.insert("name".into(), json!(name));
    v.insert("version".into(), json!(line.vers));
    let mut optional = |key: &str, value: &Option<String>| {
        if let Some(value) = value {
            v.insert(key.into(), json!(value));
        }
    };
    optional("description", &line.description);
    optional("license", &line.license);
    optional("repository", &line.repository);
    if !line.keywords.is_empty() {
        v.insert("keywords".into(), json!(line.keywords));
    }
    v.extend(tables(&line.deps));
    let npm = line.npm.as_deref();
    if let Some(npm) = npm {
        v.extend(npm.fields.iter().map(|(k, f)| (k.clone(), f.clone())));
        let scripts = npm.fields.get("scripts");
        if ["preinstall", "install", "postinstall"].iter().any(|s| scripts.and_then(|o| o.get(s)).is_some()) {
            v.insert("hasInstallScript".into(), json!(true));
        }
    }
    if let Some(message) = meta.deprecation_of(&line.vers) {
        v.insert("deprecated".into(), json!(message));
    }
    v.insert("_id".into(), json!(format!("{name}@{}", line.vers)));
    let tarball = format!("{}{}", of.url, of.layout.npm_tarball(&line.cksum));
    let dist = match npm {
        Some(npm) => json!({
            "tarball": tarball,
            "shasum": npm.shasum,
            "integrity": npm.integrity,
            "fileCount": npm.file_count,
            "unpackedSize": npm.unpacked_size,
            "signatures": [{ "keyid": of.key.keyid, "sig": of.key.sign(name, &line.vers, &npm.integrity) }],
        }),
        None => json!({ "tarball": tarball }),
    };
    v.insert("dist".into(), dist);
    Value::Object(v)
}

/// The key document of a registry's npm door.
pub fn keys(layout: &Layout, key: &Key) -> Doc {
    Doc { key: layout.npm_keys(), bytes: to_bytes(&key.document()) }
}
