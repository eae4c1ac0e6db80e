//! An npm package's `package.json` read into the one [`Manifest`] shape, so
//! npm's archives pass the field rules of SPEC section 3 like any other.
//! What npm itself needs of the file (its dependency kinds, `bin`,
//! `engines`, …) is read again by `npm::manifest`, from the same text.

use serde_json::{Map, Value};

use super::error::ArchiveError;
use super::metadata::{Dependency, Manifest, Parsed};

/// The dependency tables of a package.json, each with the kind its index
/// line records.
pub const DEPENDENCY_KINDS: [(&str, &str); 4] = [
    ("dependencies", "normal"),
    ("optionalDependencies", "optional"),
    ("peerDependencies", "peer"),
    ("devDependencies", "dev"),
];

fn invalid(reason: String) -> ArchiveError {
    ArchiveError::InvalidManifest { file: "package.json", reason }
}

/// A package.json's fields; `name` is its unscoped part (`@acme/w` → `w`:
/// in an organisation's registry the scope is the organisation).
pub fn parse(text: &str) -> Result<Parsed, ArchiveError> {
    let root: Value = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let Value::Object(root) = root else { return Err(invalid("not a JSON object".into())) };
    let name = string(&root, "name")?.ok_or_else(|| invalid("missing `name`".into()))?;
    let version = string(&root, "version")?.ok_or_else(|| invalid("missing `version`".into()))?;
    let name = match name.strip_prefix('@') {
        Some(scoped) => match scoped.split_once('/') {
            Some((scope, name)) if !scope.is_empty() => name.to_string(),
            _ => return Err(invalid(format!("`{name}` is not a scoped name (`@scope/name`)"))),
        },
        None => name,
    };
    let keywords = match root.get("keywords") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(words)) => words
            .iter()
            .map(|w| {
                w.as_str().map(str::to_string).ok_or_else(|| invalid("`keywords` must hold strings".into()))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("`keywords` must be an array".into())),
    };
    let kind = match root.get("cairn").and_then(|c| c.get("kind")) {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(invalid("`cairn.kind` must be a string".into())),
    };
    let mut dependencies = Vec::new();
    for (table, _) in DEPENDENCY_KINDS {
        for (name, req) in dependency_table(&root, table)? {
            dependencies.push(Dependency { name, req });
        }
    }
    dependencies.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Parsed {
        manifest: Manifest {
            name,
            version,
            kind,
            description: string(&root, "description")?,
            license: either(&root, "license", "type")?,
            keywords,
            repository: either(&root, "repository", "url")?,
            readme: None,
            dependencies,
            links: None,
            rust_version: None,
        },
        readme_disabled: false,
    })
}

/// One dependency table as (name, range) pairs.
pub fn dependency_table(
    root: &Map<String, Value>,
    table: &str,
) -> Result<Vec<(String, String)>, ArchiveError> {
    match root.get(table) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(deps)) => deps
            .iter()
            .map(|(name, req)| match req {
                Value::String(req) => Ok((name.clone(), req.clone())),
                _ => Err(invalid(format!("`{table}.{name}` must be a string"))),
            })
            .collect(),
        Some(_) => Err(invalid(format!("`{table}` must be an object"))),
    }
}

fn string(root: &Map<String, Value>, key: &str) -> Result<Option<String>, ArchiveError> {
    match root.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("`{key}` must be a string"))),
    }
}

/// A field npm allows as a string or an object with one string in it
/// (`"license": {"type": "MIT"}`, `"repository": {"url": …}`).
fn either(root: &Map<String, Value>, key: &str, inner: &str) -> Result<Option<String>, ArchiveError> {
    match root.get(key) {
        Some(Value::Object(o)) => match o.get(inner) {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            _ => Err(invalid(format!("`{key}.{inner}` must be a string"))),
        },
        _ => string(root, key),
    }
}

#[cfg(test)]
mod tests {
    use crate::archive::builder::TarballBuilder;
    use crate::archive::{inspect, ArchiveError, Limits, ManifestKind};

    fn npm(name: &str) -> TarballBuilder {
        TarballBuilder::new(name, "1.0.0").manifest_kind(ManifestKind::Npm)
    }

    fn check(body: &[u8], name: &str) -> Result<crate::archive::Inspected, ArchiveError> {
        inspect(body, name, "1.0.0", None, ManifestKind::Npm, &Limits::default())
    }

    #[test]
    fn an_npm_archive_lives_in_package_and_counts_its_files() {
        let body =
            npm("left-pad").file("index.js", b"module.exports = 1\n").file("README.md", b"# hi").gzip();
        let i = check(&body, "left-pad").unwrap();
        assert_eq!((i.manifest.name.as_str(), i.file_count), ("left-pad", 3));
        assert_eq!(i.readme.as_deref(), Some(&b"# hi"[..]));
        assert_eq!(i.file_bytes, i.manifest_text.len() as u64 + 19 + 4);
        // The cairn layout's directory is outside npm's.
        let crate_like = TarballBuilder::new("left-pad", "1.0.0").gzip();
        assert!(matches!(check(&crate_like, "left-pad"), Err(ArchiveError::OutsidePrefix { .. })));
    }

    #[test]
    fn a_scoped_name_is_its_package_and_the_fields_follow_section_3() {
        let scoped = r#"{"name":"@acme/widget","version":"1.0.0","license":{"type":"MIT"},
            "dependencies":{"a":"^1.2.0 || 2.x"},"peerDependencies":{"react":">=17"}}"#;
        let i = check(&npm("widget").manifest(scoped).gzip(), "widget").unwrap();
        assert_eq!(i.manifest.name, "widget");
        assert_eq!(i.manifest.license.as_deref(), Some("MIT"));
        assert_eq!(i.manifest.dependencies.len(), 2);
        let refuse = |json: &str| check(&npm("w").manifest(json).gzip(), "w").unwrap_err().to_string();
        assert!(
            refuse(r#"{"name":"w","version":"1.0.0","dependencies":{"a":"git+ssh://x"}}"#).contains("`a`")
        );
        assert!(refuse(r#"{"name":"w","version":"01.0"}"#).contains("01.0"));
        assert!(refuse(r#"{"name":"other","version":"1.0.0"}"#).contains("other"));
        assert!(
            refuse(r#"{"name":"w","version":"1.0.0","keywords":["a","b","c","d","e","f"]}"#).contains('5')
        );
        assert!(refuse("[1]").contains("object"));
        assert!(refuse(r#"{"name":"@/w","version":"1.0.0"}"#).contains("scoped"));
    }
}
