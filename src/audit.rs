//! Auditing locked packages against a registry's advisories (SPEC
//! sections 6 and 7): the static files the advisories job writes
//! (`api/v1/advisories/index.json`, then only the per-package
//! `advisories.json` of locked packages the index names), read by key.
//! `cairn audit` reads them over HTTP, `POST /api/v1/audit` from the
//! server's static root: one matching for both.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::jobs::advisories;
use crate::layout::Layout;
use crate::name::canonical;

#[derive(Deserialize)]
struct LockFile {
    #[serde(default, rename = "package")]
    packages: Vec<LockEntry>,
}

#[derive(Deserialize)]
struct LockEntry {
    name: String,
    version: String,
    /// Cargo.lock only: where the package comes from (none for workspace members).
    source: Option<String>,
    checksum: Option<String>,
}

/// A locked package: (name, version).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub struct Locked {
    pub name: String,
    pub version: String,
}

/// Reads the packages of a cairn.lock or Cargo.lock. In a Cargo.lock, only
/// packages from a registry count (path and git packages are skipped).
pub fn read_lockfile(text: &str, cargo: bool) -> Result<Vec<Locked>> {
    Ok(registry_entries(text, cargo)?
        .into_iter()
        .map(|p| Locked { name: p.name, version: p.version })
        .collect())
}

/// The same with each package's checksum: (name, version, sha256), those
/// without one (none in a registry's lock) left out.
pub fn read_checksums(text: &str) -> Result<Vec<(String, String, String)>> {
    let entries = registry_entries(text, false)?.into_iter();
    Ok(entries.filter_map(|p| Some((p.name, p.version, p.checksum?))).collect())
}

fn registry_entries(text: &str, cargo: bool) -> Result<Vec<LockEntry>> {
    let lock: LockFile = toml::from_str(text)?;
    let cargo = cargo || lock.packages.iter().any(|p| p.source.is_some());
    Ok(lock
        .packages
        .into_iter()
        .filter(|p| {
            !cargo
                || p.source.as_deref().is_some_and(|s| s.starts_with("registry+") || s.starts_with("sparse+"))
        })
        .collect())
}

/// The advisory index: file stem → summaries.
pub type Index = BTreeMap<String, serde_json::Value>;

/// The per-package files a lockfile needs: stems of the index that name a
/// locked package (compared on canonical names), each once.
pub fn needed_files(index: &Index, locked: &[Locked]) -> Vec<String> {
    let by_key: BTreeMap<String, &String> = index.keys().map(|k| (canonical(k), k)).collect();
    let wanted: BTreeSet<String> =
        locked.iter().filter_map(|l| by_key.get(&canonical(&l.name)).map(|s| (*s).clone())).collect();
    wanted.into_iter().collect()
}

/// An advisory that affects a locked version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    pub id: String,
    pub package: String,
    pub version: String,
    pub summary: Option<String>,
    /// The versions that fix it, in SemVer order.
    pub fixed: Vec<String>,
}

