//! The one storage interface every reader and writer of the static root
//! goes through. The filesystem is the embedded default; an object store
//! ([`super::object::ObjectStorage`], S3) is another [`Storage`]: its keys
//! are the same strings, and each object takes its headers from
//! [`super::cache_control`] and [`super::content_type`].
//!
//! Durability is per batch: [`Storage::put`] replaces atomically (a reader
//! sees the old bytes or the new, never half) and [`Storage::sync`] makes
//! every put before it durable, so a writer syncs once before anything that
//! depends on the batch (an index commit, `health.json`).

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use super::generation::Generation;
use super::Layout;
use crate::fsutil;

/// A stored file's version: it changes whenever the bytes do (on disk an
/// atomic write replaces the inode; an object has a new ETag), so it is
/// the validator the file server sends and the hot cache checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
}

impl FileId {
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        }
    }
}

/// An open file to serve: read from the start, or from an offset.
pub trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

pub trait Storage: Send + Sync {
    /// The bytes at `key`, `None` if there is no such file.
    fn read(&self, key: &str) -> io::Result<Option<Vec<u8>>>;
    /// [`Storage::read`] of each key (a bucket asks for them at once).
    fn read_many(&self, keys: &[String]) -> io::Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|k| self.read(k)).collect()
    }
    /// The file at `key` with the version of exactly the bytes it reads;
    /// `None` if there is no such file (or `key` is a directory).
    fn open(&self, key: &str) -> io::Result<Option<(FileId, Box<dyn ReadSeek>)>>;
    /// The version of the file at `key`, if there is one.
    fn stat(&self, key: &str) -> io::Result<Option<FileId>>;
    /// Replaces `key` atomically; durable after the next [`Storage::sync`].
    fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()>;
    /// Creates `key` unless it exists (then `false`, and it is left as it
    /// is): content-addressed files are never overwritten. Durable after
    /// the next [`Storage::sync`].
    fn put_new(&self, key: &str, bytes: &[u8]) -> io::Result<bool>;
    /// [`Storage::put_new`] without the answer: where a put is a request
    /// in flight (a bucket), it need not be waited for here; whether it
    /// created the key or found it, the next [`Storage::sync`] says it is
    /// there (or fails).
    fn put_new_unanswered(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        self.put_new(key, bytes).map(drop)
    }
    /// Replaces `key` atomically and durably now.
    fn put_durable(&self, key: &str, bytes: &[u8]) -> io::Result<()>;
    /// The bytes at `key` with their version's tag, which [`Storage::swap`]
    /// compares.
    fn read_tagged(&self, key: &str) -> io::Result<Option<(Vec<u8>, String)>>;
    /// Compare-and-swap, durable now: replaces `key` only while it is at
    /// version `tag` (`None`: only while absent) and returns the new tag;
    /// `None` when another write came first. On a bucket this is the
    /// store's conditional PUT, so it holds across nodes; on a disk, across
    /// the processes that take the writer lock.
    fn swap(&self, key: &str, bytes: &[u8], tag: Option<&str>) -> io::Result<Option<String>>;
    /// Creates the directory `key`, which does not exist, holding `files`
    /// (names relative to it) all at once.
    fn put_new_dir(&self, key: &str, files: &[(&str, &[u8])]) -> io::Result<()>;
    fn exists(&self, key: &str) -> bool;
    /// The size of the file at `key`, if present.
    fn size(&self, key: &str) -> io::Result<Option<u64>>;
    /// Removes `key` if present.
    fn remove(&self, key: &str) -> io::Result<()>;
    /// The entry names directly under the directory `key` (none if absent).
    fn list(&self, key: &str) -> io::Result<Vec<String>>;
    /// Every file under the directory `key`, as paths relative to it.
    fn list_all(&self, key: &str) -> io::Result<Vec<String>>;
    /// Age of the file at `key`, if present.
    fn age(&self, key: &str) -> io::Result<Option<std::time::Duration>>;
    /// Makes every put so far durable.
    fn sync(&self) -> io::Result<()>;
    /// Whether a read costs little next to a write: on a disk yes (so
    /// [`StaticRoot::put_doc`] compares first, and an unchanged file keeps
    /// its version); in a bucket a GET is a round trip like a PUT, and what
    /// a writer wrote itself is not read back where it can know it.
    fn cheap_reads(&self) -> bool;
    /// The local path of `key`, for what needs a filesystem (the git
    /// repository, the embedded file server); `None` on object storage.
    fn local_path(&self, key: &str) -> Option<PathBuf>;
    /// A counter every process writing this root moves after each write
    /// ([`super::generation`]); `None` where there is none.
    fn generation(&self) -> Option<u64>;
}

