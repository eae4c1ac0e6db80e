//! `[[oidc]]` and `[[trusted_publishing]]` (SPEC section 17): the OpenID
//! providers people sign in with, and the issuers whose CI identity
//! tokens may publish.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One `[[oidc]]` entry: web sign-in through an OpenID Connect provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Oidc {
    /// `[a-z0-9-]`: in the sign-in URLs, and the button says "Sign in with {name}".
    pub name: String,
    /// Discovery is at `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// The variable that holds the client secret (none: a public client, PKCE only).
    pub client_secret_env: Option<String>,
    /// The claim a new account's login is taken from.
    pub login_claim: String,
    /// Whether a first sign-in creates the account.
    pub create_accounts: bool,
    /// The claim listing the user's groups.
    pub groups_claim: String,
    /// Group → `{org}:{role}`, applied at every sign-in.
    pub groups: BTreeMap<String, String>,
}

impl Default for Oidc {
    fn default() -> Self {
        Oidc {
            name: String::new(),
            issuer: String::new(),
            client_id: String::new(),
            client_secret_env: None,
            login_claim: "preferred_username".into(),
            create_accounts: true,
            groups_claim: "groups".into(),
            groups: BTreeMap::new(),
        }
    }
}

impl Oidc {
    /// The client secret, from its variable.
    pub fn client_secret(&self) -> Option<String> {
        std::env::var(self.client_secret_env.as_ref()?).ok().filter(|s| !s.is_empty())
    }

    /// The roles `[oidc.groups]` maps groups to: (group, org slug, role).
    pub fn group_roles(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.groups.iter().filter_map(|(g, to)| to.split_once(':').map(|(org, role)| (g.as_str(), org, role)))
    }

    pub(super) fn check(&self) -> Result<()> {
        let name_ok = !self.name.is_empty()
            && self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        anyhow::ensure!(name_ok, "[[oidc]] name {:?} is not [a-z0-9-]+", self.name);
        http_url(&self.issuer).with_context(|| format!("[[oidc]] {}: issuer", self.name))?;
        anyhow::ensure!(!self.client_id.is_empty(), "[[oidc]] {}: client_id is empty", self.name);
        for (group, to) in &self.groups {
            let ok = to
                .split_once(':')
                .is_some_and(|(org, role)| !org.is_empty() && matches!(role, "member" | "admin" | "owner"));
            anyhow::ensure!(
                ok,
                "[[oidc]] {}: group {group:?} maps to {to:?}, not \"{{org}}:member|admin|owner\"",
                self.name
            );
        }
        Ok(())
    }
}

/// One `[[trusted_publishing]]` entry: an issuer of CI identity tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuer {
    pub issuer: String,
    /// The `aud` its tokens must carry (default: the registry's public URL).
    #[serde(default)]
    pub audience: Option<String>,
}

impl TrustedIssuer {
    pub(super) fn check(&self) -> Result<()> {
        http_url(&self.issuer).context("[[trusted_publishing]] issuer")
    }
}

fn http_url(url: &str) -> Result<()> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
    anyhow::ensure!(matches!(parsed.scheme(), "http" | "https"), "{url:?} is not an http(s) URL");
    Ok(())
}
