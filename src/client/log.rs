//! The client's side of the transparency log (SPEC section 14): before
//! `install`, `fetch`, `verify` or `mirror` unpack or keep anything, the
//! registry's checkpoint must be signed by the pinned log key, fresh
//! (`--log-max-age`), cosigned by enough witnesses, consistent with the
//! checkpoint this client verified last (kept per registry), and include
//! the publish entry of every index line used, whose digest binds the
//! line's bytes (dependencies and features too). Any failure stops the
//! command, naming what failed.

use anyhow::{anyhow, bail, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::config::{config_dir, Credentials};
use super::error::Error;
use super::remote::{RegistryConfig, Remote};
use super::trust::LogKeys;
use crate::index::IndexLine;
use crate::layout::Layout;
use crate::log::note::PublicKey;
use crate::log::verify::{self, Fetch, LogError, Trust};
use crate::log::Leaf;

/// Where the last verified checkpoint of a registry is kept.
fn kept_path(url: &str) -> Result<std::path::PathBuf> {
    Ok(config_dir()?.join("checkpoints").join(&crate::log::leaf::digest(url.as_bytes())[..32]))
}

/// Reads the log's files through the registry's fetch path, each once,
/// a batch of them concurrently (tlog's readers are synchronous: this runs
/// on a blocking thread).
struct Files {
    remote: Remote,
    handle: tokio::runtime::Handle,
    seen: Mutex<HashMap<String, Vec<u8>>>,
}

impl Fetch for Files {
    fn get(&self, key: &str) -> Result<Vec<u8>, String> {
        if let Some(b) = self.seen.lock().unwrap().get(key) {
            return Ok(b.clone());
        }
        let url = self.remote.url_of(key);
        let bytes = self.handle.block_on(self.remote.http.required(&url)).map_err(|e| e.to_string())?;
        self.seen.lock().unwrap().insert(key.to_string(), bytes.clone());
        Ok(bytes)
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Vec<u8>>, String> {
        use futures_util::{StreamExt, TryStreamExt};
        let mut missing: Vec<&String> = {
            let seen = self.seen.lock().unwrap();
            keys.iter().filter(|k| !seen.contains_key(*k)).collect()
        };
        missing.sort();
        missing.dedup();
        let fetched: Vec<(&String, Vec<u8>)> = self
            .handle
            .block_on(
                futures_util::stream::iter(missing)
                    .map(|key| async move {
                        let bytes = self.remote.http.required(&self.remote.url_of(key)).await?;
                        Ok::<_, super::error::Error>((key, bytes))
                    })
                    .buffer_unordered(FETCHES_IN_FLIGHT)
                    .try_collect(),
            )
            .map_err(|e| e.to_string())?;
        let mut seen = self.seen.lock().unwrap();
        seen.extend(fetched.into_iter().map(|(k, b)| (k.clone(), b)));
        Ok(keys.iter().map(|k| seen[k].clone()).collect())
    }
}

/// The log's files fetched at once.
const FETCHES_IN_FLIGHT: usize = 16;

/// What the check verified, with the fetcher that holds the files it read.
struct Checked {
    /// The checkpoint's bytes as served, and the tree head they verified to.
    checkpoint: Vec<u8>,
    tree: tlog_tiles::Checkpoint,
    http: Files,
}

/// The log's keys to check against: `config`'s (which must match the
/// pin), or the pin alone when the caller has no fresh `config.json`.
/// `None`: the registry keeps no log.
fn keys(remote: &Remote, config: Option<&RegistryConfig>) -> Result<Option<LogKeys>> {
    let pinned = Credentials::load()?.entry(&remote.url).and_then(|e| e.log.clone());
    Ok(match (config.map(|c| &c.log), pinned) {
        (Some(Some(now)), Some(pinned)) if *now != pinned => bail!(
            "the registry at {} now presents different log keys from the ones pinned at first contact \
             (pinned {}, now {}): a forked or replaced log. Nothing was unpacked.",
            remote.url,
            pinned.key,
            now.key
        ),
        (Some(Some(now)), _) => Some(now.clone()),
        (Some(None), Some(_)) => bail!(
            "the registry at {} no longer names its transparency log, which it did at first contact: \
             refusing to go on without it. Nothing was unpacked.",
            remote.url
        ),
        (None, pinned) => pinned,
        (Some(None), None) => None,
    })
}

fn trust(remote: &Remote, keys: &LogKeys) -> Result<Trust> {
    Ok(Trust {
        note: PublicKey::parse(&keys.key)?,
        time: PublicKey::parse(&keys.time_key)?,
        witnesses: remote.log.witnesses.iter().map(|w| PublicKey::parse(w)).collect::<Result<_>>()?,
        quorum: remote.log.quorum.unwrap_or(remote.log.witnesses.len()),
        max_age: remote.log.max_age,
    })
}

/// Runs the checks on a blocking thread; `Ok(None)`: the registry keeps no log.
async fn run(
    remote: &Remote,
    config: Option<&RegistryConfig>,
    lines: &[IndexLine],
    raws: Option<&[Vec<u8>]>,
) -> Result<Option<Checked>> {
    let Some(keys) = keys(remote, config)? else {
        return Ok(None);
    };
    let trust = Arc::new(trust(remote, &keys)?);
    let lines = located(remote, lines, raws).await?;
    let files = Files {
        remote: remote.clone(),
        handle: tokio::runtime::Handle::current(),
        seen: Mutex::new(HashMap::new()),
    };
    let log_error = |error| Error::Log { url: remote.url.clone(), error: Box::new(error) };
    let (t, first) = (trust.clone(), lines.clone());
    let (checked, foreign) =
        tokio::task::spawn_blocking(move || verify_all(files, &t, &first, true)).await?.map_err(log_error)?;
    if foreign.is_empty() {
        return Ok(Some(checked));
    }
    // Lines cached from an upstream cairn registry keep the `logIndex` of
    // that registry's log; their entries here are in their version
    // documents. Every line is checked again with them (the leaves fetched
    // already are kept), and only then is the checkpoint kept.
    let relocated = cached_entries(remote, foreign).await?;
    let same = |a: &Located, b: &Located| a.line.name == b.line.name && a.line.vers == b.line.vers;
    let all: Vec<Located> =
        lines.into_iter().map(|l| relocated.iter().find(|r| same(r, &l)).cloned().unwrap_or(l)).collect();
    let (checked, _) = tokio::task::spawn_blocking(move || verify_all(checked.http, &trust, &all, false))
        .await?
        .map_err(log_error)?;
    Ok(Some(checked))
}

/// Lines whose `logIndex` names no entry of theirs in this log, located by
/// their version documents; a version document that names no upstream
/// leaves the line without an entry (the check then refuses it).
async fn cached_entries(remote: &Remote, foreign: Vec<Located>) -> Result<Vec<Located>> {
    let each = foreign.into_iter().map(|l| async move {
        let index = cached_entry(remote, &l.line).await?;
        let raw = remote.cached_line(&l.line.name, &l.line.vers).unwrap_or(l.raw);
        Ok::<_, anyhow::Error>(Located { line: l.line, index, raw })
    });
    futures_util::future::try_join_all(each).await
}

/// The entry of a cached version, as its version document names it (one
/// that names no upstream gives none).
async fn cached_entry(remote: &Remote, line: &IndexLine) -> Result<Option<u64>> {
    let doc = remote.static_json(&Layout::public().version_doc(&line.name, &line.vers)).await?;
    let cached = doc.as_ref().is_some_and(|d| d["upstream"].is_string());
    Ok(doc.as_ref().and_then(|d| d["logIndex"].as_u64()).filter(|_| cached))
}

/// A line to prove: its entry's number, and its bytes as the log binds them.
#[derive(Clone)]
struct Located {
    line: IndexLine,
    index: Option<u64>,
    raw: Vec<u8>,
}

/// Each line with its entry: a line published here names it (`logIndex`),
/// and is its own bytes; a line cached from an upstream is served byte for
/// byte as the upstream wrote it, so its bytes are the fetched file's and
/// its entry's number is in its version document (SPEC section 16).
/// `raws`: each line's bytes as its file holds them, when the caller has
/// them (a mirror reads the index from git); else a cached line's are the
/// bytes this client fetched.
async fn located(remote: &Remote, lines: &[IndexLine], raws: Option<&[Vec<u8>]>) -> Result<Vec<Located>> {
    // The version documents of cached lines, asked for at once.
    let each = lines.iter().enumerate().map(|(i, line)| async move {
        Ok::<_, anyhow::Error>(match line.log_index {
            Some(index) => {
                Located { line: line.clone(), index: Some(index), raw: line.to_json().into_bytes() }
            }
            None => {
                let index = cached_entry(remote, line).await?;
                let raw = match raws {
                    Some(raws) => raws[i].clone(),
                    None => remote.cached_line(&line.name, &line.vers).unwrap_or_default(),
                };
                Located { line: line.clone(), index, raw }
            }
        })
    });
    futures_util::future::try_join_all(each).await
}

/// `cairn log proof NAME@VERSION`: the version's publish entry, checked as
/// an install checks it, as a C2SP tlog-proof.
pub async fn proof(remote: &Remote, name: &str, version: &str) -> Result<String> {
    let config = remote.connect(false).await?;
    let lines = remote.index_file(name).await?.ok_or_else(|| anyhow!("no package named `{name}`"))?;
    let line = lines
        .into_iter()
        .find(|l| l.vers == version)
        .ok_or_else(|| anyhow!("{name} has no version {version}"))?;
    let c = run(remote, Some(&config), std::slice::from_ref(&line), None)
        .await?
        .ok_or_else(|| anyhow!("{} keeps no transparency log", remote.url))?;
    let index = located(remote, std::slice::from_ref(&line), None).await?[0]
        .index
        .expect("checked: the line has its entry");
    tokio::task::spawn_blocking(move || -> Result<String> {
        let layout = Layout::public();
        let entry = verify::leaf(&c.tree, index, &c.http, &layout)?;
        Ok(verify::tlog_proof(&c.checkpoint, &c.tree, index, &entry, &c.http, &layout)?)
    })
    .await?
}

/// `cairn log verify`: every entry of the log, each checked against the
/// tree's tiles, and each publish entry against the index line it names.
pub async fn verify_whole(remote: &Remote) -> Result<String> {
    let config = remote.connect(false).await?;
    let c = run(remote, Some(&config), &[], None)
        .await?
        .ok_or_else(|| anyhow!("{} keeps no transparency log", remote.url))?;
    let entries = tokio::task::spawn_blocking(move || -> Result<Vec<Leaf>> {
        let layout = Layout::public();
        let all: Vec<u64> = (0..c.tree.size()).collect();
        verify::leaves(&c.tree, &all, &c.http, &layout)?.iter().map(|e| Leaf::parse(e)).collect()
    })
    .await??;
    let mut files: HashMap<String, Vec<IndexLine>> = HashMap::new();
    let mut publishes = 0;
    for (i, leaf) in entries.iter().enumerate() {
        if leaf.action != "publish" {
            continue;
        }
        if !files.contains_key(&leaf.name) {
            let lines = remote.index_file(&leaf.name).await?.unwrap_or_default();
            files.insert(leaf.name.clone(), lines);
        }
        // A hard-deleted version has no line any more; every other line that
        // names this entry must be the one logged.
        if let Some(line) = files[&leaf.name].iter().find(|l| l.log_index == Some(i as u64)) {
            if !leaf.is_entry_of(line, line.to_json().as_bytes()) {
                bail!(
                    "split view: the index line of {} {} is not the one the log recorded at entry {i}",
                    line.name,
                    line.vers
                );
            }
            publishes += 1;
        }
    }
    Ok(format!(
        "{} verified against the checkpoint; {} {} their publish entries",
        crate::words::count(entries.len(), "entry"),
        crate::words::count(publishes, "index line"),
        if publishes == 1 { "matches" } else { "match" }
    ))
}

/// Checks the log for `lines`, the index lines this command uses
/// (`config`: the `config.json` just fetched, if the caller has one).
pub async fn check(remote: &Remote, config: Option<&RegistryConfig>, lines: &[IndexLine]) -> Result<()> {
    run(remote, config, lines, None).await.map(|_| ())
}

/// The versions of `wanted` (name, version, sha256) not yet proven in the
/// log to this client: a version once included stays included in every
/// consistent later tree, so a lock's install needs no index file for it.
pub fn unproven<'a>(
    remote: &Remote,
    wanted: &'a [(String, String, String)],
) -> Result<Vec<&'a (String, String, String)>> {
    let proven = std::fs::read_to_string(proven_path(&remote.url)?).unwrap_or_default();
    let proven: std::collections::HashSet<&str> = proven.lines().collect();
    Ok(wanted.iter().filter(|(n, v, s)| !proven.contains(format!("{n} {v} {s}").as_str())).collect())
}

