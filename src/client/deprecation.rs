//! The deprecation warnings of an install (SPEC section 5): the meta files
//! of the installed packages, asked while the install goes on after a
//! resolution, or read from the cache for an install from the lock (which
//! asks the registry nothing).

use futures_util::StreamExt;

use super::remote::Remote;
use crate::index::meta::Meta;

/// The meta files of `names` that say something, fetched concurrently
/// through the index's ETag cache. A registry that cannot say is not a
/// reason to fail an install.
pub async fn ask(remote: Remote, names: Vec<String>, jobs: usize) -> Vec<(String, Meta)> {
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

/// What the cached meta files of `names` say, without a request.
pub fn cached(remote: &Remote, names: &[String]) -> Vec<(String, Meta)> {
    names.iter().filter_map(|n| Some((n.clone(), remote.cached_meta(n)?))).collect()
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
