//! A package's candidate (SPEC section 19): its owners' composition of
//! open proposals on the newest version, each merged three-way (its base
//! version's file, its content, the candidate so far) with conflicts kept
//! as hunks; and its publish, a new version made of the newest version's
//! archive with the candidate's files and the bumped version in its
//! manifest, sent through the one publish path (`publish::archive`).

use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use super::proposals::{self as p, audit};
use super::version_files::{blocking, files_of, lines_of, text};
use super::{ApiError, ApiResult, Request};
use crate::archive::{rewrite, Format};
use crate::db::proposals::{self, Candidate};
use crate::index::IndexLine;
use crate::proposal_pages::{newest, prefix};

/// `GET …/candidate`: the active one, made (empty, on the newest version)
/// at the first fetch.
pub async fn show(req: &Request<'_>, name: &str) -> ApiResult {
    let (spelled, newest) = owner_and_newest(req, name).await?;
    let space = req.space();
    let c = req
        .state
        .db(move |c| {
            if let Some(found) = proposals::candidate(c, &space, &spelled)? {
                return Ok(found);
            }
            let made = Candidate { base_version: newest.vers, ..Candidate::default() };
            proposals::put_candidate(c, &space, &spelled, &made)?;
            Ok(made)
        })
        .await?;
    Ok((StatusCode::OK, doc(&c)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Compose {
    proposal_ids: Vec<i64>,
}

/// `PUT …/candidate`: composed again from the newest version and the
/// proposals named, in their order.
pub async fn compose(req: &Request<'_>, name: &str) -> ApiResult {
    let body: Compose = req.json()?;
    let (spelled, newest) = owner_and_newest(req, name).await?;
    let mut chosen = Vec::new();
    for id in &body.proposal_ids {
        let found = p::find(req, &spelled, &id.to_string()).await?;
        if found.status != "open" {
            return Err(ApiError::conflict(format!(
                "proposal {id} is {}: only open proposals are composed",
                found.status
            )));
        }
        if chosen.iter().any(|c: &proposals::Proposal| c.id == *id) {
            return Err(ApiError::invalid(format!("proposal {id} is named twice")));
        }
        chosen.push(found);
    }
    let reg = req.registry();
    let lines = lines_of(&reg, &spelled).await?;
    let newest_files = files_of(&reg, &newest).await?;
    let mut c = Candidate { base_version: newest.vers.clone(), ..Candidate::default() };
    let mut bases: BTreeMap<String, BTreeMap<String, rewrite::File>> = BTreeMap::new();
    for proposal in &chosen {
        if !bases.contains_key(&proposal.base_version) {
            let line = lines.iter().find(|l| l.vers == proposal.base_version).ok_or_else(|| {
                ApiError::not_found(format!(
                    "the base version {} of proposal {} is gone",
                    proposal.base_version, proposal.id
                ))
            })?;
            bases.insert(proposal.base_version.clone(), files_of(&reg, line).await?);
        }
        let base = text(&bases[&proposal.base_version], &proposal.path)?;
        let ours = match c.files.get(&proposal.path) {
            Some(merged) => merged.as_str().unwrap_or_default().to_string(),
            None => text(&newest_files, &proposal.path)?,
        };
        c.proposal_ids.push(proposal.id);
        match crate::merge::merge(&base, &ours, &proposal.content) {
            Ok(merged) => {
                c.files.insert(proposal.path.clone(), json!(merged));
            }
            Err(hunks) => {
                c.conflicts.push(json!({ "proposalId": proposal.id, "path": proposal.path, "hunks": hunks }))
            }
        }
    }
    let (space, caller, addr) = (req.space(), req.person()?.clone(), req.ip.to_string());
    let stored = c.clone();
    req.state
        .db(move |conn| {
            let txn = conn.transaction()?;
            proposals::put_candidate(&txn, &space, &spelled, &stored)?;
            let ids: Vec<String> = stored.proposal_ids.iter().map(|i| format!("#{i}")).collect();
            audit(
                &txn,
                &space,
                &caller,
                "candidate-compose",
                &format!("{spelled} {}", ids.join(" ")),
                &addr,
            )?;
            txn.commit()
        })
        .await?;
    Ok((StatusCode::OK, doc(&c)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Publish {
    bump: String,
    #[serde(default)]
    changelog: String,
}

/// `POST …/candidate/publish`: 201 with the publish's answer; 409 while
/// conflicts remain, when nothing is composed, or when a version was
/// published since the candidate was composed.
pub async fn publish(req: &Request<'_>, name: &str) -> ApiResult {
    let body: Publish = req.json()?;
    let (spelled, newest) = owner_and_newest(req, name).await?;
    let conflict = ApiError::conflict;
    let (space, n) = (req.space(), spelled.clone());
    let (c, closed) = req
        .state
        .db(move |conn| {
            let c = proposals::candidate(conn, &space, &n)?.unwrap_or_default();
            let mut closed = Vec::new();
            for id in &c.proposal_ids {
                match proposals::get(conn, &space, &n, *id)? {
                    Some(p) if p.status == "open" => {}
                    _ => closed.push(*id),
                }
            }
            Ok((c, closed))
        })
        .await?;
    if !closed.is_empty() {
        return Err(conflict(format!(
            "proposals {closed:?} were closed since the candidate was composed: compose it again"
        )));
    }
    if c.proposal_ids.is_empty() {
        return Err(conflict(format!("the candidate of `{spelled}` has no proposals: compose it first")));
    }
    if !c.conflicts.is_empty() {
        return Err(conflict(format!(
            "the candidate has {} conflicts: compose it without the conflicting proposals, or ask their authors for new ones",
            c.conflicts.len()
        )));
    }
    if c.base_version != newest.vers {
        return Err(conflict(format!(
            "{} was published since the candidate was composed on {}: compose it again",
            newest.vers, c.base_version
        )));
    }
    let version = bump(&newest.vers, &body.bump)?;
    let bytes = archive(req, &newest, &c, &version, &body.changelog).await?;
    let parsed = crate::name::parse_version(&version).map_err(ApiError::invalid)?;
    let (status, published) =
        super::publish::archive(req, &spelled, (&version, parsed), bytes.into(), None).await?;
    // The version is out: its proposals are merged and the candidate ends.
    let (space, caller, addr, ids, v) =
        (req.space(), req.person()?.clone(), req.ip.to_string(), c.proposal_ids.clone(), version.clone());
    let pkg = spelled.clone();
    req.state
        .db(move |conn| {
            let txn = conn.transaction()?;
            for id in &ids {
                proposals::close(&txn, *id, "merged", Some(&v))?;
                audit(&txn, &space, &caller, "proposal-merge", &format!("{pkg} #{id} {v}"), &addr)?;
            }
            proposals::drop_candidate(&txn, &space, &pkg)?;
            txn.commit()
        })
        .await?;
    for id in &c.proposal_ids {
        super::proposal_pages::write(req, &spelled, Some(*id)).await;
    }
    let mut doc = published;
    doc["proposalIds"] = json!(c.proposal_ids);
    Ok((status, doc))
}

/// The newest version's archive with the candidate's files, the manifest's
/// version set and, with a changelog, its entry atop `CHANGELOG.md`.
async fn archive(
    req: &Request<'_>,
    newest: &IndexLine,
    c: &Candidate,
    version: &str,
    changelog: &str,
) -> Result<Vec<u8>, ApiError> {
    if newest.is_npm() {
        return Err(ApiError::invalid("an npm package's new versions are published with npm"));
    }
    let mut files = files_of(&req.registry(), newest).await?;
    for (path, content) in &c.files {
        let data = content.as_str().unwrap_or_default().as_bytes().to_vec();
        let executable = files.get(path).is_some_and(|f| f.executable);
        files.insert(path.clone(), rewrite::File { executable, data });
    }
    let manifest = ["cairn.toml", "Cargo.toml"]
        .into_iter()
        .find(|m| files.contains_key(*m))
        .ok_or_else(|| ApiError::invalid("the newest version has neither cairn.toml nor Cargo.toml"))?;
    let bumped = rewrite::set_version(&text(&files, manifest)?, version)
        .map_err(|e| ApiError::invalid(format!("{manifest}: {e:#}")))?;
    files.get_mut(manifest).expect("found").data = bumped.into_bytes();
    if !changelog.trim().is_empty() {
        let old = text(&files, "CHANGELOG.md")?;
        let data = format!("## {version}\n\n{}\n\n{old}", changelog.trim()).into_bytes();
        files.insert("CHANGELOG.md".into(), rewrite::File { executable: false, data });
    }
    let format = if newest.fmt == Format::TarZst.ext() { Format::TarZst } else { Format::TarGz };
    let prefix = prefix(&IndexLine { vers: version.to_string(), ..newest.clone() });
    blocking(move || rewrite::write(&files, &prefix, format)).await
}

/// The next version: `patch`, `minor` or `major` of `current`, without
/// its pre-release and build parts.
fn bump(current: &str, how: &str) -> Result<String, ApiError> {
    let v = semver::Version::parse(current).map_err(ApiError::internal)?;
    let next = match how {
        "patch" => semver::Version::new(v.major, v.minor, v.patch + 1),
        "minor" => semver::Version::new(v.major, v.minor + 1, 0),
        "major" => semver::Version::new(v.major + 1, 0, 0),
        _ => return Err(ApiError::invalid("`bump` is `patch`, `minor` or `major`")),
    };
    Ok(next.to_string())
}

/// The package's spelling and newest version (the greatest not yanked),
/// for a caller who acts as its owner; 404 and 403 otherwise.
async fn owner_and_newest(req: &Request<'_>, name: &str) -> Result<(String, IndexLine), ApiError> {
    req.person()?;
    let lines = lines_of(&req.registry(), name).await?;
    let newest = newest(&lines)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("`{name}` has no version that is not yanked")))?;
    if !p::is_owner(req, &newest.name).await? {
        return Err(ApiError::forbidden(format!(
            "only an owner of `{}` composes and publishes its proposals",
            newest.name
        )));
    }
    Ok((newest.name.clone(), newest))
}

fn doc(c: &Candidate) -> Value {
    json!({ "baseVersion": c.base_version, "proposalIds": c.proposal_ids, "files": c.files, "conflicts": c.conflicts })
}
