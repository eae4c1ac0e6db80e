//! One package's files in the static root, derived from its sources of
//! truth. [`Sources::load`] is the one loader (the index's lines and `meta/`
//! file, the owners and download totals in the database); [`write`] the one
//! derivation from them: the index copy, the package, owners and version
//! documents, the READMEs, the package's and versions' pages, the pages of
//! owners that have none yet, and ([`Sources::delta`]) its search delta
//! entry. A write group, the retry of its effects, recovery (and so
//! `cairn fsck --repair` and the static job's pass over private registries)
//! and the advisories job all call it; the static job makes the same files
//! from its snapshot with the same `derive` and `site` functions.

use anyhow::Result;
use serde_json::Value;

use crate::db::{self, Conn};
use crate::derive::{self, owner::Summary, Downloads};
use crate::index::{IndexLine, Meta};
use crate::layout::StaticRoot;
use crate::registry::Registry;
use crate::search::DeltaEntry;

/// What one package's files are derived from.
pub struct Sources {
    /// As the index spells it (else as asked for: a package with no line).
    pub name: String,
    /// Its index file as the index holds it (what the static copy serves).
    pub file: Vec<u8>,
    /// Its index lines; none once every version was hard-deleted.
    pub lines: Vec<IndexLine>,
    pub owners: Vec<String>,
    pub downloads: Downloads,
    pub meta: Option<Meta>,
    pub origin: derive::Origin,
}

impl Sources {
    /// A package as the index and the database have it now.
    pub fn load(reg: &Registry, conn: &Conn, name: &str) -> Result<Sources> {
        let lines = reg.read_lines(name)?;
        Sources::with_lines(reg, conn, name, lines)
    }

    /// The same, with the lines already read (a group's new file). A
    /// mirror's owners are the source's, as it copied them.
    pub fn with_lines(reg: &Registry, conn: &Conn, name: &str, lines: Vec<IndexLine>) -> Result<Sources> {
        Ok(Sources {
            file: reg.index.read_file(&crate::index::package_path(name))?.unwrap_or_default(),
            name: lines.first().map_or(name, |l| l.name.as_str()).to_string(),
            owners: match reg.config.read_only {
                true => copied_owners(&reg.root, name),
                false => db::owners(conn, &reg.space, name)?,
            },
            downloads: db::downloads::package_totals(conn, &reg.space, name)?,
            meta: reg.read_meta(name)?,
            origin: origin(conn, reg, name)?,
            lines,
        })
    }

    /// Downloads of the versions it has.
    pub fn total(&self) -> u64 {
        self.lines.iter().filter_map(|l| self.downloads.get(&l.vers)).sum()
    }

    /// Its search delta entry, as of index commit `commit`.
    pub fn delta(&self, commit: &str) -> DeltaEntry {
        let deprecated = !self.lines.is_empty() && self.meta.as_ref().is_some_and(Meta::is_deprecated);
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

/// A version a write group changed, with the README its upload carried.
pub type Changed<'a> = (&'a IndexLine, Option<&'a [u8]>);

/// Which versions' own files a [`write`] makes.
pub enum Scope<'a> {
    /// Every version's document and page, its README read again from its
    /// blob: recovery and the retry of a failed group.
    Everything,
    /// These versions' documents and pages, each with the README its upload
    /// carried (none: a yank, which keeps the README there): a write group.
    Versions(&'a [Changed<'a>]),
    /// No version document, but every page (they show the owners, the
    /// deprecation and the advisories): a change of those.
    Pages,
}

/// Writes every file of the package that `scope` covers (each only if its
/// bytes changed), then its owners' pages where they have none; a package
/// left without versions loses its documents and page. Not synced: the
/// caller ends its batch with `StaticRoot::sync`.
pub fn write(reg: &Registry, conn: &Conn, src: &Sources, scope: Scope) -> Result<()> {
    write_files(reg, src, scope)?;
    write_owners_if_missing(reg, conn, &src.owners)
}

/// [`write`] without the owners' pages (which need the database), so a
/// group writes its packages in parallel and their owners' pages after.
pub fn write_files(reg: &Registry, src: &Sources, scope: Scope) -> Result<()> {
    let root = &reg.root;
    if src.lines.is_empty() {
        return Ok(derive::remove_package(root, &src.name)?);
    }
    let (lines, owners, downloads, meta) = (&src.lines, &src.owners, &src.downloads, src.meta.as_ref());
    derive::write_package(root, &src.file, lines, owners, downloads, meta, &src.origin)?;
    // The READMEs rendered here, by version: the pages show them, unread.
    let mut known = std::collections::HashMap::new();
    let mut version = |line: &IndexLine, readme: Option<&[u8]>| -> Result<()> {
        if let Some(html) = derive::write_version(root, line, readme, downloads, &src.origin)? {
            known.insert(line.vers.clone(), String::from_utf8_lossy(&html).into_owned());
        }
        Ok(())
    };
    let only: Option<Vec<&str>> = match scope {
        Scope::Everything => {
            for line in lines {
                version(line, reg.readme_of(line).as_deref())?;
            }
            None
        }
        Scope::Versions(changed) => {
            for (line, readme) in changed {
                version(line, *readme)?;
            }
            Some(changed.iter().map(|(l, _)| l.vers.as_str()).collect())
        }
        Scope::Pages => None,
    };
    // The pages last: they show the READMEs and documents written above.
    Ok(crate::site::package::write(root, lines, owners, downloads, meta, only.as_deref(), known)?)
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
