//! The package metadata the registry keeps of a manifest, whichever file
//! it came from (`cairn.toml`, `Cargo.toml`, npm's `package.json`): each
//! parser makes this shape, and the field rules check it.

use serde::{Deserialize, Serialize};

/// The package metadata the registry keeps, from any manifest kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    /// The version string exactly as written in the manifest; it parses as
    /// SemVer (checked).
    pub version: String,
    /// Free word (`library`, `skill`, `mcp`, ...); always `None` for Cargo.toml.
    pub kind: Option<String>,
    pub description: Option<String>,
    pub license: Option<String>,
    pub keywords: Vec<String>,
    pub repository: Option<String>,
    /// The readme path as declared in the manifest, if any.
    pub readme: Option<String>,
    /// Sorted by name.
    pub dependencies: Vec<Dependency>,
    /// Cargo.toml `links`; `None` for cairn.toml.
    pub links: Option<String>,
    /// Cargo.toml `rust-version`; `None` for cairn.toml.
    pub rust_version: Option<String>,
}

/// One entry of `[dependencies]`: the key and its SemVer requirement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub name: String,
    pub req: String,
}

/// A parsed manifest plus what the readme lookup needs to know.
#[derive(Debug)]
pub struct Parsed {
    pub manifest: Manifest,
    /// `readme = false` in Cargo.toml: no readme even if README.md exists.
    pub readme_disabled: bool,
}
