//! Package archives: validation of an uploaded tarball before anything is
//! written (`inspect`), the manifests inside it (`cairn.toml`, `Cargo.toml`),
//! and a deterministic builder of crafted archives for tests and benchmarks.
//!
//! Every rejection is one variant of [`ArchiveError`]; its message is what the
//! publisher reads.

pub mod builder;
mod error;
mod format;
mod inspect;
mod manifest;
mod metadata;
pub mod npm;
pub mod pack;
pub mod rewrite;
pub mod unpack;

#[cfg(test)]
mod tests;

pub use error::ArchiveError;
pub use format::Format;
pub use inspect::{inspect, Inspected, Limits};
pub use manifest::{check_keywords, is_word, parse as parse_manifest, Dependency, Manifest, ManifestKind};
