//! Validation of an uploaded package archive, entirely in memory and before
//! anything is written.
//!
//! The compressed body is decompressed as a stream through a counting reader
//! that enforces the size, ratio and entry limits as bytes arrive, so a
//! decompression bomb is stopped after at most `max_unpacked` bytes (usually
//! far sooner, by the ratio check) and never inflated whole.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use super::error::ArchiveError;
use super::format::Format;
use super::manifest::{self, Manifest, ManifestKind};

/// Largest manifest file accepted, in bytes; a real one is a few KiB.
pub(crate) const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// Size limits applied while inspecting an archive. Every field has a default
/// (see [`Limits::default`]) so a config file may set only some of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest compressed body, in bytes (default 10 MiB).
    pub max_compressed: u64,
    /// Largest decompressed tar stream, in bytes (default 512 MiB).
    pub max_unpacked: u64,
    /// Largest unpacked/compressed ratio (default 100).
    pub max_ratio: u64,
    /// The ratio is only checked once the unpacked size passes this (default 1 MiB).
    pub ratio_after: u64,
    /// Most entries in the tar (default 20 000).
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_compressed: 10 * 1024 * 1024,
            max_unpacked: 512 * 1024 * 1024,
            max_ratio: 100,
            ratio_after: 1024 * 1024,
            max_entries: 20_000,
        }
    }
}

/// What a valid archive holds, as far as the registry cares.
#[derive(Clone, Debug)]
pub struct Inspected {
    pub format: Format,
    pub manifest: Manifest,
    /// The manifest file's text (a crate's index line needs more of its
    /// `Cargo.toml` than [`Manifest`] keeps).
    pub manifest_text: String,
    /// The readme's bytes: the manifest's `readme` path, else `README.md` if
    /// present; `None` if absent (or Cargo.toml says `readme = false`).
    pub readme: Option<Vec<u8>>,
    /// Number of tar entries (files and directories; PAX and GNU long-name
    /// headers are not counted).
    pub entries: u64,
    /// Length of the decompressed tar stream, headers and padding included.
    pub unpacked_size: u64,
    /// Regular files, and the sum of their sizes (npm's `fileCount` and `unpackedSize`).
    pub file_count: u64,
    pub file_bytes: u64,
}

/// Validates a whole tarball held in memory.
///
/// `content_type` is the request's Content-Type header, if any; `name` and
/// `version` are the request's, and the manifest (`cairn.toml` or
/// `Cargo.toml` per `kind`, at `{name}-{version}/`) must agree with them.
pub fn inspect(
    bytes: &[u8],
    name: &str,
    version: &str,
    content_type: Option<&str>,
    kind: ManifestKind,
    limits: &Limits,
) -> Result<Inspected, ArchiveError> {
    // Refuse oversized bodies before spending any CPU on them.
    let compressed = bytes.len() as u64;
    if compressed > limits.max_compressed {
        return Err(ArchiveError::CompressedTooLarge { size: compressed, max: limits.max_compressed });
    }
    // Trust magic bytes, not names or headers: only two decoders are ever run.
    let format = Format::sniff(bytes).ok_or(ArchiveError::UnknownFormat)?;
    // A Content-Type that contradicts the body is a confused client or a
    // smuggling attempt past a proxy that trusts the header.
    if let Some(ct) = content_type {
        if !format.accepts_content_type(ct) {
            return Err(ArchiveError::ContentTypeMismatch { content_type: ct.to_owned(), format });
        }
    }

    let prefix = kind.prefix(name, version);
    let manifest_path = format!("{prefix}/{}", kind.file_name());
    let mut scan = Scan::new(bytes, format, limits, &prefix, &manifest_path, kind)?;
    scan.run()?;
    let Scan {
        parsed,
        manifest_text,
        readme_md,
        readme_declared,
        files,
        entries,
        unpacked: unpacked_size,
        file_bytes,
        ..
    } = scan;
    let file_count = files.len() as u64;

    let Some(parsed) = parsed else {
        // Without a manifest the registry cannot know what it is publishing.
        return Err(ArchiveError::MissingManifest { path: manifest_path });
    };
    let manifest = parsed.manifest;
    // The archive must publish what the request says, or the index entry
    // would describe a different package from the bytes it points at.
    if manifest.name != name {
        return Err(ArchiveError::NameMismatch { manifest: manifest.name, request: name.to_owned() });
    }
    let request_version = semver::Version::parse(version)
        .map_err(|e| ArchiveError::InvalidVersion { version: version.to_owned(), reason: e.to_string() })?;
    // Parsed equality includes build metadata: `1.0.0+a` is not `1.0.0+b` here.
    let manifest_version = semver::Version::parse(&manifest.version).ok();
    if manifest_version.as_ref() != Some(&request_version) {
        return Err(ArchiveError::VersionMismatch {
            manifest: manifest.version,
            request: version.to_owned(),
        });
    }

    let readme = if parsed.readme_disabled {
        None
    } else if let Some(declared) = &manifest.readme {
        let path = format!("{prefix}/{}", declared.trim_start_matches("./"));
        match readme_declared {
            Some(bytes) => Some(bytes),
            // The readme came before the manifest: read it in a second pass
            // over the archive, already known to be valid and within limits.
            None if files.contains(&path) => read_one_file(bytes, format, limits, &path)?,
            None => None,
        }
    } else {
        readme_md
    };

    Ok(Inspected { format, manifest, manifest_text, readme, entries, unpacked_size, file_count, file_bytes })
}

