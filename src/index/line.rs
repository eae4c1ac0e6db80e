//! One index line: a JSON object cargo can read, plus cairn's own keys that
//! cargo ignores. Only this module knows the line's shape.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndexLine {
    pub name: String,
    pub vers: String,
    pub deps: Vec<IndexDep>,
    pub cksum: String,
    pub features: BTreeMap<String, Vec<String>>,
    pub yanked: bool,
    #[serde(default)]
    pub links: Option<String>,
    #[serde(default = "one")]
    pub v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features2: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rust_version: Option<String>,
    /// `YYYY-MM-DDTHH:MM:SSZ` exactly; cargo rejects other forms.
    #[serde(default)]
    pub pubtime: Option<String>,
    // cairn's keys
    #[serde(default)]
    pub blake3: String,
    #[serde(default)]
    pub size: u64,
    /// `tar.gz` or `tar.zst`.
    #[serde(default)]
    pub fmt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Where it was built, for a version published by trusted publishing
    /// (SPEC section 17): in the line, so the log binds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    /// An npm package's version (`fmt` is `npm`, SPEC section 18): what its
    /// packument says beyond the line's own keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub npm: Option<Box<Npm>>,
    /// The number of its publish's leaf in the transparency log.
    #[serde(default, rename = "logIndex", skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
}

/// The npm fields of a version: its tarball's npm digests and counts, and
/// the package.json fields npm reads from a packument (`bin`, `engines`,
/// `peerDependenciesMeta`, …), as the archive's package.json has them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Npm {
    /// `sha512-{base64}`, Subresource Integrity's form.
    pub integrity: String,
    /// SHA-1, hex.
    pub shasum: String,
    pub file_count: u64,
    pub unpacked_size: u64,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// The CI run a version was published from: its identity token's claims
/// as the trust configuration matched them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    pub issuer: String,
    /// `owner/repo` (GitHub) or the project's path (GitLab).
    pub repository: String,
    /// The workflow's file name (`release.yml`, `.gitlab-ci.yml`).
    pub workflow: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub sha: String,
    pub run_id: String,
    #[serde(default)]
    pub environment: Option<String>,
}

impl Provenance {
    /// "acme/widgets@3f2a1c by release.yml", as a page says it.
    pub fn summary(&self) -> String {
        let sha = self.sha.get(..7).unwrap_or(&self.sha);
        format!("{}@{sha} by {}", self.repository, self.workflow)
    }
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndexDep {
    pub name: String,
    pub req: String,
    pub features: Vec<String>,
    pub optional: bool,
    pub default_features: bool,
    pub target: Option<String>,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
}

impl IndexDep {
    /// A native (cairn.toml) dependency written as a plain cargo dep.
    pub fn normal(name: &str, req: &str) -> IndexDep {
        IndexDep {
            name: name.to_string(),
            req: req.to_string(),
            features: vec![],
            optional: false,
            default_features: true,
            target: None,
            kind: "normal".into(),
            registry: None,
            package: None,
        }
    }
}

impl IndexLine {
    /// The line of a native (cairn.toml) package; `pubtime` is set by the writer.
    pub fn native(
        m: &crate::archive::Manifest,
        fmt: &str,
        cksum: &str,
        blake3: &str,
        size: u64,
    ) -> IndexLine {
        IndexLine {
            name: m.name.clone(),
            vers: m.version.clone(),
            deps: m.dependencies.iter().map(|d| IndexDep::normal(&d.name, &d.req)).collect(),
            cksum: cksum.to_string(),
            features: BTreeMap::new(),
            yanked: false,
            links: m.links.clone(),
            v: 1,
            features2: None,
            rust_version: m.rust_version.clone(),
            pubtime: None,
            blake3: blake3.to_string(),
            size,
            fmt: fmt.to_string(),
            kind: m.kind.clone(),
            description: m.description.clone(),
            license: m.license.clone(),
            keywords: m.keywords.clone(),
            repository: m.repository.clone(),
            provenance: None,
            npm: None,
            log_index: None,
        }
    }

    /// Whether it is an npm package's version (SPEC section 18).
    pub fn is_npm(&self) -> bool {
        self.fmt == crate::npm::FMT
    }

    /// Its kind as listings and search filter on it: lowercased, `library`
    /// when it has none (SPEC section 3); `None` for a kind that is not a
    /// word (a line from before that rule), which no listing names.
    pub fn listed_kind(&self) -> Option<String> {
        let kind = self.kind.as_deref().unwrap_or("library");
        crate::archive::is_word(kind).then(|| kind.to_ascii_lowercase())
    }

    /// Its keywords as listings and search filter on them: lowercased, each
    /// once, words only.
    pub fn listed_keywords(&self) -> Vec<String> {
        let mut words: Vec<String> = self
            .keywords
            .iter()
            .filter(|k| crate::archive::is_word(k))
            .map(|k| k.to_ascii_lowercase())
            .collect();
        words.sort();
        words.dedup();
        words
    }

    /// The tarball's size, when the line records it (an upstream's line
    /// does not: cairn's own lines always do).
    pub fn recorded_size(&self) -> Option<u64> {
        (self.size > 0 || !self.blake3.is_empty()).then_some(self.size)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("index line serializes")
    }

    /// Parses every line of an index file, skipping blank lines.
    pub fn parse_file(bytes: &[u8]) -> Result<Vec<IndexLine>, serde_json::Error> {
        bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .map(serde_json::from_slice)
            .collect()
    }

    /// Serializes lines back into an index file (one per line, trailing newline).
    pub fn file_bytes(lines: &[IndexLine]) -> Vec<u8> {
        let mut out = String::new();
        for l in lines {
            out.push_str(&l.to_json());
            out.push('\n');
        }
        out.into_bytes()
    }
}

/// A line's bytes (as an index file holds them, without the newline) as
/// first written: `"yanked":true` back to false. A byte replace, so a client
/// checks the bytes it fetched, not what a parser kept of them; inside a
/// JSON string a quote is escaped, so the pattern can only be the key.
/// An upstream's line may have spaces around the colon (`"yanked": true`):
/// they are kept.
pub fn first_written(raw: &[u8]) -> Vec<u8> {
    const KEY: &[u8] = b"\"yanked\"";
    let Some(at) = raw.windows(KEY.len()).position(|w| w == KEY) else { return raw.to_vec() };
    let after = at + KEY.len();
    let spaces = |from: usize| raw[from..].iter().take_while(|b| **b == b' ').count();
    let colon = after + spaces(after);
    if raw.get(colon) != Some(&b':') {
        return raw.to_vec();
    }
    let value = colon + 1 + spaces(colon + 1);
    match raw[value..].starts_with(b"true") {
        true => [&raw[..value], b"false", &raw[value + 4..]].concat(),
        false => raw.to_vec(),
    }
}

/// The time format cargo accepts for `pubtime`.
pub fn pubtime(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
