//! One version by name: `cairn fetch` (the verified tarball) and `cairn
//! verify` (a tarball checked against the index, the signature, the log
//! and the provenance asked for).

use anyhow::{anyhow, bail, Context, Result};
use semver::{Version, VersionReq};
use std::path::{Path, PathBuf};

use super::install::{parse_spec, pick};
use super::policy::Policy;
use super::remote::Remote;
use super::trust::Trust;
use super::verify::Expected;

/// `cairn fetch NAME@VERSION`: the verified tarball, written to `out` (or
/// `./{name}-{version}.{fmt}`). Returns the path.
pub async fn fetch(remote: &Remote, spec: &str, out: Option<PathBuf>) -> Result<PathBuf> {
    let (name, req) = match spec.split_once('@') {
        Some((n, v)) if Version::parse(v).is_ok() => (n.to_string(), VersionReq::parse(&format!("={v}"))?),
        _ => parse_spec(spec)?,
    };
    let config = remote.connect(false).await?;
    let lines = remote
        .index_file(&name)
        .await?
        .ok_or_else(|| anyhow!("no package named `{name}` in {}", remote.url))?;
    let line = pick(&lines, &req).ok_or_else(|| anyhow!("{name} has no version matching `{req}`"))?;
    super::log::check(remote, Some(&config), std::slice::from_ref(line)).await?;
    let trust = Trust { pubkey: config.pubkey.clone(), name: config.name.clone() };
    let (bytes, _) = remote.blob(Some(&config), &trust, &Expected::from_line(line), Ok).await?;
    crate::archive::unpack::check(&bytes, &line.name, &line.vers)
        .map_err(|e| anyhow!("refusing {} {}: {e}", line.name, line.vers))?;
    let ext = crate::archive::Format::sniff(&bytes).map(|f| f.ext()).unwrap_or("tar");
    let path = out.unwrap_or_else(|| PathBuf::from(format!("{}-{}.{ext}", line.name, line.vers)));
    crate::fsutil::write_atomic(&std::path::absolute(&path)?, &bytes)?;
    Ok(path)
}

/// The name and version an archive's top directory `{name}-{version}/` names.
pub fn archive_identity(bytes: &[u8]) -> Result<(String, String)> {
    use std::io::Read;
    let format = crate::archive::Format::sniff(bytes).context("not a gzip or zstd archive")?;
    let reader: Box<dyn Read + '_> = match format {
        crate::archive::Format::TarGz => Box::new(flate2::read::GzDecoder::new(bytes)),
        crate::archive::Format::TarZst => Box::new(zstd::stream::read::Decoder::new(bytes)?),
    };
    let mut archive = tar::Archive::new(reader);
    let first = archive.entries()?.next().context("the archive is empty")??;
    let path = String::from_utf8_lossy(&first.path_bytes()).into_owned();
    let top = path.split('/').next().unwrap_or_default().to_string();
    // Names may hold `-`, versions may too: take the first split that reads as both.
    for (i, _) in top.match_indices('-') {
        let (name, version) = (&top[..i], &top[i + 1..]);
        if crate::name::validate(name).is_ok() && Version::parse(version).is_ok() {
            return Ok((name.to_string(), version.to_string()));
        }
    }
    bail!("the archive's top directory `{top}` is not `{{name}}-{{version}}`")
}

/// `cairn verify FILE`: the file is a version the index lists (by checksum),
/// signed by the pinned key over exactly this name, version and digests,
/// valid under the archive rules, and with the provenance `policy` asks.
pub async fn verify_file(remote: &Remote, file: &Path, policy: &Policy) -> Result<String> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let (name, version) = archive_identity(&bytes)?;
    let config = remote.connect(false).await?;
    let Some(lines) = remote.index_file(&name).await? else {
        bail!("{}: the registry has no package `{name}`", file.display());
    };
    let (sha256, _) = crate::store::digests(&bytes);
    let line = lines
        .iter()
        .find(|l| l.vers == version)
        .ok_or_else(|| anyhow!("{}: the registry has no version {version} of {name}", file.display()))?;
    if line.cksum != sha256 {
        bail!(
            "{}: not the published {name} {version}: the index says SHA-256 {}, the file's is {sha256}",
            file.display(),
            line.cksum
        );
    }
    super::log::check(remote, Some(&config), std::slice::from_ref(line)).await?;
    policy.check_provenance(std::slice::from_ref(line))?;
    let want = Expected::from_line(line);
    let trust = Trust { pubkey: config.pubkey.clone(), name: config.name.clone() };
    let sig = remote.signature(Some(&config), &want).await?;
    super::verify::verify(&bytes, &sig, &trust, &want).with_context(|| format!("{}", file.display()))?;
    crate::archive::unpack::check(&bytes, &name, &version).map_err(|e| anyhow!("{}: {e}", file.display()))?;
    let yanked = if line.yanked { " (yanked)" } else { "" };
    let built = match &line.provenance {
        Some(p) => format!(", published from {} ({}, {})", p.summary(), p.git_ref, p.issuer),
        None => String::new(),
    };
    Ok(format!(
        "{}: {name} {version}{yanked}, sha256 {sha256}, signed by registry `{}` with key {}{built}",
        file.display(),
        config.name,
        config.pubkey
    ))
}