/// Checks the source's log for every line a mirror copies, then copies the
/// log byte for byte: its tiles and entry bundles, then its checkpoint.
pub async fn mirror(
    remote: &Remote,
    config: &RegistryConfig,
    lines: &[IndexLine],
    raws: &[Vec<u8>],
    root: std::sync::Arc<crate::layout::StaticRoot>,
) -> Result<()> {
    let Some(c) = run(remote, Some(config), lines, Some(raws)).await? else {
        return Ok(());
    };
    tokio::task::spawn_blocking(move || -> Result<()> {
        let l = root.layout().clone();
        for tile in tlog_tiles::Tile::new_tiles(crate::log::TILE_HEIGHT, 0, c.tree.size()) {
            let (n, w) = (tile.level_index(), tile.width());
            for key in [l.log_tile(tile.level(), n, w)]
                .into_iter()
                .chain((tile.level() == 0).then(|| l.log_entries(n, w)))
            {
                root.put(&key, &c.http.get(&key).map_err(|e| anyhow!(e))?)?;
            }
        }
        root.put(&l.log_keys(), &c.http.get(&l.log_keys()).map_err(|e| anyhow!(e))?)?;
        root.sync()?;
        root.put_durable(&l.log_checkpoint(), &c.checkpoint)?;
        Ok(())
    })
    .await?
}

