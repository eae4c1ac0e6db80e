//! Who may change or read an organisation (SPEC section 15), for its
//! endpoints (`orgs.rs`) and its invitations (`invitations.rs`): the
//! caller a change needs, the caller's role, the transaction a change runs
//! in with its audit row, and the rule that owners alone make owners.

use super::{ApiError, Request};
use crate::db::org::{self, Org, Role};
use crate::db::{self, AuditEntry, Caller, Conn};

/// The caller of an organisation write: a user (not an organisation
/// token) whose token has `tokens`.
pub(super) fn manager<'r>(req: &'r Request) -> Result<&'r Caller, ApiError> {
    let caller = req.person()?;
    if !caller.has_scope("tokens") {
        return Err(ApiError::forbidden("managing an organisation needs a token with the `tokens` scope"));
    }
    Ok(caller)
}

/// The organisation and the caller's role in it, when that role is at
/// least `need`.
fn access(
    conn: &Conn,
    slug: &str,
    user_id: i64,
    need: Role,
) -> anyhow::Result<Result<(Org, Role), ApiError>> {
    let unknown = || ApiError::not_found(format!("no organisation `{slug}`"));
    let Some(org) = org::find(conn, slug)? else {
        return Ok(Err(unknown()));
    };
    match org::role(conn, org.id, user_id)? {
        Some(role) if role >= need => Ok(Ok((org, role))),
        Some(role) => Ok(Err(ApiError::forbidden(format!(
            "this needs the {} role in org:{slug}; yours is {}",
            need.as_str(),
            role.as_str()
        )))),
        None if org.private => Ok(Err(unknown())),
        None => Ok(Err(ApiError::forbidden(format!("you are not a member of org:{slug}")))),
    }
}

/// One audit row for an organisation change by `caller`.
pub(super) fn audit(
    conn: &Conn,
    caller: &Caller,
    addr: &str,
    action: &str,
    target: &str,
) -> anyhow::Result<()> {
    let entry = AuditEntry {
        user_id: Some(caller.user.id),
        token_id: caller.token_id,
        action,
        target,
        addr: Some(addr),
        outcome: "ok",
    };
    db::audit(conn, &entry).map(|_| ())
}

/// Runs the change `f` on the organisation the caller reaches with role
/// `need`, in a transaction under the writer's lock (a transaction that
/// reads first and writes later would fail on SQLite rather than wait,
/// when another connection wrote in between); commits when `f` succeeds.
pub(super) async fn with_org<T: Send + 'static>(
    req: &Request<'_>,
    caller: &Caller,
    slug: &str,
    need: Role,
    f: impl FnOnce(&Conn, &Org, Role) -> anyhow::Result<Result<T, ApiError>> + Send + 'static,
) -> Result<T, ApiError> {
    let (slug, user) = (slug.to_string(), caller.user.id);
    req.state
        .db(move |conn| {
            let txn = conn.transaction_exclusive()?;
            let (org, role) = match access(&txn, &slug, user, need)? {
                Ok(found) => found,
                Err(e) => return Ok(Err(e)),
            };
            let out = f(&txn, &org, role)?;
            if out.is_ok() {
                txn.commit()?;
            }
            Ok(out)
        })
        .await?
}

/// Runs the read `f` on the organisation the caller reaches with role `need`.
pub(super) async fn read_org<T: Send + 'static>(
    req: &Request<'_>,
    caller: &Caller,
    slug: &str,
    need: Role,
    f: impl FnOnce(&Conn, &Org) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let (slug, user) = (slug.to_string(), caller.user.id);
    req.state
        .db(move |conn| {
            Ok(match access(conn, &slug, user, need)? {
                Ok((org, _)) => Ok(f(conn, &org)?),
                Err(e) => Err(e),
            })
        })
        .await?
}

/// Owners alone make or unmake owners.
pub(super) fn may_grant(mine: Role, before: Option<Role>, after: Option<Role>) -> Result<(), ApiError> {
    let touches_owner = before == Some(Role::Owner) || after == Some(Role::Owner);
    match touches_owner && mine < Role::Owner {
        true => Err(ApiError::forbidden("only an owner makes or removes owners")),
        false => Ok(()),
    }
}
