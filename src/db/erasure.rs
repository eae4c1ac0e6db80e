//! An account's data and its end: the export of everything kept about a
//! user, deletion with a grace period, the purge after it, and disabling.

use anyhow::Result;

use super::tokens::{token_meta, TOKEN_COLUMNS};
use super::{now, org, params, session, Conn};

/// Everything tied to a user: profile, token metadata with hashes (never a
/// plaintext token), web sessions, owned packages with their versions,
/// organisation memberships, audit entries.
pub fn export(conn: &Conn, user_id: i64) -> Result<serde_json::Value> {
    use serde_json::json;
    let user = conn.query_row(
        "SELECT login, email, created_at, disabled, delete_after FROM users WHERE id = ?1",
        params![user_id],
        |r| {
            Ok(json!({ "login": r.get::<String>(0)?, "email": r.get::<Option<String>>(1)?,
                       "createdAt": r.get::<String>(2)?, "disabled": r.get::<bool>(3)?,
                       "deleteAfter": r.get::<Option<String>>(4)? }))
        },
    )?;
    let tokens = conn.query(
        &format!(
            "SELECT {TOKEN_COLUMNS}, hash, revoked_at FROM tokens WHERE user_id = ?1 AND org_id IS NULL ORDER BY id"
        ),
        params![user_id],
        |r| {
            let mut v = serde_json::to_value(token_meta(r)?)?;
            v["sha256"] = json!(r.get::<String>(7)?);
            v["revokedAt"] = json!(r.get::<Option<String>>(8)?);
            Ok(v)
        },
    )?;
    let owned: Vec<(String, String)> = conn.query(
        "SELECT p.name, p.key FROM owners o JOIN packages p ON p.key = o.package WHERE o.user_id = ?1 ORDER BY p.key",
        params![user_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut packages = Vec::new();
    for (name, key) in owned {
        let versions = conn.query(
            "SELECT vers, sha256, published_at, deleted_at FROM versions WHERE package = ?1 ORDER BY seq",
            params![key],
            |r| {
                Ok(json!({ "version": r.get::<String>(0)?, "sha256": r.get::<String>(1)?,
                           "publishedAt": r.get::<String>(2)?, "deletedAt": r.get::<Option<String>>(3)? }))
            },
        )?;
        packages.push(json!({ "name": name, "versions": versions }));
    }
    let audit = conn.query(
        "SELECT at, token_id, action, target, addr, outcome FROM audit WHERE user_id = ?1 ORDER BY id",
        params![user_id],
        |r| {
            Ok(json!({ "at": r.get::<String>(0)?, "tokenId": r.get::<Option<i64>>(1)?,
                       "action": r.get::<String>(2)?, "target": r.get::<String>(3)?,
                       "addr": r.get::<Option<String>>(4)?, "outcome": r.get::<String>(5)? }))
        },
    )?;
    let sessions = session::export(conn, user_id)?;
    let organisations: Vec<_> = org::memberships(conn, user_id)?
        .into_iter()
        .map(|(slug, role, since)| json!({ "org": slug, "role": role, "addedAt": since }))
        .collect();
    let proposals = super::proposals::by_author(conn, user_id)?;
    Ok(json!({ "user": user, "tokens": tokens, "sessions": sessions, "packages": packages,
               "organisations": organisations, "proposals": proposals, "audit": audit }))
}

/// How long an account marked for erasure waits before it is purged.
pub const ERASURE_GRACE_DAYS: i64 = 30;

/// Revokes every token of the user at once (not the organisation tokens it
/// made: those are the organisations'), removes them from every package's
/// owners and every organisation, and marks the account for purge after
/// the grace period. Returns the purge time and the packages the user left.
pub fn mark_for_deletion(conn: &Conn, user_id: i64) -> Result<(String, Vec<String>)> {
    let now = now();
    let purge_after =
        crate::index::line::pubtime(chrono::Utc::now() + chrono::Duration::days(ERASURE_GRACE_DAYS));
    conn.execute(
        "UPDATE tokens SET revoked_at = ?1 WHERE user_id = ?2 AND org_id IS NULL AND revoked_at IS NULL",
        params![now, user_id],
    )?;
    org::leave_all(conn, user_id)?;
    session::end_all(conn, user_id)?;
    conn.execute(
        "UPDATE users SET disabled = 1, delete_after = ?1 WHERE id = ?2",
        params![purge_after, user_id],
    )?;
    let packages: Vec<String> = conn.query(
        "SELECT p.name FROM owners o JOIN packages p ON p.key = o.package WHERE o.user_id = ?1 ORDER BY p.key",
        params![user_id],
        |r| r.get(0),
    )?;
    conn.execute("DELETE FROM owners WHERE user_id = ?1", params![user_id])?;
    Ok((purge_after, packages))
}

/// Erases accounts whose grace period has passed: tokens go, the login and
/// email are replaced; the row stays so audit entries keep their subject id.
pub fn purge_accounts(conn: &Conn) -> Result<Vec<String>> {
    let due: Vec<(i64, String)> = conn.query(
        "SELECT id, login FROM users WHERE delete_after IS NOT NULL AND delete_after <= ?1",
        params![now()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    for (id, _) in &due {
        session::end_all(conn, *id)?;
        conn.execute("DELETE FROM tokens WHERE user_id = ?1 AND org_id IS NULL", params![id])?;
        // An OpenID identity is free again: its next sign-in makes a new account.
        conn.execute("DELETE FROM oidc_identities WHERE user_id = ?1", params![id])?;
        conn.execute(
            "UPDATE users SET login = ?1, email = NULL, delete_after = NULL, disabled = 1 WHERE id = ?2",
            params![format!("deleted-{id}"), id],
        )?;
    }
    Ok(due.into_iter().map(|(_, login)| login).collect())
}

/// Disables a user: their tokens stop working at once. False if unknown.
pub fn disable_user(conn: &Conn, login: &str) -> Result<bool> {
    Ok(conn.execute("UPDATE users SET disabled = 1 WHERE lower(login) = lower(?1)", params![login])? == 1)
}