/// A static root on the local filesystem.
pub struct FsStorage {
    root: PathBuf,
    /// `None` on a read-only directory (nothing writes it there).
    generation: Option<Generation>,
}

impl FsStorage {
    pub fn new(root: &Path) -> FsStorage {
        let generation = Generation::open(&root.join(GENERATION_FILE)).ok();
        FsStorage { root: root.to_path_buf(), generation }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn changed<T>(&self, r: io::Result<T>) -> io::Result<T> {
        if let Some(g) = &self.generation {
            g.bump();
        }
        r
    }
}

fn fs_tag(id: FileId) -> String {
    format!("{:x}-{:x}-{:x}", id.ino, id.size, id.mtime_ns)
}

/// The shared change counter, a dotfile (never served) at the root's top.
const GENERATION_FILE: &str = ".generation";

impl Storage for FsStorage {
    fn read(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(key)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::IsADirectory => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn open(&self, key: &str) -> io::Result<Option<(FileId, Box<dyn ReadSeek>)>> {
        let file = match std::fs::File::open(self.path(key)) {
            Ok(f) => f,
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        // Stat'ed open: the version describes the bytes read even if the
        // file is replaced meanwhile.
        let meta = file.metadata()?;
        Ok(meta.is_file().then(|| (FileId::of(&meta), Box::new(file) as Box<dyn ReadSeek>)))
    }

    fn stat(&self, key: &str) -> io::Result<Option<FileId>> {
        match std::fs::metadata(self.path(key)) {
            Ok(m) => Ok(m.is_file().then(|| FileId::of(&m))),
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        self.changed(fsutil::write_replace(&self.path(key), bytes))
    }

    fn put_new(&self, key: &str, bytes: &[u8]) -> io::Result<bool> {
        self.changed(fsutil::write_new(&self.path(key), bytes))
    }

    fn put_durable(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        self.changed(fsutil::write_atomic(&self.path(key), bytes))
    }

    fn put_new_dir(&self, key: &str, files: &[(&str, &[u8])]) -> io::Result<()> {
        self.changed(fsutil::write_new_dir(&self.path(key), files.iter().copied()))
    }

    fn read_tagged(&self, key: &str) -> io::Result<Option<(Vec<u8>, String)>> {
        let Some((id, mut file)) = self.open(key)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(Some((bytes, fs_tag(id))))
    }

    fn swap(&self, key: &str, bytes: &[u8], tag: Option<&str>) -> io::Result<Option<String>> {
        if self.stat(key)?.map(fs_tag).as_deref() != tag {
            return Ok(None);
        }
        self.put_durable(key, bytes)?;
        Ok(self.stat(key)?.map(fs_tag))
    }

    fn exists(&self, key: &str) -> bool {
        self.path(key).exists()
    }

    fn size(&self, key: &str) -> io::Result<Option<u64>> {
        match std::fs::metadata(self.path(key)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn remove(&self, key: &str) -> io::Result<()> {
        let path = self.path(key);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            // A directory left empty goes too (a deleted version's README
            // directory); one that still holds files stays.
            _ => {
                let _ = std::fs::remove_dir(path.parent().expect("a key has a parent"));
                self.changed(Ok(()))
            }
        }
    }

    fn list(&self, key: &str) -> io::Result<Vec<String>> {
        match std::fs::read_dir(self.path(key)) {
            Ok(rd) => rd.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned())).collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    fn list_all(&self, key: &str) -> io::Result<Vec<String>> {
        let dir = self.path(key);
        let mut out = Vec::new();
        for entry in walkdir::WalkDir::new(&dir).into_iter() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) if e.io_error().is_some_and(|e| e.kind() == io::ErrorKind::NotFound) => continue,
                Err(e) => return Err(e.into()),
            };
            if entry.file_type().is_file() {
                out.push(entry.path().strip_prefix(&dir).expect("under dir").to_string_lossy().into_owned());
            }
        }
        Ok(out)
    }

    fn age(&self, key: &str) -> io::Result<Option<std::time::Duration>> {
        match std::fs::metadata(self.path(key)) {
            Ok(m) => Ok(Some(m.modified()?.elapsed().unwrap_or_default())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn sync(&self) -> io::Result<()> {
        fsutil::sync_filesystem(&self.root)
    }

    fn cheap_reads(&self) -> bool {
        true
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        Some(self.path(key))
    }

    fn generation(&self) -> Option<u64> {
        self.generation.as_ref().map(Generation::get)
    }
}

/// Something that must hear of every changed key at once (the server's
/// hot read cache).
pub type Observer = Arc<dyn Fn(&str) + Send + Sync>;

/// The static root: a [`Storage`] plus what every write owes readers.
/// Each changed key is told to the observers (so a cache never serves a
/// replaced file) and, while a write group has a journal open, kept in it
/// (the CDN purge of that group).
pub struct StaticRoot {
    storage: Arc<dyn Storage>,
    layout: Layout,
    /// Shared with the roots [`StaticRoot::below`] makes: one cache hears all.
    observers: Arc<RwLock<Vec<Observer>>>,
    journal: Mutex<Option<BTreeSet<String>>>,
    /// [`StaticRoot::update`]'s files as this root last wrote them, with
    /// their versions (on storage without cheap reads).
    known: Mutex<HashMap<String, (Vec<u8>, String)>>,
}

/// Attempts of one [`StaticRoot::update`] against other writers.
const UPDATE_TRIES: usize = 5;

impl StaticRoot {
    pub fn new(storage: Box<dyn Storage>, layout: Layout) -> StaticRoot {
        StaticRoot {
            storage: Arc::from(storage),
            layout,
            observers: Arc::default(),
            journal: Mutex::default(),
            known: Mutex::default(),
        }
    }

    /// The same storage seen with another registry's layout (a private
    /// organisation's, below its prefix), telling the same observers. Its
    /// journal is its own: a private registry's keys never reach a CDN purge.
    pub fn below(&self, layout: Layout) -> StaticRoot {
        StaticRoot {
            storage: self.storage.clone(),
            layout,
            observers: self.observers.clone(),
            journal: Mutex::default(),
            known: Mutex::default(),
        }
    }

    /// The public registry's root on the local filesystem.
    pub fn fs(root: &Path) -> StaticRoot {
        StaticRoot::new(Box::new(FsStorage::new(root)), Layout::public())
    }

    /// Where this registry's files are.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn observe(&self, observer: Observer) {
        self.observers.write().unwrap().push(observer);
    }

    fn changed(&self, key: &str) {
        for o in self.observers.read().unwrap().iter() {
            o(key);
        }
        if let Some(journal) = self.journal.lock().unwrap().as_mut() {
            journal.insert(key.to_string());
        }
    }

    /// Starts recording the keys every write changes.
    pub fn open_journal(&self) {
        *self.journal.lock().unwrap() = Some(BTreeSet::new());
    }

    /// The keys changed since [`StaticRoot::open_journal`]; stops recording.
    pub fn close_journal(&self) -> Vec<String> {
        self.journal.lock().unwrap().take().unwrap_or_default().into_iter().collect()
    }

    pub fn read(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        self.storage.read(key)
    }

    /// [`Storage::cheap_reads`].
    pub fn cheap_reads(&self) -> bool {
        self.storage.cheap_reads()
    }

    /// Each key's bytes, read at once where the storage can.
    pub fn read_many(&self, keys: &[String]) -> io::Result<Vec<Option<Vec<u8>>>> {
        self.storage.read_many(keys)
    }

    pub fn exists(&self, key: &str) -> bool {
        self.storage.exists(key)
    }

    pub fn open(&self, key: &str) -> io::Result<Option<(FileId, Box<dyn ReadSeek>)>> {
        self.storage.open(key)
    }

    pub fn stat(&self, key: &str) -> io::Result<Option<FileId>> {
        self.storage.stat(key)
    }

    /// Replaces `key` (durable at the next [`StaticRoot::sync`]).
    pub fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        self.storage.put(key, bytes)?;
        self.changed(key);
        Ok(())
    }

    /// Creates `key` unless it exists, durable at the next
    /// [`StaticRoot::sync`] ([`Storage::put_new_unanswered`]).
    pub fn put_new_unanswered(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        self.storage.put_new_unanswered(key, bytes)?;
        self.changed(key);
        Ok(())
    }

    /// Creates `key` unless it exists; whether it did ([`Storage::put_new`]).
    pub fn put_new(&self, key: &str, bytes: &[u8]) -> io::Result<bool> {
        let created = self.storage.put_new(key, bytes)?;
        if created {
            self.changed(key);
        }
        Ok(created)
    }

    /// Writes `key` unless it holds exactly `bytes` already (`old`, when
    /// the caller has read them); returns whether it wrote. The one "write
    /// if changed" of the code: rebuilds stay idempotent and cheap.
    pub fn put_if_changed(&self, key: &str, old: Option<&[u8]>, bytes: &[u8]) -> io::Result<bool> {
        if old == Some(bytes) {
            return Ok(false);
        }
        self.put(key, bytes)?;
        Ok(true)
    }

    /// [`StaticRoot::put_if_changed`], reading the current bytes first
    /// where that is cheap ([`Storage::cheap_reads`]); elsewhere a plain
    /// put (then `true`).
    pub fn put_doc(&self, key: &str, bytes: &[u8]) -> io::Result<bool> {
        if !self.storage.cheap_reads() {
            return self.put(key, bytes).map(|()| true);
        }
        let old = self.storage.read(key)?;
        self.put_if_changed(key, old.as_deref(), bytes)
    }

    pub fn read_tagged(&self, key: &str) -> io::Result<Option<(Vec<u8>, String)>> {
        self.storage.read_tagged(key)
    }

    /// Read-modify-write of `key`: `f` makes its new bytes from the current
    /// ones (`None`: no file). Where reads are cheap, a read and a put
    /// (durable at the next sync); elsewhere one conditional PUT (durable
    /// now) against the version this root last wrote, read again only when
    /// another writer changed it since.
    pub fn update(
        &self,
        key: &str,
        mut f: impl FnMut(Option<&[u8]>) -> io::Result<Vec<u8>>,
    ) -> io::Result<()> {
        if self.storage.cheap_reads() {
            let old = self.storage.read(key)?;
            let new = f(old.as_deref())?;
            return self.put_if_changed(key, old.as_deref(), &new).map(drop);
        }
        let mut known = self.known.lock().unwrap();
        for _ in 0..UPDATE_TRIES {
            let (old, tag) = match known.remove(key) {
                Some((bytes, tag)) => (Some(bytes), Some(tag)),
                None => self.storage.read_tagged(key)?.map_or((None, None), |(b, t)| (Some(b), Some(t))),
            };
            let new = f(old.as_deref())?;
            if let Some(tag) = self.storage.swap(key, &new, tag.as_deref())? {
                self.changed(key);
                known.insert(key.to_string(), (new, tag));
                return Ok(());
            }
        }
        Err(io::Error::other(format!("{key}: another writer changed it {UPDATE_TRIES} times running")))
    }

    /// [`Storage::swap`]: compare-and-swap on `key`.
    pub fn swap(&self, key: &str, bytes: &[u8], tag: Option<&str>) -> io::Result<Option<String>> {
        let swapped = self.storage.swap(key, bytes, tag)?;
        if swapped.is_some() {
            self.changed(key);
        }
        Ok(swapped)
    }

    /// Replaces `key` durably now (a file that names a state: a manifest,
    /// `health.json`).
    pub fn put_durable(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        self.storage.put_durable(key, bytes)?;
        self.changed(key);
        Ok(())
    }

    /// Creates a new directory holding `files` at once.
    pub fn put_new_dir(&self, key: &str, files: &[(&str, &[u8])]) -> io::Result<()> {
        self.storage.put_new_dir(key, files)?;
        for (name, _) in files {
            self.changed(&format!("{key}/{name}"));
        }
        Ok(())
    }

    pub fn remove(&self, key: &str) -> io::Result<()> {
        self.storage.remove(key)?;
        self.changed(key);
        Ok(())
    }

    pub fn list(&self, key: &str) -> io::Result<Vec<String>> {
        self.storage.list(key)
    }

    pub fn list_all(&self, key: &str) -> io::Result<Vec<String>> {
        self.storage.list_all(key)
    }

    pub fn size(&self, key: &str) -> io::Result<Option<u64>> {
        self.storage.size(key)
    }

    pub fn age(&self, key: &str) -> io::Result<Option<std::time::Duration>> {
        self.storage.age(key)
    }

    pub fn sync(&self) -> io::Result<()> {
        self.storage.sync()
    }

    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.storage.local_path(key)
    }

    pub fn generation(&self) -> Option<u64> {
        self.storage.generation()
    }
}
