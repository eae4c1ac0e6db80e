//! `cairn migrate --to NEW.toml`: moves a registry onto the engines another
//! `registry.toml` names (SPEC section 13), e.g. from the embedded default
//! to a bucket. With no server running (it holds `serve.lock`) and the
//! writer lock held, every file
//! of the static root is copied into the new storage with its headers —
//! blobs create-only, the index repository's ref last, so the new
//! storage names a commit only once all of it is there — then NEW.toml
//! becomes `registry.toml` (the old one kept beside it). The old files are
//! left in place for the operator to remove once the new setup serves.

use anyhow::{Context, Result};
use std::path::Path;

use crate::config::Config;
use crate::index::stored::BRANCH;
use crate::registry::{self, Registry};

#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub files_copied: usize,
    pub blobs_present: usize,
}

pub fn migrate(data: &Path, to: &Path) -> Result<Report> {
    let text = std::fs::read_to_string(to).with_context(|| format!("reading {}", to.display()))?;
    let new: Config = toml::from_str(&text).with_context(|| format!("parsing {}", to.display()))?;
    let reg = Registry::open(data, Config::load(data)?)?;
    let _alone = reg.lock_serving(true)?;
    let _lock = reg.lock_writer()?;
    anyhow::ensure!(new.name == reg.config.name, "{} names another registry ({})", to.display(), new.name);
    let mut report = Report::default();
    let from = reg.root.clone();
    let (dest, _, copy) = registry::storage(data, &new)?;
    anyhow::ensure!(copy.is_some(), "{} keeps the static root on this disk: nothing to move", to.display());
    let git = from.layout().index_git();
    let last = format!("{git}/{BRANCH}");
    let mut keys = from.list_all("")?;
    keys.retain(|k| !k.split('/').any(|c| c.starts_with('.')) && *k != last);
    for key in &keys {
        let bytes = from.read(key)?.with_context(|| format!("{key} vanished while copying"))?;
        if key.starts_with(&from.layout().blobs_dir()) {
            if !dest.put_new(key, &bytes)? {
                report.blobs_present += 1;
                continue;
            }
        } else {
            dest.put(key, &bytes)?;
        }
        report.files_copied += 1;
    }
    // Every file the ref names is stored before it is.
    dest.sync()?;
    let tip = from.read(&last)?.context("the index has no ref")?;
    dest.put_durable(&last, &tip)?;
    report.files_copied += 1;
    let registry_toml = data.join("registry.toml");
    std::fs::copy(&registry_toml, data.join("registry.toml.before-migrate"))?;
    crate::fsutil::write_atomic(&registry_toml, text.as_bytes())?;
    Ok(report)
}
