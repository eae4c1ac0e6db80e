//! npm's writes, each through the one writer: `npm publish` (a packument
//! with the tarball in `_attachments`), the packument edits npm makes by
//! PUTting the document back (`npm deprecate`, `npm owner add|rm`, `npm
//! unpublish name@version`, read here as the yank of the versions it
//! leaves out), the dist-tag routes, and the whole-package unpublish,
//! refused: cairn never deletes on a publisher's word.

use base64::prelude::{Engine, BASE64_STANDARD};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

use super::{package, ApiError, ApiResult, Request};
use crate::archive::{self, ManifestKind};
use crate::index::{IndexLine, Meta};
use crate::publish::{MetaEdit, Upload};

/// What npm PUTs at a package's URL.
#[derive(Deserialize)]
struct Document {
    name: Option<String>,
    #[serde(default)]
    versions: Option<Map<String, Value>>,
    #[serde(default, rename = "dist-tags")]
    dist_tags: BTreeMap<String, String>,
    #[serde(default, rename = "_attachments")]
    attachments: Map<String, Value>,
    #[serde(default)]
    maintainers: Option<Vec<Value>>,
}

/// `PUT {door}/{name}[/-rev/{rev}]`: a publish when it carries a tarball,
/// else an edit of the packument.
pub async fn put(req: &Request<'_>, segs: &[&str]) -> ApiResult {
    let (name, rest) = package(req, segs)?;
    if !matches!(rest, [] | ["-rev", _]) {
        return Err(ApiError::not_found(format!("npm has no route PUT {}", segs.join("/"))));
    }
    let doc: Document = req.json()?;
    if let Some(sent) = &doc.name {
        if crate::npm::package_of(req.reg().space.org(), sent).ok().as_deref() != Some(name.as_str()) {
            return Err(ApiError::invalid(format!("the document names `{sent}`, the URL another package")));
        }
    }
    match doc.attachments.is_empty() {
        false => publish(req, &name, doc).await,
        true => edit(req, &name, doc).await,
    }
}

/// `npm publish`: one version, its tarball inspected as every upload is
/// (SPEC section 3, npm's `package/` layout), name and version agreeing
/// with the document's.
async fn publish(req: &Request<'_>, name: &str, doc: Document) -> ApiResult {
    let prepared = req.writer().preparing();
    let versions = doc.versions.unwrap_or_default();
    let [(version, _)] = versions.iter().collect::<Vec<_>>()[..] else {
        return Err(ApiError::invalid("a publish carries exactly one version"));
    };
    let version = version.clone();
    let parsed = super::super::api::may_publish(req, name, &version)?;
    let [(file, attachment)] = doc.attachments.iter().collect::<Vec<_>>()[..] else {
        return Err(ApiError::invalid("a publish carries exactly one tarball"));
    };
    let data =
        attachment["data"].as_str().ok_or_else(|| ApiError::invalid(format!("`{file}` has no data")))?;
    let bytes = BASE64_STANDARD
        .decode(data)
        .map_err(|e| ApiError::invalid(format!("`{file}` is not base64: {e}")))?;
    if attachment.get("length").and_then(Value::as_u64).is_some_and(|l| l != bytes.len() as u64) {
        return Err(ApiError::invalid(format!("`{file}` is not as long as its `length`")));
    }
    let limits = req.reg().config.limits.clone();
    let (b, n, v) = (bytes.clone(), name.to_string(), version.clone());
    let inspected =
        tokio::task::spawn_blocking(move || archive::inspect(&b, &n, &v, None, ManifestKind::Npm, &limits))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::from_archive)?;
    if inspected.format != archive::Format::TarGz {
        return Err(ApiError::invalid("an npm package is a gzip tarball; npm reads no other"));
    }
    // The scope is the door's: `@acme/…` only in acme's registry.
    let sent: Value = serde_json::from_str(&inspected.manifest_text).unwrap_or_default();
    let expected = req.reg().root.layout().npm_name(name);
    if sent["name"].as_str().map(str::to_ascii_lowercase).as_deref() != Some(expected.as_str()) {
        return Err(ApiError::invalid(format!(
            "package.json names `{}`; here the package is `{expected}`",
            sent["name"].as_str().unwrap_or("")
        )));
    }
    let (sha256, blake3) = crate::store::digests(&bytes);
    let line = crate::npm::manifest::line(&inspected, name, &bytes, &sha256, &blake3);
    super::super::upstream::guard_new_name(req, name).await?;
    let upload = Upload { line, version: parsed, bytes: bytes.into(), readme: inspected.readme };
    let published = req.writer().publish(prepared, req.by()?, upload).await?;
    // `npm publish --tag beta`: the tag follows (`latest` is always the latest version).
    for (tag, tagged) in doc.dist_tags.iter().filter(|(t, v)| *t != "latest" && **v == version) {
        let edit = MetaEdit::Tag { tag: tag.clone(), version: Some(tagged.clone()) };
        req.writer().edit_meta(req.by()?, name, edit).await?;
    }
    Ok((StatusCode::CREATED, json!({ "ok": true, "id": expected, "rev": published.index_commit })))
}

