//! Derived static documents (SPEC section 6). Each is a pure function of the
//! sources of truth (index lines, owners, counts), written atomically under
//! the static root; `cairn rebuild` and the publish path share them. Writes
//! are not fsync'd one by one: callers end a batch with
//! `fsutil::sync_filesystem`, then write `health.json`, whose `indexCommit`
//! tells a restart which packages to re-derive if the batch was cut short.

use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

use crate::fsutil::write_replace;
use crate::index::{package_path, IndexDep, IndexLine};
use crate::store::BlobStore;

/// Static path of a package's document directory (lowercased name).
pub fn package_dir(static_root: &Path, name: &str) -> std::path::PathBuf {
    static_root.join("api/v1/packages").join(name.to_ascii_lowercase())
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
    description: &'a Option<String>,
    downloads: u64,
    id: String,
    keywords: &'a [String],
    kind: &'a Option<String>,
    latest_version: Option<&'a str>,
    license: &'a Option<String>,
    name: &'a str,
    owners: &'a [String],
    repository: &'a Option<String>,
    updated_at: Option<&'a String>,
    versions: Vec<VersionEntry<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionEntry<'a> {
    blake3: &'a str,
    downloads: u64,
    published_at: &'a Option<String>,
    sha256: &'a str,
    size_bytes: u64,
    version: &'a str,
    yanked: bool,
}

pub fn package_doc<'a>(
    lines: &'a [IndexLine],
    owners: &'a [String],
    downloads: &Downloads,
) -> PackageDoc<'a> {
    let count = |v: &str| downloads.get(v).copied().unwrap_or(0);
    let latest = latest_version(lines);
    let meta = latest.or(lines.last()).expect("a package document needs at least one version");
    let mut versions: Vec<&IndexLine> = lines.iter().collect();
    versions.sort_by_key(|l| std::cmp::Reverse(semver_of(l)));
    PackageDoc {
        created_at: &lines[0].pubtime,
        description: &meta.description,
        downloads: lines.iter().map(|l| count(&l.vers)).sum(),
        id: meta.name.to_ascii_lowercase(),
        keywords: &meta.keywords,
        kind: &meta.kind,
        latest_version: latest.map(|l| l.vers.as_str()),
        license: &meta.license,
        name: &meta.name,
        owners,
        repository: &meta.repository,
        updated_at: lines.iter().filter_map(|l| l.pubtime.as_ref()).max(),
        versions: versions
            .into_iter()
            .map(|l| VersionEntry {
                blake3: &l.blake3,
                downloads: count(&l.vers),
                published_at: &l.pubtime,
                sha256: &l.cksum,
                size_bytes: l.size,
                version: &l.vers,
                yanked: l.yanked,
            })
            .collect(),
    }
}

/// `/api/v1/packages/{name}/{version}.json`, fields in key order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionDoc<'a> {
    blake3: &'a str,
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
    name: &'a str,
    published_at: &'a Option<String>,
    readme: Option<String>,
    repository: &'a Option<String>,
    sha256: &'a str,
    signature: String,
    size_bytes: u64,
    version: &'a str,
    yanked: bool,
}

pub fn version_doc(line: &IndexLine, has_readme: bool, downloads: u64) -> VersionDoc<'_> {
    let lname = line.name.to_ascii_lowercase();
    let download = BlobStore::url_path(&line.cksum);
    VersionDoc {
        blake3: &line.blake3,
        dependencies: &line.deps,
        description: &line.description,
        signature: format!("{download}.minisig"),
        download,
        downloads,
        features: &line.features,
        format: &line.fmt,
        index_path: format!("/index/{}", package_path(&line.name)),
        keywords: &line.keywords,
        kind: &line.kind,
        license: &line.license,
        name: &line.name,
        published_at: &line.pubtime,
        readme: has_readme.then(|| format!("/api/v1/packages/{lname}/{}/readme.md", line.vers)),
        repository: &line.repository,
        sha256: &line.cksum,
        size_bytes: line.size,
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

/// A package's download counts by version, as the stats job keeps them.
pub type Downloads = std::collections::HashMap<String, u64>;

/// Writes a package's index file copy, package document and owners list.
pub fn write_package(
    static_root: &Path,
    lines: &[IndexLine],
    owners: &[String],
    downloads: &Downloads,
) -> std::io::Result<()> {
    let name = &lines.first().expect("package has versions").name;
    write_replace(&static_root.join("index").join(package_path(name)), &IndexLine::file_bytes(lines))?;
    let doc = package_doc(lines, owners, downloads);
    write_replace(&package_dir(static_root, name).with_extension("json"), &to_bytes(&doc))?;
    write_owners(static_root, name, owners)
}

pub fn write_owners(static_root: &Path, name: &str, owners: &[String]) -> std::io::Result<()> {
    write_replace(&package_dir(static_root, name).join("owners.json"), &to_bytes(&owners_doc(owners)))
}

/// Writes one version's document and, when given, its README (a yank
/// rewrites the document and keeps the README already there).
pub fn write_version(
    static_root: &Path,
    line: &IndexLine,
    readme: Option<&[u8]>,
    downloads: &Downloads,
) -> std::io::Result<()> {
    let dir = package_dir(static_root, &line.name);
    let readme_path = dir.join(&line.vers).join("readme.md");
    if let Some(readme) = readme {
        write_replace(&readme_path, readme)?;
    }
    let doc = version_doc(line, readme_path.is_file(), downloads.get(&line.vers).copied().unwrap_or(0));
    write_replace(&dir.join(format!("{}.json", line.vers)), &to_bytes(&doc))
}

/// Removes a hard-deleted version's document and README.
pub fn remove_version(static_root: &Path, line: &IndexLine) -> std::io::Result<()> {
    let dir = package_dir(static_root, &line.name);
    remove_if_present(&dir.join(format!("{}.json", line.vers)))?;
    remove_if_present(&dir.join(&line.vers).join("readme.md"))?;
    let _ = std::fs::remove_dir(dir.join(&line.vers));
    Ok(())
}

/// Removes the documents of a package whose last version was hard-deleted
/// (its owners list stays: the name is still owned).
pub fn remove_package(static_root: &Path, name: &str) -> std::io::Result<()> {
    remove_if_present(&static_root.join("index").join(package_path(name)))?;
    remove_if_present(&package_dir(static_root, name).with_extension("json"))
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => crate::fsutil::sync_dir(path.parent().unwrap()).or(Ok(())),
    }
}
