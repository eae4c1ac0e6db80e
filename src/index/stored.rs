//! The index repository's copy in object storage (SPEC section 13): the
//! bucket's `index.git/` is the authoritative repository, laid out as git's
//! dumb HTTP protocol reads it (packs, `objects/info/packs`, `info/refs`,
//! `HEAD`, the branch's ref), so a CDN in front of the bucket serves clones.
//! The node's own repository (in its data directory) is a working copy:
//! [`pull`] brings it level with the bucket at start, and after each local
//! commit [`Copy::push`] uploads the new packs and then the ref — the ref's
//! PUT is the commit point, so the bucket never names a commit whose
//! objects it lacks. That PUT is a compare-and-swap against the ref as this
//! node last saw it: a node whose view is old (another writer committed
//! since) cannot move the ref, so the history stays linear.
//!
//! The lease holder merges the bucket's small packs between groups
//! ([`Copy::consolidate`], the local repository's rule): the merged pack is
//! uploaded, its parts are listed in `objects/info/retired` with the time
//! (from then on no node counts, downloads or lists them) and deleted from
//! the bucket after `RETIRE_AFTER`, as long as a CDN may serve a pack list
//! that names them. [`pull`] drops the local packs the bucket no longer
//! lists, so no node uploads a retired pack again.

use anyhow::{Context, Result};
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::packs;
use crate::fsutil;
use crate::layout::StaticRoot;

pub const BRANCH: &str = "refs/heads/main";
/// The bucket's list of retired packs, relative to the repository.
const RETIRED: &str = "objects/info/retired";

/// Where a repository's commits are copied to, and which packs are there.
pub struct Copy {
    root: Arc<StaticRoot>,
    /// The bucket's packs as this node knows them (listed once, then kept).
    stored: Mutex<Option<Listing>>,
    /// The version tag of the bucket's ref as this node last read or wrote it.
    ref_tag: Mutex<Option<String>>,
    /// `HEAD` written by this process.
    head_written: std::sync::atomic::AtomicBool,
}

/// The bucket's packs, and the retired ones with the unix second they
/// retired (`objects/info/retired`), read together.
struct Listing {
    packs: HashSet<String>,
    retired: Vec<(String, u64)>,
}

/// The bucket's ref moved since this node last saw it: another writer
/// committed. Nothing was committed here.
#[derive(Debug)]
pub struct Moved;

impl std::fmt::Display for Moved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("another writer moved the index in the storage since this node last read it")
    }
}

impl std::error::Error for Moved {}

impl Copy {
    pub fn new(root: Arc<StaticRoot>) -> Copy {
        Copy { root, stored: Mutex::default(), ref_tag: Mutex::default(), head_written: Default::default() }
    }

    fn key(&self, rel: &str) -> String {
        format!("{}/{rel}", self.root.layout().index_git())
    }

