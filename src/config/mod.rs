//! `registry.toml` in the data directory: one home for configuration, every
//! key with a default that works on a laptop and a `CAIRN_*` override.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::archive::Limits;

mod identity;
mod ops;
pub use identity::{Oidc, TrustedIssuer};
pub use ops::{Quotas, Retention};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The registry's name, bound into every signature.
    pub name: String,
    /// Address `serve` listens on.
    pub listen: String,
    /// Base URL readers use for static files (`{static}`); default `http://{listen}`.
    pub public_url: Option<String>,
    /// Base URL of the write API (`{api}`); default the public URL.
    pub api_url: Option<String>,
    /// Extra reserved names (Windows device names are always reserved).
    pub reserved_names: Vec<String>,
    /// Archive limits (SPEC section 3).
    pub limits: Limits,
    /// Largest number of writes the writer commits as one group.
    pub max_batch: usize,
    pub rate_limit: RateLimits,
    /// A mirror: served without a writer, writes answered with 405 `read-only`.
    pub read_only: bool,
    /// Seconds between checks that rebuild the search shards when the index
    /// moved (0: never; `cairn rebuild search` then keeps them current).
    pub search_interval: u64,
    /// Seconds between runs of the statistics job over `access_logs`
    /// (0: never). Rereading a log counts only lines not counted before.
    pub stats_interval: u64,
    /// Web-server access logs (combined format) the statistics timer reads.
    pub access_logs: Vec<std::path::PathBuf>,
    /// Days back from today (UTC) a log line can still be counted (0: no
    /// limit). Older lines are skipped and the fingerprints kept to never
    /// count a line twice (8 bytes per download) are dropped for their days.
    pub stats_window_days: u32,
    /// Seconds between full static rebuilds (0: never; the writer keeps
    /// the documents current, this repairs what was lost or edited).
    pub static_interval: u64,
    /// Reverse proxies (addresses or CIDR blocks, e.g. `127.0.0.1`,
    /// `10.0.0.0/8`) whose `X-Forwarded-For` names the client: on their
    /// connections the client is the rightmost entry not in this list.
    pub trusted_proxies: Vec<String>,
    /// Bytes of small static files `serve` keeps in memory with their
    /// compressed variants (0: none).
    pub hot_cache_bytes: usize,
    /// The largest file the hot cache keeps, in bytes.
    pub hot_cache_max_file: usize,
    pub cdn: Cdn,
    /// Where mail goes (SPEC section 19): an SMTP server, else the outbox only.
    pub mail: Mail,
    /// Whether `serve` records its Prometheus metrics (`GET /metrics` on
    /// the admin listener; `CAIRN_METRICS=off`).
    pub metrics: bool,
    pub quotas: Quotas,
    /// Which prereleases go (SPEC section 20).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retention: Vec<Retention>,
    /// Seconds between runs of the retention rules (0: only `cairn admin retention`).
    pub retention_interval: u64,
    pub log: LogConfig,
    pub accounts: Accounts,
    pub storage: Storage,
    pub index: IndexConfig,
    /// Receivers of every event (SPEC section 13), each POSTed in id order
    /// and signed (`events/webhooks.rs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<Webhook>,
    pub database: Database,
    /// Registries served through this one (SPEC section 16), asked in order
    /// for a name with no local package.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<Upstream>,
    /// OpenID providers people sign in with (SPEC section 17).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub oidc: Vec<Oidc>,
    /// Issuers whose CI identity tokens may publish (SPEC section 17).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_publishing: Vec<TrustedIssuer>,
}

/// One `[[upstreams]]` entry: a cargo sparse registry (or a cairn one)
/// whose packages this registry caches and serves as its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Upstream {
    /// `[a-z0-9-]`: named in commits, signatures and documents.
    pub name: String,
    /// `sparse+https://index.crates.io/`, or a cairn registry's `/index/` URL.
    pub index: String,
    /// Cooldown: versions younger than this (`"0"`, `"90s"`, `"12h"`,
    /// `"3d"`) are not offered yet.
    pub min_age: String,
    /// Name patterns it may serve (a trailing `*` allowed).
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    /// Seconds a cached index file is served before it is revalidated.
    pub refresh: u64,
    /// Bound on the bytes of blobs cached from upstreams (0: none).
    pub max_cache_bytes: u64,
    /// Whether the public registry is served from it.
    pub public: bool,
    /// Private organisations (slugs) whose registries it also serves,
    /// each with its own cache, claims and 409s in its name space.
    pub orgs: Vec<String>,
    /// Whether a name cached for the first time also brings, in the
    /// background, the index files of its newest versions' dependencies
    /// (what cargo asks for next): a resolution's misses then come in
    /// waves the writer commits together, not one level after another.
    pub prefetch: bool,
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream {
            name: String::new(),
            index: String::new(),
            min_age: "0".into(),
            allow: vec!["*".into()],
            deny: Vec::new(),
            refresh: 60,
            max_cache_bytes: 0,
            public: true,
            orgs: Vec::new(),
            prefetch: true,
        }
    }
}

