//! The upstream tables (SPEC section 16): which cached package came from
//! which upstream and when it was last revalidated, each cached version's
//! first sighting (the cooldown), log entry and blob (eviction), and the
//! names an administrator claimed for local use. The index holds the lines
//! themselves; these rows only say how to keep them.

use anyhow::Result;
use std::collections::HashMap;

use super::space::in_space;
use super::{now, params, Conn, Space};

/// A cached package's row.
#[derive(Debug, Clone)]
pub struct Cached {
    pub upstream: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// Unix milliseconds of the upstream's last answer.
    pub checked_ms: i64,
}

pub fn cached(conn: &Conn, space: &Space, name: &str) -> Result<Option<Cached>> {
    conn.query_opt(
        "SELECT upstream, etag, last_modified, checked_ms FROM upstream_packages WHERE key = ?1",
        params![space.key(name)],
        |r| {
            Ok(Cached {
                upstream: r.get(0)?,
                etag: r.get(1)?,
                last_modified: r.get(2)?,
                checked_ms: r.get(3)?,
            })
        },
    )
}

/// Records the upstream's answer for a package (its validators after a 200).
pub fn checked(conn: &Conn, space: &Space, name: &str, row: &Cached) -> Result<()> {
    conn.execute(
        "INSERT INTO upstream_packages (key, upstream, etag, last_modified, checked_ms) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (key) DO UPDATE SET upstream = excluded.upstream, etag = excluded.etag,
             last_modified = excluded.last_modified, checked_ms = excluded.checked_ms",
        params![space.key(name), row.upstream, row.etag, row.last_modified, row.checked_ms],
    )?;
    Ok(())
}

/// Cached packages (as their lines spell them) whose upstream last
/// answered before `before_ms`, the longest unasked first, at most `limit`.
pub fn due(conn: &Conn, space: &Space, before_ms: i64, limit: usize) -> Result<Vec<String>> {
    let sql = concat!(
        "SELECT (SELECT MIN(v.name) FROM upstream_versions v WHERE v.key = p.key) AS spelled
         FROM upstream_packages p WHERE p.checked_ms < ?1 AND ",
        in_space!("p.key", 2),
        " ORDER BY p.checked_ms LIMIT ?3"
    );
    let names: Vec<Option<String>> =
        conn.query(sql, params![before_ms, space.key_prefix(), limit], |r| r.get(0))?;
    Ok(names.into_iter().flatten().collect())
}

/// Records the versions not seen before (at `now_s`), in the caller's
/// transaction.
pub fn record_versions(
    conn: &Conn,
    space: &Space,
    name: &str,
    upstream: &str,
    versions: &[(&str, &str)],
    now_s: i64,
) -> Result<()> {
    let key = space.key(name);
    for (version, cksum) in versions {
        conn.execute(
            "INSERT INTO upstream_versions (key, name, version, upstream, cksum, first_seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (key, version) DO NOTHING",
            params![key, name, version, upstream, cksum, now_s],
        )?;
    }
    Ok(())
}

/// Drops a package's validators (its file did not reach the index).
pub fn forget_validators(conn: &Conn, space: &Space, name: &str) -> Result<()> {
    conn.execute(
        "UPDATE upstream_packages SET etag = NULL, last_modified = NULL, checked_ms = 0 WHERE key = ?1",
        params![space.key(name)],
    )?;
    Ok(())
}

