//! The HTTP side of `cairn serve`: the write API under `/api/v1/` and the
//! static root for everything else. One catch-all warp filter hands each
//! request to `handle`; API requests are authenticated, rate limited and
//! routed in `api`, so every API answer (errors included) goes through one
//! place that adds the rate-limit headers and renders the error shape.

pub mod admin;
mod api;
mod cargo;
mod error;
pub mod files;
mod ratelimit;
mod url;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use warp::http::{header, HeaderMap, Method, Response, StatusCode};
use warp::hyper::Body;
use warp::Filter;

pub use error::ApiError;
use ratelimit::{Class, Decision, Limits};

use crate::db::{self, AuditEntry, Caller};
use crate::publish::{Actor, Change, Outcome, WriteRequest, Writer};
use crate::registry::Registry;

pub struct State {
    pub reg: Arc<Registry>,
    pub writer: Writer,
    limits: Limits,
    /// Token lookups and reads are single indexed queries: one shared connection.
    db: Mutex<rusqlite::Connection>,
}

impl State {
    pub fn new(reg: Arc<Registry>) -> anyhow::Result<Arc<State>> {
        let writer = Writer::start(reg.clone())?;
        let limits = Limits::new(&reg.config.rate_limit);
        let db = Mutex::new(reg.db()?);
        Ok(Arc::new(State { reg, writer, limits, db }))
    }

    /// Runs `f` on the shared read connection.
    pub fn with_db<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> anyhow::Result<T>,
    ) -> Result<T, ApiError> {
        let conn = self.db.lock().unwrap();
        Ok(f(&conn)?)
    }
}

/// Accepted connections of a bound listener, with Nagle off (small JSON answers).
fn incoming(listener: tokio::net::TcpListener) -> impl Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| {
            let _ = s.set_nodelay(true);
            s
        });
        Some((r, l))
    })
}

/// The parts of a request every route sees.
fn request_parts() -> impl Filter<
    Extract = (Method, warp::path::FullPath, String, HeaderMap, Option<SocketAddr>),
    Error = std::convert::Infallible,
> + Clone {
    warp::any()
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::addr::remote())
}

/// Serves the public listener until the process ends.
pub async fn run(state: Arc<State>, listener: tokio::net::TcpListener) {
    let routes = request_parts().and(warp::body::stream()).then(
        move |method, path: warp::path::FullPath, query: String, headers, addr: Option<SocketAddr>, body| {
            let state = state.clone();
            async move {
                let ip = addr.map(|a| a.ip()).unwrap_or(IpAddr::from([127, 0, 0, 1]));
                handle(&state, method, path.as_str(), &query, headers, ip, body).await
            }
        },
    );
    warp::serve(routes).run_incoming(incoming(listener)).await;
}

async fn handle<S, B>(
    state: &State,
    method: Method,
    path: &str,
    query: &str,
    headers: HeaderMap,
    ip: IpAddr,
    body: S,
) -> Response<Body>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    // Derived documents under /api/v1/ are static files; the rest is the API.
    let static_read = is_read(&method) && (path.ends_with(".json") || path.ends_with(".md"));
    if path.starts_with("/api/v1/") && !static_read {
        return api(state, method, path, query, &headers, ip, body).await;
    }
    if is_read(&method) {
        let inm = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
        let head = method == Method::HEAD;
        if let Some(resp) = files::serve(&state.reg.static_root, path, inm, head).await {
            return resp;
        }
        // A pack consolidation retired lately is still there for readers
        // holding an older `objects/info/packs`.
        if let Some(file) = path.strip_prefix("/index.git/objects/pack/") {
            let retired = format!("/index.git/{}/{file}", crate::index::RETIRED_DIR);
            if let Some(resp) = files::serve(&state.reg.static_root, &retired, inm, head).await {
                return resp;
            }
        }
        // The site's client-side routes fall back to its index page.
        if path.starts_with("/p/") {
            if let Some(resp) = files::serve(&state.reg.static_root, "/", inm, head).await {
                return resp;
            }
        }
        return render_error(&ApiError::not_found(format!("no file at {path}")), None, false);
    }
    let e = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid",
        format!("{method} is not allowed on {path}"),
    );
    render_error(&e, None, false)
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
    pub body: Bytes,
}

