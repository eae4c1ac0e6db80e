//! Identity's endpoints (SPEC section 17): sign-in through an OpenID
//! provider (two browser redirects, outside the JSON API), trusted
//! publishing's token exchange and revocation, and the packages' trust
//! configurations.

use bytes::Bytes;
use http::{header, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use warp::{Filter, Rejection};

use super::proxy::Peer;
use super::{ApiError, ApiResult, Request, State};
use crate::config::Oidc;
use crate::db::identity::{self as rows, NoAccount, PendingLogin, TrustedPublisher};
use crate::db::{self, AuditEntry};
use crate::identity::{oidc, trusted};

/// An audit row of a change made here, by whom and from where.
fn audit(
    conn: &db::Conn,
    user_id: Option<i64>,
    token_id: Option<i64>,
    action: &str,
    target: &str,
    addr: &str,
    outcome: &str,
) -> anyhow::Result<()> {
    let entry = AuditEntry { user_id, token_id, action, target, addr: Some(addr), outcome };
    db::audit(conn, &entry).map(|_| ())
}

/// How long a trusted-publishing token lives.
const TOKEN_MINUTES: i64 = 30;

/// `GET /api/v1/auth/oidc/{name}/start` and `…/callback`.
pub fn sign_in(state: Arc<State>) -> impl Filter<Extract = (Response<Bytes>,), Error = Rejection> + Clone {
    let with_state = warp::any().map(move || state.clone());
    warp::get()
        .and(warp::path!("api" / "v1" / "auth" / "oidc" / String / String))
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::ext::get::<Peer>())
        .and(warp::header::headers_cloned())
        .and(with_state)
        .and_then(|name: String, step: String, q, peer: Peer, headers, state: Arc<State>| async move {
            let ip = state.proxies.client(peer.0, &headers);
            match step.as_str() {
                "start" => Ok(start(&state, &name, &q, ip).await),
                "callback" => Ok(callback(&state, &name, &q, ip).await),
                _ => Err(warp::reject::not_found()),
            }
        })
}

fn provider<'a>(state: &'a State, name: &str) -> Result<&'a Oidc, ApiError> {
    let found = state.reg.config.oidc.iter().find(|p| p.name == name);
    found.ok_or_else(|| ApiError::not_found(format!("no sign-in provider `{name}`")))
}

fn redirect_uri(state: &State, name: &str) -> String {
    format!("{}/api/v1/auth/oidc/{name}/callback", state.reg.config.api_url())
}

fn redirect(to: &str, cookie: Option<http::HeaderValue>) -> Response<Bytes> {
    let mut b = Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, to)
        .header(header::CACHE_CONTROL, "no-store");
    if let Some(c) = cookie {
        b = b.header(header::SET_COOKIE, c);
    }
    b.body(Bytes::new()).unwrap()
}

/// Back to the sign-in page, which shows why.
fn refused(why: &str) -> Response<Bytes> {
    let mut url = reqwest::Url::parse("http://registry/login").expect("a URL");
    url.query_pairs_mut().append_pair("error", why);
    redirect(&format!("/login?{}", url.query().unwrap_or_default()), None)
}

async fn start(state: &State, name: &str, q: &HashMap<String, String>, ip: IpAddr) -> Response<Bytes> {
    let decision = state.limits.anonymous(ip);
    if !decision.allowed {
        let e = ApiError::too_many_requests();
        return super::render_error(&e, Some(decision), super::Shape::Api);
    }
    let p = match provider(state, name) {
        Ok(p) => p.clone(),
        Err(e) => return super::render_error(&e, None, super::Shape::Api),
    };
    let started = match oidc::start(&state.issuers, &p, &redirect_uri(state, name)).await {
        Ok(s) => s,
        Err(why) => return refused(&format!("the provider {name} is unreachable: {why}")),
    };
    // Only a path of this site: never an open redirect.
    let next = q.get("next").filter(|n| n.starts_with('/') && !n.starts_with("//")).cloned();
    let pending = PendingLogin {
        provider: p.name.clone(),
        nonce: started.nonce,
        verifier: started.verifier,
        next: next.unwrap_or_else(|| "/dashboard".into()),
    };
    let st = started.state.clone();
    match state.db(move |c| rows::start_login(c, &st, &pending)).await {
        Ok(()) => redirect(&started.url, None),
        Err(e) => super::render_error(&e, None, super::Shape::Api),
    }
}

