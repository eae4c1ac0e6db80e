//! Identity's tables (SPEC section 17): accounts bound to an OpenID
//! provider's (issuer, sub), sign-ins under way, roles granted by a
//! provider's groups, trust configurations, identity tokens already
//! exchanged, and trusted-publishing tokens with their provenance.

use anyhow::Result;
use serde::Serialize;

use super::org::{self, Role};
use super::{check_login, now, params, Conn, Space, User};
use crate::index::line::Provenance;

/// A sign-in under way: what the callback checks the provider's answer against.
pub struct PendingLogin {
    pub provider: String,
    pub nonce: String,
    pub verifier: String,
    pub next: String,
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn sha256(s: &str) -> String {
    use sha2::Digest;
    crate::store::hex(&sha2::Sha256::digest(s.as_bytes()))
}

/// How long a sign-in may take at the provider.
const LOGIN_SECS: i64 = 600;

/// Records a sign-in started with `state`; older ones that ran out go.
pub fn start_login(conn: &Conn, state: &str, login: &PendingLogin) -> Result<()> {
    let now = unix_now();
    conn.execute("DELETE FROM oidc_logins WHERE expires <= ?1", params![now])?;
    conn.execute(
        "INSERT INTO oidc_logins (state_hash, provider, nonce, verifier, next, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![sha256(state), &login.provider, &login.nonce, &login.verifier, &login.next, now + LOGIN_SECS],
    )?;
    Ok(())
}

/// Takes the sign-in `state` names (once: a replayed callback finds none).
pub fn take_login(conn: &Conn, state: &str) -> Result<Option<PendingLogin>> {
    let found = conn.query_opt(
        "DELETE FROM oidc_logins WHERE state_hash = ?1 AND expires > ?2 RETURNING provider, nonce, verifier, next",
        params![sha256(state), unix_now()],
        |r| Ok(PendingLogin { provider: r.get(0)?, nonce: r.get(1)?, verifier: r.get(2)?, next: r.get(3)? }),
    )?;
    Ok(found)
}

/// Why a sign-in found no account.
#[derive(Debug, PartialEq, Eq)]
pub enum NoAccount {
    /// The login the claim names is a local account's (never merged).
    Taken(String),
    /// The provider may not create accounts here.
    NotCreated,
    /// The claim is missing or no valid login.
    BadLogin(String),
    Disabled,
}

/// The account bound to (`issuer`, `sub`), made on its first sign-in
/// (named by `login`) when `create` allows.
pub fn account_of(
    conn: &Conn,
    issuer: &str,
    sub: &str,
    login: Option<&str>,
    create: bool,
) -> Result<Result<User, NoAccount>> {
    let bound = conn.query_opt(
        "SELECT u.id, u.login, u.email, u.created_at, u.disabled FROM oidc_identities i JOIN users u ON u.id = i.user_id
             WHERE i.issuer = ?1 AND i.sub = ?2",
        params![issuer, sub],
        |r| {
            let user = User { id: r.get(0)?, login: r.get(1)?, email: r.get(2)?, created_at: r.get(3)? };
            Ok((user, r.get::<bool>(4)?))
        },
    )?;
    match bound {
        Some((_, true)) => return Ok(Err(NoAccount::Disabled)),
        Some((user, false)) => return Ok(Ok(user)),
        None => {}
    }
    if !create {
        return Ok(Err(NoAccount::NotCreated));
    }
    let Some(login) = login else { return Ok(Err(NoAccount::BadLogin("the provider sent no login".into()))) };
    if let Err(e) = check_login(login) {
        return Ok(Err(NoAccount::BadLogin(e)));
    }
    let txn = conn.transaction()?;
    let Some(id) = super::insert_user(&txn, login, None)? else {
        return Ok(Err(NoAccount::Taken(login.to_string())));
    };
    txn.execute(
        "INSERT INTO oidc_identities (issuer, sub, user_id) VALUES (?1, ?2, ?3)",
        params![issuer, sub, id],
    )?;
    txn.commit()?;
    let user =
        super::find_user(conn, login)?.ok_or_else(|| anyhow::anyhow!("the new user `{login}` is gone"))?;
    Ok(Ok(user))
}

/// Makes the roles provider `provider` grants `user_id` exactly `granted`
/// ((org slug, role)): grants the missing, withdraws those its groups no
/// longer give. Roles given by hand are left alone (and never lowered).
/// Returns the changes, for the audit log.
pub fn apply_group_roles(
    conn: &Conn,
    provider: &str,
    user_id: i64,
    granted: &[(String, Role)],
) -> Result<Vec<String>> {
    let mut changes = Vec::new();
    let txn = conn.transaction()?;
    let held: Vec<(i64, String, String, Option<String>)> = txn.query(
        "SELECT m.org_id, o.slug, m.role, m.granted_by FROM org_members m JOIN orgs o ON o.id = m.org_id
             WHERE m.user_id = ?1",
        params![user_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    for (org_id, slug, _, by) in &held {
        if by.as_deref() == Some(provider) && !granted.iter().any(|(s, _)| s == slug) {
            txn.execute(
                "DELETE FROM org_members WHERE org_id = ?1 AND user_id = ?2",
                params![org_id, user_id],
            )?;
            changes.push(format!("withdrew {slug}"));
        }
    }
    for (slug, role) in granted {
        let Some(o) = org::find(&txn, slug)? else { continue };
        match held.iter().find(|h| h.0 == o.id) {
            None => {
                txn.execute(
                    "INSERT INTO org_members (org_id, user_id, role, added_at, granted_by) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![o.id, user_id, role.as_str(), now(), provider],
                )?;
                changes.push(format!("granted {slug}:{}", role.as_str()));
            }
            Some((_, _, was, Some(by))) if by == provider && was != role.as_str() => {
                txn.execute(
                    "UPDATE org_members SET role = ?1 WHERE org_id = ?2 AND user_id = ?3",
                    params![role.as_str(), o.id, user_id],
                )?;
                changes.push(format!("made {slug}:{}", role.as_str()));
            }
            _ => {}
        }
    }
    txn.commit()?;
    Ok(changes)
}

/// A package's trust configuration.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TrustedPublisher {
    pub id: i64,
    pub issuer: String,
    pub repository: String,
    pub workflow: String,
    pub environment: Option<String>,
    pub created_by: String,
    pub created_at: String,
}

/// A trust configuration with its package's name (as first spelled).
pub struct Trust {
    pub package: String,
    pub config: TrustedPublisher,
    pub created_by_id: i64,
}

pub fn add_trusted_publisher(
    conn: &Conn,
    space: &Space,
    package: &str,
    t: &TrustedPublisher,
    by: i64,
) -> Result<i64> {
    conn.query_row(
        "INSERT INTO trusted_publishers (package, issuer, repository, workflow, environment, created_by, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        params![space.key(package), &t.issuer, &t.repository, &t.workflow, &t.environment, by, now()],
        |r| r.get(0),
    )
}

pub fn trusted_publishers(conn: &Conn, space: &Space, package: &str) -> Result<Vec<TrustedPublisher>> {
    conn.query(
        "SELECT t.id, t.issuer, t.repository, t.workflow, t.environment, u.login, t.created_at
             FROM trusted_publishers t JOIN users u ON u.id = t.created_by WHERE t.package = ?1 ORDER BY t.id",
        params![space.key(package)],
        row,
    )
}

fn row(r: &super::Row) -> Result<TrustedPublisher> {
    Ok(TrustedPublisher {
        id: r.get(0)?,
        issuer: r.get(1)?,
        repository: r.get(2)?,
        workflow: r.get(3)?,
        environment: r.get(4)?,
        created_by: r.get(5)?,
        created_at: r.get(6)?,
    })
}

/// Removes configuration `id` of the package; whether there was one.
pub fn remove_trusted_publisher(conn: &Conn, space: &Space, package: &str, id: i64) -> Result<bool> {
    let n = conn.execute(
        "DELETE FROM trusted_publishers WHERE id = ?1 AND package = ?2",
        params![id, space.key(package)],
    )?;
    Ok(n > 0)
}

/// The public registry's trust configurations of `issuer` for `repository`
/// (compared without case, as GitHub and GitLab do) whose maker's account
/// is active: a token acts as that account, so a disabled or erased
/// maker's configuration admits no run until an owner makes it again.
pub fn trust_for(conn: &Conn, issuer: &str, repository: &str) -> Result<Vec<Trust>> {
    conn.query(
        "SELECT t.id, t.issuer, t.repository, t.workflow, t.environment, u.login, t.created_at, p.name, t.created_by
             FROM trusted_publishers t JOIN users u ON u.id = t.created_by JOIN packages p ON p.key = t.package
             WHERE t.issuer = ?1 AND lower(t.repository) = lower(?2) AND t.package NOT LIKE '@%'
               AND u.disabled = 0
             ORDER BY t.id",
        params![issuer, repository],
        |r| Ok(Trust { config: row(r)?, package: r.get(7)?, created_by_id: r.get(8)? }),
    )
}

/// Records an identity token's `jti` as used; `false` when it was already.
/// Rows whose token expired go (an expired token is refused anyway).
pub fn use_jti(conn: &Conn, issuer: &str, jti: &str, expires: i64) -> Result<bool> {
    conn.execute("DELETE FROM trusted_jtis WHERE expires < ?1", params![unix_now() - 120])?;
    let n = conn.execute(
        "INSERT INTO trusted_jtis (issuer, jti, expires) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        params![issuer, jti, expires],
    )?;
    Ok(n == 1)
}

/// Issues a trusted-publishing token: `publish-update` for exactly
/// `packages`, until `expires_at`, carrying its provenance.
pub fn issue_trusted_token(
    conn: &Conn,
    user_id: i64,
    packages: &[String],
    expires_at: &str,
    provenance: &Provenance,
) -> Result<(i64, String)> {
    let (label, provenance) =
        (format!("trusted publishing: {}", provenance.repository), serde_json::to_string(provenance)?);
    let row = super::tokens::NewToken {
        user_id,
        org_id: None,
        label: &label,
        scopes: &["publish-update"],
        packages,
        expires_at: Some(expires_at),
        provenance: Some(&provenance),
    };
    super::tokens::insert_token(conn, &row)
}

/// Revokes the trusted-publishing token `id`; whether it was one, live.
pub fn revoke_trusted_token(conn: &Conn, id: i64) -> Result<bool> {
    let n = conn.execute(
        "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2 AND provenance IS NOT NULL AND revoked_at IS NULL",
        params![now(), id],
    )?;
    Ok(n > 0)
}
