//! Security advisories (SPEC sections 5, 6 and 9).
//!
//! Advisories are OSV JSON files committed into the index at
//! `advisories/{ID}.json` (`cairn admin advisory add FILE`). The job matches
//! each against every published version of the packages it names (SEMVER
//! ranges with `introduced`/`fixed`/`last_affected`/`limit` events, and
//! explicit `versions` lists) and writes:
//!
//! - `api/v1/packages/{lowercase name}/advisories.json`: `{"name", "advisories":
//!   [OSV entry + "affected_versions"]}`, the versions of this registry the
//!   entry affects, in SemVer order;
//! - under `api/v1/advisories/`: `all.json`: `{"advisories": [OSV entry + "affected_packages": [{"name", "affected_versions"}]]}`;
//! - `index.json`: `{name: [{"id", "modified", "fixed": […]}]}` for every
//!   package with an advisory, so `cairn audit` fetches only the package
//!   files a lockfile needs (the Go vulnerability database's layout).
//!
//! Package files first, `all.json`, then `index.json`, then the package
//! files of the previous `index.json` that no advisory names now are removed: a reader following the index never meets a missing
//! file. Withdrawn advisories stay in `all.json` only.

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use super::Snapshot;
use crate::name::canonical;
use crate::package_files::{self, Scope, Sources};
use crate::registry::Registry;

/// One event of a range, in OSV's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `introduced`; `None` is OSV's `"0"`, before every version.
    Introduced(Option<semver::Version>),
    Fixed(semver::Version),
    LastAffected(semver::Version),
    Limit(semver::Version),
}

impl Event {
    fn version(&self) -> Option<&semver::Version> {
        match self {
            Event::Introduced(v) => v.as_ref(),
            Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => Some(v),
        }
    }

    /// Order among events at one version: introduced before the others.
    fn rank(&self) -> u8 {
        match self {
            Event::Introduced(_) => 0,
            Event::LastAffected(_) => 1,
            Event::Fixed(_) => 2,
            Event::Limit(_) => 3,
        }
    }
}

/// One entry of `affected`: a package and what of it is affected.
#[derive(Debug, Clone)]
pub struct Affected {
    pub package: String,
    /// Each range's events, sorted by version.
    pub ranges: Vec<Vec<Event>>,
    pub versions: Vec<semver::Version>,
}

impl Affected {
    /// OSV's evaluation: in an explicit list, or inside any range.
    pub fn affects(&self, v: &semver::Version) -> bool {
        self.versions.iter().any(|x| x == v) || self.ranges.iter().any(|r| in_range(r, v))
    }

    /// Versions named by `fixed` events.
    pub fn fixed(&self) -> impl Iterator<Item = &semver::Version> {
        self.ranges.iter().flatten().filter_map(|e| match e {
            Event::Fixed(v) => Some(v),
            _ => None,
        })
    }
}

/// Walks the sorted events up to `v` (OSV's `includedInRange`).
fn in_range(events: &[Event], v: &semver::Version) -> bool {
    let mut affected = false;
    for e in events {
        match e {
            Event::Introduced(None) => affected = true,
            Event::Introduced(Some(x)) if x <= v => affected = true,
            Event::Fixed(x) if x <= v => affected = false,
            Event::LastAffected(x) if x < v => affected = false,
            Event::Limit(x) if x <= v => return false,
            _ => {}
        }
    }
    affected
}

/// A validated advisory.
#[derive(Debug, Clone)]
pub struct Advisory {
    pub id: String,
    pub modified: String,
    pub withdrawn: bool,
    pub affected: Vec<Affected>,
    /// The file as parsed, for republishing.
    pub raw: Value,
}

impl Advisory {
    /// The entries naming `package` (compared on canonical names).
    pub fn entries_for<'a>(&'a self, package: &'a str) -> impl Iterator<Item = &'a Affected> + 'a {
        let key = canonical(package);
        self.affected.iter().filter(move |a| canonical(&a.package) == key)
    }

    /// Whether this advisory affects `version` of `package`.
    pub fn affects(&self, package: &str, version: &semver::Version) -> bool {
        !self.withdrawn && self.entries_for(package).any(|a| a.affects(version))
    }

    /// Fixed versions for `package`, in SemVer order.
    pub fn fixed_for(&self, package: &str) -> Vec<String> {
        let set: BTreeSet<&semver::Version> = self.entries_for(package).flat_map(|a| a.fixed()).collect();
        set.into_iter().map(|v| v.to_string()).collect()
    }
}

