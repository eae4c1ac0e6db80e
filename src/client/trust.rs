//! What the client trusts a registry with, shared by the modules above it
//! (`config`, `remote`, `verify`, `log`): the signing key and name pinned at
//! first contact, the transparency log's keys, and what the user asks of
//! the log. It imports no other client module.

use serde::{Deserialize, Serialize};

/// The key and name a client trusts for a registry.
#[derive(Debug, Clone)]
pub struct Trust {
    pub pubkey: String,
    pub name: String,
}

/// `config.json`'s `log`: the origin and the two verifier keys.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogKeys {
    pub origin: String,
    pub key: String,
    #[serde(rename = "timeKey")]
    pub time_key: String,
}

/// What the user asks of the log (flags and environment).
#[derive(Debug, Clone)]
pub struct Policy {
    pub max_age: u64,
    pub witnesses: Vec<String>,
    /// Witness cosignatures required; default: every witness given.
    pub quorum: Option<usize>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { max_age: 86_400, witnesses: Vec::new(), quorum: None }
    }
}
