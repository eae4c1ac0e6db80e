//! The API as warp filters (the design card's small warp service), turned
//! into one hyper service that the accept loop calls for every request
//! that is not a static read or the event stream.
//!
//! A request of the API (`/api/…`, or a private organisation's
//! `/orgs/{org}/api/…`) goes through the stages in order:
//! [`authenticated`], [`within_rate_limit`] (the caller's bucket),
//! [`writable`] (a mirror's refusal of writes), [`body_within_limit`]
//! (the route's body limit, the body read), [`respond`] (the private
//! organisation's gate, the CSRF rule, the handler), [`audited`] (the
//! audit row of a refused write), then [`render`]. A stage that refuses
//! before the handler rejects with [`Refused`], which [`refused`] renders:
//! every API answer, errors included, has the API's error shape and the
//! rate-limit headers of its decision.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::{header, HeaderMap, Method, Response, StatusCode};
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use warp::filters::BoxedFilter;
use warp::path::FullPath;
use warp::{Filter, Rejection};

use super::observe::Acting;
use super::proxy::Peer;
use super::ratelimit::{Class, Decision};
use super::{api, audit, auth, private, url, witness};
use super::{render_error, render_json, ApiError, CookieResult, Request, Shape, State};
use crate::db::session::Session;
use crate::db::{self, AuditEntry, Caller};

/// The public listener's routes below the static reads: the API, nginx's
/// private read check, a mirror's witness, and 405 for anything else.
pub fn public(state: Arc<State>) -> BoxedFilter<(Response<Bytes>,)> {
    let check = warp::get()
        .and(at("/api/v1/auth/check"))
        .and(with_state(state.clone()))
        .and(warp::header::headers_cloned())
        .then(|state: Arc<State>, headers: HeaderMap| async move { private::check(&state, &headers).await });
    let sign_in = super::identity::sign_in(state.clone());
    check
        .or(npm_login_done(state.clone()))
        .unify()
        .or(checkpoint(state.clone()))
        .unify()
        .or(sign_in)
        .unify()
        .or(api(state))
        .unify()
        .or(not_allowed())
        .unify()
        .boxed()
}

/// The done URL npm polls during a web login (`server/npm/login.rs`): its
/// 202 carries `Retry-After`, which no API answer has.
fn npm_login_done(state: Arc<State>) -> impl Filter<Extract = (Response<Bytes>,), Error = Rejection> + Clone {
    let code = warp::path::full().and_then(|p: FullPath| async move {
        super::npm::login::code_of(p.as_str()).ok_or_else(warp::reject::not_found)
    });
    warp::get()
        .and(code)
        .and(with_state(state))
        .then(|code: String, state: Arc<State>| async move { super::npm::login::poll(&state, code).await })
}