/// Whether an advisory id can be a file name: `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`.
pub fn safe_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Parses and validates an OSV file.
pub fn parse(bytes: &[u8]) -> Result<Advisory> {
    let raw: Value = serde_json::from_slice(bytes).context("not valid JSON")?;
    from_value(raw)
}

/// Validates an OSV entry (also the entries of the published files, which
/// carry cairn's extra keys).
pub fn from_value(raw: Value) -> Result<Advisory> {
    let obj = raw.as_object().context("an OSV advisory is a JSON object")?;
    let id = obj.get("id").and_then(Value::as_str).context("`id` is missing or not a string")?;
    if !safe_id(id) {
        bail!(
            "`id` {id:?} is not a safe file name: use letters, digits, `.`, `_` and `-`, \
             start with a letter or digit, at most 128 characters"
        );
    }
    let modified =
        obj.get("modified").and_then(Value::as_str).context("`modified` is missing or not a string")?;
    chrono::DateTime::parse_from_rfc3339(modified)
        .with_context(|| format!("`modified` {modified:?} is not an RFC 3339 timestamp"))?;
    let withdrawn = match obj.get("withdrawn") {
        None | Some(Value::Null) => false,
        Some(Value::String(w)) => {
            chrono::DateTime::parse_from_rfc3339(w)
                .with_context(|| format!("`withdrawn` {w:?} is not an RFC 3339 timestamp"))?;
            true
        }
        Some(_) => bail!("`withdrawn` must be an RFC 3339 timestamp"),
    };
    let list =
        obj.get("affected").and_then(Value::as_array).context("`affected` is missing or not an array")?;
    if list.is_empty() {
        bail!("`affected` is empty: name at least one package");
    }
    let mut affected = Vec::new();
    for (i, a) in list.iter().enumerate() {
        let at = format!("affected[{i}]");
        let package = a
            .pointer("/package/name")
            .and_then(Value::as_str)
            .with_context(|| format!("{at}.package.name is missing or not a string"))?;
        crate::name::validate(package).map_err(|e| anyhow::anyhow!("{at}.package.name: {e}"))?;
        let mut ranges = Vec::new();
        if let Some(rs) = a.get("ranges") {
            let rs = rs.as_array().with_context(|| format!("{at}.ranges must be an array"))?;
            for (j, r) in rs.iter().enumerate() {
                ranges.push(parse_range(r, &format!("{at}.ranges[{j}]"))?);
            }
        }
        let mut versions = Vec::new();
        if let Some(vs) = a.get("versions") {
            let vs = vs.as_array().with_context(|| format!("{at}.versions must be an array"))?;
            for (j, v) in vs.iter().enumerate() {
                let s = v.as_str().with_context(|| format!("{at}.versions[{j}] is not a string"))?;
                versions.push(
                    semver::Version::parse(s)
                        .with_context(|| format!("{at}.versions[{j}] {s:?} is not a SemVer version"))?,
                );
            }
        }
        if ranges.is_empty() && versions.is_empty() {
            bail!("{at} lists neither `ranges` nor `versions`: nothing would be affected");
        }
        affected.push(Affected { package: package.to_string(), ranges, versions });
    }
    Ok(Advisory { id: id.to_string(), modified: modified.to_string(), withdrawn, affected, raw })
}

