//! One write group, top to bottom: plan, commit, effects, replies.

use anyhow::Result;
use rayon::prelude::*;
use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use super::effects::Effects;
use super::plan::{self, Committed, Planned};
use super::{Actor, Change, Job, Outcome, Pending, WriteError};
use crate::db::{self, AuditEntry};
use crate::effect::Effect;
use crate::index::{line::pubtime, IndexLine};
use crate::registry::Registry;
use crate::sign::Attestation;

/// A pack consolidation slower than this is logged.
const SLOW: Duration = Duration::from_secs(1);

pub(super) struct Worker {
    pub(super) reg: Arc<Registry>,
    pub(super) conn: db::Conn,
    /// Wakes the pack consolidation thread; `None`: consolidate inline.
    consolidate: Option<mpsc::SyncSender<()>>,
    /// Pushes the index to `[index] remotes`, if any (serving only).
    pub(super) pusher: Option<crate::index::remotes::Pusher>,
    pub(super) effects: Effects,
    /// The writer lease, when several servers share the storage.
    lease: Option<super::lease::Lease>,
    /// The publishes being prepared, which a group waits for a little.
    pub(super) siblings: super::siblings::Siblings,
}

/// Merges the index's packs on a thread of its own, woken after groups:
/// a merge can take seconds on a large index, and it holds the index's
/// lock only for the final swap, so groups go on meanwhile.
fn start_consolidation(index: crate::index::IndexRepo) -> std::io::Result<mpsc::SyncSender<()>> {
    let (tx, rx) = mpsc::sync_channel::<()>(1);
    std::thread::Builder::new().name("cairn-packs".into()).spawn(move || {
        while rx.recv().is_ok() {
            let started = std::time::Instant::now();
            if let Err(e) = index.consolidate_packs() {
                tracing::warn!(error = %format!("{e:#}"), "pack consolidation failed");
            }
            crate::mem::release_freed();
            if started.elapsed() > SLOW {
                tracing::info!(seconds = started.elapsed().as_secs_f64(), "packs consolidated");
            }
        }
    })?;
    Ok(tx)
}

/// Why a group did not commit: `rows_stand` once its database rows had
/// committed (the index commit failed), false before.
pub(super) struct Failure {
    error: anyhow::Error,
    rows_stand: bool,
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        Failure { error, rows_stand: false }
    }
}

impl Worker {
    /// A worker on its own database connection; `serving` starts the pack
    /// consolidation thread and the index pusher (the admin CLI's one-off
    /// writes consolidate inline and push nothing; they purge a CDN too).
    pub(super) fn new(reg: Arc<Registry>, pending: Pending, serving: bool) -> Result<Worker, WriteError> {
        let conn = reg.db().map_err(WriteError::of_storage)?;
        // A mirror copies its source's files and takes no lease.
        let lease = (reg.index.is_shared() && reg.key.is_some()).then(|| {
            let ttl = std::time::Duration::from_secs(reg.config.database.lease_seconds.max(1));
            super::lease::Lease::new(ttl, reg.space.clone())
        });
        // A private organisation's registry is neither purged from a CDN
        // (which never serves it) nor pushed to the public index's remotes.
        let public = reg.space.published_outward();
        let cdn = match public {
            true => crate::cdn::Purger::start(&reg.config.cdn, &reg.config.public_url())?,
            false => None,
        };
        let effects = Effects::new(&reg, &conn, pending, cdn);
        // The bucket's packs are merged under the lease: in this thread.
        let consolidate = if serving && !reg.index.is_shared() {
            Some(start_consolidation(reg.index.clone()).map_err(anyhow::Error::from)?)
        } else {
            None
        };
        let pusher = match (&reg.config.index.remotes, serving && public) {
            (remotes, true) if !remotes.is_empty() => Some(
                crate::index::remotes::Pusher::start(reg.index.path().to_path_buf(), remotes.clone())
                    .map_err(anyhow::Error::from)?,
            ),
            _ => None,
        };
        Ok(Worker { reg, conn, consolidate, pusher, effects, lease, siblings: Default::default() })
    }

