//! `cairn search QUERY…`: the static search shards, queried client-side
//! with the same ranking as every other implementation (`search::query`), merging the delta so a publish is found at once.

use anyhow::{Context, Result};

use crate::layout::Layout;
use crate::search::search;

#[derive(clap::Args)]
pub struct SearchArgs {
    /// Words to look for (the last one also matches as a prefix) and filters: `kind:skill`, `keyword:git`.
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
    let base = args.registry.trim_end_matches('/').to_string();
    let http = reqwest::blocking::Client::new();
    let mut get = |key: &str| -> Result<Option<Vec<u8>>> {
        let url = format!("{base}{}", crate::layout::url(key));
        let resp = http.get(&url).send().with_context(|| format!("fetching {url}"))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        anyhow::ensure!(resp.status().is_success(), "{url}: {}", resp.status());
        Ok(Some(resp.bytes()?.to_vec()))
    };
    let results = search(&Layout::public(), &mut get, &args.words.join(" "), args.limit)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        for r in results {
            println!("{} {} {}", r.name, r.version, r.description);
        }
    }
    Ok(())
}