fn parse_range(r: &Value, at: &str) -> Result<Vec<Event>> {
    let kind = r.get("type").and_then(Value::as_str).with_context(|| format!("{at}.type is missing"))?;
    if kind != "SEMVER" && kind != "ECOSYSTEM" {
        bail!("{at}.type {kind:?} is not supported: use SEMVER (ECOSYSTEM is read as SemVer)");
    }
    let events =
        r.get("events").and_then(Value::as_array).with_context(|| format!("{at}.events is missing"))?;
    let mut out = Vec::new();
    for (k, e) in events.iter().enumerate() {
        let at = format!("{at}.events[{k}]");
        let obj = e.as_object().with_context(|| format!("{at} is not an object"))?;
        if obj.len() != 1 {
            bail!("{at} must have exactly one of `introduced`, `fixed`, `last_affected`, `limit`");
        }
        let (key, value) = obj.iter().next().expect("one key");
        let s = value.as_str().with_context(|| format!("{at}.{key} is not a string"))?;
        let version =
            || semver::Version::parse(s).with_context(|| format!("{at}.{key} {s:?} is not a SemVer version"));
        out.push(match key.as_str() {
            "introduced" if s == "0" => Event::Introduced(None),
            "introduced" => Event::Introduced(Some(version()?)),
            "fixed" => Event::Fixed(version()?),
            "last_affected" => Event::LastAffected(version()?),
            "limit" if s == "*" => continue,
            "limit" => Event::Limit(version()?),
            other => bail!("{at}: unknown event `{other}`"),
        });
    }
    if !out.iter().any(|e| matches!(e, Event::Introduced(_))) {
        bail!("{at} has no `introduced` event");
    }
    // "0" first, then by version; at one version, introduced first.
    out.sort_by(|a, b| a.version().cmp(&b.version()).then(a.rank().cmp(&b.rank())));
    Ok(out)
}

/// Validates an OSV file and commits it into the index through the single
/// writer (commit `advisory {ID}`), then rewrites the advisory documents.
/// Returns the id.
pub fn add(reg: Arc<Registry>, file: &Path) -> Result<String> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let id = parse(&bytes).with_context(|| format!("{} is not a valid OSV advisory", file.display()))?.id;
    if is_new(&reg, &id, &bytes)? {
        let change = crate::publish::Change::Advisory { id: id.clone(), json: bytes };
        let req = crate::publish::WriteRequest { actor: crate::publish::Actor::Admin, addr: None, change };
        crate::publish::apply_now(reg.clone(), req).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    rewrite_documents(&reg)?;
    Ok(id)
}

/// Whether the index does not hold exactly these bytes as advisory `id`
/// yet (adding the same file again commits nothing).
pub fn is_new(reg: &Registry, id: &str, bytes: &[u8]) -> Result<bool> {
    Ok(reg.index.read_file(&format!("advisories/{id}.json"))?.as_deref() != Some(bytes))
}

/// Rewrites every advisory document from the index, after an advisory
/// was added (the affected versions are computed over every package).
pub fn rewrite_documents(reg: &Registry) -> Result<()> {
    let snap = Snapshot::load(reg)?;
    let _lock = reg.lock_writer()?;
    run(reg, &snap)?;
    Ok(())
}

