//! The bare git repository that is the index's source of truth, published as
//! a dumb-HTTP clonable repository at `/index.git/`.
//!
//! A batch of changes becomes a chain of commits built in memory (a mempack
//! backend) and its new objects written as one pack file, so a group commit costs one pack
//! write, one ref update and a handful of fsyncs, and the repository never
//! holds loose objects (the dumb protocol would fetch those one by one).

use anyhow::{Context, Result};
use git2::{ObjectType, Oid, Repository, Signature, Tree};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::packs;
use super::stored::{self, Copy, BRANCH};
use crate::fsutil;

/// Handle on the index repository. Cloning shares the lock that keeps pack
/// consolidation from removing a pack while a batch reads the repository.
#[derive(Clone)]
pub struct IndexRepo {
    path: PathBuf,
    lock: Arc<Mutex<()>>,
    author: String,
    /// The authoritative copy in object storage, when the static root is
    /// there; this repository is then the node's working copy.
    copy: Option<Arc<Copy>>,
}

/// The index tree at one commit, on an open repository.
pub struct IndexSnapshot {
    repo: Repository,
    tree: Oid,
}

impl IndexSnapshot {
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        read_in_tree(&self.repo, &self.repo.find_tree(self.tree)?, path)
    }
}

/// One batch of commits in progress.
pub struct IndexTx<'r> {
    repo: &'r Repository,
    tree: Oid,
    parent: Option<Oid>,
    author: &'r str,
    commits: Vec<Oid>,
    /// Every object the batch wrote: exactly what its pack must hold.
    written: Vec<Oid>,
}

impl IndexRepo {
    /// Creates the bare repository with `config.json` as its first commit
    /// (copied to `copy` when given).
    pub fn init(path: &Path, author: &str, config_json: &[u8], copy: Option<Arc<Copy>>) -> Result<IndexRepo> {
        if let Some(copy) = &copy {
            // A new history over another registry's would lose it.
            anyhow::ensure!(
                copy.tip()?.is_none(),
                "the storage already holds a registry's index; a further node needs a copy of the first \
                 node's registry.toml and minisign.key, not `init` (SPEC section 13)"
            );
        }
        let first = |index: &IndexRepo| {
            index.write_batch(|tx| {
                tx.commit(&[("config.json", Some(config_json))], "config", &format!("Published-By: {author}"))
            })
        };
        // With its first commit, unless the storage's copy takes that.
        let shared = copy.is_some();
        create_bare(path, shared, |aside| match shared {
            true => Ok(()),
            false => first(&IndexRepo::open(aside, author, None)?).map(drop),
        })?;
        let index = IndexRepo { copy, ..IndexRepo::open(path, author, None)? };
        if shared {
            first(&index)?;
        }
        Ok(index)
    }

