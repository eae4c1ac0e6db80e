//! Storage quotas' usage (SPEC section 20): the bytes of an owner's live
//! versions. A version's size is recorded with it; versions recorded
//! before sizes were (`size` NULL) get theirs from their index lines
//! (`Registry::repair`).

use anyhow::Result;

use super::space::in_space;
use super::{params, Conn, Space};

/// Who a quota is of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    User { id: i64, login: String },
    Org { id: i64, slug: String },
}

/// Records the size of a version just recorded.
pub fn record_size(conn: &Conn, space: &Space, name: &str, version_key: &str, size: u64) -> Result<()> {
    conn.execute(
        "UPDATE versions SET size = ?3 WHERE package = ?1 AND version = ?2",
        params![space.key(name), version_key, size as i64],
    )?;
    Ok(())
}

/// The bytes of the live versions of every package `owner` owns (Postgres
/// sums a BIGINT into a NUMERIC: cast back).
pub fn usage(conn: &Conn, owner: &Owner) -> Result<u64> {
    let (sql, id) = match owner {
        Owner::User { id, .. } => (
            "SELECT CAST(COALESCE(SUM(v.size), 0) AS BIGINT) FROM versions v JOIN owners o ON o.package = v.package
             WHERE o.user_id = ?1 AND v.deleted_at IS NULL",
            id,
        ),
        Owner::Org { id, .. } => (
            "SELECT CAST(COALESCE(SUM(v.size), 0) AS BIGINT) FROM versions v JOIN org_owners o ON o.package = v.package
             WHERE o.org_id = ?1 AND v.deleted_at IS NULL",
            id,
        ),
    };
    Ok(conn.query_row(sql, params![*id], |r| r.get::<i64>(0))?.max(0) as u64)
}

/// The owners of a package: its organisations, else its users.
pub fn owners(conn: &Conn, space: &Space, name: &str) -> Result<Vec<Owner>> {
    let key = space.key(name);
    let orgs = conn.query(
        "SELECT g.id, g.slug FROM org_owners o JOIN orgs g ON g.id = o.org_id WHERE o.package = ?1",
        params![key],
        |r| Ok(Owner::Org { id: r.get(0)?, slug: r.get(1)? }),
    )?;
    if !orgs.is_empty() {
        return Ok(orgs);
    }
    conn.query(
        "SELECT u.id, u.login FROM owners o JOIN users u ON u.id = o.user_id WHERE o.package = ?1",
        params![key],
        |r| Ok(Owner::User { id: r.get(0)?, login: r.get(1)? }),
    )
}

/// Live versions of a space without a recorded size: (name, version as published).
pub fn unsized_versions(conn: &Conn, space: &Space) -> Result<Vec<(String, String)>> {
    conn.query(
        concat!(
            "SELECT p.name, v.vers FROM versions v JOIN packages p ON p.key = v.package
             WHERE v.size IS NULL AND v.deleted_at IS NULL AND ",
            in_space!("v.package", 1)
        ),
        params![space.key_prefix()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}
