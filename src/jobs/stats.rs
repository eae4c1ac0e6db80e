//! Download statistics from web-server access logs (SPEC sections 6 and 9).
//!
//! `cairn rebuild stats --access-log FILE…` reads logs in the combined format
//! (nginx's and Apache's default; `.gz` rotated copies too, recognised by
//! their magic bytes), counts `GET …/blobs/sha256/{64 hex}` answered 200 or
//! 206 per version per UTC day, and writes the statistics documents.
//!
//! # Never counting a line twice
//!
//! Every counted line gets a 64-bit fingerprint: XXH3-64 of the line's bytes
//! (without its line ending), and, for the k-th repetition (k ≥ 1) of a
//! byte-identical line within one file, XXH3-64 of (that hash, k). Identical
//! lines are rare (the line holds the client address, the second and the user
//! agent) but real: two downloads of one file by one client in one second
//! both count, because they get different occurrence indices.
//!
//! The fingerprints of every line ever counted are kept in the state
//! database, table `stats_seen`: one row per (UTC day of the line, top byte
//! of the fingerprint), holding the row's fingerprints as a sorted array of
//! little-endian u64 (8 bytes per counted download; a row stays small even on
//! busy days, and a run reads and rewrites only the rows its lines fall in).
//! With `stats_window_days` set, lines dated before the window are skipped
//! and the rows of those days deleted; the window's start is kept in
//! `counters` (`stats_window_start`) and never moves back.
//! A run sorts its new fingerprints by (day, fingerprint), drops repeats among
//! them (the same file given twice, or a file and its rotated copy), merges
//! each row with the stored one, and counts only what the stored row did not
//! hold. Counts (`stats_daily`, `stats_totals`) and fingerprints change in one
//! SQLite transaction, so a crash counts a log either wholly or not at all.
//!
//! Consequences: reading a file again, a renamed or gzipped copy, or a file
//! that has grown since (its old lines keep their occurrence indices) counts
//! only lines never counted before. The one false merge: a line byte-identical
//! to one in another file (same client, second, path and agent) that falls on
//! both sides of a rotation is counted once. Two different lines share a
//! fingerprint with probability about n²/2⁶⁵ for n downloads in one day.
//!
//! # Documents
//!
//! Every package with a live version gets `api/v1/packages/{name}/stats.json`
//! (compact JSON), then `api/v1/stats.json` is written. Each file is written
//! only when its bytes change, to a temporary sibling renamed over it; one
//! `syncfs` makes the package documents durable before the registry document
//! is written (durably, through the static root). Documents are rebuilt from the
//! database every run, so a crash before the sync is repaired by the next.
//!
//! # Where the parts are
//!
//! The logs are read and parsed by `crate::access_log`; the tables and their
//! queries are `crate::db::downloads`'s; this job ties them together and
//! writes the documents.

use crate::db::Conn;
use crate::params;
use anyhow::{Context, Result};
use rayon::prelude::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

use crate::access_log::{date, scan_file, BlobMap, Tally};
use crate::db::downloads::{self, merge_seen, record_counts, version_totals, Record, Totals};
use crate::registry::Registry;

/// Days in the daily series and the `recent90d` window.
pub const WINDOW_DAYS: i64 = 90;
/// Entries in each top list of `/api/v1/stats.json`.
pub const TOP: usize = 100;

