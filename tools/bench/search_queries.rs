//! bench-search-queries: runs a fixed, seeded set of 200 queries against the
//! search shards of a registry on disk with cairn's query code, and reports
//! what each query would transfer: requests (manifest + shards) and bytes
//! after gzip (what a CDN or nginx with gzip sends), median and p95.
//!
//!     cargo run --release --example bench-search-queries -- --data DIR [--queries 200] [--seed 7]
//!
//! Queries: 40% one description word, 20% one keyword, 15% two words,
//! 15% the first three letters of a name (prefix typing), 10% an exact name,
//! all drawn from the registry's own package documents.

use anyhow::{Context, Result};
use flate2::{write::GzEncoder, Compression};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use cairn::layout::Layout;
use cairn::search::{query, tokenize, Delta, Manifest, Shard};

fn gz_len(bytes: &[u8]) -> usize {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap().len()
}

fn percentile(sorted: &[usize], p: f64) -> usize {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let data = PathBuf::from(flag("--data").context("--data DIR")?);
    let count: usize = flag("--queries").map(|v| v.parse()).transpose()?.unwrap_or(200);
    let seed: u64 = flag("--seed").map(|v| v.parse()).transpose()?.unwrap_or(7);
    let (root, l) = (data.join("static"), Layout::public());
    let manifest_bytes = std::fs::read(root.join(l.search_manifest()))?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)?;
    let manifest_gz = gz_len(&manifest_bytes);

    // Draw queries from the package listing (the first 20 pages by name,
    // spread over the alphabet by sampling every page file).
    let listings = l.listing_dir("name");
    let pages = std::fs::read_dir(root.join(&listings))?.count();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut queries = Vec::new();
    while queries.len() < count {
        let page = rng.gen_range(1..=pages);
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(root.join(Layout::listing_page(&listings, page)))?)?;
        let pkgs = doc["packages"].as_array().unwrap();
        let p = &pkgs[rng.gen_range(0..pkgs.len())];
        let name = p["name"].as_str().unwrap().to_string();
        let words = tokenize(p["description"].as_str().unwrap_or(""));
        let roll = rng.gen_range(0..100);
        let q = if roll < 40 && !words.is_empty() {
            words[rng.gen_range(0..words.len())].clone()
        } else if roll < 60 {
            tokenize(&name).first().cloned().unwrap_or(name.clone())
        } else if roll < 75 && words.len() >= 2 {
            let i = rng.gen_range(0..words.len() - 1);
            format!("{} {}", words[i], words[i + 1])
        } else if roll < 90 {
            name.chars().take(3).collect()
        } else {
            name
        };
        queries.push(q);
    }

    let mut cache: HashMap<String, (Vec<u8>, usize)> = HashMap::new();
    let (mut bytes, mut requests, mut results) = (Vec::new(), Vec::new(), 0usize);
    let started = std::time::Instant::now();
    for q in &queries {
        let mut fetched: Vec<usize> = Vec::new();
        let mut fetch = |file: &str| -> Result<Shard> {
            let entry = cache.entry(file.to_string()).or_insert_with(|| {
                let b = std::fs::read(root.join(l.search_shard(file))).unwrap();
                let gz = gz_len(&b);
                (b, gz)
            });
            fetched.push(entry.1);
            Ok(serde_json::from_slice(&entry.0)?)
        };
        results += query(Some(&manifest), &Delta::default(), &mut fetch, q, 10)?.len();
        requests.push(1 + fetched.len());
        bytes.push(manifest_gz + fetched.iter().sum::<usize>());
    }
    let elapsed = started.elapsed();
    bytes.sort_unstable();
    requests.sort_unstable();
    println!(
        "{}",
        serde_json::json!({
            "queries": queries.len(),
            "shards": manifest.shards.len(),
            "manifestGzBytes": manifest_gz,
            "bytesMedian": percentile(&bytes, 0.5),
            "bytesP95": percentile(&bytes, 0.95),
            "bytesMax": bytes.last(),
            "requestsMedian": percentile(&requests, 0.5),
            "requestsP95": percentile(&requests, 0.95),
            "requestsMax": requests.last(),
            "resultsPerQuery": results as f64 / queries.len() as f64,
            "cpuMsPerQueryIncludingParse": elapsed.as_secs_f64() * 1000.0 / queries.len() as f64,
        })
    );
    Ok(())
}
