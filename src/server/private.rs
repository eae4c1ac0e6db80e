//! Reads of a private organisation's registry (SPEC section 15): every
//! read under `/orgs/{org}/` needs the token of a member, or an
//! organisation token of that organisation with `read`. Without a valid
//! token the answer is 401 (cargo then sends its token: RFC 3139's
//! `auth-required`); with a token that may not read, 404, so a private
//! name is not disclosed. `GET /api/v1/auth/check` gives nginx's
//! `auth_request` the same decision for `X-Original-URI` as 204, 401 or
//! 403 (which the shipped nginx configuration turns into 404).

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::body::{self, Body};
use super::{ApiError, State};
use crate::db::{org, Caller, Conn};
use crate::layout::{self, Key};
use crate::publish::Writer;
use crate::registry::Registry;

/// A private organisation's registry as this server writes it.
pub struct Hosted {
    pub reg: Arc<Registry>,
    pub writer: Writer,
}

/// The hosted registries by slug, each opened (and recovered) once.
pub type Hosts = Arc<Mutex<HashMap<String, Arc<Hosted>>>>;

/// Repairs what a crash left in a private organisation's registry and
/// starts its writer thread.
fn start(reg: Arc<Registry>) -> anyhow::Result<Hosted> {
    reg.recover()?;
    let writer = Writer::start(reg.clone())?;
    Ok(Hosted { reg, writer })
}

/// Hosts every private registry made before, here or (on a bucket) by
/// another server (at start). One that fails to open is opened at its
/// first request instead: the public registry serves meanwhile.
pub fn host_existing(state: &State) {
    if state.reg.config.read_only {
        return;
    }
    let registries = state.reg.db().and_then(|conn| state.reg.private_registries(&conn));
    let registries = registries.unwrap_or_else(|e| {
        tracing::warn!(error = %format!("{e:#}"), "opening the private registries failed; each opens at its first request");
        Vec::new()
    });
    let mut hosts = state.orgs.lock().unwrap();
    for reg in registries {
        let slug = reg.space.org().expect("a private registry").to_string();
        match start(Arc::new(reg)) {
            Ok(hosted) => drop(hosts.insert(slug, Arc::new(hosted))),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), org = %slug, "starting a private registry failed")
            }
        }
    }
}

/// `/orgs/{org}/api/…`: the organisation, and the path below its prefix.
pub fn api_of(path: &str) -> Option<(String, &str)> {
    let (slug, below) = layout::split_org(path.strip_prefix('/')?)?;
    // `below` with the `/` before it.
    below.starts_with("api/").then(|| (slug.to_string(), &path[path.len() - below.len() - 1..]))
}

/// The registry of the private organisation `slug` for a caller who may
/// enter it (401 without a valid token, 404 otherwise: [`may_enter`]).
pub async fn admit(
    state: &State,
    auth: &Result<Option<Caller>, ApiError>,
    slug: &str,
) -> Result<Arc<Hosted>, ApiError> {
    let caller = match auth {
        Ok(Some(c)) => c.clone(),
        Ok(None) => {
            return Err(ApiError::unauthorized("this registry needs a token (Authorization: Bearer cairn_…)"))
        }
        Err(e) => return Err(ApiError::unauthorized(e.message.clone())),
    };
    let s = slug.to_string();
    if !state.db(move |conn| may_enter(conn, &caller, &s)).await? {
        return Err(ApiError::not_found(format!("no API endpoint under /orgs/{slug}/")));
    }
    hosted(state, slug).await
}

