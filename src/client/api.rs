//! The write API verbs (SPEC section 7) and `info`: authenticated requests
//! to `{api}/api/v1/…`, errors shown as the server's `message`.

use anyhow::{anyhow, bail, Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::remote::{RegistryConfig, Remote};

/// The registry's write API base (config.json's `api`, else the registry URL).
pub fn api_base(remote: &Remote, config: &RegistryConfig) -> String {
    config
        .api
        .clone()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| remote.url.clone())
        .trim_end_matches('/')
        .to_string()
}

/// Turns a non-2xx answer into an error carrying the server's message.
pub async fn check(resp: reqwest::Response) -> Result<Value> {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if status.is_success() {
        return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
    }
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let message = body["message"].as_str().map(str::to_string).unwrap_or_else(|| text.trim().to_string());
    let code = body["error"].as_str().unwrap_or("");
    let hint = match status {
        StatusCode::UNAUTHORIZED => "\nhint: log in with `cairn login` or pass --token",
        StatusCode::FORBIDDEN => {
            "\nhint: `cairn owner list NAME` shows who may change a package; `cairn token list` shows each token's scopes and packages"
        }
        StatusCode::TOO_MANY_REQUESTS => "\nhint: the registry limits how fast you write; try again in a minute",
        _ => "",
    };
    bail!("{message} ({} {code}){hint}", status.as_u16())
}

pub struct Api {
    pub remote: Remote,
    pub base: String,
}

impl Api {
    pub async fn connect(remote: Remote) -> Result<Api> {
        let config = remote.connect(false).await?;
        let base = api_base(&remote, &config);
        Ok(Api { remote, base })
    }

    fn token(&self) -> Result<&str> {
        self.remote
            .token
            .as_deref()
            .ok_or_else(|| anyhow!("not logged in to {}: run `cairn login` or pass --token", self.remote.url))
    }

    pub fn request(&self, method: Method, path: &str) -> Result<reqwest::RequestBuilder> {
        Ok(self
            .remote
            .http
            .client()
            .request(method, format!("{}/api/v1/{path}", self.base))
            .bearer_auth(self.token()?))
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut req = self.request(method, path)?;
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.with_context(|| format!("calling {}/api/v1/{path}", self.base))?;
        check(resp).await
    }

    /// Uploads a tarball, with a byte progress bar on a terminal.
    pub async fn publish(&self, name: &str, version: &str, bytes: Vec<u8>) -> Result<Value> {
        let format = crate::archive::Format::sniff(&bytes).context("not a gzip or zstd archive")?;
        let (sha256, _) = crate::store::digests(&bytes);
        let len = bytes.len() as u64;
        let bar = super::progress::bytes(len, "uploading");
        let chunks: Vec<bytes::Bytes> =
            bytes::Bytes::from(bytes).chunks(64 * 1024).map(bytes::Bytes::copy_from_slice).collect();
        let bar2 = bar.clone();
        let stream = futures_util::stream::iter(chunks.into_iter().map(move |c| {
            bar2.inc(c.len() as u64);
            Ok::<_, std::io::Error>(c)
        }));
        let resp = self
            .request(Method::PUT, &format!("packages/{name}/{version}"))?
            .header(reqwest::header::CONTENT_TYPE, format.content_type())
            .header(reqwest::header::CONTENT_LENGTH, len)
            .header("X-Checksum-Sha256", &sha256)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .with_context(|| format!("uploading to {}", self.base))?;
        bar.finish_and_clear();
        check(resp).await
    }
}

/// `info NAME[@VERSION]`: the package (or version) document from the static root.
pub async fn info(remote: &Remote, spec: &str) -> Result<Value> {
    let (name, version) = match spec.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (spec, None),
    };
    crate::name::validate(name).map_err(|e| anyhow!("`{name}`: {e}"))?;
    let l = crate::layout::Layout::public();
    let key = match version {
        Some(v) => l.version_doc(name, v),
        None => l.package_doc(name),
    };
    match remote.static_json(&key).await? {
        // A package says its format through its latest version's document.
        Some(mut doc) if version.is_none() => {
            if let Some(latest) = doc["latestVersion"].as_str() {
                let latest = remote.static_json(&l.version_doc(name, latest)).await?;
                doc["format"] = latest.map_or(Value::Null, |v| v["format"].clone());
            }
            Ok(doc)
        }
        Some(doc) => Ok(doc),
        None => match version {
            Some(v) => bail!("{name} has no version {v} in {}", remote.url),
            None => bail!("no package named `{name}` in {}", remote.url),
        },
    }
}

/// The human form of a package or version document.
pub fn format_info(doc: &Value) -> String {
    let s = |k: &str| doc[k].as_str().unwrap_or("").to_string();
    let mut out = String::new();
    if doc.get("versions").is_some() {
        out.push_str(&format!("{} {}\n", s("name"), s("latestVersion")));
        for k in ["description", "kind", "license", "repository"] {
            if !s(k).is_empty() {
                out.push_str(&format!("{k}: {}\n", s(k)));
            }
        }
        let list = |k: &str| {
            doc[k].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(", "))
        };
        if s("format") == crate::npm::FMT {
            out.push_str(&format!("npm: an npm package (npm install {})\n", s("name")));
        }
        if let Some(kw) = list("keywords").filter(|k| !k.is_empty()) {
            out.push_str(&format!("keywords: {kw}\n"));
        }
        if let Some(o) = list("owners").filter(|k| !k.is_empty()) {
            out.push_str(&format!("owners: {o}\n"));
        }
        out.push_str("versions:\n");
        for v in doc["versions"].as_array().into_iter().flatten() {
            let yanked = if v["yanked"].as_bool() == Some(true) { " (yanked)" } else { "" };
            out.push_str(&format!(
                "  {:<12} {}  {}{yanked}\n",
                v["version"].as_str().unwrap_or(""),
                v["publishedAt"].as_str().unwrap_or(""),
                v["sha256"].as_str().unwrap_or("")
            ));
        }
    } else {
        out.push_str(&serde_json::to_string_pretty(doc).unwrap_or_default());
        out.push('\n');
    }
    out
}
