//! What a client checks of the log (SPEC section 14), over any way of
//! fetching its static files: a checkpoint's signatures, freshness and
//! witnesses; its consistency with the one kept from before; a leaf's
//! inclusion. Each failure is named, and the caller stops on any.

use tlog_tiles::{Checkpoint, Tile, TileHashReader, TileReader};

use super::note::{self, CheckpointError, PublicKey, Verified};
use super::TILE_HEIGHT;
use crate::layout::Layout;

/// The keys and policy a client trusts a log with.
pub struct Trust {
    pub note: PublicKey,
    pub time: PublicKey,
    pub witnesses: Vec<PublicKey>,
    /// Witness cosignatures required.
    pub quorum: usize,
    /// Seconds the newest trusted cosignature may be old.
    pub max_age: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("stale checkpoint: its newest trusted cosignature is {age} s old, more than the {max} s allowed (a frozen or replayed copy of the log)")]
    Stale { age: u64, max: u64 },
    #[error("too few witnesses: {have} of the {need} required cosigned the checkpoint")]
    Quorum { have: usize, need: usize },
    #[error("rolled-back checkpoint: the log shows {now} entries, fewer than the {kept} of the checkpoint verified before")]
    Rollback { kept: u64, now: u64 },
    #[error("split view: {0}")]
    SplitView(String),
    #[error("missing inclusion: {0}")]
    MissingInclusion(String),
    #[error("fetching the log: {0}")]
    Fetch(String),
}

/// Reads a file of the log's static layout (a key like `log/tile/0/000`).
pub trait Fetch {
    fn get(&self, key: &str) -> Result<Vec<u8>, String>;

    /// Several files, in the order asked (a reader over a network fetches
    /// them concurrently).
    fn get_many(&self, keys: &[String]) -> Result<Vec<Vec<u8>>, String> {
        keys.iter().map(|k| self.get(k)).collect()
    }
}

/// Checks a checkpoint's signatures, freshness at `now` and witness quorum.
pub fn checkpoint(bytes: &[u8], trust: &Trust, now: u64) -> Result<Verified, LogError> {
    let v = note::verify(bytes, &trust.note, Some(&trust.time), &trust.witnesses)?;
    let age = now.saturating_sub(v.newest_time);
    if age > trust.max_age {
        return Err(LogError::Stale { age, max: trust.max_age });
    }
    if v.witnesses.len() < trust.quorum {
        return Err(LogError::Quorum { have: v.witnesses.len(), need: trust.quorum });
    }
    Ok(v)
}

struct Tiles<'a> {
    fetch: &'a dyn Fetch,
    layout: &'a Layout,
}

impl TileReader for Tiles<'_> {
    fn height(&self) -> u8 {
        TILE_HEIGHT
    }

    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        let keys: Vec<String> =
            tiles.iter().map(|t| self.layout.log_tile(t.level(), t.level_index(), t.width())).collect();
        self.fetch.get_many(&keys).map_err(|_| tlog_tiles::Error::InvalidTile)
    }

    fn save_tiles(&self, _: &[Tile], _: &[Vec<u8>]) {}
}

/// The tree of `now` contains the tree `kept` (a checkpoint verified
/// before) as a prefix: the hash of its first `kept.size()` leaves,
/// computed from `now`'s authenticated tiles, is `kept`'s hash.
pub fn consistent(
    now: &Checkpoint,
    kept: &Checkpoint,
    fetch: &dyn Fetch,
    layout: &Layout,
) -> Result<(), LogError> {
    if kept.size() > now.size() {
        return Err(LogError::Rollback { kept: kept.size(), now: now.size() });
    }
    if kept.size() == now.size() && kept.hash() == now.hash() {
        return Ok(());
    }
    let tiles = Tiles { fetch, layout };
    let reader = TileHashReader::new(now.size(), *now.hash(), &tiles);
    let hash = tlog_tiles::tree_hash(kept.size(), &reader).map_err(|e| {
        LogError::SplitView(format!("the log's tiles do not prove the tree of {} entries ({e})", now.size()))
    })?;
    if hash != *kept.hash() {
        return Err(LogError::SplitView(format!(
            "the first {} entries of the log hash to {}, not to the {} verified before: the log was rewritten or forked",
            kept.size(),
            hash,
            kept.hash()
        )));
    }
    Ok(())
}

