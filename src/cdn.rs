//! The CDN purge (`[cdn]`, SPEC section 13): the URLs a write group
//! changed are purged from the cache in front before the group's replies,
//! so a client that got its 201 reads the new files through the cache.
//! One attempt, bounded by [`WAIT`]: a CDN that is down must not hold
//! publishes up. What fails is the writer's to keep and retry
//! (`effect::Effect::Purge`, shown in health); it never fails a write.
//!
//! The requests are made on a thread of the purger's own (a blocking HTTP
//! client cannot run on an async runtime's thread, where the writer's
//! first retries may run); the caller waits for its answer.

use anyhow::{anyhow, bail, Context, Result};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::config::{Cdn, CdnKind};

/// How long a purge may take, all of its requests together.
pub const WAIT: Duration = Duration::from_secs(2);
/// URLs in one Cloudflare purge request (the API's limit on every plan).
const CLOUDFLARE_BATCH: usize = 30;

/// Where and how purges go.
enum Target {
    /// `POST {"paths":[…]}` to this URL.
    Post(String),
    /// `PURGE` of each path below this base URL.
    Purge(String),
    /// `POST {"files":[…]}` of full URLs (the public URL and the path).
    Cloudflare { url: String, token: String, public_url: String },
}

type Ask = (Vec<String>, mpsc::Sender<Result<(), String>>);

pub struct Purger {
    tx: mpsc::Sender<Ask>,
}

impl Purger {
    /// The purger `[cdn]` describes, if it names a `purge_url`; an error
    /// when Cloudflare's token is not in the environment.
    pub fn start(cdn: &Cdn, public_url: &str) -> Result<Option<Purger>> {
        let Some(url) = cdn.purge_url.clone() else { return Ok(None) };
        let target = match cdn.kind {
            CdnKind::Post => Target::Post(url),
            CdnKind::Purge => Target::Purge(url.trim_end_matches('/').to_string()),
            CdnKind::Cloudflare => {
                let var = cdn.token_env.as_deref().context("[cdn] kind = \"cloudflare\" needs token_env")?;
                let token = std::env::var(var)
                    .ok()
                    .filter(|t| !t.is_empty())
                    .with_context(|| format!("[cdn] token_env names {var}, which is not set"))?;
                Target::Cloudflare { url, token, public_url: public_url.trim_end_matches('/').to_string() }
            }
        };
        let (tx, rx) = mpsc::channel::<Ask>();
        std::thread::Builder::new().name("cairn-purge".into()).spawn(move || {
            let http = reqwest::blocking::Client::builder().timeout(WAIT).connect_timeout(WAIT).build();
            while let Ok((paths, answer)) = rx.recv() {
                let done = match &http {
                    Ok(http) => target.purge(http, &paths).map_err(|e| format!("{e:#}")),
                    Err(e) => Err(format!("building the HTTP client: {e}")),
                };
                let _ = answer.send(done);
            }
        })?;
        Ok(Some(Purger { tx }))
    }

    /// Purges these URL paths: one attempt, answered within [`WAIT`] (and a
    /// little). The error says what the CDN answered.
    pub fn purge(&self, paths: &[String]) -> Result<(), String> {
        if paths.is_empty() {
            return Ok(());
        }
        let (answer, rx) = mpsc::channel();
        self.tx.send((paths.to_vec(), answer)).map_err(|_| "the purge thread stopped".to_string())?;
        match rx.recv_timeout(WAIT + Duration::from_millis(500)) {
            Ok(done) => done,
            Err(_) => Err(format!("no answer within {} s", WAIT.as_secs())),
        }
    }
}

impl Target {
    fn purge(&self, http: &reqwest::blocking::Client, paths: &[String]) -> Result<()> {
        match self {
            Target::Post(url) => {
                accepted(http.post(url).json(&serde_json::json!({ "paths": paths })).send()?)
            }
            Target::Purge(base) => {
                let started = Instant::now();
                let method = reqwest::Method::from_bytes(b"PURGE").expect("a method name");
                for (done, path) in paths.iter().enumerate() {
                    let left = WAIT.checked_sub(started.elapsed()).filter(|d| !d.is_zero());
                    let left =
                        left.ok_or_else(|| anyhow!("{done} of {} purged within the wait", paths.len()))?;
                    let r = http.request(method.clone(), format!("{base}{path}")).timeout(left).send();
                    let r = r.with_context(|| format!("PURGE {path}"))?;
                    // nginx's cache purge answers 404 for a URL it does not hold.
                    if r.status() != reqwest::StatusCode::NOT_FOUND {
                        accepted(r).with_context(|| format!("PURGE {path}"))?;
                    }
                }
                Ok(())
            }
            Target::Cloudflare { url, token, public_url } => {
                for chunk in paths.chunks(CLOUDFLARE_BATCH) {
                    let files: Vec<String> = chunk.iter().map(|p| format!("{public_url}{p}")).collect();
                    let r = http
                        .post(url)
                        .bearer_auth(token)
                        .json(&serde_json::json!({ "files": files }))
                        .send()?;
                    let status = r.status();
                    let body: serde_json::Value = r.json().unwrap_or_default();
                    if !status.is_success() || body["success"] == serde_json::Value::Bool(false) {
                        bail!("Cloudflare answered {status}: {}", body["errors"]);
                    }
                }
                Ok(())
            }
        }
    }
}

fn accepted(r: reqwest::blocking::Response) -> Result<()> {
    match r.status().is_success() {
        true => Ok(()),
        false => bail!("the CDN answered {}", r.status()),
    }
}
