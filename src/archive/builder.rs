//! A builder of package archives, valid or deliberately hostile, for tests
//! and benchmark generators.
//!
//! Headers are written by hand with [`tar::Header`] (the name bytes go
//! straight into the header, since `set_path` refuses the hostile paths we
//! want to produce), so every byte is under the caller's control. Output is
//! deterministic: mtime 0, uid/gid 0, mode 0644 (0755 for directories), and
//! the same builder always yields the same bytes.
//!
//! ```
//! use cairn::archive::builder::TarballBuilder;
//! let body = TarballBuilder::new("foo", "1.0.0")
//!     .file("README.md", b"# foo\n")
//!     .gzip();
//! assert_eq!(&body[..2], &[0x1f, 0x8b]);
//! ```

use std::io::Write;

use tar::{EntryType, Header};

use super::ManifestKind;

const BLOCK: usize = 512;

#[derive(Clone, Debug)]
enum ManifestContent {
    Default,
    Custom(Vec<u8>),
    Omitted,
}

#[derive(Clone, Debug)]
struct RawEntry {
    path: Vec<u8>,
    entry_type: EntryType,
    data: Vec<u8>,
    link: Vec<u8>,
    /// PAX records written in an `x` header before this entry.
    pax: Vec<(String, String)>,
}

/// Builds a tarball for `{name}-{version}/`, pre-populated with a valid
/// manifest as its first entry.
#[derive(Clone, Debug)]
pub struct TarballBuilder {
    name: String,
    version: String,
    kind: ManifestKind,
    manifest: ManifestContent,
    entries: Vec<RawEntry>,
    tar_trailing: Vec<u8>,
    trailing: Vec<u8>,
}

impl TarballBuilder {
    /// A package `name` at `version` with a minimal valid `cairn.toml`.
    pub fn new(name: &str, version: &str) -> Self {
        TarballBuilder {
            name: name.to_owned(),
            version: version.to_owned(),
            kind: ManifestKind::Cairn,
            manifest: ManifestContent::Default,
            entries: Vec::new(),
            tar_trailing: Vec::new(),
            trailing: Vec::new(),
        }
    }

    /// The directory every entry lives under: `{name}-{version}`, npm's `package`.
    pub fn prefix(&self) -> String {
        self.kind.prefix(&self.name, &self.version)
    }

    /// Which manifest file to write (`cairn.toml` or `Cargo.toml`).
    pub fn manifest_kind(mut self, kind: ManifestKind) -> Self {
        self.kind = kind;
        self
    }

    /// Replaces the default manifest's contents (still written first, at
    /// `{prefix}/{cairn.toml|Cargo.toml}`).
    pub fn manifest(mut self, toml: impl Into<String>) -> Self {
        self.manifest = ManifestContent::Custom(toml.into().into_bytes());
        self
    }

    /// Writes no manifest at all.
    pub fn no_manifest(mut self) -> Self {
        self.manifest = ManifestContent::Omitted;
        self
    }

    /// The default manifest text for the current kind, name and version.
    pub fn default_manifest(&self) -> String {
        if self.kind == ManifestKind::Npm {
            let json = serde_json::json!({ "name": self.name, "version": self.version, "license": "MIT" });
            return json.to_string();
        }
        format!(
            "[package]\nname = \"{}\"\nversion = \"{}\"\ndescription = \"A test package\"\nlicense = \"MIT\"\n",
            self.name, self.version
        )
    }

    fn push(mut self, path: Vec<u8>, entry_type: EntryType, data: &[u8], link: &[u8]) -> Self {
        self.entries.push(RawEntry {
            path,
            entry_type,
            data: data.to_vec(),
            link: link.to_vec(),
            pax: Vec::new(),
        });
        self
    }

    fn full(&self, path: &str) -> Vec<u8> {
        format!("{}/{}", self.prefix(), path).into_bytes()
    }

    /// A regular file at `{prefix}/{path}`.
    pub fn file(self, path: &str, data: &[u8]) -> Self {
        let full = self.full(path);
        self.push(full, EntryType::Regular, data, b"")
    }

    /// A directory entry at `{prefix}/{path}/`.
    pub fn dir(self, path: &str) -> Self {
        let full = format!("{}/{}/", self.prefix(), path).into_bytes();
        self.push(full, EntryType::Directory, b"", b"")
    }

    /// The top directory entry `{prefix}/`.
    pub fn top_dir(self) -> Self {
        let full = format!("{}/", self.prefix()).into_bytes();
        self.push(full, EntryType::Directory, b"", b"")
    }

    /// A regular file at exactly `full_path` (no prefix added, nothing checked).
    pub fn raw_file(self, full_path: &str, data: &[u8]) -> Self {
        self.push(full_path.as_bytes().to_vec(), EntryType::Regular, data, b"")
    }

    /// A directory entry at exactly `full_path`.
    pub fn raw_dir(self, full_path: &str) -> Self {
        self.push(full_path.as_bytes().to_vec(), EntryType::Directory, b"", b"")
    }

    /// A regular file whose full path is arbitrary bytes (e.g. not UTF-8).
    pub fn raw_path_bytes(self, full_path: &[u8], data: &[u8]) -> Self {
        self.push(full_path.to_vec(), EntryType::Regular, data, b"")
    }

    /// An entry of any type at exactly `full_path`.
    pub fn raw_entry(self, full_path: &[u8], entry_type: EntryType, data: &[u8]) -> Self {
        self.push(full_path.to_vec(), entry_type, data, b"")
    }

