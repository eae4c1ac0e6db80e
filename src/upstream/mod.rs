//! Upstream registries (SPEC section 16): what cairn asks of a cargo sparse
//! registry it serves packages from, and the rules it applies to what comes
//! back. The server's misses (`server/upstream.rs`) decide when to ask and
//! commit what is kept through the one writer; this module only talks to
//! the upstreams: an index file with its validators, the `dl` template of
//! its `config.json`, a blob checked against its line's checksum. One
//! request per key at a time (single flight), and a name an upstream does
//! not know is remembered for `refresh`.

mod cairn;
pub mod import;
mod lines;

pub use lines::{ahead, offered, parse, UpstreamLine};

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Upstream;
use crate::index::package_path;
use crate::registry::Registry;

/// How long one request to an upstream may take.
const TIMEOUT: Duration = Duration::from_secs(20);

/// The configured upstreams, with what is remembered of them.
pub struct Upstreams {
    sources: Vec<Source>,
    http: reqwest::Client,
    /// Where cairn upstreams' keys are pinned.
    pins: PathBuf,
    /// One flight per key (an index file, a blob): later callers wait for it.
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Names an upstream answered 404 for, until when.
    absent: Mutex<HashMap<String, Instant>>,
    /// Blobs refused for not matching their line, for health.
    mismatches: Mutex<Vec<Mismatch>>,
}

pub struct Source {
    pub config: Upstream,
    min_age: i64,
    /// What its `config.json` says, read at first need.
    meta: tokio::sync::OnceCell<Meta>,
}

/// An upstream's `config.json`, as cairn uses it.
struct Meta {
    dl: String,
    /// A cairn registry's pinned identity (`None`: a plain sparse registry).
    cairn: Option<cairn::Cairn>,
}

/// What an upstream said of an index file.
pub enum Answer {
    File {
        bytes: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
    NotModified,
    /// 404 or 410: the upstream has no such package.
    Absent,
}

/// Why an upstream gave nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Unreachable, 5xx, a timeout, or an answer that is no index file.
    #[error("upstream {upstream} is unavailable: {why}")]
    Unavailable { upstream: String, why: String },
    /// A cairn upstream whose keys, log or signature do not verify.
    #[error("upstream {upstream} does not verify: {why}")]
    Unverified { upstream: String, why: String },
    /// Bytes that are not what the line names.
    #[error(
        "upstream {upstream} served {name} {version} with SHA-256 {got}, but its index line says {want}"
    )]
    Mismatch { upstream: String, name: String, version: String, want: String, got: String },
}

/// A refused blob, as health shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mismatch {
    pub upstream: String,
    pub name: String,
    pub version: String,
    pub want: String,
    pub got: String,
    pub at: String,
}

/// The most refusals health keeps.
const MISMATCHES_KEPT: usize = 20;

