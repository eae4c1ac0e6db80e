//! One package's files in the static root, derived from its sources of
//! truth. [`Sources::load`] is the one loader (the index's lines and `meta/`
//! file, the owners and download totals in the database; the static job
//! builds the same from its snapshot); [`derive`] the one derivation from
//! them, pure but for what it looks at in the root ([`Present`], the README
//! rules): the index copy, the package, owners and version documents and
//! the READMEs; [`pages`] the package's and versions' pages; [`write`]
//! writes them with the pages of owners that have none yet, and
//! [`Sources::delta`] is its search delta entry. A write group, the retry
//! of its effects, recovery (and so `cairn fsck --repair` and the static
//! job's pass over private registries), the advisories job and the static
//! job (`cairn rebuild static`, and `cairn fsck`'s check) all call it.

use anyhow::Result;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;

use crate::db::{self, Conn};
use crate::derive::{self, owner::Summary, Doc, Downloads};
use crate::index::{IndexLine, Meta};
use crate::layout::StaticRoot;
use crate::registry::Registry;
use crate::search::DeltaEntry;

/// What one package's files are derived from: owned when loaded, borrowed
/// from the static job's snapshot (a rebuild copies no line).
pub struct Sources<'a> {
    /// As the index spells it (else as asked for: a package with no line).
    pub name: String,
    /// Its index file as the index holds it (what the static copy serves).
    pub file: Cow<'a, [u8]>,
    /// Its index lines; none once every version was hard-deleted.
    pub lines: Cow<'a, [IndexLine]>,
    pub owners: Cow<'a, [String]>,
    pub downloads: Cow<'a, Downloads>,
    pub meta: Option<Cow<'a, Meta>>,
    pub origin: Cow<'a, derive::Origin>,
    /// The packages whose newest version depends on it.
    pub dependents: Cow<'a, db::dependents::Dependents>,
}

impl Sources<'static> {
    /// A package as the index and the database have it now.
    pub fn load(reg: &Registry, conn: &Conn, name: &str) -> Result<Sources<'static>> {
        let file = reg.index.read_file(&crate::index::package_path(name))?.unwrap_or_default();
        let lines = IndexLine::parse_file(&file)?;
        Sources::with_file(reg, conn, name, file, lines)
    }

    /// The same, with its index file and that file's lines in hand (a
    /// group's new file). A mirror's owners are the source's, as it copied
    /// them.
    pub fn with_file(
        reg: &Registry,
        conn: &Conn,
        name: &str,
        file: Vec<u8>,
        lines: Vec<IndexLine>,
    ) -> Result<Sources<'static>> {
        Ok(Sources {
            file: Cow::Owned(file),
            name: lines.first().map_or(name, |l| l.name.as_str()).to_string(),
            owners: Cow::Owned(match reg.config.read_only {
                true => copied_owners(&reg.root, name),
                false => db::owners(conn, &reg.space, name)?,
            }),
            downloads: Cow::Owned(db::downloads::package_totals(conn, &reg.space, name)?),
            meta: reg.read_meta(name)?.map(Cow::Owned),
            origin: Cow::Owned(origin(conn, reg, name)?),
            dependents: Cow::Owned(db::dependents::of(conn, &reg.space, name)?),
            lines: Cow::Owned(lines),
        })
    }
}

impl Sources<'_> {
    /// Downloads of the versions it has.
    pub fn total(&self) -> u64 {
        self.lines.iter().filter_map(|l| self.downloads.get(&l.vers)).sum()
    }

    /// Its search delta entry, as of index commit `commit`.
    pub fn delta(&self, commit: &str) -> DeltaEntry {
        let deprecated = !self.lines.is_empty() && self.meta.as_deref().is_some_and(Meta::is_deprecated);
        DeltaEntry::of(
            &self.name,
            &self.lines,
            commit,
            self.total(),
            deprecated,
            self.origin.upstream.as_deref(),
        )
    }
}