/// When cairn first saw each of these versions (recorded now for the new
/// ones): unix seconds by version.
pub fn first_seen(
    conn: &Conn,
    space: &Space,
    name: &str,
    upstream: &str,
    versions: &[(&str, &str)],
    now_s: i64,
) -> Result<HashMap<String, i64>> {
    let key = space.key(name);
    // One transaction: a package's hundreds of versions, one commit.
    let txn = conn.transaction()?;
    record_versions(&txn, space, name, upstream, versions, now_s)?;
    txn.commit()?;
    let rows: Vec<(String, i64)> =
        conn.query("SELECT version, first_seen FROM upstream_versions WHERE key = ?1", params![key], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok(rows.into_iter().collect())
}

/// A cached version's latest `cache` entry in the log: the one of its line
/// as served now.
pub fn set_log_index(conn: &Conn, space: &Space, name: &str, version: &str, index: u64) -> Result<()> {
    conn.execute(
        "UPDATE upstream_versions SET log_index = ?3 WHERE key = ?1 AND version = ?2",
        params![space.key(name), version, index],
    )?;
    Ok(())
}

/// Takes back [`set_log_index`] for a commit that did not happen.
pub fn clear_log_index(conn: &Conn, space: &Space, name: &str, version: &str) -> Result<()> {
    conn.execute(
        "UPDATE upstream_versions SET log_index = NULL WHERE key = ?1 AND version = ?2",
        params![space.key(name), version],
    )?;
    Ok(())
}

/// The log entries of a cached package's versions, by version.
pub fn log_indexes(conn: &Conn, space: &Space, name: &str) -> Result<HashMap<String, u64>> {
    let rows: Vec<(String, u64)> = conn.query(
        "SELECT version, log_index FROM upstream_versions WHERE key = ?1 AND log_index IS NOT NULL",
        params![space.key(name)],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(rows.into_iter().collect())
}

/// Every cached package of the space and where it came from, by key: what
/// the static job derives their documents with.
pub fn origins(conn: &Conn, space: &Space) -> Result<HashMap<String, crate::derive::Origin>> {
    let sql = concat!("SELECT key, upstream FROM upstream_packages WHERE ", in_space!("key", 1));
    let packages: Vec<(String, String)> =
        conn.query(sql, params![space.key_prefix()], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut out: HashMap<String, crate::derive::Origin> = packages
        .into_iter()
        .map(|(key, upstream)| {
            (key, crate::derive::Origin { upstream: Some(upstream), ..Default::default() })
        })
        .collect();
    let sql = concat!(
        "SELECT key, version, log_index FROM upstream_versions WHERE log_index IS NOT NULL AND ",
        in_space!("key", 1)
    );
    let leaves: Vec<(String, String, u64)> =
        conn.query(sql, params![space.key_prefix()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    for (key, version, index) in leaves {
        if let Some(origin) = out.get_mut(&key) {
            origin.log_indexes.insert(version, index);
        }
    }
    // Keyed as the static job looks them up: the canonical name, no space prefix.
    Ok(out.into_iter().map(|(k, o)| (space.own(&k).unwrap_or(&k).to_string(), o)).collect())
}

/// A version whose line names a blob: what a miss for it fetches.
#[derive(Debug, Clone)]
pub struct BlobSource {
    /// As the index spells it.
    pub name: String,
    pub version: String,
    pub upstream: String,
}

/// The cached versions (of this space) whose lines name `cksum`.
pub fn blob_sources(conn: &Conn, space: &Space, cksum: &str) -> Result<Vec<BlobSource>> {
    let sql = concat!(
        "SELECT name, version, upstream FROM upstream_versions WHERE cksum = ?1 AND ",
        in_space!("key", 2),
        " ORDER BY key, version"
    );
    conn.query(sql, params![cksum, space.key_prefix()], |r| {
        Ok(BlobSource { name: r.get(0)?, version: r.get(1)?, upstream: r.get(2)? })
    })
}

/// Records a fetch of a cached version's blob (eviction goes by it).
pub fn fetched(conn: &Conn, space: &Space, cksum: &str, size: u64, at_ms: i64) -> Result<()> {
    let sql = concat!(
        "UPDATE upstream_versions SET fetched_ms = ?2, size = ?3 WHERE cksum = ?1 AND ",
        in_space!("key", 4)
    );
    conn.execute(sql, params![cksum, at_ms, size, space.key_prefix()])?;
    Ok(())
}

/// An evicted blob: fetched again on its next miss.
pub fn evicted(conn: &Conn, space: &Space, cksum: &str) -> Result<()> {
    let sql =
        concat!("UPDATE upstream_versions SET fetched_ms = NULL WHERE cksum = ?1 AND ", in_space!("key", 2));
    conn.execute(sql, params![cksum, space.key_prefix()])?;
    Ok(())
}

/// The cached blobs of one upstream, least recently fetched first:
/// (checksum, size).
pub fn blobs_by_age(conn: &Conn, space: &Space, upstream: &str) -> Result<Vec<(String, u64)>> {
    let sql = concat!(
        "SELECT cksum, MAX(size), MAX(fetched_ms) AS at FROM upstream_versions
         WHERE upstream = ?1 AND fetched_ms IS NOT NULL AND ",
        in_space!("key", 2),
        " GROUP BY cksum ORDER BY at, cksum"
    );
    conn.query(sql, params![upstream, space.key_prefix()], |r| Ok((r.get(0)?, r.get(1)?)))
}

/// One cached package as `cairn upstream list` shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    pub upstream: String,
    pub versions: u64,
    pub blobs: u64,
    pub bytes: u64,
    pub checked_ms: i64,
}

pub fn list(conn: &Conn, space: &Space) -> Result<Vec<Listed>> {
    let sql = concat!(
        "SELECT p.key, p.upstream, p.checked_ms,
                (SELECT COUNT(*) FROM upstream_versions v WHERE v.key = p.key),
                (SELECT COUNT(*) FROM upstream_versions v WHERE v.key = p.key AND v.fetched_ms IS NOT NULL),
                (SELECT COALESCE(SUM(v.size), 0) FROM upstream_versions v WHERE v.key = p.key AND v.fetched_ms IS NOT NULL)
         FROM upstream_packages p WHERE ",
        in_space!("p.key", 1),
        " ORDER BY p.key"
    );
    conn.query(sql, params![space.key_prefix()], |r| {
        let key: String = r.get(0)?;
        Ok(Listed {
            name: space.own(&key).unwrap_or(&key).to_string(),
            upstream: r.get(1)?,
            checked_ms: r.get(2)?,
            versions: r.get(3)?,
            blobs: r.get(4)?,
            bytes: r.get(5)?,
        })
    })
}

/// Forgets a cached package (its lines left the index: a claim).
pub fn forget(conn: &Conn, space: &Space, name: &str) -> Result<()> {
    let key = space.key(name);
    conn.execute("DELETE FROM upstream_versions WHERE key = ?1", params![key])?;
    conn.execute("DELETE FROM upstream_packages WHERE key = ?1", params![key])?;
    Ok(())
}

pub fn claimed(conn: &Conn, space: &Space, name: &str) -> Result<bool> {
    let row: Option<i64> =
        conn.query_opt("SELECT 1 FROM upstream_claims WHERE key = ?1", params![space.key(name)], |r| {
            r.get(0)
        })?;
    Ok(row.is_some())
}

/// Claims a name for local use; false if it was claimed already.
pub fn claim(conn: &Conn, space: &Space, name: &str) -> Result<bool> {
    let n = conn.execute(
        "INSERT INTO upstream_claims (key, claimed_at) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
        params![space.key(name), now()],
    )?;
    Ok(n == 1)
}
