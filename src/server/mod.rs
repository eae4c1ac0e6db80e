//! The HTTP side of `cairn serve`: the write API under `/api/v1/` and the
//! static root for everything else. One catch-all warp filter hands each
//! request to `handle`; API requests are authenticated (a token, else the
//! web session's cookie, whose writes pass the CSRF rule of `auth`), rate
//! limited and routed in `api`, so every API answer (errors included) goes
//! through one place that adds the rate-limit headers and renders the
//! error shape.

pub mod admin;
mod api;
mod audit;
mod auth;
mod cargo;
mod error;
mod events;
pub mod files;
pub mod hot;
mod orgs;
mod private;
mod proxy;
mod ratelimit;
mod url;
pub mod witness;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use warp::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use warp::hyper::{self, Body};

pub use error::ApiError;
use ratelimit::{Class, Decision, Limits};

use crate::db::session::Session;
use crate::db::{self, AuditEntry, Caller};
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
}

/// How often the tokens' `lastUsedAt` reaches the database.
const LAST_USED_FLUSH: std::time::Duration = std::time::Duration::from_secs(15);

impl State {
    pub fn new(reg: Arc<Registry>) -> anyhow::Result<Arc<State>> {
        let writer = Writer::start(reg.clone())?;
        // A mirror has no writer's events to send.
        if !reg.config.read_only {
            crate::events::webhooks::start(&reg)?;
        }
        let limits = Limits::new(&reg.config.rate_limit);
        let pool = Arc::new(db::pool::Pool::new(reg.database.clone()));
        let c = &reg.config;
        let cache = Arc::new(hot::HotCache::new(reg.root.clone(), c.hot_cache_bytes, c.hot_cache_max_file));
        // Every write of this process to the static root reaches the cache at once.
        let invalidate = cache.clone();
        reg.root.observe(Arc::new(move |key: &str| invalidate.invalidate(key)));
        let files = files::Files::new(reg.root.clone(), cache);
        let proxies = proxy::Proxies::parse(&c.trusted_proxies)?;
        let (last_used, session_seen) = (Mutex::default(), Mutex::default());
        let started = std::time::Instant::now();
        let witness = match reg.config.read_only {
            true => crate::log::witness::Witness::of_mirror(&reg.data, &reg.root)?.map(Arc::new),
            false => None,
        };
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
        });
        // What a crash left in a private registry is made before its first request.
        private::host_existing(&state);
        tokio::spawn(flush_last_used(state.clone()));
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
    serve_connections(listener, move |req, peer| {
        let state = state.clone();
        async move { handle(&state, req, peer).await }
    })
    .await
}

/// Accepts connections until the process ends and answers each request
/// with `handler(request, peer address)`: hyper, without a filter chain in
/// front, so a static read costs a cache lookup and the response headers.
pub async fn serve_connections<F, Fut>(listener: tokio::net::TcpListener, handler: F)
where
    F: Fn(hyper::Request<Body>, IpAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    let http = Arc::new(hyper::server::conn::Http::new());
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
            let _ = http.serve_connection(stream, service).await;
        });
    }
}

async fn handle(state: &State, req: hyper::Request<Body>, peer: IpAddr) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    // A private organisation's API sits below its prefix; its documents are static reads.
    let org_api = private::api_of(path);
    let below = org_api.as_ref().map_or(path, |(_, rest)| rest);
    let mut resp = if is_static_read(&parts.method, below) {
        let refused = match private::org_of(path) {
            Some(slug) => private::gate(state, &parts.headers, path, &slug).await,
            None => None,
        };
        match refused {
            Some(resp) => resp,
            None => read_static(state, &parts.method, path, &parts.headers).await,
        }
    } else if let Some((slug, rest)) = org_api {
        let ip = state.proxies.client(peer, &parts.headers);
        let query = parts.uri.query().unwrap_or("");
        api(state, parts.method.clone(), rest, query, &parts.headers, ip, body, Some(slug)).await
    } else if parts.method == Method::GET && path == "/api/v1/auth/check" {
        private::check(state, &parts.headers).await
    } else if let (Some(w), &Method::POST, "/add-checkpoint") = (&state.witness, &parts.method, path) {
        witness::add_checkpoint(w.clone(), body).await
    } else if parts.method == Method::GET && path == "/api/v1/events" {
        let ip = state.proxies.client(peer, &parts.headers);
        events::stream(state, &parts.headers, parts.uri.query().unwrap_or(""), ip).await
    } else if path.starts_with("/api/") {
        let ip = state.proxies.client(peer, &parts.headers);
        let query = parts.uri.query().unwrap_or("");
        api(state, parts.method.clone(), path, query, &parts.headers, ip, body, None).await
    } else {
        let e = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid",
            format!("{} is not allowed on {path}", parts.method),
        );
        render_error(&e, None, false)
    };
    // No answer is ever sniffed into something else (a README into a page).
    resp.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
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

