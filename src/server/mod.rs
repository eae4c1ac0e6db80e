//! The HTTP side of `cairn serve`: the static root for reads, and the
//! write API under `/api/v1/`. One accept loop on hyper 1 answers each
//! request: a static read (a GET or HEAD of a file) and the event stream
//! directly, everything else through the warp filters of `routes`, where
//! API requests are authenticated (a token, else the web session's cookie,
//! whose writes pass the CSRF rule of `auth`), rate limited and routed in
//! `api`, so every API answer (errors included) goes through one place that
//! adds the rate-limit headers and renders the error shape.

pub mod admin;
mod api;
mod audit;
mod auth;
pub mod body;
mod candidate;
mod cargo;
mod error;
mod events;
mod fetched;
pub mod files;
pub mod hot;
mod identity;
mod invitations;
mod npm;
mod observe;
mod org_access;
mod orgs;
mod owners;
mod private;
mod proposal_pages;
mod proposals;
mod proxy;
mod publish;
mod ratelimit;
mod routes;
mod search;
mod upstream;
mod url;
mod version_files;
pub mod witness;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use warp::filters::BoxedFilter;

use body::Body;
pub use error::ApiError;
use ratelimit::{Decision, Limits};

use crate::db::session::Session;
use crate::db::{self, Caller};
use crate::layout::Key;
use crate::publish::{Actor, By, Writer};
use crate::registry::Registry;

pub struct State {
    pub reg: Arc<Registry>,
    pub writer: Writer,
    files: files::Files,
    proxies: proxy::Proxies,
    limits: Limits,
    /// Connections for the handlers' queries, used on the blocking pool.
    pool: Arc<db::pool::Pool>,
    /// Tokens used since the last flush, with when: written in a batch
    /// every [`LAST_USED_FLUSH`], not one write per request.
    last_used: Mutex<HashMap<i64, String>>,
    /// Sessions' last use (unix seconds), flushed with the tokens'.
    session_seen: Mutex<HashMap<i64, i64>>,
    /// When this process started serving (health's `uptimeSec`).
    pub started: std::time::Instant,
    /// A mirror's witness of its source, if it keeps one.
    witness: Option<Arc<crate::log::witness::Witness>>,
    /// The private organisations' registries this server writes, by slug.
    orgs: private::Hosts,
    /// The registries this one serves packages from (SPEC section 16).
    upstreams: Option<Arc<crate::upstream::Upstreams>>,
    /// Which upstream names' index files were looked at lately.
    upstream_fresh: upstream::Fresh,
    /// Names whose index files to bring ahead of the resolver asking.
    upstream_ahead: upstream::Ahead,
    /// Blob misses' rows, written a batch at a time.
    fetched: fetched::Fetched,
    /// OpenID providers' and CI issuers' discovery and keys (SPEC section 17).
    issuers: crate::identity::Issuers,
}

/// How often the tokens' `lastUsedAt` reaches the database.
const LAST_USED_FLUSH: std::time::Duration = std::time::Duration::from_secs(15);

impl State {
    pub fn new(reg: Arc<Registry>) -> anyhow::Result<Arc<State>> {
        let writer = Writer::start(reg.clone())?;
        // A mirror has no writer's events to send.
        if !reg.config.read_only {
            crate::events::webhooks::start(&reg)?;
            crate::mail::notify::start(&reg)?;
            crate::mail::deliver::start(&reg)?;
        }
        let limits = Limits::new(&reg.config.rate_limit);
        let pool = Arc::new(db::pool::Pool::new(reg.database.clone()));
        let c = &reg.config;
        let cache =
            Arc::new(hot::HotCache::new(reg.root.clone(), c.hot_cache_bytes, c.hot_cache_max_file, c.edge()));
        // Every write of this process to the static root reaches the cache at once.
        let invalidate = cache.clone();
        reg.root.observe(Arc::new(move |key: &str| invalidate.invalidate(key)));
        let files = files::Files::new(reg.root.clone(), cache);
        // A mirror copies its source's cache; it fills nothing itself.
        let (reg_read_only, upstreams) = (c.read_only, c.upstreams.clone());
        let proxies = proxy::Proxies::parse(&c.trusted_proxies)?;
        let (last_used, session_seen) = (Mutex::default(), Mutex::default());
        let started = std::time::Instant::now();
        let witness = match reg.config.read_only {
            true => crate::log::witness::Witness::of_mirror(&reg.data, &reg.root)?.map(Arc::new),
            false => None,
        };
        let (ahead_tx, ahead_rx) = upstream::ahead_channel();
        let pins = reg.data.join("upstreams");
        let state = Arc::new(State {
            reg,
            writer,
            files,
            proxies,
            limits,
            pool,
            last_used,
            session_seen,
            started,
            witness,
            orgs: private::Hosts::default(),
            upstreams: match reg_read_only {
                true => None,
                false => crate::upstream::Upstreams::new(&upstreams, pins)?,
            },
            upstream_fresh: upstream::Fresh::default(),
            upstream_ahead: ahead_tx,
            fetched: fetched::Fetched::default(),
            issuers: crate::identity::Issuers::default(),
        });
        // What a crash left in a private registry is made before its first request.
        private::host_existing(&state);
        tokio::spawn(flush_last_used(state.clone()));
        tokio::spawn(upstream::sweep(state.clone()));
        tokio::spawn(upstream::fetch_ahead(state.clone(), ahead_rx));
        Ok(state)
    }