    /// The writer thread: groups as they come; pending effects retried
    /// between them.
    pub(super) fn run(&mut self, rx: mpsc::Receiver<Job>) {
        loop {
            match rx.try_recv() {
                Ok(job) => {
                    self.run_batch(job, &rx);
                    continue;
                }
                Err(mpsc::TryRecvError::Disconnected) => return,
                // Idle: another server may write meanwhile.
                Err(mpsc::TryRecvError::Empty) => {
                    if let Some(lease) = &mut self.lease {
                        lease.release(&self.conn);
                    }
                }
            }
            let first = if self.effects.any_pending() {
                match rx.recv_timeout(self.effects.wait()) {
                    Ok(job) => job,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.retry_alone();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            } else {
                match rx.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            };
            self.run_batch(first, &rx);
        }
    }

    /// A group of `first` and what else is queued, up to `max_batch`.
    fn run_batch(&mut self, first: Job, rx: &mpsc::Receiver<Job>) {
        let batch = self.siblings.gather(first, rx, self.reg.config.max_batch.max(1));
        self.run_group(batch);
    }

    /// Retries pending effects under the writer lock, with no group (also
    /// at start, so what a crash left is made before the first request).
    pub(super) fn retry_alone(&mut self) {
        if let Ok(_lock) = self.reg.lock_writer() {
            // On shared storage only the lease's holder derives, from the
            // index as the storage has it (holding it brings this node's
            // copy level): a node that derived from its own lagging copy
            // would take another's newer versions for removed ones, and
            // prune their documents and blobs.
            if let Some(lease) = &mut self.lease {
                if let Err(e) = lease.hold(&self.conn, &self.reg) {
                    tracing::info!(error = %format!("{e:#}"), "pending effects wait for the writer lease");
                    return;
                }
            }
            self.journal();
            self.effects.retry(&self.reg, &self.conn);
            self.effects.purge(&self.conn, self.changed_urls());
            self.reg.events.ring();
        }
    }

    /// With a CDN to purge, starts recording the static root's changes.
    fn journal(&self) {
        if self.effects.purges() {
            self.reg.root.open_journal();
        }
    }

    /// The URLs of what changed since [`Worker::journal`].
    fn changed_urls(&self) -> Vec<String> {
        self.reg.root.close_journal().iter().flat_map(|key| crate::layout::purge_urls(key)).collect()
    }

    pub(super) fn run_group(&mut self, batch: Vec<Job>) {
        let (started, size) = (std::time::Instant::now(), batch.len());
        // Opened read-only (the storage was read-only at start), or a lost
        // Postgres connection: it may take writes again since.
        if !db::writable(&self.conn) {
            // SQLite shares a file's lock and WAL-index state among a
            // process's connections: the read-only one goes first.
            self.conn = db::Conn::placeholder();
            match self.reg.db() {
                Ok(conn) => self.conn = conn,
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "reopening the state database failed"),
            }
        }
        let _lock = match self.reg.lock_writer() {
            Ok(lock) => lock,
            Err(e) => {
                let e = WriteError::of_storage(e);
                for job in batch {
                    job.answer(Err(copy(&e)));
                }
                return;
            }
        };
        if let Some(lease) = &mut self.lease {
            if let Err(e) = lease.hold(&self.conn, &self.reg) {
                let e = WriteError::of_storage(e);
                for job in batch {
                    job.answer(Err(copy(&e)));
                }
                return;
            }
        }
        self.journal();
        let mut planned = Vec::new();
        let mut batch = VecDeque::from(batch);
        let committed = self.commit(&mut batch, &mut planned);
        let commit_ms = started.elapsed().as_millis() as u64;
        match committed {
            // Cachings alone: their readers get the index files at once.
            Ok(Some(committed))
                if planned.iter().all(|p| matches!(p.job.req.change, Change::Cache { .. })) =>
            {
                self.effects.make_cached(&self.reg, &self.conn, &planned, &committed)
            }
            Ok(Some(committed)) => self.effects.make(&self.reg, &self.conn, &planned, &committed),
            Ok(None) => {}
            Err(Failure { error, rows_stand }) => {
                tracing::error!(error = %format!("{error:#}"), "write group failed to commit");
                let e = WriteError::of_storage(error);
                // Changes not planned yet never happened.
                for job in batch {
                    job.answer(Err(copy(&e)));
                }
                // What needed the index did not happen: its rows go back.
                // Rows that never committed leave nothing but blobs.
                let (failed, done) = match rows_stand {
                    true => {
                        let (failed, done): (Vec<_>, Vec<_>) =
                            planned.into_iter().partition(|p| p.plan.commit.is_some());
                        self.abandon(&failed);
                        (failed, done)
                    }
                    false => {
                        remove_blobs(&self.reg, &planned);
                        (planned, Vec::new())
                    }
                };
                for p in failed {
                    p.job.answer(Err(copy(&e)));
                }
                // The changes that stand (owners) owe their documents.
                self.effects.reload(&self.conn);
                planned = done;
            }
        }
        // Before the replies: a client that got its 201 reads the new
        // files through the CDN (bounded; what fails is retried).
        self.effects.purge(&self.conn, self.changed_urls());
        for p in planned {
            p.job.answer(Ok(p.plan.outcome));
        }
        // Where a group's time goes (the bench's CAIRN_LOG shows it).
        let total_ms = started.elapsed().as_millis() as u64;
        tracing::debug!(size, commit_ms, effects_ms = total_ms - commit_ms, "write group answered");
        crate::metrics::get().write_group(size, started.elapsed());
        // After the replies: webhooks and event streams take the group's events.
        self.reg.events.ring();
        // After the replies: a git remote never delays a 201.
        if let Some(pusher) = &self.pusher {
            pusher.wake();
        }
        match &self.consolidate {
            // Full: a merge is due already, which will see this group's pack.
            Some(wake) => drop(wake.try_send(())),
            None => {
                if let Err(e) = self.reg.index.consolidate_packs() {
                    tracing::warn!(error = %format!("{e:#}"), "pack consolidation failed");
                }
            }
        }
    }

