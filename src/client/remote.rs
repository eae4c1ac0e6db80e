//! One registry as the client sees it: its `config.json` (with the key
//! pinned at first contact), the sparse index with an ETag cache, blobs and
//! signatures (downloaded and verified in one place, kept in the
//! content-addressed local cache), and the static documents. Every read
//! goes through `http`, the one fetch path with its retries, and fails with
//! the typed `error::Error`; every path is a `Layout` key.

use anyhow::{bail, Result};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

use super::cache::Cache;
use super::config::{normalize_url, Credentials};
use super::cpu;
use super::error::{self, Error};
use super::http::{Got, Http};
use super::trust::{LogKeys, Policy, Trust};
use super::verify::{self, Expected};
use crate::index::meta::{self, Meta};
use crate::index::{package_path, IndexLine};
use crate::layout::Layout;

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
    pub log: Option<LogKeys>,
}

/// `api/v1/deprecations.json`: each deprecated package's message and
/// replacement, by lowercase name.
pub type Deprecations = std::collections::HashMap<String, Meta>;

#[derive(Clone)]
pub struct Remote {
    pub url: String,
    pub http: Http,
    pub token: Option<String>,
    pub cache: Arc<Cache>,
    /// What the log checks demand.
    pub log: Policy,
}

impl Remote {
    pub fn new(url: &str, token: Option<String>) -> Result<Remote> {
        let url = normalize_url(url);
        Ok(Remote {
            cache: Arc::new(Cache::open(&url)?),
            http: Http::new()?.with_token(token.clone()),
            token,
            url,
            log: Policy::default(),
        })
    }

    /// Reads `config.json` and checks its key and name against the pin,
    /// pinning them at first contact. `retrust` replaces a pin that differs.
    pub async fn connect(&self, retrust: bool) -> Result<RegistryConfig> {
        let config = self.config().await?;
        pin(&self.url, &config, retrust)?;
        Ok(config)
    }

