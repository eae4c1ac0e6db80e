//! `cairn search QUERY…`: the static search shards, queried client-side
//! with the same ranking as every other implementation (`search::query`),
//! merging the delta so a publish is found at once. The files come through
//! the client's one fetch path, from the registry of the last login unless
//! `--registry` names another, whose key is checked against the pin.

use anyhow::Result;

use super::user::{runtime, RegistryArgs};
use crate::layout::Layout;
use crate::search::search;

#[derive(clap::Args)]
pub struct SearchArgs {
    /// Words to look for (the last one also matches as a prefix) and filters: `kind:skill`, `keyword:git`.
    #[arg(required = true)]
    words: Vec<String>,
    #[command(flatten)]
    reg: RegistryArgs,
    /// How many results to show.
    #[arg(long, default_value_t = 10)]
    limit: usize,
    /// Print JSON instead of one result per line.
    #[arg(long)]
    json: bool,
}

pub fn run(args: SearchArgs) -> Result<()> {
    let results = runtime()?.block_on(async {
        let remote = args.reg.remote()?;
        remote.connect(false).await?;
        let handle = tokio::runtime::Handle::current();
        let (query, limit) = (args.words.join(" "), args.limit);
        tokio::task::spawn_blocking(move || {
            let mut get = |key: &str| Ok(remote.static_file_blocking(&handle, key)?);
            search(&Layout::public(), &mut get, &query, limit)
        })
        .await?
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        for r in results {
            let from = r.upstream.map(|u| format!(" (from {u})")).unwrap_or_default();
            println!("{} {}{from} {}", r.name, r.version, r.description);
        }
    }
    Ok(())
}
