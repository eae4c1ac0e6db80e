//! A package's stored versions as the proposal handlers read them (SPEC
//! section 19): its index lines and a version's files (`crate::proposal_pages`
//! reads them), with the API's errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::ApiError;
use crate::archive::rewrite;
use crate::index::IndexLine;
use crate::registry::Registry;

/// The index line of one version of a package, or 404.
pub(super) async fn version_line(
    reg: &Arc<Registry>,
    name: &str,
    version: &str,
) -> Result<IndexLine, ApiError> {
    let lines = lines_of(reg, name).await?;
    lines
        .into_iter()
        .find(|l| l.vers == version)
        .ok_or_else(|| ApiError::not_found(format!("`{name}` has no version {version}")))
}

/// A package's index lines; 404 when it has none.
pub(super) async fn lines_of(reg: &Arc<Registry>, name: &str) -> Result<Vec<IndexLine>, ApiError> {
    let (r, n) = (reg.clone(), name.to_string());
    let lines = blocking(move || r.read_lines(&n)).await?;
    if lines.is_empty() {
        return Err(ApiError::not_found(format!("no package `{name}`")));
    }
    Ok(lines)
}

/// The files of a stored version, by path.
pub(super) async fn files_of(
    reg: &Arc<Registry>,
    line: &IndexLine,
) -> Result<BTreeMap<String, rewrite::File>, ApiError> {
    let (r, l) = (reg.clone(), line.clone());
    blocking(move || crate::proposal_pages::files(&r, &l)).await
}

/// A file of a version as text: empty when the version lacks it (a
/// proposal may add a file), 400 when it is not UTF-8.
pub(super) async fn text_of(reg: &Arc<Registry>, line: &IndexLine, path: &str) -> Result<String, ApiError> {
    text(&files_of(reg, line).await?, path)
}

pub(super) fn text(files: &BTreeMap<String, rewrite::File>, path: &str) -> Result<String, ApiError> {
    crate::proposal_pages::text(files, path).map_err(|e| ApiError::invalid(e.to_string()))
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?.map_err(ApiError::internal)
}