/// Which limit the counting reader hit, read back after the tar crate has
/// turned our `io::Error` into its own.
#[derive(Clone, Copy, Debug)]
enum LimitHit {
    Unpacked,
    Ratio,
}

/// The decompressor over the body, remembering how much of it is unread.
enum Decoder<'a> {
    Gz(flate2::bufread::GzDecoder<&'a [u8]>),
    Zst(zstd::stream::read::Decoder<'static, &'a [u8]>),
}

impl<'a> Decoder<'a> {
    fn new(bytes: &'a [u8], format: Format) -> io::Result<Self> {
        Ok(match format {
            // Single-member decoder: a second gzip member is trailing data.
            Format::TarGz => Decoder::Gz(flate2::bufread::GzDecoder::new(bytes)),
            // Single-frame decoder: a second zstd frame is trailing data.
            Format::TarZst => Decoder::Zst(zstd::stream::read::Decoder::with_buffer(bytes)?.single_frame()),
        })
    }

    /// Compressed bytes not consumed by the decoder.
    fn remaining(&self) -> usize {
        match self {
            Decoder::Gz(d) => d.get_ref().len(),
            Decoder::Zst(d) => d.get_ref().len(),
        }
    }
}

impl Read for Decoder<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Gz(d) => d.read(buf),
            Decoder::Zst(d) => d.read(buf),
        }
    }
}

/// Counts decompressed bytes and fails the read as soon as a limit is passed.
struct Counted<'a> {
    inner: Decoder<'a>,
    unpacked: u64,
    compressed: u64,
    max_unpacked: u64,
    max_ratio: u64,
    ratio_after: u64,
    hit: Rc<Cell<Option<LimitHit>>>,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.hit.get().is_some() {
            return Err(io::Error::other("archive limit exceeded"));
        }
        let n = self.inner.read(buf)?;
        self.unpacked += n as u64;
        // Decompression bombs: stop at the absolute ceiling...
        if self.unpacked > self.max_unpacked {
            self.hit.set(Some(LimitHit::Unpacked));
            return Err(io::Error::other("unpacked size limit exceeded"));
        }
        // ...and, past a small allowance, at an implausible ratio, which catches
        // bombs long before the ceiling.
        if self.unpacked > self.ratio_after && self.unpacked > self.compressed.saturating_mul(self.max_ratio)
        {
            self.hit.set(Some(LimitHit::Ratio));
            return Err(io::Error::other("compression ratio limit exceeded"));
        }
        Ok(n)
    }
}

