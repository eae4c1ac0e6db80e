//! `cairn upstream fetch [LOCKFILE…]`: warms a registry's upstream cache
//! (SPEC section 16) with every package a `Cargo.lock` or `cairn.lock`
//! pins, by asking for each one's index file and blob as a client would:
//! a miss brings it from the upstream, a cached one costs a static read.

use anyhow::{Context, Result};
use futures_util::StreamExt;
use std::path::PathBuf;

use super::remote::Remote;
use crate::index::package_path;
use crate::layout::Layout;

/// What a warm-up did.
#[derive(Debug, Default)]
pub struct Warmed {
    pub packages: usize,
    /// `name version: why` for each package that could not be fetched.
    pub failed: Vec<String>,
}

/// The (name, version, sha256) each lockfile pins, each once.
pub fn pinned(lockfiles: &[PathBuf]) -> Result<Vec<(String, String, String)>> {
    let mut all = std::collections::BTreeSet::new();
    for path in lockfiles {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        all.extend(
            crate::audit::read_checksums(&text).with_context(|| format!("parsing {}", path.display()))?,
        );
    }
    Ok(all.into_iter().collect())
}

/// Asks `remote` for each pinned index file and blob (`jobs` at a time);
/// a blob is asked with HEAD: the registry fetches it all the same.
pub async fn warm(remote: &Remote, pins: &[(String, String, String)], jobs: usize) -> Result<Warmed> {
    let bar = super::progress::bar(pins.len() as u64, "warming");
    let http = remote.http.client().clone();
    let layout = Layout::public();
    let results: Vec<Option<String>> = futures_util::stream::iter(pins)
        .map(|(name, version, sha256)| {
            let index = remote.url_of(&layout.index_file(&package_path(name)));
            let blob = remote.url_of(&layout.blob(sha256));
            let (http, bar) = (http.clone(), bar.clone());
            async move {
                let answer = async {
                    let status = http.get(&index).send().await?.status();
                    if !status.is_success() {
                        return Ok::<_, reqwest::Error>(Some(format!("{index}: {status}")));
                    }
                    let resp = http.head(&blob).send().await?;
                    Ok((!resp.status().is_success()).then(|| format!("{blob}: {}", resp.status())))
                };
                let failed = match answer.await {
                    Ok(failed) => failed,
                    Err(e) => Some(e.to_string()),
                };
                bar.inc(1);
                failed.map(|why| format!("{name} {version}: {why}"))
            }
        })
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    bar.finish_and_clear();
    Ok(Warmed { packages: pins.len(), failed: results.into_iter().flatten().collect() })
}