/// Where a package came from: an upstream's, with its versions' log entries, or local.
fn origin(conn: &Conn, reg: &Registry, name: &str) -> Result<derive::Origin> {
    Ok(match db::upstream::cached(conn, &reg.space, name)? {
        Some(row) => derive::Origin {
            upstream: Some(row.upstream),
            log_indexes: db::upstream::log_indexes(conn, &reg.space, name)?,
        },
        None => derive::Origin::default(),
    })
}

/// Where a version's README comes from.
#[derive(Clone, Copy)]
pub enum Readme<'a> {
    /// The README its upload carried (`None`: its archive has none).
    Uploaded(Option<&'a [u8]>),
    /// The README rules: one in the root is kept (with its `readme.html`
    /// rendered if it has none); a version whose document in the root says
    /// it has none is not read again; else it is read from the blob.
    Kept,
}

/// A version a write group changed, with its README.
pub type Changed<'a> = (&'a IndexLine, Readme<'a>);

/// Which versions' own files a derivation makes.
#[derive(Clone, Copy)]
pub enum Scope<'a> {
    /// Every version's document and page, its README as [`Readme::Kept`]
    /// says: recovery, the retries and the static job.
    Everything,
    /// These versions' documents and pages: a write group (a publish with
    /// its upload's README, a yank keeping its own).
    Versions(&'a [Changed<'a>]),
    /// No version document, but every page (they show the owners, the
    /// deprecation and the advisories): a change of those.
    Pages,
}

impl Scope<'_> {
    /// The versions whose pages are made (`None`: every one).
    fn only(&self) -> Option<Vec<&str>> {
        match self {
            Scope::Versions(changed) => Some(changed.iter().map(|(l, _)| l.vers.as_str()).collect()),
            Scope::Everything | Scope::Pages => None,
        }
    }
}

/// What a derivation sees of the static root: the files there now.
pub trait Present {
    fn exists(&self, key: &str) -> bool;
    fn read(&self, key: &str) -> std::io::Result<Option<Vec<u8>>>;
}

impl Present for StaticRoot {
    fn exists(&self, key: &str) -> bool {
        StaticRoot::exists(self, key)
    }

    fn read(&self, key: &str) -> std::io::Result<Option<Vec<u8>>> {
        StaticRoot::read(self, key)
    }
}

/// A package's documents, as [`derive`] makes them.
#[derive(Default)]
pub struct Files {
    /// In writing order: a README before the document that points at it.
    pub docs: Vec<Doc>,
    /// Keys to remove: a package left without versions loses its index
    /// copy, document and page (its owners list stays: the name is owned).
    pub remove: Vec<String>,
    /// The READMEs rendered, by version: the pages show them, unread.
    pub readmes: HashMap<String, String>,
}

/// The documents of the package that `scope` covers: its index copy,
/// package and owners documents, and its versions' documents and READMEs.
pub fn derive(reg: &Registry, present: &impl Present, src: &Sources, scope: Scope) -> Result<Files> {
    let l = reg.root.layout();
    let mut files = Files::default();
    let Some(first) = src.lines.first() else {
        files.remove = vec![
            l.package_index(&src.name),
            l.package_page(&src.name),
            l.package_doc(&src.name),
            l.npm_packument(&src.name),
            l.feed_package(&src.name),
            l.dependents(&src.name),
        ];
        return Ok(files);
    };
    let (lines, owners, downloads) = (&src.lines[..], &src.owners[..], &*src.downloads);
    files.docs.push(derive::package(l, lines, owners, downloads, src.meta.as_deref(), &src.origin));
    files.docs.push(derive::owners(l, &first.name, owners));
    files.docs.push(derive::dependents(l, &first.name, &src.dependents));
    files.docs.push(feed(reg, &first.name, lines));
    if let Some(key) = &reg.npm_key {
        let url = reg.config.public_url();
        let of =
            crate::npm::packument::Of { layout: l, url: &url, key, lines, owners, meta: src.meta.as_deref() };
        files.docs.extend(crate::npm::packument::packument(&of));
    }
    match scope {
        Scope::Everything => {
            lines.iter().try_for_each(|line| files.version(reg, present, src, line, Readme::Kept))?
        }
        Scope::Versions(changed) => {
            changed.iter().try_for_each(|&(line, readme)| files.version(reg, present, src, line, readme))?
        }
        Scope::Pages => {}
    }
    // The index copy last: a reader starts from a line, and finds what it
    // names (its version's document) there already.
    files.docs.push(derive::index_copy(l, &first.name, &src.file));
    Ok(files)
}

