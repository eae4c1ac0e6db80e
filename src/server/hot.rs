//! The hot read cache: small static files held in memory with their
//! headers, validator and compressed variants, bounded in bytes so memory
//! stays flat however large the registry grows.
//!
//! Freshness: every write to the static root in this process (the writer,
//! the jobs on the server's timers) tells the cache the key it changed
//! (`StaticRoot::observe`), so a 201 is never followed by a stale read.
//! Every writing process, this one or another (`cairn rebuild`, `cairn
//! admin` on the data directory), also moves the root's shared change
//! counter (`layout::generation`); a hit reads it (one atomic load) and,
//! once it moved, checks each entry against its file (one `stat`) before
//! serving it again. Files changed by hand, outside cairn, are noticed by
//! that check at most [`REVALIDATE_AFTER`] after an entry's last one.
//!
//! On object storage there is no shared counter and a check is a request
//! (HEAD), never made on an async thread: an entry older than
//! [`OBJECT_REVALIDATE_AFTER`] is not served by [`HotCache::get`]; the
//! blocking load checks it ([`HotCache::unchecked`]) and serves it again
//! if the object is still that version. Another node's writes are so seen
//! within that time, shorter than the shortest max-age of SPEC section 6.

use bytes::Bytes;
use http::HeaderValue;
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

pub use crate::layout::FileId;
use crate::layout::{self, Key, StaticRoot};

/// How long an entry is served without looking at its file again.
pub const REVALIDATE_AFTER: Duration = Duration::from_secs(1);
/// The same on object storage, where a look is a request.
pub const OBJECT_REVALIDATE_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

impl Encoding {
    /// The best encoding an `Accept-Encoding` value allows: br, then gzip.
    pub fn choose(accept: &str) -> Encoding {
        let mut gzip = false;
        let mut br = false;
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
                .next()
                .unwrap_or(1.0);
            if q <= 0.0 {
                continue;
            }
            match coding.as_str() {
                "br" => br = true,
                "gzip" | "x-gzip" => gzip = true,
                "*" => (br, gzip) = (true, true),
                _ => {}
            }
        }
        if br {
            Encoding::Brotli
        } else if gzip {
            Encoding::Gzip
        } else {
            Encoding::Identity
        }
    }

    /// The Content-Encoding value (none for identity).
    pub fn name(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
            Encoding::Brotli => Some("br"),
        }
    }
}

/// One file version as served.
pub struct Entry {
    pub id: FileId,
    pub body: Bytes,
    pub cache_control: HeaderValue,
    pub content_type: &'static str,
    pub compressible: bool,
    pub public: bool,
    pub ranges: bool,
    /// Strong validators, one per representation.
    etags: [(String, HeaderValue); 3],
    gzip: OnceLock<Option<Bytes>>,
    brotli: OnceLock<Option<Bytes>>,
    /// When (ms since the cache's start) and at which epoch the file was
    /// last seen to be this version.
    checked: AtomicU64,
    checked_epoch: AtomicU64,
    used: AtomicU64,
}

impl Entry {
    pub fn new(key: &Key, id: FileId, body: Bytes, edge: layout::Edge) -> Entry {
        let (cache_control, content_type, public, ranges) = describe(key, edge);
        let tag = format!("{:x}-{:x}-{:x}", id.ino, id.size, id.mtime_ns as u64);
        let etag = |suffix: &str| {
            let s = format!("\"{tag}{suffix}\"");
            let v = HeaderValue::from_str(&s).expect("hex is a header value");
            (s, v)
        };
        Entry {
            id,
            body,
            cache_control,
            content_type,
            compressible: crate::layout::compressible(content_type),
            public,
            ranges,
            etags: [etag(""), etag(".gz"), etag(".br")],
            gzip: OnceLock::new(),
            brotli: OnceLock::new(),
            checked: AtomicU64::new(0),
            checked_epoch: AtomicU64::new(0),
            used: AtomicU64::new(0),
        }
    }

