//! A package's proposal pages (SPEC section 19, rendered by
//! `site::proposals`): the list, with the form starting from the newest
//! version's `SKILL.md` (else `README.md`), and a changed proposal's page
//! with its diff. Proposals change without an index commit, so the server
//! writes these after each proposal change ([`write`]); a publish's write
//! group writes the list with the upload's archive in hand ([`published`],
//! no blob read back); the static job where they are missing (a package
//! published before proposals existed). Also the reading of a stored
//! version's files that they and the server's proposal handlers share.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::archive::rewrite;
use crate::db::{proposals, Conn};
use crate::index::IndexLine;
use crate::registry::Registry;
use crate::site::proposals::{list, one, Draft};

/// One writer at a time in a process, so pages read from the rows in one
/// order land in it.
static WRITING: Mutex<()> = Mutex::new(());

/// Writes the package's list page, and the page of `changed`: the newest
/// version's files read from its blob.
pub fn write(reg: &Registry, conn: &Conn, name: &str, changed: Option<i64>) -> Result<()> {
    let _one = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    let lines = reg.read_lines(name)?;
    let Some(latest) = newest(&lines) else { return Ok(()) };
    let files = files(reg, latest)?;
    let all = list_page(reg, conn, latest, &files)?;
    if let Some(p) = changed.and_then(|id| all.iter().find(|p| p.id == id)) {
        let base = match lines.iter().find(|l| l.vers == p.base_version) {
            Some(line) => text(&files_of_other(reg, line, latest, &files)?, &p.path)?,
            None => String::new(),
        };
        let diff = crate::merge::unified_diff(&p.path, &base, &p.content);
        let page = one(reg.root.layout(), &latest.name, p, &diff);
        reg.root.put_doc(&page.key, &page.bytes)?;
    }
    Ok(())
}

/// The list page after a publish of `line` (`lines`: the package's after
/// it), from the upload's `archive`: when it is the newest version of a
/// package that takes proposals. Not synced: the group's sync is.
pub fn published(
    reg: &Registry,
    conn: &Conn,
    lines: &[IndexLine],
    line: &IndexLine,
    archive: &[u8],
) -> Result<()> {
    let takes = !line.is_npm() && !reg.config.read_only;
    if !takes || newest(lines).is_none_or(|l| l.vers != line.vers) {
        return Ok(());
    }
    let files = rewrite::read(archive, &prefix(line))?;
    let _one = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    list_page(reg, conn, line, &files).map(drop)
}

/// Writes the list page of `latest`'s package, its form starting from
/// `files` (`latest`'s); returns the proposals it lists.
fn list_page(
    reg: &Registry,
    conn: &Conn,
    latest: &IndexLine,
    files: &BTreeMap<String, rewrite::File>,
) -> Result<Vec<proposals::Proposal>> {
    let all = proposals::list(conn, &reg.space, &latest.name, None)?;
    let texts: Vec<(&str, String)> =
        files.keys().filter_map(|path| Some((path.as_str(), text(files, path).ok()?))).collect();
    let start = ["SKILL.md", "README.md"]
        .iter()
        .find_map(|want| texts.iter().find(|(path, _)| path == want))
        .or(texts.first());
    let draft = start.map(|(path, content)| Draft {
        version: &latest.vers,
        paths: texts.iter().map(|(p, _)| *p).collect(),
        path,
        content,
    });
    let page = list(reg.root.layout(), &latest.name, &all, draft.as_ref());
    reg.root.put_doc(&page.key, &page.bytes)?;
    Ok(all)
}

/// The package's name when its list page is missing and it takes
/// proposals: an npm package does not (npm publishes it), nor a mirror's
/// (it keeps no rows).
pub fn missing(reg: &Registry, lines: &[IndexLine]) -> Option<String> {
    let latest = newest(lines)?;
    let has = reg.root.exists(&reg.root.layout().proposals_page(&latest.name));
    (!latest.is_npm() && !reg.config.read_only && !has).then(|| latest.name.clone())
}

/// The version's files, reusing those of `latest` when it is that one.
fn files_of_other(
    reg: &Registry,
    line: &IndexLine,
    latest: &IndexLine,
    latest_files: &BTreeMap<String, rewrite::File>,
) -> Result<BTreeMap<String, rewrite::File>> {
    match line.vers == latest.vers {
        true => Ok(latest_files.clone()),
        false => files(reg, line),
    }
}

/// The files of a stored version, by path, from its blob.
pub fn files(reg: &Registry, line: &IndexLine) -> Result<BTreeMap<String, rewrite::File>> {
    let bytes = reg
        .store
        .read(&line.cksum)?
        .with_context(|| format!("the blob of {} {} is missing", line.name, line.vers))?;
    rewrite::read(&bytes, &prefix(line))
}

/// The newest version: the greatest that is not yanked.
pub fn newest(lines: &[IndexLine]) -> Option<&IndexLine> {
    lines
        .iter()
        .filter(|l| !l.yanked)
        .filter_map(|l| Some((semver::Version::parse(&l.vers).ok()?, l)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, l)| l)
}

/// An archive's directory: npm's `package/`, else `{name}-{version}/`.
pub fn prefix(line: &IndexLine) -> String {
    match line.is_npm() {
        true => "package".into(),
        false => format!("{}-{}", line.name, line.vers),
    }
}

/// A file of a version as text: empty when the version lacks it (a
/// proposal may add a file), an error when it is not UTF-8.
pub fn text(files: &BTreeMap<String, rewrite::File>, path: &str) -> Result<String> {
    match files.get(path) {
        None => Ok(String::new()),
        Some(f) => String::from_utf8(f.data.clone())
            .map_err(|_| anyhow::anyhow!("`{path}` is not UTF-8 text: proposals change text files")),
    }
}
