//! A new version of a stored archive (a candidate's publish, SPEC section
//! 19): its files read into memory, some replaced, its manifest's version
//! set, and packed again in the source's format under the new
//! `{name}-{version}/`. The archive read passed inspection when it was
//! published; the one written is inspected again by the publish it goes to.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::Read;

use super::{Format, Limits};

/// One regular file of an archive, its path below the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub executable: bool,
    pub data: Vec<u8>,
}

/// The regular files of an archive whose entries lie under `{prefix}/`, by path.
pub fn read(bytes: &[u8], prefix: &str) -> Result<BTreeMap<String, File>> {
    let format = Format::sniff(bytes).context("the archive is neither gzip nor zstd")?;
    let reader: Box<dyn Read + '_> = match format {
        Format::TarGz => Box::new(flate2::read::GzDecoder::new(bytes)),
        Format::TarZst => Box::new(zstd::stream::read::Decoder::new(bytes)?),
    };
    let limit = Limits::default().max_unpacked;
    let mut archive = tar::Archive::new(reader.take(limit));
    let mut files = BTreeMap::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = String::from_utf8(entry.path_bytes().into_owned()).context("entry path is not UTF-8")?;
        let Some(rel) = path.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) else {
            bail!("entry `{path}` is outside `{prefix}/`");
        };
        let executable = entry.header().mode().unwrap_or(0o644) & 0o111 != 0;
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        files.insert(rel.to_string(), File { executable, data });
    }
    Ok(files)
}

/// The files packed under `{prefix}/` in `format`, in path order.
pub fn write(files: &BTreeMap<String, File>, prefix: &str, format: Format) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (rel, file) in files {
        super::pack::append(&mut tar, prefix, rel, file.executable, &file.data)?;
    }
    let tar = tar.into_inner()?;
    Ok(match format {
        Format::TarZst => zstd::encode_all(&tar[..], 12)?,
        Format::TarGz => {
            use std::io::Write;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&tar)?;
            gz.finish()?
        }
    })
}

/// The manifest text (`cairn.toml` or `Cargo.toml`) with `[package]
/// version` set, the rest of it as written.
pub fn set_version(manifest: &str, version: &str) -> Result<String> {
    let mut doc: toml_edit::DocumentMut = manifest.parse().context("the manifest is not TOML")?;
    let package = doc
        .get_mut("package")
        .and_then(|p| p.as_table_like_mut())
        .context("the manifest has no [package]")?;
    package.insert("version", toml_edit::value(version));
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::builder::TarballBuilder;

    #[test]
    fn an_archive_read_changed_and_written_again_passes_inspection() {
        let bytes =
            TarballBuilder::new("pkg", "1.0.0").file("SKILL.md", b"old\n").file("bin/run", b"#!").gzip();
        let mut files = read(&bytes, "pkg-1.0.0").unwrap();
        assert_eq!(files["SKILL.md"].data, b"old\n");
        files.get_mut("SKILL.md").unwrap().data = b"new\n".to_vec();
        let manifest = String::from_utf8(files["cairn.toml"].data.clone()).unwrap();
        let bumped = set_version(&manifest, "1.0.1").unwrap();
        assert!(bumped.contains("version = \"1.0.1\"") && bumped.contains("name = \"pkg\""), "{bumped}");
        files.get_mut("cairn.toml").unwrap().data = bumped.into_bytes();
        let again = write(&files, "pkg-1.0.1", Format::TarGz).unwrap();
        let inspected = crate::archive::unpack::check(&again, "pkg", "1.0.1").unwrap();
        assert_eq!(inspected.manifest.version, "1.0.1");
        assert_eq!(read(&again, "pkg-1.0.1").unwrap()["SKILL.md"].data, b"new\n");
        assert!(set_version("x = 1\n", "1.0.0").is_err());
    }
}