/// Leaf `index` of the tree `at`, authenticated: its bytes from the entry
/// bundle, their hash checked against the tree's tiles.
pub fn leaf(at: &Checkpoint, index: u64, fetch: &dyn Fetch, layout: &Layout) -> Result<Vec<u8>, LogError> {
    Ok(leaves(at, &[index], fetch, layout)?.remove(0))
}

/// [`leaf`] for many entries at once, in the order asked: every bundle
/// and tile they need read in one batch, the tiles authenticated once.
pub fn leaves(
    at: &Checkpoint,
    indexes: &[u64],
    fetch: &dyn Fetch,
    layout: &Layout,
) -> Result<Vec<Vec<u8>>, LogError> {
    if let Some(index) = indexes.iter().find(|&&i| i >= at.size()) {
        return Err(LogError::MissingInclusion(format!(
            "entry {index} is beyond the log's {} entries",
            at.size()
        )));
    }
    let bundle_key = |index: u64| {
        let n = index >> TILE_HEIGHT;
        let width = if n < at.size() >> TILE_HEIGHT { 256 } else { (at.size() % 256) as u32 };
        layout.log_entries(n, width)
    };
    let mut keys: Vec<String> = indexes.iter().map(|&i| bundle_key(i)).collect();
    keys.sort();
    keys.dedup();
    let bundles: std::collections::HashMap<&String, Vec<u8>> =
        keys.iter().zip(fetch.get_many(&keys).map_err(LogError::Fetch)?).collect();
    let mut wanted: Vec<u64> = indexes.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let tiles = Tiles { fetch, layout };
    let reader = TileHashReader::new(at.size(), *at.hash(), &tiles);
    let stored_at: Vec<u64> = wanted.iter().map(|&i| tlog_tiles::stored_hash_index(0, i)).collect();
    let stored = tlog_tiles::HashReader::read_hashes(&reader, &stored_at).map_err(|e| {
        let which = match wanted.as_slice() {
            [one] => format!("entry {one}"),
            many => format!("entries {} to {}", many[0], many[many.len() - 1]),
        };
        LogError::SplitView(format!("the log's tiles do not prove {which} ({e})"))
    })?;
    indexes
        .iter()
        .map(|&index| {
            let n = index >> TILE_HEIGHT;
            let text = entry(&bundles[&bundle_key(index)], (index % 256) as usize).ok_or_else(|| {
                LogError::MissingInclusion(format!("entry bundle {n} has no entry {index}"))
            })?;
            let hash = stored[wanted.binary_search(&index).expect("asked for")];
            if hash != tlog_tiles::record_hash(text) {
                return Err(LogError::SplitView(format!(
                    "entry {index} of the bundle is not the entry the tree holds"
                )));
            }
            Ok(text.to_vec())
        })
        .collect()
}

/// A C2SP tlog-proof (`c2sp.org/tlog-proof@v1`) of entry `index` in the
/// signed checkpoint `checkpoint` (bytes as served), the entry's text as
/// its `extra` line, its inclusion proof from the tree's tiles.
pub fn tlog_proof(
    checkpoint: &[u8],
    at: &Checkpoint,
    index: u64,
    entry: &[u8],
    fetch: &dyn Fetch,
    layout: &Layout,
) -> Result<String, LogError> {
    use base64::prelude::{Engine, BASE64_STANDARD};
    let tiles = Tiles { fetch, layout };
    let reader = TileHashReader::new(at.size(), *at.hash(), &tiles);
    let proof = tlog_tiles::prove_record(at.size(), index, &reader)
        .map_err(|e| LogError::MissingInclusion(format!("no inclusion proof for entry {index}: {e}")))?;
    let mut out = format!("c2sp.org/tlog-proof@v1\nextra {}\nindex {index}\n", BASE64_STANDARD.encode(entry));
    for h in proof {
        out.push_str(&format!("{}\n", BASE64_STANDARD.encode(h.0)));
    }
    out.push('\n');
    out.push_str(&String::from_utf8_lossy(checkpoint));
    Ok(out)
}

/// The `i`th entry of an entry bundle (big-endian u16 length prefixes).
pub fn entry(bundle: &[u8], i: usize) -> Option<&[u8]> {
    let mut rest = bundle;
    for k in 0.. {
        let len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
        let (item, tail) = rest.get(2..)?.split_at_checked(len)?;
        if k == i {
            return Some(item);
        }
        rest = tail;
    }
    None
}
