//! Unpacking a package archive on a client, under the same rules the
//! registry applies when it accepts one: [`check`] runs the server's
//! [`inspect`](super::inspect) (every path, entry type, size and ratio rule of
//! SPEC section 3) and [`unpack`] then writes only plain files and
//! directories, re-checking each path on the way, into a fresh directory.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::path::{Component, Path};

use super::{inspect, ArchiveError, Format, Inspected, Limits, ManifestKind};

/// Inspects an archive as the registry does: a `cairn.toml` package, else a crate.
pub fn check(bytes: &[u8], name: &str, version: &str) -> Result<Inspected, ArchiveError> {
    let limits = Limits::default();
    match inspect(bytes, name, version, None, ManifestKind::Cairn, &limits) {
        Err(ArchiveError::MissingManifest { .. }) => {
            inspect(bytes, name, version, None, ManifestKind::Cargo, &limits)
        }
        other => other,
    }
}

/// Extracts an archive that passed [`check`] into `dest` (which must not
/// exist), stripping the `{name}-{version}/` prefix. Returns the number of
/// files written.
pub fn unpack(bytes: &[u8], name: &str, version: &str, dest: &Path) -> Result<u64> {
    std::fs::create_dir(dest).with_context(|| format!("creating {}", dest.display()))?;
    unpack_into(bytes, name, version, dest)
}

/// [`unpack`] into `dest`, an empty directory the caller made.
pub fn unpack_into(bytes: &[u8], name: &str, version: &str, dest: &Path) -> Result<u64> {
    let prefix = format!("{name}-{version}");
    let limits = Limits::default();
    let format = Format::sniff(bytes).context("the archive is neither gzip nor zstd")?;
    let reader: Box<dyn Read + '_> = match format {
        Format::TarGz => Box::new(flate2::read::GzDecoder::new(bytes)),
        Format::TarZst => Box::new(zstd::stream::read::Decoder::new(bytes)?),
    };
    let mut archive = tar::Archive::new(reader);
    let (mut files, mut written) = (0u64, 0u64);
    let mut made: std::collections::HashSet<std::path::PathBuf> = std::collections::HashSet::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = String::from_utf8(entry.path_bytes().into_owned()).context("entry path is not UTF-8")?;
        let trimmed = path.trim_end_matches('/');
        if trimmed == prefix {
            continue;
        }
        let Some(rel) = trimmed.strip_prefix(&prefix).and_then(|r| r.strip_prefix('/')) else {
            bail!("entry `{path}` is outside `{prefix}/`");
        };
        // Belt and braces: inspection refused all of these already.
        let rel_path = Path::new(rel);
        if rel.contains('\\') || !rel_path.components().all(|c| matches!(c, Component::Normal(_))) {
            bail!("entry `{path}` has an unsafe path");
        }
        let target = dest.join(rel_path);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            if made.insert(rel_path.to_path_buf()) {
                std::fs::create_dir_all(&target)?;
            }
        } else if kind.is_file() {
            // Each directory is made once (`dest` exists): a `create_dir_all`
            // per file would cost a failed mkdir and a stat each.
            if let Some(parent) = rel_path.parent().filter(|p| !p.as_os_str().is_empty()) {
                if made.insert(parent.to_path_buf()) {
                    std::fs::create_dir_all(dest.join(parent))?;
                }
            }
            let executable = entry.header().mode().unwrap_or(0o644) & 0o111 != 0;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(if executable { 0o755 } else { 0o644 });
            let mut f = opts.open(&target).with_context(|| format!("creating {}", target.display()))?;
            let mut buf = [0u8; 64 * 1024];
            loop {
                let n = entry.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                written += n as u64;
                if written > limits.max_unpacked {
                    bail!("the archive unpacks to more than {} bytes", limits.max_unpacked);
                }
                f.write_all(&buf[..n])?;
            }
            files += 1;
        } else {
            bail!("entry `{path}` is neither a file nor a directory");
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::builder::TarballBuilder;

    #[test]
    fn unpacks_checked_archives_and_refuses_hostile_ones() {
        let dir = tempfile::tempdir().unwrap();
        let good = TarballBuilder::new("pkg", "1.0.0").file("src/a.txt", b"A").gzip();
        check(&good, "pkg", "1.0.0").unwrap();
        let dest = dir.path().join("pkg");
        assert_eq!(unpack(&good, "pkg", "1.0.0", &dest).unwrap(), 2);
        assert_eq!(std::fs::read(dest.join("src/a.txt")).unwrap(), b"A");
        assert!(dest.join("cairn.toml").is_file());

        let evil = TarballBuilder::new("pkg", "1.0.0").raw_file("pkg-1.0.0/../../x", b"x").gzip();
        assert!(check(&evil, "pkg", "1.0.0").is_err());
        assert!(unpack(&evil, "pkg", "1.0.0", &dir.path().join("evil")).is_err());
        assert!(!dir.path().join("x").exists());
    }
}
