//! The publish metadata `cargo publish` would send for a `.crate`, read from
//! the normalized `Cargo.toml` inside it (`cargo package` writes one with
//! every value resolved), so a crate that arrives without that metadata
//! (the native `PUT /api/v1/packages/{name}/{version}`) gets the index line
//! cargo's own route writes ([`super::cargo::index_line`]). As cargo's
//! `transmit` does:
//!
//! - each dependency of `[dependencies]`, `[build-dependencies]`,
//!   `[dev-dependencies]` and their `[target.'…'.…]` forms, its
//!   requirement as semver displays it (`1.0` → `^1.0`; none → `*`), its
//!   real name in `name` and its key in `explicit_name_in_toml` when
//!   `package` renames it, `registry` from `registry-index`;
//! - `[features]` as written;
//! - `links` and `rust-version` from `[package]`.

use anyhow::{anyhow, bail, Result};
use std::collections::BTreeMap;
use toml::{Table, Value};

use super::cargo::{NewCrate, NewCrateDependency};

/// The dependency tables of a manifest (or of one target), by the kind
/// cargo sends; the underscore spellings are older cargo's.
const KINDS: [(&str, &str); 5] = [
    ("dependencies", "normal"),
    ("build-dependencies", "build"),
    ("build_dependencies", "build"),
    ("dev-dependencies", "dev"),
    ("dev_dependencies", "dev"),
];

/// What `cargo publish` sends for this normalized `Cargo.toml`.
pub fn publish_metadata(cargo_toml: &str) -> Result<NewCrate> {
    let root: Table = cargo_toml.parse().map_err(|e| anyhow!("Cargo.toml: {e}"))?;
    let package = root.get("package").and_then(Value::as_table).ok_or_else(|| anyhow!("no [package]"))?;
    let text = |key: &str| package.get(key).and_then(Value::as_str).map(str::to_string);
    let mut deps = Vec::new();
    collect(&root, None, &mut deps)?;
    if let Some(targets) = root.get("target").and_then(Value::as_table) {
        for (target, table) in targets {
            let table = table.as_table().ok_or_else(|| anyhow!("[target.{target}] is not a table"))?;
            collect(table, Some(target), &mut deps)?;
        }
    }
    let features = match root.get("features") {
        None => BTreeMap::new(),
        Some(v) => v.clone().try_into().map_err(|e| anyhow!("[features]: {e}"))?,
    };
    let keywords = package
        .get("keywords")
        .and_then(Value::as_array)
        .map(|words| words.iter().filter_map(|w| w.as_str().map(str::to_string)).collect::<Vec<_>>());
    Ok(NewCrate {
        name: text("name").ok_or_else(|| anyhow!("no package.name"))?,
        vers: text("version").ok_or_else(|| anyhow!("no package.version"))?,
        deps,
        features,
        description: text("description"),
        keywords: keywords.unwrap_or_default(),
        license: text("license"),
        repository: text("repository"),
        readme: None,
        links: text("links"),
        rust_version: text("rust-version"),
    })
}

/// The dependencies of `table`'s dependency tables (`target`: of that platform).
fn collect(table: &Table, target: Option<&str>, out: &mut Vec<NewCrateDependency>) -> Result<()> {
    for (section, kind) in KINDS {
        let Some(deps) = table.get(section) else { continue };
        let deps = deps.as_table().ok_or_else(|| anyhow!("[{section}] is not a table"))?;
        for (key, spec) in deps {
            out.push(dependency(key, spec, target, kind).map_err(|e| anyhow!("{section}.{key}: {e}"))?);
        }
    }
    Ok(())
}

fn dependency(key: &str, spec: &Value, target: Option<&str>, kind: &str) -> Result<NewCrateDependency> {
    let empty = Table::new();
    let (req, t) = match spec {
        Value::String(req) => (Some(req.as_str()), &empty),
        Value::Table(t) => (t.get("version").and_then(Value::as_str), t),
        other => bail!("a {} is no dependency", other.type_str()),
    };
    if t.contains_key("workspace") {
        bail!("inherited from a workspace: not a normalized Cargo.toml (`cargo package` writes one)");
    }
    let flag = |names: &[&str], default: bool| {
        names.iter().find_map(|n| t.get(*n)).and_then(Value::as_bool).unwrap_or(default)
    };
    let version_req = match req {
        Some(req) => semver::VersionReq::parse(req).map_err(|e| anyhow!("version `{req}`: {e}"))?.to_string(),
        None => "*".to_string(),
    };
    let features = t.get("features").and_then(Value::as_array).into_iter().flatten();
    let package = t.get("package").and_then(Value::as_str);
    Ok(NewCrateDependency {
        name: package.unwrap_or(key).to_string(),
        version_req,
        features: features.filter_map(|f| f.as_str().map(str::to_string)).collect(),
        optional: flag(&["optional"], false),
        default_features: flag(&["default-features", "default_features"], true),
        target: target.map(str::to_string),
        kind: kind.to_string(),
        registry: t.get("registry-index").and_then(Value::as_str).map(str::to_string),
        explicit_name_in_toml: package.map(|_| key.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_normalized_manifest_gives_what_cargo_sends() {
        let toml = r#"
[package]
name = "demo"
version = "1.2.0"
links = "z"
rust-version = "1.70"

[dependencies.b64]
version = "0.21"
package = "base64"
optional = true
default-features = false
features = ["std"]

[build-dependencies.autocfg]
version = "1"

[dev-dependencies]
fastrand = "=2.0.1"

[target."cfg(windows)".dependencies.windows-sys]
version = ">=0.48, <0.62"

[features]
default = ["std"]
std = ["dep:b64"]
"#;
        let m = publish_metadata(toml).unwrap();
        assert_eq!((m.name.as_str(), m.vers.as_str()), ("demo", "1.2.0"));
        assert_eq!((m.links.as_deref(), m.rust_version.as_deref()), (Some("z"), Some("1.70")));
        let b64 = m.deps.iter().find(|d| d.name == "base64").unwrap();
        assert_eq!(b64.explicit_name_in_toml.as_deref(), Some("b64"));
        assert_eq!((b64.version_req.as_str(), b64.optional, b64.default_features), ("^0.21", true, false));
        assert_eq!(b64.features, ["std"]);
        let kinds: Vec<(&str, &str, Option<&str>)> =
            m.deps.iter().map(|d| (d.name.as_str(), d.kind.as_str(), d.target.as_deref())).collect();
        assert!(kinds.contains(&("autocfg", "build", None)));
        assert!(kinds.contains(&("fastrand", "dev", None)));
        assert!(kinds.contains(&("windows-sys", "normal", Some("cfg(windows)"))));
        assert_eq!(m.features["std"], ["dep:b64"]);
    }

    #[test]
    fn a_workspace_manifest_is_refused() {
        let toml = "[package]\nname = \"a\"\nversion = \"1.0.0\"\n[dependencies]\nb = { workspace = true }\n";
        let e = publish_metadata(toml).unwrap_err().to_string();
        assert!(e.contains("dependencies.b") && e.contains("normalized"), "{e}");
    }
}