/// Counts the given logs (nothing twice) and rewrites every statistics
/// document; returns the report, the packages whose totals changed and the
/// download totals after the run.
pub fn run(reg: &Registry, logs: &[PathBuf]) -> Result<(Value, HashSet<String>, Totals)> {
    let started = Instant::now();
    let conn = reg.db()?;
    let blobs = BlobMap::load(&conn, &reg.store)?;
    let mut tally = Tally::default();
    let mut records: Vec<Record> = Vec::new();
    let mut files = Vec::new();
    // Files in parallel as well as the blocks of each: a gzip'd log is
    // inflated by one thread, so rotated copies would otherwise use one core.
    let scanned: Vec<(Tally, Vec<Record>)> =
        logs.par_iter().map(|path| scan_file(path, &blobs)).collect::<Result<_>>()?;
    for (path, (file_tally, mut recs)) in logs.iter().zip(scanned) {
        files.push(json!({
            "path": path.display().to_string(),
            "lines": file_tally.lines,
            "counted": recs.len(),
            "malformed": file_tally.malformed,
            "partialLastLineBytes": file_tally.partial_bytes,
        }));
        tally.add(&file_tally);
        records.append(&mut recs);
    }
    let parsed_at = started.elapsed().as_secs_f64();

    // Lines before the window are not counted: their fingerprints are gone.
    let window_start = downloads::window_start(&conn, reg.config.stats_window_days)?;
    let in_run = records.len();
    if let Some(start) = window_start {
        records.retain(|r| r.day >= start);
    }
    let expired = in_run - records.len();

    // Repeats among this run's files, then against what earlier runs counted.
    records.par_sort_unstable_by_key(|r| (r.day, r.fp));
    let before = records.len();
    records.dedup_by_key(|r| (r.day, r.fp));
    let repeats_in_run = before - records.len();
    let sorted_at = started.elapsed().as_secs_f64();
    // Alone among the statistics jobs of every server (a read, merge and
    // write of the fingerprints: two at once would count a line twice).
    let tx = conn.transaction_locked(crate::db::conn::STATS_LOCK)?;
    let (fresh, seen_before) = merge_seen(&tx, &records)?;
    if let Some(start) = window_start {
        downloads::expire_before(&tx, start)?;
    }
    let seen_at = started.elapsed().as_secs_f64();
    let touched = record_counts(&tx, &blobs.versions, &fresh)?;
    tx.commit()?;
    let counted_at = started.elapsed().as_secs_f64();

    let totals = version_totals(&conn)?;
    let written = write_documents(reg, &conn, &totals)?;
    let secs = started.elapsed().as_secs_f64();
    let days = fresh.iter().map(|r| r.day).fold(None, |acc: Option<(i64, i64)>, d| {
        let d = d as i64;
        Some(acc.map_or((d, d), |(lo, hi)| (lo.min(d), hi.max(d))))
    });
    let report = json!({
        "files": files,
        "lines": tally.lines,
        "bytes": tally.bytes,
        "counted": fresh.len(),
        "duplicatesSkipped": repeats_in_run + seen_before,
        "expiredSkipped": expired,
        "windowStart": window_start.map(|d| date(d as i64)),
        "malformedSkipped": tally.malformed,
        "malformedSamples": tally.samples,
        "notDownloads": tally.ignored,
        "unknownBlobs": tally.unknown,
        "daysCounted": days.map(|(lo, hi)| json!({"from": date(lo), "through": date(hi)})),
        "documents": written,
        "seconds": {
            "parse": round3(parsed_at),
            "count": round3(counted_at - parsed_at),
            "sort": round3(sorted_at - parsed_at),
            "dedupe": round3(seen_at - sorted_at),
            "record": round3(counted_at - seen_at),
            "documents": round3(secs - counted_at),
            "total": round3(secs),
        },
        "linesPerSecond": if parsed_at > 0.0 { (tally.lines as f64 / parsed_at).round() } else { 0.0 },
    });
    Ok((report, touched, totals))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One package's figures, for the registry document.
struct PackageRow {
    name: String,
    total: u64,
    recent: u64,
    last7: u64,
    daily: Vec<u64>,
}

/// One live version's figures.
struct VersionStats {
    vers: String,
    semver: Option<semver::Version>,
    total: u64,
    recent: u64,
    last7: u64,
    /// Downloads per day of the window, oldest first.
    daily: Vec<u64>,
}

/// Writes every package's `stats.json` and the registry's; returns counts.
fn write_documents(reg: &Registry, conn: &Conn, totals: &Totals) -> Result<Value> {
    let through: Option<i64> = conn.query_row("SELECT MAX(day) FROM stats_daily", params![], |r| r.get(0))?;
    let first = through.map_or(0, |t| t - WINDOW_DAYS + 1);
    let mut window: HashMap<(String, String), Vec<u64>> = HashMap::new();
    if let Some(t) = through {
        let rows = conn.query(
            "SELECT day, package, vers, count FROM stats_daily WHERE day >= ?1 AND day <= ?2",
            params![first, t],
            |r| Ok((r.get::<i64>(0)?, r.get::<String>(1)?, r.get::<String>(2)?, r.get::<i64>(3)?)),
        )?;
        for (day, package, vers, count) in rows {
            let series = window.entry((package, vers)).or_insert_with(|| vec![0; WINDOW_DAYS as usize]);
            series[(day - first) as usize] += count as u64;
        }
    }
    // Live versions by package: (display name, versions).
    let mut packages: HashMap<String, (String, Vec<VersionStats>)> = HashMap::new();
    let rows = conn.query(
        concat!(
            "SELECT v.package, p.name, v.vers FROM versions v JOIN packages p ON p.key = v.package
             WHERE v.deleted_at IS NULL AND ",
            crate::db::space::in_space!("v.package", 1)
        ),
        params![crate::db::Space::Public.key_prefix()],
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<String>(2)?)),
    )?;
    for (key, name, vers) in rows {
        let k = (key, vers);
        let daily = window.remove(&k).unwrap_or_else(|| vec![0; WINDOW_DAYS as usize]);
        let recent = daily.iter().sum();
        let last7 = daily[daily.len() - 7..].iter().sum();
        let (key, vers) = k;
        let v = VersionStats {
            semver: semver::Version::parse(&vers).ok(),
            total: totals.get(&key).and_then(|d| d.get(&vers)).copied().unwrap_or(0),
            vers,
            recent,
            last7,
            daily,
        };
        packages.entry(key).or_insert_with(|| (name, Vec::new())).1.push(v);
    }
    let through_date = through.map(date);
    let dates: Vec<String> = (0..WINDOW_DAYS).map(|i| date(first + i)).collect();
    let series = |daily: &[u64]| -> Value {
        match through {
            Some(_) => Value::Array(
                daily.iter().zip(&dates).map(|(n, d)| json!({"date": d, "downloads": n})).collect(),
            ),
            None => json!([]),
        }
    };
    let mut list: Vec<(String, Vec<VersionStats>)> = packages.into_values().collect();
    list.par_sort_unstable_by(|a, b| a.0.to_ascii_lowercase().cmp(&b.0.to_ascii_lowercase()));
    let results: Vec<Result<(bool, PackageRow)>> = list
        .par_iter_mut()
        .map(|(name, versions)| {
            versions.sort_by(|a, b| match (&b.semver, &a.semver) {
                (Some(x), Some(y)) => x.cmp(y),
                _ => b.vers.cmp(&a.vers),
            });
            let total: u64 = versions.iter().map(|v| v.total).sum();
            let recent: u64 = versions.iter().map(|v| v.recent).sum();
            let last7: u64 = versions.iter().map(|v| v.last7).sum();
            let mut daily = vec![0u64; WINDOW_DAYS as usize];
            for v in versions.iter() {
                for (d, n) in daily.iter_mut().zip(&v.daily) {
                    *d += n;
                }
            }
            let doc = json!({
                "name": name,
                "total": total,
                "recent90d": recent,
                "last7d": last7,
                "dataThrough": through_date,
                "daily": series(&daily),
                "versions": versions.iter().map(|v| json!({
                    "version": v.vers, "downloads": v.total, "recent90d": v.recent, "last7d": v.last7,
                })).collect::<Vec<_>>(),
            });
            // Compact: 200 000 of these with a 90-day series each.
            let mut bytes = serde_json::to_vec(&doc)?;
            bytes.push(b'\n');
            let key = reg.root.layout().package_stats(name);
            // Compared even on a bucket: a batch job skips the unchanged
            // thousands (a GET costs less than a PUT, and keeps the version).
            let old = reg.root.read(&key)?;
            let wrote = reg
                .root
                .put_if_changed(&key, old.as_deref(), &bytes)
                .with_context(|| format!("writing {key}"))?;
            Ok((wrote, PackageRow { name: name.clone(), total, recent, last7, daily }))
        })
        .collect();
    let mut written = 0u64;
    let mut rows = Vec::with_capacity(results.len());
    for r in results {
        let (wrote, row) = r?;
        written += u64::from(wrote);
        rows.push(row);
    }
    let mut registry_daily = vec![0u64; WINDOW_DAYS as usize];
    for row in &rows {
        for (d, n) in registry_daily.iter_mut().zip(&row.daily) {
            *d += n;
        }
    }
    let top = |key: &dyn Fn(&PackageRow) -> u64| -> Value {
        let mut v: Vec<(&str, u64)> =
            rows.iter().map(|r| (r.name.as_str(), key(r))).filter(|(_, n)| *n > 0).collect();
        v.sort_unstable_by(|a, b| {
            b.1.cmp(&a.1).then_with(|| a.0.to_ascii_lowercase().cmp(&b.0.to_ascii_lowercase()))
        });
        v.truncate(TOP);
        json!(v.into_iter().map(|(name, n)| json!({"name": name, "downloads": n})).collect::<Vec<_>>())
    };
    let doc = json!({
        "dataThrough": through_date,
        "total": rows.iter().map(|r| r.total).sum::<u64>(),
        "recent90d": rows.iter().map(|r| r.recent).sum::<u64>(),
        "last7d": rows.iter().map(|r| r.last7).sum::<u64>(),
        "packages": rows.len(),
        "versions": list.iter().map(|(_, v)| v.len()).sum::<usize>(),
        "daily": series(&registry_daily),
        "topAllTime": top(&|r| r.total),
        "topRecent90d": top(&|r| r.recent),
    });
    let sync_started = Instant::now();
    if written > 0 {
        reg.root.sync().context("syncing the statistics documents")?;
    }
    let sync_secs = sync_started.elapsed().as_secs_f64();
    // The registry document last, durably, once every package's is.
    let top_doc = reg.root.layout().stats();
    let bytes = crate::derive::to_bytes(&doc);
    if reg.root.read(&top_doc)?.is_none_or(|old| old != bytes) {
        reg.root.put_durable(&top_doc, &bytes).with_context(|| format!("writing {top_doc}"))?;
        written += 1;
    }
    crate::site::write_stats(&reg.root)?;
    Ok(
        json!({"written": written, "unchanged": rows.len() as u64 + 1 - written, "syncSeconds": round3(sync_secs)}),
    )
}
