//! The static root in an S3-compatible object store (SPEC section 13):
//! object keys are the static root's keys under `[storage] prefix`, each
//! object carries the Cache-Control and Content-Type its URL is served
//! with, and a create-only write is a conditional PUT (`If-None-Match: *`),
//! so a blob is never overwritten even by another node.
//!
//! [`Storage`] is synchronous (its callers are the writer thread, the jobs
//! and the file server's blocking pool); the object store client is async,
//! so the storage owns a small runtime and each call waits for its answer
//! there. Never call it from an async task's thread.
//!
//! A [`Storage::put`] is durable at the next [`Storage::sync`], not when it
//! returns: here it starts the PUT and returns, so the documents of a write
//! group go to the store together (up to [`IN_FLIGHT`] at once) instead of
//! one round trip after another, and `sync` waits for them. Any other
//! request for a key with a PUT in flight waits for that PUT first, so
//! every caller still reads its own writes, in order.

use bytes::Bytes;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, ObjectMeta, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig,
    UpdateVersion,
};
use std::future::Future;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::flights::Flights;
use super::storage::{FileId, ReadSeek, Storage};
use crate::config;

pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    /// `""` or a prefix ending in `/`.
    prefix: String,
    /// `Some` until drop (a runtime is shut down, not dropped, so dropping
    /// the storage from async code is fine).
    runtime: Option<tokio::runtime::Runtime>,
    /// The PUTs in flight.
    flights: Flights,
    /// Requests by kind since the last `sync` (logged there, at debug).
    requests: Requests,
    /// The objects' Cache-Control for shared caches (`[cdn]`).
    edge: super::Edge,
}

#[derive(Default)]
struct Requests {
    get: AtomicU64,
    head: AtomicU64,
    put: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
}

impl Requests {
    /// Counts a request; at trace, logs it with its key (which request
    /// of a write group reads what).
    fn count(counter: &AtomicU64, method: &str, key: &str) {
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(method, key, "object request");
    }

    /// Logs the counts and starts over.
    fn log(&self, waited: Duration) {
        let take = |c: &AtomicU64| c.swap(0, Ordering::Relaxed);
        let (get, head, put, list, delete) =
            (take(&self.get), take(&self.head), take(&self.put), take(&self.list), take(&self.delete));
        if get + head + put + list + delete > 0 {
            tracing::debug!(
                get,
                head,
                put,
                list,
                delete,
                sync_ms = waited.as_millis() as u64,
                "object requests"
            );
        }
    }
}

/// A store that stops answering fails a write in seconds, not minutes:
/// the writer answers 503 and the client retries.
const RETRIES: usize = 3;
const RETRY_FOR: Duration = Duration::from_secs(15);

impl ObjectStorage {
    /// The bucket `[storage]` names; credentials from the `AWS_*`
    /// environment. Objects are written with `edge`'s Cache-Control.
    pub fn open(cfg: &config::Storage, edge: super::Edge) -> io::Result<ObjectStorage> {
        let bucket = cfg
            .bucket
            .as_deref()
            .ok_or_else(|| io::Error::other("[storage] kind = \"s3\" needs a bucket"))?;
        let retry = RetryConfig { max_retries: RETRIES, retry_timeout: RETRY_FOR, ..Default::default() };
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            // If-None-Match for create-only writes, If-Match for updates.
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_retry(retry);
        if let Some(endpoint) = &cfg.endpoint {
            b = b
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if let Some(region) = &cfg.region {
            b = b.with_region(region);
        }
        let store = b.build().map_err(io::Error::other)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-storage")
            .enable_all()
            .build()?;
        let prefix = match cfg.prefix.trim_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        Ok(ObjectStorage {
            store: Arc::new(store),
            prefix,
            runtime: Some(runtime),
            flights: Flights::new(),
            requests: Requests::default(),
            edge,
        })
    }

    fn path(&self, key: &str) -> ObjectPath {
        ObjectPath::from(format!("{}{key}", self.prefix))
    }

    /// Runs `f` on the storage's runtime and waits for it.
    fn run<T: Send + 'static, F: Future<Output = T> + Send + 'static>(
        &self,
        f: impl FnOnce(Arc<dyn ObjectStore>) -> F,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let fut = f(self.store.clone());
        self.runtime.as_ref().expect("running").spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().expect("the storage runtime answers")
    }

    /// Waits for the PUT of `key` in flight, if any.
    fn settle(&self, key: &str) {
        if let Some(done) = self.flights.of(key) {
            self.run(|_| done);
        }
    }

    /// Waits for every PUT in flight.
    fn settle_all(&self) {
        let all = self.flights.all();
        self.run(|_| futures_util::future::join_all(all));
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("running")
    }

    fn head(&self, key: &str) -> io::Result<Option<ObjectMeta>> {
        self.settle(key);
        Requests::count(&self.requests.head, "HEAD", key);
        let path = self.path(key);
        absent_as_none(self.run(|s| async move { s.head(&path).await }))
    }

    /// A PUT of `bytes` with the headers its URL is served with.
    fn put_request(
        &self,
        key: &str,
        bytes: &[u8],
        mode: PutMode,
    ) -> impl Future<Output = Result<Option<String>, object_store::Error>> + Send + 'static {
        Requests::count(&self.requests.put, "PUT", key);
        let url = super::url(key);
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, super::content_type(&url).into());
        attributes.insert(Attribute::CacheControl, super::cache_control(&url, self.edge).into_owned().into());
        let opts = PutOptions { mode, attributes, ..Default::default() };
        let (store, path) = (self.store.clone(), self.path(key));
        let payload = PutPayload::from(Bytes::copy_from_slice(bytes));
        async move { store.put_opts(&path, payload, opts).await.map(|r| r.e_tag) }
    }

    /// A conditional or durable PUT, answered now.
    fn put_mode(
        &self,
        key: &str,
        bytes: &[u8],
        mode: PutMode,
    ) -> Result<Option<String>, object_store::Error> {
        self.settle(key);
        let put = self.put_request(key, bytes, mode);
        let answer = self.run(|_| put);
        if answer.is_ok() {
            self.flights.settled(key);
        }
        answer
    }
}

