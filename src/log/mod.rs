//! The transparency log (SPEC section 14; every byte in `index/log.md`): a
//! C2SP tiled log with one leaf per index change, in commit order, so the
//! log is a function of the index history and a missing leaf can always be
//! appended from it.
//!
//! The writer's state lives in `{data}/log/`: `leaves` (the entries, one
//! text line each) and `hashes` (the tree's stored hashes, 32 bytes each,
//! in tlog's stored-hash order). Both are appended and fsynced before the
//! static files derived from them: tiles and entry bundles, then the
//! signed checkpoint, so a reader never sees a checkpoint whose tiles are
//! missing. `catch_up`, under the writer lock, first rereads the files if
//! another writer (the admin CLI) or a crash changed them, trims a partial
//! entry and redoes missing hashes, then appends the leaves the history
//! has and the log not yet.

pub mod history;
pub mod leaf;
pub mod note;
pub mod verify;
pub mod witness;

use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tlog_tiles::{Checkpoint, Hash, HashReader, Tile, HASH_SIZE};

pub use leaf::Leaf;
use note::{Key, ALG_COSIGN, ALG_NOTE};

use crate::index::IndexRepo;
use crate::layout::StaticRoot;

/// Tiles are 2^8 hashes wide (C2SP tlog-tiles).
pub const TILE_HEIGHT: u8 = 8;

pub struct Log {
    dir: PathBuf,
    note_key: Key,
    time_key: Key,
    state: Mutex<State>,
    /// Whether `log/keys` was written by this process.
    keys_published: std::sync::atomic::AtomicBool,
    /// The size of the checkpoint this process published last, while no
    /// other writer can have published since (0: unknown): what catching
    /// up on a bucket needs to know without reading the checkpoint back.
    published: std::sync::atomic::AtomicU64,
}

struct State {
    leaves: File,
    hashes: File,
    /// Where each leaf starts in `leaves`, and its end.
    offsets: Vec<u64>,
    /// The index commit of the last leaf.
    last_commit: Option<String>,
    /// Why the files were opened read-only (the storage's error), if they were.
    read_only: Option<std::io::Error>,
}

/// The stored hashes in `hashes`, for tlog's algorithms.
struct Stored<'a>(&'a File);

impl HashReader for Stored<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|i| {
                let mut h = [0u8; HASH_SIZE];
                self.0
                    .read_exact_at(&mut h, i * HASH_SIZE as u64)
                    .map_err(|_| tlog_tiles::Error::IndexesNotInTree)?;
                Ok(Hash(h))
            })
            .collect()
    }
}

/// The log's own files (entries, hashes, keys) in a registry's data directory.
pub fn dir(data: &Path) -> PathBuf {
    data.join("log")
}

impl State {
    fn size(&self) -> u64 {
        self.offsets.len() as u64 - 1
    }

    fn leaf(&self, n: u64) -> Result<Vec<u8>> {
        let (start, end) = (self.offsets[n as usize], self.offsets[n as usize + 1]);
        let mut buf = vec![0u8; (end - start) as usize];
        self.leaves.read_exact_at(&mut buf, start)?;
        Ok(buf)
    }

    /// Appends leaf `n`'s stored hashes (the leaves before it have theirs).
    fn hash_leaf(&self, n: u64) -> Result<()> {
        let text = self.leaf(n)?;
        let hashes = tlog_tiles::stored_hashes(n, &text, &Stored(&self.hashes))?;
        let at = tlog_tiles::stored_hash_index(0, n) * HASH_SIZE as u64;
        let bytes: Vec<u8> = hashes.iter().flat_map(|h| h.0).collect();
        self.hashes.write_all_at(&bytes, at)?;
        Ok(())
    }

    /// The entry bundle of a level-0 tile: each entry after its length
    /// (big-endian u16).
    fn bundle(&self, tile: &Tile) -> Result<Vec<u8>> {
        let first = tile.level_index() << TILE_HEIGHT;
        let mut bundle = Vec::new();
        for n in first..first + u64::from(tile.width()) {
            let leaf = self.leaf(n)?;
            bundle.extend_from_slice(&(leaf.len() as u16).to_be_bytes());
            bundle.extend_from_slice(&leaf);
        }
        Ok(bundle)
    }

    fn root_hash(&self) -> Result<Hash> {
        Ok(tlog_tiles::tree_hash(self.size(), &Stored(&self.hashes))?)
    }
}

