//! The deprecation warnings of an install (SPEC sections 5 and 6): the
//! registry's list of deprecated packages (`api/v1/deprecations.json`), or
//! from a registry without it the meta files of the installed packages,
//! asked while the install goes on after a resolution; an install from the
//! lock asks the registry nothing and reads what the cache holds.

use futures_util::StreamExt;

use super::remote::{Deprecations, Remote};
use crate::index::meta::Meta;

/// What the registry says of `names`: one list for all of them, else the
/// meta files of those that have one, fetched concurrently; both through
/// the ETag cache. A registry that cannot say is not a reason to fail an
/// install.
pub async fn ask(remote: Remote, names: Vec<String>, jobs: usize) -> Vec<(String, Meta)> {
    match remote.deprecations().await {
        Ok(Some(list)) => return listed(&list, names),
        // A registry without the list: its meta files, one by one.
        Ok(None) => {}
        Err(e) => {
            tracing::debug!("no deprecation check: {e:#}");
            if e.is_offline() || e.is_unavailable() {
                return Vec::new();
            }
        }
    }
    // A registry gone offline or failing is not asked again (each ask
    // would spend its retries).
    let gave_up = std::sync::atomic::AtomicBool::new(false);
    futures_util::stream::iter(names)
        .map(|name| {
            let (remote, gave_up) = (&remote, &gave_up);
            async move {
                if gave_up.load(std::sync::atomic::Ordering::Relaxed) {
                    return None;
                }
                match remote.meta(&name).await {
                    Ok(meta) => meta.map(|m| (name, m)),
                    Err(e) => {
                        if e.is_offline() || e.is_unavailable() {
                            gave_up.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        tracing::debug!(%name, "no deprecation check: {e:#}");
                        None
                    }
                }
            }
        })
        .buffer_unordered(jobs.max(1))
        .filter_map(|m| async move { m })
        .collect()
        .await
}

/// What the cache says of `names`, without a request: the list last
/// fetched, else the cached meta files.
pub fn cached(remote: &Remote, names: &[String]) -> Vec<(String, Meta)> {
    match remote.cached_deprecations() {
        Some(list) => listed(&list, names.to_vec()),
        None => names.iter().filter_map(|n| Some((n.clone(), remote.cached_meta(n)?))).collect(),
    }
}

/// The entries of `list` for `names`.
fn listed(list: &Deprecations, names: Vec<String>) -> Vec<(String, Meta)> {
    names
        .into_iter()
        .filter_map(|n| {
            let meta = list.get(&n.to_ascii_lowercase())?.clone();
            Some((n, meta))
        })
        .collect()
}

/// Prints a warning for each installed package its owners deprecated.
pub fn warn(mut found: Vec<(String, Meta)>) {
    found.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, meta) in found {
        let Some(message) = meta.deprecated else { continue };
        match meta.replacement {
            Some(r) => eprintln!("warning: {name} is deprecated: {message}; use {r} instead"),
            None => eprintln!("warning: {name} is deprecated: {message}"),
        }
    }
}
