//! The web site (SPEC section 11): static HTML pages in the static root,
//! rendered with maud from the documents the API serves, so no server
//! code renders a page. Each page is a function returning a [`Doc`]; the
//! writers below read the documents a page shows from the static root and
//! are what both the write groups and the jobs call:
//! - a package's pages ([`package::write`]): by the group that changed the
//!   package, the static job, the stats job (new counts, through the static
//!   job) and the advisories job (packages whose advisories changed);
//! - home and status ([`write_home`]): with `recent.json` and `health.json`;
//! - stats ([`write_stats`]) and advisories ([`write_advisories`]): by their jobs,
//!   and with the fixed pages; user pages by the static job with `users/{login}.json`;
//! - the assets, the script-driven pages, stats and advisories ([`write_fixed`]):
//!   at init, at each server start and by the static job.

pub mod assets;
mod chart;
mod frame;
pub mod package;
mod pages;
pub mod proposals;

use serde_json::Value;

pub use pages::Row;

use crate::derive::owner::Summary;
use crate::derive::Doc;
use crate::derive::Recent;
use crate::layout::StaticRoot;

fn put_all(root: &StaticRoot, docs: impl IntoIterator<Item = Doc>) -> std::io::Result<()> {
    for doc in docs {
        root.put_doc(&doc.key, &doc.bytes)?;
    }
    Ok(())
}

fn read_json(root: &StaticRoot, key: &str) -> std::io::Result<Value> {
    Ok(root.read(key)?.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null))
}

/// The pages every registry has from `init` on, so no link of the header
/// ever answers 404: the assets, the search, account and device pages, the
/// 404 page, and `/stats` and `/advisories` (which say "no data yet" until
/// their jobs have written something). The sign-in page has a button per
/// OpenID provider of `sign_in`.
pub fn write_fixed(root: &StaticRoot, sign_in: &[String]) -> std::io::Result<()> {
    let l = root.layout();
    put_all(root, assets::docs(l).into_iter().chain(pages::fixed(l, sign_in)))?;
    write_stats(root)?;
    write_advisories(root)
}

/// The home page (recent publishes, totals, most downloaded from
/// `stats.json`) and the status page (`health`).
pub fn write_home(root: &StaticRoot, recent: &[Recent], health: &Value) -> std::io::Result<()> {
    let l = root.layout();
    let stats = read_json(root, &l.stats())?;
    let rows: Vec<Row> = recent
        .iter()
        .take(20)
        .map(|r| Row {
            name: &r.name,
            version: &r.version,
            description: None,
            note: frame::day(&r.published_at).into(),
        })
        .collect();
    let n = |k: &str| health[k].as_u64().unwrap_or(0);
    put_all(root, [pages::home(l, &rows, &stats, n("packages"), n("versions")), pages::status(l, health)])
}

/// `/stats`, from `stats.json`.
pub fn write_stats(root: &StaticRoot) -> std::io::Result<()> {
    let l = root.layout();
    put_all(root, [pages::stats(l, &read_json(root, &l.stats())?)])
}

/// `/advisories`, from `advisories/all.json`.
pub fn write_advisories(root: &StaticRoot) -> std::io::Result<()> {
    let l = root.layout();
    put_all(root, [pages::advisories(l, &read_json(root, &l.advisories_all())?)])
}

/// `/u/{login}`: a user's packages, as their rows.
pub fn user(root: &StaticRoot, login: &str, since: &str, packages: &[Summary]) -> Doc {
    pages::user(root.layout(), login, since, &rows(packages))
}

/// `/o/{slug}`.
pub fn org(root: &StaticRoot, org: &crate::db::org::Org, packages: &[Summary]) -> Doc {
    pages::org(root.layout(), &org.slug, &org.name, &org.created_at, &rows(packages))
}

fn rows<'a>(packages: &'a [Summary<'a>]) -> Vec<Row<'a>> {
    let row = |p: &'a Summary<'a>| Row {
        name: p.name,
        version: p.latest_version,
        description: p.description.as_deref(),
        note: String::new(),
    };
    packages.iter().map(row).collect()
}
