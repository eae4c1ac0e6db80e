//! `cairn upstream fetch|list` and `cairn import --upstream` (SPEC section
//! 16): warm a registry's upstream cache over HTTP, show what it holds, or
//! fill it from a directory with no network.

use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;
use std::sync::Arc;

use super::user::RegistryArgs;
use super::DataArg;
use crate::config::Config;
use crate::registry::Registry;

#[derive(Subcommand)]
pub enum UpstreamCommand {
    /// Warm the registry's cache with every package the lockfiles pin
    /// (Cargo.lock or cairn.lock; default: the ones in this directory).
    Fetch {
        lockfiles: Vec<PathBuf>,
        #[command(flatten)]
        registry: RegistryArgs,
        /// Packages asked for at once.
        #[arg(long, default_value_t = 8)]
        jobs: usize,
    },
    /// What the registry caches from its upstreams: versions, blobs, size, age.
    List {
        #[command(flatten)]
        data: DataArg,
    },
}

pub fn run(cmd: UpstreamCommand) -> Result<()> {
    match cmd {
        UpstreamCommand::Fetch { mut lockfiles, registry, jobs } => {
            if lockfiles.is_empty() {
                lockfiles = ["Cargo.lock", crate::client::lockfile::FILE]
                    .into_iter()
                    .map(PathBuf::from)
                    .filter(|p| p.is_file())
                    .collect();
                anyhow::ensure!(
                    !lockfiles.is_empty(),
                    "no Cargo.lock or cairn.lock here: name the lockfiles"
                );
            }
            let pins = crate::client::warm::pinned(&lockfiles)?;
            let remote = registry.remote()?;
            let rt = tokio::runtime::Runtime::new()?;
            let warmed = rt.block_on(crate::client::warm::warm(&remote, &pins, jobs))?;
            for failure in &warmed.failed {
                eprintln!("failed: {failure}");
            }
            let ok = warmed.packages - warmed.failed.len();
            println!("{} cached in {}", crate::words::count(ok, "package"), remote.url);
            anyhow::ensure!(
                warmed.failed.is_empty(),
                "{} failed",
                crate::words::count(warmed.failed.len(), "package")
            );
        }
        UpstreamCommand::List { data } => {
            let reg = Registry::open(&data.data, Config::load(&data.data)?)?;
            let now = chrono::Utc::now().timestamp_millis();
            println!("name\tupstream\tversions\tblobs\tbytes\tchecked");
            for p in crate::db::upstream::list(&reg.db()?, &reg.space)? {
                let age = (now - p.checked_ms).max(0) / 1000;
                println!("{}\t{}\t{}\t{}\t{}\t{age}s ago", p.name, p.upstream, p.versions, p.blobs, p.bytes);
            }
        }
    }
    Ok(())
}

/// `cairn import --upstream NAME DIR`.
pub fn import(data: &DataArg, upstream: &str, dir: &std::path::Path) -> Result<()> {
    let reg = Arc::new(Registry::open(&data.data, Config::load(&data.data)?)?);
    let done = crate::upstream::import::import(reg, upstream, dir)?;
    for name in &done.local {
        eprintln!("skipped {name}: a local package has the name");
    }
    println!(
        "imported {} ({}, {}) from {} for upstream {upstream}",
        crate::words::count(done.packages, "package"),
        crate::words::count(done.versions, "version"),
        crate::words::count(done.blobs, "crate"),
        dir.display()
    );
    Ok(())
}
