//! The full static rebuild: every derived document of SPEC section 6 that
//! comes from the index and the state database, rewritten in parallel.
//! Files whose bytes would not change are left alone, so a second run
//! writes nothing; new bytes are written to a temporary file and renamed,
//! and one `syncfs` at the end makes the whole run durable.
//!
//! [`check`] runs the same code in check mode: it writes nothing and
//! reports the files a rebuild would write (`cairn fsck`).

use crate::db::Conn;
use anyhow::Result;
use rayon::prelude::*;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::{Package, Snapshot, Visit};
use crate::db::downloads::Totals;
use crate::derive;
use crate::derive::owner::Summary;
use crate::index::IndexLine;
use crate::layout::{Layout, StaticRoot, LISTING_SORTS};
use crate::package_files::{self, Present, Scope, Sources};
use crate::registry::Registry;

/// Packages per listing page.
pub const PAGE_SIZE: usize = 100;

/// A derived file that does not match what a rebuild would write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub kind: DriftKind,
    /// Relative to the static root once [`check`] returns it.
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftKind {
    /// A rebuild would create it.
    Missing,
    /// A rebuild would write other bytes.
    Differs,
}

/// Writes through the static root and counts what a run wrote; in check
/// mode, records it instead of writing.
struct Writes<'r> {
    root: &'r StaticRoot,
    written: AtomicU64,
    unchanged: AtomicU64,
    check: Option<Mutex<Vec<Drift>>>,
}

