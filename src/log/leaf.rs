//! A leaf of the transparency log (SPEC section 14, bytes in `index/log.md`):
//! `cairn-log-v1 {action} {name} {version} {sha256} {digest} {commit}\n`.
//! Only this module knows the text.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::index::IndexLine;

const MAGIC: &str = "cairn-log-v1";
/// What a field that does not apply holds.
const NONE: &str = "-";

/// The verbs of index commits that are logged, as their subjects spell them
/// (`cache {name}`: lines an upstream serves, an entry per line it adds or changes).
pub const ACTIONS: [&str; 8] =
    ["publish", "yank", "unyank", "delete", "deprecate", "undeprecate", "advisory", "cache"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub action: String,
    /// The package's name as in its index lines, or the advisory's ID.
    pub name: String,
    pub version: Option<String>,
    pub sha256: Option<String>,
    /// SHA-256 hex of what the change binds: the version's line as first
    /// written, the OSV file, or the meta file.
    pub digest: String,
    pub commit: String,
}

/// SHA-256 hex of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    crate::store::hex(&Sha256::digest(bytes))
}

impl Leaf {
    /// The leaf of a change to one version (publish, yank, unyank,
    /// delete), from the version's line as the index file holds it.
    pub fn of_line(action: &str, raw: &[u8], commit: &str) -> Result<Leaf> {
        let line: IndexLine = serde_json::from_slice(raw).context("an index line")?;
        Ok(Leaf {
            action: action.to_string(),
            name: line.name,
            version: Some(line.vers),
            sha256: Some(line.cksum),
            digest: digest(&crate::index::line::first_written(raw)),
            commit: commit.to_string(),
        })
    }

    /// The leaf of a change that binds a file only: an advisory's OSV file,
    /// a meta file, the index file of a deleted package.
    pub fn of_file(action: &str, id: &str, bytes: &[u8], commit: &str) -> Leaf {
        Leaf {
            action: action.to_string(),
            name: id.to_string(),
            version: None,
            sha256: None,
            digest: digest(bytes),
            commit: commit.to_string(),
        }
    }

    /// The entry's bytes, newline included.
    pub fn text(&self) -> String {
        format!(
            "{MAGIC} {} {} {} {} {} {}\n",
            self.action,
            self.name,
            self.version.as_deref().unwrap_or(NONE),
            self.sha256.as_deref().unwrap_or(NONE),
            self.digest,
            self.commit
        )
    }

    pub fn parse(bytes: &[u8]) -> Result<Leaf> {
        let text = std::str::from_utf8(bytes).context("a leaf is UTF-8")?;
        let body = text.strip_suffix('\n').context("a leaf ends in a newline")?;
        let f: Vec<&str> = body.split(' ').collect();
        if f.len() != 7 || f[0] != MAGIC || !ACTIONS.contains(&f[1]) || f.iter().any(|s| s.is_empty()) {
            bail!("not a cairn-log-v1 leaf: {body:?}");
        }
        let opt = |s: &str| (s != NONE).then(|| s.to_string());
        Ok(Leaf {
            action: f[1].to_string(),
            name: f[2].to_string(),
            version: opt(f[3]),
            sha256: opt(f[4]),
            digest: f[5].to_string(),
            commit: f[6].to_string(),
        })
    }

    /// Whether this leaf is the publish of `line` (or its caching from an
    /// upstream), whose raw bytes (as fetched, without the newline) are
    /// `raw`: what a client checks.
    pub fn is_entry_of(&self, line: &IndexLine, raw: &[u8]) -> bool {
        (self.action == "publish" || self.action == "cache")
            && self.name == line.name
            && self.version.as_deref() == Some(line.vers.as_str())
            && self.sha256.as_deref() == Some(line.cksum.as_str())
            && self.digest == digest(&crate::index::line::first_written(raw))
    }
}

/// The action and target of an index commit's subject (`publish foo 1.0.0`,
/// `advisory CAIRN-2026-0001`), if it is a logged change.
pub fn parse_subject(subject: &str) -> Option<(&str, &str, Option<&str>)> {
    let mut words = subject.split(' ');
    let action = words.next()?;
    let target = words.next()?;
    let version = words.next();
    (ACTIONS.contains(&action) && words.next().is_none()).then_some((action, target, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_round_trips_and_refuses_other_text() {
        let leaf = Leaf::of_file("advisory", "CAIRN-2026-0001", b"{}", &"ab".repeat(20));
        assert_eq!(Leaf::parse(leaf.text().as_bytes()).unwrap(), leaf);
        assert!(leaf
            .text()
            .contains(" - - 44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a "));
        for bad in
            ["cairn-log-v1 publish a\n", "cairn-log-v2 publish a 1 - d c\n", "cairn-log-v1 eat a 1 - d c\n"]
        {
            assert!(Leaf::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(Leaf::parse(b"cairn-log-v1 publish a 1 - d c").is_err(), "no newline");
    }

    #[test]
    fn subjects_name_their_change() {
        assert_eq!(parse_subject("publish foo 1.0.0"), Some(("publish", "foo", Some("1.0.0"))));
        assert_eq!(parse_subject("advisory X-1"), Some(("advisory", "X-1", None)));
        assert_eq!(parse_subject("config"), None);
        assert_eq!(parse_subject("prefill 2000 packages"), None);
    }
}
