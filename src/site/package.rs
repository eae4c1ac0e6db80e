//! The package page (`/p/{name}`, the latest version) and each version's
//! page (`/p/{name}/{version}`): one view of one index line, with the
//! package's versions, owners, downloads and advisories around it. The
//! inputs beyond the index lines are the documents the static root holds
//! already (`readme.html`, `stats.json`, `advisories.json`), so publish and
//! rebuild render the same bytes from the same files.

use maud::{html, Markup, PreEscaped};
use serde_json::Value;
use std::collections::HashMap;

use super::chart;
use super::frame::{count, day, page, size};
use crate::db::dependents::Dependents;
use crate::derive::{latest_version, Doc, Downloads};
use crate::index::{IndexLine, Meta};
use crate::layout::{page_url, url, Layout, StaticRoot};

/// The versions listed on a page; older ones are in the package document.
const LISTED_VERSIONS: usize = 100;

/// What a package's pages show beyond its index lines and owners.
/// The dependents a package page lists.
const LISTED_DEPENDENTS: usize = 20;

#[derive(Default)]
pub struct Extras {
    /// Rendered READMEs by version.
    readmes: HashMap<String, String>,
    /// The 90-day series of `stats.json` (empty before the stats job ran).
    daily: Vec<(String, u64)>,
    advisories: Vec<Advisory>,
}

struct Advisory {
    id: String,
    summary: String,
    affected: Vec<String>,
}

/// Reads a package's extras from the static root: the READMEs of its
/// latest version and of those in `only` (all when `None`), but those in
/// `known` (rendered READMEs by version, just written), with its stats and
/// advisories, in one [`StaticRoot::read_many`].
pub fn extras(
    root: &StaticRoot,
    lines: &[IndexLine],
    only: Option<&[&str]>,
    known: HashMap<String, String>,
) -> std::io::Result<Extras> {
    let l = root.layout();
    let name = &lines[0].name;
    let latest = latest_version(lines).or(lines.last()).map(|l| l.vers.as_str());
    let wanted = |v: &str| Some(v) == latest || only.is_none_or(|only| only.contains(&v));
    let unknown: Vec<&str> =
        lines.iter().map(|l| l.vers.as_str()).filter(|v| wanted(v) && !known.contains_key(*v)).collect();
    let mut keys: Vec<String> = unknown.iter().map(|v| l.readme_html(name, v)).collect();
    keys.extend([l.package_stats(name), l.package_advisories(name)]);
    let mut read = root.read_many(&keys)?;
    let json = |bytes: Option<Vec<u8>>| -> Value {
        bytes.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null)
    };
    let advisories = json(read.pop().flatten());
    let daily = chart::series(&json(read.pop().flatten()));
    let mut readmes = known;
    for (vers, html) in unknown.into_iter().zip(read) {
        if let Some(html) = html {
            readmes.insert(vers.to_string(), String::from_utf8_lossy(&html).into_owned());
        }
    }
    let advisories = advisories["advisories"].as_array().into_iter().flatten();
    let advisories = advisories
        .map(|a| Advisory {
            id: a["id"].as_str().unwrap_or_default().to_string(),
            summary: a["summary"].as_str().or(a["details"].as_str()).unwrap_or_default().to_string(),
            affected: a["affected_versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
        })
        .collect();
    Ok(Extras { readmes, daily, advisories })
}

/// A package's pages: `/p/{name}` and the page of each version in `only`
/// (every version when `None`); `upstream`: the registry a cached package
/// comes from (SPEC section 16), which they name.
#[allow(clippy::too_many_arguments)]
pub fn pages(
    l: &Layout,
    lines: &[IndexLine],
    owners: &[String],
    downloads: &Downloads,
    meta: Option<&Meta>,
    extras: &Extras,
    only: Option<&[&str]>,
    upstream: Option<&str>,
    dependents: &Dependents,
) -> Vec<Doc> {
    let mut versions: Vec<&IndexLine> = lines.iter().collect();
    versions.sort_by_key(|l| std::cmp::Reverse(semver::Version::parse(&l.vers).ok()));
    let meta = meta.filter(|m| m.is_deprecated());
    let view = View { l, versions: &versions, owners, downloads, meta, extras, upstream, dependents };
    let latest = latest_version(lines).or(lines.last()).expect("a package has versions");
    let mut docs = vec![Doc { key: l.package_page(&latest.name), bytes: view.render(latest, false) }];
    for line in lines.iter().filter(|line| only.is_none_or(|only| only.contains(&line.vers.as_str()))) {
        docs.push(Doc { key: l.version_page(&line.name, &line.vers), bytes: view.render(line, true) });
    }
    docs
}

struct View<'a> {
    l: &'a Layout,
    /// Newest first.
    versions: &'a [&'a IndexLine],
    owners: &'a [String],
    downloads: &'a Downloads,
    /// Its deprecation, if it is deprecated.
    meta: Option<&'a Meta>,
    extras: &'a Extras,
    upstream: Option<&'a str>,
    dependents: &'a Dependents,
}