impl Upstream {
    /// The index's base URL without cargo's `sparse+` and with a trailing `/`.
    pub fn index_url(&self) -> String {
        let url = self.index.strip_prefix("sparse+").unwrap_or(&self.index);
        format!("{}/", url.trim_end_matches('/'))
    }

    /// `min_age` in seconds.
    pub fn min_age_seconds(&self) -> Result<u64> {
        age_seconds(&self.min_age)
    }

    /// Whether it serves the registry of `org` (`None`: the public one).
    pub fn serves(&self, org: Option<&str>) -> bool {
        match org {
            None => self.public,
            Some(slug) => self.orgs.iter().any(|o| o.eq_ignore_ascii_case(slug)),
        }
    }

    /// Whether `allow` lets it serve `name` and `deny` does not stop it
    /// (patterns compared with the canonical name; a trailing `*` is a prefix).
    pub fn allows(&self, name: &str) -> bool {
        let hits = |patterns: &[String]| patterns.iter().any(|p| crate::name::matches(p, name));
        hits(&self.allow) && !hits(&self.deny)
    }

    fn check(&self) -> Result<()> {
        let name_ok = !self.name.is_empty()
            && self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        anyhow::ensure!(name_ok, "[[upstreams]] name {:?} is not [a-z0-9-]+", self.name);
        let url = reqwest::Url::parse(&self.index_url())
            .with_context(|| format!("[[upstreams]] {}: index {:?}", self.name, self.index))?;
        anyhow::ensure!(
            matches!(url.scheme(), "http" | "https"),
            "[[upstreams]] {}: index {:?} is not an http(s) URL",
            self.name,
            self.index
        );
        anyhow::ensure!(self.refresh > 0, "[[upstreams]] {}: refresh must be at least 1 second", self.name);
        self.min_age_seconds().with_context(|| format!("[[upstreams]] {}", self.name))?;
        Ok(())
    }
}

/// The state database (SPEC section 13).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Database {
    /// `postgres://user@host:port/db` (no TLS yet: a database on the same
    /// host or a private network); absent: SQLite's `state.db` in the data
    /// directory. Overridden by `CAIRN_DATABASE_URL`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Seconds a writer's lease lasts when several servers share a bucket
    /// (SPEC 13): a server that died is replaced within this time.
    pub lease_seconds: u64,
}

impl Default for Database {
    fn default() -> Self {
        Database { url: None, lease_seconds: 10 }
    }
}

/// The index repository's mirrors.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    /// Git remotes (a path, `file://`, or `ssh://`/`user@host:path` with
    /// ssh-agent) that `main` is pushed to after every commit, fast-forward
    /// only, from a thread of their own (`index/remotes.rs`).
    pub remotes: Vec<String>,
}

/// One webhook: where events are POSTed, and the environment variable
/// holding the secret they are signed with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    pub secret_env: String,
}

/// Where blobs and the whole static root live (SPEC section 13).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    pub kind: StorageKind,
    /// The bucket (`s3`).
    pub bucket: Option<String>,
    /// Key prefix inside the bucket, e.g. `cairn/` (empty: the bucket's top).
    pub prefix: String,
    /// An S3-compatible endpoint; omitted for AWS. Credentials come from
    /// the `AWS_*` environment.
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// The data directory's `static/` (the embedded default).
    #[default]
    Fs,
    /// Any S3-compatible object store.
    S3,
}

/// Web accounts (SPEC section 12).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Accounts {
    /// `open`: anyone may sign up on the web; `closed`: administrators
    /// create the users.
    pub signup: Signup,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signup {
    #[default]
    Closed,
    Open,
}

/// The transparency log (SPEC section 14).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// The checkpoint's origin line; default `{public host}/log`. Fixed
    /// when the log's keys are made (the keys carry it).
    pub origin: Option<String>,
    /// Seconds between the registry's re-cosignings of its checkpoint with
    /// a fresh time, made even when nothing changed.
    pub cosign_interval: u64,
    /// Witnesses each new checkpoint is submitted to (C2SP tlog-witness).
    pub witnesses: Vec<WitnessConfig>,
    /// The process' own log on stderr: `text`, or `json` (one object per
    /// line, with a line per request; `CAIRN_LOG_FORMAT`).
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { origin: None, cosign_interval: 300, witnesses: Vec::new(), format: LogFormat::Text }
    }
}

