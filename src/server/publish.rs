//! The one publish path of an archive through the API: the native upload
//! (`api.rs`) and a proposals' candidate (`candidate.rs`) both come here,
//! to the inspection of SPEC section 3, the index line and the writer.

use http::StatusCode;

use super::{ApiError, ApiResult, Request};
use crate::archive::{self, ManifestKind};
use crate::index::IndexLine;
use crate::publish::Upload;

/// Publishes an archive through the writer (the upload of `publish` and a
/// proposals' candidate alike): inspected as a `cairn.toml` package, else a
/// crate, made an index line and an `Upload`.
pub async fn archive(
    req: &Request<'_>,
    name: &str,
    (version, parsed): (&str, semver::Version),
    bytes: bytes::Bytes,
    content_type: Option<String>,
) -> ApiResult {
    let prepared = req.writer().preparing();
    let (sha256, blake3) = crate::store::digests(&bytes);
    let limits = req.reg().config.limits.clone();
    let (b, n, v) = (bytes.clone(), name.to_string(), version.to_string());
    // A cairn.toml package, else a crate (SPEC section 3): its Cargo.toml.
    let (inspected, kind) = tokio::task::spawn_blocking(move || {
        let inspect = |kind| archive::inspect(&b, &n, &v, content_type.as_deref(), kind, &limits);
        match inspect(ManifestKind::Cairn) {
            Err(archive::ArchiveError::MissingManifest { path }) => match inspect(ManifestKind::Cargo) {
                Err(archive::ArchiveError::MissingManifest { .. }) => {
                    let path = format!("{path}` or `{n}-{v}/Cargo.toml");
                    Err(archive::ArchiveError::MissingManifest { path })
                }
                crate_ => crate_.map(|i| (i, ManifestKind::Cargo)),
            },
            package => package.map(|i| (i, ManifestKind::Cairn)),
        }
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::from_archive)?;
    let size = bytes.len() as u64;
    let line = match kind {
        ManifestKind::Cairn => {
            IndexLine::native(&inspected.manifest, inspected.format.ext(), &sha256, &blake3, size)
        }
        ManifestKind::Cargo => crate_line(&inspected, &sha256, &blake3, size)?,
        // Not inspected as one here: npm's packages come through npm's door.
        ManifestKind::Npm => return Err(ApiError::invalid("an npm package is published with npm, at /npm/")),
    };
    super::upstream::guard_new_name(req, &line.name).await?;
    let upload = Upload { line, version: parsed, bytes, readme: inspected.readme };
    let published = req.writer().publish(prepared, req.by()?, upload).await?;
    Ok((StatusCode::CREATED, serde_json::to_value(published).unwrap()))
}

/// A crate's index line as cargo's publish would have it written: from
/// the metadata its own Cargo.toml gives. cargo downloads gzip only.
fn crate_line(
    inspected: &archive::Inspected,
    sha256: &str,
    blake3: &str,
    size: u64,
) -> Result<IndexLine, ApiError> {
    if inspected.format != archive::Format::TarGz {
        return Err(ApiError::invalid(
            "a crate (a package with Cargo.toml) is a gzip tarball; cargo reads no other",
        ));
    }
    let meta = crate::index::crate_manifest::publish_metadata(&inspected.manifest_text)
        .map_err(|e| ApiError::invalid(format!("{e:#}")))?
        .check()
        .map_err(ApiError::invalid)?;
    Ok(crate::index::cargo::crate_line(&meta, &inspected.manifest, sha256, blake3, size))
}
