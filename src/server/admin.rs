//! The administration listener: bound to loopback only (the address is its
//! access control), no tokens, the same writer as the public API.
//!
//! `POST /admin/users {"login","email"}` → `{"login","token"}`; `GET /admin/users`;
//! `POST /admin/users/{login}/disable`; `POST /admin/users/{login}/token`;
//! `DELETE /admin/packages/{name}/{version}` (hard delete), `DELETE
//! /admin/packages/{name}` (the whole package); `POST /admin/advisories`
//! (an OSV file; `cairn admin advisory add`); `POST /admin/purge`;
//! `GET /metrics` (Prometheus).

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use warp::filters::BoxedFilter;
use warp::path::FullPath;
use warp::Filter;

use super::{render_error, render_json, ApiError, ApiResult, State};
use crate::db;
use crate::jobs::advisories;

/// Refuses any address that is not loopback: the admin API has no other guard.
pub fn check_loopback(addr: &SocketAddr) -> anyhow::Result<()> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "--admin-listen must be a loopback address (127.0.0.1 or ::1), not {addr}: the admin API has no authentication"
    );
    Ok(())
}

pub async fn run(state: Arc<State>, listener: tokio::net::TcpListener) {
    let routes = super::routes(filter(state));
    super::serve_connections(listener, move |req, _peer| routes(req)).await
}

/// Every request: its body read (a megabyte at most), routed, answered
/// with `nosniff`.
fn filter(state: Arc<State>) -> BoxedFilter<(Response<Bytes>,)> {
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(move |method: Method, path: FullPath, headers: HeaderMap, body| {
            let state = state.clone();
            async move {
                if method == Method::GET && path.as_str() == "/metrics" {
                    return metrics(&state).await;
                }
                let result = match super::routes::read_body(body, &headers, 1 << 20).await {
                    Ok(body) => route(&state, &method, path.as_str(), &body).await,
                    Err(e) => Err(e),
                };
                respond(result)
            }
        })
        .map(|mut resp: Response<Bytes>| {
            resp.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            resp
        })
        .boxed()
}

/// `GET /metrics`: Prometheus' text format (404 with metrics off).
async fn metrics(state: &State) -> Response<Bytes> {
    let m = crate::metrics::get();
    if !m.enabled() {
        return render_error(
            &ApiError::not_found("metrics are off (`metrics = false`)"),
            None,
            super::Shape::Api,
        );
    }
    let (packages, versions) = match state.db(db::counts).await {
        Ok(counts) => counts,
        Err(e) => return render_error(&e, None, super::Shape::Api),
    };
    let scrape = crate::metrics::Scrape {
        pending_effects: state.writer.pending().len() + state.writer.purges_owed().0,
        log_entries: state.reg.log.as_ref().map_or(0, |l| l.size()),
        packages,
        versions,
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Bytes::from(m.render(&scrape)))
        .unwrap()
}

fn respond(result: ApiResult) -> Response<Bytes> {
    match result {
        Ok((status, doc)) => render_json(status, &doc, None),
        Err(e) => render_error(&e, None, super::Shape::Api),
    }
}

#[derive(Deserialize)]
struct NewUser {
    login: String,
    email: Option<String>,
}

async fn route(state: &State, method: &Method, path: &str, body: &[u8]) -> ApiResult {
    let segs: Vec<&str> = path.trim_start_matches("/admin/").split('/').collect();
    let json_body =
        || serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")));
    match (method, segs.as_slice()) {
        (&Method::POST, ["users"]) => {
            let u: NewUser = json_body()?;
            let (login, email) = (u.login.clone(), u.email.clone());
            let token = state
                .db(move |c| db::add_user(c, &login, email.as_deref()))
                .await
                .map_err(|e| ApiError::invalid(e.message))?;
            Ok((StatusCode::CREATED, json!({ "login": u.login, "token": token })))
        }
        (&Method::GET, ["users"]) => {
            let users = state.db(db::list_users).await?;
            let users: Vec<_> = users
                .into_iter()
                .map(|(u, disabled)| {
                    json!({ "login": u.login, "email": u.email, "createdAt": u.created_at, "disabled": disabled })
                })
                .collect();
            Ok((StatusCode::OK, json!({ "users": users })))
        }
        (&Method::POST, ["users", login, "disable"]) => {
            let l = login.to_string();
            if !state.db(move |c| db::disable_user(c, &l)).await? {
                return Err(ApiError::not_found(format!("no user `{login}`")));
            }
            Ok((StatusCode::OK, json!({ "disabled": true })))
        }
        (&Method::POST, ["users", login, "token"]) => {
            let l = login.to_string();
            let token = state
                .db(move |c| db::issue_first_token(c, &l))
                .await
                .map_err(|e| ApiError::not_found(e.message))?;
            Ok((StatusCode::CREATED, json!({ "login": login, "token": token })))
        }
        (&Method::DELETE, ["packages", name]) => {
            let versions = state.writer.delete_package(name).await?;
            Ok((StatusCode::OK, json!({ "deleted": true, "versions": versions })))
        }
        (&Method::DELETE, ["packages", name, version]) => {
            state.writer.hard_delete(name, version).await?;
            Ok((StatusCode::OK, json!({ "deleted": true })))
        }
        // A private organisation's registry: the same deletes, by its writer.
        (&Method::DELETE, ["orgs", org, "packages", rest @ ..]) if matches!(rest.len(), 1 | 2) => {
            let slug = org.to_string();
            let private = state.db(move |c| Ok(db::org::find(c, &slug)?.is_some_and(|o| o.private))).await?;
            if !private {
                return Err(ApiError::not_found(format!("no private organisation `{org}`")));
            }
            let writer = &super::private::hosted(state, org).await?.writer;
            match rest {
                [name] => {
                    let versions = writer.delete_package(name).await?;
                    Ok((StatusCode::OK, json!({ "deleted": true, "versions": versions })))
                }
                [name, version] => {
                    writer.hard_delete(name, version).await?;
                    Ok((StatusCode::OK, json!({ "deleted": true })))
                }
                _ => unreachable!("one or two segments"),
            }
        }
        (&Method::POST, ["advisories"]) => {
            let id = advisories::parse(body)
                .map_err(|e| ApiError::invalid(format!("not a valid OSV advisory: {e:#}")))?
                .id;
            let (reg, i, bytes) = (state.reg.clone(), id.clone(), body.to_vec());
            let new = tokio::task::spawn_blocking(move || advisories::is_new(&reg, &i, &bytes))
                .await
                .map_err(ApiError::internal)?
                .map_err(ApiError::internal)?;
            if !new {
                return Ok((StatusCode::OK, json!({ "id": id, "added": false })));
            }
            state.writer.advisory(&id, body.to_vec()).await?;
            // The commit is durable: a failure to rewrite the documents is
            // logged, not answered (`cairn rebuild advisories` redoes them).
            let reg = state.reg.clone();
            let rewritten = tokio::task::spawn_blocking(move || advisories::rewrite_documents(&reg)).await;
            if let Ok(Err(e)) = rewritten {
                tracing::warn!(error = %format!("{e:#}"), "rewriting the advisory documents failed");
            }
            Ok((StatusCode::CREATED, json!({ "id": id, "added": true })))
        }
        (&Method::POST, ["purge"]) => {
            let purged = state.db(db::purge_accounts).await?;
            Ok((StatusCode::OK, json!({ "purged": purged })))
        }
        _ => Err(ApiError::not_found(format!("no admin endpoint {method} {path}"))),
    }
}