impl Upstreams {
    /// `None` when none is configured.
    /// `pins`: where cairn upstreams' keys are pinned (the data directory's `upstreams/`).
    pub fn new(list: &[Upstream], pins: PathBuf) -> Result<Option<Arc<Upstreams>>> {
        if list.is_empty() {
            return Ok(None);
        }
        let sources = list
            .iter()
            .map(|c| {
                Ok(Source {
                    config: c.clone(),
                    min_age: c.min_age_seconds()? as i64,
                    meta: Default::default(),
                })
            })
            .collect::<Result<_>>()?;
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Some(Arc::new(Upstreams {
            sources,
            http,
            pins,
            flights: Mutex::default(),
            absent: Mutex::default(),
            mismatches: Mutex::default(),
        })))
    }

    /// The first upstream of the registry (`org`: a private
    /// organisation's, else the public one) whose rules let it serve `name`.
    pub fn for_name(&self, name: &str, org: Option<&str>) -> Option<&Source> {
        self.sources.iter().find(|s| s.config.serves(org) && s.config.allows(name))
    }

    /// Whether any upstream serves that registry.
    pub fn serves(&self, org: Option<&str>) -> bool {
        self.sources.iter().any(|s| s.config.serves(org))
    }

    /// The upstream called `name`, if it is still configured.
    pub fn named(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.config.name == name)
    }

    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// Runs `f` as the only flight for `key`: a caller that finds one under
    /// way waits for it, then runs its own (which finds its work done).
    pub async fn single<T>(&self, key: &str, f: impl std::future::Future<Output = T>) -> T {
        let lock = self.flights.lock().unwrap().entry(key.to_string()).or_default().clone();
        let out = {
            let _held = lock.lock().await;
            f.await
        };
        let mut flights = self.flights.lock().unwrap();
        // The last one out removes the entry (the map holds one reference).
        if Arc::strong_count(&lock) == 2 {
            flights.remove(key);
        }
        out
    }

    /// Whether an upstream said lately it has no `name`.
    pub fn known_absent(&self, name: &str) -> bool {
        let key = crate::name::canonical(name);
        let mut absent = self.absent.lock().unwrap();
        match absent.get(&key) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                absent.remove(&key);
                false
            }
            None => false,
        }
    }

    fn remember_absent(&self, src: &Source, name: &str) {
        let until = Instant::now() + Duration::from_secs(src.config.refresh);
        self.absent.lock().unwrap().insert(crate::name::canonical(name), until);
    }

    /// The upstream's index file for `name`, conditional on the validators
    /// of the copy cached (if any).
    pub async fn index_file(
        &self,
        src: &Source,
        name: &str,
        etag: Option<&str>,
        last_modified: Option<&str>,
    ) -> Result<Answer, Failure> {
        let answer = self.ask_index_file(src, name, etag, last_modified).await;
        let result = match &answer {
            Ok(Answer::File { .. }) => "ok",
            Ok(Answer::NotModified) => "not-modified",
            Ok(Answer::Absent) => "not-found",
            Err(_) => "error",
        };
        crate::metrics::get().upstream_fetch(&src.config.name, result);
        answer
    }

    async fn ask_index_file(
        &self,
        src: &Source,
        name: &str,
        etag: Option<&str>,
        last_modified: Option<&str>,
    ) -> Result<Answer, Failure> {
        let url = format!("{}{}", src.config.index_url(), package_path(name));
        let mut req = self.http.get(&url);
        if let Some(etag) = etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if let Some(lm) = last_modified {
            req = req.header(reqwest::header::IF_MODIFIED_SINCE, lm);
        }
        let unavailable = |why: String| Failure::Unavailable { upstream: src.config.name.clone(), why };
        let resp = req.send().await.map_err(|e| unavailable(format!("{url}: {e}")))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Answer::NotModified);
        }
        // crates.io answers 403 (from its bucket) for a name it never had.
        if matches!(status.as_u16(), 404 | 410 | 403 | 451) {
            self.remember_absent(src, name);
            return Ok(Answer::Absent);
        }
        if !status.is_success() {
            return Err(unavailable(format!("{url}: {status}")));
        }
        let header = |h| resp.headers().get(h).and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok());
        let etag = header(reqwest::header::ETAG).map(String::from);
        let last_modified = header(reqwest::header::LAST_MODIFIED).map(String::from);
        let bytes = resp.bytes().await.map_err(|e| unavailable(format!("{url}: {e}")))?.to_vec();
        Ok(Answer::File { bytes, etag, last_modified })
    }

    /// Whether the first upstream that may serve `name` knows it (one
    /// request): a local name it offers is refused (SPEC section 16).
    pub async fn offers(&self, name: &str, org: Option<&str>) -> Result<Option<String>, Failure> {
        let Some(src) = self.for_name(name, org) else { return Ok(None) };
        match self.index_file(src, name, None, None).await? {
            Answer::Absent => Ok(None),
            _ => Ok(Some(src.config.name.clone())),
        }
    }

    /// The `.crate` of `line` from its upstream's `dl`, checked against the
    /// line's SHA-256; a mismatch is kept for health and stored nowhere.
    pub async fn blob(&self, src: &Source, line: &UpstreamLine) -> Result<Vec<u8>, Failure> {
        let blob = self.ask_blob(src, line).await;
        crate::metrics::get().upstream_fetch(&src.config.name, if blob.is_ok() { "ok" } else { "error" });
        blob
    }

    async fn ask_blob(&self, src: &Source, line: &UpstreamLine) -> Result<Vec<u8>, Failure> {
        let unavailable = |why: String| Failure::Unavailable { upstream: src.config.name.clone(), why };
        let meta = self.meta(src).await?;
        let url = download_url(&meta.dl, &line.name, &line.vers, &line.cksum);
        let resp = self.http.get(&url).send().await.map_err(|e| unavailable(format!("{url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(unavailable(format!("{url}: {}", resp.status())));
        }
        let bytes = resp.bytes().await.map_err(|e| unavailable(format!("{url}: {e}")))?.to_vec();
        let got = crate::store::digests(&bytes).0;
        if !got.eq_ignore_ascii_case(&line.cksum) {
            let m = Mismatch {
                upstream: src.config.name.clone(),
                name: line.name.clone(),
                version: line.vers.clone(),
                want: line.cksum.clone(),
                got,
                at: crate::db::now(),
            };
            tracing::error!(upstream = %m.upstream, name = %m.name, version = %m.version, "an upstream's bytes do not match their index line: refused");
            let mut kept = self.mismatches.lock().unwrap();
            kept.push(m.clone());
            let over = kept.len().saturating_sub(MISMATCHES_KEPT);
            kept.drain(..over);
            let Mismatch { upstream, name, version, want, got, .. } = m;
            return Err(Failure::Mismatch { upstream, name, version, want, got });
        }
        // A cairn upstream's blob is also checked against its signature.
        if let Some(c) = &meta.cairn {
            let sig_url = format!("{url}.minisig");
            let get = async { self.http.get(&sig_url).send().await?.error_for_status()?.text().await };
            let sig = get.await.map_err(|e| unavailable(format!("{sig_url}: {e}")))?;
            c.check_blob(&bytes, &sig, &line.name, &line.vers, &line.cksum)
                .map_err(|why| Failure::Unverified { upstream: src.config.name.clone(), why })?;
        }
        Ok(bytes)
    }

    /// The refusals kept for health, newest last.
    pub fn mismatches(&self) -> Vec<Mismatch> {
        self.mismatches.lock().unwrap().clone()
    }

    async fn meta<'s>(&self, src: &'s Source) -> Result<&'s Meta, Failure> {
        let unverified = |why: String| Failure::Unverified { upstream: src.config.name.clone(), why };
        let unavailable = |why: String| Failure::Unavailable { upstream: src.config.name.clone(), why };
        src.meta
            .get_or_try_init(|| async {
                let url = format!("{}config.json", src.config.index_url());
                let get = async {
                    let resp = self.http.get(&url).send().await?.error_for_status()?;
                    resp.json::<serde_json::Value>().await
                };
                let config = get.await.map_err(|e| unavailable(format!("{url}: {e}")))?;
                let dl = config["dl"].as_str().ok_or_else(|| unavailable(format!("{url} has no `dl`")))?;
                let index = src.config.index_url();
                let cairn =
                    cairn::from_config(&config, &self.pins, &src.config.name, &index).map_err(unverified)?;
                Ok(Meta { dl: dl.to_string(), cairn })
            })
            .await
    }

    /// Checks the raw lines a cairn upstream serves against its log
    /// (nothing to check for a plain sparse registry).
    pub async fn check_lines(&self, src: &Source, raw: &[&[u8]]) -> Result<(), Failure> {
        let Some(c) = self.meta(src).await?.cairn.clone() else { return Ok(()) };
        let raw: Vec<Vec<u8>> = raw.iter().map(|r| r.to_vec()).collect();
        let (http, handle) = (self.http.clone(), tokio::runtime::Handle::current());
        let checked = tokio::task::spawn_blocking(move || {
            let raw: Vec<&[u8]> = raw.iter().map(Vec::as_slice).collect();
            c.check_lines(&http, handle, &raw)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        checked.map_err(|why| Failure::Unverified { upstream: src.config.name.clone(), why })
    }
}

impl Source {
    /// Seconds a version must have been public before it is offered.
    pub fn min_age(&self) -> i64 {
        self.min_age
    }
}

/// Signs a cached version's bytes (their SHA-256 checked already) with the
/// trusted comment naming its upstream and stores them content-addressed,
/// as a local publish's; not synced (the caller's batch ends with a sync).
pub fn keep(reg: &Registry, upstream: &str, name: &str, version: &str, bytes: &[u8]) -> Result<()> {
    let (sha256, sig) = sign(reg, upstream, name, version, bytes)?;
    Ok(reg.store.put(&sha256, bytes, &sig)?)
}

/// [`keep`] for one version outside a batch: its blob and signature are
/// durable when it returns (two fsyncs, not a flush of the filesystem).
pub fn keep_now(reg: &Registry, upstream: &str, name: &str, version: &str, bytes: &[u8]) -> Result<()> {
    let (sha256, sig) = sign(reg, upstream, name, version, bytes)?;
    Ok(reg.store.put_durable(&sha256, bytes, &sig)?)
}

/// The SHA-256 of a cached version's bytes and their signature.
fn sign(reg: &Registry, upstream: &str, name: &str, version: &str, bytes: &[u8]) -> Result<(String, String)> {
    let key = reg.key.as_ref().context("this registry has no signing key")?;
    let (sha256, blake3) = crate::store::digests(bytes);
    let att = crate::sign::Attestation {
        registry: reg.config.name.clone(),
        name: name.to_string(),
        version: version.to_string(),
        sha256: sha256.clone(),
        blake3,
        upstream: Some(upstream.to_string()),
    };
    let sig = key.sign(bytes, &att)?;
    Ok((sha256, sig))
}

/// A download URL from a `dl` template, as cargo makes it: the markers
/// replaced, or `/{crate}/{version}/download` appended when there are none.
pub fn download_url(dl: &str, name: &str, version: &str, cksum: &str) -> String {
    const MARKERS: [&str; 5] = ["{crate}", "{version}", "{prefix}", "{lowerprefix}", "{sha256-checksum}"];
    if !MARKERS.iter().any(|m| dl.contains(m)) {
        return format!("{}/{name}/{version}/download", dl.trim_end_matches('/'));
    }
    let prefix = crate::index::package_path(name);
    let prefix = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
    dl.replace("{crate}", name)
        .replace("{version}", version)
        .replace("{prefix}", prefix)
        .replace("{lowerprefix}", &prefix.to_lowercase())
        .replace("{sha256-checksum}", cksum)
}

#[cfg(test)]
mod tests {
    use super::download_url;

    #[test]
    fn download_urls_follow_cargos_markers() {
        let (sum, v) = ("ab".repeat(32), "1.0.0");
        assert_eq!(
            download_url("http://x/api/v1/crates", "serde", v, &sum),
            "http://x/api/v1/crates/serde/1.0.0/download"
        );
        assert_eq!(
            download_url("http://x/c/{crate}/{version}/download", "hex", v, &sum),
            "http://x/c/hex/1.0.0/download"
        );
        assert_eq!(download_url("http://x/{prefix}/{crate}", "serde", v, &sum), "http://x/se/rd/serde");
        assert_eq!(
            download_url("http://x/blobs/sha256/{sha256-checksum}", "a", v, &sum),
            format!("http://x/blobs/sha256/{sum}")
        );
    }
}