async fn callback(state: &State, name: &str, q: &HashMap<String, String>, ip: IpAddr) -> Response<Bytes> {
    match sign_in_with(state, name, q, ip).await {
        Ok(resp) => resp,
        Err(why) => refused(&why),
    }
}

/// The callback's work: `Err` is what the sign-in page says.
async fn sign_in_with(
    state: &State,
    name: &str,
    q: &HashMap<String, String>,
    ip: IpAddr,
) -> Result<Response<Bytes>, String> {
    if let Some(e) = q.get("error") {
        let detail = q.get("error_description").map_or(String::new(), |d| format!(": {d}"));
        return Err(format!("the provider refused the sign-in ({e}{detail})"));
    }
    let (Some(code), Some(st)) = (q.get("code").cloned(), q.get("state").cloned()) else {
        return Err("the provider's answer lacks code or state".into());
    };
    let p = provider(state, name).map_err(|e| e.message)?.clone();
    let pending = state.db(move |c| rows::take_login(c, &st)).await.map_err(|e| e.message)?;
    let pending = pending
        .filter(|l| l.provider == p.name)
        .ok_or("this sign-in expired or was already used; start again")?;
    let who = oidc::finish(
        &state.issuers,
        &p,
        &redirect_uri(state, name),
        &code,
        &pending.verifier,
        &pending.nonce,
    )
    .await
    .map_err(|r| r.0)?;
    let granted: Vec<(String, db::org::Role)> = p
        .group_roles()
        .filter(|(group, _, _)| who.groups.iter().any(|g| g == group))
        .filter_map(|(_, org, role)| Some((org.to_string(), db::org::Role::parse(role)?)))
        .collect();
    let (issuer, provider_name, create, addr) =
        (p.issuer.clone(), p.name.clone(), p.create_accounts, ip.to_string());
    let opened = state
        .db(move |c| {
            let user = match rows::account_of(c, &issuer, &who.sub, who.login.as_deref(), create)? {
                Ok(user) => user,
                Err(no) => return Ok(Err(no)),
            };
            let changes = rows::apply_group_roles(c, &provider_name, user.id, &granted)?;
            let outcome = match changes.is_empty() {
                true => "ok".to_string(),
                false => format!("ok; {}", changes.join(", ")),
            };
            let target = format!("oidc:{provider_name}");
            audit(c, Some(user.id), None, "sign-in", &target, &addr, &outcome)?;
            Ok(Ok(db::session::open(c, user.id, None)?))
        })
        .await
        .map_err(|e| e.message)?;
    let secret = opened.map_err(|no| match no {
        NoAccount::Taken(login) => format!(
            "the login `{login}` is an account of this registry already; sign in with its password (accounts are never merged)"
        ),
        NoAccount::NotCreated => format!("no account here is bound to this {name} identity, and {name} may not create one"),
        NoAccount::BadLogin(why) => format!("the provider's login cannot name an account: {why}"),
        NoAccount::Disabled => "this account is disabled".into(),
    })?;
    let cookie = super::auth::set_cookie(&state.reg.config.public_url(), Some(&secret));
    Ok(redirect(&pending.next, Some(cookie)))
}

#[derive(Deserialize)]
struct Exchange {
    jwt: String,
}

