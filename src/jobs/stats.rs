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
//! # Speed
//!
//! A reader thread cuts the file (or the gzip stream) into blocks that end on
//! a line boundary; rayon parses blocks in parallel with byte slices (memchr,
//! no regex, no allocation per line). Only counted lines produce a record
//! (fingerprint, day, version id).

use crate::db::Conn;
use crate::params;
use anyhow::{Context, Result};
use rayon::prelude::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::registry::Registry;

/// Days in the daily series and the `recent90d` window.
pub const WINDOW_DAYS: i64 = 90;
/// Entries in each top list of `/api/v1/stats.json`.
pub const TOP: usize = 100;

const BLOCK: usize = 4 << 20;
const LINE_SEED: u64 = 0x6361_6972_6e2d_6c6e; // "cairn-ln"
const OCC_SEED: u64 = 0x6361_6972_6e2d_6f63; // "cairn-oc"
const MAX_SAMPLES: usize = 5;

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
pub fn package_totals(conn: &Conn, space: &crate::db::Space, name: &str) -> Result<crate::derive::Downloads> {
    let rows = conn.query(
        "SELECT vers, total FROM stats_totals WHERE package = ?1",
        params![space.key(name)],
        |r| Ok((r.get(0)?, r.get::<i64>(1)? as u64)),
    )?;
    Ok(rows.into_iter().collect())
}

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
    let window_start = window_start(&conn, reg.config.stats_window_days)?;
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
        tx.execute("DELETE FROM stats_seen WHERE day < ?1", params![start])?;
        tx.execute(
            "INSERT INTO counters (name, value) VALUES ('stats_window_start', ?1)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value WHERE counters.value < excluded.value",
            params![start],
        )?;
    }
    let seen_at = started.elapsed().as_secs_f64();
    let touched = record_counts(&tx, &blobs, &fresh)?;
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

/// The first UTC day a line can be counted on: `window_days` before today,
/// and never before an earlier run's start (the fingerprints of the days
/// before it were dropped, whatever the setting is now). None: no window yet.
fn window_start(conn: &Conn, window_days: u32) -> Result<Option<u32>> {
    let stored: Option<u32> =
        conn.query_opt("SELECT value FROM counters WHERE name = 'stats_window_start'", params![], |r| {
            r.get(0)
        })?;
    let today = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() / 86_400;
    let configured = (window_days > 0).then(|| today.saturating_sub(u64::from(window_days)) as u32);
    Ok(stored.max(configured))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A counted line: its fingerprint, UTC day (days since 1970-01-01) and version id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Record {
    fp: u64,
    day: u32,
    ver: u32,
}

#[derive(Default, Debug)]
struct Tally {
    lines: u64,
    bytes: u64,
    malformed: u64,
    ignored: u64,
    unknown: u64,
    samples: Vec<String>,
    /// Bytes of an unterminated last line, left for a later run.
    partial_bytes: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.lines += o.lines;
        self.bytes += o.bytes;
        self.malformed += o.malformed;
        self.ignored += o.ignored;
        self.unknown += o.unknown;
        for s in &o.samples {
            if self.samples.len() < MAX_SAMPLES {
                self.samples.push(s.clone());
            }
        }
    }
}

/// Hasher for keys that are already uniformly distributed (SHA-256 prefixes).
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Blob SHA-256 → version, from the `versions` table (deleted versions too:
/// their old downloads were real; documents list live versions only).
struct BlobMap {
    by_prefix: HashMap<u64, u32, BuildHasherDefault<Identity>>,
    /// (sha256, canonical package, version as published), indexed by id.
    versions: Vec<([u8; 32], String, String)>,
    /// Blob sizes, looked up for the first 206 of each blob.
    sizes: Vec<std::sync::OnceLock<Option<u64>>>,
    store: crate::store::BlobStore,
}

impl BlobMap {
    fn load(conn: &Conn, store: &crate::store::BlobStore) -> Result<BlobMap> {
        let mut versions = Vec::new();
        let mut by_prefix = HashMap::default();
        // The public registry's: a private organisation's downloads are not counted.
        let public = crate::db::Space::Public.holds("package");
        let rows = conn.query(
            &format!("SELECT package, vers, sha256 FROM versions WHERE {public}"),
            params![],
            |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<String>(2)?)),
        )?;
        for (package, vers, sha) in rows {
            let Some(bytes) = decode_hex32(sha.as_bytes()) else { continue };
            by_prefix.insert(prefix(&bytes), versions.len() as u32);
            versions.push((bytes, package, vers));
        }
        let sizes = (0..versions.len()).map(|_| std::sync::OnceLock::new()).collect();
        Ok(BlobMap { by_prefix, versions, sizes, store: store.clone() })
    }

    /// The stored blob's size (none once it is deleted).
    fn size(&self, id: u32) -> Option<u64> {
        let (sha, _, _) = &self.versions[id as usize];
        *self.sizes[id as usize].get_or_init(|| self.store.size(&crate::store::hex(sha)).ok().flatten())
    }

    fn get(&self, sha: &[u8; 32]) -> Option<u32> {
        let id = *self.by_prefix.get(&prefix(sha))?;
        (self.versions[id as usize].0 == *sha).then_some(id)
    }
}

