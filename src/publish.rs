//! The one write path. Request handlers validate archives in parallel; a
//! single writer thread then takes publishes in groups: checks each against
//! the state (names, owners, burned versions), stores blobs and signatures,
//! records them in the database, commits one index commit per version in one
//! pack, writes the derived files, and only then answers every request in the
//! group. Order of durable effects: bytes, database, index, derived files; a
//! crash between any two leaves at worst an unreferenced blob.

use anyhow::Result;
use rayon::prelude::*;
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::Arc;
use tokio::sync::oneshot;

use crate::archive::Inspected;
use crate::db::{self, AuditEntry, Caller};
use crate::derive;
use crate::index::{line::pubtime, package_path, IndexDep, IndexLine};
use crate::name;
use crate::registry::Registry;
use crate::sign::Attestation;

/// A validated upload waiting for the writer.
pub struct PublishRequest {
    pub caller: Caller,
    pub version: semver::Version,
    pub bytes: bytes::Bytes,
    pub inspected: Inspected,
    pub sha256: String,
    pub blake3: String,
    pub addr: Option<String>,
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

/// Why the writer refused or failed a write.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

type Reply = oneshot::Sender<Result<Published, WriteError>>;

struct Job {
    req: PublishRequest,
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
        std::thread::Builder::new()
            .name("cairn-writer".into())
            .spawn(move || {
                let mut worker = Worker { reg, conn };
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

    pub async fn publish(&self, req: PublishRequest) -> Result<Published, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { req, reply })
            .map_err(|_| WriteError::Internal(anyhow::anyhow!("the writer has stopped")))?;
        rx.await
            .map_err(|_| WriteError::Internal(anyhow::anyhow!("the writer dropped a request")))?
    }
}

struct Worker {
    reg: Arc<Registry>,
    conn: Connection,
}

/// A publish that passed the checks, with everything the commit needs.
struct Accepted {
    job: Job,
    line: IndexLine,
}

impl Worker {
    fn run_batch(&mut self, batch: Vec<Job>) {
        let mut accepted = Vec::new();
        match self.commit_batch(batch, &mut accepted) {
            Ok(done) => {
                for (job, published) in done {
                    let _ = job.reply.send(Ok(published));
                }
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "publish batch failed");
                for a in accepted {
                    let _ = a
                        .job
                        .reply
                        .send(Err(WriteError::Internal(anyhow::anyhow!("{e:#}"))));
                }
            }
        }
        if let Err(e) = self.reg.index.consolidate_packs() {
            tracing::warn!(error = %format!("{e:#}"), "pack consolidation failed");
        }
    }

    /// Undoes the database records and blobs of a group whose index commit
    /// failed: nothing of it was acknowledged.
    fn abandon(&self, accepted: &[Accepted]) {
        for a in accepted {
            let key = name::version_key(&a.job.req.version);
            let _ = db::forget_version(&self.conn, &name::canonical(&a.line.name), &key);
            let _ = self.reg.store.remove(&a.line.cksum);
        }
    }

