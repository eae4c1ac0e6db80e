//! Derived static documents (SPEC section 6). Each is a pure function of the
//! sources of truth (index lines, owners, counts), written atomically under
//! the static root; `cairn rebuild` and the publish path share them. Writes
//! are not fsync'd one by one: callers end a batch with
//! `fsutil::sync_filesystem`, then write `health.json`, whose `indexCommit`
//! tells a restart which packages to re-derive if the batch was cut short.

use serde_json::{json, Value};
use std::path::Path;

use crate::fsutil::write_replace;
use crate::index::{package_path, IndexLine};
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

/// `/api/v1/packages/{name}.json`.
pub fn package_doc(lines: &[IndexLine], owners: &[String], downloads: &dyn Fn(&str) -> u64) -> Value {
    let latest = latest_version(lines).or(lines.last());
    let meta = latest.expect("a package document needs at least one version");
    let mut versions: Vec<&IndexLine> = lines.iter().collect();
    versions.sort_by_key(|l| std::cmp::Reverse(semver_of(l)));
    let total: u64 = lines.iter().map(|l| downloads(&l.vers)).sum();
    json!({
        "id": meta.name.to_ascii_lowercase(),
        "name": meta.name,
        "kind": meta.kind,
        "description": meta.description,
        "license": meta.license,
        "keywords": meta.keywords,
        "repository": meta.repository,
        "createdAt": lines.first().and_then(|l| l.pubtime.clone()),
        "updatedAt": lines.iter().filter_map(|l| l.pubtime.clone()).max(),
        "latestVersion": latest_version(lines).map(|l| l.vers.clone()),
        "owners": owners,
        "downloads": total,
        "versions": versions.iter().map(|l| json!({
            "version": l.vers,
            "sha256": l.cksum,
            "blake3": l.blake3,
            "sizeBytes": l.size,
            "publishedAt": l.pubtime,
            "yanked": l.yanked,
            "downloads": downloads(&l.vers),
        })).collect::<Vec<_>>(),
    })
}

/// `/api/v1/packages/{name}/{version}.json`.
pub fn version_doc(line: &IndexLine, has_readme: bool, downloads: u64) -> Value {
    let lname = line.name.to_ascii_lowercase();
    json!({
        "name": line.name,
        "version": line.vers,
        "kind": line.kind,
        "description": line.description,
        "license": line.license,
        "keywords": line.keywords,
        "repository": line.repository,
        "sha256": line.cksum,
        "blake3": line.blake3,
        "sizeBytes": line.size,
        "format": line.fmt,
        "publishedAt": line.pubtime,
        "yanked": line.yanked,
        "dependencies": line.deps,
        "features": line.features,
        "download": BlobStore::url_path(&line.cksum),
        "signature": format!("{}.minisig", BlobStore::url_path(&line.cksum)),
        "readme": has_readme.then(|| format!("/api/v1/packages/{lname}/{}/readme.md", line.vers)),
        "indexPath": format!("/index/{}", package_path(&line.name)),
        "downloads": downloads,
    })
}

pub fn owners_doc(owners: &[String]) -> Value {
    json!({ "owners": owners.iter().map(|o| json!({ "login": o })).collect::<Vec<_>>() })
}

/// Serializes a document the way every derived file is written.
pub fn to_bytes(doc: &Value) -> Vec<u8> {
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
    let count = |v: &str| downloads.get(v).copied().unwrap_or(0);
    let doc = package_doc(lines, owners, &count);
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