    fn slot(e: Encoding) -> usize {
        match e {
            Encoding::Identity => 0,
            Encoding::Gzip => 1,
            Encoding::Brotli => 2,
        }
    }

    pub fn etag(&self, e: Encoding) -> &HeaderValue {
        &self.etags[Entry::slot(e)].1
    }

    pub fn etag_str(&self, e: Encoding) -> &str {
        &self.etags[Entry::slot(e)].0
    }

    /// The body in encoding `e`, compressed on first use; `None` when the
    /// file is too small to gain from it or the variant would not be smaller.
    pub fn variant(&self, e: Encoding) -> Option<Bytes> {
        if e == Encoding::Identity {
            return Some(self.body.clone());
        }
        if self.body.len() < crate::layout::COMPRESS_MIN_BYTES {
            return None;
        }
        let slot = match e {
            Encoding::Gzip => &self.gzip,
            _ => &self.brotli,
        };
        slot.get_or_init(|| compress(&self.body, e).filter(|c| c.len() < self.body.len())).clone()
    }

    /// Bytes held for this entry (body and variants made so far).
    fn weight(&self) -> usize {
        let v = |s: &OnceLock<Option<Bytes>>| s.get().and_then(|b| b.as_ref()).map_or(0, Bytes::len);
        self.body.len() + v(&self.gzip) + v(&self.brotli) + 256
    }
}

/// Whether an entry's URL is public (CORS) and what it is served as.
fn describe(key: &Key, edge: layout::Edge) -> (HeaderValue, &'static str, bool, bool) {
    let url = key.url();
    let content_type = layout::content_type(&url);
    let cache_control = HeaderValue::from_str(&layout::cache_control(&url, edge)).expect("ASCII");
    (cache_control, content_type, key.is_public(), layout::ranges_allowed(&url))
}

fn compress(body: &[u8], e: Encoding) -> Option<Bytes> {
    let mut out = Vec::with_capacity(body.len() / 3);
    match e {
        Encoding::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(&mut out, flate2::Compression::best());
            enc.write_all(body).ok()?;
            enc.finish().ok()?;
        }
        Encoding::Brotli => {
            // Quality 9 of 11: within a few percent of 11 on JSON, many times faster.
            let params = brotli::enc::BrotliEncoderParams { quality: 9, lgwin: 22, ..Default::default() };
            brotli::BrotliCompress(&mut &body[..], &mut out, &params).ok()?;
        }
        Encoding::Identity => return None,
    }
    Some(Bytes::from(out))
}

/// The cache, keyed by static-root key.
pub struct HotCache {
    root: Arc<StaticRoot>,
    /// A local root, checked inline with a `stat`.
    local: bool,
    map: RwLock<HashMap<String, Arc<Entry>>>,
    held: AtomicUsize,
    budget: usize,
    max_file: usize,
    /// What shared caches in front are told (`[cdn]`).
    edge: layout::Edge,
    started: Instant,
    tick: AtomicU64,
    /// The root's change counter as last seen, and the epoch it moves:
    /// an entry checked at an older epoch is checked again.
    seen: AtomicU64,
    epoch: AtomicU64,
}

impl HotCache {
    /// A cache of the files of `root` up to `max_file` bytes, `budget`
    /// bytes in all (0: nothing is cached), served with `edge`'s headers.
    pub fn new(root: Arc<StaticRoot>, budget: usize, max_file: usize, edge: layout::Edge) -> HotCache {
        HotCache {
            local: root.local_path("").is_some(),
            seen: AtomicU64::new(root.generation().unwrap_or(0)),
            root,
            map: RwLock::default(),
            held: AtomicUsize::new(0),
            budget,
            max_file,
            edge,
            started: Instant::now(),
            tick: AtomicU64::new(0),
            epoch: AtomicU64::new(1),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64 + 1
    }

    /// The epoch now: moved on when the root's change counter moved.
    pub fn epoch(&self) -> u64 {
        if let Some(g) = self.root.generation() {
            if self.seen.swap(g, Ordering::AcqRel) != g {
                return self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
            }
        }
        self.epoch.load(Ordering::Acquire)
    }

    /// The entry for `key` if it is cached and still its file's version.
    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        let entry = self.map.read().unwrap().get(key).cloned()?;
        let (epoch, now) = (self.epoch(), self.now_ms());
        let after = if self.local { REVALIDATE_AFTER } else { OBJECT_REVALIDATE_AFTER };
        let stale_by_time =
            now.saturating_sub(entry.checked.load(Ordering::Relaxed)) > after.as_millis() as u64;
        if entry.checked_epoch.load(Ordering::Acquire) < epoch || stale_by_time {
            if !self.local {
                return None; // checked by the load, off the async thread
            }
            if !self.root.stat(key).is_ok_and(|id| id == Some(entry.id)) {
                self.invalidate(key);
                return None;
            }
            self.checked(&entry, epoch);
        }
        entry.used.store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        Some(entry)
    }

