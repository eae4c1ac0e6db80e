//! The native write API (SPEC section 7): one function per endpoint, routed
//! by `route`. Writes go through the writer; reads use the shared connection.

use http::{header, Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiResult, Request};
use crate::db;
use crate::index::{meta, Meta};

pub async fn route(req: &Request<'_>, segs: &[&str]) -> ApiResult {
    let m = &req.method;
    match (m, segs) {
        (&Method::GET | &Method::HEAD, ["health"]) => health(req).await,
        (&Method::GET, ["whoami"]) => whoami(req).await,
        (&Method::GET, ["tokens"]) => list_tokens(req).await,
        (&Method::POST, ["tokens"]) => create_token(req).await,
        (&Method::DELETE, ["tokens", id]) => revoke_token(req, id).await,
        (&Method::GET, ["me", "export"]) => export(req).await,
        (&Method::POST, ["me", "delete"]) => delete_me(req).await,
        (&Method::PATCH, ["me"]) => set_me(req).await,
        (&Method::GET, ["packages"]) => super::search::packages(req).await,
        (&Method::GET, ["search"]) => super::search::skillreg(req).await,
        (&Method::POST, ["packages"]) => register(req).await,
        (&Method::PATCH, ["packages", name]) => deprecate(req, name).await,
        (&Method::POST, ["trusted_publishing", "tokens"]) => super::identity::exchange(req).await,
        (&Method::DELETE, ["trusted_publishing", "tokens"]) => super::identity::revoke(req).await,
        (&Method::GET, ["packages", name, "trusted-publishers"]) => super::identity::list(req, name).await,
        (&Method::POST, ["packages", name, "trusted-publishers"]) => super::identity::add(req, name).await,
        (&Method::DELETE, ["packages", name, "trusted-publishers", id]) => {
            super::identity::remove(req, name, id).await
        }
        (&Method::POST, ["audit"]) => super::audit::post(req).await,
        (&Method::POST, ["packages", name, "proposals"]) => super::proposals::create(req, name).await,
        (&Method::GET, ["packages", name, "proposals"]) => super::proposals::list(req, name).await,
        (&Method::GET, ["packages", name, "proposals", id]) => super::proposals::show(req, name, id).await,
        (&Method::PATCH, ["packages", name, "proposals", id]) => super::proposals::close(req, name, id).await,
        (&Method::GET, ["packages", name, "candidate"]) => super::candidate::show(req, name).await,
        (&Method::PUT, ["packages", name, "candidate"]) => super::candidate::compose(req, name).await,
        (&Method::POST, ["packages", name, "candidate", "publish"]) => {
            super::candidate::publish(req, name).await
        }
        (&Method::GET, ["orgs", org, "proposals", id]) => super::proposals::show_in_org(req, org, id).await,
        (&Method::GET, ["packages", name, "owners"]) => owners(req, name).await,
        (&Method::PUT, ["packages", name, "owners"]) => change_owners(req, name, true).await,
        (&Method::DELETE, ["packages", name, "owners"]) => change_owners(req, name, false).await,
        (&Method::PUT, ["packages", name, version]) => publish(req, name, version).await,
        (&Method::DELETE, ["packages", name, version]) => yank(req, name, version, true).await,
        (&Method::POST, ["packages", name, version, "unyank"]) => yank(req, name, version, false).await,
        (_, ["orgs", rest @ ..]) => super::orgs::route(req, rest).await,
        (_, ["invitations", rest @ ..]) => super::invitations::route(req, rest).await,
        (_, ["crates", rest @ ..]) => super::cargo::route(req, rest).await,
        (_, ["npm", rest @ ..]) => super::npm::route(req, rest).await,
        _ => Err(ApiError::not_found(format!("no API endpoint {m} /api/v1/{}", segs.join("/")))),
    }
}

/// The API of a private organisation's registry (`/orgs/{org}/api/v1/…`):
/// its packages, natively and as cargo's; accounts, tokens and
/// organisations are the public registry's.
pub async fn route_org(req: &Request<'_>, segs: &[&str]) -> ApiResult {
    match segs {
        ["whoami"] | ["packages", ..] | ["crates", ..] | ["npm", ..] => route(req, segs).await,
        _ => Err(ApiError::not_found(format!(
            "no API endpoint {} /api/v1/{} in an organisation's registry",
            req.method,
            segs.join("/")
        ))),
    }
}

