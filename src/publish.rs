//! The one write path. Request handlers validate uploads in parallel; a
//! single writer thread then takes writes (publish, yank, unyank, owner
//! changes) in groups: checks each against the state as the group leaves it,
//! records it in the database, stores blobs and signatures, commits one index
//! commit per change in one pack, writes the derived files, and only then
//! answers every request of the group.
//!
//! Order of durable effects: database rows, bytes, index, derived files. A
//! crash between any two leaves at worst rows and blobs no index line points
//! at, which `Registry::recover` removes on the next start.

use anyhow::Result;
use rayon::prelude::*;
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::Arc;
use tokio::sync::oneshot;

use crate::db::{self, AuditEntry, Caller};
use crate::derive;
use crate::index::{line::pubtime, package_path, IndexLine, IndexSnapshot};
use crate::name;
use crate::registry::Registry;
use crate::sign::Attestation;

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
    /// An administrator adds or replaces a security advisory (OSV JSON,
    /// validated by the caller) at `advisories/{id}.json`.
    Advisory {
        id: String,
        json: Vec<u8>,
    },
}

/// Who asks: an authenticated caller, or the operator (admin listener or
/// CLI on the data directory), who is not subject to ownership.
pub enum Actor {
    User(Caller),
    Admin,
}

impl Actor {
    fn login(&self) -> &str {
        match self {
            Actor::User(c) => &c.user.login,
            Actor::Admin => "(administrator)",
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
    Yanked { yanked: bool },
    Owners { owners: Vec<String> },
    Registered { name: String, owner: String, created: bool },
    AccountDeleted { purge_after: String, packages: Vec<String> },
    Deleted,
    Advisory { id: String },
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
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

type Reply = oneshot::Sender<Result<Outcome, WriteError>>;

struct Job {
    req: WriteRequest,
    reply: Reply,
}

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread. It owns its own database connection and
    /// runs pack consolidation between groups.
    pub fn start(reg: Arc<Registry>) -> Result<Writer> {
        let (tx, rx) = mpsc::channel::<Job>();
        let conn = reg.db()?;
        let purger = reg.config.cdn.purge_url.clone().map(crate::cdn::Purger::start).transpose()?;
        std::thread::Builder::new().name("cairn-writer".into()).spawn(move || {
            let mut worker = Worker { reg, conn, purger };
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                while batch.len() < worker.reg.config.max_batch.max(1) {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                worker.run_batch(batch);
            }
        })?;
        Ok(Writer { tx })
    }

    pub async fn submit(&self, req: WriteRequest) -> Result<Outcome, WriteError> {
        let (reply, rx) = oneshot::channel();
        let stopped = || WriteError::Internal(anyhow::anyhow!("the writer has stopped"));
        self.tx.send(Job { req, reply }).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

/// Applies writes synchronously on a registry this process does not serve
/// (the admin CLI), under the same writer lock as the server.
pub fn apply_now(reg: Arc<Registry>, req: WriteRequest) -> Result<Outcome, WriteError> {
    let (reply, mut rx) = oneshot::channel();
    let mut worker = Worker { conn: reg.db()?, reg, purger: None };
    worker.run_batch(vec![Job { req, reply }]);
    rx.try_recv().map_err(|_| WriteError::Internal(anyhow::anyhow!("no outcome")))?
}

struct Worker {
    reg: Arc<Registry>,
    conn: Connection,
    /// The CDN purge hook, if `[cdn] purge_url` is set.
    purger: Option<crate::cdn::Purger>,
}

/// A change that passed the checks, with the index content it produces.
struct Planned {
    job: Job,
    /// The index file after this change, if it changes one.
    commit: Option<(String, Vec<u8>, String)>,
    /// The version line this change wrote or modified.
    line: Option<IndexLine>,
    outcome: Outcome,
}

impl Worker {
    fn run_batch(&mut self, batch: Vec<Job>) {
        let mut planned = Vec::new();
        if self.purger.is_some() {
            self.reg.root.open_journal();
        }
        let result = (|| {
            let _lock = self.reg.lock_writer()?;
            self.commit_batch(batch, &mut planned)
        })();
        match result {
            Ok(()) => {
                for p in planned {
                    let _ = p.job.reply.send(Ok(p.outcome));
                }
                // After the replies: a CDN never delays a 201.
                if let Some(purger) = &self.purger {
                    purger
                        .purge(self.reg.root.close_journal().iter().map(|k| crate::layout::url(k)).collect());
                }
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "write group failed");
                for p in planned {
                    let _ = p.job.reply.send(Err(WriteError::Internal(anyhow::anyhow!("{e:#}"))));
                }
            }
        }
        if let Err(e) = self.reg.index.consolidate_packs() {
            tracing::warn!(error = %format!("{e:#}"), "pack consolidation failed");
        }
    }

    /// Checks, stores and commits a group; refused jobs are answered here,
    /// accepted ones are moved into `planned` before any durable effect.
    fn commit_batch(&mut self, batch: Vec<Job>, planned: &mut Vec<Planned>) -> Result<()> {
        let at = pubtime(chrono::Utc::now());
        let reg = self.reg.clone();
        // Index files as the group leaves them, by path.
        let mut files: BTreeMap<String, Vec<IndexLine>> = BTreeMap::new();
        let mut touched_owners = Vec::new();
        // IMMEDIATE: a deferred transaction that reads first cannot upgrade to a
        // write after another connection wrote (SQLITE_BUSY without waiting).
        let head = reg.index.snapshot()?;
        let txn = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for mut job in batch {
            let r = &mut job.req;
            let (action, target) = describe(&r.change);
            // Each change is all or nothing inside the group's transaction.
            txn.execute_batch("SAVEPOINT change")?;
            let result = plan(&txn, &reg, &head, r, &at, &mut files);
            if result.is_err() {
                txn.execute_batch("ROLLBACK TO change")?;
            }
            txn.execute_batch("RELEASE change")?;
            // Refusals are audited by the request handler, which sees them
            // all; a change that happens is audited with it, atomically.
            if result.is_ok() {
                let caller = match &r.actor {
                    Actor::User(c) => Some(c),
                    Actor::Admin => None,
                };
                db::audit(
                    &txn,
                    &AuditEntry {
                        user_id: caller.map(|c| c.user.id),
                        token_id: caller.map(|c| c.token_id),
                        action,
                        target: &target,
                        addr: r.addr.as_deref(),
                        outcome: "ok",
                    },
                )?;
            }
            match result {
                Ok((commit, line, outcome)) => {
                    match (&job.req.change, &outcome) {
                        (Change::Owners { name, .. } | Change::Register { name }, _) => {
                            touched_owners.push(name.clone())
                        }
                        (Change::DeleteAccount, Outcome::AccountDeleted { packages, .. }) => {
                            touched_owners.extend(packages.iter().cloned())
                        }
                        _ => {}
                    }
                    planned.push(Planned { job, commit, line, outcome });
                }
                Err(e) => {
                    let _ = job.reply.send(Err(e));
                }
            }
        }
        // The rows first, so a crash from here on leaves rows that the next
        // start can match with (and clean up) any blob written below.
        txn.commit()?;
        if planned.is_empty() {
            return Ok(());
        }

        // Bytes and signatures, in parallel: each is independent.
        let stored = planned.par_iter().try_for_each(|p| -> Result<()> {
            let (Change::Publish(upload), Some(line)) = (&p.job.req.change, &p.line) else {
                return Ok(());
            };
            let att = Attestation {
                registry: reg.config.name.clone(),
                name: line.name.clone(),
                version: line.vers.clone(),
                sha256: line.cksum.clone(),
                blake3: line.blake3.clone(),
            };
            let key = reg.key.as_ref().ok_or_else(|| anyhow::anyhow!("this registry has no signing key"))?;
            let sig = key.sign(&upload.bytes, &att)?;
            reg.store.put(&line.cksum, &upload.bytes, &sig)?;
            Ok(())
        });

        // One commit per change, one pack for the group.
        // One flush makes every blob and signature durable before the commit
        // that points at them.
        let stored = stored.and_then(|()| Ok(reg.root.sync()?));
        let committed = stored.and_then(|()| {
            reg.index.write_batch(|tx| {
                let mut ids = Vec::new();
                for p in planned.iter() {
                    if let Some((path, content, subject)) = &p.commit {
                        let by = p.job.req.actor.login();
                        ids.push(Some(tx.commit(&[(path, Some(content))], subject, by)?));
                    } else {
                        ids.push(None);
                    }
                }
                Ok(ids)
            })
        });
        let commits = match committed {
            Ok((ids, _head)) => ids,
            Err(e) => {
                self.abandon(planned);
                return Err(e);
            }
        };
        for (p, id) in planned.iter_mut().zip(&commits) {
            if let (Outcome::Published(published), Some(id)) = (&mut p.outcome, id) {
                published.index_commit = id.to_string();
            }
        }

        // From here on the group is done; a failure below leaves derived
        // files behind the index, which the next start rewrites.
        let downloads = |name: &str| crate::jobs::stats::package_totals(&self.conn, name);
        let packages: Vec<(&Vec<IndexLine>, Vec<String>, derive::Downloads)> = files
            .values()
            .filter(|l| !l.is_empty())
            .map(|l| Ok((l, db::owners(&self.conn, &l[0].name)?, downloads(&l[0].name)?)))
            .collect::<Result<_>>()?;
        packages.par_iter().try_for_each(|(lines, owners, counts)| {
            derive::write_package(&reg.root, lines, owners, counts)
        })?;
        for p in planned.iter() {
            if let (Change::HardDelete { .. }, Some(line)) = (&p.job.req.change, &p.line) {
                reg.store.remove(&line.cksum)?;
                derive::remove_version(&reg.root, line)?;
                if files.get(&package_path(&line.name)).is_some_and(|l| l.is_empty()) {
                    derive::remove_package(&reg.root, &line.name)?;
                }
            }
        }
        for name in touched_owners {
            let owners = db::owners(&self.conn, &name)?;
            derive::write_owners(&reg.root, &name, &owners)?;
            let lines = reg.read_lines(&name)?;
            if !lines.is_empty() && !files.contains_key(&package_path(&name)) {
                derive::write_package(&reg.root, &lines, &owners, &downloads(&name)?)?;
            }
        }
        let counts: BTreeMap<&str, derive::Downloads> =
            packages.iter().map(|(l, _, c)| (l[0].name.as_str(), c.clone())).collect();
        let no_counts = derive::Downloads::new();
        planned.par_iter().filter(|p| !matches!(p.job.req.change, Change::HardDelete { .. })).try_for_each(
            |p| -> std::io::Result<()> {
                let Some(line) = &p.line else { return Ok(()) };
                let counts = counts.get(line.name.as_str()).unwrap_or(&no_counts);
                let readme = match &p.job.req.change {
                    Change::Publish(upload) => upload.readme.as_deref(),
                    _ => None,
                };
                derive::write_version(&reg.root, line, readme, counts)
            },
        )?;
        // The search delta: each package a version change touched, as it
        // is after the group, with the commit that last changed it.
        let mut delta = Vec::new();
        for (p, id) in planned.iter().zip(&commits) {
            let (Some(line), Some(id)) = (&p.line, id) else { continue };
            let lines = files.get(&package_path(&line.name)).map_or(&[][..], Vec::as_slice);
            let count = counts
                .get(line.name.as_str())
                .map_or(0, |c| lines.iter().filter_map(|l| c.get(&l.vers)).sum());
            delta.push(crate::search::DeltaEntry::of(&line.name, lines, &id.to_string(), count));
        }
        crate::search::delta::record(&reg.root, delta)?;
        for p in planned.iter() {
            if let Change::Advisory { id, json } = &p.job.req.change {
                reg.root.put(&reg.root.layout().index_file(&format!("advisories/{id}.json")), json)?;
            }
        }
        // Derived files durable, then health.json names the commit they
        // follow (a restart re-derives anything newer).
        reg.root.sync()?;
        reg.write_summaries(&self.conn)?;
        Ok(())
    }

    /// Undoes the database records and blobs of a group whose index commit
    /// failed: none of it was acknowledged. Yanks and owner changes need no
    /// undo: the database rows they wrote are audit entries and owners, and
    /// owner changes do not depend on the index.
    fn abandon(&self, planned: &[Planned]) {
        for p in planned {
            if let (Change::Publish(u), Some(line)) = (&p.job.req.change, &p.line) {
                let key = name::version_key(&u.version);
                let _ = db::forget_version(&self.conn, &name::canonical(&line.name), &key);
                let _ = self.reg.store.remove(&line.cksum);
            }
        }
    }
}

fn describe(change: &Change) -> (&'static str, String) {
    match change {
        Change::Publish(u) => ("publish", format!("{} {}", u.line.name, u.line.vers)),
        Change::Yank { name, version, yanked: true } => ("yank", format!("{name} {version}")),
        Change::Yank { name, version, .. } => ("unyank", format!("{name} {version}")),
        Change::Owners { name, add, remove } => {
            ("owners", format!("{name} +{} -{}", add.join(","), remove.join(",")))
        }
        Change::Register { name } => ("register", name.clone()),
        Change::DeleteAccount => ("delete-account", String::new()),
        Change::HardDelete { name, version } => ("delete", format!("{name} {version}")),
        Change::Advisory { id, .. } => ("advisory", id.clone()),
    }
}

type Plan = (Option<(String, Vec<u8>, String)>, Option<IndexLine>, Outcome);

/// Checks one change against the state as the group leaves it and records
/// its database effects inside the group's transaction.
fn plan(
    conn: &Connection,
    reg: &Registry,
    head: &IndexSnapshot,
    r: &mut WriteRequest,
    at: &str,
    files: &mut BTreeMap<String, Vec<IndexLine>>,
) -> Result<Plan, WriteError> {
    let actor = &r.actor;
    match &mut r.change {
        Change::Publish(upload) => {
            let caller = actor.caller()?;
            let new_package = check_publish(conn, reg, caller, upload)?;
            let line = &mut upload.line;
            line.pubtime = Some(at.to_string());
            if new_package {
                db::create_package(conn, &line.name, caller.user.id)?;
            }
            db::record_version(conn, &line.name, &upload.version, &line.cksum, at, caller.user.id)?;
            let path = package_path(&line.name);
            let lines = lines_mut(head, files, &path)?;
            lines.push(line.clone());
            let content = IndexLine::file_bytes(lines);
            let subject = format!("publish {} {}", line.name, line.vers);
            let published = Published {
                name: line.name.clone(),
                version: line.vers.clone(),
                sha256: line.cksum.clone(),
                blake3: line.blake3.clone(),
                size_bytes: line.size,
                signature: crate::layout::url(&reg.root.layout().signature(&line.cksum)),
                index_commit: String::new(),
                published_at: at.to_string(),
            };
            Ok((Some((path, content, subject)), Some(line.clone()), Outcome::Published(published)))
        }
        Change::Yank { name, version, yanked } => {
            let spelled = check_owner(conn, actor.caller()?, name, "yank")?;
            let path = package_path(&spelled);
            let lines = lines_mut(head, files, &path)?;
            let line = lines
                .iter_mut()
                .find(|l| l.vers == *version)
                .ok_or_else(|| WriteError::NotFound(format!("{spelled} has no version {version}")))?;
            // Yanking twice (or unyanking a live version) changes nothing.
            if line.yanked == *yanked {
                return Ok((None, None, Outcome::Yanked { yanked: *yanked }));
            }
            line.yanked = *yanked;
            let line = line.clone();
            let content = IndexLine::file_bytes(lines);
            let verb = if *yanked { "yank" } else { "unyank" };
            let subject = format!("{verb} {spelled} {version}");
            Ok((Some((path, content, subject)), Some(line), Outcome::Yanked { yanked: *yanked }))
        }
        Change::Owners { name, add, remove } => {
            let spelled = check_owner(conn, actor.caller()?, name, "change-owners")?;
            let mut ids_add = Vec::new();
            for login in add.iter() {
                let user = db::find_user(conn, login)?
                    .ok_or_else(|| WriteError::NotFound(format!("no user `{login}`")))?;
                ids_add.push(user.id);
            }
            let mut ids_remove = Vec::new();
            for login in remove.iter() {
                let user = db::find_user(conn, login)?
                    .ok_or_else(|| WriteError::NotFound(format!("no user `{login}`")))?;
                ids_remove.push(user.id);
            }
            for id in ids_add {
                db::add_owner(conn, &spelled, id)?;
            }
            for id in ids_remove {
                db::remove_owner(conn, &spelled, id)?;
            }
            let owners = db::owners(conn, &spelled)?;
            if owners.is_empty() {
                return Err(WriteError::Conflict(format!(
                    "`{spelled}` would have no owner left; add another owner first"
                )));
            }
            *name = spelled;
            Ok((None, None, Outcome::Owners { owners }))
        }
        Change::Register { name } => {
            let caller = actor.caller()?;
            let created = match db::find_package(conn, name)? {
                Some(spelled) if spelled == *name && db::is_owner(conn, name, caller.user.id)? => false,
                Some(spelled) => {
                    return Err(WriteError::Conflict(format!("the name `{spelled}` is taken")));
                }
                None => {
                    check_new_name(conn, reg, caller, name)?;
                    db::create_package(conn, name, caller.user.id)?;
                    true
                }
            };
            let owner = caller.user.login.clone();
            Ok((None, None, Outcome::Registered { name: name.clone(), owner, created }))
        }
        Change::DeleteAccount => {
            let caller = actor.caller()?;
            let (purge_after, packages) = db::mark_for_deletion(conn, caller.user.id)?;
            Ok((None, None, Outcome::AccountDeleted { purge_after, packages }))
        }
        Change::HardDelete { name, version } => {
            if !matches!(actor, Actor::Admin) {
                return Err(WriteError::Forbidden("only an administrator deletes versions".into()));
            }
            let spelled = db::find_package(conn, name)?
                .ok_or_else(|| WriteError::NotFound(format!("no package `{name}`")))?;
            let path = package_path(&spelled);
            let lines = lines_mut(head, files, &path)?;
            let at = lines
                .iter()
                .position(|l| l.vers == *version)
                .ok_or_else(|| WriteError::NotFound(format!("{spelled} has no version {version}")))?;
            let line = lines.remove(at);
            let semver = crate::name::parse_version(version).map_err(WriteError::Invalid)?;
            db::mark_version_deleted(conn, &spelled, &name::version_key(&semver))?;
            let content = IndexLine::file_bytes(lines);
            let subject = format!("delete {spelled} {version}");
            Ok((Some((path, content, subject)), Some(line), Outcome::Deleted))
        }
        Change::Advisory { id, json } => {
            if !matches!(actor, Actor::Admin) {
                return Err(WriteError::Forbidden("only an administrator adds advisories".into()));
            }
            let path = format!("advisories/{id}.json");
            let subject = format!("advisory {id}");
            Ok((Some((path, json.clone(), subject)), None, Outcome::Advisory { id: id.clone() }))
        }
    }
}

/// The lines of an index file as the group has it so far.
fn lines_mut<'f>(
    head: &IndexSnapshot,
    files: &'f mut BTreeMap<String, Vec<IndexLine>>,
    path: &str,
) -> Result<&'f mut Vec<IndexLine>, WriteError> {
    if !files.contains_key(path) {
        let existing = head.read(path)?;
        let lines = existing.map(|b| IndexLine::parse_file(&b)).transpose().map_err(anyhow::Error::from)?;
        files.insert(path.to_string(), lines.unwrap_or_default());
    }
    Ok(files.get_mut(path).unwrap())
}

/// The package must exist and the caller must own it, with `scope` on a
/// token that may touch it. Returns the package's spelling.
fn check_owner(conn: &Connection, caller: &Caller, pkg: &str, scope: &str) -> Result<String, WriteError> {
    let spelled =
        db::find_package(conn, pkg)?.ok_or_else(|| WriteError::NotFound(format!("no package `{pkg}`")))?;
    if !caller.has_scope(scope) {
        return Err(WriteError::Forbidden(format!("this token lacks the `{scope}` scope")));
    }
    if !caller.may_touch(&spelled) {
        return Err(WriteError::Forbidden(format!("this token may not act on `{spelled}`")));
    }
    if !db::is_owner(conn, &spelled, caller.user.id)? {
        return Err(WriteError::Forbidden(format!("you are not an owner of `{spelled}`")));
    }
    Ok(spelled)
}

/// A name nobody has: not reserved, not a look-alike, and a token that may
/// claim names.
fn check_new_name(conn: &Connection, reg: &Registry, caller: &Caller, pkg: &str) -> Result<(), WriteError> {
    name::check_reserved(pkg, &reg.config.reserved_names).map_err(|e| WriteError::Invalid(e.to_string()))?;
    if let Some(similar) = db::find_confusable(conn, pkg)? {
        return Err(WriteError::Conflict(format!(
            "the name `{pkg}` is too similar to the existing package `{similar}`"
        )));
    }
    if !caller.has_scope("publish-new") {
        return Err(WriteError::Forbidden("this token lacks the `publish-new` scope".into()));
    }
    if !caller.may_touch(pkg) {
        return Err(WriteError::Forbidden(format!("this token may not claim `{pkg}`")));
    }
    Ok(())
}

/// The state checks of a publish, in the order a publisher would want to
/// hear about them. Returns whether the name is new.
fn check_publish(
    conn: &Connection,
    reg: &Registry,
    caller: &Caller,
    upload: &Upload,
) -> Result<bool, WriteError> {
    let pkg = &upload.line.name;
    if !caller.may_touch(pkg) {
        return Err(WriteError::Forbidden(format!("this token may not publish `{pkg}`")));
    }
    let new_package = match db::find_package(conn, pkg)? {
        Some(ref spelled) if spelled != pkg => {
            return Err(WriteError::Conflict(format!(
                "a package named `{spelled}` exists; `{pkg}` is the same name (case and `_`/`-` do not distinguish packages)"
            )))
        }
        Some(_) => {
            if !db::is_owner(conn, pkg, caller.user.id)? {
                return Err(WriteError::Forbidden(format!("you are not an owner of `{pkg}`")));
            }
            if !caller.has_scope("publish-update") {
                return Err(WriteError::Forbidden("this token lacks the `publish-update` scope".into()));
            }
            false
        }
        None => {
            check_new_name(conn, reg, caller, pkg)?;
            true
        }
    };
    if db::version_burned(conn, pkg, &name::version_key(&upload.version))? {
        return Err(WriteError::Conflict(format!(
            "{pkg} {} was published already; a published version is never replaced (publish a new version)",
            upload.version
        )));
    }
    Ok(new_package)
}
