//! The one way the client reads from a registry over HTTP, with cargo's
//! network behaviour: a connection error, a timeout, a 5xx or a 429 is
//! retried with exponential backoff (a `Retry-After` on those answers is
//! honoured, capped), at most `CAIRN_NET_RETRY` times (default 3, cargo's
//! `net.retry`); 404, 410 and 451 mean "no such file" and are never retried.
//! A registry that answers 401 (a private organisation's, RFC 3139's
//! `auth-required`) gets the token from then on, as cargo does; a public
//! registry never sees it on a read. Every failure is a typed
//! [`Error`](super::error::Error) that names the URL.

use anyhow::Context;
use reqwest::StatusCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::error::{Error, Result};

/// Retries after the first attempt, as cargo's `net.retry` defaults to.
pub const DEFAULT_RETRIES: u32 = 3;
/// The first backoff; each retry doubles it (0.25 s, 0.5 s, 1 s, …).
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// No single wait, backoff or `Retry-After`, is longer than this.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// What a GET found.
pub enum Got {
    /// 2xx: the body and its ETag.
    Body { bytes: Vec<u8>, etag: Option<String> },
    /// 304 to an `If-None-Match`.
    NotModified,
}

#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    retries: u32,
    /// The registry's token, for a registry that asks for one.
    auth: Option<Arc<Auth>>,
}

struct Auth {
    token: String,
    /// Set at the first 401: every later read carries the token.
    send: AtomicBool,
}

impl Http {
    pub fn new() -> anyhow::Result<Http> {
        let retries = match std::env::var("CAIRN_NET_RETRY") {
            Ok(v) if !v.is_empty() => v
                .parse()
                .with_context(|| format!("CAIRN_NET_RETRY must be a whole number of retries, not `{v}`"))?,
            _ => DEFAULT_RETRIES,
        };
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(super::tls::config()?)
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()?;
        Ok(Http { client, retries, auth: None })
    }

    /// The same client with a token to send where a read needs one.
    pub fn with_token(self, token: Option<String>) -> Http {
        let auth = token.map(|token| Arc::new(Auth { token, send: AtomicBool::new(false) }));
        Http { auth, ..self }
    }

    /// The underlying client, for the write API (never retried: a write is not idempotent).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// GETs `url` (conditionally, given a cached ETag), retrying what may
    /// pass; no such file is `Error::NotFound`.
    pub async fn get(&self, url: &str, etag: Option<&str>) -> Result<Got> {
        let mut attempt = 0;
        loop {
            let (last, retry_after) = match self.try_get(url, etag).await? {
                Attempt::Done(got) => return Ok(got),
                Attempt::Retry { last, retry_after } => (last, retry_after),
            };
            if attempt >= self.retries {
                let (url, attempts, retries) = (url.to_string(), attempt + 1, self.retries);
                return Err(match last {
                    Failure::Connection(cause) => Error::Offline { url, cause, attempts, retries },
                    Failure::Status(status) => Error::Unavailable { url, status, attempts, retries },
                });
            }
            let backoff = FIRST_BACKOFF * 2u32.saturating_pow(attempt);
            let jitter = Duration::from_millis(rand::random::<u64>() % 100);
            let wait = retry_after.unwrap_or(backoff + jitter).min(MAX_WAIT);
            tracing::debug!(url, last = ?last, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// The body of `url`, `None` when there is no such file.
    pub async fn bytes(&self, url: &str) -> Result<Option<Vec<u8>>> {
        match self.required(url).await {
            Err(e) if e.is_not_found() => Ok(None),
            r => r.map(Some),
        }
    }

    /// The body of `url` if the registry holds it (`Cache-Control:
    /// only-if-cached`: a registry in front of an upstream answers 504
    /// rather than fetch it); retried as [`Http::get`] but for that 504.
    pub async fn if_cached(&self, url: &str) -> Result<Option<Vec<u8>>> {
        let resp = self
            .client
            .get(url)
            .header(reqwest::header::CACHE_CONTROL, "only-if-cached")
            .send()
            .await
            .map_err(|e| Error::Request { url: url.to_string(), cause: chain(&e) })?;
        match resp.status() {
            reqwest::StatusCode::GATEWAY_TIMEOUT => Ok(None),
            s if s.is_success() => {
                let body = resp
                    .bytes()
                    .await
                    .map_err(|e| Error::Request { url: url.to_string(), cause: chain(&e) })?;
                Ok(Some(body.to_vec()))
            }
            _ => self.required(url).await.map(Some),
        }
    }

    /// The body of `url`, which must exist.
    pub async fn required(&self, url: &str) -> Result<Vec<u8>> {
        match self.get(url, None).await? {
            Got::Body { bytes, .. } => Ok(bytes),
            Got::NotModified => {
                Err(Error::invalid(url, "fetching", "304 to a request that was not conditional"))
            }
        }
    }

    async fn try_get(&self, url: &str, etag: Option<&str>) -> Result<Attempt> {
        let mut req = self.client.get(url);
        if let Some(e) = etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, e);
        }
        let auth = self.auth.as_ref();
        let with_token = auth.filter(|a| a.send.load(Ordering::Relaxed));
        if let Some(a) = with_token {
            req = req.bearer_auth(&a.token);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_builder() || e.is_redirect() => {
                return Err(Error::Request { url: url.to_string(), cause: chain(&e) })
            }
            Err(e) => return Ok(Attempt::connection(&e)),
        };
        let status = resp.status();
        match status.as_u16() {
            200..=299 => {
                let etag = resp
                    .headers()
                    .get(reqwest::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                match resp.bytes().await {
                    Ok(b) => Ok(Attempt::Done(Got::Body { bytes: b.to_vec(), etag })),
                    // A body cut short is a connection error too.
                    Err(e) => Ok(Attempt::connection(&e)),
                }
            }
            304 => Ok(Attempt::Done(Got::NotModified)),
            // A read sent without the token (another read may have set the
            // flag since: they run concurrently) is sent again with it.
            401 => match auth {
                Some(a) if with_token.is_none() => {
                    a.send.store(true, Ordering::Relaxed);
                    Box::pin(self.try_get(url, etag)).await
                }
                Some(_) => Err(Error::TokenRefused { url: url.to_string() }),
                None => Err(Error::TokenNeeded { url: url.to_string() }),
            },
            404 | 410 | 451 => Err(Error::NotFound { url: url.to_string(), status }),
            429 | 500..=599 => {
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                Ok(Attempt::Retry { last: Failure::Status(status), retry_after })
            }
            _ => {
                let detail = resp.bytes().await.ok().and_then(|b| super::error::detail(&b));
                Err(Error::Status { url: url.to_string(), status, detail })
            }
        }
    }
}

enum Attempt {
    Done(Got),
    Retry { last: Failure, retry_after: Option<Duration> },
}

impl Attempt {
    fn connection(e: &reqwest::Error) -> Attempt {
        Attempt::Retry { last: Failure::Connection(chain(e)), retry_after: None }
    }
}

/// Why an attempt may be retried.
#[derive(Debug)]
enum Failure {
    Connection(String),
    Status(StatusCode),
}

/// An error with its causes, one line (reqwest's own text names only the outermost).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
