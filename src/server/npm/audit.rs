//! `npm audit`: `POST {door}/-/npm/v1/security/advisories/bulk` with
//! `{name: [versions]}` (gzip-encoded, as npm sends it), answered from the
//! advisory files the advisories job writes (the OSV advisories of SPEC
//! section 9): each advisory of a package with `vulnerable_versions`, the
//! versions of this registry it affects, as an npm range.

use flate2::read::GzDecoder;
use http::{header, StatusCode};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Read;

use super::{ApiError, ApiResult, Request};
use crate::jobs::advisories;

/// The largest body once inflated: far more names than any lockfile has.
const MAX_INFLATED: u64 = 16 << 20;

pub async fn bulk(req: &Request<'_>) -> ApiResult {
    let gzip = req.headers.get(header::CONTENT_ENCODING).is_some_and(|v| v.as_bytes() == b"gzip");
    let body = match gzip {
        true => {
            let mut out = Vec::new();
            GzDecoder::new(&req.body[..])
                .take(MAX_INFLATED + 1)
                .read_to_end(&mut out)
                .map_err(|e| ApiError::invalid(format!("the body is not gzip: {e}")))?;
            if out.len() as u64 > MAX_INFLATED {
                return Err(ApiError::too_large(format!("the body inflates past {MAX_INFLATED} bytes")));
            }
            out
        }
        false => req.body.to_vec(),
    };
    let asked: BTreeMap<String, Value> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("expected {{\"name\": [versions]}}: {e}")))?;
    let reg = req.registry();
    let url = reg.config.public_url();
    let found = tokio::task::spawn_blocking(move || -> anyhow::Result<Map<String, Value>> {
        let (root, org) = (&reg.root, reg.space.org());
        let mut out = Map::new();
        for npm_name in asked.keys() {
            // A name this door does not serve has no advisory here.
            let Ok(name) = crate::npm::package_of(org, npm_name) else { continue };
            let Some(bytes) = root.read(&root.layout().package_advisories(&name))? else { continue };
            let doc: Value = serde_json::from_slice(&bytes)?;
            let found: Vec<Value> = doc["advisories"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|entry| npm_advisory(entry, &url, root.layout()))
                .collect();
            if !found.is_empty() {
                out.insert(npm_name.clone(), Value::Array(found));
            }
        }
        Ok(out)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok((StatusCode::OK, Value::Object(found)))
}

/// One advisory as npm reads it, or `None` when withdrawn or affecting
/// none of this registry's versions.
fn npm_advisory(entry: &Value, url: &str, layout: &crate::layout::Layout) -> Option<Value> {
    let listed: Vec<&str> = entry["affected_versions"].as_array()?.iter().filter_map(Value::as_str).collect();
    let adv = advisories::from_value(entry.clone()).ok()?;
    if adv.withdrawn || listed.is_empty() {
        return None;
    }
    let raw = &adv.raw;
    let link = raw["references"][0]["url"].as_str().map(str::to_string);
    let link = link.unwrap_or_else(|| {
        format!("{url}{}", crate::layout::url(&layout.index_file(&format!("advisories/{}.json", adv.id))))
    });
    let severity = match raw["database_specific"]["severity"].as_str().map(str::to_ascii_lowercase).as_deref()
    {
        Some("critical") => "critical",
        Some("high") => "high",
        Some("moderate" | "medium") => "moderate",
        Some("low") => "low",
        _ => "high",
    };
    Some(json!({
        "id": adv.id,
        "url": link,
        "title": raw["summary"].as_str().unwrap_or(&adv.id),
        "severity": severity,
        "vulnerable_versions": listed.join(" || "),
        "cwe": [],
        "cvss": { "score": 0, "vectorString": null },
    }))
}