async fn read_static(state: &State, method: &Method, path: &str, headers: &HeaderMap) -> Response<Body> {
    let ask = files::Ask::of(method, headers);
    if let Some(resp) = state.files.serve(path, &ask).await {
        return resp;
    }
    // A pack consolidation retired lately is still there for readers
    // holding an older `objects/info/packs`.
    if let Some(file) = path.strip_prefix("/index.git/objects/pack/") {
        let retired = format!("/index.git/{}/{file}", crate::index::RETIRED_DIR);
        if let Some(resp) = state.files.serve(&retired, &ask).await {
            return resp;
        }
    }
    let page = if path.starts_with("/api/") { None } else { state.files.not_found_page().await };
    files::not_found(path, ask.head, page)
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

/// The rate-limit class of a route (SPEC section 7's table).
fn class_of(method: &Method, segs: &[&str]) -> Class {
    match (method, segs) {
        (&Method::POST, ["tokens"] | ["orgs", _, "tokens"] | ["auth", "device", "approve"]) => {
            Class::TokenCreate
        }
        (_, ["me", "export"]) => Class::Export,
        (_, ["me", "delete"]) => Class::Delete,
        (m, _) if is_read(m) => Class::Read,
        _ => Class::Write,
    }
}

type ApiResult = Result<(StatusCode, serde_json::Value), ApiError>;
/// An answer that may set the session cookie.
type CookieResult = Result<(StatusCode, serde_json::Value, Option<HeaderValue>), ApiError>;

#[allow(clippy::too_many_arguments)]
async fn api<S, B, E>(
    state: &State,
    method: Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    ip: IpAddr,
    body: S,
    org: Option<String>,
) -> Response<Body>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: Buf,
    E: std::fmt::Display,
{
    // Segments decoded once here: handlers see names and versions as sent.
    let decoded: Vec<String> =
        path.trim_start_matches("/api/v1/").split('/').map(url::decode_segment).collect();
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let cargo_shape = segs.first() == Some(&"crates");

    // The audit is a read, whatever its method: a mirror answers it too.
    let reads = is_read(&method) || audit::is_audit(&method, &segs);
    // A failed authentication is throttled like anonymous traffic, so
    // guessing tokens costs the guesser's address its bucket. Signing in,
    // the device flow's unauthenticated steps and the audit are anonymous
    // whatever they carry: they spend the same bucket.
    let (auth, session) = match auth::is_anonymous(&method, &segs) || audit::is_audit(&method, &segs) {
        true => (Ok(None), None),
        false => match authenticate(state, headers).await {
            Ok(Some((caller, session))) => (Ok(Some(caller)), session),
            Ok(None) => (Ok(None), None),
            Err(e) => (Err(e), None),
        },
    };
    let decision = match &auth {
        Ok(Some(c)) => state.limits.account(c.user.id, class_of(&method, &segs)),
        _ => state.limits.anonymous(ip),
    };
    if !decision.allowed {
        let e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            "rate limit exceeded; retry later",
        );
        return render_error(&e, Some(decision), cargo_shape);
    }
    if state.reg.config.read_only && !reads {
        let e =
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "read-only", "this registry is a read-only mirror");
        return render_error(&e, Some(decision), cargo_shape);
    }
    let body_limit = match (&method, segs.as_slice()) {
        (&Method::PUT, ["packages", _, _]) | (&Method::PUT, ["crates", "new"]) => {
            // The frame around a .crate adds its JSON metadata.
            state.reg.config.limits.max_compressed + (1 << 20)
        }
        _ => 1 << 20,
    };
    let body = match read_body(body, headers, body_limit).await {
        Ok(b) => b,
        Err(e) => return render_error(&e, Some(decision), cargo_shape),
    };
    // Only those who read a private organisation reach its registry's API.
    let hosted = match &org {
        Some(slug) => Some(private::admit(state, &auth, slug).await),
        None => None,
    };
    let org_reg = hosted.as_ref().and_then(|h| h.as_ref().ok().cloned());
    let req =
        Request { state, method: method.clone(), query, headers, ip, auth, session, body, org: org_reg };
    let result = match (auth::check_csrf(&req), segs.as_slice(), hosted) {
        (Err(e), _, _) | (Ok(()), _, Some(Err(e))) => Err(e),
        (Ok(()), segs, Some(Ok(_))) => {
            api::route_org(&req, segs).await.map(|(status, doc)| (status, doc, None))
        }
        (Ok(()), ["auth", rest @ ..], None) => auth::route(&req, rest).await,
        (Ok(()), _, None) => api::route(&req, &segs).await.map(|(status, doc)| (status, doc, None)),
    };
    if let (Err(e), false) = (&result, reads) {
        let path = match &org {
            Some(slug) => format!("/orgs/{slug}{path}"),
            None => path.to_string(),
        };
        audit_refusal(&req, &path, e).await;
    }
    match result {
        Ok((status, doc, cookie)) => {
            let mut resp = render_json(status, &doc, Some(decision));
            if let Some(cookie) = cookie {
                resp.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            resp
        }
        Err(e) => render_error(&e, Some(decision), cargo_shape),
    }
}

