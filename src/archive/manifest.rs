//! The manifest inside a package: `cairn.toml` (native packages) or
//! `Cargo.toml` (crates), parsed into one [`Manifest`] shape and checked
//! against the field rules of SPEC section 3.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use super::error::ArchiveError;
pub use super::metadata::{Dependency, Manifest, Parsed};

/// Longest allowed `description`, in characters.
pub(crate) const MAX_DESCRIPTION_CHARS: usize = 1024;
/// Most keywords a package may declare.
pub(crate) const MAX_KEYWORDS: usize = 5;
/// Longest allowed keyword, in characters.
pub(crate) const MAX_KEYWORD_CHARS: usize = 20;

/// Which manifest file a package carries at `{name}-{version}/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ManifestKind {
    /// A native package with `cairn.toml`.
    Cairn,
    /// A Rust crate with `Cargo.toml`.
    Cargo,
    /// An npm package: `package/package.json` (SPEC section 18).
    Npm,
}

impl ManifestKind {
    /// The manifest's file name inside the package directory.
    pub fn file_name(&self) -> &'static str {
        match self {
            ManifestKind::Cairn => "cairn.toml",
            ManifestKind::Cargo => "Cargo.toml",
            ManifestKind::Npm => "package.json",
        }
    }

    /// The one directory every entry of the archive lives in: npm's
    /// `package/`, else `{name}-{version}/`.
    pub fn prefix(&self, name: &str, version: &str) -> String {
        match self {
            ManifestKind::Npm => "package".to_string(),
            ManifestKind::Cairn | ManifestKind::Cargo => format!("{name}-{version}"),
        }
    }
}

/// Parses and checks a manifest of the given kind.
pub fn parse(kind: ManifestKind, bytes: &[u8]) -> Result<Parsed, ArchiveError> {
    let file = kind.file_name();
    // A manifest is text; a binary blob is an accident or a probe.
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ArchiveError::InvalidManifest { file, reason: format!("not UTF-8: {e}") })?;
    let parsed = match kind {
        ManifestKind::Cairn => parse_cairn(text)?,
        ManifestKind::Cargo => parse_cargo(text)?,
        ManifestKind::Npm => super::npm::parse(text)?,
    };
    check_fields(&parsed.manifest, kind)?;
    Ok(parsed)
}

#[derive(Deserialize)]
struct CairnToml {
    package: CairnPackage,
    #[serde(default)]
    dependencies: BTreeMap<String, DepSpec>,
}

#[derive(Deserialize)]
struct CairnPackage {
    name: String,
    version: String,
    kind: Option<String>,
    description: Option<String>,
    license: Option<String>,
    #[serde(default)]
    keywords: Vec<String>,
    repository: Option<String>,
    readme: Option<String>,
}

/// `name = "^1.0"` or `name = { version = "^1.0", ... }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum DepSpec {
    Req(String),
    Table { version: Option<String> },
}

impl DepSpec {
    fn into_req(self) -> String {
        match self {
            DepSpec::Req(req) => req,
            // Cargo treats a dependency without a version as `*`.
            DepSpec::Table { version } => version.unwrap_or_else(|| "*".to_owned()),
        }
    }
}

fn parse_cairn(text: &str) -> Result<Parsed, ArchiveError> {
    let toml: CairnToml = toml::from_str(text).map_err(|e| ArchiveError::InvalidManifest {
        file: "cairn.toml",
        reason: e.message().to_owned() + &span_note(text, e.span()),
    })?;
    let p = toml.package;
    Ok(Parsed {
        manifest: Manifest {
            name: p.name,
            version: p.version,
            kind: p.kind,
            description: p.description,
            license: p.license,
            keywords: p.keywords,
            repository: p.repository,
            readme: p.readme,
            dependencies: toml
                .dependencies
                .into_iter()
                .map(|(name, spec)| Dependency { name, req: spec.into_req() })
                .collect(),
            links: None,
            rust_version: None,
        },
        readme_disabled: false,
    })
}