fn proven_path(url: &str) -> Result<std::path::PathBuf> {
    Ok(kept_path(url)?.with_extension("proven"))
}

/// Checks `lines` against the log. With `relocate`, a line whose
/// `logIndex` is past the log's end or names another version's entry is
/// returned apart, unchecked (see [`cached_entries`]); without, it is refused.
fn verify_all(
    http: Files,
    trust: &Trust,
    lines: &[Located],
    relocate: bool,
) -> Result<(Checked, Vec<Located>), LogError> {
    let base = http.remote.url.clone();
    let layout = Layout::public();
    let bytes = http.get(&layout.log_checkpoint()).map_err(LogError::Fetch)?;
    let now = verify::checkpoint(&bytes, trust, crate::log::note::now())?;
    let io = |e: std::io::Error| LogError::Fetch(format!("the kept checkpoint: {e}"));
    let kept_at = kept_path(&base).map_err(|e| LogError::Fetch(e.to_string()))?;
    let kept = std::fs::read(&kept_at).ok();
    if let Some(kept) = &kept {
        let kept = tlog_tiles::Checkpoint::from_bytes(kept)
            .map_err(|_| LogError::Fetch(format!("{} is not a checkpoint", kept_at.display())))?;
        verify::consistent(&now.checkpoint, &kept, &http, &layout)?;
    }
    let mut foreign = Vec::new();
    let (mut mine, mut indexes) = (Vec::new(), Vec::new());
    for l in lines {
        match l.index {
            Some(i) if relocate && i >= now.checkpoint.size() => foreign.push(l.clone()),
            Some(i) => {
                mine.push(l);
                indexes.push(i);
            }
            None => {
                let what = format!("{} {}", l.line.name, l.line.vers);
                return Err(LogError::MissingInclusion(format!(
                    "the index line of {what} names no log entry"
                )));
            }
        }
    }
    let texts = verify::leaves(&now.checkpoint, &indexes, &http, &layout)?;
    let mut proven = String::new();
    for ((l, text), index) in mine.into_iter().zip(texts).zip(indexes) {
        let Located { line, raw, .. } = l;
        let what = format!("{} {}", line.name, line.vers);
        let leaf =
            Leaf::parse(&text).map_err(|e| LogError::MissingInclusion(format!("entry {index}: {e}")))?;
        if relocate && (leaf.name != line.name || leaf.version.as_deref() != Some(line.vers.as_str())) {
            foreign.push(l.clone());
            continue;
        }
        if !leaf.is_entry_of(line, raw) {
            return Err(LogError::SplitView(format!(
                "the index line of {what} is not the one the log recorded at entry {index} \
                 (its checksum, dependencies or features differ)"
            )));
        }
        proven.push_str(&format!("{} {} {}\n", line.name, line.vers, line.cksum));
    }
    // Kept only once everything checked out (and only when it moved); with
    // lines set apart, the check is not over.
    if !foreign.is_empty() {
        return Ok((Checked { checkpoint: bytes, tree: now.checkpoint, http }, foreign));
    }
    if kept.as_deref() != Some(&now.body[..]) {
        std::fs::create_dir_all(kept_at.parent().expect("has a parent")).map_err(io)?;
        crate::fsutil::write_atomic(&kept_at, &now.body).map_err(io)?;
    }
    if !proven.is_empty() {
        use std::io::Write;
        let path = kept_at.with_extension("proven");
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        f.write_all(proven.as_bytes()).map_err(io)?;
    }
    Ok((Checked { checkpoint: bytes, tree: now.checkpoint, http }, foreign))
}
