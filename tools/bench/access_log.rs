//! bench-access-log: writes a synthetic access log in the combined format
//! (nginx's default) for the download-statistics benchmark.
//!
//!     cargo run --release --example bench-access-log -- --data DIR --lines 10000000 --out access.log
//!
//! Blob SHA-256s come from the registry's `versions` table (`--data`), so the
//! downloads map to real versions. The mix, per line: 85 % `GET
//! /blobs/sha256/{hex}` answered 200, 3 % answered 206, 2 % 304, 2 % 404 for
//! unknown blobs, 2 % HEAD, 5 % other paths (index files, package documents,
//! signatures, API writes), 0.5 % malformed (cut short or garbage), 0.5 %
//! 200 answers to unknown blobs. Version popularity is Zipf-like (s = 1.1
//! over a random order), timestamps rise evenly over `--days` days ending on
//! `--end` (UTC), client addresses and user agents vary.

use anyhow::{bail, Context, Result};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::io::Write;
use std::path::PathBuf;

struct Args {
    data: PathBuf,
    lines: u64,
    out: PathBuf,
    seed: u64,
    days: i64,
    end: chrono::NaiveDate,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench-access-log --data DIR --lines N --out FILE [--seed S] [--days D] [--end YYYY-MM-DD]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let (mut data, mut lines, mut out) = (None, None, None);
    let (mut seed, mut days) = (7u64, 30i64);
    let mut end = chrono::NaiveDate::from_ymd_opt(2026, 5, 31).expect("date");
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--data" => data = Some(PathBuf::from(val())),
            "--lines" => lines = val().parse().ok(),
            "--out" => out = Some(PathBuf::from(val())),
            "--seed" => seed = val().parse().unwrap_or_else(|_| usage()),
            "--days" => days = val().parse().unwrap_or_else(|_| usage()),
            "--end" => end = val().parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    match (data, lines, out) {
        (Some(data), Some(lines), Some(out)) if days > 0 => Args { data, lines, out, seed, days, end },
        _ => usage(),
    }
}

const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const AGENTS: &[&str] = &[
    "cairn/0.1.0 (linux x86_64)",
    "cairn/0.1.0 (macos aarch64)",
    "cargo/1.85.0 (d73d2caf9 2024-12-31)",
    "cargo/1.87.0 (99624be96 2025-05-06)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "curl/8.5.0",
    "Go-http-client/1.1",
];

fn main() -> Result<()> {
    let args = parse_args();
    let conn = rusqlite::Connection::open(args.data.join("state.db")).context("opening state.db")?;
    let mut stmt = conn.prepare(
        "SELECT v.sha256, p.name FROM versions v JOIN packages p ON p.key = v.package WHERE v.deleted_at IS NULL",
    )?;
    let mut versions: Vec<(String, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
    if versions.is_empty() {
        bail!("{} has no versions: fill it first (bench-prefill)", args.data.display());
    }
    let mut rng = StdRng::seed_from_u64(args.seed);
    // Zipf-like popularity over a random order of the versions.
    for i in (1..versions.len()).rev() {
        versions.swap(i, rng.gen_range(0..=i));
    }
    let mut cdf = Vec::with_capacity(versions.len());
    let mut acc = 0f64;
    for i in 0..versions.len() {
        acc += 1.0 / ((i + 1) as f64).powf(1.1);
        cdf.push(acc);
    }
    let pick = |rng: &mut StdRng| -> &(String, String) {
        let x = rng.gen::<f64>() * acc;
        &versions[cdf.partition_point(|c| *c < x).min(versions.len() - 1)]
    };

    let start =
        args.end.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp() - (args.days - 1) * 86400;
    let span = (args.days * 86400) as f64;
    let file =
        std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let (mut cached_sec, mut stamp) = (i64::MIN, String::new());
    let random_hex =
        |rng: &mut StdRng| -> String { (0..4).map(|_| format!("{:016x}", rng.gen::<u64>())).collect() };
    let began = std::time::Instant::now();
    for i in 0..args.lines {
        let t = start + (i as f64 * span / args.lines as f64) as i64;
        if t != cached_sec {
            let d = chrono::DateTime::from_timestamp(t, 0).expect("time");
            use chrono::{Datelike, Timelike};
            stamp = format!(
                "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
                d.day(),
                MONTHS[d.month0() as usize],
                d.year(),
                d.hour(),
                d.minute(),
                d.second()
            );
            cached_sec = t;
        }
        let ip = format!(
            "{}.{}.{}.{}",
            rng.gen_range(1..224),
            rng.gen::<u8>(),
            rng.gen::<u8>(),
            rng.gen_range(1..255)
        );
        let agent = AGENTS[rng.gen_range(0..AGENTS.len())];
        let roll = rng.gen_range(0..1000);
        let (method, path, status, bytes): (&str, String, u16, u64) = match roll {
            0..=849 => {
                ("GET", format!("/blobs/sha256/{}", pick(&mut rng).0), 200, rng.gen_range(2_000..900_000))
            }
            850..=879 => {
                ("GET", format!("/blobs/sha256/{}", pick(&mut rng).0), 206, rng.gen_range(1..400_000))
            }
            880..=899 => ("GET", format!("/blobs/sha256/{}", pick(&mut rng).0), 304, 0),
            900..=919 => ("GET", format!("/blobs/sha256/{}", random_hex(&mut rng)), 404, 153),
            920..=939 => ("HEAD", format!("/blobs/sha256/{}", pick(&mut rng).0), 200, 0),
            940..=954 => {
                let name = pick(&mut rng).1.to_ascii_lowercase();
                ("GET", format!("/api/v1/packages/{name}.json"), 200, rng.gen_range(500..20_000))
            }
            955..=974 => {
                let name = pick(&mut rng).1.to_ascii_lowercase();
                let p = cairn::index::package_path(&name);
                ("GET", format!("/index/{p}"), 200, rng.gen_range(200..5_000))
            }
            975..=984 => ("GET", format!("/blobs/sha256/{}.minisig", pick(&mut rng).0), 200, 310),
            985..=989 => ("PUT", "/api/v1/packages/x/1.0.0".to_string(), 401, 60),
            990..=994 => {
                // Malformed: cut short, or not a log line at all.
                if roll % 2 == 0 {
                    writeln!(w, "{ip} - - [{stamp}] \"GET /blobs/sha256/{}", &pick(&mut rng).0[..20])?;
                } else {
                    writeln!(
                        w,
                        "\\x16\\x03\\x01 garbage from a TLS client on the plain port {}",
                        rng.gen::<u32>()
                    )?;
                }
                continue;
            }
            _ => ("GET", format!("/blobs/sha256/{}", random_hex(&mut rng)), 200, 1_000),
        };
        writeln!(w, "{ip} - - [{stamp}] \"{method} {path} HTTP/1.1\" {status} {bytes} \"-\" \"{agent}\"")?;
    }
    w.flush()?;
    eprintln!(
        "wrote {} lines to {} in {:.1}s ({} versions)",
        args.lines,
        args.out.display(),
        began.elapsed().as_secs_f64(),
        versions.len()
    );
    Ok(())
}