impl View<'_> {
    fn render(&self, line: &IndexLine, version_page: bool) -> Vec<u8> {
        let name = &line.name;
        let title = if version_page { format!("{name} {}", line.vers) } else { name.clone() };
        let total: u64 =
            self.versions.iter().map(|v| self.downloads.get(&v.vers).copied().unwrap_or(0)).sum();
        let affecting: Vec<&Advisory> =
            self.extras.advisories.iter().filter(|a| a.affected.contains(&line.vers)).collect();
        let main = html! {
            h1 { (name) span.version { (line.vers) } }
            @if let Some(d) = &line.description { p.lede { (d) } }
            @if let Some(m) = self.meta {
                p.notice role="note" {
                    strong { "Deprecated: " } (m.deprecated.as_deref().unwrap_or_default())
                    @if let Some(r) = &m.replacement {
                        " Use " a href=(page_url(&self.l.package_page(r))) { (r) } " instead."
                    }
                }
            }
            @if let Some(u) = self.upstream {
                p.notice role="note" {
                    "Cached from the upstream registry " strong { (u) } ": its index lines and crates, served by this registry, each crate checked against its line, signed and logged here."
                }
            }
            @if let Some(p) = &line.provenance {
                p.provenance {
                    "Published from " strong { (p.summary()) }
                    " (" (p.git_ref) ", run " (p.run_id)
                    @if let Some(e) = &p.environment { ", environment " (e) }
                    ") through trusted publishing; the index line records it and the transparency log binds it."
                }
            }
            @if line.yanked {
                p.notice role="note" { "Version " (line.vers) " is yanked: new resolutions skip it; lockfiles that pin it still work." }
            }
            @if version_page {
                p { a href=(page_url(&self.l.package_page(name))) { "The package's latest version" } }
            }
            @for a in &affecting {
                div.advisory role="note" {
                    strong { (a.id) } " affects this version. " (a.summary)
                    " " a href="/advisories" { "All advisories" }
                }
            }
            div.columns {
                div {
                    (self.install(line, version_page))
                    section aria-labelledby="readme-h" {
                        h2 #readme-h { "README" }
                        @match self.extras.readmes.get(&line.vers) {
                            Some(html) => div.readme { (PreEscaped(html)) },
                            None => p { "This version has no README." },
                        }
                    }
                    @if version_page { (self.other_versions(line)) } @else {
                        (self.versions_table(line)) (self.proposals(line)) (self.dependents_list(name))
                    }
                    (self.dependencies(line))
                }
                aside aria-label="About this package" {
                    (self.facts(line, total))
                }
            }
            section aria-labelledby="downloads-h" {
                h2 #downloads-h { "Downloads, last 90 days" }
                (chart::daily("downloads", "Downloads", &self.extras.daily))
            }
        };
        let scripts: &[&str] = if version_page { &[] } else { &["app"] };
        page(self.l, &title, scripts, main)
    }

    /// Proposals are database rows (SPEC section 19): the package page
    /// links to their pages, and its script lists the open ones here.
    fn proposals(&self, line: &IndexLine) -> Markup {
        html! {
            section aria-labelledby="proposals-h" {
                h2 #proposals-h { "Proposals" }
                p { "A signed-in user may propose a change to a file of this package; its owners merge proposals into a new version. "
                    a href=(page_url(&self.l.proposals_page(&line.name))) { "Proposals and the form to propose a change" } "." }
                ul.proposals #package-proposals data-package=(line.name) data-api=(super::frame::api_base(self.l)) {}
            }
        }
    }

    fn install(&self, line: &IndexLine, pinned: bool) -> Markup {
        let (name, vers) = (&line.name, &line.vers);
        let req = if pinned { format!("={vers}") } else { vers.clone() };
        if line.is_npm() {
            // npm's door: the public registry's, or the organisation's scope registry.
            let npm_name = self.l.npm_name(name);
            let door = url(&self.l.npm_dir());
            return html! {
                section aria-labelledby="install-h" {
                    h2 #install-h { "Install" }
                    p.snippet { "With npm (this registry's npm door, " code { (door) "/" } ", as the registry"
                        @if let Some(org) = self.l.org_slug() { " of " code { "@" (org) } } "):" }
                    pre { code { "npm install " (npm_name) "@" (vers) } }
                }
            };
        }
        html! {
            section aria-labelledby="install-h" {
                h2 #install-h { "Install" }
                p.snippet { "With cairn:" }
                pre { code { "cairn install " (name) "@" (req) } }
                p.snippet { "With cargo (this registry configured as " code { "cairn" } "):" }
                pre { code { "cargo add " (name) "@" (req) " --registry cairn" } }
            }
        }
    }

    /// A version page links to the list on the package page: with the
    /// list (or anything else about the other versions) on it, every
    /// publish would rewrite every version page of the package.
    /// The packages whose newest version depends on it, most downloaded first.
    fn dependents_list(&self, name: &str) -> Markup {
        let d = self.dependents;
        html! {
            @if d.total > 0 {
                section aria-labelledby="dependents-h" {
                    h2 #dependents-h { "Dependents (" (d.total) ")" }
                    ul.dependents { @for (n, _) in d.listed.iter().take(LISTED_DEPENDENTS) {
                        li { a href=(page_url(&self.l.package_page(n))) { (n) } }
                    } }
                    @if d.total > LISTED_DEPENDENTS {
                        p { "The first " (d.listed.len()) " are in "
                            a href=(url(&self.l.dependents(name))) { "its dependents document" } "." }
                    }
                }
            }
        }
    }

    fn other_versions(&self, current: &IndexLine) -> Markup {
        let package = page_url(&self.l.package_page(&current.name));
        html! {
            section aria-labelledby="versions-h" {
                h2 #versions-h { "Versions" }
                p { "All versions of " (current.name) ", newest first with yanked ones marked, are on "
                    a href={ (package) "#versions-h" } { "the package page" } "." }
            }
        }
    }

    fn versions_table(&self, current: &IndexLine) -> Markup {
        let l = self.l;
        let shown = self.versions.iter().take(LISTED_VERSIONS);
        html! {
            section aria-labelledby="versions-h" {
                h2 #versions-h { "Versions (" (self.versions.len()) ")" }
                table {
                    thead { tr {
                        th scope="col" { "Version" } th scope="col" { "Published" }
                        th.num scope="col" { "Size" } th.num scope="col" { "Downloads" }
                    } }
                    tbody {
                        @for v in shown {
                            tr class=[v.yanked.then_some("is-yanked")] {
                                td {
                                    a href=(page_url(&l.version_page(&v.name, &v.vers)))
                                        aria-current=[(v.vers == current.vers).then_some("page")] { (v.vers) }
                                    @if v.yanked { " " span.tag.yanked { "yanked" } }
                                }
                                td { (v.pubtime.as_deref().map(day).unwrap_or("")) }
                                td.num { (size(v.size)) }
                                td.num { (count(self.downloads.get(&v.vers).copied().unwrap_or(0))) }
                            }
                        }
                    }
                }
                @if self.versions.len() > LISTED_VERSIONS {
                    p { "Older versions are listed in the "
                        a href=(url(&l.package_doc(&current.name))) { "package document" } "." }
                }
                p { a href=(url(&l.feed_package(&current.name))) type="application/atom+xml" { "Atom feed" } " of its versions" }
            }
        }
    }

    fn dependencies(&self, line: &IndexLine) -> Markup {
        html! {
            section aria-labelledby="deps-h" {
                h2 #deps-h { "Dependencies of " (line.vers) }
                @if line.deps.is_empty() {
                    p { "None." }
                } @else {
                    table {
                        thead { tr { th scope="col" { "Package" } th scope="col" { "Requirement" } th scope="col" { "Kind" } } }
                        tbody {
                            @for d in &line.deps {
                                @let real = d.package.as_deref().unwrap_or(&d.name);
                                tr {
                                    td {
                                        @if d.registry.is_none() {
                                            a href=(page_url(&self.l.package_page(real))) { (real) }
                                        } @else { (real) " (another registry)" }
                                    }
                                    td { code { (d.req) } }
                                    td { (d.kind) @if d.optional { ", optional" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn facts(&self, line: &IndexLine, total: u64) -> Markup {
        let l = self.l;
        let blob = url(&l.blob(&line.cksum));
        html! {
            dl {
                dt { "Downloads" } dd { (count(total)) " in all" }
                @if let Some(kind) = &line.kind { dt { "Kind" } dd { (kind) } }
                @if let Some(license) = &line.license { dt { "License" } dd { (license) } }
                @if let Some(repo) = line.repository.as_deref().filter(|r| r.starts_with("https://") || r.starts_with("http://")) {
                    dt { "Repository" } dd { a href=(repo) rel="nofollow noopener ugc" { (repo) } }
                }
                @if let Some(t) = &line.pubtime { dt { "Published" } dd { time datetime=(t) { (day(t)) } } }
                dt { "Owners" }
                dd {
                    @for (i, o) in self.owners.iter().enumerate() {
                        @if i > 0 { ", " }
                        a href=(page_url(&l.owner_page(o))) { (o) }
                    }
                }
                @if !line.keywords.is_empty() { dt { "Keywords" } dd { (line.keywords.join(", ")) } }
                dt { "SHA-256" } dd { code { (line.cksum) } }
                dt { "BLAKE3" } dd { code { (line.blake3) } }
                dt { "Files" }
                dd {
                    a href=(blob) { "Tarball" } " (" (size(line.size)) ", " (line.fmt) "), "
                    a href={ (blob) ".minisig" } { "signature" } ", "
                    a href=(url(&l.version_doc(&line.name, &line.vers))) { "JSON" }
                    @if let Some(i) = line.log_index { ", log entry " (i) }
                }
            }
        }
    }
}