fn span_note(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

fn parse_cargo(text: &str) -> Result<Parsed, ArchiveError> {
    let invalid = |reason: String| ArchiveError::InvalidManifest { file: "Cargo.toml", reason };
    let root: Table = text
        .parse()
        .map_err(|e: toml::de::Error| invalid(e.message().to_owned() + &span_note(text, e.span())))?;
    let package = match root.get("package") {
        Some(Value::Table(t)) => t,
        Some(_) => return Err(invalid("`package` must be a table".into())),
        None => return Err(invalid("missing `[package]` table".into())),
    };

    let name = cargo_string(package, "name")?.ok_or_else(|| invalid("missing `package.name`".into()))?;
    let version =
        cargo_string(package, "version")?.ok_or_else(|| invalid("missing `package.version`".into()))?;

    let keywords = match cargo_field(package, "keywords")? {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => {
                    Err(invalid(format!("`package.keywords` must hold strings, found {}", other.type_str())))
                }
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(invalid(format!("`package.keywords` must be an array, found {}", other.type_str())))
        }
    };

    let (readme, readme_disabled) = match cargo_field(package, "readme")? {
        None => (None, false),
        Some(Value::String(s)) => (Some(s.clone()), false),
        Some(Value::Boolean(true)) => (Some("README.md".to_owned()), false),
        Some(Value::Boolean(false)) => (None, true),
        Some(other) => {
            return Err(invalid(format!(
                "`package.readme` must be a string or a boolean, found {}",
                other.type_str()
            )))
        }
    };

    let mut dependencies = Vec::new();
    match root.get("dependencies") {
        None => {}
        Some(Value::Table(deps)) => {
            for (key, spec) in deps {
                let req = match spec {
                    Value::String(req) => req.clone(),
                    Value::Table(t) => {
                        if t.get("workspace") == Some(&Value::Boolean(true)) {
                            return Err(ArchiveError::WorkspaceInherited {
                                field: format!("dependencies.{key}"),
                            });
                        }
                        match t.get("version") {
                            Some(Value::String(req)) => req.clone(),
                            // Cargo treats a dependency without a version as `*`.
                            None => "*".to_owned(),
                            Some(other) => {
                                return Err(invalid(format!(
                                    "`dependencies.{key}.version` must be a string, found {}",
                                    other.type_str()
                                )))
                            }
                        }
                    }
                    other => {
                        return Err(invalid(format!(
                            "`dependencies.{key}` must be a string or a table, found {}",
                            other.type_str()
                        )))
                    }
                };
                dependencies.push(Dependency { name: key.clone(), req });
            }
        }
        Some(_) => return Err(invalid("`dependencies` must be a table".into())),
    }
    dependencies.sort_by(|a, b| a.name.cmp(&b.name));

    Ok(Parsed {
        manifest: Manifest {
            name,
            version,
            kind: None,
            description: cargo_string(package, "description")?,
            license: cargo_string(package, "license")?,
            keywords,
            repository: cargo_string(package, "repository")?,
            readme,
            dependencies,
            links: cargo_string(package, "links")?,
            rust_version: cargo_string(package, "rust-version")?,
        },
        readme_disabled,
    })
}

/// A `[package]` field, refusing `field.workspace = true`: an unnormalised
/// workspace manifest has no value to publish (`cargo package` resolves it).
fn cargo_field<'a>(package: &'a Table, key: &str) -> Result<Option<&'a Value>, ArchiveError> {
    match package.get(key) {
        Some(Value::Table(t)) if t.contains_key("workspace") => {
            Err(ArchiveError::WorkspaceInherited { field: format!("package.{key}") })
        }
        other => Ok(other),
    }
}

fn cargo_string(package: &Table, key: &str) -> Result<Option<String>, ArchiveError> {
    match cargo_field(package, key)? {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ArchiveError::InvalidManifest {
            file: "Cargo.toml",
            reason: format!("`package.{key}` must be a string, found {}", other.type_str()),
        }),
    }
}

/// Whether `s` may be a kind or a keyword (SPEC section 3): after
/// lowercasing, `^[a-z0-9][a-z0-9_-]{0,31}$`. Both become path segments of
/// the listings (`api/v1/kinds/{kind}/`), so nothing else gets through.
pub fn is_word(s: &str) -> bool {
    let mut bytes = s.bytes().map(|b| b.to_ascii_lowercase());
    bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.len() <= 32
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The keyword rules, for a manifest's keywords and cargo's publish metadata alike.
pub fn check_keywords(keywords: &[String]) -> Result<(), ArchiveError> {
    // Keyword stuffing games search; crates.io uses the same bounds.
    if keywords.len() > MAX_KEYWORDS {
        return Err(ArchiveError::TooManyKeywords { count: keywords.len(), max: MAX_KEYWORDS });
    }
    if let Some(keyword) = keywords.iter().find(|k| k.chars().count() > MAX_KEYWORD_CHARS) {
        return Err(ArchiveError::KeywordTooLong { keyword: keyword.clone(), max: MAX_KEYWORD_CHARS });
    }
    if let Some(keyword) = keywords.iter().find(|k| !is_word(k)) {
        return Err(ArchiveError::NotAWord { field: "keyword", value: keyword.clone() });
    }
    Ok(())
}

/// The field rules of SPEC section 3, shared by every manifest kind; an
/// npm package's requirements are npm ranges.
fn check_fields(m: &Manifest, kind: ManifestKind) -> Result<(), ArchiveError> {
    // Versions are SemVer 2.0: ordering, requirements and immutability all rest on it.
    semver::Version::parse(&m.version)
        .map_err(|e| ArchiveError::InvalidVersion { version: m.version.clone(), reason: e.to_string() })?;
    // Unbounded descriptions bloat every index line and search document.
    if let Some(description) = &m.description {
        let chars = description.chars().count();
        if chars > MAX_DESCRIPTION_CHARS {
            return Err(ArchiveError::DescriptionTooLong { chars, max: MAX_DESCRIPTION_CHARS });
        }
    }
    if let Some(kind) = m.kind.as_deref().filter(|k| !is_word(k)) {
        return Err(ArchiveError::NotAWord { field: "kind", value: kind.to_string() });
    }
    check_keywords(&m.keywords)?;
    // A requirement no resolver can read would break every install of this version.
    for dep in &m.dependencies {
        let checked = match kind {
            ManifestKind::Npm => crate::npm::range::check(&dep.req),
            ManifestKind::Cairn | ManifestKind::Cargo => {
                semver::VersionReq::parse(&dep.req).map(drop).map_err(|e| e.to_string())
            }
        };
        checked.map_err(|reason| ArchiveError::InvalidDependencyRequirement {
            name: dep.name.clone(),
            req: dep.req.clone(),
            reason,
        })?;
    }
    Ok(())
}
