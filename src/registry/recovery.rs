//! Recovery: the derived state brought back in line with the sources of
//! truth after an unclean stop (rows the index never committed, the log's
//! missing entries, the files of every package changed since the commit
//! `health.json` names), the same for a failed group's retry, and the
//! rewrite of every derived file of a registry (`rederive_all`).

use anyhow::Result;

use super::{registry_config, Registry};
use crate::db;
use crate::derive;
use crate::effect::{self, Effect};
use crate::index::IndexLine;
use crate::sign::SigningKey;

impl Registry {
    /// Brings derived state back in line with the sources of truth after an
    /// unclean stop: forgets versions the database recorded but the index
    /// never committed (they were never acknowledged) with their blobs, takes
    /// back hard-delete marks whose index commit never happened, updates
    /// `config.json` when the URLs changed, and rewrites the derived files of
    /// every package changed since the commit `health.json` names (the last
    /// one whose effects were all made). On storage that cannot take writes
    /// (read-only, full) it does what it can and leaves the rest to the
    /// writer's retries: a server that cannot write still serves reads.
    /// The npm door's key document (SPEC section 18), as its key derives it.
    pub fn write_npm_keys(&self) -> Result<()> {
        if let Some(key) = &self.npm_key {
            let doc = crate::npm::packument::keys(self.root.layout(), key);
            self.root.put_doc(&doc.key, &doc.bytes)?;
        }
        Ok(())
    }