    /// A symbolic link at `{prefix}/{path}` pointing at `target`.
    pub fn symlink(self, path: &str, target: &str) -> Self {
        let full = self.full(path);
        self.push(full, EntryType::Symlink, b"", target.as_bytes())
    }

    /// A hard link at `{prefix}/{path}` to `target` (used verbatim).
    pub fn hardlink(self, path: &str, target: &str) -> Self {
        let full = self.full(path);
        self.push(full, EntryType::Link, b"", target.as_bytes())
    }

    /// A fifo at `{prefix}/{path}`.
    pub fn fifo(self, path: &str) -> Self {
        let full = self.full(path);
        self.push(full, EntryType::Fifo, b"", b"")
    }

    /// A character device at `{prefix}/{path}`.
    pub fn char_device(self, path: &str) -> Self {
        let full = self.full(path);
        self.push(full, EntryType::Char, b"", b"")
    }

    /// A regular file at `{prefix}/{path}` holding `data`, preceded by a PAX
    /// header claiming its size is `pax_size` (the ustar header says
    /// `data.len()`).
    pub fn pax_size_mismatch(self, path: &str, data: &[u8], pax_size: u64) -> Self {
        self.file(path, data).pax_last("size", &pax_size.to_string())
    }

    /// Adds a PAX record to the most recently added entry.
    pub fn pax_last(mut self, key: &str, value: &str) -> Self {
        let last = self.entries.last_mut().expect("pax_last needs an entry to attach to");
        last.pax.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Bytes appended to the tar stream after the end-of-archive marker
    /// (inside the compression).
    pub fn tar_trailing(mut self, bytes: &[u8]) -> Self {
        self.tar_trailing.extend_from_slice(bytes);
        self
    }

    /// Bytes appended after the compressed stream.
    pub fn trailing(mut self, bytes: &[u8]) -> Self {
        self.trailing.extend_from_slice(bytes);
        self
    }

    /// The uncompressed tar stream.
    pub fn tar(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let manifest = match &self.manifest {
            ManifestContent::Default => Some(self.default_manifest().into_bytes()),
            ManifestContent::Custom(bytes) => Some(bytes.clone()),
            ManifestContent::Omitted => None,
        };
        if let Some(manifest) = manifest {
            let path = self.full(self.kind.file_name());
            write_entry(&mut out, &path, EntryType::Regular, &manifest, b"");
        }
        for e in &self.entries {
            if !e.pax.is_empty() {
                let mut records = Vec::new();
                for (k, v) in &e.pax {
                    records.extend_from_slice(&pax_record(k, v));
                }
                write_entry(&mut out, b"././@PaxHeader", EntryType::XHeader, &records, b"");
            }
            write_entry(&mut out, &e.path, e.entry_type, &e.data, &e.link);
        }
        // End-of-archive marker: two zero blocks.
        out.extend_from_slice(&[0u8; 2 * BLOCK]);
        out.extend_from_slice(&self.tar_trailing);
        out
    }

    /// The archive compressed with gzip (one member), then any trailing bytes.
    pub fn gzip(&self) -> Vec<u8> {
        let mut enc = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::default());
        enc.write_all(&self.tar()).expect("write to Vec");
        let mut out = enc.finish().expect("write to Vec");
        out.extend_from_slice(&self.trailing);
        out
    }

    /// The archive compressed with zstd (one frame), then any trailing bytes.
    pub fn zstd(&self) -> Vec<u8> {
        let mut out = zstd::encode_all(&self.tar()[..], 3).expect("write to Vec");
        out.extend_from_slice(&self.trailing);
        out
    }
}

/// One PAX record: `"{len} {key}={value}\n"`, where `len` counts itself.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let base = key.len() + value.len() + 3;
    let mut len = base + 1;
    while base + len.to_string().len() != len {
        len = base + len.to_string().len();
    }
    format!("{len} {key}={value}\n").into_bytes()
}

fn header(name: &[u8], entry_type: EntryType, size: u64, link: &[u8]) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(entry_type);
    h.set_mode(if entry_type.is_dir() { 0o755 } else { 0o644 });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    if entry_type == EntryType::GNUSparse {
        // A well-formed sparse file with no holes, so readers get past it.
        if let Some(gnu) = h.as_gnu_mut() {
            gnu.set_real_size(size);
        }
    }
    let old = h.as_old_mut();
    let n = name.len().min(old.name.len());
    old.name[..n].copy_from_slice(&name[..n]);
    let n = link.len().min(old.linkname.len());
    old.linkname[..n].copy_from_slice(&link[..n]);
    h.set_cksum();
    h
}

fn write_data(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
    out.extend(std::iter::repeat_n(0u8, pad));
}

/// Writes one entry, preceded by a GNU long-name entry if the path does not
/// fit the 100-byte name field.
fn write_entry(out: &mut Vec<u8>, path: &[u8], entry_type: EntryType, data: &[u8], link: &[u8]) {
    if path.len() > 100 {
        let mut long = path.to_vec();
        long.push(0);
        let h = header(b"././@LongLink", EntryType::GNULongName, long.len() as u64, b"");
        out.extend_from_slice(h.as_bytes());
        write_data(out, &long);
    }
    let h = header(path, entry_type, data.len() as u64, link);
    out.extend_from_slice(h.as_bytes());
    write_data(out, data);
}