/// A packument PUT back: the owners it lists (`npm owner`), the
/// versions it leaves out (`npm unpublish name@version`: yanked), the
/// deprecations it changes (`npm deprecate`).
async fn edit(req: &Request<'_>, name: &str, doc: Document) -> ApiResult {
    let (reg, space, n) = (req.registry(), req.space(), name.to_string());
    let (lines, meta, owners) = req
        .state
        .db(move |conn| {
            let meta = reg.read_meta(&n)?.unwrap_or_default();
            Ok((reg.read_lines(&n)?, meta, crate::db::owners(conn, &space, &n)?))
        })
        .await?;
    if lines.is_empty() {
        return Err(ApiError::not_found(format!("no package `{name}`")));
    }
    let mut changed = false;
    if let Some(maintainers) = &doc.maintainers {
        let listed: Vec<String> =
            maintainers.iter().filter_map(|m| m["name"].as_str().map(str::to_string)).collect();
        let add: Vec<String> = listed.iter().filter(|l| !owners.contains(l)).cloned().collect();
        let remove: Vec<String> = owners.iter().filter(|o| !listed.contains(o)).cloned().collect();
        if !add.is_empty() || !remove.is_empty() {
            super::super::owners::change_by(req, name, add, remove).await?;
            changed = true;
        }
    }
    if let Some(versions) = &doc.versions {
        for line in lines.iter().filter(|l| !l.yanked && !versions.contains_key(&l.vers)) {
            req.writer().yank(req.by()?, name, &line.vers, true).await?;
            changed = true;
        }
        let messages = deprecations(&lines, &meta, versions);
        if !messages.is_empty() {
            req.writer().edit_meta(req.by()?, name, MetaEdit::Versions(messages)).await?;
            changed = true;
        }
    }
    Ok((StatusCode::OK, json!({ "ok": true, "changed": changed })))
}

/// The versions whose `deprecated` the document changes, with their new
/// message (empty: undone).
fn deprecations(lines: &[IndexLine], meta: &Meta, versions: &Map<String, Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in lines.iter().filter(|l| !l.yanked) {
        let Some(sent) = versions.get(&line.vers) else { continue };
        let now = meta.deprecation_of(&line.vers).unwrap_or("");
        let asked = sent.get("deprecated").and_then(Value::as_str).unwrap_or("");
        if asked != now {
            out.insert(line.vers.clone(), asked.to_string());
        }
    }
    out
}

/// `DELETE {door}/{name}/-rev/{rev}` (the whole package: refused) and the
/// tarball DELETE that follows a version's unpublish (its tarball stays,
/// so lockfiles keep installing: nothing to do).
pub async fn delete(req: &Request<'_>, segs: &[&str]) -> ApiResult {
    req.caller()?;
    match segs {
        [.., "-rev", _] if package(req, &segs[..segs.len() - 2]).is_ok_and(|(_, rest)| rest.is_empty()) => {
            Err(ApiError::forbidden(
                "cairn never deletes a package on its publisher's word: `npm unpublish name@version` \
                 yanks one version, and an administrator can delete a package",
            ))
        }
        [.., "-rev", _] => Ok((StatusCode::OK, json!({ "ok": true }))),
        _ => Err(ApiError::not_found(format!("npm has no route DELETE {}", segs.join("/")))),
    }
}

/// `npm dist-tag ls|add|rm`: `{door}/-/package/{name}/dist-tags[/{tag}]`.
pub async fn dist_tags(req: &Request<'_>, segs: &[&str]) -> ApiResult {
    let (name, rest) = package(req, segs)?;
    let method = req.method.clone();
    match (method.as_str(), rest) {
        ("GET", ["dist-tags"]) => {
            let (reg, n) = (req.registry(), name.clone());
            let (lines, meta) = req.state.db(move |_| Ok((reg.read_lines(&n)?, reg.read_meta(&n)?))).await?;
            if lines.is_empty() {
                return Err(ApiError::not_found(format!("no package `{name}`")));
            }
            let mut tags: Map<String, Value> = Map::new();
            if let Some(latest) = crate::derive::latest_version(&lines) {
                tags.insert("latest".into(), json!(latest.vers));
            }
            for (tag, version) in meta.unwrap_or_default().tags {
                tags.insert(tag, json!(version));
            }
            Ok((StatusCode::OK, Value::Object(tags)))
        }
        ("PUT", ["dist-tags", tag]) | ("DELETE", ["dist-tags", tag]) => {
            if *tag == "latest" {
                return Err(ApiError::invalid(
                    "`latest` is always the newest version that is not a prerelease or yanked here",
                ));
            }
            crate::archive::is_word(tag).then_some(()).ok_or_else(|| {
                ApiError::invalid(format!("`{tag}` is not a tag (letters, digits, - and _)"))
            })?;
            let version = match method.as_str() {
                "PUT" => Some(req.json::<String>()?),
                _ => None,
            };
            let edit = MetaEdit::Tag { tag: tag.to_string(), version };
            req.writer().edit_meta(req.by()?, &name, edit).await?;
            Ok((StatusCode::OK, json!({ "ok": true })))
        }
        _ => Err(ApiError::not_found(format!("npm has no route {method} -/package/{}", segs.join("/")))),
    }
}