    fn checked(&self, entry: &Entry, epoch: u64) {
        entry.checked.store(self.now_ms(), Ordering::Relaxed);
        entry.checked_epoch.fetch_max(epoch, Ordering::AcqRel);
    }

    /// On the blocking pool: the entry [`HotCache::get`] would not serve
    /// unchecked, if the file is still its version (one `stat`, a HEAD on
    /// object storage); otherwise it is dropped.
    pub fn unchecked(&self, key: &str, epoch: u64) -> Option<Arc<Entry>> {
        let entry = self.map.read().unwrap().get(key).cloned()?;
        if !self.root.stat(key).is_ok_and(|id| id == Some(entry.id)) {
            self.invalidate(key);
            return None;
        }
        self.checked(&entry, epoch);
        entry.used.store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        Some(entry)
    }

    pub fn edge(&self) -> layout::Edge {
        self.edge
    }

    /// Makes the entry of a file just read, keeping it if it fits. `epoch`
    /// is [`HotCache::epoch`] as taken before the file was opened: a write
    /// after that makes the next hit check the file again. The clonable
    /// git repository is never kept: libgit2 writes it, not the static root.
    pub fn insert(&self, key: &Key, id: FileId, body: Bytes, epoch: u64) -> Arc<Entry> {
        let entry = Arc::new(Entry::new(key, id, body, self.edge));
        let keep =
            entry.body.len() <= self.max_file && self.budget > 0 && !key.as_str().starts_with("index.git/");
        if !keep {
            return entry;
        }
        entry.checked.store(self.now_ms(), Ordering::Relaxed);
        entry.checked_epoch.store(epoch, Ordering::Release);
        entry.used.store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        let mut map = self.map.write().unwrap();
        if let Some(old) = map.insert(key.as_str().to_string(), entry.clone()) {
            self.held.fetch_sub(old.weight().min(self.held.load(Ordering::Relaxed)), Ordering::Relaxed);
        }
        // Variants are counted when the entry is weighed again at eviction.
        self.held.fetch_add(entry.weight(), Ordering::Relaxed);
        if self.held.load(Ordering::Relaxed) > self.budget {
            self.evict(&mut map);
        }
        entry
    }

    /// Drops the least recently used entries down to 3/4 of the budget,
    /// weighing each with the variants it has made.
    fn evict(&self, map: &mut HashMap<String, Arc<Entry>>) {
        let mut by_use: Vec<(u64, String, usize)> =
            map.iter().map(|(k, e)| (e.used.load(Ordering::Relaxed), k.clone(), e.weight())).collect();
        let mut held: usize = by_use.iter().map(|e| e.2).sum();
        by_use.sort_unstable();
        for (_, key, weight) in by_use {
            if held <= self.budget / 4 * 3 {
                break;
            }
            map.remove(&key);
            held -= weight;
        }
        self.held.store(held, Ordering::Relaxed);
    }

    /// Forgets `key` (a write replaced or removed its file).
    pub fn invalidate(&self, key: &str) {
        let mut map = self.map.write().unwrap();
        if let Some(old) = map.remove(key) {
            self.held.fetch_sub(old.weight().min(self.held.load(Ordering::Relaxed)), Ordering::Relaxed);
        }
    }

