//! What a consumer refuses to install (SPEC section 17): versions younger
//! than a cooldown (`--min-age`, `[install] min_age`), left out of the
//! resolution unless the lock pins them; and packages without provenance
//! from a matching repository (`--require-provenance`, `[install]
//! require_provenance`), which stop the install before anything is
//! unpacked. Both read the index line, which the log binds.

use anyhow::{anyhow, bail, Result};
use std::collections::HashMap;

use crate::index::IndexLine;

/// One `--require-provenance` pattern: `name` or `name=owner/repo`, each
/// side exact or a prefix with a trailing `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    name: String,
    repository: Option<String>,
}

impl Requirement {
    pub fn parse(text: &str) -> Result<Requirement> {
        let (name, repository) = match text.split_once('=') {
            Some((n, r)) => (n.trim(), Some(r.trim())),
            None => (text.trim(), None),
        };
        if name.is_empty() || repository.is_some_and(str::is_empty) {
            bail!("--require-provenance {text:?}: write NAME or NAME=OWNER/REPO (either may end in *)");
        }
        Ok(Requirement { name: name.to_string(), repository: repository.map(str::to_string) })
    }

    fn covers(&self, name: &str) -> bool {
        crate::name::matches(&self.name, name)
    }

    /// Why `line` does not meet it, if it does not.
    fn unmet(&self, line: &IndexLine) -> Option<String> {
        let Some(p) = &line.provenance else {
            return Some(format!(
                "{} {} has no provenance (it was not published by trusted publishing)",
                line.name, line.vers
            ));
        };
        match &self.repository {
            Some(want) if !repository_matches(want, &p.repository) => {
                Some(format!("{} {} was published from {}, not {want}", line.name, line.vers, p.repository))
            }
            _ => None,
        }
    }
}

/// A repository pattern (a trailing `*` is a prefix) against a
/// repository, without case, as GitHub and GitLab compare them.
fn repository_matches(pattern: &str, repository: &str) -> bool {
    let repository = repository.to_lowercase();
    match pattern.strip_suffix('*') {
        Some(prefix) => repository.starts_with(&prefix.to_lowercase()),
        None => repository == pattern.to_lowercase(),
    }
}

/// A consumer's install policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Versions younger than this many seconds are left out.
    pub min_age: Option<u64>,
    pub require_provenance: Vec<Requirement>,
}

impl Policy {
    /// The flags over the project's `[install]` table: flags add patterns
    /// and replace the age.
    pub fn new(
        project: Option<&super::project::Project>,
        min_age: Option<&str>,
        require_provenance: &[String],
    ) -> Result<Policy> {
        let (mut age, mut patterns) = match project {
            Some(p) => p.install_policy()?,
            None => (None, Vec::new()),
        };
        if let Some(a) = min_age {
            age = Some(a.to_string());
        }
        patterns.extend(require_provenance.iter().cloned());
        let min_age = age
            .map(|a| crate::config::age_seconds(&a).map_err(|e| anyhow!("--min-age: {e}")))
            .transpose()?
            .filter(|s| *s > 0);
        let require_provenance = patterns.iter().map(|p| Requirement::parse(p)).collect::<Result<_>>()?;
        Ok(Policy { min_age, require_provenance })
    }

    /// Leaves out of `files` (package key → its lines) the versions younger
    /// than the cooldown at `now` (unix seconds), except the one `locked`
    /// pins. A line without `pubtime` (older than the field) is kept.
    pub fn cool_down(
        &self,
        files: &mut HashMap<String, Option<Vec<IndexLine>>>,
        locked: &HashMap<String, semver::Version>,
        now: i64,
    ) {
        let Some(age) = self.min_age else { return };
        for (key, lines) in files.iter_mut() {
            let Some(lines) = lines else { continue };
            let pinned = locked.get(key).map(|v| v.to_string());
            lines.retain(|l| {
                let born = l.pubtime.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                let young = born.is_some_and(|t| t.timestamp() + age as i64 > now);
                !young || pinned.as_deref() == Some(l.vers.as_str())
            });
        }
    }

    /// Whether some pattern asks for the provenance of `name`.
    pub fn wants_provenance(&self, name: &str) -> bool {
        self.require_provenance.iter().any(|r| r.covers(name))
    }

    /// Refuses the install when a line a pattern covers lacks provenance
    /// from a matching repository; says every such line.
    pub fn check_provenance(&self, lines: &[IndexLine]) -> Result<()> {
        let unmet: Vec<String> = lines
            .iter()
            .flat_map(|l| {
                self.require_provenance.iter().filter(|r| r.covers(&l.name)).filter_map(|r| r.unmet(l))
            })
            .collect();
        match unmet.is_empty() {
            true => Ok(()),
            false => bail!(
                "provenance required (--require-provenance), nothing was unpacked:\n  {}",
                unmet.join("\n  ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::line::Provenance;

    fn line(name: &str, vers: &str, pubtime: Option<&str>, repo: Option<&str>) -> IndexLine {
        let mut l: IndexLine = serde_json::from_value(serde_json::json!({
            "name": name, "vers": vers, "deps": [], "cksum": "00", "features": {}, "yanked": false,
        }))
        .unwrap();
        l.pubtime = pubtime.map(str::to_string);
        l.provenance = repo.map(|r| Provenance {
            issuer: "https://i".into(),
            repository: r.into(),
            workflow: "release.yml".into(),
            git_ref: "refs/tags/v1".into(),
            sha: "abc".into(),
            run_id: "1".into(),
            environment: None,
        });
        l
    }

    #[test]
    fn the_cooldown_leaves_out_young_versions_but_a_locked_one() {
        let policy = Policy { min_age: Some(3 * 86_400), ..Policy::default() };
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-07T00:00:00Z").unwrap().timestamp();
        let lines = vec![
            line("a", "1.0.0", Some("2026-11-01T00:00:00Z"), None),
            line("a", "1.1.0", Some("2026-12-06T00:00:00Z"), None),
            line("a", "1.2.0", Some("2026-12-06T12:00:00Z"), None),
            line("a", "0.9.0", None, None),
        ];
        let mut files = HashMap::from([("a".to_string(), Some(lines))]);
        let locked = HashMap::from([("a".to_string(), semver::Version::new(1, 1, 0))]);
        policy.cool_down(&mut files, &locked, now);
        let kept: Vec<&str> = files["a"].as_ref().unwrap().iter().map(|l| l.vers.as_str()).collect();
        assert_eq!(kept, ["1.0.0", "1.1.0", "0.9.0"]);
    }

    #[test]
    fn provenance_patterns_name_packages_and_repositories() {
        let policy = Policy {
            require_provenance: vec![
                Requirement::parse("widg*=acme/*").unwrap(),
                Requirement::parse("core").unwrap(),
            ],
            ..Policy::default()
        };
        assert!(
            policy.wants_provenance("Widgets")
                && policy.wants_provenance("core")
                && !policy.wants_provenance("other")
        );
        assert!(policy.check_provenance(&[line("widgets", "1.0.0", None, Some("Acme/widgets"))]).is_ok());
        assert!(policy.check_provenance(&[line("other", "1.0.0", None, None)]).is_ok());
        let e = policy.check_provenance(&[line("widgets", "1.0.0", None, Some("evil/widgets"))]).unwrap_err();
        assert!(e.to_string().contains("evil/widgets"), "{e}");
        let e = policy.check_provenance(&[line("core", "2.0.0", None, None)]).unwrap_err();
        assert!(e.to_string().contains("core 2.0.0 has no provenance"), "{e}");
        assert!(Requirement::parse("=x").is_err() && Requirement::parse("a=").is_err());
    }
}
