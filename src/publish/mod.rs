//! The one write path. Request handlers validate uploads in parallel; a
//! single writer thread then takes writes (publish, yank, unyank, owner
//! changes, …) in groups, each read top to bottom as (`group.rs`):
//!
//! 1. plan: every change checked against the state as the group leaves it
//!    (`plan.rs`); a refusal is answered at once and changes nothing;
//! 2. commit, the only step that may fail the group: database rows (one
//!    transaction), blobs and signatures, one index commit per change in
//!    one pack, each durable before the next; a failure takes back the
//!    rows of every change that needed the index;
//! 3. effects (`effects.rs`): derived files, the search delta, summaries,
//!    made durable before the reply. One that fails never changes the
//!    answer: it is recorded, retried by the writer and at start, and
//!    health says `degraded` meanwhile; last, the CDN purge of what the
//!    group changed (one bounded attempt, kept and retried when it fails);
//! 4. the replies.
//!
//! Room is left in the commit step for what later comes there: the
//! writers' lease with its epoch, the transparency log's leaves.

mod checks;
pub use checks::may_act;
mod effects;
mod group;
mod lease;
mod plan;
mod siblings;
pub(crate) use checks::upstream_name;
pub use siblings::Preparing;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

use crate::db::Caller;
use crate::index::IndexLine;
use crate::registry::Registry;

/// Threads for a group's parallel loops on a bucket, where each item
/// mostly waits on round trips (a blob's conditional PUT, a package's
/// reads): enough for a group of clients to overlap them all.
const IO_THREADS: usize = 16;

/// Runs `f`, a group's parallel loop, where its items overlap: on a
/// bucket on a pool of [`IO_THREADS`] (rayon's global pool has one
/// thread per core, and would wait out the round trips one by one); on a
/// disk, where the work is the CPU's, on the global pool.
fn overlapped<R: Send>(reg: &Registry, f: impl FnOnce() -> R + Send) -> R {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    if reg.root.cheap_reads() {
        return f();
    }
    let pool = POOL.get_or_init(|| {
        let pool =
            rayon::ThreadPoolBuilder::new().num_threads(IO_THREADS).thread_name(|i| format!("cairn-io-{i}"));
        pool.build().map_err(|e| tracing::warn!(error = %e, "no I/O thread pool; the global one serves")).ok()
    });
    match pool {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

fn stopped() -> WriteError {
    WriteError::Internal(anyhow::anyhow!("the writer has stopped"))
}

/// A validated upload: the tarball and its index line, complete but for
/// `pubtime`, which the writer sets.
pub struct Upload {
    pub line: IndexLine,
    pub version: semver::Version,
    pub bytes: bytes::Bytes,
    pub readme: Option<Vec<u8>>,
}

/// What a write asks for.
pub enum Change {
    Publish(Box<Upload>),
    /// Yank (`true`) or unyank (`false`) one version.
    Yank {
        name: String,
        version: String,
        yanked: bool,
    },
    /// Add and remove owners by login.
    Owners {
        name: String,
        add: Vec<String>,
        remove: Vec<String>,
    },
    /// Claim a name without publishing (the caller becomes its owner).
    Register {
        name: String,
    },
    /// The caller's own account: revoke every token, leave every package,
    /// mark for purge after the grace period.
    DeleteAccount,
    /// An administrator's hard delete: blob, signature and index line go;
    /// the version number stays burned.
    HardDelete {
        name: String,
        version: String,
    },
    /// An owner changes what the package's `meta/` file says: its
    /// deprecation, its versions' deprecations, its npm dist-tags.
    Meta {
        name: String,
        edit: MetaEdit,
    },
    /// An administrator's delete of a whole package: every version's blob
    /// and line go; the version numbers stay burned and the name keeps its
    /// owners, so nobody else can take it.
    DeletePackage {
        name: String,
    },
    /// An administrator adds or replaces a security advisory (OSV JSON,
    /// validated by the caller) at `advisories/{id}.json`.
    Advisory {
        id: String,
        json: Vec<u8>,
    },
    /// An upstream's index file for a name with no local package, as cairn
    /// serves it (SPEC section 16): committed as `cache {name}` when it
    /// differs from the index's.
    Cache {
        name: String,
        file: Vec<u8>,
        /// The upstream and its answer's validators, recorded with the commit.
        row: crate::db::upstream::Cached,
    },
    /// An administrator claims a name an upstream offers for local use;
    /// its cached lines leave the index.
    Claim {
        name: String,
    },
}

/// A change of a package's `meta/` file.
pub enum MetaEdit {
    /// The package deprecated (`Some`, with a message and maybe a
    /// replacement) or that undone (`None`); the rest of the file stays.
    Package(Option<crate::index::Meta>),
    /// npm's `deprecate name@range`: each version's message (empty: undone).
    Versions(BTreeMap<String, String>),
    /// npm's dist-tag set to a version, or removed (`None`).
    Tag { tag: String, version: Option<String> },
}

/// Who asks: an authenticated caller, or the operator (admin listener or
/// CLI on the data directory), who is not subject to ownership.
pub enum Actor {
    User(Caller),
    Admin,
}

impl Actor {
    /// Who the commit names in `Published-By`.
    fn login(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Actor::User(c) => c.login(),
            Actor::Admin => "(administrator)".into(),
        }
    }

    fn caller(&self) -> Result<&Caller, WriteError> {
        match self {
            Actor::User(c) => Ok(c),
            Actor::Admin => Err(WriteError::Invalid("this change needs a user account".into())),
        }
    }
}

pub struct WriteRequest {
    pub actor: Actor,
    pub addr: Option<String>,
    pub change: Change,
}

/// What a successful publish returns (201 body).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub blake3: String,
    pub size_bytes: u64,
    pub signature: String,
    pub index_commit: String,
    pub published_at: String,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Published(Published),
    Yanked {
        yanked: bool,
    },
    Owners {
        owners: Vec<String>,
    },
    Registered {
        name: String,
        owner: String,
        created: bool,
    },
    AccountDeleted {
        purge_after: String,
        packages: Vec<String>,
    },
    Deleted,
    /// The package's meta file as it is now (empty: not deprecated).
    Deprecated {
        name: String,
        meta: crate::index::Meta,
    },
    /// The versions a whole-package delete removed.
    PackageDeleted {
        versions: Vec<String>,
    },
    Advisory {
        id: String,
    },
    /// Whether a cache change committed anything.
    Cached {
        changed: bool,
    },
    /// Whether a claim was new.
    Claimed {
        new: bool,
    },
}

