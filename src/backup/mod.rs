//! `cairn backup` (SPEC section 20): one consistent snapshot of what is not
//! derived, taken while the server runs, laid out as the data directory
//! is (so a restore is a copy, then the derived files made again:
//! `restore.rs`).
//!
//! Consistency: under every registry's writer lock (the public one, then
//! each private organisation's) no write group runs, so the index's head,
//! the log's entries, the published checkpoint and the database's rows
//! agree. What changes in place or is replaced there (the database,
//! through SQLite's online backup; the log's files; `index.git`; the
//! published log) is copied under the locks; blobs never change once
//! written, so only their list is taken there and they are copied after
//! the locks are let go. Everything is written into `OUT.tmp-{pid}`,
//! flushed (one `syncfs`), and renamed to `OUT` last: a backup killed
//! midway leaves no `OUT`, and the next one removes its leftovers.

mod restore;

pub use restore::restore;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::config::{Config, StorageKind};
use crate::index::RETIRED_DIR;
use crate::layout::Layout;
use crate::registry::Registry;

/// The backup's own file, written last: which commits it holds.
pub const MANIFEST: &str = "manifest.json";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: u32,
    pub created_at: String,
    /// Each registry's index commit: `""` the public one, else an organisation's slug.
    pub commits: std::collections::BTreeMap<String, String>,
    /// `sqlite` (in the backup) or `postgres` (backed up by its own tools).
    pub database: String,
    /// The backup whose blobs this one leaves out (`--since`), absolute.
    pub since: Option<PathBuf>,
    /// Blobs and signatures copied into this backup.
    pub blob_files: usize,
}

/// One registry's part of the data directory, relative to it: its log's
/// directory and its static root's prefix.
struct Part {
    label: String,
    log_dir: PathBuf,
    layout: Layout,
}

