//! The leaves of the index history: one per logged commit (its subject's
//! verb is a log action), computed from the commit alone, so the writer,
//! recovery and fsck all get the same leaves.

use anyhow::{bail, Context, Result};

use super::leaf::{parse_subject, Leaf};
use crate::index::{meta, package_path, IndexRepo};

/// The leaves of the commits after `since` (all when `None`), oldest first.
pub fn leaves_after(index: &IndexRepo, since: Option<&str>) -> Result<Vec<Leaf>> {
    let mut leaves = Vec::new();
    index.for_each_after(since, |c| {
        let subject = c.subject();
        let Some((action, target, version)) = parse_subject(&subject) else {
            return Ok(());
        };
        let commit = c.id();
        if action == "cache" {
            // An entry per line the upstream's file added or changed.
            let path = package_path(target);
            let file = c.read(&path)?.with_context(|| format!("{commit} ({subject}): {path} is missing"))?;
            let before = c.read_before(&path)?;
            for raw in cached_lines(before.as_deref(), &file) {
                leaves.push(Leaf::of_line(action, raw, &commit)?);
            }
            return Ok(());
        }
        let leaf = match (action, version) {
            ("advisory", None) => {
                let path = format!("advisories/{target}.json");
                let osv = c.read(&path)?.with_context(|| format!("{commit}: {path} is missing"))?;
                Leaf::of_file(action, target, &osv, &commit)
            }
            // The meta file it wrote, or for an undo the one it removed.
            ("deprecate" | "undeprecate", None) => {
                let path = meta::path(target);
                let file = if action == "deprecate" { c.read(&path)? } else { c.read_before(&path)? };
                let file = file.with_context(|| format!("{commit} ({subject}): {path} is missing"))?;
                Leaf::of_file(action, target, &file, &commit)
            }
            // A whole package: the index file it removed, every line in it.
            ("delete", None) => {
                let path = package_path(target);
                let file = c
                    .read_before(&path)?
                    .with_context(|| format!("{commit} ({subject}): {path} is missing"))?;
                Leaf::of_file(action, target, &file, &commit)
            }
            (_, Some(version)) => {
                let path = package_path(target);
                // A delete's line is in the file before it.
                let file = if action == "delete" { c.read_before(&path)? } else { c.read(&path)? };
                let raw = file
                    .as_deref()
                    .and_then(|f| line_of(f, version))
                    .with_context(|| format!("{commit} ({subject}): no line for {target} {version}"))?;
                Leaf::of_line(action, raw, &commit)?
            }
            _ => bail!("{commit}: cannot log {subject:?}"),
        };
        leaves.push(leaf);
        Ok(())
    })?;
    Ok(leaves)
}

/// The lines (raw, no newline) of a cached package's index file `after`
/// that its file `before` did not have byte for byte, in file order: the
/// log entries of a `cache` commit (the writer counts them before it commits).
pub fn cached_lines<'f>(before: Option<&[u8]>, after: &'f [u8]) -> Vec<&'f [u8]> {
    // Blank lines are no lines, as `upstream::parse` reads the file.
    let lines = |f: &'f [u8]| f.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace));
    let old: std::collections::HashSet<&[u8]> =
        before.map(|b| b.split(|c| *c == b'\n').collect()).unwrap_or_default();
    lines(after).filter(|l| !old.contains(l)).collect()
}

/// The raw line (no newline) of `version` in an index file.
pub fn line_of<'f>(file: &'f [u8], version: &str) -> Option<&'f [u8]> {
    file.split(|b| *b == b'\n')
        .find(|raw| serde_json::from_slice::<crate::index::IndexLine>(raw).is_ok_and(|l| l.vers == version))
}
