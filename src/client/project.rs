//! The consumer's `cairn.toml` (SPEC sections 3 and 10): `[dependencies]`
//! with cargo's requirement syntax, `[package]` only when the project is
//! itself a package. Edited with toml_edit, so the comments, order and
//! formatting the user wrote stay as they were.

use anyhow::{anyhow, bail, Context, Result};
use semver::VersionReq;
use std::path::{Path, PathBuf};
use toml_edit::{DocumentMut, Item, Value};

use crate::name::canonical;

pub const FILE: &str = "cairn.toml";

pub struct Project {
    path: PathBuf,
    doc: DocumentMut,
}

impl Project {
    /// The manifest at `path`, `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<Project>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let doc = text.parse::<DocumentMut>().with_context(|| format!("parsing {}", path.display()))?;
        let project = Project { path: path.to_path_buf(), doc };
        project.dependencies()?;
        Ok(Some(project))
    }

    /// A manifest holding only `[dependencies]`, for a project that has none yet.
    pub fn empty(path: &Path) -> Project {
        Project { path: path.to_path_buf(), doc: "[dependencies]\n".parse().expect("parses") }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The direct dependencies: (name as written, requirement as written).
    pub fn dependencies(&self) -> Result<Vec<(String, String)>> {
        let Some(deps) = self.doc.get("dependencies") else { return Ok(Vec::new()) };
        let deps = deps
            .as_table_like()
            .ok_or_else(|| anyhow!("{}: `dependencies` must be a table", self.path.display()))?;
        let mut out = Vec::new();
        for (name, item) in deps.iter() {
            let req = match item {
                Item::Value(Value::String(s)) => s.value().clone(),
                // Cargo's table form; a table without a version means `*`.
                other => match other.as_table_like() {
                    Some(t) => match t.get("version") {
                        None => "*".to_string(),
                        Some(v) => v.as_str().map(str::to_string).ok_or_else(|| {
                            anyhow!("{}: `dependencies.{name}.version` must be a string", self.path.display())
                        })?,
                    },
                    None => bail!(
                        "{}: `dependencies.{name}` must be a requirement string such as \"^1.0\"",
                        self.path.display()
                    ),
                },
            };
            out.push((name.to_string(), req));
        }
        Ok(out)
    }

    /// The direct dependencies as resolver roots.
    pub fn requirements(&self) -> Result<Vec<(String, VersionReq)>> {
        self.dependencies()?
            .into_iter()
            .map(|(name, req)| {
                crate::name::validate(&name)
                    .map_err(|e| anyhow!("{}: `{name}`: {e}", self.path.display()))?;
                let parsed = VersionReq::parse(&req).map_err(|e| {
                    anyhow!("{}: `{name} = \"{req}\"` is not a version requirement: {e}", self.path.display())
                })?;
                Ok((name, parsed))
            })
            .collect()
    }

    /// `[install]`: `min_age` (`"3d"`) and `require_provenance` (patterns).
    pub fn install_policy(&self) -> Result<(Option<String>, Vec<String>)> {
        let Some(install) = self.doc.get("install") else { return Ok((None, Vec::new())) };
        let t = install
            .as_table_like()
            .ok_or_else(|| anyhow!("{}: `install` must be a table", self.path.display()))?;
        let min_age = match t.get("min_age") {
            None => None,
            Some(v) => Some(v.as_str().map(str::to_string).ok_or_else(|| {
                anyhow!("{}: `install.min_age` must be a string such as \"3d\"", self.path.display())
            })?),
        };
        let patterns = match t.get("require_provenance") {
            None => Vec::new(),
            Some(v) => v
                .as_array()
                .and_then(|a| a.iter().map(|p| p.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
                .ok_or_else(|| {
                    anyhow!("{}: `install.require_provenance` must be a list of strings", self.path.display())
                })?,
        };
        Ok((min_age, patterns))
    }

    /// The key under which `name` is written (names compare canonically).
    fn key_of(&self, name: &str) -> Option<String> {
        let deps = self.doc.get("dependencies")?.as_table_like()?;
        deps.iter().map(|(k, _)| k).find(|k| canonical(k) == canonical(name)).map(str::to_string)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.key_of(name).is_some()
    }

    /// Records `name = "req"`, in place when the name is already there
    /// (keeping its key, its table form and its comments).
    pub fn set(&mut self, name: &str, req: &str) {
        let key = self.key_of(name).unwrap_or_else(|| name.to_string());
        let deps = self.doc.entry("dependencies").or_insert_with(toml_edit::table);
        let deps = deps.as_table_like_mut().expect("checked when loaded");
        match deps.get_mut(&key) {
            Some(item) => match item {
                Item::Value(Value::String(_)) => {
                    let v = item.as_value_mut().expect("a value");
                    let decor = v.decor().clone();
                    *v = Value::from(req);
                    *v.decor_mut() = decor;
                }
                other => {
                    other
                        .as_table_like_mut()
                        .expect("checked when loaded")
                        .insert("version", toml_edit::value(req));
                }
            },
            None => {
                deps.insert(&key, toml_edit::value(req));
            }
        }
    }

    /// Drops `name`; false when it is not a dependency.
    pub fn remove(&mut self, name: &str) -> bool {
        let Some(key) = self.key_of(name) else { return false };
        let deps = self.doc.get_mut("dependencies").and_then(Item::as_table_like_mut).expect("has the key");
        deps.remove(&key).is_some()
    }

    pub fn text(&self) -> String {
        self.doc.to_string()
    }

    pub fn save(&self) -> Result<()> {
        crate::fsutil::write_atomic(&self.path, self.text().as_bytes())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// `cairn new`: a package in `dir` named `name`: `cairn.toml` and, when
/// there is none, `README.md`. Refuses a directory that holds a manifest.
pub fn scaffold(dir: &Path, name: &str, kind: &str) -> Result<()> {
    crate::name::validate(name).map_err(|e| anyhow!("`{name}` cannot name a package: {e}"))?;
    let word = |w: &str| {
        let mut c = w.chars();
        c.next().is_some_and(|f| f.is_ascii_lowercase() || f.is_ascii_digit())
            && w.len() <= 32
            && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    };
    if !word(kind) {
        bail!("`{kind}` is not a kind: one lowercase word such as library, skill, mcp, subagent, prompt, command or hook");
    }
    let manifest = dir.join(FILE);
    if manifest.exists() {
        bail!(
            "{} already exists: refusing to overwrite it (edit it, or pick another directory)",
            manifest.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let q = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let text = format!(
        "[package]\nname = {}\nversion = \"0.1.0\"\nkind = {}\ndescription = {}\n\n[dependencies]\n",
        q(name),
        q(kind),
        q(&format!("TODO: what {name} does")),
    );
    let readme = dir.join("README.md");
    if !readme.exists() {
        crate::fsutil::write_atomic(
            &readme,
            format!("# {name}\n\nTODO: what {name} does and how to use it.\n").as_bytes(),
        )?;
    }
    crate::fsutil::write_atomic(&manifest, text.as_bytes())
        .with_context(|| format!("writing {}", manifest.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keep_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let text = "# my project\n[package]\nname = \"app\"\nversion = \"1.0.0\"\n\n[dependencies]\nhttp-utils = \"^1.0\" # pinned for the API\nold = { version = \"0.3\" }\n";
        std::fs::write(&path, text).unwrap();
        let mut p = Project::load(&path).unwrap().unwrap();
        assert_eq!(
            p.dependencies().unwrap(),
            [("http-utils".to_string(), "^1.0".to_string()), ("old".to_string(), "0.3".to_string())]
        );
        p.set("http_utils", "^1.2");
        p.set("old", "0.4");
        p.set("new-one", "^2.0.0");
        assert!(p.remove("OLD") && !p.remove("ghost"));
        assert_eq!(
            p.text(),
            "# my project\n[package]\nname = \"app\"\nversion = \"1.0.0\"\n\n[dependencies]\nhttp-utils = \"^1.2\" # pinned for the API\nnew-one = \"^2.0.0\"\n"
        );
        assert!(Project::empty(&path).dependencies().unwrap().is_empty());
    }
}
