//! A registry on disk: the data directory's layout, first-time creation, and
//! the repair a restart does after a crash.
//!
//! ```text
//! cairn-data/
//!   registry.toml      configuration (written last by init; with static/index/config.json it means "a registry")
//!   minisign.key       the signing key (0600)
//!   state.db           users, token hashes, owners, burned versions, audit log
//!   static/            everything readers fetch
//!     index/           checkout of the index tree      index.git/  the bare index repository
//!     blobs/sha256/    tarballs and .minisig            minisign.pub, api/v1/…, site files
//!     orgs/{org}/      a private organisation's registry: the same layout below its prefix
//!   orgs/{org}/        its writer lock and log (and, on a bucket, its index's working copy)
//! ```

use anyhow::{Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Config;
use crate::config::StorageKind;
use crate::db;
use crate::derive;
use crate::index::stored;
use crate::index::{meta, package_path, IndexLine, IndexRepo, Meta};
use crate::layout::{Layout, ObjectStorage, StaticRoot};
use crate::search::DeltaEntry;
use crate::sign::SigningKey;
use crate::store::BlobStore;

pub struct Registry {
    pub data: PathBuf,
    /// Every read and write of the static root goes through it.
    pub root: Arc<StaticRoot>,
    pub config: Config,
    /// The signing key; a mirror has none.
    pub key: Option<SigningKey>,
    /// The public key's base64 line (`RW…`), the registry's or the mirrored source's.
    pub pubkey: String,
    pub index: IndexRepo,
    pub store: BlobStore,
    /// The transparency log; a mirror serves its source's instead.
    pub log: Option<crate::log::Log>,
    /// Rung by the writer when it appended events (webhooks and streams follow it).
    pub events: crate::events::Bell,
    /// The state database `[database] url` names (default: `state.db` here).
    pub database: db::Target,
    /// Whose packages: the public registry's, or a private organisation's.
    pub space: db::Space,
}

/// The registry's signing key in the data directory.
const KEY_FILE: &str = "minisign.key";

/// The login of the account `init` creates and whose token it prints.
pub const BOOTSTRAP_LOGIN: &str = "admin";

impl Registry {
    /// A registry is a `registry.toml` with its signing key (a mirror's
    /// says `read_only` and has none). `registry.toml` alone is an
    /// operator's configuration waiting for `init` (SPEC section 13).
    pub fn exists(data: &Path) -> bool {
        data.join("registry.toml").is_file()
            && (data.join(KEY_FILE).is_file() || Config::load(data).is_ok_and(|c| c.read_only))
    }

    /// Creates a registry in `data` and returns the bootstrap account's token.
    pub fn init(data: &Path, config: &Config) -> Result<String> {
        anyhow::ensure!(!Registry::exists(data), "{} already holds a registry", data.display());
        // Leftovers of an init that crashed are not a registry: start again.
        let partial_key = data.join("minisign.key.partial");
        for partial in
            ["minisign.key.partial", "state.db", "state.db-wal", "state.db-shm", "static", "index.git", "log"]
        {
            let p = data.join(partial);
            if p.is_dir() {
                std::fs::remove_dir_all(&p)?;
            } else if p.exists() {
                std::fs::remove_file(&p)?;
            }
        }
        let (root, git_dir, copy) = storage(data, config)?;
        let l = root.layout();
        // The key takes its name last: with it, the directory is a registry.
        let key = SigningKey::generate(&partial_key)?;
        root.put_durable(&l.minisign_pub(), key.public_key_file().as_bytes())?;
        let log = crate::log::Log::open(data, &config.log_origin())?;
        let conn = db::open(&db::Target::of(data, config)?)?;
        // A shared database may hold the account already (an init that
        // crashed after it): the new data directory gets a token of its own.
        let token = match db::find_user(&conn, BOOTSTRAP_LOGIN)? {
            Some(_) if conn.engine() == db::Engine::Postgres => {
                tracing::warn!(
                    login = BOOTSTRAP_LOGIN,
                    "the database has the account already: issuing a new token"
                );
                db::issue_first_token(&conn, BOOTSTRAP_LOGIN)?
            }
            _ => db::add_user(&conn, BOOTSTRAP_LOGIN, None)?,
        };
        crate::site::write_fixed(&root)?;
        let config_json = config_json(config, &key, Some(&log));
        IndexRepo::init(&git_dir, &config.name, &config_json, copy)?;
        root.put_durable(&l.index_file("config.json"), &config_json)?;
        // An operator's registry.toml (written before init) stays as it is.
        if !data.join("registry.toml").is_file() {
            crate::fsutil::write_atomic(&data.join("registry.toml"), config.to_toml().as_bytes())?;
        }
        std::fs::rename(&partial_key, data.join(KEY_FILE))?;
        crate::fsutil::sync_dir(data)?;
        let reg = Registry::open(data, config.clone())?;
        reg.publish_new_log()?;
        reg.write_summaries(&conn, &reg.index.head()?.to_string())?;
        Ok(token)
    }

    pub fn open(data: &Path, config: Config) -> Result<Registry> {
        anyhow::ensure!(Registry::exists(data), "{} holds no registry (run `cairn init`)", data.display());
        let database = db::Target::of(data, &config)?;
        let (root, git_dir, copy) = storage(data, &config)?;
        let l = root.layout();
        let key = if config.read_only { None } else { Some(SigningKey::load(&data.join(KEY_FILE))?) };
        let pubkey = match &key {
            Some(k) => k.public_base64(),
            None => read_pubkey(&root, &l.minisign_pub())?,
        };
        let index = IndexRepo::open(&git_dir, &config.name, copy)?;
        let log = match &key {
            Some(_) => Some(crate::log::Log::open(data, &config.log_origin())?),
            None => None,
        };
        Ok(Registry {
            events: crate::events::Bell::default(),
            log,
            data: data.to_path_buf(),
            store: BlobStore::new(root.clone()),
            root,
            config,
            key,
            pubkey,
            index,
            database,
            space: db::Space::Public,
        })
    }

    /// The lock every writer holds while it changes the registry: the
    /// server's writer thread per group, the admin CLI per command.
    pub fn lock_writer(&self) -> Result<std::fs::File> {
        let f = self.lock_file("writer.lock")?;
        f.lock()?;
        Ok(f)
    }

    /// Held shared by each `cairn serve` on this data directory for as
    /// long as it runs; `alone` takes it exclusively, failing at once
    /// while a server runs (`cairn migrate`).
    pub fn lock_serving(&self, alone: bool) -> Result<std::fs::File> {
        let f = self.lock_file("serve.lock")?;
        match alone {
            false => f.lock_shared()?,
            true => f.try_lock().map_err(|_| {
                anyhow::anyhow!("a `cairn serve` runs on {}: stop it first", self.data.display())
            })?,
        }
        Ok(f)
    }

    /// A lock file, opened for reading where the storage is read-only (a
    /// lock needs no write access, and a server there still serves reads).
    fn lock_file(&self, name: &str) -> Result<std::fs::File> {
        let path = self.data.join(name);
        match std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path) {
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => Ok(std::fs::File::open(&path)?),
            opened => Ok(opened?),
        }
    }

    pub fn db(&self) -> Result<db::Conn> {
        db::open(&self.database)
    }

    /// Brings derived state back in line with the sources of truth after an
    /// unclean stop: forgets versions the database recorded but the index
    /// never committed (they were never acknowledged) with their blobs, takes
    /// back hard-delete marks whose index commit never happened, updates
    /// `config.json` when the URLs changed, and rewrites the derived files of
    /// every package changed since the commit `health.json` names (the last
    /// one whose effects were all made). On storage that cannot take writes
    /// (read-only, full) it does what it can and leaves the rest to the
    /// writer's retries: a server that cannot write still serves reads.
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
                    delta.extend(self.rederive_path(conn, &path, &head.to_string())?);
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

    /// Makes (`private`) an organisation's registry under `/orgs/{slug}/`,
    /// or removes its `config.json`, the mark of one (an organisation that
    /// turned public before it published anything). Called after an
    /// organisation's change; the static job does the same for every
    /// organisation, so repairing a write that failed.
    pub fn write_org_config(&self, slug: &str, private: bool) -> Result<()> {
        if private && self.key.is_some() {
            return self.org_registry(slug).map(drop);
        }
        let key = Layout::org(slug).index_file("config.json");
        if self.root.stat(&key)?.is_some() {
            self.root.remove(&key)?;
        }
        Ok(())
    }

    /// A private organisation's registry (SPEC section 15): the same
    /// storage below `orgs/{slug}/`, the same database and signing key,
    /// its own index repository, log, writer lock (and lease, on a bucket)
    /// and name space; created at first use, its `config.json` brought up
    /// to date on every open (on a bucket, under its lease: `repair`).
    pub fn org_registry(&self, slug: &str) -> Result<Registry> {
        let key = self.key.as_ref().context("a mirror keeps no organisation's registry")?;
        let layout = Layout::org(slug);
        let data = self.data.join("orgs").join(slug);
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        let root = Arc::new(self.root.below(layout.clone()));
        let l = &layout;
        // As the public registry's: the static root's on a disk, a working copy of the bucket's otherwise.
        let (git_dir, copy) = match self.root.local_path(&l.index_git()) {
            Some(dir) => (dir, None),
            None => (data.join("index.git"), Some(Arc::new(stored::Copy::new(root.clone())))),
        };
        let public_log = self.log.as_ref().context("a registry that writes keeps a log")?;
        let log = crate::log::Log::open_below(
            &data,
            &format!("{}/orgs/{slug}", self.config.log_origin()),
            public_log,
        )?;
        let config_json = registry_config(&self.config, key, Some(&log), Some(slug));
        let exists = match &copy {
            Some(copy) => copy.tip()?.is_some(),
            None => git_dir.join("HEAD").is_file(),
        };
        let index = match exists {
            true => IndexRepo::open(&git_dir, &self.config.name, copy)?,
            false => IndexRepo::init(&git_dir, &self.config.name, &config_json, copy)?,
        };
        let reg = Registry {
            data,
            store: BlobStore::new(root.clone()),
            root,
            config: self.config.clone(),
            key: Some(SigningKey::load(&self.data.join(KEY_FILE))?),
            pubkey: self.pubkey.clone(),
            index,
            log: Some(log),
            events: crate::events::Bell::default(),
            database: self.database.clone(),
            space: db::Space::Org(slug.to_string()),
        };
        {
            let _lock = reg.lock_writer()?;
            if !reg.index.is_shared() {
                reg.write_config(key)?;
            }
            reg.root.put_doc(&l.index_file("config.json"), &config_json)?;
            reg.root.put_doc(&l.minisign_pub(), key.public_key_file().as_bytes())?;
            if !exists {
                reg.publish_new_log()?;
            }
        }
        Ok(reg)
    }

    /// A new registry's log published at once (empty, with its signed
    /// checkpoint), so a client and fsck find one before the first write.
    fn publish_new_log(&self) -> Result<()> {
        match &self.log {
            Some(log) => log.catch_up(&self.index, &self.root).map(drop),
            None => Ok(()),
        }
    }

    /// The registries of the private organisations the database names
    /// whose registry was made (here, or on a bucket by any server).
    pub fn private_registries(&self, conn: &db::Conn) -> Result<Vec<Registry>> {
        let made = |slug: &str| match self.index.is_shared() {
            true => self.root.exists(&Layout::org(slug).index_file("config.json")),
            false => self.data.join("orgs").join(slug).is_dir(),
        };
        let orgs = db::org::all(conn)?.into_iter().filter(|o| o.private && made(&o.slug));
        orgs.map(|o| self.org_registry(&o.slug)).collect()
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
            delta.extend(self.rederive_path(conn, path, &head.to_string())?);
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
                tx.commit(&[("config.json", Some(&wanted))], "config", &self.config.name)
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

    /// The commit `health.json` names: the last one whose effects are all made.
    pub fn derived_at(&self) -> Option<String> {
        let bytes = self.root.read(&self.root.layout().health()).ok()??;
        let doc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        doc["indexCommit"].as_str().map(String::from)
    }

    /// Rewrites the derived files that depend on one index path; for a
    /// package's file, returns its search delta entry as of `head` (the
    /// group that changed it may not have written it). Documents of
    /// versions the index no longer has are removed, with their blobs (a
    /// hard delete whose effects did not run).
    pub(crate) fn rederive_path(
        &self,
        conn: &db::Conn,
        path: &str,
        head: &str,
    ) -> Result<Option<DeltaEntry>> {
        let content = self.index.read_file(path)?;
        if path == "config.json" || path.starts_with("advisories/") || path.starts_with(meta::DIR) {
            let key = self.root.layout().index_file(path);
            match content {
                Some(c) => drop(self.root.put_doc(&key, &c)?),
                // A package no longer deprecated.
                None => self.root.remove(&key)?,
            }
            // A meta file changes its package's documents, pages and search entry too.
            return match path.strip_prefix(meta::DIR).and_then(|p| p.strip_suffix(".json")) {
                Some(package) => self.rederive_path(conn, package, head),
                None => Ok(None),
            };
        }
        let lines = content.as_deref().map(IndexLine::parse_file).transpose()?.unwrap_or_default();
        // A package file's name is its last path segment (the lowercased name).
        let name = lines
            .first()
            .map_or_else(|| path.rsplit('/').next().unwrap_or(path).to_string(), |l| l.name.clone());
        self.prune_versions(&name, &lines)?;
        if lines.is_empty() {
            derive::remove_package(&self.root, &name)?;
            return Ok(Some(DeltaEntry::of(&name, &lines, head, 0, false)));
        }
        let owners = db::owners(conn, &self.space, &name)?;
        let downloads = crate::db::downloads::package_totals(conn, &self.space, &name)?;
        let meta = self.read_meta(&name)?;
        derive::write_package(&self.root, &lines, &owners, &downloads, meta.as_ref())?;
        for line in &lines {
            let readme = self.readme_of(line);
            derive::write_version(&self.root, line, readme.as_deref(), &downloads)?;
        }
        crate::site::package::write(&self.root, &lines, &owners, &downloads, meta.as_ref(), None)?;
        let total = lines.iter().filter_map(|l| downloads.get(&l.vers)).sum();
        let deprecated = meta.is_some_and(|m| m.is_deprecated());
        Ok(Some(DeltaEntry::of(&name, &lines, head, total, deprecated)))
    }

    /// Removes the documents, READMEs and blobs of a package's versions
    /// that `lines` (the index) no longer has.
    fn prune_versions(&self, name: &str, lines: &[IndexLine]) -> Result<()> {
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

    /// The README extracted from a stored tarball, if it has one.
    pub fn readme_of(&self, line: &IndexLine) -> Option<Vec<u8>> {
        let bytes = self.store.read(&line.cksum).ok()??;
        crate::archive::unpack::check(&bytes, &line.name, &line.vers).ok().and_then(|i| i.readme)
    }

    /// A package's `meta/` file at `main`, if it has one.
    pub fn read_meta(&self, name: &str) -> Result<Option<Meta>> {
        match self.index.read_file(&meta::path(name))? {
            Some(bytes) => Ok(Some(Meta::parse(&bytes)?)),
            None => Ok(None),
        }
    }

    /// A package's index lines at `main` (empty if it has none).
    pub fn read_lines(&self, name: &str) -> Result<Vec<IndexLine>> {
        match self.index.read_file(&package_path(name))? {
            Some(bytes) => Ok(IndexLine::parse_file(&bytes)?),
            None => Ok(vec![]),
        }
    }

    /// `recent.json` and `health.json` (naming `index_commit`, the last
    /// commit whose effects are all made), from the database.
    pub fn write_summaries(&self, conn: &db::Conn, index_commit: &str) -> Result<()> {
        let recent: Vec<Recent> = db::recent_versions(conn, &self.space, 100)?
            .into_iter()
            .map(|r| Recent { name: r.name, version: r.vers, published_at: r.published_at })
            .collect();
        let (packages, versions) = db::space_counts(conn, &self.space)?;
        self.write_summary_files(&recent, packages as u64, versions as u64, index_commit)
    }

    /// Writes `recent.json` (newest first, at most 100) and `health.json`.
    pub fn write_summary_files(
        &self,
        recent: &[Recent],
        packages: u64,
        versions: u64,
        head: &str,
    ) -> Result<()> {
        let recent_doc = json!({
            "generatedAt": db::now(),
            "publishes": recent.iter().take(100).map(|r| json!({
                "name": r.name, "version": r.version, "publishedAt": r.published_at,
            })).collect::<Vec<_>>(),
        });
        let l = self.root.layout();
        self.root.put_durable(&l.recent(), &derive::to_bytes(&recent_doc))?;
        let health = json!({
            "status": "ok",
            "generatedAt": db::now(),
            "indexCommit": head,
            "packages": packages,
            "versions": versions,
            "lastPublishAt": recent.first().map(|r| r.published_at.clone()),
            "version": env!("CARGO_PKG_VERSION"),
        });
        self.root.put_durable(&l.health(), &derive::to_bytes(&health))?;
        crate::site::write_home(&self.root, recent, &health)?;
        Ok(())
    }
}

/// One entry of `recent.json`.
pub struct Recent {
    pub name: String,
    pub version: String,
    pub published_at: String,
}

impl Recent {
    /// The entry of an index line that carries its publish time.
    pub fn of(line: &IndexLine) -> Option<Recent> {
        Some(Recent {
            name: line.name.clone(),
            version: line.vers.clone(),
            published_at: line.pubtime.clone()?,
        })
    }
}

/// The base64 key line of a standard two-line `minisign.pub`.
/// The static root `[storage]` names, the directory of the index
/// repository on this machine, and the storage's copy of that repository
/// when the root is not on this machine's disk. On the filesystem the
/// repository is the static root's `index.git/` itself; in object storage
/// the data directory holds a working copy (`index.git/`) that can be lost.
pub(crate) fn storage(
    data: &Path,
    config: &Config,
) -> Result<(Arc<StaticRoot>, PathBuf, Option<Arc<stored::Copy>>)> {
    match config.storage.kind {
        StorageKind::Fs => {
            let dir = data.join("static");
            std::fs::create_dir_all(&dir)?;
            let root = Arc::new(StaticRoot::fs(&dir));
            let git_dir = dir.join(root.layout().index_git());
            Ok((root, git_dir, None))
        }
        StorageKind::S3 => {
            let storage = ObjectStorage::open(&config.storage).context("opening [storage]")?;
            let root = Arc::new(StaticRoot::new(Box::new(storage), Layout::public()));
            let copy = Arc::new(stored::Copy::new(root.clone()));
            Ok((root, data.join("index.git"), Some(copy)))
        }
    }
}

fn read_pubkey(root: &StaticRoot, key: &str) -> Result<String> {
    let bytes = root.read(key).with_context(|| format!("reading {key}"))?;
    let text = String::from_utf8_lossy(bytes.as_deref().unwrap_or_default()).into_owned();
    text.lines()
        .find(|l| l.starts_with("RW"))
        .map(str::to_string)
        .with_context(|| format!("{key} holds no minisign public key"))
}

/// `index/config.json`: cargo's `dl` and `api` plus cairn's key and name,
/// and the log's origin and keys.
pub fn config_json(config: &Config, key: &SigningKey, log: Option<&crate::log::Log>) -> Vec<u8> {
    registry_config(config, key, log, None)
}

/// `config.json` of the public registry (`org: None`) or of a private
/// organisation's, below its prefix, with `auth-required` (RFC 3139).
fn registry_config(
    config: &Config,
    key: &SigningKey,
    log: Option<&crate::log::Log>,
    org: Option<&str>,
) -> Vec<u8> {
    let below = org.map(|slug| format!("/orgs/{slug}")).unwrap_or_default();
    let mut doc = json!({
        "dl": format!("{}{below}/blobs/sha256/{{sha256-checksum}}", config.public_url()),
        "api": format!("{}{below}", config.api_url()),
        "auth-required": org.is_some(),
        "pubkey": key.public_base64(),
        "name": config.name,
    });
    if let Some(log) = log {
        let (note, time) = log.vkeys();
        doc["log"] = json!({"origin": log.origin(), "key": note, "timeKey": time});
    }
    derive::to_bytes(&doc)
}

/// Opens the registry in `data`, creating it first if there is none. Returns
/// the bootstrap token when it was created now.
pub fn open_or_init(data: &Path, config: Config) -> Result<(Registry, Option<String>)> {
    let token = if Registry::exists(data) {
        None
    } else {
        std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
        Some(Registry::init(data, &config)?)
    };
    Ok((Registry::open(data, config)?, token))
}
