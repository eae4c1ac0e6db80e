//! Access logs in the combined format (nginx's and Apache's default; `.gz`
//! rotated copies too, recognised by their magic bytes): which lines are
//! downloads, and the scan of a whole file into counted records with their
//! occurrence-aware fingerprints (the stats job's input; see
//! `crate::jobs::stats` for how a line is never counted twice).
//!
//! A reader thread cuts the file (or the gzip stream) into blocks that end on
//! a line boundary; rayon parses blocks in parallel with byte slices (memchr,
//! no regex, no allocation per line). Only counted lines produce a record
//! (fingerprint, day, version id).

use anyhow::{Context, Result};
use rayon::prelude::*;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Read;
use std::path::Path;

use crate::db::downloads::Record;
use crate::db::Conn;

const BLOCK: usize = 4 << 20;
const LINE_SEED: u64 = 0x6361_6972_6e2d_6c6e; // "cairn-ln"
const OCC_SEED: u64 = 0x6361_6972_6e2d_6f63; // "cairn-oc"
const MAX_SAMPLES: usize = 5;

/// What a scan saw, beside the counted records.
#[derive(Default, Debug)]
pub struct Tally {
    pub lines: u64,
    pub bytes: u64,
    pub malformed: u64,
    pub ignored: u64,
    pub unknown: u64,
    pub samples: Vec<String>,
    /// Bytes of an unterminated last line, left for a later run.
    pub partial_bytes: u64,
}

impl Tally {
    pub fn add(&mut self, o: &Tally) {
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
pub struct BlobMap {
    by_prefix: HashMap<u64, u32, BuildHasherDefault<Identity>>,
    /// The blobs' SHA-256, indexed by version id.
    shas: Vec<[u8; 32]>,
    /// (canonical package, version as published), indexed by version id.
    pub versions: Vec<(String, String)>,
    /// Blob sizes, looked up for the first 206 of each blob.
    sizes: Vec<std::sync::OnceLock<Option<u64>>>,
    store: crate::store::BlobStore,
}

impl BlobMap {
    pub fn load(conn: &Conn, store: &crate::store::BlobStore) -> Result<BlobMap> {
        let (mut shas, mut versions) = (Vec::new(), Vec::new());
        let mut by_prefix = HashMap::default();
        for (package, vers, sha) in crate::db::downloads::public_blobs(conn)? {
            let Some(bytes) = decode_hex32(sha.as_bytes()) else { continue };
            by_prefix.insert(prefix(&bytes), versions.len() as u32);
            shas.push(bytes);
            versions.push((package, vers));
        }
        let sizes = (0..versions.len()).map(|_| std::sync::OnceLock::new()).collect();
        Ok(BlobMap { by_prefix, shas, versions, sizes, store: store.clone() })
    }

    /// The stored blob's size (none once it is deleted).
    fn size(&self, id: u32) -> Option<u64> {
        let sha = &self.shas[id as usize];
        *self.sizes[id as usize].get_or_init(|| self.store.size(&crate::store::hex(sha)).ok().flatten())
    }

    fn get(&self, sha: &[u8; 32]) -> Option<u32> {
        let id = *self.by_prefix.get(&prefix(sha))?;
        (self.shas[id as usize] == *sha).then_some(id)
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
pub fn scan_file(path: &Path, blobs: &BlobMap) -> Result<(Tally, Vec<Record>)> {
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