    /// Uploads every local pack the bucket lacks (the pack before its
    /// index: a pack is used once its index is there), moves the bucket's
    /// ref to `tip` (the commit point), then rewrites the dumb protocol's
    /// files: the pack list (the bucket's packs, which a node's working copy
    /// all has once it pulled), `info/refs` and `HEAD`. Nothing shared is
    /// written before the ref moved: a writer whose view is old fails there
    /// having added only packs nothing names. (A writer stopped between its
    /// ref and these files, then woken after another's commit, writes them
    /// one commit behind until the next commit rewrites them; nodes never
    /// read them, they list the packs.)
    pub fn push(&self, repo: &Path, tip: git2::Oid) -> Result<()> {
        let mut stored = self.stored.lock().unwrap();
        let stored = match &mut *stored {
            Some(s) => &mut s.packs,
            none => &mut none.insert(self.list_stored()?).packs,
        };
        let live = local_packs(&repo.join("objects/pack"))?;
        let mut new: Vec<&String> = live.iter().filter(|n| !stored.contains(*n)).collect();
        new.sort();
        // A new pack and its index in flight together, both stored before
        // the ref that needs their objects moves.
        for name in &new {
            for ext in ["pack", "idx"] {
                let rel = format!("objects/pack/{name}.{ext}");
                let bytes = std::fs::read(repo.join(&rel)).with_context(|| format!("reading {rel}"))?;
                self.root.put_new_unanswered(&self.key(&rel), &bytes)?;
            }
        }
        self.root.sync()?;
        stored.extend(new.into_iter().cloned());
        self.move_ref(&format!("{tip}\n"))?;
        self.write_pack_list(stored)?;
        self.root.put(&self.key("info/refs"), format!("{tip}\t{BRANCH}\n").as_bytes())?;
        // Once a process: it never changes.
        if !self.head_written.load(std::sync::atomic::Ordering::Relaxed) {
            self.root.put_durable(&self.key("HEAD"), format!("ref: {BRANCH}\n").as_bytes())?;
            self.head_written.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    /// The bucket's packs: those with an index there, less the retired.
    /// The retired list is read first: a pack retired by then has its
    /// merged pack uploaded already, so the listing after has it; and a
    /// pack deleted by then had left that list only after its deletion.
    /// (Listing first, a merge or a deletion in between would leave a
    /// retired pack's objects, or a deleted pack, counted.)
    fn list_stored(&self) -> Result<Listing> {
        let retired = self.retired()?;
        let names = self.root.list(&self.key("objects/pack"))?;
        let packs = names
            .iter()
            .filter_map(|n| n.strip_suffix(".idx"))
            .filter(|n| !retired.iter().any(|(r, _)| r == n))
            .map(str::to_string)
            .collect();
        Ok(Listing { packs, retired })
    }

    /// `objects/info/retired`: packs merged into another, with the unix
    /// second they retired.
    fn retired(&self) -> Result<Vec<(String, u64)>> {
        let Some(text) = self.root.read(&self.key(RETIRED))? else {
            return Ok(Vec::new());
        };
        Ok(String::from_utf8_lossy(&text)
            .lines()
            .filter_map(|l| {
                let (name, at) = l.split_once(' ')?;
                Some((name.to_string(), at.parse().ok()?))
            })
            .collect())
    }

    fn write_retired(&self, retired: &[(String, u64)]) -> Result<()> {
        let text: String = retired.iter().map(|(n, at)| format!("{n} {at}\n")).collect();
        // Durable before any pack it names is deleted (a later call).
        Ok(self.root.put_durable(&self.key(RETIRED), text.as_bytes())?)
    }

    /// Merges the bucket's small packs (the writer lease's holder, between
    /// groups; the local working copy `repo` has every pack the bucket
    /// lists): the merged pack is uploaded before its parts are retired,
    /// so every object is always in a listed pack; retired packs past
    /// `RETIRE_AFTER` are deleted, index first.
    pub fn consolidate(&self, repo: &Path, lock: &Mutex<()>) -> Result<()> {
        let mut listing = self.stored.lock().unwrap();
        let Some(Listing { packs: stored, retired }) = listing.as_mut() else { return Ok(()) };
        let sizes =
            stored.iter().map(|n| Ok((n.clone(), packs::object_count(repo, n)?))).collect::<Result<_>>()?;
        let merge = packs::merge_set(sizes);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
        if !merge.is_empty() {
            let new = packs::merge_packs(repo, &merge)?;
            for ext in ["pack", "idx"] {
                let rel = format!("objects/pack/{new}.{ext}");
                let bytes = std::fs::read(repo.join(&rel)).with_context(|| format!("reading {rel}"))?;
                self.root.put_new(&self.key(&rel), &bytes)?;
            }
            stored.insert(new.clone());
            let gone: Vec<String> = merge.into_iter().filter(|n| *n != new).collect();
            for name in &gone {
                stored.remove(name);
                retired.push((name.clone(), now));
            }
            self.write_retired(retired)?;
            self.write_pack_list(stored)?;
            // The working copy keeps only what the bucket lists.
            let _guard = lock.lock().unwrap();
            remove_local(repo, &gone)?;
            packs::write_info_packs(repo)?;
        }
        let due = packs::RETIRE_AFTER.as_secs();
        let (expired, kept): (Vec<_>, Vec<_>) = retired.iter().cloned().partition(|(_, at)| now >= at + due);
        if !expired.is_empty() {
            for (name, _) in &expired {
                for ext in ["idx", "pack"] {
                    self.root.remove(&self.key(&format!("objects/pack/{name}.{ext}")))?;
                }
            }
            // Out of the list once deleted (a failure above keeps them listed to retry).
            *retired = kept;
            self.write_retired(retired)?;
        }
        // The pack list's PUT, answered here rather than at the next group's sync.
        Ok(self.root.sync()?)
    }

    /// The dumb protocol's pack list: the bucket's packs.
    fn write_pack_list(&self, stored: &HashSet<String>) -> Result<()> {
        let mut names: Vec<&String> = stored.iter().collect();
        names.sort();
        let list: String = names.iter().map(|n| format!("P {n}.pack\n")).collect::<String>() + "\n";
        Ok(self.root.put(&self.key("objects/info/packs"), list.as_bytes())?)
    }

    /// Rewrites the ref (same commit) with the lease's epoch, as its
    /// holder's own version: see [`crate::index::IndexRepo::take_over`].
    pub fn fence(&self, tip: git2::Oid, epoch: i64) -> Result<()> {
        self.move_ref(&format!("{tip}\nlease-epoch {epoch}\n"))
    }

    /// The compare-and-swap of the bucket's ref to `content`.
    fn move_ref(&self, content: &str) -> Result<()> {
        let mut tag = self.ref_tag.lock().unwrap();
        let swapped = self.root.swap(&self.key(BRANCH), content.as_bytes(), tag.as_deref())?;
        match swapped {
            Some(new) => {
                *tag = Some(new);
                Ok(())
            }
            None => Err(Moved.into()),
        }
    }

    /// The commit the bucket's ref names, if the bucket holds an index;
    /// the ref's version is remembered for the next [`Copy::push`].
    pub fn tip(&self) -> Result<Option<git2::Oid>> {
        let mut tag = self.ref_tag.lock().unwrap();
        let Some((text, now)) = self.root.read_tagged(&self.key(BRANCH))? else {
            *tag = None;
            return Ok(None);
        };
        *tag = Some(now);
        // git reads a ref's first word; later lines are ours (the lease epoch).
        let text = String::from_utf8_lossy(&text);
        let first = text.split_whitespace().next().unwrap_or_default();
        Ok(Some(git2::Oid::from_str(first).context("the bucket's index ref")?))
    }
}

/// Brings the local repository at `repo` level with the bucket: downloads
/// the packs it lacks and moves its ref to the bucket's. Returns the
/// bucket's tip, `None` when the bucket holds no index yet.
pub fn pull(copy: &Copy, repo: &Path) -> Result<Option<git2::Oid>> {
    let Some(tip) = copy.tip()? else {
        return Ok(None);
    };
    let have = local_packs(&repo.join("objects/pack"))?;
    // The bucket's packs as listed by the store, not by the dumb protocol's
    // list (which may lag a commit: see `push`).
    let listed = copy.list_stored()?;
    let mut missing: Vec<&String> = listed.packs.iter().filter(|n| !have.contains(*n)).collect();
    missing.sort();
    for name in missing {
        for ext in ["pack", "idx"] {
            let rel = format!("objects/pack/{name}.{ext}");
            let bytes = copy
                .root
                .read(&copy.key(&rel))?
                .with_context(|| format!("the bucket lists {rel} but lacks it"))?;
            fsutil::write_atomic(&repo.join(&rel), &bytes)?;
        }
    }
    // Packs the bucket does not list: retired by a merge (their objects
    // are in the merged pack, downloaded above), or of a commit that never
    // reached the bucket.
    let extra: Vec<String> = have.into_iter().filter(|n| !listed.packs.contains(n)).collect();
    remove_local(repo, &extra)?;
    *copy.stored.lock().unwrap() = Some(listed);
    let git = git2::Repository::open_bare(repo)?;
    git.find_commit(tip).with_context(|| format!("the bucket's index names {tip}, which its packs lack"))?;
    if git.refname_to_id(BRANCH).ok() != Some(tip) {
        git.reference(BRANCH, tip, true, "cairn: level with the bucket")?;
        fsutil::sync_file(&repo.join(BRANCH))?;
    }
    fsutil::write_atomic(&repo.join("info/refs"), format!("{tip}\t{BRANCH}\n").as_bytes())?;
    packs::write_info_packs(repo)?;
    Ok(Some(tip))
}

/// Removes packs from the working copy, the index first (without it git
/// does not see the pack).
fn remove_local(repo: &Path, names: &[String]) -> Result<()> {
    for name in names {
        for ext in ["idx", "pack"] {
            let path = repo.join(format!("objects/pack/{name}.{ext}"));
            if let Err(e) = std::fs::remove_file(&path) {
                anyhow::ensure!(e.kind() == std::io::ErrorKind::NotFound, "removing {}: {e}", path.display());
            }
        }
    }
    if !names.is_empty() {
        fsutil::sync_dir(&repo.join("objects/pack"))?;
    }
    Ok(())
}

/// Pack names (without extension) with an index in `dir`.
fn local_packs(dir: &Path) -> Result<HashSet<String>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(HashSet::new());
    };
    let mut names = HashSet::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".idx") {
            names.insert(stem.to_string());
        }
    }
    Ok(names)
}