/// Why the writer refused or failed a write.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A local publish or registration of a name an upstream offers (409
    /// `upstream-name`).
    #[error("{0}")]
    UpstreamName(String),
    /// A publish would take an owner past its quota (413 `quota-exceeded`).
    #[error("{0}")]
    QuotaExceeded(Box<QuotaExceeded>),
    /// The storage cannot take writes now (full, read-only, failing): 503,
    /// try again later; nothing of the write stays behind.
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl WriteError {
    /// The error's code in the API's answer.
    pub fn code(&self) -> &'static str {
        match self {
            WriteError::Invalid(_) => "invalid",
            WriteError::Forbidden(_) => "forbidden",
            WriteError::NotFound(_) => "not-found",
            WriteError::Conflict(_) => "conflict",
            WriteError::UpstreamName(_) => "upstream-name",
            WriteError::QuotaExceeded(_) => "quota-exceeded",
            WriteError::Unavailable(_) => "unavailable",
            WriteError::Internal(_) => "internal",
        }
    }

    /// A failure of the commit step: `Unavailable` when the storage under
    /// it is full, read-only or failing, else `Internal`.
    pub fn of_storage(e: anyhow::Error) -> WriteError {
        match storage_trouble(&e) {
            Some(why) => WriteError::Unavailable(format!(
                "the registry cannot store writes now ({why}); try again later"
            )),
            None => WriteError::Internal(e),
        }
    }
}

/// A refused publish's owner, its usage before, its limit and the size asked.
#[derive(Debug)]
pub struct QuotaExceeded {
    pub owner: crate::db::quota::Owner,
    pub usage: u64,
    pub limit: u64,
    pub size: u64,
}

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let owner = match &self.owner {
            crate::db::quota::Owner::User { login, .. } => format!("user `{login}`"),
            crate::db::quota::Owner::Org { slug, .. } => format!("organisation `{slug}`"),
        };
        write!(
            f,
            "this publish ({} bytes) would take {owner} past its quota: usage {} bytes, limit {} bytes",
            self.size, self.usage, self.limit
        )
    }
}

/// What about the storage made `e` fail, if that is why it did.
fn storage_trouble(e: &anyhow::Error) -> Option<&'static str> {
    // The database's own: SQLite's full disk or read-only file, a lost or
    // refused Postgres connection.
    if let Some(why) = crate::db::conn::unavailable(e) {
        return Some(why);
    }
    if e.chain().any(|c| c.is::<lease::LeaseUnavailable>()) {
        return Some("the writer lease is elsewhere");
    }
    for cause in e.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.raw_os_error() {
                Some(libc::ENOSPC) | Some(libc::EDQUOT) => return Some("no space left"),
                Some(libc::EROFS) => return Some("read-only storage"),
                Some(libc::EIO) => return Some("I/O error"),
                _ => {}
            }
        }
        if let Some(g) = cause.downcast_ref::<git2::Error>() {
            let m = g.message();
            if m.contains("No space left") || m.contains("Disk quota") {
                return Some("no space left");
            }
            if m.contains("Read-only file system") {
                return Some("read-only storage");
            }
            if m.contains("Input/output error") {
                return Some("I/O error");
            }
        }
    }
    None
}

