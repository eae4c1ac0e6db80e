//! `cairn restore BACKUP --data NEW`: the backup's files (and the blobs of
//! the backups it was taken `--since`) copied into a new data directory,
//! then every derived file made again from them, as the static job and
//! recovery make them: the same sources give the same bytes, and the
//! published checkpoint is the backup's own.

use anyhow::{Context, Result};
use std::path::Path;

use super::{copy_tree, read_manifest, Manifest, MANIFEST};
use crate::config::Config;
use crate::jobs::Job;
use crate::registry::Registry;

pub fn restore(backup: &Path, data: &Path) -> Result<Manifest> {
    let manifest = read_manifest(backup)?;
    let empty = std::fs::read_dir(data).map(|mut d| d.next().is_none()).unwrap_or(true);
    anyhow::ensure!(empty, "{} is not empty: restore into a new directory", data.display());
    std::fs::create_dir_all(data)?;
    copy_tree(backup, data, &|f| f != Path::new(MANIFEST))?;
    // The blobs the backup left out are in the ones before it.
    let mut at = manifest.since.clone();
    while let Some(prev) = at {
        let before =
            read_manifest(&prev).with_context(|| format!("the backup before, {}", prev.display()))?;
        let missing = |f: &Path| f.components().any(|c| c.as_os_str() == "blobs") && !data.join(f).exists();
        copy_tree(&prev, data, &|f| f != Path::new(MANIFEST) && missing(f))?;
        at = before.since;
    }
    if manifest.database == "postgres" {
        eprintln!("the database is Postgres: restore it with its own tools (pg_restore) into the database registry.toml names, before serving");
    }
    // No recovery: the backup is consistent, and recovery would commit a
    // `config.json` of this registry.toml's URLs, moving the index on.
    let config = Config::load(data)?;
    let reg = Registry::open(data, config)?;
    let key = reg.key.as_ref().context("a backup holds the signing key")?;
    reg.root.put_durable(&reg.root.layout().minisign_pub(), key.public_key_file().as_bytes())?;
    crate::site::write_fixed(&reg.root, &reg.config.sign_in_providers())?;
    // The documents the writer and the server's timers keep: the static
    // job's, the search shards, and the advisories' when there are any.
    let options = crate::jobs::Options::default();
    let advisories = reg.index.files()?.1.iter().any(|(path, _)| path.starts_with("advisories/"));
    let jobs = [Job::Static, Job::Search].into_iter().chain(advisories.then_some(Job::Advisories));
    for job in jobs {
        crate::jobs::rebuild(&reg, job, &options)?;
    }
    let conn = reg.db()?;
    for private in reg.private_registries(&conn)? {
        private.rederive_all(&conn)?;
    }
    crate::fsutil::sync_filesystem(data)?;
    Ok(manifest)
}