fn open<'a>(
    bytes: &'a [u8],
    format: Format,
    limits: &Limits,
    hit: Rc<Cell<Option<LimitHit>>>,
) -> Result<Counted<'a>, ArchiveError> {
    let inner = Decoder::new(bytes, format).map_err(|e| ArchiveError::Corrupt { reason: e.to_string() })?;
    Ok(Counted {
        inner,
        unpacked: 0,
        compressed: bytes.len() as u64,
        max_unpacked: limits.max_unpacked,
        max_ratio: limits.max_ratio,
        ratio_after: limits.ratio_after,
        hit,
    })
}

/// Turns an I/O error from the decompressor or the tar parser into the
/// rejection it stands for.
fn io_error(e: io::Error, hit: &Cell<Option<LimitHit>>, limits: &Limits) -> ArchiveError {
    match hit.get() {
        Some(LimitHit::Unpacked) => ArchiveError::UnpackedTooLarge { max: limits.max_unpacked },
        Some(LimitHit::Ratio) => ArchiveError::RatioTooHigh { max_ratio: limits.max_ratio },
        None => ArchiveError::Corrupt { reason: e.to_string() },
    }
}

/// State of the single validating pass over the archive.
struct Scan<'a> {
    archive: Option<tar::Archive<Counted<'a>>>,
    /// Length of the decompressed stream, filled in once it is drained.
    unpacked: u64,
    hit: Rc<Cell<Option<LimitHit>>>,
    limits: &'a Limits,
    prefix: &'a str,
    manifest_path: &'a str,
    kind: ManifestKind,
    entries: u64,
    /// Exact paths seen, trailing `/` removed.
    seen: HashSet<String>,
    /// NFC + lowercase key → first path with that key.
    folded: HashMap<String, String>,
    /// Paths of regular files, and their bytes.
    files: HashSet<String>,
    file_bytes: u64,
    parsed: Option<manifest::Parsed>,
    /// The manifest's text, as parsed.
    manifest_text: String,
    readme_md: Option<Vec<u8>>,
    readme_declared: Option<Vec<u8>>,
}

impl<'a> Scan<'a> {
    fn new(
        bytes: &'a [u8],
        format: Format,
        limits: &'a Limits,
        prefix: &'a str,
        manifest_path: &'a str,
        kind: ManifestKind,
    ) -> Result<Self, ArchiveError> {
        let hit = Rc::new(Cell::new(None));
        let counted = open(bytes, format, limits, hit.clone())?;
        Ok(Scan {
            archive: Some(tar::Archive::new(counted)),
            unpacked: 0,
            hit,
            limits,
            prefix,
            manifest_path,
            kind,
            entries: 0,
            seen: HashSet::new(),
            folded: HashMap::new(),
            files: HashSet::new(),
            file_bytes: 0,
            parsed: None,
            manifest_text: String::new(),
            readme_md: None,
            readme_declared: None,
        })
    }

    fn io(&self, e: io::Error) -> ArchiveError {
        io_error(e, &self.hit, self.limits)
    }

    fn run(&mut self) -> Result<(), ArchiveError> {
        let mut archive = self.archive.take().expect("run once");
        let entries = archive.entries().map_err(|e| self.io(e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.io(e))?;
            self.entry(&mut entry)?;
        }
        let mut counted = archive.into_inner();

        // Data hidden after the end-of-archive marker is invisible to us but
        // not to every other tar reader: only zero padding may follow.
        let mut buf = [0u8; 8192];
        loop {
            let n = counted.read(&mut buf).map_err(|e| self.io(e))?;
            if n == 0 {
                break;
            }
            if buf[..n].iter().any(|b| *b != 0) {
                return Err(ArchiveError::TrailingTarData);
            }
        }
        // Bytes after the compressed stream (appended data, a second gzip
        // member or zstd frame) would be read by some decoders and not others.
        let remaining = counted.inner.remaining();
        if remaining != 0 {
            return Err(ArchiveError::TrailingCompressedBytes { count: remaining });
        }
        self.unpacked = counted.unpacked;
        Ok(())
    }