fn prefix(sha: &[u8; 32]) -> u64 {
    u64::from_le_bytes(sha[..8].try_into().expect("8 bytes"))
}

fn decode_hex32(hex: &[u8]) -> Option<[u8; 32]> {
    fn nib(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = (nib(pair[0])? << 4) | nib(pair[1])?;
    }
    Some(out)
}

/// What one log line is.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A download: `GET …/blobs/sha256/{hex}` answered 200, or 206 with
    /// `partial` bytes sent (counted only if that is the whole blob, so
    /// the pieces of a resumed download are not each counted), on this UTC day.
    Download { day: i64, sha256: &'a [u8], partial: Option<u64> },
    /// A well-formed line that is not a counted download.
    Other,
    /// Not the combined (or common) log format.
    Malformed,
}

/// Parses one line of the combined log format:
/// `host ident user [10/Oct/2000:13:55:36 -0700] "GET /path HTTP/1.1" 200 2326 "referer" "agent"`
/// (the common format, without the last two fields, is accepted too).
pub fn parse_line(line: &[u8]) -> Line<'_> {
    parse(line).unwrap_or(Line::Malformed)
}

fn parse(line: &[u8]) -> Option<Line<'_>> {
    let lb = memchr::memchr(b'[', line)?;
    if lb < 5 || line[lb - 1] != b' ' {
        return None;
    }
    // "dd/Mon/yyyy:HH:MM:SS +zzzz]" is 27 bytes.
    let ts = line.get(lb + 1..lb + 28)?;
    if ts[26] != b']' {
        return None;
    }
    let day = utc_day(&ts[..26])?;
    let rest = &line[lb + 28..];
    let rest = rest.strip_prefix(b" \"")?;
    // The request ends at the first quote not escaped by a backslash.
    let mut end = 0;
    loop {
        let q = end + memchr::memchr(b'"', &rest[end..])?;
        let mut backslashes = 0;
        while q > backslashes && rest[q - 1 - backslashes] == b'\\' {
            backslashes += 1;
        }
        if backslashes % 2 == 0 {
            end = q;
            break;
        }
        end = q + 1;
    }
    let request = &rest[..end];
    let after = rest[end + 1..].strip_prefix(b" ")?;
    if after.len() < 3 || !after[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = &after[..3];
    let after = after[3..].strip_prefix(b" ")?;
    let size_end = memchr::memchr(b' ', after).unwrap_or(after.len());
    let size = &after[..size_end];
    if size.is_empty() || !(size == b"-" || size.iter().all(u8::is_ascii_digit)) {
        return None;
    }
    let tail = &after[size_end..];
    if !tail.is_empty() && (tail.len() < 3 || tail[1] != b'"' || !tail.ends_with(b"\"")) {
        return None;
    }
    if status != b"200" && status != b"206" {
        return Some(Line::Other);
    }
    let Some(target) = request.strip_prefix(b"GET ") else { return Some(Line::Other) };
    let target = &target[..memchr::memchr(b' ', target).unwrap_or(target.len())];
    let path = &target[..memchr::memchr2(b'?', b'#', target).unwrap_or(target.len())];
    const PREFIX: &[u8] = b"/blobs/sha256/";
    if path.len() < PREFIX.len() + 64 {
        return Some(Line::Other);
    }
    let (head, hex) = path.split_at(path.len() - 64);
    if !head.ends_with(PREFIX) || !hex.iter().all(u8::is_ascii_hexdigit) {
        return Some(Line::Other);
    }
    let partial = match status {
        b"206" => Some(std::str::from_utf8(size).ok().and_then(|s| s.parse().ok()).unwrap_or(0)),
        _ => None,
    };
    Some(Line::Download { day, sha256: hex, partial })
}

