//! Derived static documents (SPEC section 6). Each is a pure function of the
//! sources of truth (index lines, owners, counts) that returns its key and
//! bytes ([`Doc`]); `cairn rebuild` and the publish path both make every
//! document through these functions and write it through the static root.
//! Writes are not fsync'd one by one: callers end a batch with
//! `StaticRoot::sync`, then write `health.json`, whose `indexCommit` tells
//! a restart which packages to re-derive if the batch was cut short.

pub mod deprecations;
pub mod feed;
pub mod owner;
pub mod readme;

use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use crate::index::{IndexDep, IndexLine, Meta};
use crate::layout::{url, Layout, StaticRoot};

/// A document and the key it is stored at.
pub struct Doc {
    pub key: String,
    pub bytes: Vec<u8>,
}

fn semver_of(line: &IndexLine) -> semver::Version {
    semver::Version::parse(&line.vers).unwrap_or(semver::Version::new(0, 0, 0))
}

/// The highest non-yanked, non-prerelease version, else the highest non-yanked.
pub fn latest_version(lines: &[IndexLine]) -> Option<&IndexLine> {
    let live = || lines.iter().filter(|l| !l.yanked);
    live()
        .filter(|l| semver_of(l).pre.is_empty())
        .max_by_key(|l| semver_of(l))
        .or_else(|| live().max_by_key(|l| semver_of(l)))
}

/// `/api/v1/packages/{name}.json`. Fields in key order, as every derived
/// document is written (a struct, not a `Value`: at 1.5 M versions the
/// allocations of a map per document dominate a rebuild).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageDoc<'a> {
    created_at: &'a Option<String>,
    deprecated: Option<&'a str>,
    description: &'a Option<String>,
    downloads: u64,
    id: String,
    keywords: &'a [String],
    kind: &'a Option<String>,
    latest_version: Option<&'a str>,
    license: &'a Option<String>,
    name: &'a str,
    owners: &'a [String],
    replacement: Option<&'a str>,
    repository: &'a Option<String>,
    updated_at: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream: Option<&'a str>,
    versions: Vec<VersionEntry<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionEntry<'a> {
    /// None for a version cached from an upstream: its line records none.
    blake3: Option<&'a str>,
    downloads: u64,
    published_at: &'a Option<String>,
    sha256: &'a str,
    size_bytes: Option<u64>,
    version: &'a str,
    yanked: bool,
}

pub fn package_doc<'a>(
    lines: &'a [IndexLine],
    owners: &'a [String],
    downloads: &Downloads,
    deprecation: Option<&'a Meta>,
    origin: &'a Origin,
) -> PackageDoc<'a> {
    let count = |v: &str| downloads.get(v).copied().unwrap_or(0);
    let latest = latest_version(lines);
    let meta = latest.or(lines.last()).expect("a package document needs at least one version");
    let mut versions: Vec<&IndexLine> = lines.iter().collect();
    versions.sort_by_key(|l| std::cmp::Reverse(semver_of(l)));
    let deprecation = deprecation.filter(|m| m.is_deprecated());
    PackageDoc {
        created_at: &lines[0].pubtime,
        deprecated: deprecation.and_then(|m| m.deprecated.as_deref()),
        description: &meta.description,
        downloads: lines.iter().map(|l| count(&l.vers)).sum(),
        id: meta.name.to_ascii_lowercase(),
        keywords: &meta.keywords,
        kind: &meta.kind,
        latest_version: latest.map(|l| l.vers.as_str()),
        license: &meta.license,
        name: &meta.name,
        owners,
        replacement: deprecation.and_then(|m| m.replacement.as_deref()),
        repository: &meta.repository,
        updated_at: lines.iter().filter_map(|l| l.pubtime.as_ref()).max(),
        upstream: origin.upstream.as_deref(),
        versions: versions
            .into_iter()
            .map(|l| VersionEntry {
                blake3: recorded(&l.blake3),
                downloads: count(&l.vers),
                published_at: &l.pubtime,
                sha256: &l.cksum,
                size_bytes: l.recorded_size(),
                version: &l.vers,
                yanked: l.yanked,
            })
            .collect(),
    }
}

/// A line's BLAKE3, when it records one (an upstream's line does not).
fn recorded(blake3: &str) -> Option<&str> {
    (!blake3.is_empty()).then_some(blake3)
}

/// `/api/v1/packages/{name}/{version}.json`, fields in key order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionDoc<'a> {
    blake3: Option<&'a str>,
    dependencies: &'a [IndexDep],
    description: &'a Option<String>,
    download: String,
    downloads: u64,
    features: &'a BTreeMap<String, Vec<String>>,
    format: &'a str,
    index_path: String,
    keywords: &'a [String],
    kind: &'a Option<String>,
    license: &'a Option<String>,
    #[serde(rename = "logIndex", skip_serializing_if = "Option::is_none")]
    log_index: Option<u64>,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    provenance: Option<&'a crate::index::line::Provenance>,
    published_at: &'a Option<String>,
    readme: Option<String>,
    repository: &'a Option<String>,
    sha256: &'a str,
    signature: String,
    size_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream: Option<&'a str>,
    version: &'a str,
    yanked: bool,
}