/// The package's Atom feed: its versions with a publish time, newest first.
fn feed(reg: &Registry, name: &str, lines: &[IndexLine]) -> Doc {
    let l = reg.root.layout();
    let mut dated: Vec<&IndexLine> = lines.iter().filter(|l| !l.yanked && l.pubtime.is_some()).collect();
    // Newest first; within one second, the higher version first.
    let semver = |l: &IndexLine| semver::Version::parse(&l.vers).ok();
    dated.sort_by(|a, b| b.pubtime.cmp(&a.pubtime).then_with(|| semver(b).cmp(&semver(a))));
    let entries: Vec<derive::feed::Entry> = dated
        .iter()
        .take(FEED_ENTRIES)
        .map(|line| derive::feed::Entry {
            name: &line.name,
            version: &line.vers,
            published: line.pubtime.as_deref().unwrap_or_default(),
            summary: line.description.as_deref(),
        })
        .collect();
    let title = format!("{name} on {}", reg.config.name);
    derive::feed::feed(l, &reg.config.name, l.feed_package(name), &title, &l.package_page(name), &entries)
}

/// The versions a package's feed lists.
const FEED_ENTRIES: usize = 50;

impl Files {
    /// The index copy, which [`derive`] puts last, taken off for its writer
    /// to write after the rest.
    fn take_index_copy(&mut self, reg: &Registry, src: &Sources) -> Option<Doc> {
        self.docs.pop_if(|doc| doc.key == reg.root.layout().package_index(&src.name))
    }

    /// A version's document, after its README and `readme.html` when they
    /// are to be written.
    fn version(
        &mut self,
        reg: &Registry,
        present: &impl Present,
        src: &Sources,
        line: &IndexLine,
        readme: Readme,
    ) -> Result<()> {
        let l = reg.root.layout();
        let readme_key = l.readme(&line.name, &line.vers);
        let text = match readme {
            Readme::Uploaded(text) => text.map(<[u8]>::to_vec),
            Readme::Kept if present.exists(&readme_key) => {
                // A README kept from before pages were rendered.
                if !present.exists(&l.readme_html(&line.name, &line.vers)) {
                    if let Some(text) = present.read(&readme_key)? {
                        self.push_html(line, derive::readme_html(l, line, &text));
                    }
                }
                self.docs.push(derive::version(l, line, true, &src.downloads, &src.origin));
                return Ok(());
            }
            Readme::Kept => {
                let doc = derive::version(l, line, false, &src.downloads, &src.origin);
                // A version whose document says it has no README had its
                // archive inspected already: its blob is not read again.
                let old = present.read(&doc.key)?;
                if old.as_ref() == Some(&doc.bytes) || recorded_without_readme(old.as_deref(), line) {
                    self.docs.push(doc);
                    return Ok(());
                }
                reg.readme_of(line)
            }
        };
        let has_readme = text.is_some();
        if let Some(text) = text {
            let html = derive::readme_html(l, line, &text);
            self.docs.push(Doc { key: readme_key, bytes: text });
            self.push_html(line, html);
        }
        self.docs.push(derive::version(l, line, has_readme, &src.downloads, &src.origin));
        Ok(())
    }

    /// A `readme.html`, kept for the pages too.
    fn push_html(&mut self, line: &IndexLine, html: Doc) {
        self.readmes.insert(line.vers.clone(), String::from_utf8_lossy(&html.bytes).into_owned());
        self.docs.push(html);
    }
}

/// Whether a version document (`old`, as in the root) is this line's and
/// says the archive has no README.
fn recorded_without_readme(old: Option<&[u8]>, line: &IndexLine) -> bool {
    #[derive(serde::Deserialize)]
    struct Recorded {
        sha256: String,
        readme: Option<String>,
    }
    old.and_then(|b| serde_json::from_slice::<Recorded>(b).ok())
        .is_some_and(|r| r.sha256 == line.cksum && r.readme.is_none())
}

