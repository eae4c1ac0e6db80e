//! The compression of a package archive, as its magic bytes say.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The compression of a package archive, sniffed from its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Format {
    /// gzip-compressed tar (`.tar.gz`, `.crate`).
    TarGz,
    /// zstd-compressed tar (`.tar.zst`).
    TarZst,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

impl Format {
    /// File extension without the leading dot: `tar.gz` or `tar.zst`.
    pub fn ext(&self) -> &'static str {
        match self {
            Format::TarGz => "tar.gz",
            Format::TarZst => "tar.zst",
        }
    }

    /// The canonical media type to serve the archive with.
    pub fn content_type(&self) -> &'static str {
        match self {
            Format::TarGz => "application/gzip",
            Format::TarZst => "application/zstd",
        }
    }

    /// The format whose magic bytes start `bytes`, if any.
    pub fn sniff(bytes: &[u8]) -> Option<Format> {
        if bytes.starts_with(GZIP_MAGIC) {
            Some(Format::TarGz)
        } else if bytes.starts_with(ZSTD_MAGIC) {
            Some(Format::TarZst)
        } else {
            None
        }
    }

    /// Whether a request's Content-Type is compatible with this format.
    /// Absent, empty or `application/octet-stream` claims nothing.
    pub(super) fn accepts_content_type(&self, content_type: &str) -> bool {
        let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match media.as_str() {
            "" | "application/octet-stream" => true,
            "application/gzip" | "application/x-gzip" | "application/x-tar+gzip" => *self == Format::TarGz,
            "application/zstd" => *self == Format::TarZst,
            _ => false,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ext())
    }
}