/// Live probe: the database answers (and how fast), the index head
/// resolves, the storage answers (one look at the public key, cheap on a
/// disk and in a bucket alike).
async fn health(req: &Request<'_>) -> ApiResult {
    let (reg, pool) = (req.state.reg.clone(), req.state.pool.clone());
    let (db, latency, index, blobs) = tokio::task::spawn_blocking(move || {
        let asked = std::time::Instant::now();
        // A pooled connection: opening one to Postgres per probe would
        // cost a connection and a migration check each time.
        let db = pool.run(crate::db::counts);
        let latency = asked.elapsed();
        let blobs = reg.root.stat(&reg.root.layout().minisign_pub());
        (db, latency, reg.index.head(), blobs)
    })
    .await
    .map_err(ApiError::internal)?;
    let ok = db.is_ok() && index.is_ok() && blobs.is_ok();
    // Effects committed writes still owe: the node serves, degraded.
    let pending = req.state.writer.pending();
    let (purges_owed, purge_error) = req.state.writer.purges_owed();
    let check = |ok: bool, detail: serde_json::Value| json!({ "status": if ok { "ok" } else { "failed" }, "detail": detail });
    let err = |e: &anyhow::Error| json!(format!("{e:#}"));
    let mut db_check = check(
        db.is_ok(),
        db.as_ref().map(|(p, v)| json!({ "packages": p, "versions": v })).unwrap_or_else(err),
    );
    db_check["latencyMs"] = json!((latency.as_secs_f64() * 1e6).round() / 1e3);
    let status = match (ok, pending.is_empty() && purges_owed == 0) {
        (true, true) => "ok",
        (true, false) => "degraded",
        (false, _) => "unavailable",
    };
    let mut doc = json!({
        "status": status,
        "pending": pending.iter().map(|(effect, error)| json!({"effect": effect, "error": error})).collect::<Vec<_>>(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSec": req.state.started.elapsed().as_secs(),
        "checks": {
            "db": db_check,
            "index": check(index.is_ok(), index.as_ref().map(|h| json!({ "head": h.to_string() })).unwrap_or_else(err)),
            "blobs": check(blobs.is_ok(), blobs.as_ref().map(|_| json!({})).unwrap_or_else(|e| json!(e.to_string()))),
        },
    });
    // The CDN in front: a purge owed makes the node degraded (its cache may
    // serve an index file older than a 201) until the purge goes through.
    if req.state.reg.config.cdn.purge_url.is_some() {
        doc["cdn"] = json!({ "pending": purges_owed, "error": purge_error });
    }
    // The index's git remotes: mirrors, so one lagging never makes the node degraded.
    let remotes = req.state.writer.remotes();
    if !remotes.is_empty() {
        doc["remotes"] = json!(remotes);
    }
    // Upstreams (SPEC section 16): the bytes refused for not matching their line.
    if let Some(up) = &req.state.upstreams {
        let names: Vec<&str> = up.sources().iter().map(|s| s.config.name.as_str()).collect();
        doc["upstreams"] = json!({ "names": names, "mismatches": up.mismatches() });
    }
    Ok((if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, doc))
}

/// The user, or for an organisation token the organisation it acts for,
/// with its storage usage against its quota.
async fn whoami(req: &Request<'_>) -> ApiResult {
    let c = req.caller()?;
    let u = &c.user;
    let owner = match &c.org {
        Some(o) => db::quota::Owner::Org { id: o.id, slug: o.slug.clone() },
        None => db::quota::Owner::User { id: u.id, login: u.login.clone() },
    };
    let mut doc = match &c.org {
        Some(o) => json!({ "login": c.login(), "org": o.slug, "scopes": c.scopes }),
        None => json!({ "login": u.login, "email": u.email, "createdAt": u.created_at }),
    };
    doc["usage"] = req.state.usage(owner).await?;
    if c.org.is_none() {
        let id = u.id;
        doc["notify"] = json!(req.state.db(move |conn| db::account::notify(conn, id)).await?);
    }
    Ok((StatusCode::OK, doc))
}

/// `PATCH /api/v1/me` `{"notify": bool}`: whether the caller is mailed
/// about the packages they own (SPEC section 19).
async fn set_me(req: &Request<'_>) -> ApiResult {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Me {
        notify: bool,
    }
    let Me { notify } = req.json()?;
    let id = req.person()?.user.id;
    req.state.db(move |conn| db::account::set_notify(conn, id, notify)).await?;
    Ok((StatusCode::OK, json!({ "notify": notify })))
}

