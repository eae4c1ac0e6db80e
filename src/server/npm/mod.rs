//! npm's door (SPEC section 18): `/npm/…`, and `/orgs/{org}/npm/…` for a
//! private organisation's registry. Packuments and the key document are
//! static reads ([`static_key`]); the rest are API routes ([`route`],
//! below the API's stages: authentication, rate limits, body limits,
//! audit rows): publishing and the packument edits npm makes
//! (`publish.rs`), web login (`login.rs`), whoami, search and the bulk
//! advisory audit (`audit.rs`).

mod audit;
pub mod login;
mod publish;

use http::{Method, StatusCode};
use serde_json::json;

use super::{ApiError, ApiResult, Request};
use crate::layout::{Key, Layout};

/// The static key a GET of `rest` below a door reads, or the refusal of a
/// name the door does not serve; `None`: not a static read (an API route).
pub fn static_key(org: Option<&str>, rest: &str) -> Option<Result<Key, ApiError>> {
    let layout = org.map_or_else(Layout::public, Layout::org);
    if rest == "-/npm/v1/keys" {
        return Some(Ok(Key::new(layout.npm_keys())));
    }
    if rest.starts_with("-/blobs/") {
        return super::files::key_of(&format!("{}/{rest}", crate::layout::url(&layout.npm_dir()))).map(Ok);
    }
    if rest.starts_with('-') || rest.is_empty() {
        return None;
    }
    // `@scope%2fname` or `@scope/name`: one name either way.
    let decoded: Vec<String> = rest.split('/').map(super::url::decode_segment).collect();
    let name = decoded.join("/");
    Some(
        crate::npm::package_of(org, &name)
            .map(|name| Key::new(layout.npm_packument(&name)))
            .map_err(ApiError::invalid),
    )
}

/// The routes below a door (`segs`, decoded, after `npm`).
pub async fn route(req: &Request<'_>, segs: &[&str]) -> ApiResult {
    let m = &req.method;
    match (m, segs) {
        (&Method::GET, ["-", "ping"]) => Ok((StatusCode::OK, json!({}))),
        (&Method::GET, ["-", "whoami"]) => whoami(req),
        (&Method::GET, ["-", "v1", "search"]) => search(req).await,
        (&Method::POST, ["-", "v1", "login"]) => login::start(req).await,
        (&Method::GET, ["-", "user", login]) => user(req, login).await,
        (&Method::PUT, ["-", "user", _]) => Err(ApiError::invalid(
            "cairn has no npm password login: run `npm login --auth-type=web`, or put a cairn token in .npmrc",
        )),
        (&Method::POST, ["-", "npm", "v1", "security", "advisories", "bulk"]) => audit::bulk(req).await,
        (_, ["-", "package", rest @ ..]) => publish::dist_tags(req, rest).await,
        (&Method::PUT, rest) => publish::put(req, rest).await,
        (&Method::DELETE, rest) => publish::delete(req, rest).await,
        _ => Err(ApiError::not_found(format!("npm has no route {m} {}", segs.join("/")))),
    }
}

/// The package a path's leading segments name (`@scope/name` may come as
/// one decoded segment or two), and the segments after it.
fn package<'a, 'b>(req: &Request, segs: &'a [&'b str]) -> Result<(String, &'a [&'b str]), ApiError> {
    let (npm_name, rest) = match segs {
        [scoped, name, rest @ ..] if scoped.starts_with('@') && !scoped.contains('/') => {
            (format!("{scoped}/{name}"), rest)
        }
        [name, rest @ ..] => (name.to_string(), rest),
        [] => return Err(ApiError::not_found("no package named")),
    };
    let org = req.reg().space.org().map(str::to_string);
    let name = crate::npm::package_of(org.as_deref(), &npm_name).map_err(ApiError::invalid)?;
    Ok((name, rest))
}

/// `npm whoami`.
fn whoami(req: &Request) -> ApiResult {
    Ok((StatusCode::OK, json!({ "username": req.caller()?.login() })))
}

/// `npm owner add` looks the user up first.
async fn user(req: &Request<'_>, user: &str) -> ApiResult {
    req.caller()?;
    let login = user.strip_prefix("org.couchdb.user:").unwrap_or(user).to_string();
    let found = req.state.db(move |conn| crate::db::find_user(conn, &login)).await?;
    match found {
        Some(u) => Ok((StatusCode::OK, json!({ "name": u.login }))),
        None => Err(ApiError::not_found(format!("no user `{user}`"))),
    }
}

/// `npm search`: the ranking of every other search here (SPEC section 9),
/// in npm's shape.
async fn search(req: &Request<'_>) -> ApiResult {
    let (mut text, mut size, mut from) = (String::new(), 20usize, 0usize);
    for (k, v) in req.query.split('&').filter_map(|kv| kv.split_once('=')) {
        let number = |v: &str| {
            super::url::decode_form(v)
                .parse()
                .map_err(|_| ApiError::invalid(format!("`{k}` must be a number")))
        };
        match k {
            "text" => text = super::url::decode_form(v),
            "size" => size = number(v)?,
            "from" => from = number(v)?,
            _ => {}
        }
    }
    let size = size.clamp(1, 250);
    let hits = super::search::hits(req.registry(), text).await?;
    let total = hits.len();
    let layout = req.reg().root.layout();
    let objects: Vec<_> = hits
        .into_iter()
        .skip(from)
        .take(size)
        .map(|h| {
            json!({
                "package": {
                    "name": layout.npm_name(&h.name),
                    "version": h.version,
                    "description": h.description,
                    "keywords": [],
                    "maintainers": [],
                    "date": null,
                },
                "downloads": { "monthly": h.downloads },
                "score": { "final": h.score, "detail": { "quality": 0, "popularity": 0, "maintenance": 0 } },
                "searchScore": h.score,
            })
        })
        .collect();
    Ok((
        StatusCode::OK,
        json!({ "objects": objects, "total": total, "time": chrono::Utc::now().to_rfc3339() }),
    ))
}