/// A witness: the base URL of its `add-checkpoint` and its verifier key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    pub url: String,
    pub key: String,
}

/// `[mail]`: every message is first appended to the data directory's
/// `outbox.jsonl`; with `smtp` a thread of `serve` sends them on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mail {
    /// `smtp://host:port` (plain, or STARTTLS when the server offers it)
    /// or `smtps://host:port`; none: the outbox only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp: Option<String>,
    /// The sender (`cairn <registry@example.com>`); default `cairn@{host of the public URL}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// A CDN in front of the static root (SPEC section 13): a write group's
/// changed URLs are purged from it before the group's replies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cdn {
    /// How a purge is asked for.
    pub kind: CdnKind,
    /// `post` and `cloudflare`: the URL POSTed to; `purge`: the cache's
    /// base URL (e.g. `http://127.0.0.1:6081`), each changed path appended.
    /// Absent: no purge, and shared caches follow the clients' max-age.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge_url: Option<String>,
    /// `cloudflare`: the environment variable holding the API token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// Seconds shared caches keep index files and documents
    /// (`s-maxage`) when a purge is configured.
    pub edge_max_age: u64,
}

impl Default for Cdn {
    fn default() -> Self {
        Cdn { kind: CdnKind::Post, purge_url: None, token_env: None, edge_max_age: 86_400 }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CdnKind {
    /// `POST {"paths":[…]}` to `purge_url`, once per write group.
    #[default]
    Post,
    /// An HTTP `PURGE` of each changed URL (Varnish, nginx's cache purge).
    Purge,
    /// `POST {"files":[…]}` (full URLs) with the token of `token_env`.
    Cloudflare,
}

impl Cdn {
    /// Refuses a table that could not purge: a URL that is none, or
    /// Cloudflare without its token's variable.
    fn check(&self) -> Result<()> {
        let Some(url) = &self.purge_url else { return Ok(()) };
        let parsed = reqwest::Url::parse(url).with_context(|| format!("[cdn] purge_url {url:?}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            anyhow::bail!("[cdn] purge_url {url:?} is not an http(s) URL");
        }
        if self.kind == CdnKind::Cloudflare && self.token_env.is_none() {
            anyhow::bail!("[cdn] kind = \"cloudflare\" needs token_env, the variable holding the API token");
        }
        if self.edge_max_age == 0 {
            anyhow::bail!("[cdn] edge_max_age must be at least 1 second");
        }
        Ok(())
    }
}

/// Token-bucket quotas, `burst` requests then one more every `per_seconds / refill`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Quota {
    pub burst: u32,
    pub refill: u32,
    pub per_seconds: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    pub enabled: bool,
    /// Any request without a valid token, by client address.
    pub anonymous: Quota,
    /// Health, whoami, token and owner reads, by account.
    pub reads: Quota,
    /// Publish, register, yank, owner changes, by account.
    pub writes: Quota,
    /// Token creation, by account.
    pub token_create: Quota,
    /// Data export, by account.
    pub export: Quota,
    /// Account deletion, by account.
    pub delete: Quota,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            enabled: true,
            anonymous: Quota { burst: 30, refill: 1, per_seconds: 2 },
            reads: Quota { burst: 120, refill: 2, per_seconds: 1 },
            writes: Quota { burst: 60, refill: 1, per_seconds: 1 },
            token_create: Quota { burst: 5, refill: 1, per_seconds: 30 },
            export: Quota { burst: 5, refill: 1, per_seconds: 30 },
            delete: Quota { burst: 3, refill: 3, per_seconds: 86_400 },
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "cairn".into(),
            listen: "127.0.0.1:7878".into(),
            public_url: None,
            api_url: None,
            reserved_names: crate::name::DEFAULT_RESERVED.iter().map(|s| s.to_string()).collect(),
            limits: Limits::default(),
            max_batch: 64,
            rate_limit: RateLimits::default(),
            read_only: false,
            search_interval: 60,
            stats_interval: 0,
            access_logs: Vec::new(),
            stats_window_days: 0,
            static_interval: 0,
            trusted_proxies: Vec::new(),
            hot_cache_bytes: 64 << 20,
            hot_cache_max_file: 256 << 10,
            cdn: Cdn::default(),
            mail: Mail::default(),
            metrics: true,
            quotas: Quotas::default(),
            retention: Vec::new(),
            retention_interval: 86_400,
            log: LogConfig::default(),
            accounts: Accounts::default(),
            storage: Storage::default(),
            index: IndexConfig::default(),
            webhooks: Vec::new(),
            database: Database::default(),
            upstreams: Vec::new(),
            oidc: Vec::new(),
            trusted_publishing: Vec::new(),
        }
    }
}

