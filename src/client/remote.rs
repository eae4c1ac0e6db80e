//! One registry as the client sees it: its `config.json` (with the key
//! pinned at first contact), the sparse index with an ETag cache, blobs and
//! signatures through the content-addressed local cache, and the write API.

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

use super::cache::Cache;
use super::config::{normalize_url, Credentials};
use super::verify::{self, Expected};
use crate::index::{package_path, IndexLine};

/// `index/config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct RegistryConfig {
    pub dl: String,
    pub api: Option<String>,
    #[serde(rename = "auth-required", default)]
    pub auth_required: bool,
    pub pubkey: String,
    pub name: String,
    /// The transparency log, if the registry keeps one.
    #[serde(default)]
    pub log: Option<super::log::LogKeys>,
}

/// The key and name a client trusts for a registry.
#[derive(Debug, Clone)]
pub struct Trust {
    pub pubkey: String,
    pub name: String,
}

#[derive(Clone)]
pub struct Remote {
    pub url: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
    pub cache: Arc<Cache>,
    /// What the log checks demand.
    pub log: super::log::Policy,
}

/// What the registry answered for an index file.
pub enum IndexFetch {
    /// Fresh from the network (200).
    Fetched(Vec<IndexLine>),
    /// The cached copy, confirmed by a 304.
    NotModified(Vec<IndexLine>),
    /// No such package (404).
    Missing,
}

impl IndexFetch {
    pub fn lines(self) -> Option<Vec<IndexLine>> {
        match self {
            IndexFetch::Fetched(l) | IndexFetch::NotModified(l) => Some(l),
            IndexFetch::Missing => None,
        }
    }
}

pub fn http_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(64)
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(300))
        .build()?)
}

impl Remote {
    pub fn new(url: &str, token: Option<String>) -> Result<Remote> {
        let url = normalize_url(url);
        Ok(Remote {
            cache: Arc::new(Cache::open(&url)?),
            http: http_client()?,
            token,
            url,
            log: super::log::Policy::default(),
        })
    }

    /// Reads `config.json` and checks its key and name against the pin,
    /// pinning them at first contact. `retrust` replaces a pin that differs.
    pub async fn connect(&self, retrust: bool) -> Result<RegistryConfig> {
        let config = self.config().await?;
        pin(&self.url, &config, retrust)?;
        Ok(config)
    }

    pub async fn config(&self) -> Result<RegistryConfig> {
        let url = format!("{}/index/config.json", self.url);
        let resp = self.http.get(&url).send().await.with_context(|| format!("fetching {url}"))?;
        if !resp.status().is_success() {
            bail!("{url} answered {}: is {} a cairn registry?", resp.status(), self.url);
        }
        let bytes = resp.bytes().await?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {url}"))
    }

    /// The trusted key and name: the pin if there is one, else first contact.
    pub async fn trust(&self) -> Result<Trust> {
        let creds = Credentials::load()?;
        if let Some(e) = creds.entry(&self.url) {
            if let (Some(pubkey), Some(name)) = (&e.pubkey, &e.name) {
                return Ok(Trust { pubkey: pubkey.clone(), name: name.clone() });
            }
        }
        let c = self.connect(false).await?;
        Ok(Trust { pubkey: c.pubkey, name: c.name })
    }