    /// The private organisations' registries this server writes.
    pub fn org_registries(&self) -> Vec<Arc<Registry>> {
        self.orgs.lock().unwrap().values().map(|h| h.reg.clone()).collect()
    }

    /// Runs `f` on a pooled connection on the blocking pool (never on the
    /// async threads: a busy database waits there, not here).
    pub async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&db::Conn) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let pool = self.pool.clone();
        let out = tokio::task::spawn_blocking(move || pool.run(f)).await.map_err(ApiError::internal)?;
        Ok(out?)
    }
}

impl State {
    /// An owner's storage usage (SPEC section 20): `{"bytes", "limit"}`
    /// (`null`: no quota), for whoami and the organisation's document.
    pub async fn usage(&self, owner: db::quota::Owner) -> Result<serde_json::Value, ApiError> {
        let limit = self.reg.config.quotas.limit(&owner);
        let bytes = self.db(move |c| db::quota::usage(c, &owner)).await?;
        Ok(serde_json::json!({ "bytes": bytes, "limit": limit }))
    }
}

/// Writes the tokens' and sessions' last use every [`LAST_USED_FLUSH`]; a
/// failure (a read-only database) keeps them for the next flush.
async fn flush_last_used(state: Arc<State>) {
    let mut tick = tokio::time::interval(LAST_USED_FLUSH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let used: Vec<(i64, String)> =
            std::mem::take(&mut *state.last_used.lock().unwrap()).into_iter().collect();
        let seen: Vec<(i64, i64)> =
            std::mem::take(&mut *state.session_seen.lock().unwrap()).into_iter().collect();
        if used.is_empty() && seen.is_empty() {
            continue;
        }
        let keep = (used.clone(), seen.clone());
        let flushed =
            state.db(move |c| db::touch_tokens(c, &used).and_then(|_| db::session::touch(c, &seen)));
        if let Err(e) = flushed.await {
            tracing::warn!(error = %e.message, "recording tokens' and sessions' last use failed; retried");
            let mut map = state.last_used.lock().unwrap();
            for (id, at) in keep.0 {
                map.entry(id).or_insert(at);
            }
            let mut map = state.session_seen.lock().unwrap();
            for (id, at) in keep.1 {
                map.entry(id).or_insert(at);
            }
        }
    }
}

/// Serves the public listener until the process ends.
pub async fn run(state: Arc<State>, listener: tokio::net::TcpListener) {
    let routes = routes(routes::public(state.clone()));
    serve_connections(listener, move |req, peer| {
        let (state, routes) = (state.clone(), routes.clone());
        async move { handle(&state, &routes, req, peer).await }
    })
    .await
}

/// An answer on its way.
type Answer = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// Warp filters as the function the accept loop calls.
type Routes = Arc<dyn Fn(http::Request<Incoming>) -> Answer + Send + Sync>;

/// The hyper service of `filter` (`warp::service`), answering with this
/// server's body.
fn routes(filter: BoxedFilter<(Response<Bytes>,)>) -> Routes {
    let service = TowerToHyperService::new(warp::service(filter));
    Arc::new(move |req| {
        let answer = hyper::service::Service::call(&service, req);
        Box::pin(async move {
            match answer.await {
                Ok(resp) => body::of_warp(resp),
                Err(never) => match never {},
            }
        })
    })
}

