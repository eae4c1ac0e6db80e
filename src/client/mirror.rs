//! `cairn mirror SOURCE DIR`: makes DIR a read-only copy of a registry that
//! `cairn serve --data DIR` serves.
//!
//! ```text
//! DIR/registry.toml           read_only = true, name = the source's name (written last the first time)
//! DIR/static/index.git        bare clone of {source}/index.git (git over dumb HTTP), fetched again later;
//!                             or of a git remote the source pushes its index to (`--index-remote`)
//! DIR/static/index/           the tree of its `main`
//! DIR/static/blobs/sha256/    every blob and .minisig, each verified with the pinned key before it lands
//! DIR/static/minisign.pub     the source's key
//! ```
//!
//! A second run fetches new commits and only the blobs it lacks; an
//! interrupted run resumes (a blob lands with temp + fsync + rename, its
//! signature after it, and a blob counts as present only with both). The
//! checkout of `static/index/` is written after the blobs and derived files
//! of a change, so an interrupted run redoes that change next time.

use anyhow::{anyhow, bail, Context, Result};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use super::remote::Remote;
use super::trust::Trust;
use super::verify::Expected;
use crate::fsutil::write_atomic;
use crate::index::IndexLine;
use crate::layout::Layout;
use crate::layout::StaticRoot;
use crate::store::BlobStore;

#[derive(Debug, Default)]
pub struct MirrorSummary {
    pub packages: usize,
    pub versions: usize,
    pub fetched_blobs: usize,
    pub present_blobs: usize,
    /// Blobs of versions the source serves from an upstream but has not
    /// fetched yet: not copied (the mirror copies what its source holds).
    pub uncached_blobs: usize,
    pub changed_files: usize,
    /// The key of the witness the mirror keeps of its source, if asked.
    pub witness_key: Option<String>,
}

/// How `mirror` runs.
pub struct Options<'a> {
    /// Where the mirror will be served; its `index/config.json` then points
    /// `dl` and `api` there (index.git keeps the source's commits).
    pub public_url: Option<&'a str>,
    /// Concurrent downloads.
    pub jobs: usize,
    /// The mirror also witnesses its source's log (a key named so, made on
    /// first use; `cairn serve` on the mirror then answers the source's
    /// `add-checkpoint`).
    pub witness: Option<&'a str>,
    /// A git remote of the source's index (`[index] remotes`) to fetch the
    /// index from instead of `{source}/index.git`: any URL `git fetch`
    /// takes. Everything else still comes from the source over HTTP, and the
    /// log check of step 4 proves the remote's lines are the source's.
    pub index_remote: Option<&'a str>,
}