    /// One package's index file, revalidated with If-None-Match.
    pub async fn index_file(&self, name: &str) -> Result<IndexFetch> {
        let path = package_path(name);
        let url = format!("{}/index/{path}", self.url);
        // A cached body that no longer parses is not offered for revalidation.
        let cached = self.cache.index_get(&path).filter(|(_, body)| IndexLine::parse_file(body).is_ok());
        let mut req = self.http.get(&url);
        if let Some((etag, _)) = &cached {
            req = req.header(reqwest::header::IF_NONE_MATCH, etag.as_str());
        }
        let resp = req.send().await.with_context(|| format!("fetching {url}"))?;
        match resp.status().as_u16() {
            304 => {
                let (_, body) = cached.ok_or_else(|| anyhow!("{url}: 304 without a cached copy"))?;
                Ok(IndexFetch::NotModified(parse_index(&url, &body)?))
            }
            404 | 410 => {
                self.cache.index_remove(&path);
                Ok(IndexFetch::Missing)
            }
            200 => {
                let etag = resp
                    .headers()
                    .get(reqwest::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = resp.bytes().await.with_context(|| format!("reading {url}"))?;
                let lines = parse_index(&url, &body)?;
                if let Some(etag) = etag {
                    self.cache.index_put(&path, &etag, &body);
                }
                Ok(IndexFetch::Fetched(lines))
            }
            s => bail!("{url} answered {s}"),
        }
    }

    /// A blob's download URL from config.json's `dl` template (cargo's markers).
    pub fn blob_url(config: Option<&RegistryConfig>, base: &str, line: &Expected) -> String {
        let Some(c) = config else {
            return format!("{base}/blobs/sha256/{}", line.sha256);
        };
        let dl = &c.dl;
        let markers = ["{crate}", "{version}", "{prefix}", "{lowerprefix}", "{sha256-checksum}"];
        if !markers.iter().any(|m| dl.contains(m)) {
            return format!("{}/{}/{}/download", dl.trim_end_matches('/'), line.name, line.version);
        }
        let prefix = package_path(&line.name);
        let prefix = prefix.rsplit_once('/').map(|(p, _)| p.to_string()).unwrap_or_default();
        dl.replace("{crate}", &line.name)
            .replace("{version}", &line.version)
            .replace("{lowerprefix}", &prefix.to_lowercase())
            .replace("{prefix}", &prefix)
            .replace("{sha256-checksum}", &line.sha256)
    }

    /// The bytes of a package, verified: from the local cache if it holds
    /// them, else downloaded (with the signature) and cached once verified.
    /// Returns the bytes and how many were downloaded.
    pub async fn blob(
        &self,
        config: Option<&RegistryConfig>,
        trust: &Trust,
        want: &Expected,
    ) -> Result<(Vec<u8>, u64)> {
        if let Some((bytes, sig)) = self.cache.blob_get(&want.sha256) {
            if verify::verify(&bytes, &sig, trust, want).is_ok() {
                return Ok((bytes, 0));
            }
        }
        let url = Remote::blob_url(config, &self.url, want);
        let sig_url = if url.ends_with(&want.sha256) {
            format!("{url}.minisig")
        } else {
            format!("{}/blobs/sha256/{}.minisig", self.url, want.sha256)
        };
        let (bytes, sig) = tokio::try_join!(self.get_bytes(&url), self.get_bytes(&sig_url))?;
        let sig = String::from_utf8(sig).map_err(|_| anyhow!("{sig_url} is not a minisign signature"))?;
        verify::verify(&bytes, &sig, trust, want)
            .with_context(|| format!("refusing {} {} from {url}", want.name, want.version))?;
        self.cache.blob_put(&want.sha256, &bytes, &sig)?;
        let n = bytes.len() as u64;
        Ok((bytes, n))
    }

    pub async fn get_bytes(&self, url: &str) -> Result<Vec<u8>> {
        let resp = self.http.get(url).send().await.with_context(|| format!("fetching {url}"))?;
        if !resp.status().is_success() {
            bail!("{url} answered {}", resp.status());
        }
        Ok(resp.bytes().await.with_context(|| format!("reading {url}"))?.to_vec())
    }

    /// A JSON document from the static root (`None` on 404).
    pub async fn static_json(&self, path: &str) -> Result<Option<serde_json::Value>> {
        let url = format!("{}{path}", self.url);
        let resp = self.http.get(&url).send().await.with_context(|| format!("fetching {url}"))?;
        if resp.status() == 404 {
            return Ok(None);
        }
        if !resp.status().is_success() {
            bail!("{url} answered {}", resp.status());
        }
        Ok(Some(resp.json().await.with_context(|| format!("parsing {url}"))?))
    }

    pub fn cache_root(&self) -> PathBuf {
        self.cache.root.clone()
    }
}

fn parse_index(url: &str, body: &[u8]) -> Result<Vec<IndexLine>> {
    IndexLine::parse_file(body).with_context(|| format!("parsing the index file {url}"))
}

/// Checks `config`'s key and name against the pin for `url`, pinning them at
/// first contact; `retrust` replaces a differing pin.
pub fn pin(url: &str, config: &RegistryConfig, retrust: bool) -> Result<()> {
    let url = normalize_url(url);
    let mut creds = Credentials::load()?;
    let entry = creds.entry_mut(&url);
    match (&entry.pubkey, &entry.name) {
        (Some(k), Some(n)) if *k == config.pubkey && *n == config.name => {
            // A log the registry started after first contact is pinned when
            // first seen; a change of pinned log keys is refused by the log check.
            if entry.log.is_none() && config.log.is_some() {
                entry.log.clone_from(&config.log);
                creds.save()?;
            }
            Ok(())
        }
        (Some(k), n) if !retrust => {
            let what = if *k != config.pubkey { "signing key" } else { "name" };
            bail!(
                "the registry at {url} now presents a different {what} from the one pinned at first contact:\n\
                 \x20 pinned: key {k}, name {}\n\
                 \x20 now:    key {}, name {}\n\
                 Nothing was downloaded or installed. A changed key is what a man-in-the-middle or a \
                 compromised mirror looks like, and also what a key rotation looks like. Check the new \
                 key with the registry's operator (it is served at {url}/minisign.pub); if they confirm \
                 it, trust it with:\n\
                 \x20 cairn login --registry {url} --re-trust",
                n.as_deref().unwrap_or("?"),
                config.pubkey,
                config.name,
            );
        }
        (old, _) => {
            if old.is_some() {
                eprintln!("re-trusting {url}: now pinned to key {} (name {})", config.pubkey, config.name);
            } else {
                eprintln!("pinned the signing key of {url}: {} (name {})", config.pubkey, config.name);
            }
            entry.pubkey = Some(config.pubkey.clone());
            entry.name = Some(config.name.clone());
            entry.log.clone_from(&config.log);
            creds.save()
        }
    }
}
