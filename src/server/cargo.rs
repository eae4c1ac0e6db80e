//! cargo's registry web API (SPEC section 8), answered in cargo's error shape
//! (the dispatcher renders every error on `/api/v1/crates/*` as
//! `{"errors":[{"detail"}]}`). Writes go through the same writer, with the
//! same ownership, scope and name checks, as the native API.

use crate::layout::StaticRoot;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::{ApiError, ApiResult, Request};
use crate::archive::{self, ManifestKind};
use crate::index::cargo::{crate_line, split_publish_frame, NewCrate};
use crate::publish::Upload;

pub async fn route(req: &Request<'_>, segs: &[&str]) -> ApiResult {
    match (&req.method, segs) {
        (&Method::GET | &Method::HEAD, [] | [""]) => search(req).await,
        (&Method::PUT, ["new"]) => publish(req).await,
        (&Method::DELETE, [name, version, "yank"]) => yank(req, name, version, true).await,
        (&Method::PUT, [name, version, "unyank"]) => yank(req, name, version, false).await,
        (&Method::GET, [name, "owners"]) => owners(req, name).await,
        (&Method::PUT, [name, "owners"]) => change_owners(req, name, true).await,
        (&Method::DELETE, [name, "owners"]) => change_owners(req, name, false).await,
        _ => Err(ApiError::not_found(format!(
            "no cargo API endpoint {} /api/v1/crates/{}",
            req.method,
            segs.join("/")
        ))),
    }
}

/// `PUT /api/v1/crates/new`.
async fn publish(req: &Request<'_>) -> ApiResult {
    let prepared = req.writer().preparing();
    let reg = req.reg();
    let caller = req.caller()?;
    let (json, krate) = split_publish_frame(&req.body).map_err(ApiError::invalid)?;
    let meta = NewCrate::parse(&json).map_err(ApiError::invalid)?;
    crate::name::validate(&meta.name).map_err(|e| ApiError::invalid(e.to_string()))?;
    crate::name::check_reserved(&meta.name, &reg.config.reserved_names)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let version = crate::name::parse_version(&meta.vers).map_err(ApiError::invalid)?;
    if !caller.has_scope("publish-new") && !caller.has_scope("publish-update") {
        return Err(ApiError::forbidden("this token has neither `publish-new` nor `publish-update`"));
    }
    let limits = reg.config.limits.clone();
    if krate.len() as u64 > limits.max_compressed {
        return Err(ApiError::too_large(format!(
            "the .crate is {} bytes; the limit is {} bytes",
            krate.len(),
            limits.max_compressed
        )));
    }
    let (sha256, blake3) = crate::store::digests(&krate);
    let (b, n, v) = (krate.clone(), meta.name.clone(), meta.vers.clone());
    // A .crate is always gzip; Cargo.toml must sit at `{name}-{version}/`
    // and agree with the metadata's name and version.
    let inspected = tokio::task::spawn_blocking(move || {
        archive::inspect(&b, &n, &v, Some("application/gzip"), ManifestKind::Cargo, &limits)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::from_archive)?;
    let line = crate_line(&meta, &inspected.manifest, &sha256, &blake3, krate.len() as u64);
    let readme = inspected.readme.or_else(|| meta.readme.map(String::into_bytes));
    super::upstream::guard_new_name(req, &line.name).await?;
    let upload = Upload { line, version, bytes: krate, readme };
    req.writer().publish(prepared, req.by()?, upload).await?;
    Ok((
        StatusCode::OK,
        json!({ "warnings": { "invalid_categories": [], "invalid_badges": [], "other": [] } }),
    ))
}

/// `DELETE /api/v1/crates/{name}/{version}/yank`, `PUT …/unyank`.
async fn yank(req: &Request<'_>, name: &str, version: &str, yanked: bool) -> ApiResult {
    req.writer().yank(req.by()?, name, version, yanked).await?;
    Ok((StatusCode::OK, json!({ "ok": true })))
}

/// `GET /api/v1/crates/{name}/owners`: `{"users":[{"id","login","name","kind"}]}`.
/// Owners are public (`owners.json` lists them too), so no token is needed.
async fn owners(req: &Request<'_>, name: &str) -> ApiResult {
    let (n, space) = (name.to_string(), req.space());
    let users = req.state.db(move |c| crate::db::owner_rows(c, &space, &n)).await?;
    // An organisation is what crates.io calls a team.
    let users: Vec<Value> = users
        .into_iter()
        .map(|(id, login)| {
            let kind = if crate::db::org::slug_of_owner(&login).is_some() { "team" } else { "user" };
            json!({ "id": id, "login": login, "name": Value::Null, "kind": kind })
        })
        .collect();
    if users.is_empty() {
        return Err(ApiError::not_found(format!("no crate `{name}`")));
    }
    Ok((StatusCode::OK, json!({ "users": users })))
}

/// `PUT`/`DELETE /api/v1/crates/{name}/owners` with `{"users":[login…]}`.
/// Owners are added at once (cairn has no owner invitations).
async fn change_owners(req: &Request<'_>, name: &str, add: bool) -> ApiResult {
    let (users, _) = super::owners::change(req, name, add).await?;
    let logins = users.join(", ");
    let msg = if add {
        format!("user(s) {logins} added as owner(s) of crate {name}")
    } else {
        format!("user(s) {logins} removed as owner(s) of crate {name}")
    };
    Ok((StatusCode::OK, json!({ "ok": true, "msg": msg })))
}

/// `GET /api/v1/crates?q=&per_page=` (default 10, at most 100).
async fn search(req: &Request<'_>) -> ApiResult {
    let mut q = String::new();
    let mut per_page = 10usize;
    for pair in req.query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match super::url::decode_form(k).as_str() {
            "q" => q = super::url::decode_form(v),
            "per_page" => {
                per_page = super::url::decode_form(v)
                    .parse()
                    .map_err(|_| ApiError::invalid(format!("per_page must be a number, not `{v}`")))?;
            }
            _ => {}
        }
    }
    let per_page = per_page.clamp(1, 100);
    let root = req.reg().root.clone();
    let (total, hits) = tokio::task::spawn_blocking(move || search_packages(&root, &q, per_page))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok((StatusCode::OK, json!({ "crates": hits, "meta": { "total": total } })))
}

/// Answers a search from the search files of the static root (shards and
/// delta, so a publish is found at once) with the same query code as the
/// CLI. Returns the number of matches and the first `limit` as cargo's `crates`.
fn search_packages(root: &StaticRoot, q: &str, limit: usize) -> anyhow::Result<(usize, Vec<Value>)> {
    let hits = crate::search::search(root.layout(), &mut |key| Ok(root.read(key)?), q, usize::MAX)?;
    let total = hits.len();
    let crates = hits
        .into_iter()
        .take(limit)
        .map(|h| {
            let mut hit = json!({ "name": h.name, "max_version": h.version, "description": h.description });
            // A package cached from an upstream says which (SPEC section 16).
            if let Some(upstream) = h.upstream {
                hit["upstream"] = json!(upstream);
            }
            hit
        })
        .collect();
    Ok((total, crates))
}
