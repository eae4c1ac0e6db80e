//! Invitations by email over HTTP (SPEC section 19): an admin's
//! `POST /api/v1/orgs/{org}/members` with `{"email","role"}` makes a
//! pending invitation and mails its link (`/invitations/{token}`, a page of
//! the site); the invitee, signed in with an account of that address,
//! accepts or declines it with `POST /api/v1/invitations/{token}/accept`
//! or `…/decline`. `GET /api/v1/invitations/{token}` is what the page shows.
//! The token is the only secret: it reaches the address alone, and the
//! account's address must match as well.

use http::{Method, StatusCode};
use serde_json::json;

use super::{ApiError, ApiResult, Request};
use crate::db::invitation::{self, Invitation};
use crate::db::org::{self, Org, Role};
use crate::db::{Caller, Conn};

pub async fn route(req: &Request<'_>, segs: &[&str]) -> ApiResult {
    match (&req.method, segs) {
        (&Method::GET, [token]) => show(req, token).await,
        (&Method::POST, [token, "accept"]) => answer(req, token, true).await,
        (&Method::POST, [token, "decline"]) => answer(req, token, false).await,
        (m, _) => Err(ApiError::not_found(format!("no API endpoint {m} /api/v1/invitations/…"))),
    }
}

/// The link's invitation, if it is still good.
fn live(conn: &Conn, token: &str) -> anyhow::Result<Result<Invitation, ApiError>> {
    Ok(match invitation::find(conn, token)? {
        None => Err(ApiError::not_found("no such invitation: it was answered, withdrawn or replaced")),
        Some(i) if i.expired() => Err(ApiError::new(
            StatusCode::GONE,
            "expired",
            format!("this invitation to org:{} expired at {}; ask for a new one", i.org_slug, i.expires_at),
        )),
        Some(i) => Ok(i),
    })
}

async fn show(req: &Request<'_>, token: &str) -> ApiResult {
    let token = token.to_string();
    let found = req.state.db(move |conn| live(conn, &token)).await??;
    Ok((StatusCode::OK, found.doc()))
}

/// Accepts (the membership, with the invited role) or declines; either
/// ends the invitation. Only an account whose address is the invited one.
async fn answer(req: &Request<'_>, token: &str, accept: bool) -> ApiResult {
    let caller = super::org_access::manager(req)?.clone();
    let (token, addr) = (token.to_string(), req.ip.to_string());
    let done = req
        .state
        .db(move |conn| {
            let txn = conn.transaction_exclusive()?;
            let i = match live(&txn, &token)? {
                Ok(i) => i,
                Err(e) => return Ok(Err(e)),
            };
            let mine = caller.user.email.as_deref().map(invitation::normalize_email);
            if mine.as_deref() != Some(i.email.as_str()) {
                return Ok(Err(ApiError::forbidden(format!(
                    "this invitation is for {}; you are signed in as {}, whose address is {}",
                    i.email,
                    caller.user.login,
                    caller.user.email.as_deref().unwrap_or("not set")
                ))));
            }
            invitation::remove(&txn, i.id)?;
            let target = format!("org:{} {} {}", i.org_slug, caller.user.login, i.role.as_str());
            let action = if !accept {
                "org-invite-decline"
            } else if org::add_member(&txn, i.org_id, caller.user.id, i.role)? {
                "org-invite-accept"
            } else {
                txn.commit()?;
                let err = format!("{} is a member of org:{} already", caller.user.login, i.org_slug);
                return Ok(Err(ApiError::conflict(err)));
            };
            super::org_access::audit(&txn, &caller, &addr, action, &target)?;
            txn.commit()?;
            Ok(Ok((i, caller.user.login.clone())))
        })
        .await??;
    let (i, login) = done;
    let doc = match accept {
        true => json!({ "org": i.org_slug, "login": login, "role": i.role.as_str() }),
        false => json!({ "org": i.org_slug, "declined": true }),
    };
    Ok((StatusCode::OK, doc))
}

/// `POST /api/v1/orgs/{org}/members` with `{"email"}`: the pending
/// invitation (an earlier one of the address is replaced), and its mail.
pub async fn invite(req: &Request<'_>, caller: &Caller, slug: &str, email: &str, role: Role) -> ApiResult {
    invitation::check_email(email.trim()).map_err(ApiError::invalid)?;
    let email = invitation::normalize_email(email);
    let (who, addr) = (caller.clone(), req.ip.to_string());
    let made = super::org_access::with_org(req, caller, slug, Role::Admin, move |conn, org, mine| {
        if let Err(e) = super::org_access::may_grant(mine, None, Some(role)) {
            return Ok(Err(e));
        }
        if let Some(member) = org::member_with_email(conn, org.id, &email)? {
            return Ok(Err(ApiError::conflict(format!(
                "{email} is the address of {member}, a member of org:{} already",
                org.slug
            ))));
        }
        let (token, expires) = invitation::create(conn, org.id, &email, role, who.user.id)?;
        let target = format!("org:{} {email} {}", org.slug, role.as_str());
        super::org_access::audit(conn, &who, &addr, "org-invite", &target)?;
        Ok(Ok((org.clone(), email, token, expires)))
    })
    .await?;
    let (org, email, token, expires) = made;
    mail(req, caller, &org, &email, role, &token, &expires);
    let doc = json!({ "email": email, "role": role.as_str(), "pending": true, "expiresAt": expires });
    Ok((StatusCode::CREATED, doc))
}

/// The invitation's mail, after the commit: it links an invitation that
/// exists. A failure to write it is logged; the admin can invite again.
fn mail(req: &Request<'_>, caller: &Caller, org: &Org, email: &str, role: Role, token: &str, expires: &str) {
    let link =
        format!("{}{}", req.state.reg.config.public_url(), crate::layout::Layout::invitation_url(token));
    let subject = format!("You are invited to {} (org:{}) on cairn", org.name, org.slug);
    let body = format!(
        "{} invites you to join org:{} as {}.\n\nSign in with an account of this address ({email}) and \
         accept or decline here:\n{link}\n\nThe invitation expires at {expires}.",
        caller.user.login,
        org.slug,
        role.as_str()
    );
    if let Err(e) = crate::mail::outbox::send(&req.state.reg.data, None, Some(email), &subject, &body) {
        tracing::warn!(error = %format!("{e:#}"), org = %org.slug, "the invitation's mail was not written");
    }
}

/// `DELETE /api/v1/orgs/{org}/members/{email}`: an admin withdraws the
/// address's pending invitation.
pub async fn withdraw(req: &Request<'_>, caller: &Caller, slug: &str, email: &str) -> ApiResult {
    let email = invitation::normalize_email(email);
    let (who, addr) = (caller.clone(), req.ip.to_string());
    let gone = email.clone();
    super::org_access::with_org(req, caller, slug, Role::Admin, move |conn, org, _| {
        if !invitation::withdraw(conn, org.id, &gone)? {
            return Ok(Err(ApiError::not_found(format!(
                "org:{} has no pending invitation of {gone}",
                org.slug
            ))));
        }
        super::org_access::audit(
            conn,
            &who,
            &addr,
            "org-invite-withdraw",
            &format!("org:{} {gone}", org.slug),
        )?;
        Ok(Ok(()))
    })
    .await?;
    Ok((StatusCode::OK, json!({ "email": email, "withdrawn": true })))
}