    /// Checks, stores and commits a group; refused jobs are answered here,
    /// accepted ones are moved into `accepted` before any durable effect.
    fn commit_batch(
        &mut self,
        batch: Vec<Job>,
        accepted: &mut Vec<Accepted>,
    ) -> Result<Vec<(Job, Published)>> {
        let now = chrono::Utc::now();
        let at = pubtime(now);
        let reg = self.reg.clone();
        let txn = self.conn.transaction()?;
        for job in batch {
            let r = &job.req;
            let target = format!("{} {}", r.inspected.manifest.name, r.version);
            match check(&txn, &reg, r) {
                Ok(new_package) => {
                    if new_package {
                        db::create_package(&txn, &r.inspected.manifest.name, r.caller.user.id)?;
                    }
                    db::record_version(
                        &txn,
                        &r.inspected.manifest.name,
                        &r.version,
                        &r.sha256,
                        &at,
                        r.caller.user.id,
                    )?;
                    audit(&txn, r, &target, "ok")?;
                    let line = index_line(r, &at);
                    accepted.push(Accepted { job, line });
                }
                Err(e) => {
                    audit(&txn, r, &target, &format!("refused: {e}"))?;
                    let _ = job.reply.send(Err(e));
                }
            }
        }
        if accepted.is_empty() {
            txn.commit()?;
            return Ok(vec![]);
        }

        // The records first, so a crash from here on leaves rows that the
        // next start can match with (and clean up) any blob written below.
        txn.commit()?;

        // Bytes and signatures, in parallel: each is independent.
        let stored = accepted.par_iter().try_for_each(|a| -> Result<()> {
            let r = &a.job.req;
            let att = Attestation {
                registry: reg.config.name.clone(),
                name: a.line.name.clone(),
                version: a.line.vers.clone(),
                sha256: r.sha256.clone(),
                blake3: r.blake3.clone(),
            };
            let sig = reg.key.sign(&r.bytes, &att)?;
            reg.store.put(&r.sha256, &r.bytes, &sig)?;
            Ok(())
        });

        // One commit per version, one pack for the group.
        let mut files: BTreeMap<String, Vec<IndexLine>> = BTreeMap::new();
        let committed = stored.and_then(|()| {
            reg.index.write_batch(|tx| {
                let mut commits = Vec::new();
                for a in accepted.iter() {
                    let path = package_path(&a.line.name);
                    let lines = match files.get_mut(&path) {
                        Some(lines) => lines,
                        None => {
                            let existing = tx
                                .read(&path)?
                                .map(|b| IndexLine::parse_file(&b))
                                .transpose()?;
                            files
                                .entry(path.clone())
                                .or_insert(existing.unwrap_or_default())
                        }
                    };
                    lines.push(a.line.clone());
                    let content = IndexLine::file_bytes(lines);
                    let subject = format!("publish {} {}", a.line.name, a.line.vers);
                    commits.push(tx.commit(
                        &[(&path, Some(&content))],
                        &subject,
                        &a.job.req.caller.user.login,
                    )?);
                }
                Ok(commits)
            })
        });
        let (commits, _head) = match committed {
            Ok(c) => c,
            Err(e) => {
                self.abandon(accepted);
                return Err(e);
            }
        };
        // From here on the group is published; a failure below leaves derived
        // files behind the index, which the next start rewrites.

        // Derived files of every package the group touched.
        for lines in files.values() {
            let owners = db::owners(&self.conn, &lines[0].name)?;
            derive::write_package(&reg.static_root, lines, &owners)?;
        }
        for a in accepted.iter() {
            derive::write_version(
                &reg.static_root,
                &a.line,
                a.job.req.inspected.readme.as_deref(),
            )?;
        }
        reg.write_summaries(&self.conn)?;

        Ok(std::mem::take(accepted)
            .into_iter()
            .zip(commits)
            .map(|(a, commit)| {
                let published = Published {
                    name: a.line.name.clone(),
                    version: a.line.vers.clone(),
                    sha256: a.line.cksum.clone(),
                    blake3: a.line.blake3.clone(),
                    size_bytes: a.line.size,
                    signature: format!(
                        "{}.minisig",
                        crate::store::BlobStore::url_path(&a.line.cksum)
                    ),
                    index_commit: commit.to_string(),
                    published_at: at.clone(),
                };
                (a.job, published)
            })
            .collect())
    }
}

/// The state checks of a publish, in the order a publisher would want to
/// hear about them. Returns whether the name is new.
fn check(conn: &Connection, reg: &Registry, r: &PublishRequest) -> Result<bool, WriteError> {
    let pkg = &r.inspected.manifest.name;
    let caller = &r.caller;
    if !caller.may_touch(pkg) {
        return Err(WriteError::Forbidden(format!(
            "this token may not publish `{pkg}`"
        )));
    }
    let existing = db::find_package(conn, pkg)?;
    let new_package = match existing {
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
            name::check_reserved(pkg, &reg.config.reserved_names).map_err(|e| WriteError::Invalid(e.to_string()))?;
            if let Some(similar) = db::find_confusable(conn, pkg)? {
                return Err(WriteError::Conflict(format!(
                    "the name `{pkg}` is too similar to the existing package `{similar}`"
                )));
            }
            if !caller.has_scope("publish-new") {
                return Err(WriteError::Forbidden("this token lacks the `publish-new` scope".into()));
            }
            true
        }
    };
    if db::version_burned(conn, pkg, &name::version_key(&r.version))? {
        return Err(WriteError::Conflict(format!(
            "{pkg} {} was published already; a published version is never replaced (publish a new version)",
            r.version
        )));
    }
    Ok(new_package)
}

fn audit(conn: &Connection, r: &PublishRequest, target: &str, outcome: &str) -> Result<()> {
    db::audit(
        conn,
        &AuditEntry {
            user_id: Some(r.caller.user.id),
            token_id: Some(r.caller.token_id),
            action: "publish",
            target,
            addr: r.addr.as_deref(),
            outcome,
        },
    )
}

/// The index line for a native package.
fn index_line(r: &PublishRequest, at: &str) -> IndexLine {
    let m = &r.inspected.manifest;
    IndexLine {
        name: m.name.clone(),
        vers: r.version.to_string(),
        deps: m
            .dependencies
            .iter()
            .map(|d| IndexDep::normal(&d.name, &d.req))
            .collect(),
        cksum: r.sha256.clone(),
        features: BTreeMap::new(),
        yanked: false,
        links: m.links.clone(),
        v: 1,
        features2: None,
        rust_version: m.rust_version.clone(),
        pubtime: Some(at.to_string()),
        blake3: r.blake3.clone(),
        size: r.bytes.len() as u64,
        fmt: r.inspected.format.ext().to_string(),
        kind: m.kind.clone(),
        description: m.description.clone(),
        license: m.license.clone(),
        keywords: m.keywords.clone(),
        repository: m.repository.clone(),
    }
}