impl Request<'_> {
    /// The authenticated caller, or 401.
    pub fn caller(&self) -> Result<&Caller, ApiError> {
        match &self.auth {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(ApiError::unauthorized("this needs a token: Authorization: Bearer cairn_…")),
            Err(e) => Err(ApiError::unauthorized(e.message.clone())),
        }
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
    }

    /// Hands a change to the writer as the authenticated caller.
    pub async fn write(&self, change: Change) -> Result<Outcome, ApiError> {
        let caller = self.caller()?.clone();
        let req = WriteRequest { actor: Actor::User(caller), addr: Some(self.ip.to_string()), change };
        Ok(self.state.writer.submit(req).await?)
    }
}

/// The rate-limit class of a route (SPEC section 7's table).
fn class_of(method: &Method, segs: &[&str]) -> Class {
    match (method, segs) {
        (&Method::POST, ["tokens"]) => Class::TokenCreate,
        (_, ["me", "export"]) => Class::Export,
        (_, ["me", "delete"]) => Class::Delete,
        (m, _) if is_read(m) => Class::Read,
        _ => Class::Write,
    }
}

type ApiResult = Result<(StatusCode, serde_json::Value), ApiError>;

async fn api<S, B>(
    state: &State,
    method: Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    ip: IpAddr,
    body: S,
) -> Response<Body>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    // Segments decoded once here: handlers see names and versions as sent.
    let decoded: Vec<String> =
        path.trim_start_matches("/api/v1/").split('/').map(url::decode_segment).collect();
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let cargo_shape = segs.first() == Some(&"crates");

    // A failed authentication is throttled like anonymous traffic, so
    // guessing tokens costs the guesser's address its bucket.
    let auth = authenticate(state, headers);
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
    if state.reg.config.read_only && !is_read(&method) {
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
    let req = Request { state, method: method.clone(), query, headers, ip, auth, body };
    let result = api::route(&req, &segs).await;
    if let (Err(e), false) = (&result, is_read(&method)) {
        audit_refusal(&req, path, e);
    }
    match result {
        Ok((status, doc)) => render_json(status, &doc, Some(decision)),
        Err(e) => render_error(&e, Some(decision), cargo_shape),
    }
}

/// Every refused write is in the audit log, with who tried it if known.
fn audit_refusal(req: &Request, path: &str, e: &ApiError) {
    let caller = req.auth.as_ref().ok().and_then(|c| c.as_ref());
    let target = format!("{} {path}", req.method);
    let outcome = format!("refused {}: {}", e.status.as_u16(), e.message);
    let ip = req.ip.to_string();
    let _ = req.state.with_db(|conn| {
        db::audit(
            conn,
            &AuditEntry {
                user_id: caller.map(|c| c.user.id),
                token_id: caller.map(|c| c.token_id),
                action: "request",
                target: &target,
                addr: Some(&ip),
                outcome: &outcome,
            },
        )
    });
}

/// Authenticates if a token is presented. `Err` for a presented token that
/// is malformed, unknown, revoked or expired.
fn authenticate(state: &State, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let token = value.strip_prefix("Bearer ").unwrap_or(value).trim();
    // The checksum is checked before any lookup.
    if !db::token::well_formed(token) {
        return Err(ApiError::unauthorized("malformed token: cairn tokens are `cairn_` and 40 characters"));
    }
    match state.with_db(|conn| db::authenticate(conn, token))? {
        Some(c) => Ok(Some(c)),
        None => Err(ApiError::unauthorized("invalid, expired or revoked token")),
    }
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

/// The JSON error shape, or cargo's `{"errors":[{"detail"}]}` on its routes.
pub fn render_error(e: &ApiError, d: Option<Decision>, cargo_shape: bool) -> Response<Body> {
    let body = if cargo_shape { e.cargo_body() } else { e.body() };
    with_rate_headers(Response::builder(), d)
        .status(e.status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(body))
        .unwrap()
}

/// Reads the body up to `limit` bytes. A body longer or shorter than its
/// Content-Length is refused; so is one over the limit, before it is read.
async fn read_body<S, B>(mut body: S, headers: &HeaderMap, limit: u64) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
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
