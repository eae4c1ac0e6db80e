//! `POST /api/v1/audit` (SPEC section 7): locked packages in, the
//! advisories that affect them out, answered from the static advisory
//! files with the matching of `cairn audit` ([`crate::audit`]). A read
//! with a body: anonymous, rate limited by address, allowed on a mirror.

use http::{header, Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

use super::{ApiError, ApiResult, Request};
use crate::audit::{audit, read_lockfile, Locked};

/// Whether a request is the audit: it reads, so it is treated as a read
/// though it is a POST.
pub fn is_audit(method: &Method, segs: &[&str]) -> bool {
    method == Method::POST && segs == ["audit"]
}

/// The JSON shapes: `{"dependencies":{name: version}}` or
/// `{"packages":[{"name","version"}]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    dependencies: Option<BTreeMap<String, String>>,
    packages: Option<Vec<Locked>>,
}

/// The locked packages of the body, by its Content-Type: JSON, or a
/// cairn.lock / Cargo.lock as TOML or text.
fn locked(req: &Request) -> Result<Vec<Locked>, ApiError> {
    let content_type = req.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => {
            let body: Body = req.json()?;
            let (deps, packages) = match (body.dependencies, body.packages) {
                (None, None) => return Err(ApiError::invalid("send `dependencies` or `packages`")),
                (deps, packages) => (deps.unwrap_or_default(), packages.unwrap_or_default()),
            };
            let deps = deps.into_iter().map(|(name, version)| Locked { name, version });
            Ok(deps.chain(packages).collect())
        }
        "application/toml" | "text/plain" => {
            let text = std::str::from_utf8(&req.body)
                .map_err(|e| ApiError::invalid(format!("the lockfile is not UTF-8: {e}")))?;
            read_lockfile(text, false).map_err(|e| ApiError::invalid(format!("invalid lockfile: {e}")))
        }
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!("send application/json, or a lockfile as application/toml or text/plain, not `{content_type}`"),
        )),
    }
}

/// `{"advisories":[{"id","package","version","summary","fixed"}],"scanned":N,"clean":bool}`.
pub async fn post(req: &Request<'_>) -> ApiResult {
    let locked = locked(req)?;
    let root = req.state.reg.root.clone();
    let found = tokio::task::spawn_blocking(move || {
        audit(root.layout(), &mut |key| Ok(root.read(key)?), &locked).map(|f| (f, locked.len()))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    let (Some(advisories), scanned) = found else {
        return Err(ApiError::unavailable("no advisory index yet: the advisories job has not run"));
    };
    Ok((
        StatusCode::OK,
        json!({ "clean": advisories.is_empty(), "advisories": advisories, "scanned": scanned }),
    ))
}