    fn entry(&mut self, entry: &mut tar::Entry<'_, Counted<'a>>) -> Result<(), ArchiveError> {
        self.entries += 1;
        // Many tiny entries exhaust inodes and per-entry work on extraction.
        if self.entries > self.limits.max_entries {
            return Err(ArchiveError::TooManyEntries { max: self.limits.max_entries });
        }

        let raw_path = entry.path_bytes().into_owned();
        // Non-UTF-8 names mean different files on different platforms.
        let path = String::from_utf8(raw_path).map_err(|e| ArchiveError::NonUtf8Path {
            path: String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })?;

        let entry_type = entry.header().entry_type();
        // Symlinks let later entries or extraction escape the package directory.
        if entry_type.is_symlink() {
            return Err(ArchiveError::SymlinkEntry { path });
        }
        // Hard links can point at files outside the package on extraction.
        if entry_type.is_hard_link() {
            return Err(ArchiveError::HardLinkEntry { path });
        }
        // Devices and fifos make extraction open hardware or block forever.
        let special = match entry_type {
            tar::EntryType::Char => Some("character device"),
            tar::EntryType::Block => Some("block device"),
            tar::EntryType::Fifo => Some("fifo"),
            _ => None,
        };
        if let Some(kind) = special {
            return Err(ArchiveError::SpecialFileEntry { path, kind });
        }
        let is_dir = entry_type.is_dir();
        // Anything else (sparse files, global PAX headers, vendor types) is
        // read differently by different tools: allow only plain files and dirs.
        if !(is_dir || entry_type.is_file()) {
            return Err(ArchiveError::UnsupportedEntryType { path, type_byte: entry_type.as_byte() });
        }

        let key = check_path(&path, self.prefix, is_dir)?;

        // A PAX size that disagrees with the header makes tar readers disagree
        // on where the next entry starts: one archive, two contents.
        let mut pax_sizes = Vec::new();
        if let Some(pax) = entry.pax_extensions().map_err(|e| self.io(e))? {
            for ext in pax {
                let ext = ext.map_err(|e| self.io(e))?;
                if ext.key_bytes() == b"size" {
                    pax_sizes.push(String::from_utf8_lossy(ext.value_bytes()).into_owned());
                }
            }
        }
        // Every `size` record counts: readers differ on which of several wins.
        for pax in pax_sizes {
            let header = entry.header().size().map_err(|e| self.io(e))?;
            if pax.parse::<u64>().ok() != Some(header) {
                return Err(ArchiveError::PaxSizeMismatch { path, pax, header });
            }
        }

        // Duplicates: which copy wins depends on the extractor.
        if !self.seen.insert(key.clone()) {
            return Err(ArchiveError::DuplicatePath { path: key });
        }
        // Names equal after case folding or NFC normalisation overwrite each
        // other on macOS and Windows.
        let folded: String = key.nfc().collect::<String>().to_lowercase().nfc().collect();
        if let Some(other) = self.folded.get(&folded) {
            return Err(ArchiveError::PathCollision { path: key, other: other.clone() });
        }
        self.folded.insert(folded, key.clone());

        if is_dir {
            return Ok(());
        }
        self.files.insert(key.clone());
        self.file_bytes += entry.size();

        if key == self.manifest_path {
            let size = entry.size();
            // A huge "manifest" would make the TOML parser the bomb.
            if size > MAX_MANIFEST_BYTES {
                return Err(ArchiveError::ManifestTooLarge { path: key, size, max: MAX_MANIFEST_BYTES });
            }
            let text = read_entry(entry).map_err(|e| self.io(e))?;
            self.parsed = Some(manifest::parse(self.kind, &text)?);
            // UTF-8: the parse checked it.
            self.manifest_text = String::from_utf8_lossy(&text).into_owned();
            return Ok(());
        }

        let declared = self
            .parsed
            .as_ref()
            .and_then(|p| p.manifest.readme.as_deref())
            .map(|r| format!("{}/{}", self.prefix, r.trim_start_matches("./")));
        let is_declared = declared.as_deref() == Some(key.as_str());
        let is_default = key == format!("{}/README.md", self.prefix);
        if is_declared || is_default {
            let data = read_entry(entry).map_err(|e| self.io(e))?;
            if is_declared {
                self.readme_declared = Some(data.clone());
            }
            if is_default {
                self.readme_md = Some(data);
            }
        }
        Ok(())
    }
}