fn two(b: &[u8]) -> Option<i64> {
    let (a, c) = (b[0].wrapping_sub(b'0'), b[1].wrapping_sub(b'0'));
    (a < 10 && c < 10).then_some(i64::from(a) * 10 + i64::from(c))
}

/// `10/Oct/2000:13:55:36 -0700` → days since 1970-01-01 of the UTC instant.
fn utc_day(t: &[u8]) -> Option<i64> {
    if t[2] != b'/' || t[6] != b'/' || t[11] != b':' || t[14] != b':' || t[17] != b':' || t[20] != b' ' {
        return None;
    }
    let d = two(&t[0..2])?;
    let month = match &t[3..6] {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    };
    let y = two(&t[7..9])? * 100 + two(&t[9..11])?;
    let (h, m, s) = (two(&t[12..14])?, two(&t[15..17])?, two(&t[18..20])?);
    let sign = match t[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (oh, om) = (two(&t[22..24])?, two(&t[24..26])?);
    if !(1..=31).contains(&d) || h > 23 || m > 59 || s > 60 || oh > 23 || om > 59 || y < 1970 {
        return None;
    }
    let secs = days_from_civil(y, month, d) * 86400 + h * 3600 + m * 60 + s - sign * (oh * 3600 + om * 60);
    Some(secs.div_euclid(86400))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of a day number.
pub fn date(day: i64) -> String {
    let d = chrono::DateTime::from_timestamp(day * 86400, 0).expect("day in range");
    d.format("%Y-%m-%d").to_string()
}

/// What a block of lines gave.
struct BlockOut {
    index: usize,
    tally: Tally,
    /// (line hash, day, version id) of counted lines.
    recs: Vec<Record>,
    /// Line numbers (within the block, 1-based) of the first malformed lines.
    malformed_at: Vec<u64>,
}

fn scan_block(index: usize, block: &[u8], blobs: &BlobMap) -> BlockOut {
    let mut out = BlockOut { index, tally: Tally::default(), recs: Vec::new(), malformed_at: Vec::new() };
    out.tally.bytes = block.len() as u64;
    let mut start = 0;
    while start < block.len() {
        let end = memchr::memchr(b'\n', &block[start..]).map_or(block.len(), |i| start + i);
        let mut line = &block[start..end];
        start = end + 1;
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        out.tally.lines += 1;
        match parse_line(line) {
            Line::Download { day, sha256, partial } => {
                let ver = decode_hex32(sha256).and_then(|s| blobs.get(&s));
                if let (Some(sent), Some(id)) = (partial, ver) {
                    if blobs.size(id) != Some(sent) {
                        out.tally.ignored += 1;
                        continue;
                    }
                }
                match (ver, u32::try_from(day)) {
                    (Some(ver), Ok(day)) => {
                        let fp = xxhash_rust::xxh3::xxh3_64_with_seed(line, LINE_SEED);
                        out.recs.push(Record { fp, day, ver });
                    }
                    _ => out.tally.unknown += 1,
                }
            }
            Line::Other => out.tally.ignored += 1,
            Line::Malformed => {
                out.tally.malformed += 1;
                if out.malformed_at.len() < MAX_SAMPLES {
                    out.malformed_at.push(out.tally.lines);
                }
            }
        }
    }
    out
}

/// Reads a log (plain or gzip) and returns its tally and the records of its
/// counted lines with their occurrence-aware fingerprints.
fn scan_file(path: &Path, blobs: &BlobMap) -> Result<(Tally, Vec<Record>)> {
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic)?;
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let reader: Box<dyn Read + Send> = if magic[..n] == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(
            1 << 20,
            head.chain(file),
        )))
    } else {
        Box::new(head.chain(file))
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Vec<u8>)>(4);
    let display = path.display().to_string();
    let reader_thread = std::thread::spawn(move || -> std::io::Result<u64> {
        let mut reader = reader;
        let mut carry: Vec<u8> = Vec::new();
        let mut index = 0;
        let mut partial = 0;
        loop {
            let mut buf = std::mem::take(&mut carry);
            let mut filled = buf.len();
            let target = filled + BLOCK;
            buf.resize(target, 0);
            let mut eof = false;
            while filled < target {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            buf.truncate(filled);
            if eof && buf.last().is_some_and(|&b| b != b'\n') {
                // A line still being written by the web server: counted by
                // a later run, once it is whole.
                let whole = memchr::memrchr(b'\n', &buf).map_or(0, |nl| nl + 1);
                partial = (buf.len() - whole) as u64;
                buf.truncate(whole);
            }
            if !eof {
                match memchr::memrchr(b'\n', &buf) {
                    Some(nl) => carry = buf.split_off(nl + 1),
                    None => {
                        // A line longer than a block: keep reading it.
                        carry = buf;
                        continue;
                    }
                }
            }
            if !buf.is_empty() && tx.send((index, buf)).is_err() {
                return Ok(partial);
            }
            index += 1;
            if eof {
                return Ok(partial);
            }
        }
    });
    let mut outs: Vec<BlockOut> =
        rx.into_iter().par_bridge().map(|(index, block)| scan_block(index, &block, blobs)).collect();
    let partial = reader_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the reader of {display} panicked"))?
        .with_context(|| format!("reading {display}"))?;
    outs.sort_unstable_by_key(|o| o.index);

    let mut tally = Tally { partial_bytes: partial, ..Tally::default() };
    let mut line_base = 0u64;
    let mut recs = Vec::with_capacity(outs.iter().map(|o| o.recs.len()).sum());
    for o in &mut outs {
        for at in &o.malformed_at {
            if tally.samples.len() < MAX_SAMPLES {
                tally.samples.push(format!("{display}:{}", line_base + at));
            }
        }
        line_base += o.tally.lines;
        tally.add(&o.tally);
        recs.append(&mut o.recs);
    }
    drop(outs);
    assign_occurrences(&mut recs);
    Ok((tally, recs))
}