    /// Opens the repository; with a `copy`, first brings the local working
    /// copy (made if missing) level with it.
    pub fn open(path: &Path, author: &str, copy: Option<Arc<Copy>>) -> Result<IndexRepo> {
        if let Some(copy) = &copy {
            if !path.join("HEAD").is_file() {
                create_bare(path, true, |_| Ok(()))?;
            }
            stored::pull(copy, path)?.context("the storage holds no index repository (run `cairn init`)")?;
        }
        Repository::open_bare(path)
            .with_context(|| format!("opening the index repository at {}", path.display()))?;
        Ok(IndexRepo {
            path: path.to_path_buf(),
            lock: Arc::new(Mutex::new(())),
            author: author.to_string(),
            copy,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The commit `main` points at.
    pub fn head(&self) -> Result<Oid> {
        let repo = Repository::open_bare(&self.path)?;
        let id = repo.refname_to_id(BRANCH)?;
        Ok(id)
    }

    /// Reads one file at `main`.
    pub fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.snapshot()?.read(path)
    }

    /// `main` as it is now, for many reads on one open repository.
    pub fn snapshot(&self) -> Result<IndexSnapshot> {
        let repo = Repository::open_bare(&self.path)?;
        let tree = repo.find_commit(repo.refname_to_id(BRANCH)?)?.tree_id();
        Ok(IndexSnapshot { repo, tree })
    }

    /// Runs `f` against a transaction on top of `main`, then makes every
    /// commit it made durable and moves `main` to the last one. Returns what
    /// `f` returned and the new head (unchanged if `f` committed nothing).
    pub fn write_batch<T>(&self, f: impl FnOnce(&mut IndexTx) -> Result<T>) -> Result<(T, Oid)> {
        let _guard = self.lock.lock().unwrap();
        let repo = Repository::open_bare(&self.path)?;
        let odb = repo.odb()?;
        // New objects go to memory first; the highest priority backend takes writes.
        let mempack = odb.add_new_mempack_backend(1000)?;
        let parent = repo.refname_to_id(BRANCH).ok();
        let tree = match parent {
            Some(p) => repo.find_commit(p)?.tree_id(),
            None => repo.treebuilder(None)?.write()?,
        };
        let mut tx =
            IndexTx { repo: &repo, tree, parent, author: &self.author, commits: vec![], written: vec![] };
        let out = f(&mut tx)?;
        let Some(tip) = tx.commits.last().copied() else {
            return Ok((out, parent.unwrap_or_else(Oid::zero)));
        };

        // Only the new objects: a mempack dump would add every commit's
        // whole tree, rewriting the entire index into each pack.
        let mut builder = repo.packbuilder()?;
        builder.set_threads(1);
        let mut seen = std::collections::HashSet::new();
        for id in tx.written.iter().filter(|id| seen.insert(**id)) {
            builder.insert_object(*id, None)?;
        }
        let pack_name = packs::write_pack(&self.path, &odb, &mut builder)?;
        mempack.reset()?;
        tracing::debug!(pack = %pack_name, commits = tx.commits.len(), "index pack written");

        repo.reference(BRANCH, tip, true, "cairn")?;
        let ref_path = self.path.join(BRANCH);
        fsutil::sync_file(&ref_path)?;
        fsutil::sync_dir(ref_path.parent().unwrap())?;
        write_dumb_info(&self.path, tip)?;
        if let Some(copy) = &self.copy {
            // The commit point is the copy's ref: if it did not move, neither
            // does this one (the new pack stays, unreferenced and harmless).
            if let Err(e) = copy.push(&self.path, tip) {
                if let Some(parent) = parent {
                    repo.reference(BRANCH, parent, true, "cairn: the storage refused the commit")?;
                    write_dumb_info(&self.path, parent)?;
                }
                return Err(e.context("copying the index commit to the storage"));
            }
        }
        Ok((out, tip))
    }

    /// Whether the index has an authoritative copy elsewhere (a bucket),
    /// which several writers share.
    pub fn is_shared(&self) -> bool {
        self.copy.is_some()
    }

    /// A writer that just took the lease ([`crate::publish::lease`]):
    /// brings this copy level with the storage's (another node may have
    /// committed), then fences the storage's ref with `epoch` — a new
    /// version of the ref, so a holder that stalled past its lease cannot
    /// commit over it (its compare-and-swap names the version before).
    /// Returns whether the index moved.
    pub fn take_over(&self, epoch: i64) -> Result<bool> {
        let Some(copy) = &self.copy else {
            return Ok(false);
        };
        let _guard = self.lock.lock().unwrap();
        let before = self.head().ok();
        let tip = stored::pull(copy, &self.path)?.context("the storage lost its index")?;
        copy.fence(tip, epoch)?;
        Ok(before != Some(tip))
    }

    /// Removes what a writer killed mid-update leaves: ref lock files (which
    /// would block every later ref update) and half-written pack files.
    /// Only called with the writer lock held and no writer running.
    pub fn remove_stale_locks(&self) -> Result<()> {
        for entry in walkdir::WalkDir::new(&self.path).into_iter().flatten() {
            let name = entry.file_name().to_string_lossy();
            let in_pack_dir = entry.path().parent() == Some(&self.path.join("objects/pack"));
            let stale = name.ends_with(".lock")
                || (in_pack_dir && !(name.ends_with(".pack") || name.ends_with(".idx")));
            if entry.file_type().is_file() && stale {
                tracing::warn!(path = %entry.path().display(), "removing a leftover of an interrupted write");
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }

    /// Rewrites the dumb-protocol files from the repository as it is.
    pub fn refresh_dumb_info(&self) -> Result<()> {
        let _guard = self.lock.lock().unwrap();
        write_dumb_info(&self.path, self.head()?)
    }

    /// Merges small packs into larger ones (geometric repacking) so a clone
    /// fetches a few packs, not one per publish. Safe to call from any
    /// thread; with a copy in object storage, the bucket's packs are merged,
    /// by the writer lease's holder alone: the writer thread calls it
    /// between groups, while it holds the lease.
    pub fn consolidate_packs(&self) -> Result<()> {
        match &self.copy {
            Some(copy) => copy.consolidate(&self.path, &self.lock),
            None => packs::consolidate(&self.path, &self.lock),
        }
    }

    /// Every commit, oldest first, with its message (for fsck and rebuilds).
    pub fn history(&self) -> Result<Vec<(Oid, String)>> {
        let repo = Repository::open_bare(&self.path)?;
        let mut walk = repo.revwalk()?;
        walk.push_ref(BRANCH)?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)?;
        walk.map(|id| {
            let id = id?;
            let msg = repo.find_commit(id)?.message().unwrap_or_default().to_string();
            Ok((id, msg))
        })
        .collect()
    }

    /// Every file at `main` as (path, blob id), in tree order, and the commit.
    pub fn files(&self) -> Result<(Oid, Vec<(String, Oid)>)> {
        let repo = Repository::open_bare(&self.path)?;
        let head = repo.refname_to_id(BRANCH)?;
        let tree = repo.find_commit(head)?.tree()?;
        let mut files = Vec::new();
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() == Some(ObjectType::Blob) {
                files.push((format!("{dir}{}", entry.name().unwrap_or("")), entry.id()));
            }
            git2::TreeWalkResult::Ok
        })?;
        Ok((head, files))
    }

    /// A reader of blobs for rayon's threads.
    pub fn blobs(&self) -> Result<Blobs> {
        let handles =
            (0..rayon::current_num_threads()).map(|_| Repository::open_bare(&self.path).map(Mutex::new));
        Ok(Blobs(handles.collect::<Result<_, _>>()?))
    }

    /// The commits on `main` after `since` (those its history does not
    /// include): one walk over just them, however long the history.
    pub fn commits_after(&self, since: &str) -> Result<std::collections::HashSet<String>> {
        let repo = Repository::open_bare(&self.path)?;
        let mut walk = repo.revwalk()?;
        walk.push_ref(BRANCH)?;
        if let Ok(since) = Oid::from_str(since) {
            if repo.find_commit(since).is_ok() {
                walk.hide(since)?;
            }
        }
        walk.map(|id| Ok(id?.to_string())).collect()
    }

    /// Paths that differ between two commits' trees.
    pub fn changed_paths(&self, from: Option<Oid>, to: Oid) -> Result<Vec<String>> {
        let repo = Repository::open_bare(&self.path)?;
        let old = from.map(|f| repo.find_commit(f).and_then(|c| c.tree())).transpose()?;
        let new = repo.find_commit(to)?.tree()?;
        let diff = repo.diff_tree_to_tree(old.as_ref(), Some(&new), None)?;
        Ok(diff
            .deltas()
            .filter_map(|d| d.new_file().path().or(d.old_file().path()))
            .map(|p| p.to_string_lossy().into_owned())
            .collect())
    }
}

/// One commit of the history, as [`IndexRepo::for_each_after`] shows it.
pub struct CommitView<'r> {
    repo: &'r Repository,
    commit: git2::Commit<'r>,
}

