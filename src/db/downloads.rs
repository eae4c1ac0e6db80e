//! The download tables (SPEC section 9): the fingerprints of every counted
//! access-log line (`stats_seen`), the daily counts and the all-time totals
//! (`stats_daily`, `stats_totals`), and the queries that read them for the
//! documents. The stats job writes them (`crate::jobs::stats`); every write
//! group reads a package's totals for its documents.

use anyhow::Result;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};

use super::space::in_space;
use super::{Conn, Space};
use crate::params;

/// Downloads by version, per canonical package name.
pub type Totals = HashMap<String, crate::derive::Downloads>;

/// Downloads by canonical package name, then version as published.
pub fn version_totals(conn: &Conn) -> Result<Totals> {
    let rows = conn.query("SELECT package, vers, total FROM stats_totals", params![], |r| {
        Ok((r.get::<String>(0)?, r.get(1)?, r.get::<i64>(2)? as u64))
    })?;
    let mut out = Totals::new();
    for (package, vers, total) in rows {
        out.entry(package).or_default().insert(vers, total);
    }
    Ok(out)
}

/// One package's downloads by version (for the documents a publish rewrites).
pub fn package_totals(conn: &Conn, space: &Space, name: &str) -> Result<crate::derive::Downloads> {
    let rows = conn.query(
        "SELECT vers, total FROM stats_totals WHERE package = ?1",
        params![space.key(name)],
        |r| Ok((r.get(0)?, r.get::<i64>(1)? as u64)),
    )?;
    Ok(rows.into_iter().collect())
}

/// The public registry's versions that can be downloaded, as (canonical
/// package, version as published, SHA-256 hex): deleted versions too (their
/// old downloads were real); a private organisation's are not counted.
pub fn public_blobs(conn: &Conn) -> Result<Vec<(String, String, String)>> {
    conn.query(
        concat!("SELECT package, vers, sha256 FROM versions WHERE ", in_space!("package", 1)),
        params![Space::Public.key_prefix()],
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<String>(2)?)),
    )
}

/// The first UTC day a line can be counted on: `window_days` before today,
/// and never before an earlier run's start (the fingerprints of the days
/// before it were dropped, whatever the setting is now). None: no window yet.
pub fn window_start(conn: &Conn, window_days: u32) -> Result<Option<u32>> {
    let stored: Option<u32> =
        conn.query_opt("SELECT value FROM counters WHERE name = 'stats_window_start'", params![], |r| {
            r.get(0)
        })?;
    let today = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() / 86_400;
    let configured = (window_days > 0).then(|| today.saturating_sub(u64::from(window_days)) as u32);
    Ok(stored.max(configured))
}

/// Forgets the fingerprints of the days before `start`, which becomes the
/// window's start (it never moves back).
pub fn expire_before(tx: &Conn, start: u32) -> Result<()> {
    tx.execute("DELETE FROM stats_seen WHERE day < ?1", params![start])?;
    tx.execute(
        "INSERT INTO counters (name, value) VALUES ('stats_window_start', ?1)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value WHERE counters.value < excluded.value",
        params![start],
    )?;
    Ok(())
}

/// A counted line: its fingerprint, UTC day (days since 1970-01-01) and version id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub fp: u64,
    pub day: u32,
    pub ver: u32,
}