/// Gives the k-th repetition of a byte-identical line in one file (k ≥ 1) a
/// fingerprint of its own; the first keeps the line hash. Identical lines
/// have identical days and versions, so which copy gets which k is moot.
fn assign_occurrences(recs: &mut [Record]) {
    recs.par_sort_unstable_by_key(|r| (r.day, r.fp));
    let mut i = 0;
    while i < recs.len() {
        let mut j = i + 1;
        while j < recs.len() && recs[j].fp == recs[i].fp && recs[j].day == recs[i].day {
            j += 1;
        }
        let h = recs[i].fp;
        for (k, r) in recs[i + 1..j].iter_mut().enumerate() {
            r.fp = occurrence_fp(h, k as u64 + 1);
        }
        i = j;
    }
}

fn occurrence_fp(line_hash: u64, k: u64) -> u64 {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&line_hash.to_le_bytes());
    b[8..].copy_from_slice(&k.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64_with_seed(&b, OCC_SEED)
}

/// Merges the run's fingerprints (sorted by (day, fp), no repeats) into
/// `stats_seen`; returns the records no earlier run counted and how many
/// earlier runs had counted.
fn merge_seen(tx: &Conn, recs: &[Record]) -> Result<(Vec<Record>, usize)> {
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
fn record_counts(tx: &Conn, blobs: &BlobMap, fresh: &[Record]) -> Result<HashSet<String>> {
    // `fresh` is sorted by day: count one day at a time in a dense array,
    // then write the rows in key order (B-tree appends, not random inserts).
    let n = blobs.versions.len();
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
            let (_, package, vers) = &blobs.versions[ver as usize];
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
        .map(|(i, t)| (blobs.versions[i].1.as_str(), blobs.versions[i].2.as_str(), *t))
        .collect();
    by_key.sort_unstable();
    for (package, vers, t) in &by_key {
        tx.execute(upsert, params![package, vers, *t as i64])?;
    }
    Ok(by_key.into_iter().map(|(package, _, _)| package.to_string()).collect())
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
        &format!(
            "SELECT v.package, p.name, v.vers FROM versions v JOIN packages p ON p.key = v.package
             WHERE v.deleted_at IS NULL AND {}",
            crate::db::Space::Public.holds("v.package")
        ),
        params![],
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
            let wrote = reg.root.put_doc(&key, &bytes).with_context(|| format!("writing {key}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn line(status: &str, req: &str, ts: &str) -> String {
        format!("203.0.113.9 - - [{ts}] \"{req}\" {status} 1234 \"-\" \"cairn/0.1\"")
    }

    #[test]
    fn parses_downloads_other_lines_and_garbage() {
        let get = format!("GET /blobs/sha256/{SHA} HTTP/1.1");
        let ts = "10/Oct/2000:13:55:36 -0700";
        let day = days_from_civil(2000, 10, 10);
        let l = line("200", &get, ts);
        assert_eq!(parse_line(l.as_bytes()), Line::Download { day, sha256: SHA.as_bytes(), partial: None });
        let l = line("206", &get, ts);
        assert_eq!(
            parse_line(l.as_bytes()),
            Line::Download { day, sha256: SHA.as_bytes(), partial: Some(1234) }
        );
        for (status, req) in [
            ("404", get.as_str()),
            ("304", get.as_str()),
            ("200", &format!("HEAD /blobs/sha256/{SHA} HTTP/1.1")),
            ("200", &format!("GET /blobs/sha256/{SHA}.minisig HTTP/1.1")),
            ("200", "GET /index/config.json HTTP/1.1"),
            ("400", "-"),
            ("200", &format!("GET /blobs/sha256/{} HTTP/1.1", &SHA[1..])),
        ] {
            assert_eq!(parse_line(line(status, req, ts).as_bytes()), Line::Other, "{status} {req}");
        }
        // Query strings and mount prefixes still count; common format too.
        let l = line("200", &format!("GET /mirror/blobs/sha256/{SHA}?x=1 HTTP/2.0"), ts);
        assert!(matches!(parse_line(l.as_bytes()), Line::Download { .. }));
        let common = format!("1.2.3.4 - bob [{ts}] \"{get}\" 200 -");
        assert!(matches!(parse_line(common.as_bytes()), Line::Download { .. }));
        let escaped = "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET /a\\\"b HTTP/1.1\" 200 5 \"-\" \"x\"";
        assert_eq!(parse_line(escaped.as_bytes()), Line::Other);
        for bad in [
            "",
            "garbage",
            "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\"",
            "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 2x0 5",
            "1.2.3.4 - - [10/Foo/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 200 5 \"-\" \"x\"",
            "1.2.3.4 - - [10/Oct/2000:25:55:36 -0700] \"GET / HTTP/1.1\" 200 5 \"-\" \"x\"",
            "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 200 5 \"-\" \"trunc",
            "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700 \"GET / HTTP/1.1\" 200 5",
        ] {
            assert_eq!(parse_line(bad.as_bytes()), Line::Malformed, "{bad}");
        }
    }

    #[test]
    fn days_are_utc() {
        // 23:30 at -0700 on Oct 10 is Oct 11 in UTC; 00:30 at +0200 is the day before.
        assert_eq!(utc_day(b"10/Oct/2000:23:30:00 -0700"), Some(days_from_civil(2000, 10, 11)));
        assert_eq!(utc_day(b"01/Jan/2026:00:30:00 +0200"), Some(days_from_civil(2025, 12, 31)));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(date(days_from_civil(2024, 2, 29)), "2024-02-29");
    }

    #[test]
    fn repeated_identical_lines_get_distinct_fingerprints() {
        let mut recs = vec![
            Record { fp: 7, day: 1, ver: 0 },
            Record { fp: 9, day: 1, ver: 0 },
            Record { fp: 7, day: 1, ver: 0 },
            Record { fp: 7, day: 1, ver: 0 },
        ];
        assign_occurrences(&mut recs);
        let mut fps: Vec<u64> = recs.iter().map(|r| r.fp).collect();
        fps.sort();
        fps.dedup();
        assert_eq!(fps.len(), 4);
        assert!(fps.contains(&7) && fps.contains(&occurrence_fp(7, 1)) && fps.contains(&occurrence_fp(7, 2)));
    }
}