/// Findings for the locked packages from one package file.
pub fn findings(doc: &serde_json::Value, locked: &[Locked]) -> Vec<Finding> {
    let mut out = Vec::new();
    let entries = doc.get("advisories").and_then(|a| a.as_array()).cloned().unwrap_or_default();
    for entry in entries {
        let listed: BTreeSet<String> = entry
            .get("affected_versions")
            .and_then(|v| v.as_array())
            .map(|v| v.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let Ok(adv) = advisories::from_value(entry) else { continue };
        if adv.withdrawn {
            continue;
        }
        for l in locked {
            if adv.entries_for(&l.name).next().is_none() {
                continue;
            }
            let hit = listed.contains(&l.version)
                || semver::Version::parse(&l.version).is_ok_and(|v| adv.affects(&l.name, &v));
            if hit {
                out.push(Finding {
                    id: adv.id.clone(),
                    package: l.name.clone(),
                    version: l.version.clone(),
                    summary: adv.raw.get("summary").and_then(|s| s.as_str()).map(str::to_string),
                    fixed: adv.fixed_for(&l.name),
                });
            }
        }
    }
    out
}

/// Audits `locked` against the advisory files read through `get` (`None`:
/// no such file): the findings by package, version and id, each once, or
/// `None` when the registry has no advisory index (its job has not run).
pub fn audit(
    l: &Layout,
    get: &mut dyn FnMut(&str) -> Result<Option<Vec<u8>>>,
    locked: &[Locked],
) -> Result<Option<Vec<Finding>>> {
    let Some(index) = get(&l.advisories_index())? else { return Ok(None) };
    let index: Index = serde_json::from_slice(&index).context("reading the advisory index")?;
    let mut all = Vec::new();
    for stem in needed_files(&index, locked) {
        let key = l.package_advisories(&stem);
        // The job writes the package files before the index that names them.
        let bytes = get(&key)?.with_context(|| format!("{key} is missing"))?;
        let doc: serde_json::Value =
            serde_json::from_slice(&bytes).with_context(|| format!("reading {key}"))?;
        let mine: Vec<Locked> =
            locked.iter().filter(|l| canonical(&l.name) == canonical(&stem)).cloned().collect();
        all.extend(findings(&doc, &mine));
    }
    all.sort_by(|a, b| {
        (canonical(&a.package), &a.version, &a.id).cmp(&(canonical(&b.package), &b.version, &b.id))
    });
    all.dedup();
    Ok(Some(all))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fetches_only_files_of_locked_packages_with_advisories() {
        let index: Index = serde_json::from_value(json!({
            "foo_bar": [{"id": "A-1", "modified": "2026-01-01T00:00:00Z", "fixed": []}],
            "baz": [{"id": "A-2", "modified": "2026-01-01T00:00:00Z", "fixed": ["1.0.0"]}],
            "unused": [{"id": "A-3", "modified": "2026-01-01T00:00:00Z", "fixed": []}],
        }))
        .unwrap();
        let locked = [
            Locked { name: "Foo-Bar".into(), version: "1.0.0".into() },
            Locked { name: "foo-bar".into(), version: "2.0.0".into() },
            Locked { name: "clean".into(), version: "1.0.0".into() },
            Locked { name: "baz".into(), version: "0.1.0".into() },
        ];
        assert_eq!(needed_files(&index, &locked), vec!["baz".to_string(), "foo_bar".to_string()]);
        assert!(needed_files(&index, &locked[2..3]).is_empty());
    }

    #[test]
    fn reads_cairn_and_cargo_lockfiles() {
        let cairn = "version = 1\n\n[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nchecksum = \"00\"\ndependencies = []\n";
        assert_eq!(
            read_lockfile(cairn, false).unwrap(),
            vec![Locked { name: "a".into(), version: "1.0.0".into() }]
        );
        let cargo = r#"version = 4

[[package]]
name = "app"
version = "0.1.0"
dependencies = ["serde"]

[[package]]
name = "serde"
version = "1.0.200"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "ab"

[[package]]
name = "gitdep"
version = "0.1.0"
source = "git+https://example.org/x#abc"
"#;
        assert_eq!(
            read_lockfile(cargo, true).unwrap(),
            vec![Locked { name: "serde".into(), version: "1.0.200".into() }]
        );
    }

    #[test]
    fn findings_use_ranges_and_listed_versions() {
        let doc = json!({"name": "foo", "advisories": [{
            "id": "A-1", "modified": "2026-01-01T00:00:00Z",
            "affected": [{"package": {"name": "foo"}, "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.2.0"}]}]}],
            "affected_versions": ["1.0.0"]
        }]});
        let locked = [
            Locked { name: "foo".into(), version: "1.1.0".into() },
            Locked { name: "foo".into(), version: "1.2.0".into() },
        ];
        let f = findings(&doc, &locked);
        let want = Finding {
            id: "A-1".into(),
            package: "foo".into(),
            version: "1.1.0".into(),
            summary: None,
            fixed: vec!["1.2.0".into()],
        };
        assert_eq!(f, vec![want]);
    }
}