pub async fn mirror(source: &str, dir: &Path, options: &Options<'_>) -> Result<MirrorSummary> {
    let Options { public_url, jobs, witness, index_remote } = *options;
    let remote = Remote::new(source, None)?;
    let config = remote.connect(false).await?;
    let trust = Trust { pubkey: config.pubkey.clone(), name: config.name.clone() };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // DIR/registry.toml: the mirror's own, or an operator's written first
    // (a `[storage]` bucket, say) that becomes the mirror's.
    let existing = std::fs::read_to_string(dir.join("registry.toml")).ok();
    let here: crate::config::Config = match &existing {
        Some(text) => toml::from_str(text).context("reading DIR/registry.toml")?,
        None => crate::config::Config::default(),
    };
    if existing.is_some() && crate::registry::Registry::exists(dir) {
        if !here.read_only {
            bail!("{} holds a registry that is not a mirror; refusing to overwrite it", dir.display());
        }
        if here.name != config.name {
            bail!("{} mirrors the registry `{}`, not `{}`", dir.display(), here.name, config.name);
        }
    }
    let (root, git_dir, copy) = crate::registry::storage(dir, &here)?;
    let l = root.layout().clone();
    if let Some(local) = root.local_path("") {
        crate::fsutil::remove_stale_temps(&local);
    }

    // 1. The index repository (and its copy in the storage, if not here).
    let index_url = match index_remote {
        Some(url) => url.to_string(),
        None => remote.url_of(&l.index_git()),
    };
    sync_git(&index_url, &git_dir)?;
    if let Some(copy) = &copy {
        let tip = git2::Repository::open_bare(&git_dir)?.refname_to_id(crate::index::stored::BRANCH)?;
        copy.tip()?; // the ref's version, for the compare-and-swap
        copy.push(&git_dir, tip)?;
    }
    let tree = read_tree(&git_dir)?;

    // 2. What changed against the checkout, and every blob the index names.
    let mut changed = Vec::new();
    let mut wanted: BTreeMap<String, Expected> = BTreeMap::new();
    let mut summary = MirrorSummary::default();
    let mut packages: BTreeMap<String, Vec<IndexLine>> = BTreeMap::new();
    for (path, bytes) in &tree {
        if root.read(&l.index_file(path))?.as_deref() != Some(&bytes[..]) {
            changed.push(path.clone());
        }
        if path == "config.json"
            || path.starts_with("advisories/")
            || path.starts_with(crate::index::meta::DIR)
            || path.starts_with('.')
        {
            continue;
        }
        let lines = IndexLine::parse_file(bytes).with_context(|| format!("parsing index file {path}"))?;
        summary.packages += 1;
        summary.versions += lines.len();
        for l in &lines {
            wanted.entry(l.cksum.clone()).or_insert_with(|| Expected::from_line(l));
        }
        packages.insert(path.clone(), lines);
    }
    summary.changed_files = changed.len();

    // 3. Missing blobs, concurrently, each verified before it lands.
    let store = BlobStore::new(root.clone());
    let missing: Vec<Expected> = wanted.values().filter(|e| !store.exists(&e.sha256)).cloned().collect();
    summary.present_blobs = wanted.len() - missing.len();
    let bar = super::progress::bar(missing.len() as u64, "mirroring");
    let sem = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let mut tasks = FuturesUnordered::new();
    for want in &missing {
        let (sem, bar, store, remote, config, trust) = (&sem, &bar, &store, &remote, &config, &trust);
        tasks.push(async move {
            let _permit = sem.acquire().await.expect("semaphore open");
            let got = remote.download_if_cached(Some(config), trust, want).await?;
            bar.inc(1);
            let Some((bytes, sig)) = got else { return Ok::<_, anyhow::Error>(false) };
            let (store, sha) = (store.clone(), want.sha256.clone());
            tokio::task::spawn_blocking(move || store.put(&sha, &bytes, &sig)).await??;
            Ok(true)
        });
    }
    while let Some(r) = tasks.next().await {
        match r? {
            true => summary.fetched_blobs += 1,
            false => summary.uncached_blobs += 1,
        }
    }
    bar.finish_and_clear();
    // The blobs become durable together before the index that names them.
    root.sync()?;

    // 4. The source's log, checked for every line (a cached line by the
    // entry its version document names) and copied byte for byte.
    let all_lines: Vec<IndexLine> = packages.values().flatten().cloned().collect();
    let raws: Vec<Vec<u8>> = packages
        .keys()
        .flat_map(|path| tree[path].split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)))
        .map(<[u8]>::to_vec)
        .collect();
    super::log::mirror(&remote, &config, &all_lines, &raws, root.clone()).await?;
    let cached = cached_versions(&remote, &all_lines).await?;

    // 5. The key, derived files, then the checkout of what changed.
    let pub_url = remote.url_of(&l.minisign_pub());
    let pub_file = remote.http.required(&pub_url).await?;
    let pub_file = String::from_utf8(pub_file).with_context(|| format!("{pub_url} is not text"))?;
    if !pub_file.lines().any(|l| l.trim() == config.pubkey) {
        bail!("{pub_url} does not hold the key config.json names");
    }
    root.put_durable(&l.minisign_pub(), pub_file.as_bytes())?;
    let changed_packages: Vec<&Vec<IndexLine>> = changed.iter().filter_map(|p| packages.get(p)).collect();
    copy_owners(&remote, &root, &changed_packages).await?;
    let in_tree: BTreeSet<&String> = tree.keys().collect();
    for path in &changed {
        root.put_durable(&l.index_file(path), &tree[path])?;
    }
    for rel in root.list_all(&l.index_dir())? {
        if !in_tree.contains(&rel) && !rel.split('/').any(|c| c.starts_with('.')) {
            root.remove(&l.index_file(&rel))?;
        }
    }
    // Written once, and again when a public URL is given (the static
    // rebuild below points config.json's `dl` and `api` at it); an
    // operator's file keeps its other settings.
    if !here.read_only || public_url.is_some() {
        let mut toml: toml_edit::DocumentMut = match &existing {
            Some(text) => text.parse().context("reading DIR/registry.toml")?,
            None => format!("# A read-only mirror of {}, made by `cairn mirror`.\n", remote.url).parse()?,
        };
        toml["name"] = toml_edit::value(&config.name);
        toml["read_only"] = toml_edit::value(true);
        if let Some(url) = public_url {
            toml["public_url"] = toml_edit::value(url);
        }
        write_atomic(&dir.join("registry.toml"), toml.to_string().as_bytes())?;
    }
    // Every derived document, as the source's jobs would write it.
    let data = dir.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let reg = crate::registry::Registry::open(&data, crate::config::Config::load(&data)?)?;
        record_cached(&reg, &cached)?;
        let options = crate::jobs::Options::default();
        crate::jobs::rebuild(&reg, crate::jobs::Job::Static, &options)?;
        crate::jobs::rebuild(&reg, crate::jobs::Job::Search, &options)?;
        Ok(())
    })
    .await??;
    if let Some(name) = witness {
        let log = config.log.as_ref().context("the source keeps no transparency log to witness")?;
        let w = crate::log::witness::Witness::open(
            &crate::log::witness::Witness::mirror_dir(dir),
            name,
            std::slice::from_ref(&log.key),
        )?;
        summary.witness_key = Some(w.vkey());
    }
    Ok(summary)
}