/// The package's page and its versions' pages that `scope` covers, views
/// of the documents [`derive`] made (`readmes`, its rendered READMEs) and
/// of those in the root (other READMEs, stats, advisories): made after
/// them.
pub fn pages(
    root: &StaticRoot,
    src: &Sources,
    scope: Scope,
    readmes: HashMap<String, String>,
) -> Result<Vec<Doc>> {
    if src.lines.is_empty() {
        return Ok(Vec::new());
    }
    let (lines, only) = (&src.lines[..], scope.only());
    let extras = crate::site::package::extras(root, lines, only.as_deref(), readmes)?;
    let meta = src.meta.as_deref();
    Ok(crate::site::package::pages(
        root.layout(),
        lines,
        &src.owners,
        &src.downloads,
        meta,
        &extras,
        only.as_deref(),
        src.origin.upstream.as_deref(),
        &src.dependents,
    ))
}

/// Writes every file of the package that `scope` covers (each only if its
/// bytes changed), then its owners' pages where they have none; a package
/// left without versions loses its documents and page. Not synced: the
/// caller ends its batch with `StaticRoot::sync`.
pub fn write(reg: &Registry, conn: &Conn, src: &Sources, scope: Scope) -> Result<()> {
    write_files(reg, src, scope)?;
    write_owners_if_missing(reg, conn, src.owners.iter())?;
    follow_dependencies(reg, conn, &src.name, &src.lines)
}

/// The packages of this registry that `lines`' newest version depends on
/// (its normal dependencies; an npm scope's names as its packages).
pub fn newest_dependencies(reg: &Registry, lines: &[IndexLine]) -> Vec<String> {
    let Some(newest) = derive::latest_version(lines) else { return Vec::new() };
    let deps = newest.deps.iter().filter(|d| d.kind == "normal" && d.registry.is_none());
    let names = deps.map(|d| d.package.as_deref().unwrap_or(&d.name));
    match newest.is_npm() {
        true => names.filter_map(|n| crate::npm::package_of(reg.space.org(), n).ok()).collect(),
        false => names.map(str::to_string).collect(),
    }
}

/// Records the dependencies of `name`'s newest version (`lines`) and
/// rewrites the documents and page of each package whose dependents that
/// changed, so they are current after every write (SPEC section 19).
pub fn follow_dependencies(reg: &Registry, conn: &Conn, name: &str, lines: &[IndexLine]) -> Result<()> {
    if reg.config.read_only {
        return Ok(());
    }
    let changed = db::dependents::set(conn, &reg.space, name, &newest_dependencies(reg, lines))?;
    rewrite_dependents_of(reg, conn, changed)
}

/// The package documents and page of each package (by the name its
/// dependents give it) whose dependents changed: a local or a cached one,
/// each once however many of its dependents changed (a whole registry's
/// table made anew names a popular package once per dependent).
pub fn rewrite_dependents_of(reg: &Registry, conn: &Conn, names: Vec<String>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for name in names {
        if !seen.insert(crate::name::canonical(&name)) {
            continue;
        }
        let src = Sources::load(reg, conn, &name)?;
        if !src.lines.is_empty() {
            write_files(reg, &src, Scope::Versions(&[]))?;
        }
    }
    Ok(())
}

/// [`write`] without the owners' pages (which need the database), so a
/// group writes its packages in parallel and their owners' pages after.
pub fn write_files(reg: &Registry, src: &Sources, scope: Scope) -> Result<()> {
    let root = &reg.root;
    let mut files = derive(reg, &**root, src, scope)?;
    let pages = pages(root, src, scope, std::mem::take(&mut files.readmes))?;
    let index_copy = files.take_index_copy(reg, src);
    let written =
        files.docs.iter().chain(&pages).try_for_each(|doc| root.put_doc(&doc.key, &doc.bytes).map(drop));
    // The index copy after what its lines name, and also when that failed:
    // the commit stands, so its lines are served while the rest is retried.
    if let Some(doc) = index_copy {
        root.put_doc(&doc.key, &doc.bytes)?;
    }
    written?;
    files.remove.iter().try_for_each(|key| root.remove(key))?;
    Ok(())
}

