//! Sign-in through an OpenID provider (SPEC section 17): the authorization
//! code flow with PKCE (S256), `state` and `nonce`. `start` makes the
//! provider's URL and what the callback must find again; `finish` trades
//! the code for an ID token and checks it.

use base64::Engine as _;
use rand::RngCore;
use serde_json::{Map, Value};
use sha2::Digest;

use super::{claim, Issuers, Refusal};
use crate::config::Oidc;

/// A random URL-safe value of 32 bytes (43 characters).
fn random() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A sign-in about to leave for the provider.
pub struct Started {
    /// The provider's authorization URL to redirect to.
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

/// The provider's authorization URL for a new sign-in that comes back to `redirect_uri`.
pub async fn start(issuers: &Issuers, p: &Oidc, redirect_uri: &str) -> Result<Started, Refusal> {
    let d = issuers.discovery(&p.issuer).await?;
    let endpoint = d
        .authorization_endpoint
        .ok_or_else(|| Refusal("the provider has no authorization_endpoint".into()))?;
    let (state, nonce, verifier) = (random(), random(), random());
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let mut url =
        reqwest::Url::parse(&endpoint).map_err(|e| Refusal(format!("authorization_endpoint: {e}")))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &p.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "openid profile email")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(Started { url: url.into(), state, nonce, verifier })
}

/// Who signed in, from a checked ID token.
#[derive(Debug)]
pub struct Identity {
    pub sub: String,
    /// The login claim's value, for a first sign-in.
    pub login: Option<String>,
    pub groups: Vec<String>,
}

/// Trades the code for tokens at the provider's token endpoint (with the
/// PKCE verifier; the client secret as HTTP Basic when there is one) and
/// checks the ID token: signature, `iss`, `aud` = the client id, times and
/// the sign-in's `nonce`.
pub async fn finish(
    issuers: &Issuers,
    p: &Oidc,
    redirect_uri: &str,
    code: &str,
    verifier: &str,
    nonce: &str,
) -> Result<Identity, Refusal> {
    let d = issuers.discovery(&p.issuer).await?;
    let endpoint = d.token_endpoint.ok_or_else(|| Refusal("the provider has no token_endpoint".into()))?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", &p.client_id),
        ("code_verifier", verifier),
    ];
    let mut req = issuers.http().post(&endpoint).form(&form);
    if let Some(secret) = p.client_secret() {
        req = req.basic_auth(&p.client_id, Some(secret));
    }
    let failed = |e: reqwest::Error| Refusal(format!("the provider's token endpoint: {e}"));
    let resp = req.send().await.map_err(failed)?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        return Err(Refusal(format!("the provider refused the code ({status}): {}", body.trim())));
    }
    let tokens: Map<String, Value> = resp.json().await.map_err(failed)?;
    let id_token = tokens
        .get("id_token")
        .and_then(Value::as_str)
        .ok_or_else(|| Refusal("the provider sent no id_token".into()))?;
    let claims = issuers.verify(id_token, &p.issuer, std::slice::from_ref(&p.client_id)).await?;
    if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
        return Err(Refusal("the ID token's nonce is not this sign-in's".into()));
    }
    let sub = claim(&claims, "sub").ok_or_else(|| Refusal("the ID token has no sub".into()))?;
    let groups = match claims.get(&p.groups_claim) {
        Some(Value::Array(a)) => a.iter().filter_map(|g| g.as_str().map(str::to_string)).collect(),
        Some(Value::String(g)) => vec![g.clone()],
        _ => Vec::new(),
    };
    Ok(Identity { sub, login: claim(&claims, &p.login_claim), groups })
}