type Reply = oneshot::Sender<Result<Outcome, WriteError>>;

struct Job {
    req: WriteRequest,
    reply: Reply,
}

impl Job {
    /// Answers the job, counting the answer by kind and result.
    fn answer(self, result: Result<Outcome, WriteError>) {
        let kind = plan::describe(&self.req.change).0;
        crate::metrics::get().write(kind, result.as_ref().map_or_else(WriteError::code, |_| "ok"));
        let _ = self.reply.send(result);
    }
}

/// Effects committed writes still owe, with the error that stopped them;
/// shared with health.
pub type Pending = Arc<Mutex<BTreeMap<crate::effect::Effect, String>>>;

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    pending: Pending,
    pusher: Option<crate::index::remotes::Pusher>,
    siblings: siblings::Siblings,
}

impl Writer {
    /// Starts the writer thread. It owns its own database connection, runs
    /// pack consolidation between groups and retries pending effects.
    pub fn start(reg: Arc<Registry>) -> anyhow::Result<Writer> {
        let (tx, rx) = mpsc::channel::<Job>();
        let pending = Pending::default();
        let mut worker = group::Worker::new(reg, pending.clone(), true)?;
        worker.retry_alone();
        let (pusher, siblings) = (worker.pusher.clone(), worker.siblings.clone());
        std::thread::Builder::new().name("cairn-writer".into()).spawn(move || worker.run(rx))?;
        Ok(Writer { tx, pending, pusher, siblings })
    }

    /// Where each `[index] remotes` entry stands (health's `remotes`).
    pub fn remotes(&self) -> Vec<crate::index::remotes::RemoteStatus> {
        self.pusher.as_ref().map(|p| p.status()).unwrap_or_default()
    }