/// The documents of every version of `src` (its package, owners and
/// version documents, no page): what a reader and a verifying client of a
/// package just cached ask for, written before the rest of its files
/// ([`write`], later). Returns how that went, and its index copy for the
/// caller to write once the log covers its lines (also when the rest
/// failed: the commit stands, so its lines are served while the rest is
/// retried).
pub fn write_documents(reg: &Registry, src: &Sources) -> (Option<Doc>, Result<()>) {
    let mut files = match derive(reg, &*reg.root, src, Scope::Everything) {
        Ok(files) => files,
        Err(e) => return (None, Err(e)),
    };
    let index_copy = files.take_index_copy(reg, src);
    let written = files.docs.iter().try_for_each(|doc| reg.root.put_doc(&doc.key, &doc.bytes).map(drop));
    (index_copy, written.map_err(Into::into))
}

/// Each owner's page (and a user's document) where it has none yet.
pub fn write_owners_if_missing<'a>(
    reg: &Registry,
    conn: &Conn,
    owners: impl IntoIterator<Item = &'a String>,
) -> Result<()> {
    owners.into_iter().try_for_each(|owner| write_owner_if_missing(reg, conn, owner))
}

/// An owner's page (and a user's document) when it has none yet, so the
/// package page's owner link answers from the first publish on. Existing
/// ones are the static job's, like the listings: as fresh as its last run.
fn write_owner_if_missing(reg: &Registry, conn: &Conn, owner: &str) -> Result<()> {
    let (root, l) = (&reg.root, reg.root.layout());
    if root.exists(&l.owner_page(owner)) {
        return Ok(());
    }
    let org = match db::org::slug_of_owner(owner) {
        Some(slug) => match db::org::find(conn, slug)? {
            // A private organisation's page is its own registry's only.
            Some(org) if !org.private || reg.space.org() == Some(org.slug.as_str()) => Some(org),
            _ => return Ok(()),
        },
        None => None,
    };
    let user = match org {
        Some(_) => None,
        None => match db::find_user(conn, owner)? {
            Some(user) => Some(user),
            None => return Ok(()),
        },
    };
    // Its packages in name order, each as the static job's snapshot has it.
    let mut owned = Vec::new();
    for name in db::owned_packages(conn, &reg.space, owner)? {
        let lines = reg.read_lines(&name)?;
        let Some(latest) = derive::latest_version(&lines).or(lines.last()).cloned() else { continue };
        let downloads = db::downloads::package_totals(conn, &reg.space, &name)?;
        let total = lines.iter().filter_map(|l| downloads.get(&l.vers)).sum::<u64>();
        let updated = lines.iter().filter_map(|l| l.pubtime.clone()).max();
        owned.push((latest, lines[0].pubtime.clone(), updated, total));
    }
    let rows: Vec<Summary> = owned.iter().map(|(l, c, u, d)| Summary::new(l, c, u, *d)).collect();
    match (org, user) {
        (Some(org), _) => {
            let page = crate::site::org(root, &org, &rows);
            root.put_doc(&page.key, &page.bytes)?;
        }
        (None, Some(user)) => {
            let doc = derive::owner::user_doc(l, &user.login, &user.created_at, &rows);
            root.put_doc(&doc.key, &doc.bytes)?;
            let page = crate::site::user(root, &user.login, &user.created_at, &rows);
            root.put_doc(&page.key, &page.bytes)?;
        }
        (None, None) => {}
    }
    Ok(())
}

/// The logins of a mirror's `owners.json` for one package.
pub fn copied_owners(root: &StaticRoot, name: &str) -> Vec<String> {
    let doc: Value = root
        .read(&root.layout().owners(name))
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let logins = doc["owners"].as_array().into_iter().flatten();
    logins.filter_map(|o| o["login"].as_str().map(String::from)).collect()
}