impl State {
    /// Opens the state files, read-write if the storage allows (else
    /// read-only, to serve reads), reading whole entries only. Another
    /// process (the admin CLI, fsck) may hold them too: only a writer,
    /// under the writer lock, repairs them ([`State::repair`]).
    fn open(dir: &Path) -> Result<State> {
        let open = |file: &str, write: bool| {
            OpenOptions::new().read(true).write(write).create(write).truncate(false).open(dir.join(file))
        };
        let (leaves, hashes, read_only) = match (open("leaves", true), open("hashes", true)) {
            (Ok(l), Ok(h)) => (l, h, None),
            (Err(e), _) | (_, Err(e)) => (open("leaves", false)?, open("hashes", false)?, Some(e)),
        };
        let text = std::fs::read(dir.join("leaves"))?;
        let mut offsets = vec![0u64];
        offsets.extend(memchr::memchr_iter(b'\n', &text).map(|i| i as u64 + 1));
        let last_commit = match offsets.len() {
            1 => None,
            n => {
                let last = &text[offsets[n - 2] as usize..offsets[n - 1] as usize];
                Some(Leaf::parse(last).context("the log's last leaf")?.commit)
            }
        };
        Ok(State { leaves, hashes, offsets, last_commit, read_only })
    }

    /// Whether the files are as this state read them: another writer (the
    /// admin CLI) or a crash mid-append changes them.
    fn current(&self) -> Result<bool> {
        Ok(self.leaves.metadata()?.len() == *self.offsets.last().unwrap()
            && self.hashes.metadata()?.len() == tlog_tiles::stored_hash_count(self.size()) * HASH_SIZE as u64)
    }

    /// Drops a partial last entry and writes the hashes of entries whose
    /// hashes were not all written (a crash mid-append).
    fn repair(&self) -> Result<()> {
        self.leaves.set_len(*self.offsets.last().unwrap())?;
        let have = self.hashes.metadata()?.len() / HASH_SIZE as u64;
        let mut n = self.size();
        while n > 0 && tlog_tiles::stored_hash_count(n) > have {
            n -= 1;
        }
        self.hashes.set_len(tlog_tiles::stored_hash_count(n) * HASH_SIZE as u64)?;
        for k in n..self.size() {
            self.hash_leaf(k)?;
        }
        self.leaves.sync_all()?;
        self.hashes.sync_all()?;
        Ok(())
    }
}

/// The size of a checkpoint the static root serves (0 if none).
fn published_size(checkpoint: Option<&[u8]>) -> Result<u64> {
    let Some(bytes) = checkpoint else {
        return Ok(0);
    };
    let note = signed_note::Note::from_bytes(bytes).map_err(|e| anyhow::anyhow!("log/checkpoint: {e}"))?;
    Ok(Checkpoint::from_bytes(note.text()).map_err(|e| anyhow::anyhow!("log/checkpoint: {e}"))?.size())
}

impl Log {
    /// Opens (creating on first use) the log of the registry in `data`,
    /// named `origin` (the name is kept in the keys: a log's origin never
    /// changes).
    pub fn open(data: &Path, origin: &str) -> Result<Log> {
        Log::open_with(data, origin, None)
    }

    /// The log of a private organisation's registry in `data`: its keys
    /// are derived from `parent`'s (the public log's), so every server of
    /// the registry signs with the same ones.
    pub fn open_below(data: &Path, origin: &str, parent: &Log) -> Result<Log> {
        Log::open_with(data, origin, Some(parent))
    }

