//! Proposals (SPEC section 19): any signed-in user (a member, in a private
//! organisation's registry, whose gate admitted the request) proposes a
//! text file of a package as they would have it; anyone who reads the
//! package reads its proposals with their diffs; the owners reject, the
//! author withdraws. Rows of the database, each write with its audit row;
//! the site's proposal pages are written again after each (`proposal_pages.rs`).

use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

use super::version_files::{text_of, version_line};
use super::{ApiError, ApiResult, Request};
use crate::db::{self, proposals, proposals::Proposal, Space};
use crate::registry::Registry;

/// The largest proposed file (UTF-8 bytes).
const MAX_CONTENT: usize = 256 * 1024;
const MAX_TITLE: usize = 200;
const MAX_INTENT: usize = 10_000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewProposal {
    title: String,
    #[serde(default)]
    intent: String,
    base_version: String,
    #[serde(default = "skill_md")]
    path: String,
    content: Option<String>,
    /// skillreg's name for `content`.
    skill_md_content: Option<String>,
}

fn skill_md() -> String {
    "SKILL.md".into()
}

/// `POST …/proposals`.
pub async fn create(req: &Request<'_>, name: &str) -> ApiResult {
    let author = req.person()?.clone();
    let body: NewProposal = req.json()?;
    let content = body
        .content
        .or(body.skill_md_content)
        .ok_or_else(|| ApiError::invalid("the body needs `content`: the file as you propose it"))?;
    let title = body.title.trim().to_string();
    if title.is_empty() || title.chars().count() > MAX_TITLE {
        return Err(ApiError::invalid(format!("`title` must have 1 to {MAX_TITLE} characters")));
    }
    if body.intent.chars().count() > MAX_INTENT {
        return Err(ApiError::invalid(format!("`intent` has more than {MAX_INTENT} characters")));
    }
    if content.len() > MAX_CONTENT {
        return Err(ApiError::too_large(format!(
            "`content` is {} bytes; the limit is {MAX_CONTENT}",
            content.len()
        )));
    }
    check_path(&body.path)?;
    let (reg, space) = (req.registry(), req.space());
    let line = version_line(&reg, name, &body.base_version).await?;
    if line.is_npm() {
        return Err(ApiError::invalid("an npm package's new versions come from npm: it takes no proposals"));
    }
    // The base must be text: a diff and a merge of bytes would be guesses.
    text_of(&reg, &line, &body.path).await?;
    let addr = req.ip.to_string();
    let spelled = line.name.clone();
    let (id, doc) = req
        .state
        .db(move |c| {
            let txn = c.transaction()?;
            let new = proposals::New {
                author_id: author.user.id,
                title: &title,
                intent: &body.intent,
                base_version: &line.vers,
                path: &body.path,
                content: &content,
            };
            let id = proposals::create(&txn, &space, &spelled, &new)?;
            audit(&txn, &space, &author, "proposal-create", &format!("{spelled} #{id}"), &addr)?;
            let p = proposals::get(&txn, &space, &spelled, id)?.expect("just made");
            txn.commit()?;
            Ok((id, summary(&p)))
        })
        .await?;
    super::proposal_pages::write(req, name, Some(id)).await;
    Ok((StatusCode::CREATED, doc))
}

/// `GET …/proposals?status=open`: newest first.
pub async fn list(req: &Request<'_>, name: &str) -> ApiResult {
    let status = url_param(req.query, "status");
    if let Some(s) = &status {
        if !proposals::STATUSES.contains(&s.as_str()) {
            return Err(ApiError::invalid(format!("`status` is one of {}", proposals::STATUSES.join(", "))));
        }
    }
    let (space, n) = (req.space(), name.to_string());
    let found = req
        .state
        .db(move |c| {
            Ok(match db::find_package(c, &space, &n)? {
                None => None,
                Some(spelled) => Some((spelled, proposals::list(c, &space, &n, status.as_deref())?)),
            })
        })
        .await?;
    let (spelled, list) = found.ok_or_else(|| ApiError::not_found(format!("no package `{name}`")))?;
    let list: Vec<Value> = list.iter().map(summary).collect();
    Ok((StatusCode::OK, json!({ "package": spelled, "proposals": list })))
}

/// `GET …/proposals/{id}`: with its unified diff against its base version's file.
pub async fn show(req: &Request<'_>, name: &str, id: &str) -> ApiResult {
    let p = find(req, name, id).await?;
    Ok((StatusCode::OK, with_diff(&req.registry(), &p).await?))
}