impl CommitView<'_> {
    pub fn id(&self) -> String {
        self.commit.id().to_string()
    }

    pub fn subject(&self) -> String {
        self.commit.summary().unwrap_or_default().to_string()
    }

    /// When it was committed, unix seconds.
    pub fn time(&self) -> i64 {
        self.commit.time().seconds()
    }

    /// A file as this commit has it.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        read_in_tree(self.repo, &self.commit.tree()?, path)
    }

    /// A file as this commit's parent has it.
    pub fn read_before(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.commit.parents().next() {
            Some(parent) => read_in_tree(self.repo, &parent.tree()?, path),
            None => Ok(None),
        }
    }
}

impl IndexRepo {
    /// Calls `f` with each commit on `main` after `since` (every commit
    /// when `None`), oldest first.
    pub fn for_each_after(
        &self,
        since: Option<&str>,
        mut f: impl FnMut(&CommitView) -> Result<()>,
    ) -> Result<()> {
        let repo = Repository::open_bare(&self.path)?;
        let mut walk = repo.revwalk()?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)?;
        walk.push_ref(BRANCH)?;
        if let Some(since) = since {
            let id = Oid::from_str(since).ok().filter(|id| repo.find_commit(*id).is_ok());
            walk.hide(id.with_context(|| format!("commit {since} is not in the index history"))?)?;
        }
        for id in walk {
            f(&CommitView { repo: &repo, commit: repo.find_commit(id?)? })?;
        }
        Ok(())
    }
}

/// Reads blobs on rayon's threads in parallel: one repository handle per
/// thread, since a `Repository` must not be shared between threads.
pub struct Blobs(Vec<Mutex<Repository>>);

impl Blobs {
    /// Calls `f` with the blob's bytes.
    pub fn read<T>(&self, id: Oid, f: impl FnOnce(&[u8]) -> T) -> Result<T> {
        let slot = rayon::current_thread_index().unwrap_or(0) % self.0.len();
        let repo = self.0[slot].lock().expect("a blob read panicked");
        let blob = repo.find_blob(id)?;
        Ok(f(blob.content()))
    }
}