/// Clones `url` as a bare mirror into `git_dir`, or fetches into it.
fn sync_git(url: &str, git_dir: &Path) -> Result<()> {
    let git = |args: &[&str]| -> Result<()> {
        let out = Command::new("git")
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .context("running git (is it installed?)")?;
        if !out.status.success() {
            bail!("git {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    };
    let gd = git_dir.to_str().context("the mirror path is not UTF-8")?;
    if git_dir.join("HEAD").is_file() {
        git(&["--git-dir", gd, "fetch", "--quiet", "--prune", url, "+refs/heads/*:refs/heads/*"])?;
    } else {
        // Clone beside the target and rename: an interrupted clone is redone.
        let parent = git_dir.parent().expect("has a parent");
        let tmp = parent.join(format!(".tmp-index.git-{}", std::process::id()));
        for e in std::fs::read_dir(parent)?.flatten() {
            if e.file_name().to_string_lossy().starts_with(".tmp-index.git-") {
                std::fs::remove_dir_all(e.path())?;
            }
        }
        git(&["clone", "--quiet", "--mirror", url, tmp.to_str().context("path is not UTF-8")?])?;
        std::fs::rename(&tmp, git_dir)?;
    }
    git(&["--git-dir", gd, "update-server-info"])
}

/// Every file of `main`'s tree: path → bytes.
fn read_tree(git_dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let repo = git2::Repository::open_bare(git_dir)?;
    let commit = repo.find_reference("refs/heads/main")?.peel_to_commit()?;
    let tree = commit.tree()?;
    let mut out = BTreeMap::new();
    let mut err = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |root, entry| {
        if entry.kind() == Some(git2::ObjectType::Blob) {
            let path = format!("{root}{}", entry.name().unwrap_or_default());
            if path.split('/').any(|c| c.is_empty() || c == "." || c == ".." || c.starts_with('.')) {
                err = Some(anyhow!("the index holds an unsafe path `{path}`"));
                return git2::TreeWalkResult::Abort;
            }
            match repo.find_blob(entry.id()) {
                Ok(b) => {
                    out.insert(path, b.content().to_vec());
                }
                Err(e) => {
                    err = Some(e.into());
                    return git2::TreeWalkResult::Abort;
                }
            }
        }
        git2::TreeWalkResult::Ok
    })?;
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Copies the owners documents of the packages that changed: owners live in
/// the source's database, which a mirror does not have, so these copies are
/// the mirror's record of them (the static rebuild reads them back).
async fn copy_owners(remote: &Remote, root: &StaticRoot, changed: &[&Vec<IndexLine>]) -> Result<()> {
    for lines in changed {
        let Some(first) = lines.first() else { continue };
        let doc = remote.static_json(&root.layout().owners(&first.name)).await.ok().flatten();
        let owners: Vec<String> = doc
            .and_then(|d| d["owners"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|o| o["login"].as_str().or(o.as_str()).map(str::to_string))
            .collect();
        crate::derive::write_owners(root, &first.name, &owners)?;
    }
    Ok(())
}

/// A version the source cached from an upstream: (name, version,
/// checksum, upstream, its entry in the source's log, which the mirror's
/// copy of the log shares).
type CachedVersion = (String, String, String, String, u64);

/// The versions of `lines` the source cached from an upstream (their
/// lines name no entry), as their version documents say.
async fn cached_versions(remote: &Remote, lines: &[IndexLine]) -> Result<Vec<CachedVersion>> {
    let each = lines.iter().filter(|l| l.log_index.is_none()).map(|l| async move {
        let doc = remote.static_json(&Layout::public().version_doc(&l.name, &l.vers)).await?;
        let doc = doc.unwrap_or_default();
        Ok::<_, anyhow::Error>(match (doc["upstream"].as_str(), doc["logIndex"].as_u64()) {
            (Some(up), Some(i)) => Some((l.name.clone(), l.vers.clone(), l.cksum.clone(), up.to_string(), i)),
            _ => None,
        })
    });
    Ok(futures_util::future::try_join_all(each).await?.into_iter().flatten().collect())
}

/// The mirror's record of its source's cached versions, so its documents
/// name their upstream and log entry as the source's do.
fn record_cached(reg: &crate::registry::Registry, cached: &[CachedVersion]) -> Result<()> {
    use crate::db::upstream as rows;
    let conn = reg.db()?;
    let txn = conn.transaction()?;
    for (name, version, cksum, upstream, index) in cached {
        let row = rows::Cached { upstream: upstream.clone(), etag: None, last_modified: None, checked_ms: 0 };
        rows::checked(&txn, &reg.space, name, &row)?;
        rows::record_versions(&txn, &reg.space, name, upstream, &[(version, cksum)], 0)?;
        rows::set_log_index(&txn, &reg.space, name, version, *index)?;
    }
    txn.commit()?;
    Ok(())
}
