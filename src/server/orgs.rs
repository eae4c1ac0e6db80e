//! Organisations over HTTP (SPEC section 15): creation, settings, members
//! and organisation tokens. These are account changes, not index writes:
//! each is one database transaction with its audit row, outside the writer.
//!
//! Who may do what: any member reads the organisation and its members;
//! admins manage members and tokens; owners change the settings, delete
//! the organisation, and make or unmake owners. Writes need a user's token
//! with the `tokens` scope (a password session has it): managing an
//! organisation is account management. Anyone outside a private
//! organisation gets 404, so its name is not disclosed.

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::org_access::{audit, manager, may_grant, read_org, with_org};
use super::{ApiError, ApiResult, Request};
use crate::db::org::{self, Org, Refusal, Role};
use crate::db::{self, Caller, Conn};

pub async fn route(req: &Request<'_>, segs: &[&str]) -> ApiResult {
    match (&req.method, segs) {
        (&Method::POST, []) => create(req).await,
        (&Method::GET, [slug]) => info(req, slug).await,
        (&Method::PATCH, [slug]) => update(req, slug).await,
        (&Method::DELETE, [slug]) => delete(req, slug).await,
        (&Method::GET, [slug, "members"]) => members(req, slug).await,
        (&Method::POST, [slug, "members"]) => invite(req, slug).await,
        (&Method::PATCH, [slug, "members", login]) => set_role(req, slug, login).await,
        (&Method::DELETE, [slug, "members", login]) => remove(req, slug, login).await,
        (&Method::GET, [slug, "tokens"]) => tokens(req, slug).await,
        (&Method::POST, [slug, "tokens"]) => create_token(req, slug).await,
        (&Method::DELETE, [slug, "tokens", id]) => revoke_token(req, slug, id).await,
        (m, _) => Err(ApiError::not_found(format!("no API endpoint {m} /api/v1/orgs/{}", segs.join("/")))),
    }
}

/// After a change committed: a private organisation's registry has its
/// `config.json`, any other none. A failure is logged, not answered: the
/// static job writes them all again.
async fn org_config(req: &Request<'_>, org: &Org) {
    let (reg, slug, private) = (req.state.reg.clone(), org.slug.clone(), org.private);
    let written = tokio::task::spawn_blocking(move || reg.write_org_config(&slug, private)).await;
    if let Ok(Err(e)) | Err(e) = written.map_err(anyhow::Error::from) {
        tracing::warn!(error = %format!("{e:#}"), org = %org.slug, "writing the organisation's config.json failed");
    }
}