async fn list_tokens(req: &Request<'_>) -> ApiResult {
    let user = req.person()?.user.id;
    let tokens = req.state.db(move |c| db::list_tokens(c, user)).await?;
    Ok((StatusCode::OK, json!({ "tokens": tokens })))
}

async fn create_token(req: &Request<'_>) -> ApiResult {
    let caller = req.person()?;
    if !caller.has_scope("tokens") {
        return Err(ApiError::forbidden("creating tokens needs a token with the `tokens` scope"));
    }
    let mut spec: db::TokenSpec = req.json()?;
    spec.validate(caller, db::ALL_SCOPES).map_err(ApiError::invalid)?;
    let user = caller.user.id;
    let (meta, key) = req.state.db(move |c| db::create_token(c, user, &spec)).await?;
    let mut doc = serde_json::to_value(meta).unwrap();
    doc["key"] = json!(key);
    Ok((StatusCode::CREATED, doc))
}

async fn revoke_token(req: &Request<'_>, id: &str) -> ApiResult {
    let caller = req.person()?;
    let id: i64 = id.parse().map_err(|_| ApiError::not_found(format!("no token {id}")))?;
    let user = caller.user.id;
    if !req.state.db(move |c| db::revoke_token(c, user, id)).await? {
        return Err(ApiError::not_found(format!("no token {id}")));
    }
    Ok((StatusCode::OK, json!({ "revoked": true })))
}

async fn export(req: &Request<'_>) -> ApiResult {
    let user = req.person()?.user.id;
    Ok((StatusCode::OK, req.state.db(move |c| db::export(c, user)).await?))
}

async fn delete_me(req: &Request<'_>) -> ApiResult {
    let caller = req.person()?;
    #[derive(Deserialize)]
    struct Confirm {
        confirm: String,
    }
    let body: Confirm = req.json()?;
    if body.confirm != caller.user.login {
        return Err(ApiError::invalid(format!(
            "to delete this account, send {{\"confirm\": \"{}\"}}",
            caller.user.login
        )));
    }
    let (purge_after, packages) = req.state.writer.delete_account(req.by()?).await?;
    Ok((StatusCode::OK, json!({ "deleted": true, "purgeAfter": purge_after, "packages": packages })))
}

#[derive(Deserialize)]
struct Register {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    kind: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
}

async fn register(req: &Request<'_>) -> ApiResult {
    let body: Register = req.json()?;
    crate::name::validate(&body.name).map_err(|e| ApiError::invalid(e.to_string()))?;
    super::upstream::guard_new_name(req, &body.name).await?;
    let (name, owner, created) = req.writer().register(req.by()?, &body.name).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, json!({ "name": name, "owner": owner, "created": created })))
}

/// The checks of every publish, before its archive is read: the name and
/// version's syntax, reserved names, the token's scopes. Returns the version.
pub(super) fn may_publish(req: &Request, name: &str, version: &str) -> Result<semver::Version, ApiError> {
    let caller = req.caller()?;
    crate::name::validate(name).map_err(|e| ApiError::invalid(e.to_string()))?;
    crate::name::check_reserved(name, &req.reg().config.reserved_names)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let parsed = crate::name::parse_version(version).map_err(ApiError::invalid)?;
    if !caller.has_scope("publish-new") && !caller.has_scope("publish-update") {
        return Err(ApiError::forbidden("this token has neither `publish-new` nor `publish-update`"));
    }
    Ok(parsed)
}