    /// Plans every job, then makes the group durable: rows, bytes, index.
    /// Refused jobs are answered here; accepted ones are moved into
    /// `planned` before any durable step. `None`: nothing to commit.
    fn commit(
        &mut self,
        batch: &mut VecDeque<Job>,
        planned: &mut Vec<Planned>,
    ) -> Result<Option<Committed>, Failure> {
        let at = pubtime(chrono::Utc::now());
        let reg = self.reg.clone();
        let mut files: BTreeMap<String, Vec<IndexLine>> = BTreeMap::new();
        let mut owners = Vec::new();
        let head = reg.index.snapshot()?;
        // The log first holds every change the index has (what an earlier
        // group's effects could not append is appended now), so this
        // group's changes are its next entries.
        let mut next_leaf = match &reg.log {
            Some(log) => Some(log.catch_up(&reg.index, &reg.root)?),
            None => None,
        };
        // Exclusive: SQLite's IMMEDIATE (a deferred transaction that reads
        // first cannot upgrade to a write after another connection wrote:
        // SQLITE_BUSY without waiting); on Postgres the writers' advisory
        // lock, so what the plans check (burned versions, names, owners)
        // stays true until the commit across every server.
        let txn = self.conn.transaction_exclusive()?;
        // A job leaves `batch` once its rows are in the transaction, so a
        // failure before then still has it to answer.
        while let Some(job) = batch.front_mut() {
            let r = &mut job.req;
            let (action, target) = plan::describe(&r.change);
            // A private organisation's change names its registry.
            let target = reg.space.audit_target(target);
            // Each change is all or nothing inside the group's transaction.
            txn.execute_batch("SAVEPOINT change")?;
            let result = plan::plan(&txn, &reg, &head, r, &at, next_leaf, &mut files);
            if result.is_err() {
                txn.execute_batch("ROLLBACK TO change")?;
            }
            txn.execute_batch("RELEASE change")?;
            let plan = match result {
                Ok(plan) => plan,
                Err(e) => {
                    let job = batch.pop_front().expect("the front job");
                    // Refusals are audited by the request handler, which sees
                    // them all; a row the storage would not take is a 503.
                    let e = match e {
                        WriteError::Internal(e) => WriteError::of_storage(e),
                        refusal => refusal,
                    };
                    job.answer(Err(e));
                    continue;
                }
            };
            // A change that happens is audited with it, atomically.
            let caller = match &job.req.actor {
                Actor::User(c) => Some(c),
                Actor::Admin => None,
            };
            let audit_id = db::audit(
                &txn,
                &AuditEntry {
                    user_id: caller.map(|c| c.user.id),
                    token_id: caller.and_then(|c| c.token_id),
                    action,
                    target: &target,
                    addr: job.req.addr.as_deref(),
                    outcome: "ok",
                },
            )?;
            owners.extend(plan.effects.iter().filter(|e| matches!(e, Effect::Owners(_))).cloned());
            // Owner changes have no index commit to take their events from
            // later: theirs are written with their rows, exactly once.
            // (A private registry's changes are no public events.)
            let changed = match reg.space.emits_events() {
                true => owners_changed(&job.req.change, &plan.outcome),
                false => Vec::new(),
            };
            for name in changed {
                let event = db::events::NewEvent {
                    event: "owners",
                    name: name.to_string(),
                    version: None,
                    index_commit: None,
                    at: at.clone(),
                };
                db::events::record(&txn, &event)?;
            }
            if let Some(c) = &plan.commit {
                next_leaf = next_leaf.map(|n| n + c.entries);
            }
            let job = batch.pop_front().expect("the front job");
            planned.push(Planned { job, plan, audit_id });
        }
        // Owner changes have no index commit to re-derive their documents
        // from after a crash: their effects are recorded as pending in the
        // same transaction, and cleared once made.
        for effect in &owners {
            db::add_pending_effect(&txn, &self.reg.space, &effect.encode(), "not made yet")?;
        }
        if planned.is_empty() {
            txn.commit()?;
            return Ok(None);
        }

        // Bytes and signatures, in parallel: each is independent; one
        // flush makes them all durable before the rows and the commit that
        // point at them. While the transaction is open a failure here
        // leaves no row behind (a full disk needs no write to undo it).
        let stored = super::overlapped(&reg, || {
            planned.par_iter().try_for_each(|p| -> Result<()> {
                let (Change::Publish(upload), Some(line)) = (&p.job.req.change, &p.plan.line) else {
                    return Ok(());
                };
                let att = Attestation::of_line(&reg.config.name, line);
                let key =
                    reg.key.as_ref().ok_or_else(|| anyhow::anyhow!("this registry has no signing key"))?;
                let sig = key.sign(&upload.bytes, &att)?;
                reg.store.put(&line.cksum, &upload.bytes, &sig)?;
                Ok(())
            })
        });
        // A group without uploads (yanks, upstream caches, …) has no bytes to flush.
        let uploads = planned.iter().any(|p| matches!(p.job.req.change, Change::Publish(_)));
        let flushed = match uploads {
            true => stored.and_then(|()| Ok(reg.root.sync()?)),
            false => stored,
        };
        if let Err(e) = flushed {
            tracing::error!(error = %format!("{e:#}"), "storing a write group's blobs failed");
            drop(txn);
            remove_blobs(&reg, planned);
            // Nothing was recorded: every change of the group failed.
            let failure = WriteError::of_storage(e);
            for p in planned.drain(..) {
                p.job.answer(Err(copy(&failure)));
            }
            return Ok(None);
        }
        // The rows, so a crash from here on leaves rows that the next start
        // can match with (and clean up) any blob written above; none if the
        // group overran the lease (its blobs go with the rolled-back rows).
        if let Some(lease) = &self.lease {
            lease.check()?;
        }
        txn.commit()?;

        // One commit per change, one pack for the group: the commit point.
        let written = reg.index.write_batch(|tx| {
            let mut ids = Vec::new();
            for p in planned.iter() {
                match &p.plan.commit {
                    Some(c) => {
                        let files: Vec<(&str, Option<&[u8]>)> = c
                            .files
                            .iter()
                            .map(|(path, content)| (path.as_str(), content.as_deref()))
                            .collect();
                        let trailer = match &c.trailer {
                            Some(t) => t.clone(),
                            None => format!("Published-By: {}", p.job.req.actor.login()),
                        };
                        ids.push(Some(tx.commit(&files, &c.subject, &trailer)?))
                    }
                    None => ids.push(None),
                }
            }
            Ok(ids)
        });
        let (commits, _head) = written.map_err(|error| Failure { error, rows_stand: true })?;
        for (p, id) in planned.iter_mut().zip(&commits) {
            if let (Outcome::Published(published), Some(id)) = (&mut p.plan.outcome, id) {
                published.index_commit = id.to_string();
            }
        }
        Ok(Some(Committed { files, commits }))
    }

