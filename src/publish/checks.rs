//! The state checks a change passes before `plan.rs` records it: the
//! caller's right to act on a package, a new name's, a publish's.

use crate::db::{self, Caller, Conn};

use super::{Upload, WriteError};
use crate::name;
use crate::registry::Registry;

/// The package must exist and the caller must own it, with `scope` on a
/// token that may touch it. Returns the package's spelling.
pub(super) fn check_owner(
    conn: &Conn,
    reg: &Registry,
    caller: &Caller,
    pkg: &str,
    scope: &str,
) -> Result<String, WriteError> {
    let spelled = db::find_package(conn, &reg.space, pkg)?
        .ok_or_else(|| WriteError::NotFound(format!("no package `{pkg}`")))?;
    if !caller.has_scope(scope) {
        return Err(WriteError::Forbidden(format!("this token lacks the `{scope}` scope")));
    }
    if !caller.may_touch(&spelled) {
        return Err(WriteError::Forbidden(format!("this token may not act on `{spelled}`")));
    }
    if !may_act(conn, reg, caller, &spelled)? {
        return Err(not_an_owner(caller, &spelled));
    }
    Ok(spelled)
}

/// Whether the caller acts as an owner of the package: a user who owns it
/// or is an admin of an organisation that owns it; an organisation token
/// of a public organisation that owns it. In a private organisation's
/// registry the organisation owns every package: its admins and its own
/// tokens act.
pub fn may_act(conn: &Conn, reg: &Registry, caller: &Caller, pkg: &str) -> Result<bool, WriteError> {
    let space = &reg.space;
    // A trusted-publishing token was given exactly the public packages
    // whose trust configuration (which only owners make) its CI run matched.
    if caller.provenance.is_some() {
        return Ok(space.org().is_none() && caller.may_touch(pkg));
    }
    if let Some(org) = private_org(conn, reg)? {
        return Ok(acts_for_org(conn, caller, &org)?);
    }
    Ok(match &caller.org {
        Some(o) => !o.private && db::org::owns(conn, space, pkg, o.id)?,
        None => {
            db::is_owner(conn, space, pkg, caller.user.id)?
                || db::org::acts_for(conn, space, pkg, caller.user.id)?
        }
    })
}

/// The organisation itself (its token) or one of its admins.
fn acts_for_org(conn: &Conn, caller: &Caller, org: &db::org::Org) -> anyhow::Result<bool> {
    Ok(match &caller.org {
        Some(o) => o.id == org.id,
        None => db::org::role(conn, org.id, caller.user.id)? >= Some(db::org::Role::Admin),
    })
}

/// The private organisation whose registry this is (`None`: the public one).
pub(super) fn private_org(conn: &Conn, reg: &Registry) -> Result<Option<db::org::Org>, WriteError> {
    let Some(slug) = reg.space.org() else { return Ok(None) };
    match db::org::find(conn, slug)? {
        Some(org) if org.private => Ok(Some(org)),
        _ => Err(WriteError::NotFound(format!("no private organisation `{slug}`"))),
    }
}

fn not_an_owner(caller: &Caller, pkg: &str) -> WriteError {
    match &caller.org {
        Some(o) => WriteError::Forbidden(format!("org:{} is not an owner of `{pkg}`", o.slug)),
        None => WriteError::Forbidden(format!("you are not an owner of `{pkg}`")),
    }
}

/// An owner named in an owner change: a login, or `org:{slug}`.
pub(super) enum Owner {
    User(i64),
    Org(db::org::Org),
}

pub(super) fn owner(conn: &Conn, name: &str) -> Result<Owner, WriteError> {
    if let Some(slug) = db::org::slug_of_owner(name) {
        let org = db::org::find(conn, slug)?
            .ok_or_else(|| WriteError::NotFound(format!("no organisation `{slug}`")))?;
        return Ok(Owner::Org(org));
    }
    let user = db::find_user(conn, name)?.ok_or_else(|| WriteError::NotFound(format!("no user `{name}`")))?;
    Ok(Owner::User(user.id))
}

/// An organisation becomes an owner only by the hand of its admin (or its
/// own token), and only a public one: a private organisation's packages
/// live in its own registry.
pub(super) fn check_org_owner(conn: &Conn, caller: &Caller, org: &db::org::Org) -> Result<(), WriteError> {
    if !acts_for_org(conn, caller, org)? {
        return Err(WriteError::Forbidden(format!("only an admin of org:{} can make it an owner", org.slug)));
    }
    if org.private {
        return Err(WriteError::Conflict(format!(
            "org:{} is private: its packages are published to its own registry, not this one",
            org.slug
        )));
    }
    Ok(())
}