impl IndexTx<'_> {
    /// Reads a file as the batch has it so far.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let tree = self.repo.find_tree(self.tree)?;
        read_in_tree(self.repo, &tree, path)
    }

    /// One commit: sets (`Some`) or removes (`None`) each file, with the
    /// message's subject and trailer (`Published-By: {login}`, or an
    /// upstream's `Upstream: {name}`).
    pub fn commit(&mut self, files: &[(&str, Option<&[u8]>)], subject: &str, trailer: &str) -> Result<Oid> {
        let mut tree = self.tree;
        for (path, content) in files {
            let blob = content.map(|c| self.repo.blob(c)).transpose()?;
            self.written.extend(blob);
            let comps: Vec<&str> = path.split('/').collect();
            let base = self.repo.find_tree(tree)?;
            tree = match update_tree(self.repo, Some(&base), &comps, blob, &mut self.written)? {
                Some(t) => t,
                None => {
                    let empty = self.repo.treebuilder(None)?.write()?;
                    self.written.push(empty);
                    empty
                }
            };
        }
        let now = git2::Time::new(chrono::Utc::now().timestamp(), 0);
        let sig = Signature::new(self.author, "registry@cairn.invalid", &now)?;
        let message = format!("{subject}\n\n{trailer}\n");
        let parents: Vec<git2::Commit> =
            self.parent.iter().map(|p| self.repo.find_commit(*p)).collect::<Result<_, _>>()?;
        let parent_refs: Vec<&git2::Commit> = parents.iter().collect();
        let tree_obj = self.repo.find_tree(tree)?;
        let id = self.repo.commit(None, &sig, &sig, &message, &tree_obj, &parent_refs)?;
        self.tree = tree;
        self.parent = Some(id);
        self.commits.push(id);
        self.written.push(id);
        Ok(id)
    }
}

/// Creates the bare repository at `path`, filled by `fill`, aside and
/// renamed into place whole: a kill midway leaves a temporary directory the
/// next start removes, never half a repository that no later `init` or
/// `open` gets past. What an interrupted creation by an earlier version
/// left at `path` is removed: a directory without `HEAD`, or (`shared`)
/// any local working copy of a storage that holds no index yet.
fn create_bare(path: &Path, shared: bool, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = path.parent().context("the index repository's path has a parent")?;
    std::fs::create_dir_all(parent)?;
    let aside = fsutil::temp_path(parent);
    let made = Repository::init_opts(
        &aside,
        git2::RepositoryInitOptions::new().bare(true).initial_head("main").no_reinit(true),
    )
    .with_context(|| format!("creating the index repository at {}", path.display()))
    .and_then(|_| fill(&aside))
    .and_then(|()| Ok(fsutil::sync_filesystem(&aside)?));
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&aside);
        return Err(e);
    }
    if path.exists() {
        anyhow::ensure!(
            shared || !path.join("HEAD").is_file(),
            "an index repository exists at {} already",
            path.display()
        );
        tracing::warn!(path = %path.display(), "removing a leftover of an interrupted creation");
        std::fs::remove_dir_all(path)?;
    }
    std::fs::rename(&aside, path).with_context(|| format!("moving the new index to {}", path.display()))?;
    Ok(fsutil::sync_dir(parent)?)
}

/// `info/refs` and `objects/info/packs`, which the dumb HTTP protocol reads
/// first; rewritten after every ref move or pack change.
fn write_dumb_info(repo: &Path, tip: Oid) -> Result<()> {
    fsutil::write_atomic(&repo.join("info/refs"), format!("{tip}\t{BRANCH}\n").as_bytes())?;
    packs::write_info_packs(repo)
}

fn read_in_tree(repo: &Repository, tree: &Tree, path: &str) -> Result<Option<Vec<u8>>> {
    match tree.get_path(Path::new(path)) {
        Ok(entry) => Ok(Some(repo.find_blob(entry.id())?.content().to_vec())),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Rewrites the trees along `comps` with the leaf set to `blob` (or removed),
/// dropping directories that become empty. Returns the new tree id, `None`
/// when the tree became empty. New tree ids are added to `written`.
fn update_tree(
    repo: &Repository,
    base: Option<&Tree>,
    comps: &[&str],
    blob: Option<Oid>,
    written: &mut Vec<Oid>,
) -> Result<Option<Oid>> {
    let mut tb = repo.treebuilder(base)?;
    let (first, rest) = comps.split_first().expect("path has a component");
    let child = if rest.is_empty() {
        blob.map(|b| (b, 0o100644))
    } else {
        let sub = match base.and_then(|t| t.get_name(first)) {
            Some(e) if e.kind() == Some(ObjectType::Tree) => Some(repo.find_tree(e.id())?),
            _ => None,
        };
        update_tree(repo, sub.as_ref(), rest, blob, written)?.map(|t| (t, 0o040000))
    };
    match child {
        Some((id, mode)) => {
            tb.insert(first, id, mode)?;
        }
        None => {
            if tb.get(first)?.is_some() {
                tb.remove(first)?;
            }
        }
    }
    if tb.is_empty() {
        return Ok(None);
    }
    let id = tb.write()?;
    written.push(id);
    Ok(Some(id))
}
