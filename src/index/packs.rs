//! Pack files of the index repository: writing a batch's pack durably, the
//! `objects/info/packs` list, and geometric consolidation.
//!
//! Consolidation never deletes a pack at once: a CDN may serve an
//! `objects/info/packs` up to a minute old, so a replaced pack moves to
//! `objects/retired/` (out of libgit2's sight: every pack in `objects/pack`
//! costs each repository open a directory scan) where the static server
//! still finds it (`RETIRED_DIR`), and is removed after `RETIRE_AFTER`.
//! The bucket's copy of the index merges its packs with the same rule and
//! the same wait (`stored.rs`).

use anyhow::{Context, Result};
use git2::{Odb, Oid, PackBuilder, Repository};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::fsutil;

pub const RETIRE_AFTER: Duration = Duration::from_secs(300);
/// Where replaced packs wait, relative to the repository.
pub const RETIRED_DIR: &str = "objects/retired";

fn pack_dir(repo: &Path) -> PathBuf {
    repo.join("objects/pack")
}

/// Streams the pack `builder` produces through libgit2's indexer (never
/// the whole pack in memory: a merge of a large index would hold it all)
/// and fsyncs the pack, its index and the directory. Returns the pack's
/// name (`pack-{hex}`).
pub fn write_pack(repo: &Path, odb: &Odb, builder: &mut PackBuilder) -> Result<String> {
    let mut writer = odb.packwriter()?;
    // A pack's name is its trailing checksum.
    let mut tail = Vec::with_capacity(40);
    let mut failed = None;
    let streamed = builder.foreach(|chunk| match writer.write_all(chunk) {
        Ok(()) => {
            tail.extend_from_slice(chunk);
            tail.drain(..tail.len().saturating_sub(20));
            true
        }
        Err(e) => {
            failed = Some(e);
            false
        }
    });
    if let Some(e) = failed {
        return Err(e).context("writing a pack");
    }
    streamed?;
    writer.commit()?;
    let name = format!("pack-{}", crate::store::hex(&tail));
    let dir = pack_dir(repo);
    for ext in ["pack", "idx"] {
        fsutil::sync_file(&dir.join(format!("{name}.{ext}")))
            .with_context(|| format!("syncing {name}.{ext}"))?;
    }
    fsutil::sync_dir(&dir)?;
    Ok(name)
}

/// Packs present on disk with their object counts.
fn live_packs(repo: &Path) -> Result<Vec<(String, u32)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(pack_dir(repo))? {
        let file = entry?.file_name().to_string_lossy().into_owned();
        let Some(name) = file.strip_suffix(".idx") else {
            continue;
        };
        if !pack_dir(repo).join(format!("{name}.pack")).exists() {
            continue;
        }
        out.push((name.to_string(), idx_object_count(&pack_dir(repo).join(&file))?));
    }
    Ok(out)
}

const IDX_HEADER: usize = 8 + 256 * 4;

/// The object count of a version 2 pack index: the last fan-out entry.
fn idx_count(header: &[u8]) -> Result<u32> {
    anyhow::ensure!(
        header.len() >= IDX_HEADER && header[..8] == [0xff, b't', b'O', b'c', 0, 0, 0, 2],
        "not a v2 pack index"
    );
    Ok(u32::from_be_bytes(header[IDX_HEADER - 4..IDX_HEADER].try_into().unwrap()))
}

/// The object count of a pack of the repository.
pub fn object_count(repo: &Path, name: &str) -> Result<u32> {
    idx_object_count(&pack_dir(repo).join(format!("{name}.idx")))
}

/// Reads only the header of an index file: called after every group.
fn idx_object_count(path: &Path) -> Result<u32> {
    use std::io::Read;
    let mut header = vec![0u8; IDX_HEADER];
    std::fs::File::open(path)?.read_exact(&mut header)?;
    idx_count(&header)
}

/// Object ids listed in a version 2 pack index.
fn idx_object_ids(idx: &[u8]) -> Result<Vec<Oid>> {
    let n = idx_count(idx)? as usize;
    let ids = idx.get(IDX_HEADER..IDX_HEADER + n * 20).context("truncated pack index")?;
    ids.chunks(20).map(|c| Ok(Oid::from_bytes(c)?)).collect()
}

/// Rewrites `objects/info/packs` from the live packs.
pub fn write_info_packs(repo: &Path) -> Result<()> {
    let mut text = String::new();
    let mut packs = live_packs(repo)?;
    packs.sort();
    for (name, _) in packs {
        text.push_str(&format!("P {name}.pack\n"));
    }
    text.push('\n');
    fsutil::write_atomic(&repo.join("objects/info/packs"), text.as_bytes())?;
    Ok(())
}