fn with_state(state: Arc<State>) -> impl Filter<Extract = (Arc<State>,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// Exactly `path` (`warp::path!` would take a trailing slash too).
fn at(path: &'static str) -> impl Filter<Extract = (), Error = Rejection> + Copy {
    warp::path::full()
        .and_then(move |p: FullPath| async move {
            match p.as_str() == path {
                true => Ok(()),
                false => Err(warp::reject::not_found()),
            }
        })
        .untuple_one()
}

/// The client's address: the peer's, or the one a trusted proxy forwarded.
fn client(state: Arc<State>) -> impl Filter<Extract = (IpAddr,), Error = Rejection> + Clone {
    with_state(state)
        .and(warp::ext::get::<Peer>())
        .and(warp::header::headers_cloned())
        .map(|state: Arc<State>, Peer(peer), headers: HeaderMap| state.proxies.client(peer, &headers))
}

/// The raw query string, empty when there is none.
fn query() -> impl Filter<Extract = (String,), Error = Infallible> + Copy {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// `POST /add-checkpoint` on a mirror that witnesses its source.
fn checkpoint(state: Arc<State>) -> impl Filter<Extract = (Response<Bytes>,), Error = Rejection> + Clone {
    let witness = warp::any().and_then(move || {
        let witness = state.witness.clone();
        async move { witness.ok_or_else(warp::reject::not_found) }
    });
    warp::post()
        .and(at("/add-checkpoint"))
        .and(witness)
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(|w, headers: HeaderMap, body| async move {
            let body = read_body(body, &headers, witness::MAX_BODY).await.ok();
            witness::add_checkpoint(w, body).await
        })
}

/// What is neither a static read nor a route.
fn not_allowed() -> impl Filter<Extract = (Response<Bytes>,), Error = Infallible> + Copy {
    warp::method().and(warp::path::full()).map(|method: Method, path: FullPath| {
        let e = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid",
            format!("{method} is not allowed on {}", path.as_str()),
        );
        render_error(&e, None, Shape::Api)
    })
}

/// Which API a path is for: the path below a private organisation's
/// prefix and the organisation, or the public registry's path; npm's
/// door (`/npm/…`) is an API too.
fn target() -> impl Filter<Extract = (String, Option<String>), Error = Rejection> + Copy {
    warp::path::full()
        .and_then(|p: FullPath| async move {
            // npm's door: its path below a private organisation's prefix.
            if let Some((org, rest)) = crate::npm::door_of(p.as_str()) {
                return Ok((format!("/npm/{rest}"), org.map(str::to_string)));
            }
            match private::api_of(p.as_str()) {
                Some((slug, below)) => Ok((below.to_string(), Some(slug))),
                None if p.as_str().starts_with("/api/") => Ok((p.as_str().to_string(), None)),
                None => Err(warp::reject::not_found()),
            }
        })
        .untuple_one()
}

/// The API's stages (see the module's comment).
fn api(state: Arc<State>) -> impl Filter<Extract = (Response<Bytes>,), Error = Rejection> + Clone {
    target()
        .and(warp::method())
        .and(query())
        .and(warp::header::headers_cloned())
        .and(client(state.clone()))
        .and(with_state(state))
        .map(Call::new)
        .and(warp::ext::optional::<Acting>())
        .map(|call: Call, acting| Call { acting, ..call })
        .then(authenticated)
        .and_then(within_rate_limit)
        .and_then(writable)
        .and(warp::body::stream())
        .and_then(body_within_limit)
        .untuple_one()
        .then(respond)
        .then(audited)
        .map(render)
        .recover(refused)
        .unify()
}

/// An API request on its way through the stages.
struct Call {
    state: Arc<State>,
    method: Method,
    /// Below a private organisation's prefix, if any.
    path: String,
    org: Option<String>,
    query: String,
    headers: HeaderMap,
    ip: IpAddr,
    /// The path's segments below `/api/v1/`, decoded once here: handlers
    /// see names and versions as sent.
    segs: Vec<String>,
    /// Where the request's log line takes its login from.
    acting: Option<Acting>,
}

impl Call {
    fn new(
        path: String,
        org: Option<String>,
        method: Method,
        query: String,
        headers: HeaderMap,
        ip: IpAddr,
        state: Arc<State>,
    ) -> Call {
        // npm's routes are the API's `npm/…` (`server/npm`).
        let below = path.strip_prefix('/').filter(|p| p.starts_with("npm/"));
        let below = below.unwrap_or_else(|| path.trim_start_matches("/api/v1/"));
        let segs = below.split('/').map(url::decode_segment).collect();
        Call { state, method, path, org, query, headers, ip, segs, acting: None }
    }

    fn segs(&self) -> Vec<&str> {
        self.segs.iter().map(String::as_str).collect()
    }

    /// cargo's and npm's routes answer errors in their client's shape.
    fn shape(&self) -> Shape {
        match self.segs.first().map(String::as_str) {
            Some("crates") => Shape::Cargo,
            Some("npm") => Shape::Npm,
            _ => Shape::Api,
        }
    }

    /// The audit is a read, whatever its method: a mirror answers it too.
    fn reads(&self) -> bool {
        super::is_read(&self.method) || audit::is_audit(&self.method, &self.segs())
    }

    fn refuse(&self, error: ApiError, decision: Decision) -> Rejection {
        warp::reject::custom(Refused { error, decision: Some(decision), shape: self.shape() })
    }
}

/// A request stopped before its handler answered.
#[derive(Debug)]
struct Refused {
    error: ApiError,
    decision: Option<Decision>,
    shape: Shape,
}

impl warp::reject::Reject for Refused {}

/// The answer of a refusal; any other rejection goes on to the next route.
async fn refused(r: Rejection) -> Result<Response<Bytes>, Rejection> {
    match r.find::<Refused>() {
        Some(Refused { error, decision, shape }) => Ok(render_error(error, *decision, *shape)),
        None => Err(r),
    }
}

/// A request authenticated, or not.
struct Authenticated {
    call: Call,
    auth: Result<Option<Caller>, ApiError>,
    session: Option<Session>,
}

/// A request authenticated (or not) and within its rate limit.
struct Admitted {
    call: Call,
    auth: Result<Option<Caller>, ApiError>,
    session: Option<Session>,
    decision: Decision,
}

/// The rate-limit class of a route (SPEC section 7's table).
fn class_of(method: &Method, segs: &[&str]) -> Class {
    match (method, segs) {
        (&Method::POST, ["tokens"] | ["orgs", _, "tokens"] | ["auth", "device", "approve"]) => {
            Class::TokenCreate
        }
        (_, ["me", "export"]) => Class::Export,
        (_, ["me", "delete"]) => Class::Delete,
        (m, _) if super::is_read(m) => Class::Read,
        _ => Class::Write,
    }
}

/// The caller, by token or session cookie. Signing in, the device flow's
/// unauthenticated steps and the audit are anonymous whatever they carry.
async fn authenticated(call: Call) -> Authenticated {
    let (method, segs) = (&call.method, call.segs());
    let (auth, session) = match auth::is_anonymous(method, &segs) || audit::is_audit(method, &segs) {
        true => (Ok(None), None),
        false => match auth::authenticate(&call.state, &call.headers).await {
            Ok(Some((caller, session))) => (Ok(Some(caller)), session),
            Ok(None) => (Ok(None), None),
            Err(e) => (Err(e), None),
        },
    };
    if let (Some(acting), Ok(Some(caller))) = (&call.acting, &auth) {
        acting.set(&caller.login());
    }
    Authenticated { call, auth, session }
}

/// The caller's bucket for the route's class, or the address's for a
/// request without a valid credential: a failed authentication is
/// throttled like anonymous traffic, so guessing tokens costs the
/// guesser's address its bucket.
async fn within_rate_limit(a: Authenticated) -> Result<Admitted, Rejection> {
    let Authenticated { call, auth, session } = a;
    let decision = match &auth {
        Ok(Some(c)) => call.state.limits.account(c.user.id, class_of(&call.method, &call.segs())),
        _ => call.state.limits.anonymous(call.ip),
    };
    if !decision.allowed {
        let e = ApiError::too_many_requests();
        return Err(call.refuse(e, decision));
    }
    Ok(Admitted { call, auth, session, decision })
}

/// A read-only mirror refuses writes.
async fn writable(a: Admitted) -> Result<Admitted, Rejection> {
    if a.call.state.reg.config.read_only && !a.call.reads() {
        let e =
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "read-only", "this registry is a read-only mirror");
        return Err(a.call.refuse(e, a.decision));
    }
    Ok(a)
}

