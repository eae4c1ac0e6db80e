//! The HTTP side of `cairn serve`: the write API under `/api/v1/` and the
//! static root for everything else. One catch-all warp filter hands each
//! request to `handle`, which routes by method and path, so every API answer
//! (errors included) goes through one place that adds the rate-limit headers.

mod error;
pub mod files;
mod ratelimit;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use warp::http::{header, HeaderMap, Method, Response, StatusCode};
use warp::hyper::Body;
use warp::Filter;

pub use error::ApiError;
use ratelimit::{Class, Decision, Limits};

use crate::archive::{self, ManifestKind};
use crate::db::{self, Caller};
use crate::publish::{Change, Outcome, Upload, WriteRequest, Writer};
use crate::registry::Registry;

pub struct State {
    pub reg: Arc<Registry>,
    pub writer: Writer,
    limits: Limits,
    /// Token lookups are a single indexed query: one shared connection.
    auth_db: std::sync::Mutex<rusqlite::Connection>,
}

impl State {
    pub fn new(reg: Arc<Registry>) -> anyhow::Result<Arc<State>> {
        let writer = Writer::start(reg.clone())?;
        let limits = Limits::new(&reg.config.rate_limit);
        let auth_db = std::sync::Mutex::new(reg.db()?);
        Ok(Arc::new(State { reg, writer, limits, auth_db }))
    }
}

/// Serves until the process ends.
pub async fn run(state: Arc<State>, listener: tokio::net::TcpListener) {
    let routes = warp::any()
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::addr::remote())
        .and(warp::body::stream())
        .then(move |method, path: warp::path::FullPath, headers, addr: Option<SocketAddr>, body| {
            let state = state.clone();
            async move {
                let ip = addr.map(|a| a.ip()).unwrap_or(IpAddr::from([127, 0, 0, 1]));
                handle(&state, method, path.as_str(), headers, ip, body).await
            }
        });
    let incoming = tokio_stream_of(listener);
    warp::serve(routes).run_incoming(incoming).await;
}

fn tokio_stream_of(
    listener: tokio::net::TcpListener,
) -> impl Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| {
            let _ = s.set_nodelay(true);
            s
        });
        Some((r, l))
    })
}

async fn handle<S, B>(
    state: &State,
    method: Method,
    path: &str,
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
        return api(state, method, path, &headers, ip, body).await;
    }
    if is_read(&method) {
        let inm = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
        if let Some(resp) = files::serve(&state.reg.static_root, path, inm, method == Method::HEAD).await {
            return resp;
        }
        // The site's client-side routes fall back to its index page.
        if path.starts_with("/p/") {
            if let Some(resp) = files::serve(&state.reg.static_root, "/", inm, method == Method::HEAD).await {
                return resp;
            }
        }
        return error_response(&ApiError::not_found(format!("no file at {path}")), None);
    }
    error_response(
        &ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid",
            format!("{method} is not allowed on {path}"),
        ),
        None,
    )
}

fn is_read(m: &Method) -> bool {
    m == Method::GET || m == Method::HEAD
}

/// Authenticates if a token is presented. `Err` for a presented token that
/// is malformed, unknown, revoked or expired.
fn authenticate(state: &State, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let token = value.strip_prefix("Bearer ").unwrap_or(value).trim();
    if !db::token::well_formed(token) {
        return Err(ApiError::unauthorized(
            "malformed token: cairn tokens look like `cairn_` and 40 characters",
        ));
    }
    let conn = state.auth_db.lock().unwrap();
    match db::authenticate(&conn, token)? {
        Some(c) => Ok(Some(c)),
        None => Err(ApiError::unauthorized("invalid, expired or revoked token")),
    }
}

async fn api<S, B>(
    state: &State,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    ip: IpAddr,
    body: S,
) -> Response<Body>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let segs: Vec<&str> = path.trim_start_matches("/api/v1/").split('/').collect();
    let class = if method == Method::GET { Class::Read } else { Class::Write };
    // A failed authentication is throttled like anonymous traffic, so
    // guessing tokens costs the guesser's address its bucket.
    let auth = authenticate(state, headers);
    let decision = match &auth {
        Ok(Some(c)) => state.limits.account(c.user.id, class),
        _ => state.limits.anonymous(ip),
    };
    if !decision.allowed {
        let e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            "rate limit exceeded; retry later",
        );
        return error_response(&e, Some(decision));
    }
    let result = match (&method, segs.as_slice()) {
        (&Method::GET, ["health"]) | (&Method::HEAD, ["health"]) => health(state).await,
        (&Method::PUT, ["packages", name, version]) => match auth {
            Ok(Some(caller)) => publish(state, caller, name, version, headers, ip, body).await,
            Ok(None) => {
                Err(ApiError::unauthorized("publishing needs a token: Authorization: Bearer cairn_…"))
            }
            Err(e) => Err(e),
        },
        _ => Err(ApiError::not_found(format!("no API endpoint {method} {path}"))),
    };
    match result {
        Ok((status, doc)) => json_response(status, &doc, Some(decision)),
        Err(e) => error_response(&e, Some(decision)),
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

fn json_response(status: StatusCode, doc: &serde_json::Value, d: Option<Decision>) -> Response<Body> {
    with_rate_headers(Response::builder(), d)
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(serde_json::to_vec(doc).unwrap()))
        .unwrap()
}

