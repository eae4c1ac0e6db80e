//! Every reason an archive is refused, one variant each.

use super::format::Format;

/// Why an archive was refused. The message is what the publisher reads.
#[derive(thiserror::Error, Debug)]
pub enum ArchiveError {
    #[error("the archive is neither gzip nor zstd (unrecognised magic bytes)")]
    UnknownFormat,
    #[error("Content-Type `{content_type}` does not match the body, which is a {format} archive")]
    ContentTypeMismatch { content_type: String, format: Format },
    #[error("the archive is {size} bytes compressed; the limit is {max}")]
    CompressedTooLarge { size: u64, max: u64 },
    #[error("the archive unpacks to more than {max} bytes")]
    UnpackedTooLarge { max: u64 },
    #[error("the archive unpacks to more than {max_ratio} times its compressed size")]
    RatioTooHigh { max_ratio: u64 },
    #[error("the archive has more than {max} entries")]
    TooManyEntries { max: u64 },
    #[error("the archive is corrupt: {reason}")]
    Corrupt { reason: String },
    #[error("{count} bytes follow the end of the compressed stream")]
    TrailingCompressedBytes { count: usize },
    #[error("non-zero data follows the tar end-of-archive marker")]
    TrailingTarData,
    #[error("entry path is not UTF-8: {path}")]
    NonUtf8Path { path: String },
    #[error("entry `{path}` has an absolute path")]
    AbsolutePath { path: String },
    #[error("entry `{path}` has a `..` component")]
    ParentDirComponent { path: String },
    #[error("entry `{path}` has a `.` or empty component")]
    NonCanonicalPath { path: String },
    #[error("entry `{path}` is outside the package directory `{prefix}/`")]
    OutsidePrefix { path: String, prefix: String },
    #[error("entry `{path}` contains the character {ch:?}, which Windows forbids in file names")]
    ForbiddenCharacter { path: String, ch: char },
    #[error("entry `{path}` uses the Windows-reserved name `{component}`")]
    WindowsReservedName { path: String, component: String },
    #[error("entry `{path}` is a symbolic link; only files and directories are allowed")]
    SymlinkEntry { path: String },
    #[error("entry `{path}` is a hard link; only files and directories are allowed")]
    HardLinkEntry { path: String },
    #[error("entry `{path}` is a {kind}; only files and directories are allowed")]
    SpecialFileEntry { path: String, kind: &'static str },
    #[error("entry `{path}` has unsupported tar entry type {type_byte:#04x}; only files and directories are allowed")]
    UnsupportedEntryType { path: String, type_byte: u8 },
    #[error("entry `{path}` appears more than once")]
    DuplicatePath { path: String },
    #[error(
        "entries `{other}` and `{path}` are the same file on case-insensitive or normalising file systems"
    )]
    PathCollision { path: String, other: String },
    #[error("entry `{path}`: PAX header size `{pax}` disagrees with the tar header size {header}")]
    PaxSizeMismatch { path: String, pax: String, header: u64 },
    #[error("the archive has no manifest at `{path}`")]
    MissingManifest { path: String },
    #[error("the manifest `{path}` is {size} bytes; the limit is {max}")]
    ManifestTooLarge { path: String, size: u64, max: u64 },
    #[error("{file} is invalid: {reason}")]
    InvalidManifest { file: &'static str, reason: String },
    #[error("`{field}` is inherited from a workspace; publish the manifest produced by `cargo package`, which resolves it")]
    WorkspaceInherited { field: String },
    #[error("version `{version}` is not SemVer: {reason}")]
    InvalidVersion { version: String, reason: String },
    #[error("the manifest names the package `{manifest}` but the request publishes `{request}`")]
    NameMismatch { manifest: String, request: String },
    #[error("the manifest has version `{manifest}` but the request publishes `{request}`")]
    VersionMismatch { manifest: String, request: String },
    #[error("the description has {chars} characters; at most {max} are allowed")]
    DescriptionTooLong { chars: usize, max: usize },
    #[error("the manifest has {count} keywords; at most {max} are allowed")]
    TooManyKeywords { count: usize, max: usize },
    #[error("keyword `{keyword}` is longer than {max} characters")]
    KeywordTooLong { keyword: String, max: usize },
    #[error("{field} `{value}` must be a lowercase word: a letter or digit, then letters, digits, `-` or `_`, at most 32 characters")]
    NotAWord { field: &'static str, value: String },
    #[error("dependency `{name}` has an invalid version requirement `{req}`: {reason}")]
    InvalidDependencyRequirement { name: String, req: String, reason: String },
}

impl ArchiveError {
    /// True for size rejections (HTTP 413 `too-large`); everything else is
    /// 400 `invalid`.
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            ArchiveError::CompressedTooLarge { .. }
                | ArchiveError::UnpackedTooLarge { .. }
                | ArchiveError::RatioTooHigh { .. }
                | ArchiveError::TooManyEntries { .. }
                | ArchiveError::ManifestTooLarge { .. }
        )
    }
}