/// The body, read within the route's limit: a publish's archive in its
/// frame, else a megabyte.
async fn body_within_limit<S, B>(a: Admitted, body: S) -> Result<(Admitted, Bytes), Rejection>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let limit = match (&a.call.method, a.call.segs().as_slice()) {
        // A proposals' candidate (SPEC section 19) is JSON, not an archive.
        (&Method::PUT, ["packages", _, "candidate"]) => 1 << 20,
        (&Method::PUT, ["packages", _, _]) | (&Method::PUT, ["crates", "new"]) => {
            // The frame around a .crate adds its JSON metadata.
            a.call.state.reg.config.limits.max_compressed + (1 << 20)
        }
        // npm's publish: the tarball in base64 inside its packument.
        (&Method::PUT, ["npm", ..]) => a.call.state.reg.config.limits.max_compressed / 3 * 4 + (1 << 20),
        _ => 1 << 20,
    };
    match read_body(body, &a.call.headers, limit).await {
        Ok(body) => Ok((a, body)),
        Err(e) => Err(a.call.refuse(e, a.decision)),
    }
}

/// A handler's answer, with what its audit row and its headers need.
struct Outcome {
    state: Arc<State>,
    result: CookieResult,
    decision: Decision,
    shape: Shape,
    /// Reads are not audited.
    reads: bool,
    /// Who asked (user and token), if known.
    who: Option<(i64, Option<i64>)>,
    ip: IpAddr,
    /// The method and the whole path.
    target: String,
}