/// Computes every advisory's affected versions and writes the documents.
pub fn run(reg: &Registry, snap: &Snapshot) -> Result<Value> {
    let mut invalid = Vec::new();
    let mut advisories = Vec::new();
    for (path, bytes) in &snap.advisories {
        match parse(bytes) {
            Ok(a)
                if path.strip_prefix("advisories/").and_then(|p| p.strip_suffix(".json")) == Some(&a.id) =>
            {
                advisories.push(a)
            }
            Ok(a) => invalid.push(
                json!({"path": path, "error": format!("its id {:?} does not match the file name", a.id)}),
            ),
            Err(e) => invalid.push(json!({"path": path, "error": format!("{e:#}")})),
        }
    }
    advisories.sort_by(|a, b| a.id.cmp(&b.id));

    // Registry packages by canonical name: (name as published, versions).
    type Published<'a> = (&'a str, Vec<(semver::Version, &'a str)>);
    let registry: BTreeMap<String, Published> = snap
        .packages
        .iter()
        .map(|p| {
            let versions = p
                .versions
                .iter()
                .filter_map(|v| Some((semver::Version::parse(v).ok()?, v.as_str())))
                .collect();
            (canonical(&p.name), (p.name.as_str(), versions))
        })
        .collect();
    // Affected versions of one advisory for one canonical package, SemVer order.
    let affected_versions = |adv: &Advisory, key: &str| -> Vec<String> {
        let Some((name, versions)) = registry.get(key) else { return Vec::new() };
        let mut hit: Vec<&(semver::Version, &str)> =
            versions.iter().filter(|(v, _)| adv.affects(name, v)).collect();
        hit.sort_by(|a, b| a.0.cmp(&b.0));
        hit.into_iter().map(|(_, s)| s.to_string()).collect()
    };
    // The packages each advisory names, by canonical name → file stem (the
    // registry's lowercase name, else the advisory's first spelling).
    let stem = |package: &str| -> String {
        match registry.get(&canonical(package)) {
            Some((name, _)) => name.to_ascii_lowercase(),
            None => package.to_ascii_lowercase(),
        }
    };
    let mut per_package: BTreeMap<String, (String, Vec<Value>, Vec<Value>)> = BTreeMap::new();
    let mut all = Vec::new();
    let mut total_affected = 0usize;
    for adv in &advisories {
        let keys: BTreeSet<String> = adv.affected.iter().map(|a| canonical(&a.package)).collect();
        let mut packages = Vec::new();
        for key in &keys {
            let spelled =
                adv.affected.iter().find(|a| canonical(&a.package) == *key).expect("named").package.clone();
            let display = registry.get(key).map_or(spelled.clone(), |(n, _)| n.to_string());
            let versions = if adv.withdrawn { Vec::new() } else { affected_versions(adv, key) };
            total_affected += versions.len();
            packages.push(json!({"name": display, "affected_versions": versions}));
            // A name that could not be a package here (it would not make a
            // path either) is listed in all.json only.
            if adv.withdrawn || crate::name::validate(&spelled).is_err() {
                continue;
            }
            let mut entry = adv.raw.clone();
            entry.as_object_mut().expect("object").insert("affected_versions".into(), json!(versions));
            let summary = json!({"id": adv.id, "modified": adv.modified, "fixed": adv.fixed_for(&spelled)});
            let slot = per_package
                .entry(stem(&spelled))
                .or_insert_with(|| (display.clone(), Vec::new(), Vec::new()));
            slot.1.push(entry);
            slot.2.push(summary);
        }
        let mut entry = adv.raw.clone();
        entry.as_object_mut().expect("object").insert("affected_packages".into(), json!(packages));
        all.push(entry);
    }

    let (root, l) = (&reg.root, reg.root.layout());
    // The packages the last run wrote a file for, to remove those no advisory names now.
    let before: Vec<String> = root
        .read(&l.advisories_index())?
        .and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok())
        .map(|m| m.into_iter().map(|(k, _)| k).collect())
        .unwrap_or_default();
    let mut written = 0usize;
    let mut put = |key: String, doc: &Value| -> Result<bool> {
        // Compared even on a bucket, as the stats job's files.
        let old = root.read(&key)?;
        let wrote = root
            .put_if_changed(&key, old.as_deref(), &crate::derive::to_bytes(doc))
            .with_context(|| format!("writing {key}"))?;
        written += usize::from(wrote);
        Ok(wrote)
    };
    let mut index = Map::new();
    // Packages whose pages show other advisories now.
    let mut changed = Vec::new();
    for (stem, (name, entries, summaries)) in &per_package {
        if put(l.package_advisories(stem), &json!({"name": name, "advisories": entries}))? {
            changed.push(stem.clone());
        }
        index.insert(stem.clone(), json!(summaries));
    }
    put(l.advisories_all(), &json!({"advisories": all}))?;
    put(l.advisories_index(), &Value::Object(index))?;
    let mut removed = 0usize;
    for stem in before.iter().filter(|s| !per_package.contains_key(*s)) {
        root.remove(&l.package_advisories(stem))?;
        changed.push(stem.clone());
        removed += 1;
    }
    for stem in &changed {
        rewrite_pages(reg, stem)?;
    }
    crate::site::write_advisories(root)?;
    root.sync()?;
    Ok(json!({
        "advisories": advisories.len(),
        "invalid": invalid,
        "packages": per_package.len(),
        "affectedVersions": total_affected,
        "written": written,
        "removed": removed,
    }))
}