/// `GET /api/v1/orgs/{org}/proposals/{id}`: a proposal of a private
/// organisation's registry, for one who may enter it.
pub async fn show_in_org(req: &Request<'_>, org: &str, id: &str) -> ApiResult {
    let hosted = super::private::admit(req.state, &req.auth, org).await?;
    let id = parse_id(id)?;
    let space = hosted.reg.space.clone();
    let p = req.state.db(move |c| proposals::get_in(c, &space, id)).await?;
    let p = p.ok_or_else(|| ApiError::not_found(format!("no proposal {id} in org:{org}")))?;
    Ok((StatusCode::OK, with_diff(&hosted.reg, &p).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    status: String,
}

/// `PATCH …/proposals/{id}`: an owner rejects, the author withdraws.
pub async fn close(req: &Request<'_>, name: &str, id: &str) -> ApiResult {
    let caller = req.person()?.clone();
    let body: StatusChange = req.json()?;
    let p = find(req, name, id).await?;
    let status = body.status;
    match status.as_str() {
        "rejected" => {
            if !is_owner(req, &p.package).await? {
                return Err(ApiError::forbidden(format!(
                    "only an owner of `{}` rejects a proposal",
                    p.package
                )));
            }
        }
        "withdrawn" if p.author_id == caller.user.id => {}
        "withdrawn" => return Err(ApiError::forbidden("only its author withdraws a proposal")),
        _ => return Err(ApiError::invalid("`status` is `rejected` (an owner) or `withdrawn` (the author)")),
    }
    let (space, addr) = (req.space(), req.ip.to_string());
    let (pkg, pid) = (p.package.clone(), p.id);
    let closed = req
        .state
        .db(move |c| {
            let txn = c.transaction()?;
            if !proposals::close(&txn, pid, &status, None)? {
                return Ok(None);
            }
            audit(&txn, &space, &caller, &format!("proposal-{status}"), &format!("{pkg} #{pid}"), &addr)?;
            let p = proposals::get(&txn, &space, &pkg, pid)?.expect("it is there");
            txn.commit()?;
            Ok(Some(summary(&p)))
        })
        .await?;
    let doc = closed.ok_or_else(|| ApiError::conflict(format!("proposal {pid} is {} already", p.status)))?;
    super::proposal_pages::write(req, name, Some(pid)).await;
    Ok((StatusCode::OK, doc))
}

/// A proposal of the package, or 404.
pub(super) async fn find(req: &Request<'_>, name: &str, id: &str) -> Result<Proposal, ApiError> {
    let id = parse_id(id)?;
    let (space, n) = (req.space(), name.to_string());
    let p = req.state.db(move |c| proposals::get(c, &space, &n, id)).await?;
    p.ok_or_else(|| ApiError::not_found(format!("no proposal {id} of `{name}`")))
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::not_found(format!("no proposal {id}")))
}

/// Whether the caller acts as an owner of the package (SPEC section 15's
/// roles: an admin of an owning or the private organisation).
pub(super) async fn is_owner(req: &Request<'_>, package: &str) -> Result<bool, ApiError> {
    let (caller, reg, pkg) = (req.caller()?.clone(), req.registry(), package.to_string());
    let acts = req.state.db(move |c| Ok(crate::publish::may_act(c, &reg, &caller, &pkg))).await?;
    Ok(acts?)
}

/// The answer's form of a proposal, without its content.
pub(super) fn summary(p: &Proposal) -> Value {
    let mut doc = serde_json::to_value(p).unwrap();
    doc.as_object_mut().unwrap().remove("content");
    doc
}

async fn with_diff(reg: &Arc<Registry>, p: &Proposal) -> Result<Value, ApiError> {
    let line = version_line(reg, &p.package, &p.base_version).await?;
    let base = text_of(reg, &line, &p.path).await?;
    let mut doc = serde_json::to_value(p).unwrap();
    doc["diff"] = json!(crate::merge::unified_diff(&p.path, &base, &p.content));
    Ok(doc)
}

/// A relative path of plain segments, as an archive's entries have.
fn check_path(path: &str) -> Result<(), ApiError> {
    let plain = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('\\') && !s.contains('\0');
    if path.len() > 255 || !path.split('/').all(plain) {
        return Err(ApiError::invalid(format!("`path` `{path}` is not a relative path of a package's file")));
    }
    Ok(())
}

/// One audit row of a proposal's or candidate's change, in its transaction.
pub(super) fn audit(
    conn: &db::Conn,
    space: &Space,
    caller: &db::Caller,
    action: &str,
    target: &str,
    addr: &str,
) -> anyhow::Result<i64> {
    let target = space.audit_target(target.to_string());
    let entry = db::AuditEntry {
        user_id: Some(caller.user.id),
        token_id: caller.token_id,
        action,
        target: &target,
        addr: Some(addr),
        outcome: "ok",
    };
    db::audit(conn, &entry)
}

/// One parameter of a query string (a plain word: no decoding).
fn url_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')).map(str::to_string)
}