/// A cached version's document also names its upstream and the log entry
/// of its line (which carries none): what `cairn install` proves it by.
pub fn version_doc<'a>(
    l: &Layout,
    line: &'a IndexLine,
    has_readme: bool,
    downloads: u64,
    origin: &'a Origin,
) -> VersionDoc<'a> {
    let download = url(&l.blob(&line.cksum));
    VersionDoc {
        blake3: recorded(&line.blake3),
        dependencies: &line.deps,
        description: &line.description,
        signature: format!("{download}.minisig"),
        download,
        downloads,
        features: &line.features,
        // An upstream's line names no format: a crate is a gzip tarball.
        format: if line.fmt.is_empty() { "tar.gz" } else { &line.fmt },
        index_path: url(&l.package_index(&line.name)),
        keywords: &line.keywords,
        kind: &line.kind,
        license: &line.license,
        log_index: origin.log_index(line),
        name: &line.name,
        provenance: line.provenance.as_ref(),
        published_at: &line.pubtime,
        readme: has_readme.then(|| url(&l.readme(&line.name, &line.vers))),
        repository: &line.repository,
        sha256: &line.cksum,
        size_bytes: line.recorded_size(),
        upstream: origin.upstream.as_deref(),
        version: &line.vers,
        yanked: line.yanked,
    }
}

pub fn owners_doc(owners: &[String]) -> Value {
    json!({ "owners": owners.iter().map(|o| json!({ "login": o })).collect::<Vec<_>>() })
}

/// Serializes a document the way every derived file is written.
pub fn to_bytes(doc: &impl Serialize) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(doc).expect("json serializes");
    b.push(b'\n');
    b
}

/// Where a package's lines came from: published here (the default), or
/// cached from an upstream (SPEC section 16), whose versions' documents
/// name it and the log entry of their line (their lines carry none).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub upstream: Option<String>,
    pub log_indexes: std::collections::HashMap<String, u64>,
}

impl Origin {
    fn log_index(&self, line: &IndexLine) -> Option<u64> {
        self.upstream.as_ref().and_then(|_| self.log_indexes.get(&line.vers).copied())
    }
}

/// A package's download counts by version, as the stats job keeps them.
pub type Downloads = std::collections::HashMap<String, u64>;

/// The static copy of a package's index file: its bytes as the index
/// holds them (an upstream's lines are served byte for byte).
pub fn index_copy(l: &Layout, name: &str, file: &[u8]) -> Doc {
    Doc { key: l.package_index(name), bytes: file.to_vec() }
}

/// `api/v1/packages/{name}.json`.
pub fn package(
    l: &Layout,
    lines: &[IndexLine],
    owners: &[String],
    downloads: &Downloads,
    meta: Option<&Meta>,
    origin: &Origin,
) -> Doc {
    let doc = package_doc(lines, owners, downloads, meta, origin);
    Doc { key: l.package_doc(&lines[0].name), bytes: to_bytes(&doc) }
}

/// `api/v1/packages/{name}/owners.json`.
pub fn owners(l: &Layout, name: &str, owners: &[String]) -> Doc {
    Doc { key: l.owners(name), bytes: to_bytes(&owners_doc(owners)) }
}

/// `api/v1/packages/{name}/dependents.json`: the packages whose newest
/// version depends on it, most downloaded first.
pub fn dependents(l: &Layout, name: &str, d: &crate::db::dependents::Dependents) -> Doc {
    let listed: Vec<Value> =
        d.listed.iter().map(|(n, downloads)| json!({ "name": n, "downloads": downloads })).collect();
    let doc = json!({ "name": name, "total": d.total, "dependents": listed });
    Doc { key: l.dependents(name), bytes: to_bytes(&doc) }
}

/// `api/v1/packages/{name}/{version}.json`.
pub fn version(
    l: &Layout,
    line: &IndexLine,
    has_readme: bool,
    downloads: &Downloads,
    origin: &Origin,
) -> Doc {
    let count = downloads.get(&line.vers).copied().unwrap_or(0);
    Doc {
        key: l.version_doc(&line.name, &line.vers),
        bytes: to_bytes(&version_doc(l, line, has_readme, count, origin)),
    }
}

pub fn write_owners(root: &StaticRoot, name: &str, list: &[String]) -> std::io::Result<()> {
    let doc = owners(root.layout(), name, list);
    root.put_doc(&doc.key, &doc.bytes).map(drop)
}

/// `{version}/readme.html`: the version's README (`readme.md`) rendered
/// and sanitised, links resolved against its repository.
pub fn readme_html(l: &Layout, line: &IndexLine, markdown: &[u8]) -> Doc {
    let html = readme::render(&String::from_utf8_lossy(markdown), line.repository.as_deref());
    Doc { key: l.readme_html(&line.name, &line.vers), bytes: html.into_bytes() }
}

/// Removes a version's document and README (a hard delete, or a version
/// the index no longer has).
pub fn remove_version(root: &StaticRoot, name: &str, version: &str) -> std::io::Result<()> {
    let l = root.layout();
    root.remove(&l.version_doc(name, version))?;
    root.remove(&l.version_page(name, version))?;
    root.remove(&l.readme_html(name, version))?;
    root.remove(&l.readme(name, version))
}

/// One entry of `recent.json`.
pub struct Recent {
    pub name: String,
    pub version: String,
    pub published_at: String,
}

impl Recent {
    /// The entry of an index line that carries its publish time.
    pub fn of(line: &IndexLine) -> Option<Recent> {
        Some(Recent {
            name: line.name.clone(),
            version: line.vers.clone(),
            published_at: line.pubtime.clone()?,
        })
    }
}