fn error_response(e: &ApiError, d: Option<Decision>) -> Response<Body> {
    with_rate_headers(Response::builder(), d)
        .status(e.status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(e.body()))
        .unwrap()
}

type ApiResult = Result<(StatusCode, serde_json::Value), ApiError>;

/// Live probe: the database answers, the index head resolves, the blob
/// directory is there.
async fn health(state: &State) -> ApiResult {
    let reg = state.reg.clone();
    let checks = tokio::task::spawn_blocking(move || {
        let db = reg
            .db()
            .and_then(|c| Ok(c.query_row("SELECT COUNT(*) FROM versions", [], |r| r.get::<_, i64>(0))?));
        let index = reg.index.head();
        let blobs = reg.store.blob_path("").is_dir();
        (db, index, blobs)
    })
    .await
    .map_err(ApiError::internal)?;
    let (db, index, blobs) = checks;
    let ok = db.is_ok() && index.is_ok() && blobs;
    let check = |ok: bool, detail: serde_json::Value| json!({ "status": if ok { "ok" } else { "failed" }, "detail": detail });
    let doc = json!({
        "status": if ok { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "checks": {
            "db": check(db.is_ok(), db.as_ref().map(|n| json!({"versions": n})).unwrap_or_else(|e| json!(format!("{e:#}")))),
            "index": check(index.is_ok(), index.as_ref().map(|h| json!({"head": h.to_string()})).unwrap_or_else(|e| json!(format!("{e:#}")))),
            "blobs": check(blobs, json!({})),
        },
    });
    Ok((if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, doc))
}

/// `PUT /api/v1/packages/{name}/{version}`.
async fn publish<S, B>(
    state: &State,
    caller: Caller,
    name: &str,
    version: &str,
    headers: &HeaderMap,
    ip: IpAddr,
    body: S,
) -> ApiResult
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let reg = &state.reg;
    crate::name::validate(name).map_err(|e| ApiError::invalid(e.to_string()))?;
    crate::name::check_reserved(name, &reg.config.reserved_names)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let version = percent_decode_plus(version);
    let parsed = crate::name::parse_version(&version).map_err(ApiError::invalid)?;
    if !caller.has_scope("publish-new") && !caller.has_scope("publish-update") {
        return Err(ApiError::forbidden("this token has neither `publish-new` nor `publish-update`"));
    }
    let limits = &reg.config.limits;
    let length: u64 = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::new(StatusCode::LENGTH_REQUIRED, "invalid", "Content-Length is required"))?;
    if length > limits.max_compressed {
        return Err(ApiError::too_large(format!(
            "the archive is {length} bytes; the limit is {} bytes",
            limits.max_compressed
        )));
    }
    let bytes = read_body(body, length).await?;
    let (sha256, blake3) = crate::store::digests(&bytes);
    if let Some(claimed) = headers.get("X-Checksum-Sha256").and_then(|v| v.to_str().ok()) {
        if !claimed.eq_ignore_ascii_case(&sha256) {
            return Err(ApiError::invalid(format!(
                "X-Checksum-Sha256 is {claimed} but the body's SHA-256 is {sha256}"
            )));
        }
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (inspect_bytes, limits, n, v) = (bytes.clone(), limits.clone(), name.to_string(), version.clone());
    let inspected = tokio::task::spawn_blocking(move || {
        archive::inspect(&inspect_bytes, &n, &v, content_type.as_deref(), ManifestKind::Cairn, &limits)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| {
        if e.is_too_large() {
            ApiError::too_large(e.to_string())
        } else {
            ApiError::invalid(e.to_string())
        }
    })?;
    let m = &inspected.manifest;
    let line =
        crate::index::IndexLine::native(m, inspected.format.ext(), &sha256, &blake3, bytes.len() as u64);
    let upload = Upload { line, version: parsed, bytes, readme: inspected.readme };
    let req = WriteRequest { caller, addr: Some(ip.to_string()), change: Change::Publish(Box::new(upload)) };
    let Outcome::Published(published) = state.writer.submit(req).await? else {
        unreachable!("a publish has a publish outcome")
    };
    Ok((StatusCode::CREATED, serde_json::to_value(published).unwrap()))
}

/// URL path segments may carry `+` of build metadata percent-encoded.
fn percent_decode_plus(s: &str) -> String {
    s.replace("%2B", "+").replace("%2b", "+")
}

/// Reads exactly `length` bytes; a body that is longer or shorter than it
/// claims is refused.
async fn read_body<S, B>(mut body: S, length: u64) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let mut buf = BytesMut::with_capacity(length as usize);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| ApiError::invalid(format!("reading the body: {e}")))?;
        if buf.len() as u64 + chunk.remaining() as u64 > length {
            return Err(ApiError::invalid("the body is longer than its Content-Length"));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            buf.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    if buf.len() as u64 != length {
        return Err(ApiError::invalid("the body is shorter than its Content-Length"));
    }
    Ok(buf.freeze())
}