/// A package's pages, after its advisories changed.
fn rewrite_pages(reg: &Registry, name: &str) -> Result<()> {
    let conn = reg.db()?;
    let src = Sources::load(reg, &conn, name)?;
    if src.lines.is_empty() {
        return Ok(());
    }
    package_files::write(reg, &conn, &src, Scope::Pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).unwrap()
    }

    fn adv(affected: Value) -> Result<Advisory> {
        from_value(json!({"id": "CAIRN-2026-0001", "modified": "2026-05-01T00:00:00Z", "affected": affected}))
    }

    fn range(events: Value) -> Value {
        json!([{"package": {"name": "foo"}, "ranges": [{"type": "SEMVER", "events": events}]}])
    }

    #[test]
    fn ranges_follow_osv() {
        let a = adv(range(json!([{"introduced": "1.0.0"}, {"fixed": "1.2.0"}]))).unwrap();
        let hit = |s: &str| a.affects("foo", &v(s));
        assert!(!hit("0.9.9") && hit("1.0.0") && hit("1.1.9") && !hit("1.2.0") && !hit("2.0.0"));
        // Prereleases sort before their release: 1.2.0-rc.1 is still affected,
        // 1.0.0-alpha is before the introduction.
        assert!(hit("1.2.0-rc.1") && !hit("1.0.0-alpha"));
        assert!(!a.affects("bar", &v("1.1.0")) && a.affects("FOO", &v("1.1.0")));
        assert_eq!(a.fixed_for("foo"), vec!["1.2.0"]);

        let a = adv(range(json!([{"introduced": "0"}, {"last_affected": "0.3.1"}]))).unwrap();
        assert!(
            a.affects("foo", &v("0.0.1")) && a.affects("foo", &v("0.3.1")) && !a.affects("foo", &v("0.3.2"))
        );
        assert!(a.fixed_for("foo").is_empty());

        // Two introduced/fixed pairs, given out of order.
        let a = adv(range(
            json!([{"fixed": "2.1.0"}, {"introduced": "2.0.0"}, {"introduced": "0"}, {"fixed": "1.5.0"}]),
        ))
        .unwrap();
        let hit = |s: &str| a.affects("foo", &v(s));
        assert!(hit("1.0.0") && !hit("1.5.0") && !hit("1.9.0") && hit("2.0.0") && !hit("2.1.0"));

        let a = adv(json!([{"package": {"name": "foo"}, "versions": ["0.1.0", "0.2.0-beta.1"]}])).unwrap();
        assert!(a.affects("foo", &v("0.2.0-beta.1")) && !a.affects("foo", &v("0.2.0")));
    }

    #[test]
    fn malformed_advisories_are_refused() {
        for (bad, why) in [
            (json!({"id": "X-1", "modified": "2026-05-01T00:00:00Z"}), "affected"),
            (json!({"id": "../x", "modified": "2026-05-01T00:00:00Z", "affected": []}), "safe file name"),
            (json!({"id": "X-1", "modified": "yesterday", "affected": []}), "RFC 3339"),
            (
                json!({"id": "X-1", "modified": "2026-05-01T00:00:00Z", "affected": [{"package": {}}]}),
                "package.name",
            ),
            (
                json!({"id": "X-1", "modified": "2026-05-01T00:00:00Z", "affected": [{"package": {"name": "foo"}}]}),
                "neither",
            ),
        ] {
            let e = format!("{:#}", from_value(bad).unwrap_err());
            assert!(e.contains(why), "{e}");
        }
        let e = format!("{:#}", adv(range(json!([{"fixed": "1.0.0"}]))).unwrap_err());
        assert!(e.contains("no `introduced`"), "{e}");
        let e = format!("{:#}", adv(range(json!([{"introduced": "1.x"}]))).unwrap_err());
        assert!(e.contains("SemVer"), "{e}");
        let git = json!([{"package": {"name": "foo"}, "ranges": [{"type": "GIT", "events": [{"introduced": "0"}]}]}]);
        assert!(format!("{:#}", adv(git).unwrap_err()).contains("not supported"));
        assert!(!safe_id("a/b") && !safe_id(".hidden") && !safe_id("") && safe_id("GHSA-abcd-1234.x_y"));
    }
}