/// Every refused write is in the audit log, with who tried it if known.
async fn audit_refusal(req: &Request<'_>, path: &str, e: &ApiError) {
    let caller = req.auth.as_ref().ok().and_then(|c| c.as_ref());
    let (user_id, token_id) = (caller.map(|c| c.user.id), caller.and_then(|c| c.token_id));
    let target = format!("{} {path}", req.method);
    let outcome = format!("refused {}: {}", e.status.as_u16(), e.message);
    let ip = req.ip.to_string();
    let _ = req
        .state
        .db(move |conn| {
            let entry = AuditEntry {
                user_id,
                token_id,
                action: "request",
                target: &target,
                addr: Some(&ip),
                outcome: &outcome,
            };
            db::audit(conn, &entry)
        })
        .await;
}

/// Authenticates by the `Authorization` header when there is one, else by
/// the session cookie (with the session). `Err` for a presented token that
/// is malformed, unknown, revoked or expired, or a cookie whose session has
/// ended.
async fn authenticate(
    state: &State,
    headers: &HeaderMap,
) -> Result<Option<(Caller, Option<Session>)>, ApiError> {
    let authenticated = authenticate_then(state, headers, |_, _| Ok(())).await?;
    Ok(authenticated.map(|(caller, session, ())| (caller, session)))
}

/// [`authenticate`], then `then` on the caller in the same trip to the
/// database (the private read check: one pooled connection per read).
async fn authenticate_then<T: Send + 'static>(
    state: &State,
    headers: &HeaderMap,
    then: impl FnOnce(&db::Conn, &Caller) -> anyhow::Result<T> + Send + 'static,
) -> Result<Option<(Caller, Option<Session>, T)>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return authenticate_session(state, headers, then).await;
    };
    let value = value.to_str().map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let token = value.strip_prefix("Bearer ").unwrap_or(value).trim();
    // The checksum is checked before any lookup.
    if !db::token::well_formed(token) {
        return Err(ApiError::unauthorized("malformed token: cairn tokens are `cairn_` and 40 characters"));
    }
    let token = token.to_string();
    let found = state
        .db(move |conn| match db::authenticate(conn, &token)? {
            Some(c) => Ok(Some((then(conn, &c)?, c))),
            None => Ok(None),
        })
        .await?;
    match found {
        Some((t, c)) => {
            if let Some(token) = c.token_id {
                state.last_used.lock().unwrap().insert(token, db::now());
            }
            Ok(Some((c, None, t)))
        }
        None => Err(ApiError::unauthorized("invalid, expired or revoked token")),
    }
}