impl Config {
    /// Reads `registry.toml` (absent = defaults) and applies `CAIRN_*` overrides.
    pub fn load(data: &Path) -> Result<Config> {
        let path = data.join("registry.toml");
        let mut config: Config = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        config.apply_env();
        config.cdn.check().with_context(|| format!("in {}", path.display()))?;
        let mut names = std::collections::HashSet::new();
        for upstream in &config.upstreams {
            upstream.check().with_context(|| format!("in {}", path.display()))?;
            anyhow::ensure!(names.insert(&upstream.name), "two [[upstreams]] are named {}", upstream.name);
        }
        let mut names = std::collections::HashSet::new();
        for provider in &config.oidc {
            provider.check().with_context(|| format!("in {}", path.display()))?;
            anyhow::ensure!(names.insert(&provider.name), "two [[oidc]] are named {}", provider.name);
        }
        for rule in &config.retention {
            rule.check().with_context(|| format!("in {}", path.display()))?;
        }
        for issuer in &config.trusted_publishing {
            issuer.check().with_context(|| format!("in {}", path.display()))?;
        }
        Ok(config)
    }

    fn apply_env(&mut self) {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(v) = var("CAIRN_NAME") {
            self.name = v;
        }
        if let Some(v) = var("CAIRN_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = var("CAIRN_PUBLIC_URL") {
            self.public_url = Some(v);
        }
        if let Some(v) = var("CAIRN_API_URL") {
            self.api_url = Some(v);
        }
        if let Some(v) = var("CAIRN_DATABASE_URL") {
            self.database.url = Some(v);
        }
        if let Some(v) = var("CAIRN_RATE_LIMIT") {
            self.rate_limit.enabled = !matches!(v.as_str(), "off" | "0" | "false");
        }
        if let Some(v) = var("CAIRN_METRICS") {
            self.metrics = !matches!(v.as_str(), "off" | "0" | "false");
        }
        if let Some(v) = var("CAIRN_LOG_FORMAT") {
            self.log.format = if v == "json" { LogFormat::Json } else { LogFormat::Text };
        }
    }

    /// The names of the OpenID providers the sign-in page offers.
    pub fn sign_in_providers(&self) -> Vec<String> {
        self.oidc.iter().map(|p| p.name.clone()).collect()
    }

    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_string()
    }

    /// The log's origin line: `[log] origin`, else the public URL's host and path + `/log`.
    pub fn log_origin(&self) -> String {
        self.log.origin.clone().unwrap_or_else(|| {
            let url = self.public_url();
            let host = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
            format!("{host}/log")
        })
    }

    /// What shared caches in front are told: with a purge configured,
    /// they keep index files and documents for `edge_max_age`. Not a
    /// mirror's: `cairn mirror` writes its files with no writer to purge them.
    pub fn edge(&self) -> crate::layout::Edge {
        match (&self.cdn.purge_url, self.read_only) {
            (Some(_), false) => crate::layout::Edge::Purged { s_maxage: self.cdn.edge_max_age },
            _ => crate::layout::Edge::Expiring,
        }
    }

    pub fn api_url(&self) -> String {
        self.api_url.clone().map(|u| u.trim_end_matches('/').to_string()).unwrap_or_else(|| self.public_url())
    }

    /// The file `init` writes: the defaults, spelled out for the operator.
    pub fn to_toml(&self) -> String {
        format!(
            "# cairn registry configuration; every key can be overridden by CAIRN_* or a flag.\n{}",
            toml::to_string_pretty(self).expect("config serializes")
        )
    }
}

/// An age as registry.toml and cairn.toml write it (`"0"`, `"90s"`,
/// `"15m"`, `"12h"`, `"3d"`), in seconds.
pub fn age_seconds(text: &str) -> Result<u64> {
    let s = text.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits.parse().with_context(|| format!("min_age {s:?} is not a number and a unit"))?;
    let per = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => anyhow::bail!("min_age {s:?}: the unit is s, m, h or d"),
    };
    Ok(n * per)
}