    /// Bytes held now (bodies and variants), for the tests.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.map.read().unwrap().values().map(|e| e.weight()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_prefers_br_then_gzip_and_honours_q_zero() {
        assert_eq!(Encoding::choose("gzip, deflate, br"), Encoding::Brotli);
        assert_eq!(Encoding::choose("gzip"), Encoding::Gzip);
        assert_eq!(Encoding::choose("br;q=0, gzip;q=0.5"), Encoding::Gzip);
        assert_eq!(Encoding::choose("identity"), Encoding::Identity);
        assert_eq!(Encoding::choose("*"), Encoding::Brotli);
        assert_eq!(Encoding::choose("gzip;q=0"), Encoding::Identity);
    }

    #[test]
    fn the_cache_stays_within_its_budget_and_sees_replaced_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = Arc::new(StaticRoot::fs(dir.path()));
        let cache = HotCache::new(root.clone(), 10_000, 4_000, layout::Edge::Expiring);
        for i in 0..20 {
            let key = format!("api/v1/packages/p{i}.json");
            std::fs::create_dir_all(dir.path().join("api/v1/packages")).unwrap();
            std::fs::write(dir.path().join(&key), vec![b'x'; 1_000]).unwrap();
            let meta = std::fs::metadata(dir.path().join(&key)).unwrap();
            cache.insert(&Key::new(key), FileId::of(&meta), Bytes::from(vec![b'x'; 1_000]), cache.epoch());
            assert!(cache.held() <= 10_000, "{} held", cache.held());
        }
        // The newest is still there; an older file too large for the cache never was.
        assert!(cache.get("api/v1/packages/p19.json").is_some());
        let id = FileId { ino: 1, size: 5_000, mtime_ns: 0 };
        let big = cache.insert(&Key::new("big.json".into()), id, Bytes::from(vec![0; 5_000]), cache.epoch());
        assert_eq!(big.body.len(), 5_000);
        assert!(cache.get("big.json").is_none());
        cache.invalidate("api/v1/packages/p19.json");
        assert!(cache.get("api/v1/packages/p19.json").is_none());

        // A file read before a write (here by another handle on the root,
        // as another process would) is checked again on its next hit.
        let key = "api/v1/packages/p18.json";
        let epoch = cache.epoch();
        let meta = std::fs::metadata(dir.path().join(key)).unwrap();
        cache.insert(&Key::new(key.into()), FileId::of(&meta), Bytes::from_static(b"old"), epoch);
        assert!(cache.get(key).is_some());
        StaticRoot::fs(dir.path()).put(key, b"new").unwrap();
        assert!(cache.get(key).is_none(), "replaced by another process");
    }

    #[test]
    fn variants_are_made_once_and_only_when_smaller() {
        let id = FileId { ino: 1, size: 0, mtime_ns: 0 };
        let json = Entry::new(
            &Key::new("api/v1/packages/a.json".into()),
            id,
            Bytes::from(vec![b'a'; 4096]),
            layout::Edge::Expiring,
        );
        let gz = json.variant(Encoding::Gzip).unwrap();
        assert!(gz.len() < 100);
        assert_eq!(json.variant(Encoding::Gzip).unwrap().as_ptr(), gz.as_ptr(), "compressed once");
        let br = json.variant(Encoding::Brotli).unwrap();
        let mut plain = Vec::new();
        brotli::BrotliDecompress(&mut &br[..], &mut plain).unwrap();
        assert_eq!(plain, vec![b'a'; 4096]);
        let tiny = Entry::new(
            &Key::new("api/v1/packages/b.json".into()),
            id,
            Bytes::from_static(b"{}"),
            layout::Edge::Expiring,
        );
        assert!(tiny.variant(Encoding::Gzip).is_none());
        let random: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let noise = Entry::new(
            &Key::new("api/v1/packages/c.json".into()),
            id,
            Bytes::from(random),
            layout::Edge::Expiring,
        );
        assert!(noise.variant(Encoding::Brotli).is_none_or(|b| b.len() < 4096));
    }
}
