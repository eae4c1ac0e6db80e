//! The seeds' search routes (SPEC 19): pakx's `GET /api/v1/packages?q=&limit=`
//! and skillreg's `GET /api/v1/search?q=&org=&limit=`, answered from the
//! search files with the one ranking (`search::search`) that `cairn search`,
//! cargo's and npm's searches use.

use http::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;

use super::{ApiError, ApiResult, Request};
use crate::registry::Registry;
use crate::search::SearchResult;

/// The most results one answer has.
const MAX_LIMIT: usize = 100;

/// `q` and `limit` (and `org`) of a query string.
struct Asked {
    q: String,
    limit: usize,
    org: Option<String>,
}

fn asked(query: &str) -> Result<Asked, ApiError> {
    let mut asked = Asked { q: String::new(), limit: 20, org: None };
    for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        let v = super::url::decode_form(v);
        match k {
            "q" => asked.q = v,
            "org" if !v.is_empty() => asked.org = Some(v.to_ascii_lowercase()),
            "limit" => {
                asked.limit =
                    v.parse().map_err(|_| ApiError::invalid(format!("limit must be a number, not `{v}`")))?
            }
            _ => {}
        }
    }
    asked.limit = asked.limit.clamp(1, MAX_LIMIT);
    Ok(asked)
}

/// The hits of `q` in `reg`'s search files, best first.
pub(super) async fn hits(reg: Arc<Registry>, q: String) -> Result<Vec<SearchResult>, ApiError> {
    tokio::task::spawn_blocking(move || {
        let root = &reg.root;
        crate::search::search(root.layout(), &mut |key| Ok(root.read(key)?), &q, usize::MAX)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}

/// pakx's `GET /api/v1/packages?q=&limit=`; an empty `q` lists the
/// packages published last.
pub async fn packages(req: &Request<'_>) -> ApiResult {
    let Asked { q, limit, .. } = asked(req.query)?;
    let reg = req.registry();
    let found: Vec<Value> = match q.trim().is_empty() {
        false => {
            let hits = hits(reg, q).await?;
            hits.into_iter().take(limit).map(|h| pakx(&h.name, h.kind, &h.description, &h.version)).collect()
        }
        true => {
            let space = reg.space.clone();
            req.state
                .db(move |conn| {
                    let mut seen = std::collections::HashSet::new();
                    let mut out = Vec::new();
                    for row in crate::db::recent_versions(conn, &space, limit * 10)? {
                        if out.len() == limit || !seen.insert(crate::name::canonical(&row.name)) {
                            continue;
                        }
                        let lines = reg.read_lines(&row.name)?;
                        if let Some(latest) = crate::derive::latest_version(&lines) {
                            let d = latest.description.as_deref().unwrap_or("");
                            out.push(pakx(&latest.name, latest.listed_kind(), d, &latest.vers));
                        }
                    }
                    Ok(out)
                })
                .await?
        }
    };
    Ok((StatusCode::OK, json!({ "packages": found })))
}

fn pakx(name: &str, kind: Option<String>, description: &str, version: &str) -> Value {
    json!({
        "id": name,
        "kind": kind.unwrap_or_else(|| "library".into()),
        "description": description,
        "latestVersion": version,
    })
}

/// skillreg's `GET /api/v1/search?q=&org=&limit=`: `org` keeps an
/// organisation's packages (a private organisation's registry, for its
/// members only; a public organisation's packages of the public registry).
pub async fn skillreg(req: &Request<'_>) -> ApiResult {
    let Asked { q, limit, org } = asked(req.query)?;
    let slug = org.clone();
    let found = match &slug {
        None => None,
        Some(slug) => {
            let s = slug.clone();
            match req.state.db(move |conn| crate::db::org::find(conn, &s)).await? {
                None => return Err(ApiError::not_found(format!("no organisation `{slug}`"))),
                Some(o) => Some(o),
            }
        }
    };
    let (reg, owner) = match found {
        Some(o) if o.private => {
            (super::private::admit(req.state, &req.auth, &o.slug).await?.reg.clone(), None)
        }
        Some(o) => (req.state.reg.clone(), Some(format!("org:{}", o.slug))),
        None => (req.state.reg.clone(), None),
    };
    let space = reg.space.clone();
    let mut results = hits(reg, q).await?;
    // A public organisation's: the packages it owns.
    if let Some(owner) = owner {
        let names: Vec<String> = results.iter().map(|h| h.name.clone()).collect();
        let owned = req
            .state
            .db(move |conn| {
                let mut owned = std::collections::HashSet::new();
                for name in names {
                    if crate::db::owners(conn, &space, &name)?.contains(&owner) {
                        owned.insert(name);
                    }
                }
                Ok(owned)
            })
            .await?;
        results.retain(|h| owned.contains(&h.name));
    }
    let total = results.len();
    let results: Vec<Value> = results
        .into_iter()
        .take(limit)
        .map(|h| {
            json!({
                "name": h.name,
                "org": org,
                "kind": h.kind.unwrap_or_else(|| "library".into()),
                "description": h.description,
                "latestVersion": h.version,
                "downloads": h.downloads,
                "score": h.score,
            })
        })
        .collect();
    Ok((StatusCode::OK, json!({ "results": results, "total": total })))
}
