//! Which packages depend on which (SPEC section 19's dependents): each
//! package's newest version's dependencies in its own registry, kept by the
//! package derivation's callers, and the dependents of a package by
//! downloads, as its `dependents.json` and page show them.

use anyhow::Result;
use std::collections::{BTreeMap, HashMap};

use super::space::in_space;
use super::{Conn, Space};
use crate::params;

/// The most dependents a document lists (the count is of all of them).
pub const LISTED: usize = 100;

/// A package's dependents: the first [`LISTED`] by downloads, and how many
/// there are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dependents {
    /// (name as the index spells it, all-time downloads), most downloaded first.
    pub listed: Vec<(String, u64)>,
    pub total: usize,
}

/// Records `deps` (names) as the dependencies of `name`'s newest version
/// (none: it has no version left); returns the dependencies whose
/// dependents changed (added or dropped), by the name the dependent gave.
pub fn set(conn: &Conn, space: &Space, name: &str, deps: &[String]) -> Result<Vec<String>> {
    let key = space.key(name);
    let before: BTreeMap<String, String> = conn
        .query(
            "SELECT dependency, dependency_name FROM package_dependencies WHERE key = ?1",
            params![key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .into_iter()
        .collect();
    let after: BTreeMap<String, String> =
        deps.iter().map(|d| (space.key(d), d.clone())).filter(|(k, _)| *k != key).collect();
    if before.keys().eq(after.keys()) {
        return Ok(Vec::new());
    }
    let txn = conn.transaction()?;
    txn.execute("DELETE FROM package_dependencies WHERE key = ?1", params![key])?;
    for (dep, dep_name) in &after {
        txn.execute(
            "INSERT INTO package_dependencies (key, name, dependency, dependency_name) VALUES (?1, ?2, ?3, ?4)",
            params![key, name, dep, dep_name],
        )?;
    }
    txn.commit()?;
    let gone = before.iter().filter(|(k, _)| !after.contains_key(*k));
    let new = after.iter().filter(|(k, _)| !before.contains_key(*k));
    Ok(gone.chain(new).map(|(_, n)| n.clone()).collect())
}

/// Dependents (dependency, dependent's name, its downloads) where `$condition` holds.
macro_rules! by_downloads {
    ($condition:expr) => {
        concat!(
            "SELECT d.dependency, d.name, COALESCE(SUM(t.total), 0) FROM package_dependencies d \
             LEFT JOIN stats_totals t ON t.package = d.key WHERE ",
            $condition,
            " GROUP BY d.dependency, d.key, d.name"
        )
    };
}

/// The dependents of `name`.
pub fn of(conn: &Conn, space: &Space, name: &str) -> Result<Dependents> {
    let rows = conn.query(by_downloads!("d.dependency = ?1"), params![space.key(name)], |r| {
        Ok((r.get::<String>(1)?, r.get::<i64>(2)? as u64))
    })?;
    Ok(ranked(rows))
}

/// The dependents of every package of `space` that has some, by key.
pub fn all(conn: &Conn, space: &Space) -> Result<HashMap<String, Dependents>> {
    let rows = conn.query(by_downloads!(in_space!("d.dependency", 1)), params![space.key_prefix()], |r| {
        Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<i64>(2)? as u64))
    })?;
    let mut by_key: HashMap<String, Vec<(String, u64)>> = HashMap::new();
    for (dep, name, n) in rows {
        by_key.entry(dep).or_default().push((name, n));
    }
    Ok(by_key.into_iter().map(|(k, rows)| (k, ranked(rows))).collect())
}

/// Most downloaded first, then by name; the first [`LISTED`].
fn ranked(mut rows: Vec<(String, u64)>) -> Dependents {
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let total = rows.len();
    rows.truncate(LISTED);
    Dependents { listed: rows, total }
}