/// The private organisation's gate, the CSRF rule, and the handler.
async fn respond(a: Admitted, body: Bytes) -> Outcome {
    let Admitted { call, auth, session, decision } = a;
    let (state, segs) = (&*call.state, call.segs());
    // Only those who read a private organisation reach its registry's API.
    let hosted = match &call.org {
        Some(slug) => Some(private::admit(state, &auth, slug).await),
        None => None,
    };
    let org = hosted.as_ref().and_then(|h| h.as_ref().ok().cloned());
    let who = auth.as_ref().ok().and_then(Option::as_ref).map(|c| (c.user.id, c.token_id));
    let (method, query, headers, ip) = (call.method.clone(), call.query.as_str(), &call.headers, call.ip);
    let req = Request { state, method, query, headers, ip, auth, session, body, org };
    let result = match (auth::check_csrf(&req), segs.as_slice(), hosted) {
        (Err(e), _, _) | (Ok(()), _, Some(Err(e))) => Err(e),
        (Ok(()), segs, Some(Ok(_))) => {
            api::route_org(&req, segs).await.map(|(status, doc)| (status, doc, None))
        }
        (Ok(()), ["auth", rest @ ..], None) => auth::route(&req, rest).await,
        (Ok(()), _, None) => api::route(&req, &segs).await.map(|(status, doc)| (status, doc, None)),
    };
    let target = match &call.org {
        Some(slug) => format!("{} /orgs/{slug}{}", call.method, call.path),
        None => format!("{} {}", call.method, call.path),
    };
    let (shape, reads) = (call.shape(), call.reads());
    Outcome { state: call.state, result, decision, shape, reads, who, ip, target }
}

/// Every refused write is in the audit log, with who tried it if known.
async fn audited(o: Outcome) -> Outcome {
    let e = match (&o.result, o.reads) {
        (Err(e), false) => e,
        _ => return o,
    };
    let (user_id, token_id) = (o.who.map(|w| w.0), o.who.and_then(|w| w.1));
    let outcome = format!("refused {}: {}", e.status.as_u16(), e.message);
    let (target, ip) = (o.target.clone(), o.ip.to_string());
    let _ = o
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
    o
}

/// The answer, with the rate-limit headers and any session cookie.
fn render(o: Outcome) -> Response<Bytes> {
    match o.result {
        Ok((status, doc, cookie)) => {
            let mut resp = render_json(status, &doc, Some(o.decision));
            if let Some(cookie) = cookie {
                resp.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            resp
        }
        Err(e) => render_error(&e, Some(o.decision), o.shape),
    }
}

/// Reads the body up to `limit` bytes. A body longer or shorter than its
/// Content-Length is refused; so is one over the limit, before it is read.
pub async fn read_body<S, B, E>(body: S, headers: &HeaderMap, limit: u64) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, E>>,
    B: Buf,
    E: std::fmt::Display,
{
    let length: Option<u64> =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if let Some(length) = length.filter(|l| *l > limit) {
        return Err(ApiError::too_large(format!("the body is {length} bytes; the limit is {limit} bytes")));
    }
    let mut body = std::pin::pin!(body);
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
