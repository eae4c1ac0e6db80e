//! `cairn outdated`: for each locked package, the newest version the
//! manifest's ranges allow (what `cairn update` would pick: a resolution
//! with no pins) and the newest published (yanked versions skipped).

use anyhow::{anyhow, Result};
use semver::{Version, VersionReq};
use std::collections::HashMap;

use super::install::fetch_closure;
use super::lockfile::Lockfile;
use super::remote::Remote;
use super::resolve::{resolve, Universe};

pub struct Row {
    pub name: String,
    pub locked: String,
    /// The newest version within the ranges; `None` if none resolves.
    pub in_range: Option<String>,
    /// The newest version that is not yanked (a pre-release only when nothing else is).
    pub newest: Option<String>,
}

impl Row {
    /// A newer version exists that the ranges do not allow.
    pub fn out_of_range(&self) -> bool {
        self.newest.is_some() && self.newest != self.in_range
    }

    pub fn is_current(&self) -> bool {
        self.in_range.as_deref() == Some(&self.locked) && self.newest.as_deref() == Some(&self.locked)
    }
}

pub async fn outdated(remote: &Remote, roots: &[(String, VersionReq)], lock: &Lockfile) -> Result<Vec<Row>> {
    let mut names: Vec<String> = roots.iter().map(|(n, _)| n.clone()).collect();
    // Locked packages the ranges no longer reach still get a row.
    names.extend(lock.packages.iter().map(|p| p.name.clone()));
    let files = fetch_closure(remote, &names, &HashMap::new()).await?;
    let universe = Universe::new(&files);
    let newest_allowed = resolve(&universe, roots, &HashMap::new()).map_err(|e| anyhow!("{e}"))?;
    Ok(lock
        .packages
        .iter()
        .map(|p| {
            let key = p.name.to_lowercase();
            let lines = files.get(&key).cloned().flatten().unwrap_or_default();
            let usable: Vec<Version> =
                lines.iter().filter(|l| !l.yanked).filter_map(|l| Version::parse(&l.vers).ok()).collect();
            let newest = usable
                .iter()
                .filter(|v| v.pre.is_empty())
                .max()
                .or_else(|| usable.iter().max())
                .map(Version::to_string);
            Row {
                name: p.name.clone(),
                locked: p.version.clone(),
                in_range: newest_allowed.get(&key).map(|l| l.vers.clone()),
                newest,
            }
        })
        .collect())
}