/// Writes the backup of the registry in `data` to `out`.
pub fn backup(data: &Path, out: &Path, since: Option<&Path>) -> Result<Manifest> {
    let config = Config::load(data)?;
    if config.storage.kind != StorageKind::Fs {
        bail!("the static root is in a bucket: back it up with the bucket's own versioning or replication");
    }
    anyhow::ensure!(!out.exists(), "{} exists already", out.display());
    let since = match since {
        Some(p) => Some(std::fs::canonicalize(p).with_context(|| format!("--since {}", p.display()))?),
        None => None,
    };
    if let Some(prev) = &since {
        read_manifest(prev)?;
    }
    let postgres = config.database.url.is_some();
    if postgres {
        eprintln!("the state database is Postgres: back it up with its own tools (pg_dump); this backup holds the rest");
    }
    let reg = Registry::open(data, config)?;
    let conn = reg.db()?;
    let privates = reg.private_registries(&conn)?;
    drop(conn);
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = out.file_name().context("OUT names no directory")?.to_string_lossy().into_owned();
    remove_leftovers(parent, &name);
    let tmp = parent.join(format!("{name}.tmp-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;

    let mut parts = Vec::new();
    for r in std::iter::once(&reg).chain(&privates) {
        let log_dir = crate::log::dir(r.data.strip_prefix(data)?);
        let label = r.space.org().unwrap_or_default().to_string();
        parts.push(Part { label, log_dir, layout: r.root.layout().clone() });
    }
    // Under every writer lock: what changes in place, and the list of
    // what never changes once written (blobs, git packs).
    let (commits, packs, mut blobs) = {
        let _locks: Vec<std::fs::File> =
            std::iter::once(&reg).chain(&privates).map(Registry::lock_writer).collect::<Result<_>>()?;
        let mut commits = std::collections::BTreeMap::new();
        for (part, r) in parts.iter().zip(std::iter::once(&reg).chain(&privates)) {
            commits.insert(part.label.clone(), r.index.head()?.to_string());
        }
        if !postgres {
            sqlite_backup(&data.join("state.db"), &tmp.join("state.db"))?;
        }
        let (mut packs, mut blobs) = (Vec::new(), Vec::new());
        for part in &parts {
            copy_tree(&data.join(&part.log_dir), &tmp.join(&part.log_dir), &|_| true)?;
            let log = Path::new("static").join(part.layout.log_dir());
            copy_tree(&data.join(&log), &tmp.join(&log), &|_| true)?;
            // Retired packs are left out; live ones are copied after the locks.
            let git = Path::new("static").join(part.layout.index_git());
            let is_pack = |f: &Path| f.starts_with("objects/pack");
            copy_tree(&data.join(&git), &tmp.join(&git), &|f| !is_pack(f) && !f.starts_with(RETIRED_DIR))?;
            let pack_dir = git.join("objects/pack");
            packs.extend(list_files(&data.join(&pack_dir))?.into_iter().map(|f| pack_dir.join(f)));
            // Another registry's files below this one's prefix are its own part.
            let dir = Path::new("static").join(part.layout.blobs_dir());
            blobs.extend(list_files(&data.join(&dir))?.into_iter().map(|f| dir.join(f)));
        }
        (commits, packs, blobs)
    };
    // Blobs never change: those `--since` holds are left out.
    blobs.retain(|b| since.as_ref().is_none_or(|prev| !in_chain(prev, b)));
    packs.par_iter().chain(&blobs).try_for_each(|rel| copy_unchanging(data, &tmp, rel))?;
    // The operator's files, which no write changes.
    for file in ["registry.toml", crate::registry::KEY_FILE] {
        std::fs::copy(data.join(file), tmp.join(file)).with_context(|| format!("copying {file}"))?;
    }
    copy_tree(&data.join("upstreams"), &tmp.join("upstreams"), &|_| true)?;
    let manifest = Manifest {
        format: 1,
        created_at: crate::db::now(),
        commits,
        database: if postgres { "postgres" } else { "sqlite" }.into(),
        since,
        blob_files: blobs.len(),
    };
    std::fs::write(tmp.join(MANIFEST), serde_json::to_vec_pretty(&manifest)?)?;
    crate::fsutil::sync_filesystem(&tmp)?;
    std::fs::rename(&tmp, out)?;
    crate::fsutil::sync_dir(parent)?;
    Ok(manifest)
}

/// Copies a file that never changes once written, listed under the locks:
/// a pack a consolidation retired since is in its retired directory; a
/// blob gone was hard-deleted since, and the backup is refused.
fn copy_unchanging(data: &Path, tmp: &Path, rel: &Path) -> Result<()> {
    let to = tmp.join(rel);
    std::fs::create_dir_all(to.parent().expect("a file is in a directory"))?;
    let retired = || -> Option<PathBuf> {
        let git = rel.parent()?.parent()?.parent()?;
        let file = rel.file_name()?;
        rel.starts_with(git.join("objects/pack")).then(|| data.join(git).join(RETIRED_DIR).join(file))
    };
    match std::fs::copy(data.join(rel), &to) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match retired() {
            Some(from) => {
                std::fs::copy(&from, &to).map(drop).with_context(|| format!("copying {}", rel.display()))
            }
            None => {
                bail!("{} was deleted during the backup (a hard delete): run the backup again", rel.display())
            }
        },
        Err(e) => Err(e).with_context(|| format!("copying {}", rel.display())),
    }
}

/// A backup's manifest: a directory without one is no backup.
pub fn read_manifest(backup: &Path) -> Result<Manifest> {
    let path = backup.join(MANIFEST);
    let bytes =
        std::fs::read(&path).with_context(|| format!("{} is no backup (no {MANIFEST})", backup.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))
}

/// Whether `rel` is in the backup `prev` or in those it was taken `--since`.
fn in_chain(prev: &Path, rel: &Path) -> bool {
    let mut at = Some(prev.to_path_buf());
    while let Some(b) = at {
        if b.join(rel).is_file() {
            return true;
        }
        at = read_manifest(&b).ok().and_then(|m| m.since);
    }
    false
}

/// The directories of backups of `name` that were killed midway.
fn remove_leftovers(parent: &Path, name: &str) {
    let prefix = format!("{name}.tmp-");
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// SQLite's online backup in one step: a read transaction on the source,
/// so the copy is the database as one moment has it.
fn sqlite_backup(from: &Path, to: &Path) -> Result<()> {
    use rusqlite::OpenFlags;
    let src = rusqlite::Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    src.busy_timeout(std::time::Duration::from_secs(10))?;
    let mut dst = rusqlite::Connection::open(to)?;
    let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
    for _ in 0..100 {
        match backup.step(-1)? {
            rusqlite::backup::StepResult::Done => return Ok(()),
            _ => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
    bail!("the state database stayed busy: no backup taken")
}

/// The files under `dir`, relative to it (none if it is absent).
fn list_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    if !dir.is_dir() {
        return Ok(files);
    }
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry?;
        if entry.file_type().is_file() && !entry.file_name().to_string_lossy().starts_with(".tmp-") {
            files.push(entry.path().strip_prefix(dir)?.to_path_buf());
        }
    }
    Ok(files)
}

/// Copies the files under `from` that `keep` takes (by path relative to
/// `from`) to `to`, leaving temporaries out; nothing when `from` is absent.
fn copy_tree(from: &Path, to: &Path, keep: &dyn Fn(&Path) -> bool) -> Result<()> {
    let files: Vec<PathBuf> = list_files(from)?.into_iter().filter(|f| keep(f)).collect();
    files.par_iter().try_for_each(|rel| -> Result<()> {
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().expect("a file is in a directory"))?;
        std::fs::copy(from.join(rel), &dest)
            .with_context(|| format!("copying {}", from.join(rel).display()))?;
        Ok(())
    })
}