/// Objects a merged pack may hold. libgit2's packbuilder recomputes every
/// delta and caches what it reads, so a merge costs time and memory in
/// proportion to its size (on the soak's index, 15 s and 150 MB for 65 000
/// objects, and each 20 000-object merge a 50 MB burst of the server's
/// RSS): a full pack stays as it is, and a clone fetches one pack per this
/// many objects (a 50 000-package index: about 50 packs).
const MAX_MERGED: u64 = 5_000;

/// Which packs to merge: the smallest ones, as long as the next is at most
/// twice the sum so far (git's geometric repack), so every object is
/// rewritten O(log n) times, and the merge stays within `MAX_MERGED`.
pub fn merge_set(mut packs: Vec<(String, u32)>) -> Vec<String> {
    packs.sort_by_key(|(_, n)| *n);
    let mut sum = 0u64;
    let mut take = 0;
    for (i, (_, n)) in packs.iter().enumerate() {
        if i > 0 && u64::from(*n) > 2 * sum || sum + u64::from(*n) > MAX_MERGED {
            break;
        }
        sum += u64::from(*n);
        take = i + 1;
    }
    if take < 2 {
        return vec![];
    }
    packs.into_iter().take(take).map(|(name, _)| name).collect()
}

/// Merges packs (see `merge_set`) and removes retired packs whose grace time
/// has passed. Holds `lock` only while the pack list changes.
pub fn consolidate(repo_path: &Path, lock: &Mutex<()>) -> Result<()> {
    let merge = merge_set(live_packs(repo_path)?);
    if !merge.is_empty() {
        let new = merge_packs(repo_path, &merge)?;
        // Only the pack list's change waits for batches: a new pack with
        // objects already present elsewhere is harmless to them.
        let _guard = lock.lock().unwrap();
        let retired = repo_path.join(RETIRED_DIR);
        std::fs::create_dir_all(&retired)?;
        for name in merge.into_iter().filter(|n| *n != new) {
            // The index first: without it the pack is invisible to git.
            for ext in ["idx", "pack"] {
                let file = format!("{name}.{ext}");
                std::fs::rename(pack_dir(repo_path).join(&file), retired.join(&file))?;
            }
        }
        fsutil::sync_dir(&pack_dir(repo_path))?;
        fsutil::sync_dir(&retired)?;
        write_info_packs(repo_path)?;
    }
    remove_expired(repo_path)
}

/// Writes one pack of every object of the packs `names` (which stay);
/// returns its name.
pub fn merge_packs(repo_path: &Path, names: &[String]) -> Result<String> {
    let repo = Repository::open_bare(repo_path)?;
    let mut builder = repo.packbuilder()?;
    for name in names {
        let idx = std::fs::read(pack_dir(repo_path).join(format!("{name}.idx")))?;
        for id in idx_object_ids(&idx)? {
            builder.insert_object(id, None)?;
        }
    }
    let odb = repo.odb()?;
    let name = write_pack(repo_path, &odb, &mut builder)?;
    Ok(name)
}

/// Deletes retired packs older than the grace time (a rename sets ctime,
/// so ctime is when the pack retired).
fn remove_expired(repo_path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(repo_path.join(RETIRED_DIR)) else {
        return Ok(());
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    for entry in entries {
        let entry = entry?;
        if now - entry.metadata()?.ctime() >= RETIRE_AFTER.as_secs() as i64 {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::merge_set;

    fn p(n: &[u32]) -> Vec<(String, u32)> {
        n.iter().enumerate().map(|(i, n)| (format!("p{i}"), *n)).collect()
    }

    #[test]
    fn merges_small_packs_and_keeps_a_large_base() {
        assert_eq!(merge_set(p(&[1000, 5, 6, 7])).len(), 3);
        assert!(merge_set(p(&[1000])).is_empty());
        assert!(merge_set(p(&[1000, 5])).is_empty());
        assert_eq!(merge_set(p(&[10, 12])).len(), 2);
    }

    #[test]
    fn a_merge_stays_within_its_bound() {
        let full = super::MAX_MERGED as u32;
        assert!(merge_set(p(&[full, full, 5])).is_empty());
        assert_eq!(merge_set(p(&[full - 100, 60, 50])), vec!["p2", "p1"]);
        // The geometric rule would take all three; the bound stops at two.
        assert_eq!(merge_set(p(&[full / 2, full / 2 - 10, full * 2 / 5])), vec!["p2", "p1"]);
    }
}
