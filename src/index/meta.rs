//! Package-level metadata that is not a version's (SPEC section 5):
//! `meta/{cargo path of the name}.json` in the index, `{"deprecated":
//! "message", "replacement": "name"}`, absent when there is none. The one
//! owner of that file's path and bytes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::package_path;

/// The directory of the meta files in the index tree.
pub const DIR: &str = "meta/";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Why the package should not be used any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<String>,
    /// A package to use instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    /// Versions deprecated one by one (npm's `deprecate name@range`), by version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, String>,
    /// npm's dist-tags other than `latest` (which is always the latest
    /// version of SPEC section 6), by tag.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// The longest deprecation message accepted.
pub const MAX_MESSAGE: usize = 1024;

/// A package's meta file in the index tree.
pub fn path(name: &str) -> String {
    format!("{DIR}{}.json", package_path(name))
}

impl Meta {
    pub fn parse(bytes: &[u8]) -> Result<Meta, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The file's bytes; `None` when there is nothing to say (the file is removed).
    pub fn file_bytes(&self) -> Option<Vec<u8>> {
        if *self == Meta::default() {
            return None;
        }
        let mut b = serde_json::to_vec(self).expect("json serializes");
        b.push(b'\n');
        Some(b)
    }

    pub fn is_deprecated(&self) -> bool {
        self.deprecated.is_some()
    }

    /// Why `version` should not be used: its own message, else the package's.
    pub fn deprecation_of(&self, version: &str) -> Option<&str> {
        self.versions.get(version).or(self.deprecated.as_ref()).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_files_sit_at_the_packages_cargo_path() {
        assert_eq!(path("Serde_json"), "meta/se/rd/serde_json.json");
        assert_eq!(path("ab"), "meta/2/ab.json");
        let m = Meta { deprecated: Some("use b".into()), replacement: Some("b".into()), ..Meta::default() };
        assert_eq!(m.file_bytes().unwrap(), b"{\"deprecated\":\"use b\",\"replacement\":\"b\"}\n");
        assert_eq!(Meta::parse(&m.file_bytes().unwrap()).unwrap(), m);
        assert_eq!(Meta::default().file_bytes(), None);
    }
}
