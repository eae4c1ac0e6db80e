//! Identity tokens from OpenID providers and CI (SPEC section 17): the
//! providers' discovery documents and signing keys, cached, and the one
//! check of a JWT (signature by the issuer's JWKS, `iss`, `aud`, `exp`,
//! `nbf`, `iat` within a leeway). Sign-in (`oidc`) and trusted publishing
//! (`trusted`) both go through it.

pub mod oidc;
pub mod trusted;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The clock skew allowed on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 60;
/// The least time between two fetches of an issuer's keys for an unknown
/// `kid`: a stream of made-up key ids costs the issuer one fetch a while.
const REFETCH_AFTER: Duration = Duration::from_secs(10);
/// How long keys are used before they are fetched again anyway (a key the
/// issuer withdrew stops being accepted).
const KEYS_TTL: Duration = Duration::from_secs(3600);

/// What `{issuer}/.well-known/openid-configuration` says.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint: Option<String>,
}

struct Keys {
    discovery: Discovery,
    set: JwkSet,
    fetched: Instant,
    /// When they were last fetched again for an unknown `kid`.
    refetched: Option<Instant>,
}

/// Why a JWT was refused: said to the caller as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn refuse<T>(why: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal(why.into()))
}

/// The issuers this registry has asked, with their keys.
pub struct Issuers {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Arc<Keys>>>,
}

impl Default for Issuers {
    fn default() -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client");
        Issuers { http, cache: Mutex::new(HashMap::new()) }
    }
}

impl Issuers {
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The issuer's discovery document (cached with its keys).
    pub async fn discovery(&self, issuer: &str) -> Result<Discovery, Refusal> {
        Ok(self.keys(issuer, false).await?.discovery.clone())
    }

    /// The issuer's keys: cached, or fetched (`again`: for a `kid` the
    /// cached ones lack, at most once in [`REFETCH_AFTER`]).
    async fn keys(&self, issuer: &str, again: bool) -> Result<Arc<Keys>, Refusal> {
        let cached = self.cache.lock().unwrap().get(issuer).cloned();
        let mut refetched = None;
        if let Some(keys) = cached {
            let fresh = keys.fetched.elapsed() < KEYS_TTL;
            let lately = keys.refetched.is_some_and(|at| at.elapsed() < REFETCH_AFTER);
            match again {
                false if fresh => return Ok(keys),
                true if lately => return Ok(keys),
                true => refetched = Some(Instant::now()),
                false => {}
            }
        }
        let mut keys = self.fetch(issuer).await?;
        keys.refetched = refetched;
        let keys = Arc::new(keys);
        self.cache.lock().unwrap().insert(issuer.to_string(), keys.clone());
        Ok(keys)
    }

    async fn fetch(&self, issuer: &str) -> Result<Keys, Refusal> {
        let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let discovery: Discovery = self.get_json(&url).await?;
        if discovery.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return refuse(format!("the issuer {issuer} names itself {} in its discovery", discovery.issuer));
        }
        let set: JwkSet = self.get_json(&discovery.jwks_uri).await?;
        Ok(Keys { discovery, set, fetched: Instant::now(), refetched: None })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, Refusal> {
        let failed = |e: reqwest::Error| Refusal(format!("fetching {url}: {e}"));
        let resp = self.http.get(url).send().await.map_err(failed)?.error_for_status().map_err(failed)?;
        resp.json().await.map_err(|e| Refusal(format!("reading {url}: {e}")))
    }

    /// The claims of `jwt` once it is checked: signed by a key of
    /// `issuer`'s JWKS (fetched again for a `kid` it lacks, as after a key
    /// rotation), issued by `issuer` for one of `audiences`, and within its times.
    pub async fn verify(
        &self,
        jwt: &str,
        issuer: &str,
        audiences: &[String],
    ) -> Result<Map<String, Value>, Refusal> {
        let header = jsonwebtoken::decode_header(jwt).or_else(|e| refuse(format!("not a JWT: {e}")))?;
        if matches!(header.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return refuse("the JWT is not signed with a public key");
        }
        let find = |keys: &Keys| match &header.kid {
            Some(kid) => keys.set.find(kid).cloned(),
            None if keys.set.keys.len() == 1 => keys.set.keys.first().cloned(),
            None => None,
        };
        let jwk = match find(&*self.keys(issuer, false).await?) {
            Some(jwk) => jwk,
            // A key rotated in since the keys were fetched: fetch them again.
            None => find(&*self.keys(issuer, true).await?).ok_or_else(|| {
                Refusal(format!("no key {:?} in the issuer's JWKS", header.kid.clone().unwrap_or_default()))
            })?,
        };
        let key =
            DecodingKey::from_jwk(&jwk).or_else(|e| refuse(format!("the issuer's key is unusable: {e}")))?;
        let mut v = Validation::new(header.alg);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        v.set_issuer(&[issuer]);
        v.set_audience(audiences);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(jwt, &key, &v).or_else(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            refuse(match e.kind() {
                K::ExpiredSignature => "the JWT has expired".to_string(),
                K::ImmatureSignature => "the JWT is not valid yet (nbf)".to_string(),
                K::InvalidAudience => {
                    format!("the JWT is not for this registry (aud must be {})", audiences.join(" or "))
                }
                K::InvalidIssuer => format!("the JWT was not issued by {issuer}"),
                K::InvalidSignature => "the JWT's signature does not verify".to_string(),
                _ => format!("the JWT is invalid: {e}"),
            })
        })?;
        let now = chrono::Utc::now().timestamp();
        if data.claims.get("iat").and_then(Value::as_i64).is_some_and(|iat| iat > now + LEEWAY_SECS as i64) {
            return refuse("the JWT was issued in the future (iat)");
        }
        Ok(data.claims)
    }
}

/// The `iss` a JWT claims, unchecked: which issuer's keys to check it with.
pub fn claimed_issuer(jwt: &str) -> Option<String> {
    let mut v = Validation::default();
    v.insecure_disable_signature_validation();
    v.validate_exp = false;
    v.validate_aud = false;
    v.set_required_spec_claims::<&str>(&[]);
    let data = jsonwebtoken::decode::<Map<String, Value>>(jwt, &DecodingKey::from_secret(&[]), &v).ok()?;
    data.claims.get("iss")?.as_str().map(str::to_string)
}

/// A claim as a string (numbers too: GitHub's `run_id` is a string, others' a number).
pub fn claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
