//! The user-side verbs of SPEC section 10: login, logout, whoami, publish,
//! yank, owner, token, info, fetch, verify, log, mirror (the project's
//! verbs, install among them, are in `project.rs`).

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;

use crate::client::api::{self, Api};
use crate::client::config::{normalize_url, Credentials};
use crate::client::remote::Remote;
use crate::client::single;
use crate::words::count;

/// Which registry, and as whom.
#[derive(Args, Clone, Debug)]
pub struct RegistryArgs {
    /// The registry's static base URL (where /index/config.json lives);
    /// default: the one `cairn login` used last.
    #[arg(long, env = "CAIRN_REGISTRY")]
    pub registry: Option<String>,
    /// API token (default: the stored credential for the registry).
    #[arg(long, env = "CAIRN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// What the transparency log must show before anything is unpacked.
#[derive(Args, Clone, Debug)]
pub struct LogArgs {
    /// Refuse a checkpoint whose newest trusted cosignature is older than this many seconds.
    #[arg(long, env = "CAIRN_LOG_MAX_AGE", default_value_t = 86_400)]
    pub log_max_age: u64,
    /// A witness's verifier key (repeatable; the variable takes a comma-separated list).
    #[arg(long = "witness", env = "CAIRN_WITNESSES", value_delimiter = ',')]
    pub witnesses: Vec<String>,
    /// Witness cosignatures required (default: every --witness).
    #[arg(long, env = "CAIRN_WITNESS_QUORUM")]
    pub witness_quorum: Option<usize>,
}

impl LogArgs {
    fn policy(&self) -> crate::client::trust::Policy {
        crate::client::trust::Policy {
            max_age: self.log_max_age,
            witnesses: self.witnesses.clone(),
            quorum: self.witness_quorum,
        }
    }
}

#[derive(Subcommand)]
pub enum LogCommand {
    /// Every entry against the checkpoint, every publish entry against its index line.
    Verify {
        #[command(flatten)]
        reg: RegistryArgs,
        #[command(flatten)]
        log: LogArgs,
    },
    /// A version's publish entry as a C2SP tlog-proof (c2sp.org/tlog-proof@v1).
    Proof {
        /// NAME@VERSION
        spec: String,
        #[command(flatten)]
        reg: RegistryArgs,
        #[command(flatten)]
        log: LogArgs,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Store a token for a registry and pin its signing key.
    Login {
        #[command(flatten)]
        reg: RegistryArgs,
        /// Accept the key the registry presents now in place of the pinned one.
        #[arg(long)]
        re_trust: bool,
        /// Get the token by approving a code on the registry's web site
        /// (where you are signed in) instead of pasting one.
        #[arg(long)]
        device: bool,
    },
    /// Forget the stored token for a registry (its pinned key stays).
    Logout {
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Show the account the token belongs to.
    Whoami {
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Pack a directory holding cairn.toml (or take a tarball) and upload it.
    Publish {
        /// A package directory (default: .) or a .tar.gz/.tar.zst/.crate file.
        path: Option<PathBuf>,
        /// Check and pack, but do not upload.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Yank a version (installs skip it unless a lock pins it), or undo a yank.
    Yank {
        /// NAME@VERSION
        spec: String,
        #[arg(long)]
        undo: bool,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Mark a package deprecated with a message (installs warn), or undo it.
    Deprecate {
        name: String,
        /// Why, and what to do instead (not with --undo).
        #[arg(required_unless_present = "undo")]
        message: Option<String>,
        /// A package to use instead.
        #[arg(long, conflicts_with = "undo")]
        replacement: Option<String>,
        #[arg(long)]
        undo: bool,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// List, add or remove a package's owners.
    Owner {
        #[command(subcommand)]
        command: OwnerCommand,
    },
    /// Create, list or revoke API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Show a package or one of its versions.
    Info {
        /// NAME or NAME@VERSION
        spec: String,
        /// Print the registry's JSON document.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Download one verified tarball.
    Fetch {
        /// NAME@VERSION (or NAME@REQ)
        spec: String,
        /// Output file (default ./{name}-{version}.{tar.gz|tar.zst}).
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        reg: RegistryArgs,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Check a tarball against the index and the registry's signature.
    Verify {
        file: PathBuf,
        /// Fail unless the version has provenance, from a repository
        /// matching NAME=OWNER/REPO when given (repeatable).
        #[arg(long, value_name = "PATTERN")]
        require_provenance: Vec<String>,
        #[command(flatten)]
        reg: RegistryArgs,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Check the registry's transparency log, or print a version's inclusion proof.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Make DIR a read-only copy of the registry at SOURCE (again: fetch what is new).
    Mirror {
        source: String,
        dir: PathBuf,
        /// The URL the mirror will be served at: its config.json's `dl` and `api` point there.
        #[arg(long)]
        public_url: Option<String>,
        /// Concurrent downloads.
        #[arg(long, default_value_t = 16)]
        jobs: usize,
        /// Also witness the source's log, with a witness key of this name
        /// (made on first use): `cairn serve` on the mirror then cosigns the
        /// source's consistent checkpoints (`POST /add-checkpoint`).
        #[arg(long, value_name = "NAME")]
        witness: Option<String>,
        /// Fetch the index from this git remote (a path, file://, ssh or
        /// https URL that `git` can fetch; one the source pushes to with
        /// `[index] remotes`) instead of SOURCE/index.git; blobs, the key
        /// and the log still come from SOURCE, and every line is checked
        /// against the source's log as always.
        #[arg(long, value_name = "URL")]
        index_remote: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum OwnerCommand {
    /// List the owners of a package.
    List {
        name: String,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Add owners (logins) to a package.
    Add {
        name: String,
        #[arg(required = true)]
        users: Vec<String>,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Remove owners from a package.
    Remove {
        name: String,
        #[arg(required = true)]
        users: Vec<String>,
        #[command(flatten)]
        reg: RegistryArgs,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it, alone, on stdout (shown once).
    Create {
        #[arg(long)]
        label: String,
        /// publish-new, publish-update, yank, change-owners, tokens (an
        /// organisation's: read instead of tokens) (repeatable).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Package name patterns, trailing `*` allowed (repeatable; none = all).
        #[arg(long = "package")]
        packages: Vec<String>,
        /// Expiry, RFC 3339 (e.g. 2027-06-01T00:00:00Z).
        #[arg(long)]
        expires: Option<String>,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// List the tokens (never their secrets).
    List {
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Revoke a token by id.
    Revoke {
        id: String,
        #[command(flatten)]
        reg: RegistryArgs,
    },
}

/// One thread for the client's requests; its CPU-heavy steps run on
/// rayon's pool (`client::cpu`).
pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

impl RegistryArgs {
    pub(super) fn url(&self) -> Result<String> {
        if let Some(r) = self.registry.as_deref().filter(|r| !r.is_empty()) {
            return Ok(normalize_url(r));
        }
        Credentials::load()?.default_registry.ok_or_else(|| {
            anyhow!("no registry: pass --registry URL, set CAIRN_REGISTRY, or `cairn login` first")
        })
    }

    pub(super) fn remote(&self) -> Result<Remote> {
        let url = self.url()?;
        let token = match self.token.clone().filter(|t| !t.is_empty()) {
            Some(t) => Some(t),
            None => Credentials::load()?.entry(&url).and_then(|e| e.token.clone()),
        };
        Remote::new(&url, token)
    }

    /// The remote, with what its log must show.
    pub(super) fn remote_checked(&self, log: &LogArgs) -> Result<Remote> {
        Ok(Remote { log: log.policy(), ..self.remote()? })
    }
}

fn split_version(spec: &str) -> Result<(&str, &str)> {
    spec.split_once('@')
        .filter(|(n, v)| !n.is_empty() && !v.is_empty())
        .ok_or_else(|| anyhow!("expected NAME@VERSION, got `{spec}`"))
}

pub fn run(cmd: UserCommand) -> Result<()> {
    runtime()?.block_on(run_async(cmd))
}

async fn run_async(cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::Login { reg, re_trust, device } => login(reg, re_trust, device).await,
        UserCommand::Logout { reg } => {
            let url = reg.url()?;
            let mut creds = Credentials::load()?;
            let had = creds.entry_mut(&url).token.take().is_some();
            creds.save()?;
            eprintln!("{} {url}", if had { "logged out of" } else { "no stored token for" });
            Ok(())
        }
        UserCommand::Whoami { reg } => {
            let api = Api::connect(reg.remote()?).await?;
            let me = api.call(Method::GET, "whoami", None).await?;
            println!("{}", me["login"].as_str().unwrap_or_default());
            Ok(())
        }
        UserCommand::Publish { path, dry_run, reg } => {
            publish(path.unwrap_or_else(|| ".".into()), dry_run, reg).await
        }
        UserCommand::Yank { spec, undo, reg } => {
            let (name, version) = split_version(&spec)?;
            let api = Api::connect(reg.remote()?).await?;
            if undo {
                api.call(Method::POST, &format!("packages/{name}/{version}/unyank"), None).await?;
                eprintln!("unyanked {name} {version}");
            } else {
                api.call(Method::DELETE, &format!("packages/{name}/{version}"), None).await?;
                eprintln!("yanked {name} {version}: new installs skip it, locks that pin it keep working");
            }
            Ok(())
        }
        UserCommand::Deprecate { name, message, replacement, undo, reg } => {
            let api = Api::connect(reg.remote()?).await?;
            let body = match undo {
                true => serde_json::json!({ "deprecated": null }),
                false => serde_json::json!({ "deprecated": message, "replacement": replacement }),
            };
            api.call(Method::PATCH, &format!("packages/{name}"), Some(body)).await?;
            match undo {
                true => eprintln!("{name} is no longer deprecated"),
                false => eprintln!("deprecated {name}: installs now warn about it"),
            }
            Ok(())
        }
        UserCommand::Owner { command } => owner(command).await,
        UserCommand::Token { command } => token(command, "tokens").await,
        UserCommand::Info { spec, json, reg } => {
            let doc = api::info(&reg.remote()?, &spec).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print!("{}", api::format_info(&doc));
            }
            Ok(())
        }
        UserCommand::Fetch { spec, output, reg, log } => {
            let path = single::fetch(&reg.remote_checked(&log)?, &spec, output).await?;
            println!("{}", path.display());
            Ok(())
        }
        UserCommand::Verify { file, require_provenance, reg, log } => {
            let policy = crate::client::policy::Policy::new(None, None, &require_provenance)?;
            let msg = single::verify_file(&reg.remote_checked(&log)?, &file, &policy).await?;
            println!("ok: {msg}");
            Ok(())
        }
        UserCommand::Log { command } => {
            match command {
                LogCommand::Verify { reg, log } => {
                    println!("ok: {}", crate::client::log::verify_whole(&reg.remote_checked(&log)?).await?)
                }
                LogCommand::Proof { spec, reg, log } => {
                    let (name, version) = split_version(&spec)?;
                    print!("{}", crate::client::log::proof(&reg.remote_checked(&log)?, name, version).await?);
                }
            }
            Ok(())
        }
        UserCommand::Mirror { source, dir, public_url, jobs, witness, index_remote } => {
            let options = crate::client::mirror::Options {
                public_url: public_url.as_deref(),
                jobs,
                witness: witness.as_deref(),
                index_remote: index_remote.as_deref(),
            };
            let s = crate::client::mirror::mirror(&source, &dir, &options).await?;
            eprintln!(
                "mirrored {}, {} into {}: {} fetched, {} already present, {} changed",
                count(s.packages, "package"),
                count(s.versions, "version"),
                dir.display(),
                count(s.fetched_blobs, "blob"),
                s.present_blobs,
                count(s.changed_files, "index file"),
            );
            if s.uncached_blobs > 0 {
                eprintln!(
                    "{} the source has not fetched from its upstream yet: not copied",
                    count(s.uncached_blobs, "blob")
                );
            }
            if let Some(key) = s.witness_key {
                println!("witness key: {key}");
            }
            Ok(())
        }
    }
}

async fn login(reg: RegistryArgs, re_trust: bool, device: bool) -> Result<()> {
    let url = reg
        .registry
        .clone()
        .filter(|r| !r.is_empty())
        .map(|r| normalize_url(&r))
        .ok_or_else(|| anyhow!("pass --registry URL (or set CAIRN_REGISTRY)"))?;
    // A token given now reads a registry that needs one (a private organisation's).
    let remote = Remote::new(&url, reg.token.clone().filter(|t| !t.is_empty()))?;
    let config = remote.connect(re_trust).await?;
    let mut creds = Credentials::load()?;
    let token = match reg.token.clone().filter(|t| !t.is_empty()) {
        _ if device => {
            crate::client::device::obtain_token(remote.http.client(), &api::api_base(&remote, &config))
                .await?
        }
        Some(t) => t,
        None if re_trust && creds.entry(&url).and_then(|e| e.token.clone()).is_some() => {
            creds.entry(&url).and_then(|e| e.token.clone()).expect("checked")
        }
        None => {
            if std::io::stdin().is_terminal() {
                eprint!("token for {url}: ");
            }
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim().to_string()
        }
    };
    if token.is_empty() {
        bail!("no token given (pass --token, set CAIRN_TOKEN, or type it on stdin)");
    }
    let remote = Remote { token: Some(token.clone()), ..remote };
    let api = Api { base: api::api_base(&remote, &config), remote };
    let me = api.call(Method::GET, "whoami", None).await.context("checking the token")?;
    let entry = creds.entry_mut(&url);
    entry.token = Some(token);
    creds.default_registry = Some(url.clone());
    creds.save()?;
    eprintln!("logged in to {url} as {}", me["login"].as_str().unwrap_or("?"));
    Ok(())
}

async fn publish(path: PathBuf, dry_run: bool, reg: RegistryArgs) -> Result<()> {
    let (name, version, bytes) = if path.is_dir() {
        let packed = crate::archive::pack::pack_dir(&path)?;
        eprintln!(
            "packed {} {} ({}, {})",
            packed.name,
            packed.version,
            count(packed.files.len(), "file"),
            count(packed.bytes.len(), "byte")
        );
        (packed.name, packed.version, packed.bytes)
    } else {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let (n, v) = single::archive_identity(&bytes)?;
        (n, v, bytes)
    };
    crate::name::validate(&name).map_err(|e| anyhow!("{e}"))?;
    // The registry's own rules, checked here first.
    crate::archive::unpack::check(&bytes, &name, &version)
        .map_err(|e| anyhow!("{name} {version} would be refused: {e}"))?;
    if dry_run {
        eprintln!("{name} {version} passes the registry's checks (dry run: nothing uploaded)");
        return Ok(());
    }
    let api = Api::connect(reg.remote()?).await?;
    let r = api.publish(&name, &version, bytes).await?;
    println!(
        "published {} {} (sha256 {}, {} bytes) at index commit {}",
        r["name"].as_str().unwrap_or(&name),
        r["version"].as_str().unwrap_or(&version),
        r["sha256"].as_str().unwrap_or(""),
        r["sizeBytes"],
        r["indexCommit"].as_str().unwrap_or("")
    );
    Ok(())
}

async fn owner(cmd: OwnerCommand) -> Result<()> {
    let (reg, name, users, method) = match cmd {
        OwnerCommand::List { name, reg } => (reg, name, vec![], Method::GET),
        OwnerCommand::Add { name, users, reg } => (reg, name, users, Method::PUT),
        OwnerCommand::Remove { name, users, reg } => (reg, name, users, Method::DELETE),
    };
    let api = Api::connect(reg.remote()?).await?;
    let body = (method != Method::GET).then(|| json!({ "users": users }));
    let r = api.call(method, &format!("packages/{name}/owners"), body).await?;
    for u in r["users"].as_array().into_iter().flatten() {
        println!("{}", u.as_str().or(u["login"].as_str()).unwrap_or_default());
    }
    Ok(())
}

/// The token verbs on `path`: the user's `tokens`, or an organisation's
/// `orgs/{slug}/tokens`.
pub(super) async fn token(cmd: TokenCommand, path: &str) -> Result<()> {
    match cmd {
        TokenCommand::Create { label, scopes, packages, expires, reg } => {
            let api = Api::connect(reg.remote()?).await?;
            let body =
                json!({ "label": label, "scopes": scopes, "packages": packages, "expiresAt": expires });
            let r = api.call(Method::POST, path, Some(body)).await?;
            eprintln!("created token {} `{}` (shown once):", r["id"], r["label"].as_str().unwrap_or(""));
            println!("{}", r["key"].as_str().unwrap_or_default());
        }
        TokenCommand::List { reg } => {
            let api = Api::connect(reg.remote()?).await?;
            let r = api.call(Method::GET, path, None).await?;
            println!("{:<6} {:<20} {:<40} {:<22} LAST USED", "ID", "LABEL", "SCOPES", "EXPIRES");
            for t in r["tokens"].as_array().into_iter().flatten() {
                let list = |k: &str| {
                    t[k].as_array().map(|a| a.iter().filter_map(|s| s.as_str()).collect::<Vec<_>>().join(","))
                };
                let mut scopes = list("scopes").unwrap_or_default();
                if let Some(p) = list("packages").filter(|p| !p.is_empty()) {
                    scopes.push_str(&format!(" [{p}]"));
                }
                println!(
                    "{:<6} {:<20} {:<40} {:<22} {}",
                    t["id"],
                    t["label"].as_str().unwrap_or(""),
                    scopes,
                    t["expiresAt"].as_str().unwrap_or("never"),
                    t["lastUsedAt"].as_str().unwrap_or("never")
                );
            }
        }
        TokenCommand::Revoke { id, reg } => {
            let api = Api::connect(reg.remote()?).await?;
            api.call(Method::DELETE, &format!("{path}/{id}"), None).await?;
            eprintln!("revoked token {id}");
        }
    }
    Ok(())
}
