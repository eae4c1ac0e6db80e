//! Web sessions (SPEC section 12). The cookie carries a random secret; the
//! database keeps only its SHA-256, so its rows open no session. A session
//! opened with a token has exactly that token's rights and ends when the
//! token is revoked or expires; one opened with a password has every scope
//! of its user. Sessions end after [`IDLE_SECS`] without use.

use anyhow::Result;
use base64::prelude::{Engine, BASE64_URL_SAFE_NO_PAD};
use sha2::Digest;

use super::{params, Caller, Conn, User, ALL_SCOPES};

/// A session ends after this long without a request.
pub const IDLE_SECS: i64 = 12 * 3600;

/// A session's last use is written again only once it is this old: one
/// write a minute per session at most, not one per request.
pub const SEEN_GRANULARITY: i64 = 60;

/// The session a request's cookie authenticated.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: i64,
    /// What writes must echo in `X-Cairn-Csrf`.
    pub csrf: String,
    /// When it was last recorded as used (unix seconds).
    pub seen: i64,
}

pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A new cookie secret: 256 random bits.
fn generate() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    BASE64_URL_SAFE_NO_PAD.encode(bytes)
}

fn hash(secret: &str) -> String {
    crate::store::hex(&sha2::Sha256::digest(secret.as_bytes()))
}

/// The session's CSRF value, derived from its secret (so nothing more is
/// stored, and the value does not lead back to the secret).
pub fn csrf(secret: &str) -> String {
    let mut h = sha2::Sha256::new();
    h.update(b"cairn csrf\0");
    h.update(secret.as_bytes());
    crate::store::hex(&h.finalize())
}

/// Opens a session for a user (with the token it was opened with, if any)
/// and returns the cookie's secret. Sessions idle too long are deleted here.
pub fn open(conn: &Conn, user_id: i64, token_id: Option<i64>) -> Result<String> {
    let now = unix_now();
    conn.execute("DELETE FROM sessions WHERE seen <= ?1", params![now - IDLE_SECS])?;
    let secret = generate();
    conn.execute(
        "INSERT INTO sessions (hash, user_id, token_id, created_at, seen) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![hash(&secret), user_id, token_id, super::now(), now],
    )?;
    Ok(secret)
}

/// The caller a cookie's secret stands for; `None` when the session is
/// unknown, ended, idle too long, its user disabled, or its token revoked
/// or expired.
pub fn authenticate(conn: &Conn, secret: &str) -> Result<Option<(Caller, Session)>> {
    let row = conn.query_opt(
        "SELECT s.id, s.seen, s.token_id, t.scopes, t.packages, u.id, u.login, u.email, u.created_at
             FROM sessions s JOIN users u ON u.id = s.user_id LEFT JOIN tokens t ON t.id = s.token_id
             WHERE s.hash = ?1 AND s.seen > ?2 AND u.disabled = 0
               AND (s.token_id IS NULL
                    OR (t.id IS NOT NULL AND t.org_id IS NULL AND t.revoked_at IS NULL
                        AND (t.expires_at IS NULL OR t.expires_at > ?3)))",
        params![hash(secret), unix_now() - IDLE_SECS, super::now()],
        |r| {
            Ok((
                r.get::<i64>(0)?,
                r.get::<i64>(1)?,
                r.get::<Option<i64>>(2)?,
                r.get::<Option<String>>(3)?,
                r.get::<Option<String>>(4)?,
                User { id: r.get(5)?, login: r.get(6)?, email: r.get(7)?, created_at: r.get(8)? },
            ))
        },
    )?;
    let Some((id, seen, token_id, scopes, packages, user)) = row else {
        return Ok(None);
    };
    let (scopes, packages) = match (scopes, packages) {
        (Some(s), Some(p)) => (serde_json::from_str(&s)?, serde_json::from_str(&p)?),
        _ => (ALL_SCOPES.iter().map(|s| s.to_string()).collect(), Vec::new()),
    };
    let session = Session { id, csrf: csrf(secret), seen };
    Ok(Some((Caller { user, token_id, scopes, packages, org: None, provenance: None }, session)))
}

/// Records sessions' last use, in one transaction: (session id, unix seconds).
pub fn touch(conn: &Conn, seen: &[(i64, i64)]) -> Result<()> {
    let txn = conn.transaction()?;
    for (id, at) in seen {
        txn.execute("UPDATE sessions SET seen = ?1 WHERE id = ?2 AND seen < ?1", params![at, id])?;
    }
    txn.commit()?;
    Ok(())
}

/// A user's live sessions for their data export: when each was opened and
/// last used, and the token it was opened with (the secret is nowhere).
pub fn export(conn: &Conn, user_id: i64) -> Result<Vec<serde_json::Value>> {
    conn.query(
        "SELECT created_at, seen, token_id FROM sessions WHERE user_id = ?1 AND seen > ?2 ORDER BY id",
        params![user_id, unix_now() - IDLE_SECS],
        |r| {
            let seen = chrono::DateTime::from_timestamp(r.get(1)?, 0).unwrap_or_default();
            Ok(serde_json::json!({
                "createdAt": r.get::<String>(0)?,
                "lastSeenAt": crate::index::line::pubtime(seen),
                "tokenId": r.get::<Option<i64>>(2)?,
            }))
        },
    )
}

/// Ends one session (logout).
pub fn end(conn: &Conn, id: i64) -> Result<()> {
    conn.execute("DELETE FROM sessions WHERE id = ?1", params![id])?;
    Ok(())
}

/// Ends every session of a user (erasure).
pub fn end_all(conn: &Conn, user_id: i64) -> Result<()> {
    conn.execute("DELETE FROM sessions WHERE user_id = ?1", params![user_id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_has_its_tokens_rights_and_dies_with_it() {
        crate::db::testdb::each(session_rights);
    }

    fn session_rights(conn: &Conn) {
        let token = crate::db::add_user(conn, "ann", None).unwrap();
        let user = crate::db::find_user(conn, "ann").unwrap().unwrap();
        let spec = crate::db::TokenSpec {
            label: "narrow".into(),
            scopes: vec!["yank".into()],
            packages: vec!["web-*".into()],
            expires_at: None,
        };
        let (meta, _) = crate::db::create_token(conn, user.id, &spec).unwrap();

        let by_password = open(conn, user.id, None).unwrap();
        let (caller, s) = authenticate(conn, &by_password).unwrap().unwrap();
        assert_eq!(
            (caller.token_id, caller.scopes.len(), caller.packages.len()),
            (None, ALL_SCOPES.len(), 0)
        );
        assert_eq!(s.csrf, csrf(&by_password));
        assert_ne!(s.csrf, by_password);

        let by_token = open(conn, user.id, Some(meta.id)).unwrap();
        let (caller, _) = authenticate(conn, &by_token).unwrap().unwrap();
        assert_eq!((caller.scopes, caller.packages), (vec!["yank".to_string()], vec!["web-*".to_string()]));
        assert!(crate::db::revoke_token(conn, user.id, meta.id).unwrap());
        assert!(authenticate(conn, &by_token).unwrap().is_none());

        // Idle too long: gone, and the row only ever held a hash.
        conn.execute("UPDATE sessions SET seen = seen - ?1", params![IDLE_SECS]).unwrap();
        assert!(authenticate(conn, &by_password).unwrap().is_none());
        let stored: i64 = conn
            .query_row("SELECT COUNT(*) FROM sessions WHERE hash = ?1", params![by_password], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, 0);
        assert!(authenticate(conn, &token).unwrap().is_none(), "a token is no session secret");
    }
}