    pub fn recover(&self) -> Result<()> {
        let _lock = match self.lock_writer() {
            Ok(lock) => lock,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "no writer lock (read-only storage?): serving without recovery");
                return Ok(());
            }
        };
        // Its own files only: a private registry opened later must not
        // take a temporary file from under the public writer.
        if let Some(dir) = self.root.local_path(self.root.layout().top()) {
            crate::fsutil::remove_stale_temps(&dir);
        }
        if self.key.is_none() {
            return Ok(()); // a mirror: its sources of truth are the source's
        }
        self.write_npm_keys()?;
        // Servers sharing a bucket repair only under the writer lease: the
        // writer does, when it first takes it (`publish::lease`).
        if self.index.is_shared() {
            return Ok(());
        }
        let conn = match self.db() {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "recovery could not open the database; the writer retries");
                return Ok(());
            }
        };
        self.repair(&conn)
    }

    /// What [`Registry::recover`] does once it may write: the rows and
    /// `config.json` against the index, the log's missing entries, and the
    /// derived files of what changed since `health.json`'s commit. Failures
    /// are left to the writer's retries.
    pub(crate) fn repair(&self, conn: &db::Conn) -> Result<()> {
        let key = self.key.as_ref().expect("a registry that writes has its key");
        if let Err(e) = self.repair_rows_and_config(conn, key) {
            tracing::warn!(error = %format!("{e:#}"), "recovery could not write; the writer retries");
            return Ok(());
        }
        if let Err(e) = self.fill_sizes(conn) {
            tracing::warn!(error = %format!("{e:#}"), "recording versions' sizes failed; retried at the next start");
        }
        // Entries a crash kept from the log (the next group would append
        // them too, before its own).
        if let Some(log) = &self.log {
            if let Err(e) = log.catch_up(&self.index, &self.root) {
                tracing::warn!(error = %format!("{e:#}"), "appending the log's missing entries failed; the writer retries");
            }
        }
        let head = self.index.head()?;
        let derived_at = self.derived_at().and_then(|s| git2::Oid::from_str(&s).ok());
        if derived_at != Some(head) {
            let rederive = || -> Result<()> {
                let changed = self.index.changed_paths(derived_at, head)?;
                tracing::info!(files = changed.len(), "rewriting derived files after an unclean stop");
                let mut delta = Vec::new();
                for path in changed {
                    delta.extend(effect::make(self, conn, &Effect::of_path(&path), &head.to_string())?);
                }
                crate::search::delta::record(&self.root, delta)?;
                self.index.refresh_dumb_info()?;
                self.root.sync()?;
                self.write_summaries(conn, &head.to_string())
            };
            if let Err(e) = rederive() {
                tracing::warn!(error = %format!("{e:#}"), "rewriting derived files failed; the writer retries");
            }
        }
        Ok(())
    }

    /// Records the sizes of versions recorded before sizes were (the
    /// quotas' usage), from their index lines.
    fn fill_sizes(&self, conn: &db::Conn) -> Result<()> {
        let missing = db::quota::unsized_versions(conn, &self.space)?;
        let mut by_name: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (name, vers) in missing {
            by_name.entry(name).or_default().push(vers);
        }
        if by_name.is_empty() {
            return Ok(());
        }
        tracing::info!(packages = by_name.len(), "recording versions' sizes from the index");
        // One snapshot and one transaction: a large registry's first start
        // after the upgrade reads and writes them all.
        let snapshot = self.index.snapshot()?;
        let txn = conn.transaction()?;
        for (name, versions) in by_name {
            let Some(file) = snapshot.read(&crate::index::package_path(&name))? else { continue };
            for line in IndexLine::parse_file(&file)?.into_iter().filter(|l| versions.contains(&l.vers)) {
                let key = semver::Version::parse(&line.vers).map(|v| crate::name::version_key(&v))?;
                db::quota::record_size(&txn, &self.space, &name, &key, line.size)?;
            }
        }
        txn.commit()
    }

    /// Rewrites the derived files of every package from the index, under
    /// the writer lock: a private registry's part of the static job (whose
    /// listings, user and site pages are the public registry's alone) and
    /// of `fsck --repair`. Returns the index paths seen.
    pub fn rederive_all(&self, conn: &db::Conn) -> Result<usize> {
        let _lock = self.lock_writer()?;
        let head = self.index.head()?;
        let paths = self.index.changed_paths(None, head)?;
        let mut delta = Vec::new();
        for path in &paths {
            delta.extend(effect::make(self, conn, &Effect::of_path(path), &head.to_string())?);
        }
        crate::search::delta::record(&self.root, delta)?;
        self.root.sync()?;
        self.write_summaries(conn, &head.to_string())?;
        Ok(paths.len())
    }

    /// The rows of the last group against the index, and `config.json`.
    fn repair_rows_and_config(&self, conn: &db::Conn, key: &SigningKey) -> Result<()> {
        self.index.remove_stale_locks()?;
        self.repair_rows(conn)?;
        self.write_config(key)
    }

    /// Commits `config.json` when the URLs or keys it names changed.
    fn write_config(&self, key: &SigningKey) -> Result<()> {
        let wanted = registry_config(&self.config, key, self.log.as_ref(), self.space.org());
        if self.index.read_file("config.json")?.as_deref() != Some(&wanted[..]) {
            self.index.write_batch(|tx| {
                tx.commit(
                    &[("config.json", Some(&wanted))],
                    "config",
                    &format!("Published-By: {}", self.config.name),
                )
            })?;
        }
        Ok(())
    }

    /// Takes back the rows of the last groups that the index never
    /// committed: recorded versions (and their blobs), hard-delete marks.
    pub(crate) fn repair_rows(&self, conn: &db::Conn) -> Result<()> {
        // Only the last batch can be affected: look a little further back.
        // A package's file is at its name's path (`Pg_Kit`: pg/_k/pg_kit),
        // not its canonical key's (`pg-kit`).
        for row in db::recent_versions(conn, &self.space, self.config.max_batch * 2)? {
            let lines = self.read_lines(&row.name)?;
            if !lines.iter().any(|l| l.vers == row.vers) {
                tracing::warn!(package = %row.name, version = %row.vers, "forgetting a version the index never committed");
                db::forget_version(conn, &row.key, &row.version_key)?;
                self.store.remove(&row.sha256)?;
            }
        }
        for row in db::recently_deleted(conn, &self.space, self.config.max_batch * 2)? {
            if self.read_lines(&row.name)?.iter().any(|l| l.vers == row.vers) {
                tracing::warn!(package = %row.name, version = %row.vers, "taking back a hard delete the index never committed");
                db::unmark_version_deleted(conn, &self.space, &row.name, &row.version_key)?;
            }
        }
        Ok(())
    }

    /// Removes the documents, READMEs and blobs of a package's versions
    /// that `lines` (the index) no longer has.
    pub(crate) fn prune_versions(&self, name: &str, lines: &[IndexLine]) -> Result<()> {
        let l = self.root.layout();
        for file in self.root.list(&l.package_dir(name))? {
            let Some(version) = file.strip_suffix(".json") else { continue };
            if semver::Version::parse(version).is_err() || lines.iter().any(|x| x.vers == version) {
                continue;
            }
            let doc: Option<serde_json::Value> =
                self.root.read(&l.version_doc(name, version))?.and_then(|b| serde_json::from_slice(&b).ok());
            if let Some(sha) = doc.as_ref().and_then(|d| d["sha256"].as_str()) {
                if !lines.iter().any(|x| x.cksum == sha) {
                    self.store.remove(sha)?;
                }
            }
            derive::remove_version(&self.root, name, version)?;
        }
        Ok(())
    }
}
