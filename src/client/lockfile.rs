//! `cairn.lock` (SPEC section 10): the exact versions an install resolved,
//! each with its SHA-256, written in a fixed, diff-friendly form.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::Path;

pub const FILE: &str = "cairn.lock";

#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct Lockfile {
    pub version: u32,
    #[serde(default, rename = "package")]
    pub packages: Vec<LockedPackage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub checksum: String,
    /// Names of the locked packages this one depends on.
    #[serde(default)]
    pub dependencies: Vec<String>,
}

impl Lockfile {
    pub fn new(mut packages: Vec<LockedPackage>) -> Lockfile {
        packages
            .sort_by(|a, b| (a.name.to_lowercase(), &a.version).cmp(&(b.name.to_lowercase(), &b.version)));
        for p in &mut packages {
            p.dependencies.sort();
            p.dependencies.dedup();
        }
        Lockfile { version: 1, packages }
    }

    pub fn load(path: &Path) -> Result<Option<Lockfile>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let lock: Lockfile = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if lock.version != 1 {
            bail!("{} has format version {}; this cairn reads version 1", path.display(), lock.version);
        }
        for p in &lock.packages {
            crate::name::validate(&p.name).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            semver::Version::parse(&p.version)
                .with_context(|| format!("{}: {} has version {}", path.display(), p.name, p.version))?;
            if p.checksum.len() != 64 || !p.checksum.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("{}: {} {} has no SHA-256 checksum", path.display(), p.name, p.version);
            }
        }
        Ok(Some(lock))
    }

    /// The file's text, exactly in the SPEC's form.
    pub fn to_text(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).expect("string serializes");
        let mut out = format!("version = {}\n", self.version);
        for p in &self.packages {
            let deps: Vec<String> = p.dependencies.iter().map(|d| q(d)).collect();
            out.push_str(&format!(
                "\n[[package]]\nname = {}\nversion = {}\nchecksum = {}\ndependencies = [{}]\n",
                q(&p.name),
                q(&p.version),
                q(&p.checksum),
                deps.join(", ")
            ));
        }
        out
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        crate::fsutil::write_atomic(path, self.to_text().as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    }

    pub fn get(&self, name: &str) -> Option<&LockedPackage> {
        self.packages.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// Packages no other locked package depends on: what the user asked for.
    pub fn roots(&self) -> Vec<&LockedPackage> {
        let depended: BTreeSet<String> =
            self.packages.iter().flat_map(|p| p.dependencies.iter().map(|d| d.to_lowercase())).collect();
        self.packages.iter().filter(|p| !depended.contains(&p.name.to_lowercase())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_spec_form_and_reads_it_back() {
        let lock = Lockfile::new(vec![
            LockedPackage {
                name: "app".into(),
                version: "2.0.0".into(),
                checksum: "b".repeat(64),
                dependencies: vec!["libbase".into()],
            },
            LockedPackage {
                name: "libbase".into(),
                version: "1.1.0".into(),
                checksum: "a".repeat(64),
                dependencies: vec![],
            },
        ]);
        let text = lock.to_text();
        assert!(text.starts_with("version = 1\n\n[[package]]\nname = \"app\"\nversion = \"2.0.0\"\n"));
        assert!(text.contains(&format!(
            "name = \"libbase\"\nversion = \"1.1.0\"\nchecksum = \"{}\"\ndependencies = []\n",
            "a".repeat(64)
        )));
        let back: Lockfile = toml::from_str(&text).unwrap();
        assert_eq!(back, lock);
        assert_eq!(lock.roots().iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), vec!["app"]);
    }
}
