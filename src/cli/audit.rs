//! `cairn audit [LOCKFILE]`: checks a `cairn.lock` (or a `Cargo.lock`)
//! against the registry's advisories ([`crate::audit`]: the advisory index,
//! then only the per-package files of locked packages it names, over HTTP)
//! and prints each finding as `ID package version (fixed: …)`, one per
//! line. Exit 1 when there is any finding (a [`Findings`] error), 0 when
//! there is none.

use anyhow::{Context, Result};
use std::path::PathBuf;

use super::Findings;
use crate::audit::{audit, read_lockfile};

#[derive(clap::Args)]
pub struct AuditArgs {
    /// The lockfile: cairn.lock, or a Cargo.lock.
    #[arg(default_value = "cairn.lock")]
    lockfile: PathBuf,
    /// The registry's static base URL.
    #[arg(long, env = "CAIRN_REGISTRY", default_value = "http://127.0.0.1:7878")]
    registry: String,
}

pub fn run(args: AuditArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.lockfile)
        .with_context(|| format!("reading {}", args.lockfile.display()))?;
    let cargo = args.lockfile.file_name().is_some_and(|n| n == "Cargo.lock");
    let locked =
        read_lockfile(&text, cargo).with_context(|| format!("parsing {}", args.lockfile.display()))?;
    let base = args.registry.trim_end_matches('/');
    let http = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(60)).build()?;
    let mut get = |key: &str| -> Result<Option<Vec<u8>>> {
        let url = format!("{base}{}", crate::layout::url(key));
        let resp = http.get(&url).send().with_context(|| format!("fetching {url}"))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        anyhow::ensure!(resp.status().is_success(), "{url}: {}", resp.status());
        Ok(Some(resp.bytes()?.to_vec()))
    };
    let all = audit(&crate::layout::Layout::public(), &mut get, &locked)?
        .with_context(|| format!("{base} has no advisory index yet (its advisories job has not run)"))?;
    for f in &all {
        let fixed = if f.fixed.is_empty() { "none".to_string() } else { f.fixed.join(", ") };
        println!("{} {} {} (fixed: {fixed})", f.id, f.package, f.version);
    }
    if all.is_empty() {
        eprintln!("no known advisories affect the {} locked packages", locked.len());
        Ok(())
    } else {
        let s = if all.len() == 1 { "" } else { "s" };
        Err(Findings(format!("{} vulnerable package version{s} found", all.len())).into())
    }
}
