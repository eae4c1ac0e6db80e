//! A package's stored versions as proposals read them (SPEC section 19):
//! its index lines, the newest, and a version's files from its blob.

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
    blocking(move || read_files(&r, &l)).await
}

/// The same, on a blocking thread.
pub(super) fn read_files(
    reg: &Registry,
    line: &IndexLine,
) -> anyhow::Result<BTreeMap<String, rewrite::File>> {
    let bytes = reg
        .store
        .read(&line.cksum)?
        .ok_or_else(|| anyhow::anyhow!("the blob of {} {} is missing", line.name, line.vers))?;
    rewrite::read(&bytes, &prefix(line))
}

/// The newest version: the greatest that is not yanked.
pub(super) fn newest(lines: &[IndexLine]) -> Option<&IndexLine> {
    lines
        .iter()
        .filter(|l| !l.yanked)
        .filter_map(|l| Some((semver::Version::parse(&l.vers).ok()?, l)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, l)| l)
}

/// An archive's directory: npm's `package/`, else `{name}-{version}/`.
pub(super) fn prefix(line: &IndexLine) -> String {
    match line.is_npm() {
        true => "package".into(),
        false => format!("{}-{}", line.name, line.vers),
    }
}

/// A file of a version as text: empty when the version lacks it (a
/// proposal may add a file), 422 when it is not UTF-8.
pub(super) async fn text_of(reg: &Arc<Registry>, line: &IndexLine, path: &str) -> Result<String, ApiError> {
    text(&files_of(reg, line).await?, path)
}

pub(super) fn text(files: &BTreeMap<String, rewrite::File>, path: &str) -> Result<String, ApiError> {
    match files.get(path) {
        None => Ok(String::new()),
        Some(f) => String::from_utf8(f.data.clone()).map_err(|_| {
            ApiError::invalid(format!("`{path}` is not UTF-8 text: proposals change text files"))
        }),
    }
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?.map_err(ApiError::internal)
}
