//! The user's credentials and pinned registry keys:
//! `{config dir}/cairn/credentials.toml` (mode 0600), one table per registry
//! URL with its token and the public key and name seen at first contact.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Credentials {
    /// The registry `login` last used, picked when no `--registry` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_registry: Option<String>,
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryEntry>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct RegistryEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The minisign public key (base64 line) pinned at first contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubkey: Option<String>,
    /// The registry's name, bound into its signatures, pinned with the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The transparency log's origin and keys, pinned with the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<super::trust::LogKeys>,
}

/// `$XDG_CONFIG_HOME/cairn` (or `~/.config/cairn`); `CAIRN_CONFIG_DIR` overrides.
pub fn config_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("CAIRN_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    Ok(dirs::config_dir().context("no configuration directory (set HOME or XDG_CONFIG_HOME)")?.join("cairn"))
}

/// `$XDG_CACHE_HOME/cairn` (or `~/.cache/cairn`); `CAIRN_CACHE_DIR` overrides.
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("CAIRN_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    Ok(dirs::cache_dir().context("no cache directory (set HOME or XDG_CACHE_HOME)")?.join("cairn"))
}

/// A registry URL as a key: no trailing slash.
pub fn normalize_url(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

impl Credentials {
    pub fn path() -> Result<PathBuf> {
        Ok(config_dir()?.join("credentials.toml"))
    }

    pub fn load() -> Result<Credentials> {
        let path = Credentials::path()?;
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).with_context(|| format!("parsing {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Credentials::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the file with mode 0600 (temp file, fsync, rename).
    pub fn save(&self) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = Credentials::path()?;
        let dir = path.parent().expect("has a parent");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), rand::random::<u64>()));
        let text = format!(
            "# cairn credentials: tokens and pinned registry keys. Keep this file private.\n{}",
            toml::to_string_pretty(self)?
        );
        let result = (|| -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            crate::fsutil::sync_dir(dir)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.with_context(|| format!("writing {}", path.display()))
    }

    pub fn entry(&self, registry: &str) -> Option<&RegistryEntry> {
        self.registries.get(&normalize_url(registry))
    }

    pub fn entry_mut(&mut self, registry: &str) -> &mut RegistryEntry {
        self.registries.entry(normalize_url(registry)).or_default()
    }
}