    /// The effects still owed, with their errors (health's `degraded`),
    /// the CDN purges apart ([`Writer::purges_owed`]).
    pub fn pending(&self) -> Vec<(String, String)> {
        let p = self.pending.lock().unwrap();
        let owed = p.iter().filter(|(k, _)| !matches!(k, crate::effect::Effect::Purge(_)));
        owed.map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    /// The URL paths whose CDN purge is owed, and the last error (health's `cdn`).
    pub fn purges_owed(&self) -> (usize, Option<String>) {
        let p = self.pending.lock().unwrap();
        let owed: Vec<&String> =
            p.iter().filter(|(k, _)| matches!(k, crate::effect::Effect::Purge(_))).map(|(_, v)| v).collect();
        (owed.len(), owed.first().map(|e| e.to_string()))
    }

    async fn submit(&self, req: WriteRequest) -> Result<Outcome, WriteError> {
        self.submit_prepared(None, req).await
    }

    /// [`Writer::submit`] for a change counted as being prepared since
    /// `prepared` was taken: counted no more once it is queued.
    async fn submit_prepared(
        &self,
        prepared: Option<Preparing>,
        req: WriteRequest,
    ) -> Result<Outcome, WriteError> {
        let answer = self.queue(req);
        drop(prepared);
        answer?.await.map_err(|_| stopped())?
    }

    fn queue(&self, req: WriteRequest) -> Result<oneshot::Receiver<Result<Outcome, WriteError>>, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job { req, reply }).map_err(|_| stopped())?;
        Ok(rx)
    }

    /// Counts a publish (or a caching) as being prepared from now until it
    /// is queued ([`Writer::publish`], [`Writer::cache`]), so the writer's
    /// next group waits for it.
    pub fn preparing(&self) -> Preparing {
        self.siblings.preparing()
    }

    /// Publishes an upload prepared since `prepared` was taken.
    pub async fn publish(
        &self,
        prepared: Preparing,
        by: By,
        upload: Upload,
    ) -> Result<Published, WriteError> {
        match self.submit_prepared(Some(prepared), by.asks(Change::Publish(Box::new(upload)))).await? {
            Outcome::Published(p) => Ok(p),
            other => Err(mismatch(other)),
        }
    }

    /// Yanks (`true`) or unyanks a version; returns its state.
    pub async fn yank(&self, by: By, name: &str, version: &str, yanked: bool) -> Result<bool, WriteError> {
        let change = Change::Yank { name: name.to_string(), version: version.to_string(), yanked };
        match self.submit(by.asks(change)).await? {
            Outcome::Yanked { yanked } => Ok(yanked),
            other => Err(mismatch(other)),
        }
    }

    /// Adds and removes owners; returns the owners after.
    pub async fn owners(
        &self,
        by: By,
        name: &str,
        add: Vec<String>,
        remove: Vec<String>,
    ) -> Result<Vec<String>, WriteError> {
        match self.submit(by.asks(Change::Owners { name: name.to_string(), add, remove })).await? {
            Outcome::Owners { owners } => Ok(owners),
            other => Err(mismatch(other)),
        }
    }

    /// Claims a name; returns (name, owner, whether it was created now).
    pub async fn register(&self, by: By, name: &str) -> Result<(String, String, bool), WriteError> {
        match self.submit(by.asks(Change::Register { name: name.to_string() })).await? {
            Outcome::Registered { name, owner, created } => Ok((name, owner, created)),
            other => Err(mismatch(other)),
        }
    }

    /// The caller's account deletion; returns (purge time, packages left).
    pub async fn delete_account(&self, by: By) -> Result<(String, Vec<String>), WriteError> {
        match self.submit(by.asks(Change::DeleteAccount)).await? {
            Outcome::AccountDeleted { purge_after, packages } => Ok((purge_after, packages)),
            other => Err(mismatch(other)),
        }
    }

    /// Commits an OSV advisory (checked by `jobs::advisories::check_new`).
    pub async fn advisory(&self, id: &str, json: Vec<u8>) -> Result<(), WriteError> {
        match self.submit(By::admin().asks(Change::Advisory { id: id.to_string(), json })).await? {
            Outcome::Advisory { .. } => Ok(()),
            other => Err(mismatch(other)),
        }
    }

    /// Deprecates a package (`meta` with a message) or undoes it (`None`);
    /// returns its name and meta as they are now.
    pub async fn deprecate(
        &self,
        by: By,
        name: &str,
        meta: Option<crate::index::Meta>,
    ) -> Result<(String, crate::index::Meta), WriteError> {
        self.edit_meta(by, name, MetaEdit::Package(meta)).await
    }

    /// Changes a package's `meta/` file; returns its name and meta as they are now.
    pub async fn edit_meta(
        &self,
        by: By,
        name: &str,
        edit: MetaEdit,
    ) -> Result<(String, crate::index::Meta), WriteError> {
        match self.submit(by.asks(Change::Meta { name: name.to_string(), edit })).await? {
            Outcome::Deprecated { name, meta } => Ok((name, meta)),
            other => Err(mismatch(other)),
        }
    }

    /// Deletes a whole package; returns the versions removed.
    pub async fn delete_package(&self, name: &str) -> Result<Vec<String>, WriteError> {
        match self.submit(By::admin().asks(Change::DeletePackage { name: name.to_string() })).await? {
            Outcome::PackageDeleted { versions } => Ok(versions),
            other => Err(mismatch(other)),
        }
    }

    /// Commits an upstream's file for a name (see [`Change::Cache`]),
    /// fetched since `prepared` was taken (`None`: a revalidation in the
    /// background, which no group waits for); returns whether the index
    /// changed.
    pub async fn cache(
        &self,
        prepared: Option<Preparing>,
        name: &str,
        file: Vec<u8>,
        row: crate::db::upstream::Cached,
    ) -> Result<bool, WriteError> {
        let change = Change::Cache { name: name.to_string(), file, row };
        match self.submit_prepared(prepared, By::admin().asks(change)).await? {
            Outcome::Cached { changed } => Ok(changed),
            other => Err(mismatch(other)),
        }
    }

    pub async fn hard_delete(&self, name: &str, version: &str) -> Result<(), WriteError> {
        let change = Change::HardDelete { name: name.to_string(), version: version.to_string() };
        match self.submit(By::admin().asks(change)).await? {
            Outcome::Deleted => Ok(()),
            other => Err(mismatch(other)),
        }
    }
}

/// Who asks, and from where (the audit row's address).
pub struct By {
    pub actor: Actor,
    pub addr: Option<String>,
}

impl By {
    pub fn admin() -> By {
        By { actor: Actor::Admin, addr: None }
    }

    fn asks(self, change: Change) -> WriteRequest {
        WriteRequest { actor: self.actor, addr: self.addr, change }
    }
}

/// The writer answered a change with another kind's outcome: a bug.
fn mismatch(outcome: Outcome) -> WriteError {
    WriteError::Internal(anyhow::anyhow!("the writer answered with {outcome:?}"))
}

/// Applies one write synchronously on a registry this process does not
/// serve (the admin CLI), under the same writer lock as the server.
pub fn apply_now(reg: Arc<Registry>, req: WriteRequest) -> Result<Outcome, WriteError> {
    let (reply, mut rx) = oneshot::channel();
    let mut worker = group::Worker::new(reg, Pending::default(), false)?;
    worker.run_group(vec![Job { req, reply }]);
    rx.try_recv().map_err(|_| WriteError::Internal(anyhow::anyhow!("no outcome")))?
}
