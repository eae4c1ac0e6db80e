//! A registry on disk: the data directory's layout, first-time creation and
//! opening, and what every part reads of it (lines, `meta/` files, READMEs).
//! Recovery after a crash is `recovery.rs`; private organisations'
//! registries `private.rs`; `recent.json` and `health.json` `summaries.rs`.
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

mod private;
mod recovery;
mod summaries;

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
use crate::sign::SigningKey;
use crate::store::BlobStore;

pub struct Registry {
    pub data: PathBuf,
    /// Every read and write of the static root goes through it.
    pub root: Arc<StaticRoot>,
    pub config: Config,
    /// The signing key; a mirror has none.
    pub key: Option<SigningKey>,
    /// The npm signing key derived from it (SPEC section 18).
    pub npm_key: Option<crate::npm::Key>,
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
pub const KEY_FILE: &str = "minisign.key";

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
        crate::site::write_fixed(&root, &config.sign_in_providers())?;
        let config_json = config_json(config, &key, Some(&log));
        IndexRepo::init(&git_dir, &config.name, &config_json, copy)?;
        root.put_durable(&l.index_file("config.json"), &config_json)?;
        // No package is deprecated yet: installs need not ask one by one.
        let none = crate::derive::deprecations::whole(&root, []);
        root.put_doc(&none.key, &none.bytes)?;
        // An operator's registry.toml (written before init) stays as it is.
        if !data.join("registry.toml").is_file() {
            crate::fsutil::write_atomic(&data.join("registry.toml"), config.to_toml().as_bytes())?;
        }
        std::fs::rename(&partial_key, data.join(KEY_FILE))?;
        crate::fsutil::sync_dir(data)?;
        let reg = Registry::open(data, config.clone())?;
        reg.publish_new_log()?;
        reg.write_npm_keys()?;
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
            npm_key: key.as_ref().map(crate::npm::Key::of),
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
        lock_file(&self.data, name)
    }

    pub fn db(&self) -> Result<db::Conn> {
        db::open(&self.database)
    }

    /// A new registry's log published at once (empty, with its signed
    /// checkpoint), so a client and fsck find one before the first write.
    fn publish_new_log(&self) -> Result<()> {
        match &self.log {
            Some(log) => log.catch_up(&self.index, &self.root).map(drop),
            None => Ok(()),
        }
    }

    /// The commit `health.json` names: the last one whose effects are all made.
    pub fn derived_at(&self) -> Option<String> {
        let bytes = self.root.read(&self.root.layout().health()).ok()??;
        let doc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        doc["indexCommit"].as_str().map(String::from)
    }

    /// The README extracted from a stored tarball, if it has one.
    pub fn readme_of(&self, line: &IndexLine) -> Option<Vec<u8>> {
        let bytes = self.store.read(&line.cksum).ok()??;
        let inspected = match line.is_npm() {
            true => {
                let (kind, limits) = (crate::archive::ManifestKind::Npm, &crate::archive::Limits::default());
                crate::archive::inspect(&bytes, &line.name, &line.vers, None, kind, limits)
            }
            false => crate::archive::unpack::check(&bytes, &line.name, &line.vers),
        };
        inspected.ok().and_then(|i| i.readme)
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
            let storage = ObjectStorage::open(&config.storage, config.edge()).context("opening [storage]")?;
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

/// A lock file of the data directory `data`, opened for reading where the
/// storage is read-only.
fn lock_file(data: &Path, name: &str) -> Result<std::fs::File> {
    let path = data.join(name);
    match std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path) {
        Err(e) if e.raw_os_error() == Some(libc::EROFS) => Ok(std::fs::File::open(&path)?),
        opened => Ok(opened?),
    }
}

/// [`Registry::lock_writer`] of the registry in `data`, before it is
/// opened: opening one on shared storage brings the node's working copy of
/// the index level with the storage's, which a running server's writer
/// changes too (`cairn fsck` on a serving node).
pub fn lock_writer_of(data: &Path) -> Result<std::fs::File> {
    let f = lock_file(data, "writer.lock")?;
    f.lock()?;
    Ok(f)
}

/// `config.json` of the public registry (`org: None`) or of a private
/// organisation's, below its prefix, with `auth-required` (RFC 3139).
fn registry_config(
    config: &Config,
    key: &SigningKey,
    log: Option<&crate::log::Log>,
    org: Option<&str>,
) -> Vec<u8> {
    let below = org.map(|slug| Layout::org(slug).url_base()).unwrap_or_default();
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