/// `POST /api/v1/trusted_publishing/tokens`: a CI identity token for a
/// 30-minute `publish-update` token on the packages it is trusted for.
pub async fn exchange(req: &Request<'_>) -> ApiResult {
    let Exchange { jwt } = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::invalid(format!(r#"send {{"jwt":"…"}}: {e}"#)))?;
    let config = &req.state.reg.config;
    let issuer = crate::identity::claimed_issuer(&jwt)
        .ok_or_else(|| ApiError::unauthorized("the jwt is not a JWT with an iss"))?;
    let trusted_issuer = config
        .trusted_publishing
        .iter()
        .find(|t| t.issuer.trim_end_matches('/') == issuer.trim_end_matches('/'));
    let Some(trusted_issuer) = trusted_issuer else {
        return Err(ApiError::unauthorized(format!(
            "the issuer {issuer} is not trusted for publishing here"
        )));
    };
    // By default the public URL, also as crates.io's action asks for it:
    // without its scheme (`cairn.example`).
    let audiences = match &trusted_issuer.audience {
        Some(a) => vec![a.clone()],
        None => {
            let url = config.public_url();
            let bare = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest).to_string();
            vec![url, bare]
        }
    };
    let claims =
        req.state.issuers.verify(&jwt, &issuer, &audiences).await.map_err(|r| ApiError::unauthorized(r.0))?;
    let run = trusted::run_of(&issuer, &claims).map_err(|r| ApiError::unauthorized(r.0))?;
    let expires = chrono::Utc::now() + chrono::Duration::minutes(TOKEN_MINUTES);
    let expires_at = crate::index::line::pubtime(expires);
    let (addr, at) = (req.ip.to_string(), expires_at.clone());
    let issued = req
        .state
        .db(move |conn| {
            // One transaction: one durable write for the jti, the token and the audit row.
            let txn = conn.transaction()?;
            let c: &db::Conn = &txn;
            if !rows::use_jti(c, &run.provenance.issuer, &run.jti, run.exp)? {
                return Ok(Err(ApiError::unauthorized(
                    "this identity token was used already (its jti is accepted once)",
                )));
            }
            let trust = rows::trust_for(c, &run.provenance.issuer, &run.provenance.repository)?;
            let admitted: Vec<_> =
                trust.iter().filter(|t| trusted::admits(&t.config, &run.provenance)).collect();
            let Some(first) = admitted.first() else {
                return Ok(Err(ApiError::forbidden(format!(
                    "no package trusts {} {} ({}) for publishing",
                    run.provenance.repository, run.provenance.workflow, run.provenance.issuer
                ))));
            };
            // Each package once (several configurations may admit the run).
            let packages: Vec<String> = admitted
                .iter()
                .map(|t| t.package.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let (id, token) =
                rows::issue_trusted_token(c, first.created_by_id, &packages, &at, &run.provenance)?;
            let target = format!("{} {}", run.provenance.repository, run.provenance.workflow);
            let outcome = format!("ok; token {id} for {}", packages.join(", "));
            audit(
                c,
                Some(first.created_by_id),
                Some(id),
                "trusted-publishing token",
                &target,
                &addr,
                &outcome,
            )?;
            txn.commit()?;
            Ok(Ok(token))
        })
        .await??;
    Ok((StatusCode::OK, json!({ "token": issued, "expiresAt": expires_at })))
}

/// `DELETE /api/v1/trusted_publishing/tokens`: revokes the token it is sent with.
pub async fn revoke(req: &Request<'_>) -> ApiResult {
    let caller = req.caller()?;
    let (Some(id), Some(_)) = (caller.token_id, &caller.provenance) else {
        return Err(ApiError::forbidden("only a trusted-publishing token is revoked here"));
    };
    match req.state.db(move |c| rows::revoke_trusted_token(c, id)).await? {
        true => Ok((StatusCode::NO_CONTENT, json!(null))),
        false => Err(ApiError::unauthorized("this token is revoked already")),
    }
}

/// The caller may manage the package's trust configurations: a person
/// (never a trusted-publishing token) who owns the public package.
async fn owner_of(req: &Request<'_>, name: &str) -> Result<(String, i64), ApiError> {
    let caller = req.caller()?.clone();
    if req.org.is_some() {
        return Err(ApiError::not_found("trusted publishing is the public registry's"));
    }
    if caller.provenance.is_some() {
        return Err(ApiError::forbidden("a trusted-publishing token cannot change trust configurations"));
    }
    let (reg, n) = (req.state.reg.clone(), name.to_string());
    let found = req
        .state
        .db(move |c| {
            let Some(spelled) = db::find_package(c, &reg.space, &n)? else { return Ok(None) };
            let owns =
                crate::publish::may_act(c, &reg, &caller, &spelled).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(Some((spelled, owns)))
        })
        .await?;
    match found {
        None => Err(ApiError::not_found(format!("no package `{name}`"))),
        Some((_, false)) => Err(ApiError::forbidden(format!("you are not an owner of `{name}`"))),
        Some((spelled, true)) => Ok((spelled, req.caller()?.user.id)),
    }
}

/// `GET /api/v1/packages/{name}/trusted-publishers`.
pub async fn list(req: &Request<'_>, name: &str) -> ApiResult {
    let (spelled, _) = owner_of(req, name).await?;
    let space = req.space();
    let list = req.state.db(move |c| rows::trusted_publishers(c, &space, &spelled)).await?;
    Ok((StatusCode::OK, json!({ "trustedPublishers": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTrust {
    issuer: String,
    repository: String,
    workflow: String,
    #[serde(default)]
    environment: Option<String>,
}

/// `POST /api/v1/packages/{name}/trusted-publishers`.
pub async fn add(req: &Request<'_>, name: &str) -> ApiResult {
    let (spelled, user_id) = owner_of(req, name).await?;
    let t: NewTrust = serde_json::from_slice(&req.body).map_err(|e| {
        ApiError::invalid(format!(r#"send {{"issuer","repository","workflow","environment"}}: {e}"#))
    })?;
    let config = &req.state.reg.config;
    if !config
        .trusted_publishing
        .iter()
        .any(|i| i.issuer.trim_end_matches('/') == t.issuer.trim_end_matches('/'))
    {
        return Err(ApiError::invalid(format!(
            "the issuer {} is not in this registry's [[trusted_publishing]]",
            t.issuer
        )));
    }
    let workflow_ok = !t.workflow.is_empty() && !t.workflow.contains(['@', '\n']);
    let repo_ok = t.repository.split('/').filter(|s| !s.is_empty()).count() >= 2
        && !t.repository.contains(char::is_whitespace);
    if !workflow_ok || !repo_ok {
        return Err(ApiError::invalid("repository is `owner/repo` (GitLab: the project's path) and workflow the file name (`release.yml`)"));
    }
    let mut config = TrustedPublisher {
        id: 0,
        issuer: t.issuer,
        repository: t.repository,
        workflow: t.workflow,
        environment: t.environment.filter(|e| !e.is_empty()),
        created_by: req.caller()?.login().into_owned(),
        created_at: db::now(),
    };
    let (space, addr, token_id) = (req.space(), req.ip.to_string(), req.caller()?.token_id);
    let saved = config.clone();
    config.id = req
        .state
        .db(move |c| {
            let txn = c.transaction()?;
            let id = rows::add_trusted_publisher(&txn, &space, &spelled, &saved, user_id)?;
            let target = format!("{spelled} trusted-publisher {id}");
            let outcome = format!("ok; {} {} {}", saved.issuer, saved.repository, saved.workflow);
            audit(&txn, Some(user_id), token_id, "trusted-publisher add", &target, &addr, &outcome)?;
            txn.commit()?;
            Ok(id)
        })
        .await?;
    Ok((StatusCode::CREATED, json!(config)))
}

/// `DELETE /api/v1/packages/{name}/trusted-publishers/{id}`.
pub async fn remove(req: &Request<'_>, name: &str, id: &str) -> ApiResult {
    let (spelled, user_id) = owner_of(req, name).await?;
    let id: i64 = id.parse().map_err(|_| ApiError::not_found(format!("no trusted publisher {id}")))?;
    let (space, addr, token_id) = (req.space(), req.ip.to_string(), req.caller()?.token_id);
    let removed = req
        .state
        .db(move |c| {
            let txn = c.transaction()?;
            let removed = rows::remove_trusted_publisher(&txn, &space, &spelled, id)?;
            if removed {
                let target = format!("{spelled} trusted-publisher {id}");
                audit(&txn, Some(user_id), token_id, "trusted-publisher remove", &target, &addr, "ok")?;
            }
            txn.commit()?;
            Ok(removed)
        })
        .await?;
    match removed {
        true => Ok((StatusCode::OK, json!({ "ok": true }))),
        false => Err(ApiError::not_found(format!("no trusted publisher {id} for `{name}`"))),
    }
}
