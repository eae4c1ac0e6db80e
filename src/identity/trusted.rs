//! Trusted publishing (SPEC section 17, in the shape of crates.io's RFC
//! 3691): what a CI identity token says about its run, in GitHub's or
//! GitLab's claim set, and whether a package's trust configuration
//! matches it.

use serde_json::{Map, Value};

use super::{claim, Refusal};
use crate::db::identity::TrustedPublisher;
use crate::index::line::Provenance;

/// A CI run, as its checked identity token describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub provenance: Provenance,
    /// The token's id, accepted once.
    pub jti: String,
    /// When the token expires (unix seconds): its `jti` is kept until then.
    pub exp: i64,
}

/// The run of a GitHub Actions token (`job_workflow_ref`) or a GitLab CI
/// one (`project_path`).
pub fn run_of(issuer: &str, claims: &Map<String, Value>) -> Result<Run, Refusal> {
    let need =
        |name: &str| claim(claims, name).ok_or_else(|| Refusal(format!("the JWT has no `{name}` claim")));
    let jti = need("jti")?;
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or_default();
    let provenance = if claims.contains_key("job_workflow_ref") {
        // `owner/repo/.github/workflows/release.yml@refs/tags/v1`
        let workflow_ref = need("job_workflow_ref")?;
        Provenance {
            issuer: issuer.to_string(),
            repository: need("repository")?,
            workflow: file_of(&workflow_ref, "/.github/workflows/")?,
            git_ref: need("ref")?,
            sha: need("sha")?,
            run_id: need("run_id")?,
            environment: claim(claims, "environment").filter(|e| !e.is_empty()),
        }
    } else if claims.contains_key("project_path") {
        // `gitlab.com/group/project//.gitlab-ci.yml@refs/heads/main`
        let config_ref = need("ci_config_ref_uri")?;
        Provenance {
            issuer: issuer.to_string(),
            repository: need("project_path")?,
            workflow: file_of(&config_ref, "//")?,
            git_ref: claim(claims, "ref_path").map_or_else(|| need("ref"), Ok)?,
            sha: need("sha")?,
            run_id: need("pipeline_id")?,
            environment: claim(claims, "environment").filter(|e| !e.is_empty()),
        }
    } else {
        return Err(Refusal(
            "the JWT is neither GitHub Actions' nor GitLab CI's (no `job_workflow_ref` or `project_path`)"
                .into(),
        ));
    };
    Ok(Run { provenance, jti, exp })
}

/// The workflow's path after `marker` and before `@` in a workflow reference.
fn file_of(reference: &str, marker: &str) -> Result<String, Refusal> {
    let path = reference.split_once('@').map_or(reference, |(p, _)| p);
    match path.split_once(marker) {
        Some((_, file)) if !file.is_empty() => Ok(file.to_string()),
        _ => Err(Refusal(format!("no workflow file in {reference:?}"))),
    }
}

/// Whether a trust configuration admits the run: the same issuer,
/// repository (without case, as GitHub and GitLab compare them) and
/// workflow file, and its environment when it names one.
pub fn admits(t: &TrustedPublisher, p: &Provenance) -> bool {
    t.issuer.trim_end_matches('/') == p.issuer.trim_end_matches('/')
        && t.repository.eq_ignore_ascii_case(&p.repository)
        && t.workflow == p.workflow
        && t.environment
            .as_ref()
            .is_none_or(|e| p.environment.as_ref().is_some_and(|pe| pe.eq_ignore_ascii_case(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn github_and_gitlab_claim_sets_give_one_provenance() {
        let gh = claims(json!({
            "jti": "j1", "exp": 100, "repository": "acme/widgets", "ref": "refs/tags/v1.0.0",
            "sha": "3f2a1c9e", "run_id": "42", "environment": "release",
            "job_workflow_ref": "acme/widgets/.github/workflows/release.yml@refs/tags/v1.0.0"
        }));
        let run = run_of("https://token.actions.githubusercontent.com", &gh).unwrap();
        assert_eq!(run.provenance.workflow, "release.yml");
        assert_eq!(run.provenance.environment.as_deref(), Some("release"));
        assert_eq!(run.provenance.summary(), "acme/widgets@3f2a1c9 by release.yml");
        let gl = claims(json!({
            "jti": "j2", "project_path": "acme/widgets", "ref": "main", "ref_path": "refs/heads/main",
            "sha": "abc", "pipeline_id": 7, "ci_config_ref_uri": "gitlab.com/acme/widgets//.gitlab-ci.yml@refs/heads/main"
        }));
        let run = run_of("https://gitlab.com", &gl).unwrap();
        assert_eq!(
            (run.provenance.workflow.as_str(), run.provenance.run_id.as_str()),
            (".gitlab-ci.yml", "7")
        );
        assert_eq!(run.provenance.git_ref, "refs/heads/main");
        let mut no_jti = gh.clone();
        no_jti.remove("jti");
        assert!(run_of("x", &no_jti).is_err());
        assert!(run_of("x", &claims(json!({"jti": "j", "sub": "someone"}))).is_err());
    }

    #[test]
    fn a_configuration_admits_its_repository_workflow_and_environment() {
        let p = Provenance {
            issuer: "https://i".into(),
            repository: "Acme/Widgets".into(),
            workflow: "release.yml".into(),
            git_ref: "refs/tags/v1".into(),
            sha: "s".into(),
            run_id: "1".into(),
            environment: Some("release".into()),
        };
        let t = TrustedPublisher {
            id: 1,
            issuer: "https://i/".into(),
            repository: "acme/widgets".into(),
            workflow: "release.yml".into(),
            environment: None,
            created_by: "alice".into(),
            created_at: String::new(),
        };
        assert!(admits(&t, &p));
        assert!(admits(&TrustedPublisher { environment: Some("Release".into()), ..t.clone() }, &p));
        assert!(!admits(&TrustedPublisher { environment: Some("staging".into()), ..t.clone() }, &p));
        assert!(!admits(&TrustedPublisher { workflow: "ci.yml".into(), ..t.clone() }, &p));
        assert!(!admits(&TrustedPublisher { repository: "acme/other".into(), ..t.clone() }, &p));
        assert!(!admits(&TrustedPublisher { issuer: "https://j".into(), ..t }, &p));
    }
}