impl Drop for ObjectStorage {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// An object's version: its ETag (or, without one, its time) and size.
fn file_id(meta: &ObjectMeta) -> FileId {
    let nanos = meta.last_modified.timestamp_nanos_opt().unwrap_or_default();
    let tag = meta.e_tag.clone().unwrap_or_else(|| nanos.to_string());
    FileId { ino: xxhash_rust::xxh3::xxh3_64(tag.as_bytes()), size: meta.size, mtime_ns: nanos }
}

fn absent_as_none<T>(r: Result<T, object_store::Error>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(io::Error::other(e)),
    }
}

impl Storage for ObjectStorage {
    fn read(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.open(key)?.map(|(_, mut r)| {
            let mut out = Vec::new();
            r.read_to_end(&mut out).expect("reading memory");
            out
        }))
    }

    /// The GETs at once (each after its key's PUT in flight, if any).
    fn read_many(&self, keys: &[String]) -> io::Result<Vec<Option<Vec<u8>>>> {
        keys.iter().for_each(|k| self.settle(k));
        let gets: Vec<_> = keys
            .iter()
            .map(|k| {
                Requests::count(&self.requests.get, "GET", k);
                let (store, path) = (self.store.clone(), self.path(k));
                async move { Ok::<_, object_store::Error>(store.get(&path).await?.bytes().await?.to_vec()) }
            })
            .collect();
        self.run(|_| futures_util::future::join_all(gets)).into_iter().map(absent_as_none).collect()
    }

    /// The whole object, read into memory: its version is the one of the
    /// bytes the GET answered.
    fn open(&self, key: &str) -> io::Result<Option<(FileId, Box<dyn ReadSeek>)>> {
        self.settle(key);
        Requests::count(&self.requests.get, "GET", key);
        let path = self.path(key);
        let got = self.run(|s| async move {
            let r = s.get(&path).await?;
            let meta = r.meta.clone();
            Ok::<_, object_store::Error>((meta, r.bytes().await?))
        });
        Ok(absent_as_none(got)?
            .map(|(meta, bytes)| (file_id(&meta), Box::new(io::Cursor::new(bytes)) as Box<dyn ReadSeek>)))
    }

    fn stat(&self, key: &str) -> io::Result<Option<FileId>> {
        Ok(self.head(key)?.map(|m| file_id(&m)))
    }

    /// Started, not awaited: see the module's comment.
    fn put(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        // One PUT of a key at a time, so the last one written wins.
        self.settle(key);
        let put = self.put_request(key, bytes, PutMode::Overwrite);
        self.flights.start(self.runtime(), key, async move { put.await.map(drop) });
        Ok(())
    }

    /// The conditional PUT in flight, with the others: found there is
    /// done too (the same name, the same bytes).
    fn put_new_unanswered(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        self.settle(key);
        let put = self.put_request(key, bytes, PutMode::Create);
        self.flights.start(self.runtime(), key, async move {
            match put.await {
                Ok(_) | Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                    Ok(())
                }
                Err(e) => Err(e),
            }
        });
        Ok(())
    }

    fn put_new(&self, key: &str, bytes: &[u8]) -> io::Result<bool> {
        match self.put_mode(key, bytes, PutMode::Create) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                Ok(false)
            }
            Err(e) => Err(io::Error::other(e)),
        }
    }

    fn read_tagged(&self, key: &str) -> io::Result<Option<(Vec<u8>, String)>> {
        self.settle(key);
        Requests::count(&self.requests.get, "GET", key);
        let path = self.path(key);
        let got = self.run(|s| async move {
            let r = s.get(&path).await?;
            let tag = r.meta.e_tag.clone().unwrap_or_default();
            Ok::<_, object_store::Error>((r.bytes().await?.to_vec(), tag))
        });
        absent_as_none(got)
    }

    fn swap(&self, key: &str, bytes: &[u8], tag: Option<&str>) -> io::Result<Option<String>> {
        let mode = match tag {
            Some(t) => PutMode::Update(UpdateVersion { e_tag: Some(t.to_string()), version: None }),
            None => PutMode::Create,
        };
        match self.put_mode(key, bytes, mode) {
            Ok(tag) => Ok(Some(tag.unwrap_or_default())),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                Ok(None)
            }
            Err(e) => Err(io::Error::other(e)),
        }
    }

    /// An S3 PUT is durable when it returns.
    fn put_durable(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        self.put_mode(key, bytes, PutMode::Overwrite).map(drop).map_err(io::Error::other)
    }

    /// Objects have no directories: the files are put one by one (at
    /// once), so a reader may see some of them before the others.
    fn put_new_dir(&self, key: &str, files: &[(&str, &[u8])]) -> io::Result<()> {
        files.iter().try_for_each(|(name, bytes)| self.put(&format!("{key}/{name}"), bytes))
    }

    fn exists(&self, key: &str) -> bool {
        self.head(key).is_ok_and(|m| m.is_some())
    }

    fn size(&self, key: &str) -> io::Result<Option<u64>> {
        Ok(self.head(key)?.map(|m| m.size))
    }

    fn remove(&self, key: &str) -> io::Result<()> {
        self.settle(key);
        Requests::count(&self.requests.delete, "DELETE", key);
        let path = self.path(key);
        absent_as_none(self.run(|s| async move { s.delete(&path).await }))?;
        self.flights.settled(key);
        Ok(())
    }

    fn list(&self, key: &str) -> io::Result<Vec<String>> {
        self.settle_all();
        Requests::count(&self.requests.list, "LIST", key);
        let path = self.path(key);
        let listed = self.run(|s| async move { s.list_with_delimiter(Some(&path)).await });
        let listed = absent_as_none(listed)?.map(|l| {
            let dirs = l.common_prefixes.into_iter();
            let names = dirs.chain(l.objects.into_iter().map(|o| o.location));
            names.filter_map(|p| p.filename().map(str::to_string)).collect()
        });
        Ok(listed.unwrap_or_default())
    }

    /// One flat listing (paged by the client), not a request per directory.
    fn list_all(&self, key: &str) -> io::Result<Vec<String>> {
        use futures_util::TryStreamExt;
        self.settle_all();
        Requests::count(&self.requests.list, "LIST", key);
        let path = self.path(key);
        let dir = format!("{path}/");
        let listed = self.run(|s| async move { s.list(Some(&path)).try_collect::<Vec<_>>().await });
        let listed = absent_as_none(listed)?.unwrap_or_default();
        Ok(listed
            .into_iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(&dir).map(str::to_string))
            .collect())
    }

    fn age(&self, key: &str) -> io::Result<Option<Duration>> {
        Ok(self.head(key)?.map(|m| (chrono::Utc::now() - m.last_modified).to_std().unwrap_or_default()))
    }

    /// Waits for the PUTs in flight: each is durable once answered.
    fn sync(&self) -> io::Result<()> {
        let started = std::time::Instant::now();
        self.settle_all();
        self.requests.log(started.elapsed());
        self.flights.failure().map_or(Ok(()), Err)
    }

    fn cheap_reads(&self) -> bool {
        false
    }

    fn local_path(&self, _key: &str) -> Option<std::path::PathBuf> {
        None
    }

    /// No shared counter: the hot cache revalidates by age instead.
    fn generation(&self) -> Option<u64> {
        None
    }
}
