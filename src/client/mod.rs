//! The user side of cairn (SPEC section 10): credentials and pinned keys,
//! the sparse index and blob cache, resolution, install and lock file, the
//! write API, and mirroring.
//!
//! - `config`: credentials file and cache/config directories.
//! - `remote`: one registry over HTTP: config.json and key pinning, index
//!   files with ETag revalidation, verified blobs through `cache`.
//! - `verify`: the checks every tarball passes before it is unpacked.
//! - `resolve`: PubGrub over index lines; `lockfile`: `cairn.lock`.
//! - `install`: install, fetch, verify; `api`: the write API verbs;
//!   `device`: `login --device`; `mirror`: a read-only copy of a registry;
//!   `progress`: TTY-only bars.

pub mod api;
pub mod cache;
pub mod config;
pub mod device;
pub mod http;
pub mod install;
pub mod lockfile;
pub mod log;
pub mod mirror;
pub mod outdated;
pub mod progress;
pub mod project;
pub mod remote;
pub mod resolve;
pub mod verify;
