//! `cairn import --upstream NAME DIR`: an upstream's cache filled with no
//! network at all (SPEC section 16), for a registry that can never reach
//! it. DIR holds `.crate` files (any depth; cargo's `{name}-{version}.crate`
//! or the fixture's `crates/{name}/{version}/download`), and may hold the
//! upstream's index files in the sparse layout (`DIR/index/{path}` or
//! `DIR/{path}`): those are committed byte for byte; without one, each
//! crate's line is derived from its Cargo.toml as `cargo publish` would
//! have the upstream write it. The lines go through the writer (`cache
//! {name}`), the crates are signed naming the upstream and stored, as a
//! miss would. No cooldown applies: the operator chose these crates.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::db::upstream::{self as rows, Cached};
use crate::index::{package_path, IndexDep};
use crate::publish::{apply_now, Actor, Change, Outcome, WriteError, WriteRequest};
use crate::registry::Registry;

/// What an import did.
#[derive(Debug, Default, Serialize)]
pub struct Imported {
    pub packages: usize,
    pub versions: usize,
    pub blobs: usize,
    /// Names skipped because a local package has them.
    pub local: Vec<String>,
}

/// One crate file of DIR.
struct Crate {
    name: String,
    version: String,
    sha256: String,
    bytes: Vec<u8>,
}

pub fn import(reg: Arc<Registry>, upstream: &str, dir: &Path) -> Result<Imported> {
    if !reg.config.upstreams.iter().any(|u| u.name == upstream) {
        bail!("no [[upstreams]] named {upstream} in registry.toml");
    }
    let mut by_name: BTreeMap<String, Vec<Crate>> = BTreeMap::new();
    for path in crate_files(dir)? {
        let krate = read_crate(&path)?;
        by_name.entry(krate.name.to_ascii_lowercase()).or_default().push(krate);
    }
    let mut done = Imported::default();
    let now = chrono::Utc::now();
    for (name, crates) in by_name {
        let file = match index_file(dir, &name) {
            Some(file) => file,
            None => derived_file(&reg, &crates)?,
        };
        let lines = super::parse(&name, &file).with_context(|| format!("the index file of {name}"))?;
        let conn = reg.db()?;
        let versions: Vec<(&str, &str)> =
            lines.iter().map(|(_, l)| (l.vers.as_str(), l.cksum.as_str())).collect();
        rows::first_seen(&conn, &reg.space, &name, upstream, &versions, now.timestamp())?;
        let row = Cached {
            upstream: upstream.to_string(),
            etag: None,
            last_modified: None,
            checked_ms: now.timestamp_millis(),
        };
        let change = Change::Cache { name: name.clone(), file: file.clone(), row };
        match apply_now(reg.clone(), WriteRequest { actor: Actor::Admin, addr: None, change }) {
            Ok(Outcome::Cached { .. }) => {}
            Err(WriteError::Conflict(_)) => {
                done.local.push(name);
                continue;
            }
            Err(e) => return Err(anyhow::anyhow!("caching {name}: {e}")),
            Ok(other) => bail!("caching {name}: the writer answered {other:?}"),
        }
        done.packages += 1;
        done.versions += lines.len();
        let named: HashMap<&str, &str> =
            lines.iter().map(|(_, l)| (l.cksum.as_str(), l.vers.as_str())).collect();
        for krate in crates.iter().filter(|c| named.contains_key(c.sha256.as_str())) {
            super::keep(&reg, upstream, &krate.name, &krate.version, &krate.bytes)?;
            rows::fetched(
                &conn,
                &reg.space,
                &krate.sha256,
                krate.bytes.len() as u64,
                now.timestamp_millis(),
            )?;
            done.blobs += 1;
        }
    }
    reg.root.sync()?;
    Ok(done)
}

/// Every `.crate` (or fixture-style `download`) file under `dir`.
fn crate_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy();
        if entry.file_type().is_file() && (name.ends_with(".crate") || name == "download") {
            out.push(entry.into_path());
        }
    }
    Ok(out)
}

/// A crate's name and version from its top directory (`{name}-{version}/`,
/// split where the rest is a version), with its bytes and SHA-256.
fn read_crate(path: &Path) -> Result<Crate> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let first = tar.entries()?.next().with_context(|| format!("{}: an empty archive", path.display()))??;
    let top = first.path()?.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned());
    let top = top.with_context(|| format!("{}: no top directory", path.display()))?;
    let split = top
        .match_indices('-')
        .map(|(i, _)| i)
        .find(|&i| semver::Version::parse(&top[i + 1..]).is_ok())
        .with_context(|| format!("{}: {top} is not {{name}}-{{version}}", path.display()))?;
    let (name, version) = (top[..split].to_string(), top[split + 1..].to_string());
    let sha256 = crate::store::digests(&bytes).0;
    Ok(Crate { name, version, sha256, bytes })
}

/// The upstream's own index file for `name` in DIR, if it has one.
fn index_file(dir: &Path, name: &str) -> Option<Vec<u8>> {
    let path = package_path(name);
    [dir.join("index").join(&path), dir.join(&path)].iter().find_map(|p| std::fs::read(p).ok())
}

/// A line as `cargo publish` has a registry write it (crates.io's keys and
/// order; no cairn keys).
#[derive(Serialize)]
struct CargoLine<'a> {
    name: &'a str,
    vers: &'a str,
    deps: &'a [IndexDep],
    cksum: &'a str,
    features: &'a BTreeMap<String, Vec<String>>,
    yanked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    links: &'a Option<String>,
    #[serde(skip_serializing_if = "is_one")]
    v: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    features2: &'a Option<BTreeMap<String, Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rust_version: &'a Option<String>,
}

fn is_one(v: &u32) -> bool {
    *v == 1
}

/// The index file of crates with no upstream file: a line each, in
/// version order, derived from its Cargo.toml.
fn derived_file(reg: &Registry, crates: &[Crate]) -> Result<Vec<u8>> {
    let mut lines = Vec::new();
    for c in crates {
        let kind = crate::archive::ManifestKind::Cargo;
        let limits = &reg.config.limits;
        let inspected =
            crate::archive::inspect(&c.bytes, &c.name, &c.version, Some("application/gzip"), kind, limits)
                .map_err(|e| anyhow::anyhow!("{} {}: {e}", c.name, c.version))?;
        let meta = crate::index::crate_manifest::publish_metadata(&inspected.manifest_text)?
            .check()
            .map_err(|e| anyhow::anyhow!("{} {}: {e}", c.name, c.version))?;
        let blake3 = crate::store::digests(&c.bytes).1;
        let line = crate::index::cargo::crate_line(
            &meta,
            &inspected.manifest,
            &c.sha256,
            &blake3,
            c.bytes.len() as u64,
        );
        lines.push(line);
    }
    lines.sort_by_key(|l| semver::Version::parse(&l.vers).ok());
    let mut out = Vec::new();
    for l in &lines {
        let cargo = CargoLine {
            name: &l.name,
            vers: &l.vers,
            deps: &l.deps,
            cksum: &l.cksum,
            features: &l.features,
            yanked: false,
            links: &l.links,
            v: l.v,
            features2: &l.features2,
            rust_version: &l.rust_version,
        };
        out.extend(serde_json::to_vec(&cargo)?);
        out.push(b'\n');
    }
    Ok(out)
}