/// `PUT /api/v1/packages/{name}/{version}`.
async fn publish(req: &Request<'_>, name: &str, version: &str) -> ApiResult {
    let reg = req.reg();
    let parsed = may_publish(req, name, version)?;
    if !req.headers.contains_key(header::CONTENT_LENGTH) {
        return Err(ApiError::new(StatusCode::LENGTH_REQUIRED, "invalid", "Content-Length is required"));
    }
    let limits = reg.config.limits.clone();
    if req.body.len() as u64 > limits.max_compressed {
        return Err(ApiError::too_large(format!(
            "the archive is {} bytes; the limit is {} bytes",
            req.body.len(),
            limits.max_compressed
        )));
    }
    let bytes = req.body.clone();
    if let Some(claimed) = req.headers.get("X-Checksum-Sha256").and_then(|v| v.to_str().ok()) {
        let sha256 = crate::store::digests(&bytes).0;
        if !claimed.eq_ignore_ascii_case(&sha256) {
            return Err(ApiError::invalid(format!(
                "X-Checksum-Sha256 is {claimed} but the body's SHA-256 is {sha256}"
            )));
        }
    }
    let content_type =
        req.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    super::publish::archive(req, name, (version, parsed), bytes, content_type).await
}

async fn yank(req: &Request<'_>, name: &str, version: &str, yanked: bool) -> ApiResult {
    let yanked = req.writer().yank(req.by()?, name, version, yanked).await?;
    Ok((StatusCode::OK, json!({ "yanked": yanked })))
}

/// `PATCH /api/v1/packages/{name}`: `{"deprecated": "message" | null,
/// "replacement": "name"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Deprecation {
    /// Required (a message, or null), so a typo'd body never undoes a
    /// deprecation: `Some(Null)` when sent as null, `None` when absent.
    #[serde(default, deserialize_with = "present")]
    deprecated: Option<serde_json::Value>,
    #[serde(default)]
    replacement: Option<String>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// The meta file a deprecation body asks for (`None`: undo), checked.
fn deprecation_meta(name: &str, body: Deprecation) -> Result<Option<Meta>, ApiError> {
    let message = match body.deprecated {
        Some(serde_json::Value::String(m)) => Some(m.trim().to_string()),
        Some(serde_json::Value::Null) => None,
        _ => return Err(ApiError::invalid("the body needs `deprecated`: a message, or null to undo")),
    };
    let Some(message) = message else {
        if body.replacement.is_some() {
            return Err(ApiError::invalid("`replacement` goes with a deprecation, not with its undo"));
        }
        return Ok(None);
    };
    if message.is_empty() || message.chars().count() > meta::MAX_MESSAGE {
        return Err(ApiError::invalid(format!(
            "the deprecation message must have 1 to {} characters",
            meta::MAX_MESSAGE
        )));
    }
    if let Some(r) = &body.replacement {
        crate::name::validate(r).map_err(|e| ApiError::invalid(format!("replacement: {e}")))?;
        if crate::name::canonical(r) == crate::name::canonical(name) {
            return Err(ApiError::invalid("a package cannot replace itself"));
        }
    }
    Ok(Some(Meta { deprecated: Some(message), replacement: body.replacement, ..Meta::default() }))
}

async fn deprecate(req: &Request<'_>, name: &str) -> ApiResult {
    let meta = deprecation_meta(name, req.json()?)?;
    let (name, meta) = req.writer().deprecate(req.by()?, name, meta).await?;
    Ok((
        StatusCode::OK,
        json!({ "name": name, "deprecated": meta.deprecated, "replacement": meta.replacement }),
    ))
}

async fn owners(req: &Request<'_>, name: &str) -> ApiResult {
    req.caller()?;
    let (n, space) = (name.to_string(), req.space());
    let (spelled, owners) =
        req.state.db(move |c| Ok((db::find_package(c, &space, &n)?, db::owners(c, &space, &n)?))).await?;
    if spelled.is_none() {
        return Err(ApiError::not_found(format!("no package `{name}`")));
    }
    Ok((StatusCode::OK, json!({ "users": owners })))
}

async fn change_owners(req: &Request<'_>, name: &str, add: bool) -> ApiResult {
    let (_, owners) = super::owners::change(req, name, add).await?;
    Ok((StatusCode::OK, json!({ "ok": true, "users": owners })))
}