/// Authenticates by the session cookie, if there is one, and notes the
/// use of the session (and of the token it was opened with) for the next
/// flush; the session's only when its recorded use is a minute old.
async fn authenticate_session<T: Send + 'static>(
    state: &State,
    headers: &HeaderMap,
    then: impl FnOnce(&db::Conn, &Caller) -> anyhow::Result<T> + Send + 'static,
) -> Result<Option<(Caller, Option<Session>, T)>, ApiError> {
    let Some(secret) = auth::session_cookie(headers) else {
        return Ok(None);
    };
    let found = state
        .db(move |conn| match db::session::authenticate(conn, &secret)? {
            Some((c, session)) => Ok(Some((then(conn, &c)?, c, session))),
            None => Ok(None),
        })
        .await?;
    let Some((t, c, session)) = found else {
        return Err(ApiError::unauthorized("the session has ended or expired; sign in again"));
    };
    if let Some(token) = c.token_id {
        state.last_used.lock().unwrap().insert(token, db::now());
    }
    let now = db::session::unix_now();
    if now - session.seen >= db::session::SEEN_GRANULARITY {
        state.session_seen.lock().unwrap().insert(session.id, now);
    }
    Ok(Some((c, Some(session), t)))
}

fn with_rate_headers(
    mut b: warp::http::response::Builder,
    d: Option<Decision>,
) -> warp::http::response::Builder {
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

pub fn render_json(status: StatusCode, doc: &serde_json::Value, d: Option<Decision>) -> Response<Body> {
    with_rate_headers(Response::builder(), d)
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(serde_json::to_vec(doc).unwrap()))
        .unwrap()
}

/// Seconds a 503 asks the client to wait.
const UNAVAILABLE_RETRY_AFTER: u64 = 10;

/// The JSON error shape, or cargo's `{"errors":[{"detail"}]}` on its routes.
pub fn render_error(e: &ApiError, d: Option<Decision>, cargo_shape: bool) -> Response<Body> {
    let body = if cargo_shape { e.cargo_body() } else { e.body() };
    let mut b = with_rate_headers(Response::builder(), d);
    if e.status == StatusCode::SERVICE_UNAVAILABLE {
        b = b.header(header::RETRY_AFTER, UNAVAILABLE_RETRY_AFTER);
    }
    b.status(e.status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(body))
        .unwrap()
}

/// Reads the body up to `limit` bytes. A body longer or shorter than its
/// Content-Length is refused; so is one over the limit, before it is read.
async fn read_body<S, B, E>(mut body: S, headers: &HeaderMap, limit: u64) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: Buf,
    E: std::fmt::Display,
{
    let length: Option<u64> =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if let Some(length) = length.filter(|l| *l > limit) {
        return Err(ApiError::too_large(format!("the body is {length} bytes; the limit is {limit} bytes")));
    }
    let mut buf = BytesMut::with_capacity(length.unwrap_or(0) as usize);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| ApiError::invalid(format!("reading the body: {e}")))?;
        if (buf.len() + chunk.remaining()) as u64 > length.unwrap_or(limit).min(limit) {
            return match length {
                Some(_) => Err(ApiError::invalid("the body is longer than its Content-Length")),
                None => Err(ApiError::too_large(format!("the body exceeds the limit of {limit} bytes"))),
            };
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            buf.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    if length.is_some_and(|l| buf.len() as u64 != l) {
        return Err(ApiError::invalid("the body is shorter than its Content-Length"));
    }
    Ok(buf.freeze())
}