/// Accepts connections until the process ends and answers each request
/// with `handler(request, peer address)`: hyper (HTTP/1.1, and HTTP/2 for
/// a client that starts with its preface), without a filter chain in
/// front, so a static read costs a cache lookup and the response headers.
pub async fn serve_connections<F, Fut>(listener: tokio::net::TcpListener, handler: F)
where
    F: Fn(http::Request<Incoming>, IpAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let http = Arc::new(hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of descriptors, say: wait rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // Nagle off: small JSON answers.
        let _ = stream.set_nodelay(true);
        let (handler, http) = (handler.clone(), http.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let answer = handler(req, peer.ip());
                async move { Ok::<_, std::convert::Infallible>(answer.await) }
            });
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn handle(
    state: &State,
    routes: &Routes,
    mut req: http::Request<Incoming>,
    peer: IpAddr,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let path = path.as_str();
    let seen = observe::Observed::start(req.method(), path, req.headers(), state.proxies.trusts(peer));
    // A private organisation's API sits below its prefix; its documents are static reads.
    let below = private::api_of(path).map_or(path, |(_, rest)| rest);
    // npm's door: packuments and its key are static reads, the rest its routes.
    let npm = crate::npm::door_of(path);
    let npm_static = npm.filter(|_| is_read(req.method())).and_then(|(org, rest)| npm::static_key(org, rest));
    let mut resp = if let Some(key) = npm_static {
        match key {
            Ok(key) => read_key(state, req.method(), path, key, req.headers()).await,
            Err(e) => body::boxed(render_error(&e, None, Shape::Npm)),
        }
    } else if npm.is_none() && is_static_read(req.method(), below) {
        read_static(state, req.method(), path, req.headers()).await
    } else if req.method() == Method::GET && path == "/api/v1/events" {
        let ip = state.proxies.client(peer, req.headers());
        events::stream(state, req.headers(), req.uri().query().unwrap_or(""), ip).await
    } else {
        req.extensions_mut().insert(proxy::Peer(peer));
        req.extensions_mut().insert(seen.acting.clone());
        routes(req).await
    };
    // No answer is ever sniffed into something else (a README into a page).
    resp.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp.headers_mut().insert("x-request-id", seen.id.clone());
    seen.finish(path, resp.status().as_u16());
    resp
}

/// A GET or HEAD that the static root answers: everything outside
/// `/api/`, and under it the derived documents (a file name with an
/// extension: `.json`, `.md`, `.html`), never an API route (those have none).
fn is_static_read(method: &Method, path: &str) -> bool {
    if !is_read(method) {
        return false;
    }
    match path.strip_prefix("/api/") {
        None => true,
        Some(rest) => {
            rest.rsplit('/').next().is_some_and(|f| [".json", ".md", ".html"].iter().any(|e| f.ends_with(e)))
        }
    }
}

/// A static read of the file `path` names: through its private
/// organisation's gate, if it is in one, and an upstream's miss.
async fn read_static(state: &State, method: &Method, path: &str, headers: &HeaderMap) -> Response<Body> {
    let Some(key) = files::key_of(path) else {
        return files::not_found(path, true, method == Method::HEAD, None);
    };
    read_key(state, method, path, key, headers).await
}

/// A static read of `key` (which the URL `path` names).
async fn read_key(
    state: &State,
    method: &Method,
    path: &str,
    key: Key,
    headers: &HeaderMap,
) -> Response<Body> {
    let ask = files::Ask::of(method, headers);
    if let Some(slug) = key.org() {
        if let Some(refused) = private::gate(state, headers, path, slug).await {
            return refused;
        }
    }
    // An upstream's index file is looked at before it is served (it may be
    // due for revalidation); a blob only when it is missing.
    if let Some(up) = &state.upstreams {
        if let Some(refused) = upstream::before_read(state, up, &key, false).await {
            return refused;
        }
    }
    if let Some(resp) = state.files.serve(&key, &ask).await {
        return resp;
    }
    if let Some(up) = &state.upstreams {
        if upstream::only_if_cached(headers) {
            if let Some(refused) = upstream::not_cached(state, &key).await {
                return refused;
            }
        } else if let Some(refused) = upstream::before_read(state, up, &key, true).await {
            return refused;
        }
        if let Some(resp) = state.files.serve(&key, &ask).await {
            return resp;
        }
    }
    // A pack consolidation retired lately is still there for readers
    // holding an older `objects/info/packs`.
    if let Some(file) = key.as_str().strip_prefix("index.git/objects/pack/") {
        let retired = crate::layout::Key::new(format!("index.git/{}/{file}", crate::index::RETIRED_DIR));
        if let Some(resp) = state.files.serve(&retired, &ask).await {
            return resp;
        }
    }
    let page = match path.starts_with("/api/") || crate::npm::door_of(path).is_some() {
        true => None,
        false => state.files.not_found_page().await,
    };
    files::not_found(path, key.is_public(), ask.head, page)
}

fn is_read(m: &Method) -> bool {
    m == Method::GET || m == Method::HEAD
}

/// An API request as handlers see it: authenticated (or not), body read.
pub struct Request<'a> {
    pub state: &'a State,
    pub method: Method,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub ip: IpAddr,
    pub auth: Result<Option<Caller>, ApiError>,
    /// The session when the cookie authenticated the request.
    pub session: Option<Session>,
    pub body: Bytes,
    /// The private organisation's registry the request is for
    /// (`/orgs/{org}/api/v1/…`); `None`: the public registry.
    pub org: Option<Arc<private::Hosted>>,
}

