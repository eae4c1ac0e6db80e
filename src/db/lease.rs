//! The writer lease (SPEC section 13): one row saying which `cairn serve`
//! may write and until when, with an epoch that moves on every taking, so
//! several servers on one database and one bucket write one at a time.
//! The public registry's is `writer_lease`'s one row; each private
//! organisation's registry has its own in `registry_leases`.
//! Times are the servers' clocks in milliseconds (kept by NTP; the lease
//! lasts seconds, far above their skew).

use anyhow::Result;

use super::{Conn, Space};
use crate::params;

/// The table and row of a registry's lease (a slug is `[a-z0-9-]`: safe
/// as a literal).
fn split(space: &Space) -> (&'static str, String) {
    match space {
        Space::Public => ("writer_lease", "id = 1".into()),
        Space::Org(slug) => ("registry_leases", format!("registry = '{slug}'")),
    }
}

/// This process's name as a holder of leases and claims: host, pid and a
/// random part (a restarted process is another holder).
pub fn holder_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    format!("{}:{}:{:08x}", host.trim(), std::process::id(), rand::random::<u32>())
}

/// A lease taken: its epoch, and whether the previous holder let it go
/// (`false`: it expired, so that holder may have stopped mid-write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub epoch: i64,
    pub released: bool,
}

/// Takes the lease for `holder` until `now_ms + ttl_ms` if it is free,
/// expired, or already `holder`'s; `None` while another holds it.
pub fn take(conn: &Conn, space: &Space, holder: &str, now_ms: i64, ttl_ms: i64) -> Result<Option<Taken>> {
    let (table, which) = split(space);
    if let Some(slug) = space.org() {
        conn.execute(
            "INSERT INTO registry_leases (registry, holder, epoch, expires_ms) VALUES (?1, NULL, 0, 0)
             ON CONFLICT DO NOTHING",
            params![slug],
        )?;
    }
    let Some((current, epoch, expires)) = conn.query_opt(
        &format!("SELECT holder, epoch, expires_ms FROM {table} WHERE {which}"),
        params![],
        |r| Ok((r.get::<Option<String>>(0)?, r.get::<i64>(1)?, r.get::<i64>(2)?)),
    )?
    else {
        return Ok(None);
    };
    let free = current.is_none() || expires < now_ms || current.as_deref() == Some(holder);
    if !free {
        return Ok(None);
    }
    // Conditional on the epoch read: two takers at once, one wins.
    let won = conn.execute(
        &format!(
            "UPDATE {table} SET holder = ?1, epoch = epoch + 1, expires_ms = ?2 WHERE {which} AND epoch = ?3"
        ),
        params![holder, now_ms + ttl_ms, epoch],
    )? == 1;
    Ok(won.then_some(Taken { epoch: epoch + 1, released: current.is_none() }))
}

/// Extends `holder`'s lease of `epoch`; `false` if it is no longer theirs.
pub fn renew(conn: &Conn, space: &Space, holder: &str, epoch: i64, now_ms: i64, ttl_ms: i64) -> Result<bool> {
    let (table, which) = split(space);
    Ok(conn.execute(
        &format!("UPDATE {table} SET expires_ms = ?3 WHERE {which} AND holder = ?1 AND epoch = ?2"),
        params![holder, epoch, now_ms + ttl_ms],
    )? == 1)
}

/// Lets the lease go (a server between writes), keeping its epoch;
/// whether it was still `holder`'s.
pub fn release(conn: &Conn, space: &Space, holder: &str, epoch: i64) -> Result<bool> {
    let (table, which) = split(space);
    Ok(conn.execute(
        &format!("UPDATE {table} SET holder = NULL WHERE {which} AND holder = ?1 AND epoch = ?2"),
        params![holder, epoch],
    )? == 1)
}
