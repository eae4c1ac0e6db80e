//! Invitations by email (SPEC section 19, skillreg's): an organisation's
//! admin invites an address with a role; the invitation waits, pending,
//! until someone signed in with an account of that address accepts or
//! declines it through the link mailed to it, or until it expires. The
//! link's token is kept as its SHA-256 only, like every other secret here.

use anyhow::Result;
use base64::prelude::{Engine, BASE64_URL_SAFE_NO_PAD};
use sha2::Digest;

use super::org::Role;
use super::{now, params, Conn};

/// How long an invitation waits.
pub const LIFETIME_DAYS: i64 = 7;

/// An invitation as its link finds it.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: i64,
    pub org_id: i64,
    pub org_slug: String,
    pub org_name: String,
    pub email: String,
    pub role: Role,
    pub invited_by: String,
    pub expires_at: String,
}

impl Invitation {
    pub fn expired(&self) -> bool {
        self.expires_at <= now()
    }

    /// What the invitee's page shows (the address too: the invitee signs
    /// in with an account of it).
    pub fn doc(&self) -> serde_json::Value {
        serde_json::json!({
            "org": self.org_slug, "name": self.org_name, "email": self.email,
            "role": self.role.as_str(), "invitedBy": self.invited_by, "expiresAt": self.expires_at,
        })
    }
}

/// A pending invitation as the organisation's member list shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    pub email: String,
    pub role: &'static str,
    pub pending: bool,
    pub invited_by: String,
    pub expires_at: String,
}

fn hash(token: &str) -> String {
    crate::store::hex(&sha2::Sha256::digest(token.as_bytes()))
}

/// An address as kept and compared: trimmed and lowercase.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

/// Whether `email` can be mailed at all: one `@` between a local part and
/// a dotted domain, no spaces or control characters, at most 254 bytes.
pub fn check_email(email: &str) -> Result<(), String> {
    let bad = || Err(format!("`{email}` is not an email address"));
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad();
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.contains('@') =>
        {
            Ok(())
        }
        _ => bad(),
    }
}

/// Invites `email` (normalised) to the organisation with `role`, replacing
/// a pending invitation of the same address; returns the link's token and
/// the expiry. Expired invitations of any organisation are deleted here.
pub fn create(conn: &Conn, org_id: i64, email: &str, role: Role, inviter: i64) -> Result<(String, String)> {
    let at = chrono::Utc::now();
    let now = crate::index::line::pubtime(at);
    let expires = crate::index::line::pubtime(at + chrono::Duration::days(LIFETIME_DAYS));
    conn.execute("DELETE FROM invitations WHERE expires_at <= ?1", params![now])?;
    conn.execute("DELETE FROM invitations WHERE org_id = ?1 AND email = ?2", params![org_id, email])?;
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let token = BASE64_URL_SAFE_NO_PAD.encode(bytes);
    conn.execute(
        "INSERT INTO invitations (org_id, email, role, token_hash, invited_by, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![org_id, email, role.as_str(), hash(&token), inviter, now, expires],
    )?;
    Ok((token, expires))
}

/// The invitation of a link's token, expired or not.
pub fn find(conn: &Conn, token: &str) -> Result<Option<Invitation>> {
    conn.query_opt(
        "SELECT i.id, i.org_id, o.slug, o.name, i.email, i.role, u.login, i.expires_at
         FROM invitations i JOIN orgs o ON o.id = i.org_id JOIN users u ON u.id = i.invited_by
         WHERE i.token_hash = ?1",
        params![hash(token)],
        |r| {
            Ok(Invitation {
                id: r.get(0)?,
                org_id: r.get(1)?,
                org_slug: r.get(2)?,
                org_name: r.get(3)?,
                email: r.get(4)?,
                role: Role::parse(&r.get::<String>(5)?).unwrap_or(Role::Member),
                invited_by: r.get(6)?,
                expires_at: r.get(7)?,
            })
        },
    )
}

/// The organisation's invitations still waiting, by address.
pub fn pending(conn: &Conn, org_id: i64) -> Result<Vec<Pending>> {
    conn.query(
        "SELECT i.email, i.role, u.login, i.expires_at FROM invitations i JOIN users u ON u.id = i.invited_by
         WHERE i.org_id = ?1 AND i.expires_at > ?2 ORDER BY i.email",
        params![org_id, now()],
        |r| {
            Ok(Pending {
                email: r.get(0)?,
                role: Role::parse(&r.get::<String>(1)?).unwrap_or(Role::Member).as_str(),
                pending: true,
                invited_by: r.get(2)?,
                expires_at: r.get(3)?,
            })
        },
    )
}

/// Ends an invitation (accepted, declined or withdrawn).
pub fn remove(conn: &Conn, id: i64) -> Result<()> {
    conn.execute("DELETE FROM invitations WHERE id = ?1", params![id])?;
    Ok(())
}

/// Withdraws the organisation's pending invitation of `email`; false if
/// there is none.
pub fn withdraw(conn: &Conn, org_id: i64, email: &str) -> Result<bool> {
    let n = conn.execute(
        "DELETE FROM invitations WHERE org_id = ?1 AND email = ?2 AND expires_at > ?3",
        params![org_id, email, now()],
    )?;
    Ok(n == 1)
}

/// Every invitation of an organisation that is being deleted (before
/// [`super::org::delete`]).
pub fn remove_all(conn: &Conn, org_id: i64) -> Result<()> {
    conn.execute("DELETE FROM invitations WHERE org_id = ?1", params![org_id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_loosely_but_never_blindly() {
        for ok in ["dev@example.com", "a.b+tag@sub.example.org"] {
            assert_eq!(check_email(ok), Ok(()), "{ok}");
        }
        for bad in
            ["", "dev", "dev@", "@example.com", "dev@localhost", "dev @example.com", "a@b@c.d", "dev@.com"]
        {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        assert_eq!(normalize_email("  Dev@Example.COM "), "dev@example.com");
    }
}
