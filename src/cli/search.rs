//! `cairn search QUERY…`: the static search shards, queried client-side
//! with the same ranking as every other implementation (`jobs::search::query`).

use anyhow::{Context, Result};

use crate::jobs::search::{query, Manifest, Shard};

#[derive(clap::Args)]
pub struct SearchArgs {
    /// Words to look for; the last one also matches as a prefix.
    #[arg(required = true)]
    words: Vec<String>,
    /// The registry's static base URL.
    #[arg(long, env = "CAIRN_REGISTRY", default_value = "http://127.0.0.1:7878")]
    registry: String,
    /// How many results to show.
    #[arg(long, default_value_t = 10)]
    limit: usize,
    /// Print JSON instead of one result per line.
    #[arg(long)]
    json: bool,
}

pub fn run(args: SearchArgs) -> Result<()> {
    let base = format!("{}/api/v1/search", args.registry.trim_end_matches('/'));
    let http = reqwest::blocking::Client::new();
    let get = |file: &str| -> Result<Vec<u8>> {
        let url = format!("{base}/{file}");
        let resp = http.get(&url).send().with_context(|| format!("fetching {url}"))?;
        anyhow::ensure!(resp.status().is_success(), "{url}: {}", resp.status());
        Ok(resp.bytes()?.to_vec())
    };
    let manifest: Manifest =
        serde_json::from_slice(&get("manifest.json")?).context("reading the search manifest")?;
    let mut fetch = |file: &str| -> Result<Shard> { Ok(serde_json::from_slice(&get(file)?)?) };
    let results = query(&manifest, &mut fetch, &args.words.join(" "), args.limit)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        for r in results {
            println!("{} {} {}", r.name, r.version, r.description);
        }
    }
    Ok(())
}