impl<'r> Writes<'r> {
    fn new(root: &'r StaticRoot) -> Writes<'r> {
        Writes { root, written: AtomicU64::new(0), unchanged: AtomicU64::new(0), check: None }
    }

    fn checking(root: &'r StaticRoot) -> Writes<'r> {
        Writes { check: Some(Mutex::default()), ..Writes::new(root) }
    }

    /// Writes a document unless its key already holds exactly its bytes.
    fn put(&self, doc: &derive::Doc) -> std::io::Result<()> {
        self.put_over(&doc.key, self.root.read(&doc.key)?.as_deref(), &doc.bytes)
    }

    /// Writes a package's directory: file by file if it `exists`, else all
    /// of it at once ([`StaticRoot::put_new_dir`]).
    fn put_dir(&self, dir: &str, exists: bool, files: &[DirFile]) -> std::io::Result<()> {
        if exists || self.check.is_some() {
            return files
                .iter()
                .try_for_each(|f| self.put_over(&format!("{dir}/{}", f.name), f.old.as_deref(), &f.bytes));
        }
        let named: Vec<(&str, &[u8])> = files.iter().map(|f| (f.name.as_str(), f.bytes.as_slice())).collect();
        match self.root.put_new_dir(dir, &named) {
            // An empty directory was there after all: file by file.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::DirectoryNotEmpty
                ) =>
            {
                self.put_dir(dir, true, files)
            }
            Err(e) => Err(e),
            Ok(()) => {
                self.written.fetch_add(files.len() as u64, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// [`Writes::put`] for a file whose current bytes (`old`) were read already.
    fn put_over(&self, key: &str, old: Option<&[u8]>, bytes: &[u8]) -> std::io::Result<()> {
        if old == Some(bytes) {
            self.unchanged.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        match &self.check {
            Some(drift) => {
                let kind = if old.is_some() { DriftKind::Differs } else { DriftKind::Missing };
                drift.lock().unwrap().push(Drift { kind, path: PathBuf::from(key) });
            }
            None => {
                self.root.put_if_changed(key, old, bytes)?;
            }
        }
        self.written.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// A file of a package's directory: its path in the directory, its bytes
/// on disk (if any) and the bytes a rebuild writes.
struct DirFile {
    name: String,
    old: Option<Vec<u8>>,
    bytes: Vec<u8>,
}

/// A package's directory as one listing shows it (none: it does not exist
/// yet, so a first rebuild looks up no file in it), each file read once.
struct Listing<'r> {
    root: &'r StaticRoot,
    dir: String,
    listed: Option<HashSet<String>>,
    /// What the derivation read, for the writes' comparison after it.
    read: RefCell<HashMap<String, Option<Vec<u8>>>>,
}

impl<'r> Listing<'r> {
    fn of(root: &'r StaticRoot, dir: String) -> std::io::Result<Listing<'r>> {
        let listed = root.list(&dir)?;
        let listed = (!listed.is_empty()).then(|| listed.into_iter().collect());
        Ok(Listing { root, dir, listed, read: RefCell::default() })
    }

    /// Whether `key` is in the directory.
    fn holds(&self, key: &str) -> bool {
        key.strip_prefix(self.dir.as_str()).is_some_and(|rest| rest.starts_with('/'))
    }

    /// Whether the listing has `key`'s entry in the directory (a file, or
    /// the version directory it is in).
    fn lists(&self, key: &str) -> bool {
        let Some(listed) = &self.listed else { return false };
        let entry = key.get(self.dir.len() + 1..).and_then(|rest| rest.split('/').next());
        self.holds(key) && entry.is_some_and(|e| listed.contains(e))
    }

    /// The bytes at `key` now, read once.
    fn take(&self, key: &str) -> Option<Vec<u8>> {
        match self.read.borrow_mut().remove(key) {
            Some(bytes) => bytes,
            None => self.lists(key).then(|| self.root.read(key).ok().flatten()).flatten(),
        }
    }
}

impl Present for Listing<'_> {
    fn exists(&self, key: &str) -> bool {
        self.lists(key) && self.root.exists(key)
    }

    fn read(&self, key: &str) -> std::io::Result<Option<Vec<u8>>> {
        if !self.lists(key) {
            return Ok(None);
        }
        let bytes = self.root.read(key)?;
        self.read.borrow_mut().insert(key.to_string(), bytes.clone());
        Ok(bytes)
    }
}

/// Owners by canonical name, from the state database. A mirror's database is
/// not the source's: it has none (empty here) and reads the owners documents
/// it copied ([`crate::package_files::copied_owners`]).
fn all_owners(reg: &Registry, conn: &Conn) -> Result<HashMap<String, Vec<String>>> {
    if reg.config.read_only {
        return Ok(HashMap::new());
    }
    crate::db::all_owners(conn)
}

fn summary(p: &Package, downloads: u64) -> Summary<'_> {
    Summary::new(&p.latest, &p.created_at, &p.updated_at, downloads)
}

/// What a listing holds: every package in one order (`sort`), or those
/// of one kind or keyword (by downloads).
#[derive(Clone, Copy)]
struct Listed<'a> {
    keyword: Option<&'a str>,
    kind: Option<&'a str>,
    sort: &'a str,
}

/// `/api/v1/listings/{sort}/{page}.json`, `/api/v1/kinds/{kind}/{page}.json`,
/// `/api/v1/keywords/{keyword}/{page}.json`.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ListingPage<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    keyword: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    packages: Vec<Summary<'a>>,
    page: usize,
    pages: usize,
    per_page: usize,
    sort: &'a str,
    total: usize,
}

/// Rewrites every package's index copy and documents (only the packages in
/// `only`, by canonical name, when given: new download counts), then the
/// listings, user pages, `recent.json` and `health.json`. Returns the
/// snapshot it read, for the jobs that follow.
pub fn run(reg: &Registry, only: Option<&HashSet<String>>, totals: &Totals) -> Result<(Snapshot, Value)> {
    let started = std::time::Instant::now();
    let w = Writes::new(&reg.root);
    let (snap, pages, users) = derive_all(reg, only, totals, &w, &|_, _, _| Ok(()))?;
    crate::site::write_fixed(&reg.root, &reg.config.sign_in_providers())?;
    reg.root.sync()?;
    // Recent publishes and counts from the index itself, so a mirror's match its source.
    reg.write_summary_files(&snap.recent, snap.packages.len() as u64, snap.versions, &snap.head)?;
    // Each organisation's registry: a private one's made (a write at the
    // organisation's change may have failed) and its packages' own files
    // rewritten; a public one has no config.json. The search job's
    // `browse` leaves them be.
    let mut private = 0;
    let conn = reg.db()?;
    for org in crate::db::org::all(&conn)? {
        match org.private && reg.key.is_some() {
            true => {
                reg.org_registry(&org.slug)?.rederive_all(&conn)?;
                private += 1;
            }
            false => reg.write_org_config(&org.slug, false)?,
        }
    }
    let report = json!({
        "packages": snap.packages.len(),
        "versions": snap.versions,
        "listingPages": pages,
        "users": users,
        "privateRegistries": private,
        "written": w.written.load(Ordering::Relaxed),
        "unchanged": w.unchanged.load(Ordering::Relaxed),
        "seconds": started.elapsed().as_secs_f64(),
    });
    Ok((snap, report))
}

/// Check mode of [`run`]: computes the files a full run would write and
/// returns those a rebuild would change (paths relative to the static
/// root, sorted), writing nothing. Compared: the index copies and every
/// package's documents and READMEs, which a publish keeps current. Left
/// out: listings and user pages, which lag until the job's next run, and
/// `recent.json` and `health.json`, which carry the time of the run. `also` sees each
/// package's lines too, in the same single read of the index.
pub fn check(reg: &Registry, also: Visit) -> Result<(Snapshot, Vec<Drift>)> {
    let w = Writes::checking(&reg.root);
    let totals = crate::db::downloads::version_totals(&reg.db()?)?;
    let (snap, _, _) = derive_all(reg, None, &totals, &w, also)?;
    let mut drift = w.check.expect("check mode").into_inner().unwrap();
    drift.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((snap, drift))
}

/// Everything [`run`] writes but the summaries, through `w`; returns the
/// snapshot, the number of listing pages and of user pages.
fn derive_all(
    reg: &Registry,
    only: Option<&HashSet<String>>,
    totals: &Totals,
    w: &Writes,
    also: Visit,
) -> Result<(Snapshot, usize, usize)> {
    let conn = reg.db()?;
    let owners = all_owners(reg, &conn)?;
    let root = &reg.root;
    let l = root.layout();
    let no_owners = Vec::new();
    let no_downloads = derive::Downloads::new();
    let origins = crate::db::upstream::origins(&conn, &reg.space)?;
    let local = derive::Origin::default();
    let dependents = crate::db::dependents::all(&conn, &reg.space)?;
    let no_dependents = crate::db::dependents::Dependents::default();
    // Each package's newest dependencies, to bring the table level after
    // the pass (a run writes; fsck's check mode changes nothing).
    let newest_deps: std::sync::Mutex<Vec<(String, Vec<String>)>> = Default::default();
    let no_proposals_page = std::sync::Mutex::new(Vec::new());

    // Every package's files, while the index is read: the one derivation
    // (`package_files`), from the snapshot's file, lines and the maps read above.
    let package_files = |raw: &[u8], lines: &[IndexLine], meta: Option<&crate::index::Meta>| -> Result<()> {
        let name = &lines[0].name;
        let key = crate::name::canonical(name);
        if only.is_some_and(|only| !only.contains(&key)) {
            return Ok(());
        }
        let src = Sources {
            name: name.clone(),
            lines: Cow::Borrowed(lines),
            owners: match reg.config.read_only {
                true => Cow::Owned(crate::package_files::copied_owners(root, name)),
                false => Cow::Borrowed(owners.get(&key).unwrap_or(&no_owners)),
            },
            downloads: Cow::Borrowed(totals.get(&key).unwrap_or(&no_downloads)),
            meta: meta.map(Cow::Borrowed),
            file: Cow::Borrowed(raw),
            origin: Cow::Borrowed(origins.get(&key).unwrap_or(&local)),
            dependents: Cow::Borrowed(dependents.get(&reg.space.key(name)).unwrap_or(&no_dependents)),
        };
        if w.check.is_none() && !reg.config.read_only {
            let deps = crate::package_files::newest_dependencies(reg, lines);
            newest_deps.lock().unwrap().push((name.clone(), deps));
        }
        let dir = Listing::of(root, l.package_dir(name))?;
        // A package in the snapshot has lines: nothing to remove.
        let package_files::Files { docs, readmes, .. } =
            package_files::derive(reg, &dir, &src, Scope::Everything)?;
        let (inside, outside): (Vec<derive::Doc>, Vec<derive::Doc>) =
            docs.into_iter().partition(|doc| dir.holds(&doc.key));
        for doc in &outside {
            w.put(doc)?;
        }
        let files: Vec<DirFile> = inside
            .into_iter()
            .map(|doc| DirFile {
                name: doc.key[dir.dir.len() + 1..].to_string(),
                old: dir.take(&doc.key),
                bytes: doc.bytes,
            })
            .collect();
        w.put_dir(&dir.dir, dir.listed.is_some(), &files)?;
        // Pages are views of the documents checked above: a check leaves them out.
        if w.check.is_none() {
            for page in package_files::pages(root, &src, Scope::Everything, readmes)? {
                w.put(&page)?;
            }
            // The page the package page links to, missing for a package
            // published before proposals (SPEC section 19): written below,
            // on this job's one connection.
            if let Some(name) = crate::proposal_pages::missing(reg, lines) {
                no_proposals_page.lock().unwrap().push(name);
            }
        }
        Ok(())
    };
    let snap = Snapshot::load_visiting(reg, &|raw, lines, meta| {
        package_files(raw, lines, meta)?;
        also(raw, lines, meta)
    })?;
    // A failure is no reason to stop the job (a cached package's blob may be absent).
    for name in no_proposals_page.into_inner().unwrap() {
        if let Err(e) = crate::proposal_pages::write(reg, &conn, &name, None) {
            tracing::warn!(package = %name, error = %format!("{e:#}"), "writing the proposals page failed");
        }
    }
    for (path, bytes) in snap.other.iter().chain(&snap.advisories).chain(&snap.meta) {
        let bytes = if path == "config.json" && reg.config.read_only {
            mirror_config(bytes, reg)?
        } else {
            bytes.clone()
        };
        w.put(&derive::Doc { key: l.index_file(path), bytes })?;
    }
    // Listings and user pages change with every publish but only the jobs
    // write them: they are as fresh as the last run, so a check cannot
    // tell lag from damage and leaves them out.
    if w.check.is_some() {
        return Ok((snap, 0, 0));
    }
    // The list of deprecated packages, whole (a write keeps it current).
    let metas = snap.meta.iter().map(|(path, bytes)| (path.as_str(), bytes.as_slice()));
    w.put(&derive::deprecations::whole(root, metas))?;
    // The dependencies table level with the index (a registry older than
    // it, a write cut short), and the pages whose dependents that changed.
    let mut changed = Vec::new();
    for (name, deps) in newest_deps.into_inner().unwrap() {
        changed.extend(crate::db::dependents::set(&conn, &reg.space, &name, &deps)?);
    }
    package_files::rewrite_dependents_of(reg, &conn, changed)?;
    let (pages, users) = write_browse(reg, &conn, &snap, &owners, totals, w)?;
    Ok((snap, pages, users))
}

/// Rewrites the listings and user pages from a snapshot (the search job
/// does too, so the server's search timer keeps them current); returns a
/// report.
pub fn browse(reg: &Registry, snap: &Snapshot, totals: &Totals) -> Result<Value> {
    let conn = reg.db()?;
    let owners = all_owners(reg, &conn)?;
    let w = Writes::new(&reg.root);
    let (pages, users) = write_browse(reg, &conn, snap, &owners, totals, &w)?;
    Ok(json!({
        "listingPages": pages,
        "users": users,
        "written": w.written.load(Ordering::Relaxed),
        "unchanged": w.unchanged.load(Ordering::Relaxed),
    }))
}

/// Listings by name, newest and downloads, by kind and by keyword, and
/// public user profiles;
/// returns the number of listing pages and of user pages.
fn write_browse(
    reg: &Registry,
    conn: &Conn,
    snap: &Snapshot,
    owners: &HashMap<String, Vec<String>>,
    totals: &Totals,
    w: &Writes,
) -> Result<(usize, usize)> {
    let l = reg.root.layout();
    // Listings: by name (the snapshot's order), newest, most downloaded.
    let downloads: Vec<u64> = snap.packages.par_iter().map(|p| p.downloads(totals)).collect();
    let row = |i: usize| summary(&snap.packages[i], downloads[i]);
    let by_name: Vec<usize> = (0..snap.packages.len()).collect();
    let mut newest = by_name.clone();
    newest.par_sort_by(|&a, &b| snap.packages[b].updated_at.cmp(&snap.packages[a].updated_at));
    let mut popular = by_name.clone();
    popular.par_sort_by(|&a, &b| downloads[b].cmp(&downloads[a]).then(a.cmp(&b)));
    let mut pages = 0;
    // By kind and by keyword, in the order of `popular`: downloads, then name.
    let mut kinds: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut keywords: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for &i in &popular {
        let latest = &snap.packages[i].latest;
        if let Some(kind) = latest.listed_kind() {
            kinds.entry(kind).or_default().push(i);
        }
        for keyword in latest.listed_keywords() {
            keywords.entry(keyword).or_default().push(i);
        }
    }
    for (sort, list) in LISTING_SORTS.into_iter().zip([by_name, newest, popular]) {
        let listed = Listed { keyword: None, kind: None, sort };
        pages += write_listing(w, &l.listing_dir(sort), listed, &list, &row)?;
    }
    let sort = "downloads";
    for (by_kind, groups, top) in [(true, &kinds, l.kinds_dir()), (false, &keywords, l.keywords_dir())] {
        pages += groups
            .par_iter()
            .map(|(word, list)| {
                let (listed, dir) = match by_kind {
                    true => (Listed { keyword: None, kind: Some(word), sort }, l.kind_dir(word)),
                    false => (Listed { keyword: Some(word), kind: None, sort }, l.keyword_dir(word)),
                };
                write_listing(w, &dir, listed, list, &row)
            })
            .sum::<Result<usize>>()?;
        // The listings of a kind or keyword no package has any more.
        for gone in w.root.list(&top)?.into_iter().filter(|d| !groups.contains_key(d)) {
            let dir = format!("{top}/{gone}");
            for file in w.root.list(&dir)? {
                w.root.remove(&format!("{dir}/{file}"))?;
            }
        }
    }

    // Public user profiles: each user's packages in name order.
    let mut owned: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, p) in snap.packages.iter().enumerate() {
        for login in owners.get(&crate::name::canonical(&p.name)).into_iter().flatten() {
            owned.entry(login).or_default().push(i);
        }
    }
    let users = crate::db::list_users(conn)?;
    users.par_iter().try_for_each(|(user, _)| -> Result<()> {
        let mine = owned.get(user.login.as_str()).into_iter().flatten();
        let rows: Vec<Summary> = mine.map(|&i| row(i)).collect();
        w.put(&crate::site::user(&reg.root, &user.login, &user.created_at, &rows))?;
        Ok(w.put(&derive::owner::user_doc(l, &user.login, &user.created_at, &rows))?)
    })?;
    // Public organisations' pages: the packages each owns (a private
    // one's registry has its own files, and nothing of it is here).
    for org in crate::db::org::all(conn)? {
        if org.private {
            continue;
        }
        let mine = owned.get(crate::db::org::owner_name(&org.slug).as_str()).into_iter().flatten();
        let rows: Vec<Summary> = mine.map(|&i| row(i)).collect();
        w.put(&crate::site::org(&reg.root, &org, &rows))?;
    }
    Ok((pages, users.len()))
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

/// The pages of one listing directory, numbered from 1, rows made by
/// `row` from `list` (package positions in order); page files past the new
/// last page are removed.
fn write_listing<'a>(
    w: &Writes,
    dir: &str,
    listed: Listed,
    list: &[usize],
    row: &(dyn Fn(usize) -> Summary<'a> + Sync),
) -> Result<usize> {
    let total = list.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    (0..pages).into_par_iter().try_for_each(|i| -> Result<()> {
        let packages = list.iter().skip(i * PAGE_SIZE).take(PAGE_SIZE).map(|&p| row(p)).collect();
        let Listed { keyword, kind, sort } = listed;
        let doc =
            ListingPage { keyword, kind, packages, page: i + 1, pages, per_page: PAGE_SIZE, sort, total };
        w.put(&derive::Doc { key: Layout::listing_page(dir, i + 1), bytes: derive::to_bytes(&doc) })?;
        Ok(())
    })?;
    let mut extra = pages + 1;
    while w.root.exists(&Layout::listing_page(dir, extra)) {
        w.root.remove(&Layout::listing_page(dir, extra))?;
        extra += 1;
    }
    Ok(pages)
}