impl Request<'_> {
    /// The registry the request writes to.
    pub fn reg(&self) -> &Registry {
        self.org.as_ref().map_or(&self.state.reg, |h| &h.reg)
    }

    /// The same, shared (for the blocking pool).
    pub fn registry(&self) -> Arc<Registry> {
        self.org.as_ref().map_or_else(|| self.state.reg.clone(), |h| h.reg.clone())
    }

    /// That registry's writer.
    pub fn writer(&self) -> &Writer {
        self.org.as_ref().map_or(&self.state.writer, |h| &h.writer)
    }

    /// That registry's name space.
    pub fn space(&self) -> db::Space {
        self.reg().space.clone()
    }

    /// The authenticated caller, or 401.
    pub fn caller(&self) -> Result<&Caller, ApiError> {
        match &self.auth {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(ApiError::unauthorized(
                "this needs a token (Authorization: Bearer cairn_…) or a session (POST /api/v1/auth/login)",
            )),
            Err(e) => Err(ApiError::unauthorized(e.message.clone())),
        }
    }

    /// The authenticated caller when it is a person: an organisation
    /// token acts for its organisation, never for the admin who made it.
    pub fn person(&self) -> Result<&Caller, ApiError> {
        let caller = self.caller()?;
        match &caller.org {
            Some(o) => Err(ApiError::forbidden(format!(
                "an organisation token (org:{}) cannot do this: it needs a user's token or session",
                o.slug
            ))),
            None => Ok(caller),
        }
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
    }

    /// The authenticated caller as the writer records it, with the
    /// client's address for the audit row.
    pub fn by(&self) -> Result<By, ApiError> {
        Ok(By { actor: Actor::User(self.caller()?.clone()), addr: Some(self.ip.to_string()) })
    }
}

type ApiResult = Result<(StatusCode, serde_json::Value), ApiError>;
/// An answer that may set the session cookie.
type CookieResult = Result<(StatusCode, serde_json::Value, Option<HeaderValue>), ApiError>;

fn with_rate_headers(mut b: http::response::Builder, d: Option<Decision>) -> http::response::Builder {
    if let Some(d) = d {
        b = b
            .header("RateLimit-Limit", d.limit)
            .header("RateLimit-Remaining", d.remaining)
            .header("RateLimit-Reset", d.reset);
        if !d.allowed {
            b = b.header(header::RETRY_AFTER, d.retry_after);
        }
    }
    b
}

pub fn render_json(status: StatusCode, doc: &serde_json::Value, d: Option<Decision>) -> Response<Bytes> {
    let b =
        with_rate_headers(Response::builder(), d).status(status).header(header::CACHE_CONTROL, "no-store");
    // A 204 has no body (RFC 9110).
    if status == StatusCode::NO_CONTENT {
        return b.body(Bytes::new()).unwrap();
    }
    b.header(header::CONTENT_TYPE, "application/json")
        .body(Bytes::from(serde_json::to_vec(doc).unwrap()))
        .unwrap()
}

/// Seconds a 503 asks the client to wait.
const UNAVAILABLE_RETRY_AFTER: u64 = 10;

/// Whose error shape an answer has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The API's `{"error": code, "message"}`.
    Api,
    /// cargo's `{"errors":[{"detail"}]}`, on its routes.
    Cargo,
    /// npm's `{"error": message}` (the text npm prints), on its door.
    Npm,
}

/// The JSON error in the shape of the route's client.
pub fn render_error(e: &ApiError, d: Option<Decision>, shape: Shape) -> Response<Bytes> {
    let body = match shape {
        Shape::Api => e.body(),
        Shape::Cargo => e.cargo_body(),
        Shape::Npm => e.npm_body(),
    };
    let mut b = with_rate_headers(Response::builder(), d);
    if e.status == StatusCode::SERVICE_UNAVAILABLE {
        b = b.header(header::RETRY_AFTER, UNAVAILABLE_RETRY_AFTER);
    }
    b.status(e.status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Bytes::from(body))
        .unwrap()
}