fn read_entry(entry: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    entry.read_to_end(&mut data)?;
    Ok(data)
}

/// Reads one regular file from an archive that has already passed inspection.
fn read_one_file(
    bytes: &[u8],
    format: Format,
    limits: &Limits,
    wanted: &str,
) -> Result<Option<Vec<u8>>, ArchiveError> {
    let hit = Rc::new(Cell::new(None));
    let mut archive = tar::Archive::new(open(bytes, format, limits, hit.clone())?);
    let entries = archive.entries().map_err(|e| io_error(e, &hit, limits))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| io_error(e, &hit, limits))?;
        if entry.header().entry_type().is_file() && *entry.path_bytes() == *wanted.as_bytes() {
            return read_entry(&mut entry).map(Some).map_err(|e| io_error(e, &hit, limits));
        }
    }
    Ok(None)
}

/// Windows device names, reserved with any extension in any directory.
const WINDOWS_RESERVED: &[&str] = &[
    "con", "prn", "aux", "nul", "conin$", "conout$", "com1", "com2", "com3", "com4", "com5", "com6", "com7",
    "com8", "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// Characters Windows refuses in file names (control characters too).
const WINDOWS_FORBIDDEN: &[char] = &['<', '>', ':', '"', '\\', '|', '?', '*'];

/// Checks one entry path and returns it without a trailing `/`.
fn check_path(path: &str, prefix: &str, is_dir: bool) -> Result<String, ArchiveError> {
    let owned = || path.to_owned();
    // Absolute paths write wherever the archive likes on naive extraction.
    if path.starts_with('/') {
        return Err(ArchiveError::AbsolutePath { path: owned() });
    }
    // Only directories may end in `/`; elsewhere it is an empty component.
    let trimmed = match path.strip_suffix('/') {
        Some(t) if is_dir => t,
        _ => path,
    };
    let components: Vec<&str> = trimmed.split('/').collect();
    // `..` is the classic path-traversal escape (zip-slip).
    if components.contains(&"..") {
        return Err(ArchiveError::ParentDirComponent { path: owned() });
    }
    // `.` and empty components give one file several spellings, defeating
    // the duplicate checks below.
    if components.iter().any(|c| c.is_empty() || *c == ".") {
        return Err(ArchiveError::NonCanonicalPath { path: owned() });
    }
    // Everything lives under `{name}-{version}/` so extraction of one package
    // cannot touch another; the top directory itself may appear as an entry.
    let inside = components[0] == prefix && (components.len() > 1 || is_dir);
    if !inside {
        return Err(ArchiveError::OutsidePrefix { path: owned(), prefix: prefix.to_owned() });
    }
    for component in &components[1..] {
        // Characters Windows forbids make the package impossible to extract
        // there; `\` and `:` also smuggle separators and drive letters.
        if let Some(ch) = component.chars().find(|c| c.is_control() || WINDOWS_FORBIDDEN.contains(c)) {
            return Err(ArchiveError::ForbiddenCharacter { path: owned(), ch });
        }
        // `aux.rs` opens the AUX device on Windows instead of a file.
        let stem = component.split('.').next().unwrap_or("").trim_end_matches(' ');
        if WINDOWS_RESERVED.iter().any(|r| stem.eq_ignore_ascii_case(r)) {
            return Err(ArchiveError::WindowsReservedName {
                path: owned(),
                component: (*component).to_owned(),
            });
        }
    }
    Ok(trimmed.to_owned())
}
