//! bench-search-fresh: how long from a publish until search finds it.
//!
//!     cargo run --release --example bench-search-fresh -- \
//!         --url http://127.0.0.1:7878 --token cairn_… [--static-url URL] [--count 200]
//!
//! Publishes `count` new packages one after another (one client, keep-alive),
//! each with a description word of its own. For each: the time to the 201,
//! then, polling right after the 201 (every 2 ms, for at most 10 s), the time
//! until the package is found (a) by cargo's search API on `--url`
//! (`GET /api/v1/crates?q=`, queried by the server) and (b) by `cairn
//! search`'s code reading the static search files (manifest, delta, shards)
//! from `--static-url` (default `--url`; nginx in the script), as the CLI and
//! the site do. Every time is from sending the PUT. Prints one JSON object
//! with the medians, p99s and maxima in milliseconds, and how many polls it
//! took beyond the first.

use std::time::{Duration, Instant};

use cairn::archive::builder::TarballBuilder;
use cairn::layout::{url, Layout};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

/// Polls `found` until it holds; returns the number of extra polls.
fn poll(found: &mut dyn FnMut() -> anyhow::Result<bool>) -> anyhow::Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut extra = 0;
    while !found()? {
        anyhow::ensure!(Instant::now() < deadline, "not found within 10 s");
        std::thread::sleep(Duration::from_millis(2));
        extra += 1;
    }
    Ok(extra)
}

fn main() -> anyhow::Result<()> {
    let base = arg("--url").ok_or_else(|| anyhow::anyhow!("--url"))?;
    let token = arg("--token").ok_or_else(|| anyhow::anyhow!("--token"))?;
    let static_base = arg("--static-url").unwrap_or_else(|| base.clone());
    let count: usize = arg("--count").map(|c| c.parse()).transpose()?.unwrap_or(200);
    let prefix = arg("--prefix").unwrap_or_else(|| "zqfresh".into());
    let http = reqwest::blocking::Client::new();
    let (mut publish, mut cargo, mut files) = (Vec::new(), Vec::new(), Vec::new());
    let mut extra_polls = 0u32;
    for i in 0..count {
        let name = format!("{prefix}-{i:05}");
        let word = format!("{prefix}word{i:05}");
        let manifest =
            format!("[package]\nname = \"{name}\"\nversion = \"1.0.0\"\ndescription = \"about {word}\"\n");
        let tarball = TarballBuilder::new(&name, "1.0.0").manifest(manifest).gzip();
        let started = Instant::now();
        let resp = http
            .put(format!("{base}/api/v1/packages/{name}/1.0.0"))
            .bearer_auth(&token)
            .header("Content-Type", "application/gzip")
            .body(tarball)
            .send()?;
        anyhow::ensure!(resp.status() == 201, "{name}: {}", resp.status());
        publish.push(started.elapsed().as_secs_f64() * 1e3);
        extra_polls += poll(&mut || {
            let r: serde_json::Value =
                http.get(format!("{base}/api/v1/crates?q={word}&per_page=1")).send()?.json()?;
            Ok(r["crates"][0]["name"] == name.as_str())
        })?;
        cargo.push(started.elapsed().as_secs_f64() * 1e3);
        extra_polls += poll(&mut || {
            let mut get = |key: &str| -> anyhow::Result<Option<Vec<u8>>> {
                let resp = http.get(format!("{static_base}{}", url(key))).send()?;
                if resp.status() == 404 {
                    return Ok(None);
                }
                Ok(Some(resp.error_for_status()?.bytes()?.to_vec()))
            };
            let hits = cairn::search::search(&Layout::public(), &mut get, &word, 1)?;
            Ok(hits.first().is_some_and(|h| h.name == name))
        })?;
        files.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let stats = |v: &mut Vec<f64>| {
        let (p50, p99) = (quantile(v, 0.5), quantile(v, 0.99));
        serde_json::json!({"p50": (p50 * 10.0).round() / 10.0, "p99": (p99 * 10.0).round() / 10.0,
                           "max": (quantile(v, 1.0) * 10.0).round() / 10.0})
    };
    let report = serde_json::json!({
        "publishes": count,
        "publishMs": stats(&mut publish),
        "cargoSearchMs": stats(&mut cargo),
        "staticSearchMs": stats(&mut files),
        "extraPolls": extra_polls,
    });
    println!("{report}");
    Ok(())
}
