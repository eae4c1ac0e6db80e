//! The `pending_effects` table: what committed writes still owe, by their
//! stored form (`crate::effect::Effect::encode`), in a registry's space.

use anyhow::Result;

use super::space::in_space;
use super::{now, params, Conn, Space};

/// Effects a write group of the space could not make yet (a package's
/// derived files, its owners document), by key, with the error; retried
/// by that space's writer.
pub fn pending_effects(conn: &Conn, space: &Space) -> Result<Vec<(String, String)>> {
    let sql = concat!("SELECT key, error FROM pending_effects WHERE ", in_space!("key", 1), " ORDER BY key");
    let rows: Vec<(String, String)> =
        conn.query(sql, params![space.key_prefix()], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.into_iter().filter_map(|(k, e)| Some((space.own(&k)?.to_string(), e))).collect())
}

pub fn add_pending_effect(conn: &Conn, space: &Space, key: &str, error: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO pending_effects (key, error, since) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET error = excluded.error",
        params![space.pending_key(key), error, now()],
    )?;
    Ok(())
}

pub fn clear_pending_effect(conn: &Conn, space: &Space, key: &str) -> Result<()> {
    conn.execute("DELETE FROM pending_effects WHERE key = ?1", params![space.pending_key(key)])?;
    Ok(())
}

/// [`add_pending_effect`] for each key, in one transaction: one flush of
/// the database for a group's effects, not one per effect.
pub fn add_pending_effects(conn: &Conn, space: &Space, keys: &[String], error: &str) -> Result<()> {
    let txn = conn.transaction()?;
    keys.iter().try_for_each(|key| add_pending_effect(&txn, space, key, error))?;
    txn.commit()
}

/// [`clear_pending_effect`] for each key, in one transaction.
pub fn clear_pending_effects(conn: &Conn, space: &Space, keys: &[String]) -> Result<()> {
    let txn = conn.transaction()?;
    keys.iter().try_for_each(|key| clear_pending_effect(&txn, space, key))?;
    txn.commit()
}
