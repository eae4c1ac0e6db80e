//! The user side of cairn (SPEC section 10): credentials and pinned keys,
//! the sparse index and blob cache, resolution, install and lock file, the
//! write API, and mirroring.
//!
//! - `trust`: the pinned key and name, the log's keys and policy (the
//!   lowest module: the ones below import it, it imports none of them).
//! - `error`: the typed error of every registry read, with its URL and
//!   predicates (`is_offline`, `is_not_found`, …).
//! - `config`: credentials file and cache/config directories.
//! - `cpu`: the CPU-heavy steps on rayon's pool, off the runtime's thread.
//! - `http`: the one fetch path, with its retries; `tls`: its TLS, the
//!   roots loaded at the first certificate checked.
//! - `remote`: one registry over HTTP: config.json and key pinning, index
//!   files with ETag revalidation, verified blobs through `cache`; every
//!   path a `layout::Layout` key.
//! - `verify`: the checks every tarball passes before it is unpacked.
//! - `resolve`: PubGrub over index lines; `lockfile`: `cairn.lock`.
//! - `install`: install, fetch, verify; `target`: unpacking into `cairn_packages/`;
//!   `deprecation`: its warnings; `api`: the write API verbs;
//!   `device`: `login --device`; `mirror`: a read-only copy of a registry;
//!   `progress`: TTY-only bars.

pub mod api;
pub mod cache;
pub mod config;
pub mod cpu;
pub mod deprecation;
pub mod device;
pub mod error;
pub mod http;
pub mod install;
pub mod lockfile;
pub mod log;
pub mod mirror;
pub mod outdated;
pub mod policy;
pub mod progress;
pub mod project;
pub mod remote;
pub mod resolve;
pub mod single;
pub mod target;
pub mod tls;
pub mod trust;
pub mod verify;
pub mod warm;