/// A name nobody has: not reserved, not a look-alike, and a token that may
/// claim names.
pub(super) fn check_new_name(
    conn: &Conn,
    reg: &Registry,
    caller: &Caller,
    pkg: &str,
) -> Result<(), WriteError> {
    name::check_reserved(pkg, &reg.config.reserved_names).map_err(|e| WriteError::Invalid(e.to_string()))?;
    if let Some(cached) = db::upstream::cached(conn, &reg.space, pkg)? {
        if !db::upstream::claimed(conn, &reg.space, pkg)? {
            return Err(upstream_name(pkg, &cached.upstream));
        }
    }
    if let Some(similar) = db::find_confusable(conn, &reg.space, pkg)? {
        return Err(WriteError::Conflict(format!(
            "the name `{pkg}` is too similar to the existing package `{similar}`"
        )));
    }
    if !caller.has_scope("publish-new") {
        return Err(WriteError::Forbidden("this token lacks the `publish-new` scope".into()));
    }
    if !caller.may_touch(pkg) {
        return Err(WriteError::Forbidden(format!("this token may not claim `{pkg}`")));
    }
    match private_org(conn, reg)? {
        // A new name of a private registry is its organisation's.
        Some(org) if !acts_for_org(conn, caller, &org)? => Err(WriteError::Forbidden(format!(
            "only an admin of org:{} (or its token) publishes to its registry",
            org.slug
        ))),
        Some(_) => Ok(()),
        None => match caller.org.as_ref().filter(|o| o.private) {
            Some(o) => Err(WriteError::Forbidden(format!(
                "org:{} is private: its token publishes to its own registry, not this one",
                o.slug
            ))),
            None => Ok(()),
        },
    }
}

/// The state checks of a publish, in the order a publisher would want to
/// hear about them. Returns whether the name is new.
pub(super) fn check_publish(
    conn: &Conn,
    reg: &Registry,
    caller: &Caller,
    upload: &Upload,
) -> Result<bool, WriteError> {
    let pkg = &upload.line.name;
    if !caller.may_touch(pkg) {
        return Err(WriteError::Forbidden(format!("this token may not publish `{pkg}`")));
    }
    let new_package = match db::find_package(conn, &reg.space, pkg)? {
        Some(ref spelled) if spelled != pkg => {
            return Err(WriteError::Conflict(format!(
                "a package named `{spelled}` exists; `{pkg}` is the same name (case and `_`/`-` do not distinguish packages)"
            )))
        }
        Some(_) => {
            if !may_act(conn, reg, caller, pkg)? {
                return Err(not_an_owner(caller, pkg));
            }
            if !caller.has_scope("publish-update") {
                return Err(WriteError::Forbidden("this token lacks the `publish-update` scope".into()));
            }
            false
        }
        None => {
            check_new_name(conn, reg, caller, pkg)?;
            true
        }
    };
    if db::version_burned(conn, &reg.space, pkg, &name::version_key(&upload.version))? {
        return Err(WriteError::Conflict(format!(
            "{pkg} {} was published already; a published version is never replaced (publish a new version)",
            upload.version
        )));
    }
    Ok(new_package)
}

/// The refusal of a local name an upstream offers (SPEC section 16).
pub(crate) fn upstream_name(name: &str, upstream: &str) -> WriteError {
    WriteError::UpstreamName(format!(
        "`{name}` is served from upstream {upstream}: a local package of that name would shadow it; \
         an administrator can claim it for local use (`cairn admin upstream claim {name}`)"
    ))
}

/// A publish of `size` bytes stays within each owner's quota (SPEC section
/// 20). The version's row is recorded already, so the usage counts it; a
/// refusal rolls the change back.
pub(super) fn check_quota(conn: &Conn, reg: &Registry, pkg: &str, size: u64) -> Result<(), WriteError> {
    let quotas = &reg.config.quotas;
    if quotas.org_bytes == 0 && quotas.user_bytes == 0 {
        return Ok(());
    }
    for owner in db::quota::owners(conn, &reg.space, pkg)? {
        let Some(limit) = quotas.limit(&owner) else { continue };
        let after = db::quota::usage(conn, &owner)?;
        if after > limit {
            let usage = after.saturating_sub(size);
            return Err(WriteError::QuotaExceeded(Box::new(super::QuotaExceeded {
                owner,
                usage,
                limit,
                size,
            })));
        }
    }
    Ok(())
}
