//! Retention (SPEC section 20): the prereleases `[[retention]]` rules let
//! go, hard-deleted through the writer like an administrator's delete
//! (the numbers stay burned, the log keeps its leaves, each delete has
//! its audit row). A version another live version of the same registry
//! pins exactly (`=`) is kept.

use anyhow::Result;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::config::{age_seconds, Retention};
use crate::effect::Effect;
use crate::index::IndexLine;
use crate::publish::{apply_now, Actor, Change, WriteRequest};
use crate::registry::Registry;

#[derive(Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    /// The organisation whose registry it is in; `None`: the public one.
    pub org: Option<String>,
    pub name: String,
    pub version: String,
    /// A kept version: the version that pins it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_by: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub dry_run: bool,
    pub deleted: Vec<Version>,
    /// Versions a rule would let go that a live version pins.
    pub kept: Vec<Version>,
}

/// Applies every rule of the public registry `public` (each to its
/// registry), or with `dry_run` only lists what would go.
pub fn run(public: Registry, dry_run: bool) -> Result<Report> {
    let rules = public.config.retention.clone();
    let public = Arc::new(public);
    let mut report = Report { dry_run, deleted: Vec::new(), kept: Vec::new() };
    for rule in &rules {
        // A private organisation's rule is its registry's; a public one's
        // covers the packages it owns in the public registry.
        let (reg, only) = match &rule.org {
            Some(slug) => {
                let conn = public.db()?;
                let org = crate::db::org::find(&conn, slug)?
                    .ok_or_else(|| anyhow::anyhow!("[[retention]] names no organisation `{slug}`"))?;
                match org.private {
                    true => (Arc::new(public.org_registry(slug)?), None),
                    false => (public.clone(), Some(crate::db::org::packages(&conn, org.id)?)),
                }
            }
            None => (public.clone(), None),
        };
        let (mut doomed, mut kept) = select(&reg, rule, chrono::Utc::now())?;
        if let Some(owned) = only {
            let owned: HashSet<String> = owned.iter().map(|n| crate::name::canonical(n)).collect();
            doomed.retain(|v| owned.contains(&crate::name::canonical(&v.name)));
            kept.retain(|v| owned.contains(&crate::name::canonical(&v.name)));
        }
        report.kept.extend(kept);
        for v in doomed {
            if !dry_run {
                let change = Change::HardDelete { name: v.name.clone(), version: v.version.clone() };
                apply_now(reg.clone(), WriteRequest { actor: Actor::Admin, addr: None, change })?;
            }
            report.deleted.push(v);
        }
    }
    Ok(report)
}

/// What `rule` lets go in `reg` as of `now`, and what it keeps for a pin.
fn select(
    reg: &Registry,
    rule: &Retention,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Vec<Version>, Vec<Version>)> {
    let cutoff = match &rule.prereleases_older_than {
        Some(age) => Some(now - chrono::Duration::seconds(age_seconds(age)? as i64)),
        None => None,
    };
    let (_, files) = reg.index.files()?;
    let mut packages: BTreeMap<String, Vec<IndexLine>> = BTreeMap::new();
    for (path, _) in files {
        if let Effect::Package(name) = Effect::of_path(&path) {
            if let Some(bytes) = reg.index.read_file(&path)? {
                packages.insert(name, IndexLine::parse_file(&bytes)?);
            }
        }
    }
    // Exact pins of this registry's packages, by (canonical name, version): who pins.
    let mut pins: BTreeMap<(String, String), String> = BTreeMap::new();
    for line in packages.values().flatten() {
        for dep in line.deps.iter().filter(|d| d.registry.is_none()) {
            if let Some(version) = exact(&dep.req) {
                let target = dep.package.as_deref().unwrap_or(&dep.name);
                let key = (crate::name::canonical(target), version);
                pins.entry(key).or_insert_with(|| format!("{} {}", line.name, line.vers));
            }
        }
    }
    let (mut doomed, mut kept) = (Vec::new(), Vec::new());
    for (name, lines) in &packages {
        let mut pre: Vec<(semver::Version, &IndexLine)> = lines
            .iter()
            .filter_map(|l| semver::Version::parse(&l.vers).ok().map(|v| (v, l)))
            .filter(|(v, _)| !v.pre.is_empty())
            .collect();
        // Newest first: the ones `keep_last_prereleases` keeps lead.
        pre.sort_by(|a, b| b.0.cmp(&a.0));
        let skip = rule.keep_last_prereleases.unwrap_or(0);
        for (_, line) in pre.into_iter().skip(skip) {
            let old_enough = match (&cutoff, &line.pubtime) {
                (Some(cutoff), Some(at)) => {
                    chrono::DateTime::parse_from_rfc3339(at).is_ok_and(|t| t < *cutoff)
                }
                // A line without a time (an upstream's) is never old enough.
                (Some(_), None) => false,
                (None, _) => true,
            };
            if !old_enough {
                continue;
            }
            let version = Version {
                org: rule.org.clone(),
                name: name.clone(),
                version: line.vers.clone(),
                pinned_by: pins.get(&(crate::name::canonical(name), line.vers.clone())).cloned(),
            };
            match version.pinned_by {
                Some(_) => kept.push(version),
                None => doomed.push(version),
            }
        }
    }
    Ok((doomed, kept))
}

/// The version an exact requirement (`=1.2.3-beta.1`) names.
fn exact(req: &str) -> Option<String> {
    let req = semver::VersionReq::parse(req).ok()?;
    match req.comparators.as_slice() {
        [c] if c.op == semver::Op::Exact => {
            let (minor, patch) = (c.minor?, c.patch?);
            let v = semver::Version {
                major: c.major,
                minor,
                patch,
                pre: c.pre.clone(),
                build: Default::default(),
            };
            Some(v.to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_single_exact_comparator_pins() {
        assert_eq!(super::exact("=1.2.3-beta.1").as_deref(), Some("1.2.3-beta.1"));
        assert_eq!(super::exact("= 1.0.0").as_deref(), Some("1.0.0"));
        assert_eq!(super::exact("^1.2.3-beta.1"), None);
        assert_eq!(super::exact("=1.2"), None);
        assert_eq!(super::exact(">=1.0.0, <2.0.0"), None);
    }
}