/// The registry of the private organisation `slug` (which the caller
/// checked exists), opened, recovered and given its writer at first use.
pub async fn hosted(state: &State, slug: &str) -> Result<Arc<Hosted>, ApiError> {
    let (public, hosts, slug) = (state.reg.clone(), state.orgs.clone(), slug.to_string());
    tokio::task::spawn_blocking(move || -> anyhow::Result<Arc<Hosted>> {
        let mut hosts = hosts.lock().unwrap();
        if let Some(h) = hosts.get(&slug) {
            return Ok(h.clone());
        }
        let hosted = Arc::new(start(Arc::new(public.org_registry(&slug)?))?);
        hosts.insert(slug, hosted.clone());
        Ok(hosted)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}

enum Verdict {
    Allowed,
    /// No token, or one that is malformed, unknown, revoked or expired.
    Unauthenticated(String),
    /// A valid token without access (or no such private organisation).
    Denied,
}

/// The caller and its access in one trip to the database: this runs on
/// every private read (`tools/bench/private_read.sh`). The database down
/// lets nobody in.
async fn verdict(state: &State, headers: &HeaderMap, slug: &str) -> Verdict {
    let slug = slug.to_string();
    match super::auth::authenticate_then(state, headers, move |conn, caller| may_read(conn, caller, &slug))
        .await
    {
        Ok(Some((_, _, true))) => Verdict::Allowed,
        Ok(Some((_, _, false))) => Verdict::Denied,
        Ok(None) => {
            Verdict::Unauthenticated("this registry needs a token (Authorization: Bearer cairn_…)".into())
        }
        Err(e) => Verdict::Unauthenticated(e.message),
    }
}

/// Whether the caller reads the private organisation `slug`: any member
/// (whatever its token's scopes), or the organisation's own token with `read`.
fn may_read(conn: &Conn, caller: &Caller, slug: &str) -> anyhow::Result<bool> {
    match &caller.org {
        // The token's organisation as its authentication read it.
        Some(token_org) => Ok(token_org.private && token_org.slug == slug && caller.has_scope("read")),
        None => org::member_of_private(conn, slug, caller.user.id),
    }
}

/// Whether the caller reaches the private organisation's write API: a
/// member, or the organisation's own token whatever its scopes (a CI
/// token that only publishes needs no `read`; the writer checks scopes and
/// roles).
fn may_enter(conn: &Conn, caller: &Caller, slug: &str) -> anyhow::Result<bool> {
    match &caller.org {
        Some(token_org) => Ok(token_org.private && token_org.slug == slug),
        None => may_read(conn, caller, slug),
    }
}

/// The refusal of a read under `/orgs/{slug}/`, or `None` when it may go on.
pub async fn gate(state: &State, headers: &HeaderMap, path: &str, slug: &str) -> Option<Response<Body>> {
    match verdict(state, headers, slug).await {
        Verdict::Allowed => None,
        Verdict::Unauthenticated(why) => Some(body::boxed(unauthorized(&ApiError::unauthorized(why)))),
        Verdict::Denied => {
            let e = ApiError::not_found(format!("no file {path}"));
            Some(body::boxed(super::render_error(&e, None, super::Shape::Api)))
        }
    }
}

/// `GET /api/v1/auth/check`: 204, 401 or 403 for the URI nginx asks about
/// (`X-Original-URI`); anything outside `/orgs/` is public.
pub async fn check(state: &State, headers: &HeaderMap) -> Response<Bytes> {
    let uri = headers.get("x-original-uri").and_then(|v| v.to_str().ok()).unwrap_or("/");
    let path = uri.split(['?', '#']).next().unwrap_or("/");
    // Decided on the file's key, as the static server resolves it
    // (`//orgs/…` and percent-escapes reach the same file as `/orgs/…`).
    let key = super::files::key_of(path);
    let status = match key.as_ref().and_then(Key::org) {
        None => StatusCode::NO_CONTENT,
        Some(slug) => match verdict(state, headers, slug).await {
            Verdict::Allowed => StatusCode::NO_CONTENT,
            Verdict::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Verdict::Denied => StatusCode::FORBIDDEN,
        },
    };
    let mut resp = Response::builder().status(status).header(header::CACHE_CONTROL, "no-store");
    if status == StatusCode::UNAUTHORIZED {
        resp = resp.header(header::WWW_AUTHENTICATE, CHALLENGE);
    }
    resp.body(Bytes::new()).unwrap()
}

/// What a 401 asks for (cargo reads the status; browsers and curl the header).
const CHALLENGE: &str = "Bearer realm=\"cairn\"";

fn unauthorized(e: &ApiError) -> Response<Bytes> {
    let mut resp = super::render_error(e, None, super::Shape::Api);
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
    resp
}