    pub async fn config(&self) -> error::Result<RegistryConfig> {
        let url = self.url_of(&Layout::public().index_file("config.json"));
        let bytes = self.http.required(&url).await.map_err(|e| match e {
            Error::NotFound { url, .. } => Error::NotARegistry { url, registry: self.url.clone() },
            e => e,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::invalid(&url, "parsing", e))
    }

    /// The URL of a static-root key.
    pub fn url_of(&self, key: &str) -> String {
        format!("{}{}", self.url, crate::layout::url(key))
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

    /// A file of the static root by its layout key, revalidated with
    /// If-None-Match against the cached copy (offered only if `parse` takes
    /// it), and parsed; `None` when the registry has no such file. The
    /// parsing, and the caching of a new body that parses, run on rayon's
    /// pool (`cpu`): a resolution reads some 300 files at once.
    async fn revalidated<T: Send + 'static>(
        &self,
        key: &str,
        parse: fn(&[u8]) -> serde_json::Result<T>,
        what: &'static str,
    ) -> error::Result<Option<T>> {
        let url = self.url_of(key);
        let held = self.cache.entry_get(key);
        let had_copy = held.is_some();
        let cached = held.filter(|(_, body)| parse(body).is_ok());
        let (body, store) = match self.http.get(&url, cached.as_ref().map(|(etag, _)| etag.as_str())).await {
            Ok(Got::NotModified) => match cached {
                Some((_, body)) => (body, None),
                None => return Err(Error::invalid(&url, "fetching", "304 without a cached copy")),
            },
            Err(e) if e.is_not_found() => {
                if had_copy {
                    self.cache.entry_remove(key);
                }
                return Ok(None);
            }
            Err(e) => return Err(e),
            Ok(Got::Body { bytes, etag }) => (bytes, etag),
        };
        let (cache, key) = (self.cache.clone(), key.to_string());
        let parsed = cpu::run(move || {
            let parsed = parse(&body)?;
            if let Some(etag) = store {
                cache.entry_put(&key, &etag, &body);
            }
            Ok(parsed)
        });
        parsed.await.map(Some).map_err(|e: serde_json::Error| Error::invalid(&url, what, e))
    }

    /// One package's index lines; `None` when there is no such package.
    pub async fn index_file(&self, name: &str) -> error::Result<Option<Vec<IndexLine>>> {
        let key = Layout::public().package_index(name);
        self.revalidated(&key, IndexLine::parse_file, "parsing the index file").await
    }

    /// The raw line (no newline) of `name` `version` in the index file last
    /// fetched: what the log binds for a line cached from an upstream.
    pub fn cached_line(&self, name: &str, version: &str) -> Option<Vec<u8>> {
        let (_, body) = self.cache.entry_get(&Layout::public().package_index(name))?;
        crate::log::history::line_of(&body, version).map(<[u8]>::to_vec)
    }

    /// A package's `index/meta/` file (SPEC section 5); `None` when the
    /// registry has none for it, as for every package not deprecated.
    pub async fn meta(&self, name: &str) -> error::Result<Option<Meta>> {
        let key = Layout::public().index_file(&meta::path(name));
        self.revalidated(&key, Meta::parse, "parsing").await
    }

    /// What the cached copy of a package's `index/meta/` file says, without
    /// a request (`None`: none cached, as for a package not deprecated).
    pub fn cached_meta(&self, name: &str) -> Option<Meta> {
        let key = Layout::public().index_file(&meta::path(name));
        self.cache.entry_get(&key).and_then(|(_, body)| Meta::parse(&body).ok())
    }

    /// Every deprecated package by lowercase name (`api/v1/deprecations.json`,
    /// SPEC section 6); `None` when the registry does not publish the list.
    pub async fn deprecations(&self) -> error::Result<Option<Deprecations>> {
        self.revalidated(&Layout::public().deprecations(), |b| serde_json::from_slice(b), "parsing").await
    }

    /// The list of deprecated packages as last fetched, without a request.
    pub fn cached_deprecations(&self) -> Option<Deprecations> {
        let (_, body) = self.cache.entry_get(&Layout::public().deprecations())?;
        serde_json::from_slice(&body).ok()
    }

    /// A blob's download URL from config.json's `dl` template (cargo's markers).
    pub fn blob_url(config: Option<&RegistryConfig>, base: &str, line: &Expected) -> String {
        let Some(c) = config else {
            return format!("{base}{}", crate::layout::url(&Layout::public().blob(&line.sha256)));
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

    /// The signature of a blob: beside the blob when `dl` names it by
    /// digest (a CDN), else in the registry's static root.
    fn signature_url(&self, config: Option<&RegistryConfig>, want: &Expected) -> String {
        let url = Remote::blob_url(config, &self.url, want);
        if url.ends_with(&want.sha256) {
            format!("{url}.minisig")
        } else {
            self.url_of(&Layout::public().signature(&want.sha256))
        }
    }

    /// The registry's signature of a blob, as text.
    pub async fn signature(&self, config: Option<&RegistryConfig>, want: &Expected) -> error::Result<String> {
        let url = self.signature_url(config, want);
        String::from_utf8(self.http.required(&url).await?)
            .map_err(|_| Error::invalid(&url, "reading", "not a minisign signature (not UTF-8)"))
    }

    /// Downloads a blob and its signature and verifies them (SPEC section
    /// 4): the only way a blob comes from the network.
    pub async fn download(
        &self,
        config: Option<&RegistryConfig>,
        trust: &Trust,
        want: &Expected,
    ) -> error::Result<(Vec<u8>, String)> {
        let (url, bytes, sig) = self.fetch(config, want).await?;
        let (trust, want) = (trust.clone(), want.clone());
        cpu::run(move || verified(url, bytes, sig, &trust, &want)).await
    }

    /// A blob and its signature as served, not yet verified, with the blob's URL.
    async fn fetch(
        &self,
        config: Option<&RegistryConfig>,
        want: &Expected,
    ) -> error::Result<(String, Vec<u8>, String)> {
        let url = Remote::blob_url(config, &self.url, want);
        let (bytes, sig) = tokio::try_join!(self.http.required(&url), self.signature(config, want))?;
        Ok((url, bytes, sig))
    }

    /// [`Remote::download`] of a blob the registry holds: `None` when it
    /// would have to fetch it from an upstream first (a mirror copies what
    /// its source caches, not the upstream).
    pub async fn download_if_cached(
        &self,
        config: Option<&RegistryConfig>,
        trust: &Trust,
        want: &Expected,
    ) -> error::Result<Option<(Vec<u8>, String)>> {
        let url = Remote::blob_url(config, &self.url, want);
        let Some(bytes) = self.http.if_cached(&url).await? else { return Ok(None) };
        let sig = self.signature(config, want).await?;
        let (trust, want) = (trust.clone(), want.clone());
        cpu::run(move || verified(url, bytes, sig, &trust, &want)).await.map(Some)
    }

    /// The bytes of a package, verified, given to `then`: from the local
    /// cache if it holds them, else downloaded, then verified, cached and
    /// given to `then` in one job on rayon's pool. Returns what `then`
    /// returned and how many bytes were downloaded.
    pub async fn blob<T: Send + 'static>(
        &self,
        config: Option<&RegistryConfig>,
        trust: &Trust,
        want: &Expected,
        then: impl FnOnce(Vec<u8>) -> Result<T> + Send + 'static,
    ) -> Result<(T, u64)> {
        if let Some(bytes) = self.cached_blob(trust, want) {
            return Ok((then(bytes)?, 0));
        }
        let (url, bytes, sig) = self.fetch(config, want).await?;
        let n = bytes.len() as u64;
        let (cache, trust, want) = (self.cache.clone(), trust.clone(), want.clone());
        let done = cpu::run(move || {
            let (bytes, sig) = verified(url, bytes, sig, &trust, &want)?;
            cache.blob_put(&want.sha256, &bytes, &sig)?;
            then(bytes)
        });
        Ok((done.await?, n))
    }

    /// The bytes of a package from the local cache, if it holds them and
    /// they verify.
    pub fn cached_blob(&self, trust: &Trust, want: &Expected) -> Option<Vec<u8>> {
        let (bytes, sig) = self.cache.blob_get(&want.sha256)?;
        verify::verify(&bytes, &sig, trust, want).is_ok().then_some(bytes)
    }

    /// A file of the static root by its layout key; `None` when it is not there.
    pub async fn static_file(&self, key: &str) -> error::Result<Option<Vec<u8>>> {
        self.http.bytes(&self.url_of(key)).await
    }

    /// A JSON document of the static root by its layout key (`None` when absent).
    pub async fn static_json(&self, key: &str) -> error::Result<Option<serde_json::Value>> {
        let Some(bytes) = self.static_file(key).await? else { return Ok(None) };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::invalid(&self.url_of(key), "parsing", e))
    }

    /// `static_file` for synchronous readers (the log's tiles, the search
    /// shards), which run on a blocking thread of this runtime.
    pub fn static_file_blocking(
        &self,
        handle: &tokio::runtime::Handle,
        key: &str,
    ) -> error::Result<Option<Vec<u8>>> {
        handle.block_on(self.static_file(key))
    }

    pub fn cache_root(&self) -> PathBuf {
        self.cache.root.clone()
    }
}

/// Checks `config`'s key and name against the pin for `url`, pinning them at
/// first contact; `retrust` replaces a differing pin.
/// A downloaded blob and its signature, once they verify (SPEC section 4).
fn verified(
    url: String,
    bytes: Vec<u8>,
    sig: String,
    trust: &Trust,
    want: &Expected,
) -> error::Result<(Vec<u8>, String)> {
    verify::verify(&bytes, &sig, trust, want).map_err(|error| Error::Integrity {
        url,
        name: want.name.clone(),
        version: want.version.clone(),
        error: Box::new(error),
    })?;
    Ok((bytes, sig))
}

pub fn pin(url: &str, config: &RegistryConfig, retrust: bool) -> Result<()> {
    let url = normalize_url(url);
    let key_url = format!("{url}{}", crate::layout::url(&Layout::public().minisign_pub()));
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
                 key with the registry's operator (it is served at {key_url}); if they confirm \
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A server on 127.0.0.1 answering every request with `body` and an ETag.
    fn serve(body: &'static str) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let _ = conn.read(&mut [0u8; 4096]);
                let head = format!(
                    "HTTP/1.1 200 OK\r\netag: \"e1\"\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all((head + body).as_bytes());
            }
        });
        url
    }

    #[tokio::test]
    async fn an_index_file_is_cached_only_if_it_parses() {
        let line = r#"{"name":"abc","vers":"1.0.0","deps":[],"cksum":"00","features":{},"yanked":false}"#;
        let root = tempfile::tempdir().unwrap();
        for (body, parses) in [("{not json\n", false), (line, true)] {
            let url = serve(body);
            let remote = Remote {
                cache: Arc::new(Cache::at(root.path(), &url)),
                http: Http::new().unwrap(),
                token: None,
                url,
                log: Policy::default(),
            };
            let got = remote.index_file("abc").await;
            assert_eq!(got.is_ok(), parses, "{got:?}");
            let cached = remote.cache.entry_get(&Layout::public().package_index("abc"));
            assert_eq!(cached.is_some(), parses);
        }
    }
}