fn describe(conn: &Conn, org: &Org) -> anyhow::Result<serde_json::Value> {
    Ok(json!({
        "slug": org.slug,
        "name": org.name,
        "visibility": org.visibility(),
        "createdAt": org.created_at,
        "members": members_of(conn, org)?,
        "packages": org::packages(conn, org.id)?,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    slug: String,
    name: Option<String>,
    visibility: Option<String>,
}

fn check_name(name: &str) -> Result<(), ApiError> {
    match name.trim().is_empty() || name.chars().count() > 100 {
        true => Err(ApiError::invalid("`name` must be 1 to 100 characters")),
        false => Ok(()),
    }
}

fn visibility(v: Option<&str>) -> Result<Option<bool>, ApiError> {
    v.map(|v| {
        org::parse_visibility(v)
            .ok_or_else(|| ApiError::invalid(format!("`visibility` is `public` or `private`, not `{v}`")))
    })
    .transpose()
}

async fn create(req: &Request<'_>) -> ApiResult {
    let caller = manager(req)?.clone();
    let NewOrg { slug, name, visibility: v } = req.json()?;
    org::check_slug(&slug).map_err(ApiError::invalid)?;
    let name = name.unwrap_or_else(|| slug.clone());
    check_name(&name)?;
    let private = visibility(v.as_deref())?.unwrap_or(false);
    let addr = req.ip.to_string();
    let created = req
        .state
        .db(move |conn| {
            let txn = conn.transaction_exclusive()?;
            let Some(org) = org::create(&txn, &slug, name.trim(), private, caller.user.id)? else {
                return Ok(Err(ApiError::conflict(format!("the organisation `{slug}` exists already"))));
            };
            audit(&txn, &caller, &addr, "org-create", &format!("org:{slug} {}", org.visibility()))?;
            let doc = describe(&txn, &org)?;
            txn.commit()?;
            Ok(Ok((doc, org)))
        })
        .await??;
    let (doc, org) = created;
    org_config(req, &org).await;
    Ok((StatusCode::CREATED, with_registry(req, doc)))
}

/// A private organisation's description names its registry's URL.
fn with_registry(req: &Request<'_>, mut doc: serde_json::Value) -> serde_json::Value {
    if doc["visibility"] == "private" {
        let slug = doc["slug"].as_str().unwrap_or_default().to_string();
        doc["registry"] = json!(format!("{}/orgs/{slug}", req.state.reg.config.public_url()));
    }
    doc
}

async fn info(req: &Request<'_>, slug: &str) -> ApiResult {
    let caller = req.person()?.clone();
    let (mut doc, owner) = read_org(req, &caller, slug, Role::Member, |conn, org| {
        Ok((describe(conn, org)?, db::quota::Owner::Org { id: org.id, slug: org.slug.clone() }))
    })
    .await?;
    doc["usage"] = req.state.usage(owner).await?;
    Ok((StatusCode::OK, with_registry(req, doc)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    name: Option<String>,
    visibility: Option<String>,
}

/// Name and visibility. Visibility is fixed once the organisation owns a
/// package: a private organisation's packages live in a registry of their
/// own, and a public one's history is public for good.
async fn update(req: &Request<'_>, slug: &str) -> ApiResult {
    let caller = manager(req)?.clone();
    let Settings { name, visibility: v } = req.json()?;
    if let Some(n) = &name {
        check_name(n)?;
    }
    let private = visibility(v.as_deref())?;
    let (who, addr) = (caller.clone(), req.ip.to_string());
    let doc = with_org(req, &caller, slug, Role::Owner, move |conn, org, _| {
        let name = name.as_deref().map(str::trim).unwrap_or(&org.name).to_string();
        let private = private.unwrap_or(org.private);
        if private != org.private && !org::packages(conn, org.id)?.is_empty() {
            return Ok(Err(ApiError::conflict(format!(
                "org:{} owns packages, so its visibility can no longer change",
                org.slug
            ))));
        }
        org::update(conn, org.id, &name, private)?;
        let changed = Org { name, private, ..org.clone() };
        let target = format!("org:{} {} name={}", org.slug, changed.visibility(), changed.name);
        audit(conn, &who, &addr, "org-update", &target)?;
        Ok(Ok((describe(conn, &changed)?, changed)))
    })
    .await?;
    let (doc, org) = doc;
    org_config(req, &org).await;
    Ok((StatusCode::OK, with_registry(req, doc)))
}

async fn delete(req: &Request<'_>, slug: &str) -> ApiResult {
    let caller = manager(req)?.clone();
    let (who, addr) = (caller.clone(), req.ip.to_string());
    let gone = with_org(req, &caller, slug, Role::Owner, move |conn, org, _| {
        let owned = org::packages(conn, org.id)?;
        if !owned.is_empty() {
            return Ok(Err(ApiError::conflict(format!(
                "org:{} owns {}: remove it as their owner first",
                org.slug,
                owned.join(", ")
            ))));
        }
        crate::db::invitation::remove_all(conn, org.id)?;
        org::delete(conn, org.id)?;
        audit(conn, &who, &addr, "org-delete", &format!("org:{}", org.slug))?;
        Ok(Ok(Org { private: false, ..org.clone() }))
    })
    .await?;
    org_config(req, &gone).await;
    Ok((StatusCode::OK, json!({ "deleted": true })))
}

async fn members(req: &Request<'_>, slug: &str) -> ApiResult {
    let caller = req.person()?.clone();
    let members = read_org(req, &caller, slug, Role::Member, members_of).await?;
    Ok((StatusCode::OK, json!({ "members": members })))
}

/// The members, then the invitations still pending (`"pending": true`).
fn members_of(conn: &Conn, org: &Org) -> anyhow::Result<serde_json::Value> {
    let mut all = serde_json::to_value(org::members(conn, org.id)?)?;
    let pending = crate::db::invitation::pending(conn, org.id)?;
    if let Some(list) = all.as_array_mut() {
        list.extend(pending.into_iter().map(|p| serde_json::to_value(p).unwrap_or_default()));
    }
    Ok(all)
}

fn role_of(text: Option<&str>) -> Result<Role, ApiError> {
    let text = text.unwrap_or("member");
    Role::parse(text)
        .ok_or_else(|| ApiError::invalid(format!("`role` is member, admin or owner, not `{text}`")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Invite {
    login: Option<String>,
    email: Option<String>,
    role: Option<String>,
}

/// By `login` an invitation takes effect at once: the user is a member,
/// and the message that tells them goes to the outbox. By `email` it is
/// a pending invitation (`server/invitations.rs`).
async fn invite(req: &Request<'_>, slug: &str) -> ApiResult {
    let caller = manager(req)?.clone();
    let Invite { login, email, role } = req.json()?;
    let role = role_of(role.as_deref())?;
    let login = match (login, email) {
        (Some(login), None) => login,
        (None, Some(email)) => return super::invitations::invite(req, &caller, slug, &email, role).await,
        _ => return Err(ApiError::invalid("invite with one of `login` (at once) or `email` (pending)")),
    };
    let (who, addr, data) = (caller.clone(), req.ip.to_string(), req.state.reg.data.clone());
    let added = with_org(req, &caller, slug, Role::Admin, move |conn, org, mine| {
        if let Err(e) = may_grant(mine, None, Some(role)) {
            return Ok(Err(e));
        }
        let Some(user) = db::find_user(conn, &login)? else {
            return Ok(Err(ApiError::not_found(format!("no user `{login}`"))));
        };
        if !org::add_member(conn, org.id, user.id, role)? {
            return Ok(Err(ApiError::conflict(format!(
                "{} is a member of org:{} already",
                user.login, org.slug
            ))));
        }
        let target = format!("org:{} {} {}", org.slug, user.login, role.as_str());
        audit(conn, &who, &addr, "org-member-add", &target)?;
        let subject = format!("You are now a member of {} (org:{}) on cairn", org.name, org.slug);
        let body = format!(
            "{} added you to org:{} as {}. Leave with `cairn org remove {} {}`.",
            who.user.login,
            org.slug,
            role.as_str(),
            org.slug,
            user.login
        );
        Ok(Ok((user, role, subject, body)))
    })
    .await?;
    let (user, role, subject, body) = added;
    // After the commit: the message tells of a membership that exists.
    if let Err(e) =
        crate::mail::outbox::send(&data, Some(&user.login), user.email.as_deref(), &subject, &body)
    {
        tracing::warn!(error = %format!("{e:#}"), login = %user.login, "the invitation's message was not written");
    }
    let doc = json!({ "login": user.login, "role": role.as_str() });
    Ok((StatusCode::CREATED, doc))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRole {
    role: String,
}

async fn set_role(req: &Request<'_>, slug: &str, login: &str) -> ApiResult {
    let caller = manager(req)?.clone();
    let NewRole { role } = req.json()?;
    let role = role_of(Some(&role))?;
    change_member(req, &caller, slug, login, Some(role)).await?;
    Ok((StatusCode::OK, json!({ "login": login, "role": role.as_str() })))
}

/// Removes a member; any member may leave. An address (a login has no
/// `@`) withdraws its pending invitation.
async fn remove(req: &Request<'_>, slug: &str, login: &str) -> ApiResult {
    let caller = manager(req)?.clone();
    if login.contains('@') {
        return super::invitations::withdraw(req, &caller, slug, login).await;
    }
    change_member(req, &caller, slug, login, None).await?;
    Ok((StatusCode::OK, json!({ "login": login, "removed": true })))
}

/// Sets (`Some`) or ends (`None`) a membership, with the role rules and
/// the last-owner rule.
async fn change_member(
    req: &Request<'_>,
    caller: &Caller,
    slug: &str,
    login: &str,
    role: Option<Role>,
) -> Result<(), ApiError> {
    let leaving = role.is_none() && caller.user.login.eq_ignore_ascii_case(login);
    let need = if leaving { Role::Member } else { Role::Admin };
    let (who, addr, login) = (caller.clone(), req.ip.to_string(), login.to_string());
    with_org(req, caller, slug, need, move |conn, org, mine| {
        let not_member = || ApiError::not_found(format!("{login} is not a member of org:{}", org.slug));
        let Some(user) = db::find_user(conn, &login)? else {
            return Ok(Err(not_member()));
        };
        let before = org::role(conn, org.id, user.id)?;
        if !leaving {
            if let Err(e) = may_grant(mine, before, role) {
                return Ok(Err(e));
            }
        }
        match org::set_role(conn, org.id, user.id, role)? {
            Ok(()) => {}
            Err(Refusal::NotAMember) => return Ok(Err(not_member())),
            Err(Refusal::LastOwner) => {
                return Ok(Err(ApiError::conflict(format!(
                    "{} is the last owner of org:{}: make another member an owner first",
                    user.login, org.slug
                ))))
            }
        }
        let (action, target) = match role {
            Some(r) => ("org-member-role", format!("org:{} {} {}", org.slug, user.login, r.as_str())),
            None => ("org-member-remove", format!("org:{} {}", org.slug, user.login)),
        };
        audit(conn, &who, &addr, action, &target)?;
        Ok(Ok(()))
    })
    .await
}

async fn tokens(req: &Request<'_>, slug: &str) -> ApiResult {
    let caller = manager(req)?.clone();
    let tokens = read_org(req, &caller, slug, Role::Admin, |conn, org| org::tokens(conn, org.id)).await?;
    Ok((StatusCode::OK, json!({ "tokens": tokens })))
}

async fn create_token(req: &Request<'_>, slug: &str) -> ApiResult {
    let caller = manager(req)?.clone();
    let mut spec: db::TokenSpec = req.json()?;
    spec.validate(&caller, org::TOKEN_SCOPES).map_err(ApiError::invalid)?;
    let (who, addr) = (caller.clone(), req.ip.to_string());
    let doc = with_org(req, &caller, slug, Role::Admin, move |conn, org, _| {
        let (meta, key) = org::create_token(conn, org.id, who.user.id, &spec)?;
        let target = format!("org:{} token {} {}", org.slug, meta.id, meta.scopes.join(","));
        audit(conn, &who, &addr, "org-token-create", &target)?;
        let mut doc = serde_json::to_value(meta)?;
        doc["key"] = json!(key);
        Ok(Ok(doc))
    })
    .await?;
    Ok((StatusCode::CREATED, doc))
}

async fn revoke_token(req: &Request<'_>, slug: &str, id: &str) -> ApiResult {
    let caller = manager(req)?.clone();
    let id: i64 = id.parse().map_err(|_| ApiError::not_found(format!("no token {id}")))?;
    let (who, addr) = (caller.clone(), req.ip.to_string());
    with_org(req, &caller, slug, Role::Admin, move |conn, org, _| {
        if !org::revoke_token(conn, org.id, id)? {
            return Ok(Err(ApiError::not_found(format!("org:{} has no token {id}", org.slug))));
        }
        audit(conn, &who, &addr, "org-token-revoke", &format!("org:{} token {id}", org.slug))?;
        Ok(Ok(()))
    })
    .await?;
    Ok((StatusCode::OK, json!({ "revoked": true })))
}
