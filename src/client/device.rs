//! `cairn login --device` (SPEC section 12, RFC 8628): ask the registry for
//! a code, show it with the page to enter it on, and poll until someone
//! signed in there approves it.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::time::Duration;

/// Runs the flow against the write API at `api` and returns the token.
pub async fn obtain_token(http: &reqwest::Client, api: &str) -> Result<String> {
    let url = format!("{api}/api/v1/auth/device");
    let resp = http
        .post(&url)
        .json(&json!({ "scopes": [] }))
        .send()
        .await
        .with_context(|| format!("calling {url}"))?;
    let started = super::api::check(resp).await?;
    let field =
        |k: &str| started[k].as_str().map(str::to_string).with_context(|| format!("{url} sent no `{k}`"));
    let (device_code, user_code, page) =
        (field("deviceCode")?, field("userCode")?, field("verificationUrl")?);
    eprintln!(
        "open this page where you are signed in to the registry:\n  {page}\nand enter the code: {user_code}"
    );
    eprintln!("waiting for approval (the code expires at {})", started["expiresAt"].as_str().unwrap_or("?"));
    let mut interval = started["interval"].as_u64().unwrap_or(5);
    let url = format!("{api}/api/v1/auth/device/token");
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        let resp = http
            .post(&url)
            .json(&json!({ "deviceCode": device_code }))
            .send()
            .await
            .with_context(|| format!("calling {url}"))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return body["token"]
                .as_str()
                .map(str::to_string)
                .with_context(|| format!("{url} sent no `token`"));
        }
        match body["error"].as_str() {
            Some("authorization-pending") => {}
            // RFC 8628: this and every later poll waits 5 seconds more.
            Some("slow-down") => interval += 5,
            code => bail!(
                "{} ({} {})",
                body["message"].as_str().unwrap_or("the device login failed"),
                status.as_u16(),
                code.unwrap_or("")
            ),
        }
    }
}