/// Merges the run's fingerprints (sorted by (day, fp), no repeats) into
/// `stats_seen`; returns the records no earlier run counted and how many
/// earlier runs had counted.
pub fn merge_seen(tx: &Conn, recs: &[Record]) -> Result<(Vec<Record>, usize)> {
    // Groups of one (day, bucket) row each, in order.
    let mut groups: Vec<(u32, u8, &[Record])> = Vec::new();
    let mut i = 0;
    while i < recs.len() {
        let (day, bucket) = (recs[i].day, (recs[i].fp >> 56) as u8);
        let mut j = i + 1;
        while j < recs.len() && recs[j].day == day && (recs[j].fp >> 56) as u8 == bucket {
            j += 1;
        }
        groups.push((day, bucket, &recs[i..j]));
        i = j;
    }
    let mut stored: Vec<Option<Vec<u8>>> = Vec::with_capacity(groups.len());
    for (day, bucket, _) in &groups {
        let get = "SELECT fps FROM stats_seen WHERE day = ?1 AND bucket = ?2";
        stored.push(tx.query_opt(get, params![day, bucket], |r| r.get::<Vec<u8>>(0))?);
    }
    let merged: Vec<(Vec<Record>, Vec<u8>)> = groups
        .par_iter()
        .zip(stored.par_iter())
        .map(|((_, _, new), old)| {
            let old: &[u8] = old.as_deref().unwrap_or(&[]);
            let old_at = |k: usize| u64::from_le_bytes(old[k * 8..k * 8 + 8].try_into().expect("8 bytes"));
            let n_old = old.len() / 8;
            let mut fresh = Vec::new();
            let mut out = Vec::with_capacity(old.len() + new.len() * 8);
            let (mut a, mut b) = (0, 0);
            while a < n_old || b < new.len() {
                if b == new.len() || (a < n_old && old_at(a) < new[b].fp) {
                    out.extend_from_slice(&old_at(a).to_le_bytes());
                    a += 1;
                } else if a < n_old && old_at(a) == new[b].fp {
                    out.extend_from_slice(&old_at(a).to_le_bytes());
                    a += 1;
                    b += 1;
                } else {
                    out.extend_from_slice(&new[b].fp.to_le_bytes());
                    fresh.push(new[b]);
                    b += 1;
                }
            }
            (fresh, out)
        })
        .collect();
    let put = "INSERT INTO stats_seen (day, bucket, fps) VALUES (?1, ?2, ?3)
               ON CONFLICT (day, bucket) DO UPDATE SET fps = excluded.fps";
    let mut fresh = Vec::new();
    for ((day, bucket, _), (f, bytes)) in groups.iter().zip(merged) {
        if !f.is_empty() {
            tx.execute(put, params![day, bucket, bytes])?;
        }
        fresh.extend(f);
    }
    let seen_before = recs.len() - fresh.len();
    Ok((fresh, seen_before))
}

/// Adds the new downloads to the daily counts and the all-time totals;
/// returns the packages (canonical names) whose totals changed.
pub fn record_counts(tx: &Conn, versions: &[(String, String)], fresh: &[Record]) -> Result<HashSet<String>> {
    // `fresh` is sorted by day: count one day at a time in a dense array,
    // then write the rows in key order (B-tree appends, not random inserts).
    let n = versions.len();
    let mut day_counts = vec![0u64; n];
    let mut totals = vec![0u64; n];
    let mut touched: Vec<u32> = Vec::new();
    let mut rows: Vec<(u32, &str, &str, u64)> = Vec::new();
    for day_recs in fresh.chunk_by(|a, b| a.day == b.day) {
        for r in day_recs {
            if day_counts[r.ver as usize] == 0 {
                touched.push(r.ver);
            }
            day_counts[r.ver as usize] += 1;
        }
        for ver in touched.drain(..) {
            let c = std::mem::take(&mut day_counts[ver as usize]);
            totals[ver as usize] += c;
            let (package, vers) = &versions[ver as usize];
            rows.push((day_recs[0].day, package, vers, c));
        }
    }
    rows.par_sort_unstable();
    let daily = "INSERT INTO stats_daily (day, package, vers, count) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (day, package, vers) DO UPDATE SET count = stats_daily.count + excluded.count";
    for (day, package, vers, c) in rows {
        tx.execute(daily, params![day, package, vers, c as i64])?;
    }
    let upsert = "INSERT INTO stats_totals (package, vers, total) VALUES (?1, ?2, ?3)
         ON CONFLICT (package, vers) DO UPDATE SET total = stats_totals.total + excluded.total";
    let mut by_key: Vec<(&str, &str, u64)> = totals
        .iter()
        .enumerate()
        .filter(|(_, t)| **t > 0)
        .map(|(i, t)| (versions[i].0.as_str(), versions[i].1.as_str(), *t))
        .collect();
    by_key.sort_unstable();
    for (package, vers, t) in &by_key {
        tx.execute(upsert, params![package, vers, *t as i64])?;
    }
    Ok(by_key.into_iter().map(|(package, _, _)| package.to_string()).collect())
}