    /// Takes back the rows (and blobs) of changes whose index commit failed:
    /// none of them was acknowledged. A failure here is repaired at the
    /// next start (`Registry::recover` matches rows against the index).
    fn abandon(&self, failed: &[Planned]) {
        let undo = || -> Result<()> {
            let txn = self.conn.transaction()?;
            for p in failed {
                p.plan.undo.apply(&txn, &self.reg.space)?;
                db::forget_audit(&txn, p.audit_id)?;
            }
            txn.commit()?;
            Ok(())
        };
        if let Err(e) = undo() {
            tracing::error!(error = %format!("{e:#}"), "taking back a failed group's rows failed; retried");
            self.effects.repair_rows_later(&self.conn, &format!("{e:#}"));
        }
        remove_blobs(&self.reg, failed);
    }
}

/// The packages whose owners a change changed: an owner change, a name
/// registered now (its first owner), an account's deletion (it left its
/// packages).
fn owners_changed<'c>(change: &'c Change, outcome: &'c Outcome) -> Vec<&'c str> {
    match (change, outcome) {
        (Change::Owners { name, .. }, Outcome::Owners { .. }) => vec![name.as_str()],
        (_, Outcome::Registered { name, created: true, .. }) => vec![name.as_str()],
        (_, Outcome::AccountDeleted { packages, .. }) => packages.iter().map(String::as_str).collect(),
        _ => Vec::new(),
    }
}

impl Drop for Worker {
    /// A one-off writer (`cairn admin`) lets the lease go when it is done.
    fn drop(&mut self) {
        if let Some(lease) = &mut self.lease {
            lease.release(&self.conn);
        }
    }
}

/// Removes the blobs a failed group stored (no row or line points at them).
fn remove_blobs(reg: &Registry, failed: &[Planned]) {
    for p in failed {
        if let (Change::Publish(_), Some(line)) = (&p.job.req.change, &p.plan.line) {
            let _ = reg.store.remove(&line.cksum);
        }
    }
}

/// The same error for each job of a failed group.
fn copy(e: &WriteError) -> WriteError {
    match e {
        WriteError::Unavailable(m) => WriteError::Unavailable(m.clone()),
        other => WriteError::Internal(anyhow::anyhow!("{other}")),
    }
}
