//! The search delta, `api/v1/search/delta.json` (format in
//! `index/search.md`): every package changed since the shards' build, as
//! search shows it now, or marked removed. Each write group that changes an
//! index file (publish, yank, unyank, hard delete) rewrites it before its
//! reply, so a query that merges it sees a 201 at once; the search job,
//! once its manifest is written, drops the entries its build contains.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::index::{IndexLine, IndexRepo};
use crate::layout::StaticRoot;
use crate::name::canonical;

/// The delta file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delta {
    pub version: u32,
    pub generated_at: String,
    /// One entry per package, by canonical name.
    pub packages: Vec<DeltaEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeltaEntry {
    pub name: String,
    /// The index commit of the change: the search job drops the entry once
    /// a build's commit contains it.
    pub commit: String,
    /// The package as search shows it; `None` once it has no version left.
    pub doc: Option<DeltaDoc>,
}

/// What the query needs of a package: the latest version's metadata, and
/// whether the package is deprecated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeltaDoc {
    pub version: String,
    pub description: String,
    /// As listed (`IndexLine::listed_kind`). This and `deprecated` default
    /// so a version 1 delta still reads until the next write rewrites it.
    #[serde(default)]
    pub kind: Option<String>,
    pub keywords: Vec<String>,
    pub downloads: u64,
    #[serde(default)]
    pub deprecated: bool,
    /// The upstream a cached package comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

/// 2 added `kind` and `deprecated`.
pub const FORMAT_VERSION: u32 = 2;

impl DeltaEntry {
    /// The entry for a package's lines after a change made by `commit`
    /// (the same version the search job would index: `derive::latest_version`).
    pub fn of(
        name: &str,
        lines: &[IndexLine],
        commit: &str,
        downloads: u64,
        deprecated: bool,
        upstream: Option<&str>,
    ) -> DeltaEntry {
        let latest = crate::derive::latest_version(lines).or(lines.last());
        DeltaEntry {
            name: latest.map_or(name, |l| l.name.as_str()).to_string(),
            commit: commit.to_string(),
            doc: latest.map(|l| DeltaDoc {
                version: l.vers.clone(),
                description: l.description.clone().unwrap_or_default(),
                kind: l.listed_kind(),
                keywords: l.keywords.clone(),
                downloads,
                deprecated,
                upstream: upstream.map(str::to_string),
            }),
        }
    }
}

impl Delta {
    /// Parses the file's bytes (`None`: no delta yet).
    pub fn parse(bytes: Option<&[u8]>) -> Result<Delta> {
        match bytes {
            Some(b) => Ok(serde_json::from_slice(b)?),
            None => Ok(Delta { version: FORMAT_VERSION, ..Delta::default() }),
        }
    }

    /// The entry of a package, by any spelling of its name.
    pub fn get(&self, name: &str) -> Option<&DeltaEntry> {
        let key = canonical(name);
        self.packages.iter().find(|e| canonical(&e.name) == key)
    }

    fn bytes(&self) -> Vec<u8> {
        let mut b = serde_json::to_vec(self).expect("json serializes");
        b.push(b'\n');
        b
    }
}

fn read(root: &StaticRoot) -> Result<Delta> {
    Delta::parse(root.read(&root.layout().search_delta())?.as_deref())
}

/// Records `changes` (later ones win) in the delta ([`StaticRoot::update`]:
/// on a bucket, the delta this writer wrote last is not read back). Durable
/// at the caller's next `StaticRoot::sync` at the latest, which the write
/// group does before its reply.
pub fn record(root: &StaticRoot, changes: Vec<DeltaEntry>) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    root.update(&root.layout().search_delta(), |old| {
        let old = Delta::parse(old).map_err(std::io::Error::other)?;
        let mut by_name: BTreeMap<String, DeltaEntry> =
            old.packages.into_iter().map(|e| (canonical(&e.name), e)).collect();
        for e in &changes {
            by_name.insert(canonical(&e.name), e.clone());
        }
        let delta = Delta {
            version: FORMAT_VERSION,
            generated_at: crate::db::now(),
            packages: by_name.into_values().collect(),
        };
        Ok(delta.bytes())
    })?;
    Ok(())
}

/// Drops the entries that a build at `built_at` contains; returns how many
/// are left. The caller holds the writer lock, so no group writes meanwhile.
pub fn fold(root: &StaticRoot, index: &IndexRepo, built_at: &str) -> Result<usize> {
    let mut delta = read(root)?;
    let before = delta.packages.len();
    // What came after the build (an entry of an unknown commit goes: it
    // cannot be newer than the history).
    let after = index.commits_after(built_at)?;
    delta.packages.retain(|e| after.contains(&e.commit));
    if delta.packages.len() != before || !root.exists(&root.layout().search_delta()) {
        delta.generated_at = crate::db::now();
        delta.version = FORMAT_VERSION;
        root.put_durable(&root.layout().search_delta(), &delta.bytes())?;
    }
    Ok(delta.packages.len())
}
