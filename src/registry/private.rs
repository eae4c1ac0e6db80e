//! Private organisations' registries (SPEC section 15): each made over the
//! public registry's storage (seen with the organisation's layout), database
//! and signing key, with its own index repository, log, writer lock and
//! name space.

use anyhow::{Context, Result};
use std::sync::Arc;

use super::{registry_config, Registry, KEY_FILE};
use crate::db;
use crate::index::{stored, IndexRepo};
use crate::layout::Layout;
use crate::sign::SigningKey;
use crate::store::BlobStore;

impl Registry {
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
    /// and name space; created at first use, its index's `config.json`
    /// brought up to date by recovery (on a bucket, under its lease).
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
        // A working copy of the bucket's is pulled between its writer's
        // groups, as the public registry's is by `cairn fsck`.
        let opening = match copy.is_some() {
            true => Some(super::lock_writer_of(&data)?),
            false => None,
        };
        let exists = match &copy {
            Some(copy) => copy.tip()?.is_some(),
            None => git_dir.join("HEAD").is_file(),
        };
        let index = match exists {
            true => IndexRepo::open(&git_dir, &self.config.name, copy)?,
            false => IndexRepo::init(&git_dir, &self.config.name, &config_json, copy)?,
        };
        drop(opening);
        let signing = SigningKey::load(&self.data.join(KEY_FILE))?;
        let reg = Registry {
            data,
            store: BlobStore::new(root.clone()),
            root,
            config: self.config.clone(),
            npm_key: Some(crate::npm::Key::of(&signing)),
            key: Some(signing),
            pubkey: self.pubkey.clone(),
            index,
            log: Some(log),
            events: crate::events::Bell::default(),
            database: self.database.clone(),
            space: db::Space::Org(slug.to_string()),
        };
        {
            // The index's own `config.json` is brought up to date by
            // recovery, after it removed what a kill left in the way.
            let _lock = reg.lock_writer()?;
            reg.root.put_doc(&l.index_file("config.json"), &config_json)?;
            reg.root.put_doc(&l.minisign_pub(), key.public_key_file().as_bytes())?;
            // A new registry has no deprecated package (SPEC section 6).
            if !exists {
                let none = crate::derive::deprecations::whole(&reg.root, []);
                reg.root.put_doc(&none.key, &none.bytes)?;
            }
            // A new registry's (or one made before its log was published at creation).
            if !reg.root.exists(&l.log_checkpoint()) {
                reg.publish_new_log()?;
            }
        }
        Ok(reg)
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
}
