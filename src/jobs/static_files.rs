//! The full static rebuild: every derived document of SPEC section 6 that
//! comes from the index and the state database, rewritten in parallel.
//! Files whose bytes would not change are left alone, so a second run
//! writes nothing; new bytes are written to a temporary file and renamed,
//! and one `syncfs` at the end makes the whole run durable.

use anyhow::Result;
use rayon::prelude::*;
use rusqlite::Connection;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Snapshot;
use crate::derive;
use crate::index::{package_path, IndexLine};
use crate::registry::{Recent, Registry};

/// Packages per listing page.
pub const PAGE_SIZE: usize = 100;

/// Counts what a run wrote.
#[derive(Default)]
struct Writes {
    written: AtomicU64,
    unchanged: AtomicU64,
}

impl Writes {
    /// Writes `bytes` to `path` unless it already holds exactly them.
    fn put(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let counter =
            if crate::fsutil::write_if_changed(path, bytes)? { &self.written } else { &self.unchanged };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Owners of every package, by canonical name: from the state database, or
/// for a mirror (whose database is not the source's) from the owners
/// documents it copied.
fn all_owners(reg: &Registry, conn: &Connection, snap: &Snapshot) -> Result<HashMap<String, Vec<String>>> {
    if reg.config.read_only {
        let mut out = HashMap::new();
        for (name, _) in &snap.packages {
            let path = derive::package_dir(&reg.static_root, name).join("owners.json");
            let doc: Value =
                std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
            let logins = doc["owners"].as_array().into_iter().flatten();
            out.insert(
                crate::name::canonical(name),
                logins.filter_map(|o| o["login"].as_str().map(String::from)).collect(),
            );
        }
        return Ok(out);
    }
    let mut stmt = conn.prepare(
        "SELECT o.package, u.login FROM owners o JOIN users u ON u.id = o.user_id ORDER BY o.package, o.added_at, u.login",
    )?;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (pkg, login) = row?;
        out.entry(pkg).or_default().push(login);
    }
    Ok(out)
}

/// A row of the listings and user pages.
fn summary(lines: &[IndexLine], downloads: u64) -> Value {
    let latest = derive::latest_version(lines).or(lines.last()).expect("package has lines");
    json!({
        "name": latest.name,
        "latestVersion": latest.vers,
        "description": latest.description,
        "kind": latest.kind,
        "downloads": downloads,
        "updatedAt": lines.iter().filter_map(|l| l.pubtime.clone()).max(),
        "createdAt": lines.first().and_then(|l| l.pubtime.clone()),
    })
}

pub fn run(reg: &Registry, snap: &Snapshot) -> Result<Value> {
    let started = std::time::Instant::now();
    let conn = reg.db()?;
    let owners = all_owners(reg, &conn, snap)?;
    let totals = super::stats::version_totals(&conn)?;
    let root = &reg.static_root;
    let w = Writes::default();
    let no_owners = Vec::new();

    // Index copies, package, owners and version documents.
    let per_package: Vec<(u64, Value)> = snap
        .packages
        .par_iter()
        .map(|(name, lines)| -> Result<(u64, Value)> {
            let key = crate::name::canonical(name);
            let owners = owners.get(&key).unwrap_or(&no_owners);
            let downloads = |v: &str| totals.get(&(key.clone(), v.to_string())).copied().unwrap_or(0);
            w.put(&root.join("index").join(package_path(name)), &IndexLine::file_bytes(lines))?;
            let dir = derive::package_dir(root, name);
            w.put(
                &dir.with_extension("json"),
                &derive::to_bytes(&derive::package_doc(lines, owners, &downloads)),
            )?;
            w.put(&dir.join("owners.json"), &derive::to_bytes(&derive::owners_doc(owners)))?;
            for line in lines {
                let readme = dir.join(&line.vers).join("readme.md");
                if !readme.exists() {
                    if let Some(text) = reg.readme_of(line) {
                        w.put(&readme, &text)?;
                    }
                }
                let doc = derive::version_doc(line, readme.exists(), downloads(&line.vers));
                w.put(&dir.join(format!("{}.json", line.vers)), &derive::to_bytes(&doc))?;
            }
            let total: u64 = lines.iter().map(|l| downloads(&l.vers)).sum();
            Ok((total, summary(lines, total)))
        })
        .collect::<Result<_>>()?;
    for (path, bytes) in snap.other.iter().chain(snap.advisories.iter()) {
        if path == "config.json" && reg.config.read_only {
            w.put(&root.join("index/config.json"), &mirror_config(bytes, reg)?)?;
        } else {
            w.put(&root.join("index").join(path), bytes)?;
        }
    }

    // Listings: by name (the snapshot's order), newest, most downloaded.
    let mut newest: Vec<&(u64, Value)> = per_package.iter().collect();
    newest.sort_by(|a, b| b.1["updatedAt"].as_str().cmp(&a.1["updatedAt"].as_str()));
    let mut popular: Vec<&(u64, Value)> = per_package.iter().collect();
    popular.sort_by(|a, b| b.0.cmp(&a.0).then(a.1["name"].as_str().cmp(&b.1["name"].as_str())));
    let by_name: Vec<&(u64, Value)> = per_package.iter().collect();
    let mut pages = 0;
    for (sort, list) in [("name", by_name), ("newest", newest), ("downloads", popular)] {
        pages += write_listing(&w, &root.join("api/v1/listings").join(sort), sort, &list)?;
    }

    // Public user profiles.
    let by_key: HashMap<String, &Value> = snap
        .packages
        .iter()
        .zip(&per_package)
        .map(|((n, _), (_, v))| (crate::name::canonical(n), v))
        .collect();
    let mut users = 0;
    for (user, _) in crate::db::list_users(&conn)? {
        let mut mine: Vec<&Value> = owners
            .iter()
            .filter(|(_, logins)| logins.contains(&user.login))
            .filter_map(|(k, _)| by_key.get(k).copied())
            .collect();
        mine.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        let doc = json!({ "login": user.login, "createdAt": user.created_at, "packages": mine });
        w.put(
            &root.join("api/v1/users").join(format!("{}.json", user.login.to_ascii_lowercase())),
            &derive::to_bytes(&doc),
        )?;
        users += 1;
    }

    crate::fsutil::sync_filesystem(root)?;
    // Recent publishes and counts from the index itself, so a mirror's match its source.
    let mut recent: Vec<Recent> = snap
        .packages
        .iter()
        .flat_map(|(_, lines)| lines.iter())
        .filter_map(|l| {
            Some(Recent { name: l.name.clone(), version: l.vers.clone(), published_at: l.pubtime.clone()? })
        })
        .collect();
    recent.sort_by(|a, b| b.published_at.cmp(&a.published_at));
    recent.truncate(100);
    let versions = snap.packages.iter().map(|(_, l)| l.len() as u64).sum();
    reg.write_summary_files(&recent, snap.packages.len() as u64, versions, &snap.head)?;
    Ok(json!({
        "packages": snap.packages.len(),
        "versions": snap.packages.iter().map(|(_, l)| l.len()).sum::<usize>(),
        "listingPages": pages,
        "users": users,
        "written": w.written.load(Ordering::Relaxed),
        "unchanged": w.unchanged.load(Ordering::Relaxed),
        "seconds": started.elapsed().as_secs_f64(),
    }))
}

/// A mirror serves the source's `config.json` (same key and name) with
/// `dl` and `api` pointing at the mirror's own URL; `index.git` keeps the
/// source's commits untouched.
fn mirror_config(source: &[u8], reg: &Registry) -> Result<Vec<u8>> {
    let mut doc: Value = serde_json::from_slice(source)?;
    if reg.config.public_url.is_some() {
        let url = reg.config.public_url();
        doc["dl"] = json!(format!("{url}/blobs/sha256/{{sha256-checksum}}"));
        doc["api"] = json!(reg.config.api_url());
    }
    Ok(derive::to_bytes(&doc))
}

/// `/api/v1/listings/{sort}/{page}.json`, pages numbered from 1; page files
/// past the new last page are removed.
fn write_listing(w: &Writes, dir: &Path, sort: &str, list: &[&(u64, Value)]) -> Result<usize> {
    let total = list.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    (0..pages).into_par_iter().try_for_each(|i| -> Result<()> {
        let chunk: Vec<&Value> = list.iter().skip(i * PAGE_SIZE).take(PAGE_SIZE).map(|(_, v)| v).collect();
        let doc = json!({
            "sort": sort, "page": i + 1, "pages": pages, "perPage": PAGE_SIZE, "total": total, "packages": chunk,
        });
        w.put(&dir.join(format!("{}.json", i + 1)), &derive::to_bytes(&doc))?;
        Ok(())
    })?;
    let mut extra = pages + 1;
    while dir.join(format!("{extra}.json")).exists() {
        std::fs::remove_file(dir.join(format!("{extra}.json")))?;
        extra += 1;
    }
    Ok(pages)
}