    fn open_with(data: &Path, origin: &str, parent: Option<&Log>) -> Result<Log> {
        let dir = dir(data);
        if !dir.exists() {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let key = |file: &str, alg: u8| -> Result<Key> {
            let path = dir.join(file);
            if path.exists() {
                return Key::load(&path);
            }
            let key = match parent {
                Some(p) => p.note_key.derive(origin, alg)?,
                None => Key::generate(origin, alg)?,
            };
            key.save(&path)?;
            crate::fsutil::sync_dir(&dir)?;
            Ok(key)
        };
        let (note_key, time_key) = (key("note.key", ALG_NOTE)?, key("time.key", ALG_COSIGN)?);
        let keys_published = std::sync::atomic::AtomicBool::new(false);
        let (state, published) = (Mutex::new(State::open(&dir)?), Default::default());
        Ok(Log { note_key, time_key, state, dir, keys_published, published })
    }

    pub fn origin(&self) -> &str {
        self.note_key.name()
    }

    /// The note key and the cosigning key, as clients pin them.
    pub fn vkeys(&self) -> (String, String) {
        (self.note_key.vkey(), self.time_key.vkey())
    }

    pub fn size(&self) -> u64 {
        self.state.lock().unwrap().size()
    }

    /// Appends the leaves the index history has after the log's last one,
    /// then publishes them; returns the log's size. What `catch_up` writes
    /// is durable when it returns. The caller holds the writer lock.
    pub fn catch_up(&self, index: &IndexRepo, root: &StaticRoot) -> Result<u64> {
        use std::sync::atomic::Ordering;
        let mut state = self.state.lock().unwrap();
        let before = self.append(&mut state, index, root)?;
        // Where reads cost a round trip, the size this process published
        // itself is not read back; and a size never published has no
        // cosignature to keep.
        let known = self.published.load(Ordering::Relaxed);
        if !root.cheap_reads() && known > 0 && known == before {
            if state.size() != before {
                self.publish(&state, root, before, None)?;
            }
            return Ok(state.size());
        }
        let current = root.read(&root.layout().log_checkpoint())?;
        let old = published_size(current.as_deref())?.min(before);
        if old != state.size() || current.is_none() {
            self.publish(&state, root, old, current.as_deref())?;
        }
        Ok(state.size())
    }

    /// Another writer may have published since (a writer lease taken anew):
    /// the next catch-up reads the checkpoint.
    pub fn forget_published(&self) {
        self.published.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// This node's entries brought level with the index history, nothing
    /// published: on shared storage another server appended and published
    /// the rest (fsck there compares the published log, not a lagging copy).
    pub fn catch_up_local(&self, index: &IndexRepo, root: &StaticRoot) -> Result<()> {
        let mut state = self.state.lock().unwrap();
        self.append(&mut state, index, root).map(drop)
    }

    /// Appends the leaves the index history has after the log's last one to
    /// the log's files; returns the size before.
    fn append(&self, state: &mut State, index: &IndexRepo, root: &StaticRoot) -> Result<u64> {
        if state.read_only.is_some() || !state.current()? {
            *state = State::open(&self.dir)?;
            // The storage's own error (read-only, full), so the writer
            // answers 503 for it like for any other storage trouble.
            if let Some(why) = state.read_only.take() {
                return Err(anyhow::Error::new(why).context("the log's files cannot be written"));
            }
            state.repair()?;
        }
        let before = state.size();
        let missing = history::leaves_after(index, state.last_commit.as_deref())?;
        if !missing.is_empty() {
            let mut at = *state.offsets.last().unwrap();
            let mut bytes = Vec::new();
            for leaf in &missing {
                bytes.extend_from_slice(leaf.text().as_bytes());
                at += leaf.text().len() as u64;
                state.offsets.push(at);
            }
            let start = state.offsets[state.offsets.len() - 1 - missing.len()];
            state.leaves.write_all_at(&bytes, start)?;
            state.last_commit = missing.last().map(|l| l.commit.clone());
            for n in state.size() - missing.len() as u64..state.size() {
                state.hash_leaf(n)?;
            }
            // On the static root's filesystem, its sync in `publish` (one
            // syncfs, before the checkpoint) makes these durable too.
            if !self.shares_filesystem(root) {
                state.leaves.sync_data()?;
                state.hashes.sync_data()?;
            }
        }
        Ok(before)
    }

    /// Whether the log's files are on the static root's filesystem.
    fn shares_filesystem(&self, root: &StaticRoot) -> bool {
        use std::os::unix::fs::MetadataExt;
        let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
        root.local_path("").is_some_and(|r| dev(&r).is_some() && dev(&r) == dev(&self.dir))
    }

    /// Writes the tiles and entry bundles from size `old` to the log's size,
    /// then the checkpoint.
    fn publish(&self, state: &State, root: &StaticRoot, old: u64, current: Option<&[u8]>) -> Result<()> {
        let (l, size) = (root.layout(), state.size());
        for tile in Tile::new_tiles(TILE_HEIGHT, old, size) {
            let data = tile.read_data(&Stored(&state.hashes))?;
            root.put(&l.log_tile(tile.level(), tile.level_index(), tile.width()), &data)?;
            if tile.level() == 0 {
                root.put(&l.log_entries(tile.level_index(), tile.width()), &state.bundle(&tile)?)?;
            }
        }
        self.publish_keys(root)?;
        root.sync()?;
        self.sign(state, root, current)
    }

    /// Signs the checkpoint of the log's current size with a fresh time,
    /// keeping witnesses' cosignatures of the same tree from `current`
    /// (the checkpoint the static root serves).
    fn sign(&self, state: &State, root: &StaticRoot, current: Option<&[u8]>) -> Result<()> {
        let body = Checkpoint::new(self.origin(), state.size(), state.root_hash()?, "")
            .map_err(|e| anyhow::anyhow!("checkpoint: {e}"))?
            .to_bytes();
        let mut kept = current.and_then(|b| note::signatures_of(b, &body)).unwrap_or_default();
        kept.retain(|s| s.id() != self.note_key.id() && s.id() != self.time_key.id());
        let signed = note::sign(&body, &self.note_key, &self.time_key, note::now(), &kept)?;
        root.put_durable(&root.layout().log_checkpoint(), &signed)?;
        self.published.store(state.size(), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// `log/keys`, once per process: the keys never change.
    fn publish_keys(&self, root: &StaticRoot) -> Result<()> {
        use std::sync::atomic::Ordering;
        if !self.keys_published.load(Ordering::Relaxed) {
            let (note, time) = self.vkeys();
            root.put_doc(&root.layout().log_keys(), format!("{note}\n{time}\n").as_bytes())?;
            self.keys_published.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// An RFC 6962 consistency proof from the tree of `old` entries to the
    /// tree of `size`.
    fn consistency_proof(&self, size: u64, old: u64) -> Result<Vec<Hash>> {
        let state = self.state.lock().unwrap();
        Ok(tlog_tiles::prove_tree(size, old, &Stored(&state.hashes))?)
    }

    /// Publishes witnesses' cosignatures of the checkpoint `body`, if it is
    /// still the current one (the caller holds the writer lock).
    fn add_cosignatures(
        &self,
        root: &StaticRoot,
        body: &[u8],
        sigs: Vec<signed_note::Signature>,
    ) -> Result<()> {
        let l = root.layout();
        let Some(current) = root.read(&l.log_checkpoint())? else {
            return Ok(());
        };
        let Some(mut all) = note::signatures_of(&current, body) else {
            return Ok(());
        };
        all.retain(|s| !sigs.iter().any(|n| n.name() == s.name() && n.id() == s.id()));
        all.extend(sigs);
        root.put_durable(&l.log_checkpoint(), &signed_note::Note::new(body, &all)?.to_bytes())?;
        Ok(())
    }

    /// Re-cosigns the checkpoint with the current time (the freshness
    /// timer; the caller holds the writer lock).
    pub fn recosign(&self, root: &StaticRoot) -> Result<()> {
        let state = self.state.lock().unwrap();
        let current = root.read(&root.layout().log_checkpoint())?;
        self.publish_keys(root)?;
        self.sign(&state, root, current.as_deref())
    }

    /// What fsck finds wrong with the log: entries that differ from the
    /// index history's or that it lacks, and published files (tiles, entry
    /// bundles, checkpoint) that do not match the entries.
    pub fn audit(&self, index: &IndexRepo, root: &StaticRoot) -> Result<Vec<String>> {
        let state = self.state.lock().unwrap();
        let mut problems = Vec::new();
        let history = history::leaves_after(index, None)?;
        for (n, leaf) in history.iter().enumerate() {
            if n as u64 >= state.size() {
                problems.push(format!("the log lacks entries {n}..{} of the index history", history.len()));
                break;
            }
            if state.leaf(n as u64)? != leaf.text().as_bytes() {
                problems.push(format!("entry {n} is not the index history's change {}", leaf.commit));
            }
        }
        if state.size() > history.len() as u64 {
            problems.push(format!(
                "the log has {} entries, the index history {}",
                state.size(),
                history.len()
            ));
        }
        let l = root.layout();
        let Some(bytes) = root.read(&l.log_checkpoint())? else {
            problems.push("log/checkpoint is missing".into());
            return Ok(problems);
        };
        let (note, time) = self.vkeys();
        let keys = (note::PublicKey::parse(&note)?, note::PublicKey::parse(&time)?);
        let size = match note::verify(&bytes, &keys.0, Some(&keys.1), &[]) {
            Ok(v) if v.checkpoint.size() > state.size() => {
                problems.push(format!(
                    "log/checkpoint has {} entries, the log {}",
                    v.checkpoint.size(),
                    state.size()
                ));
                return Ok(problems);
            }
            Ok(v) => {
                let hash = tlog_tiles::tree_hash(v.checkpoint.size(), &Stored(&state.hashes))?;
                if hash != *v.checkpoint.hash() {
                    problems.push("log/checkpoint's root hash is not the entries' hash".into());
                }
                v.checkpoint.size()
            }
            Err(e) => {
                problems.push(format!("log/checkpoint: {e}"));
                return Ok(problems);
            }
        };
        for tile in Tile::new_tiles(TILE_HEIGHT, 0, size) {
            let key = l.log_tile(tile.level(), tile.level_index(), tile.width());
            if root.read(&key)?.as_deref() != Some(&tile.read_data(&Stored(&state.hashes))?[..]) {
                problems.push(format!("{key} is missing or does not hold the entries' hashes"));
            }
            if tile.level() == 0 {
                let key = l.log_entries(tile.level_index(), tile.width());
                if root.read(&key)?.as_deref() != Some(&state.bundle(&tile)?[..]) {
                    problems.push(format!("{key} is missing or does not hold the entries"));
                }
            }
        }
        Ok(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::note::{self, Key, ALG_COSIGN, ALG_NOTE};
    use super::Leaf;
    use tlog_tiles::{Hash, HashReader};

    /// Stored hashes in memory.
    struct Mem(std::cell::RefCell<Vec<Hash>>);

    impl HashReader for Mem {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
            Ok(indexes.iter().map(|i| self.0.borrow()[*i as usize]).collect())
        }
    }

    fn hex(b: &[u8]) -> String {
        crate::store::hex(b)
    }

    /// `index/log-vectors.json`: the bytes `index/log.md` defines, from
    /// fixed keys (Ed25519 signatures are deterministic), also checked by
    /// `tests/log_check.py`. `CAIRN_WRITE_VECTORS=1` writes the file anew.
    #[test]
    fn golden_vectors() {
        let origin = "registry.example.com/log";
        let (note_seed, time_seed, time) = ([1u8; 32], [2u8; 32], 1_767_225_600u64);
        let note_key = Key::from_seed(origin, ALG_NOTE, note_seed);
        let time_key = Key::from_seed(origin, ALG_COSIGN, time_seed);
        let line = br#"{"name":"hello","vers":"1.0.0","deps":[],"cksum":"5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03","features":{},"yanked":true,"links":null,"v":1,"pubtime":"2026-01-01T00:00:00Z","blake3":"","size":6,"fmt":"tar.gz","logIndex":0}"#;
        let commit = |n: u8| hex(&[n; 20]);
        let leaves = [
            Leaf::of_line("publish", line, &commit(1)).unwrap(),
            Leaf::of_line("yank", line, &commit(2)).unwrap(),
            Leaf::of_file("advisory", "CAIRN-2026-0001", b"{\"id\":\"CAIRN-2026-0001\"}\n", &commit(3)),
        ];
        let texts: Vec<String> = leaves.iter().map(Leaf::text).collect();
        let mem = Mem(Default::default());
        for (n, t) in texts.iter().enumerate() {
            let new = tlog_tiles::stored_hashes(n as u64, t.as_bytes(), &mem).unwrap();
            mem.0.borrow_mut().extend(new);
        }
        let root = tlog_tiles::tree_hash(texts.len() as u64, &mem).unwrap();
        let body = tlog_tiles::Checkpoint::new(origin, texts.len() as u64, root, "").unwrap().to_bytes();
        let checkpoint = note::sign(&body, &note_key, &time_key, time, &[]).unwrap();
        let got = serde_json::json!({
            "origin": origin,
            "noteSeed": hex(&note_seed),
            "timeSeed": hex(&time_seed),
            "time": time,
            "noteVkey": note_key.vkey(),
            "timeVkey": time_key.vkey(),
            "line": String::from_utf8_lossy(line),
            "entries": texts,
            "entryHashes": texts.iter().map(|t| hex(&tlog_tiles::record_hash(t.as_bytes()).0)).collect::<Vec<_>>(),
            "rootHash": hex(&root.0),
            "checkpoint": String::from_utf8(checkpoint.clone()).unwrap(),
        });
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("index/log-vectors.json");
        if std::env::var_os("CAIRN_WRITE_VECTORS").is_some() {
            std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
        }
        let want: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(got, want, "the log's bytes changed: index/log.md and its vectors say otherwise");
        // The yank binds the same line as the publish.
        assert_eq!(leaves[0].digest, leaves[1].digest);
        // And the checkpoint verifies with the vkeys.
        let keys = |k: &Key| note::PublicKey::parse(&k.vkey()).unwrap();
        let v = note::verify(&checkpoint, &keys(&note_key), Some(&keys(&time_key)), &[]).unwrap();
        assert_eq!((v.checkpoint.size(), v.newest_time), (3, time));
    }
}
