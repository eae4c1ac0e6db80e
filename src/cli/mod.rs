//! The `cairn` command line (SPEC section 10). Exit codes: 0 ok, 1 error, 2 usage.

mod admin;
mod audit;
mod fsck;
mod org;
mod project;
mod search;
mod serve;
mod upstream;
mod user;
mod witness;

use clap::{Parser, Subcommand};

use crate::config::LogFormat;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "cairn", version, about = "A static-index, content-addressed package registry")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the registry's data lives (registry-side commands). Global, so
/// `cairn admin --data D user add alice` and `cairn admin user add alice
/// --data D` both work.
#[derive(clap::Args, Clone)]
pub struct DataArg {
    /// The registry's data directory.
    #[arg(long, env = "CAIRN_DATA", default_value = "./cairn-data", global = true)]
    pub data: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Create a registry in the data directory and print the bootstrap token.
    Init {
        #[command(flatten)]
        data: DataArg,
        /// The registry's name, bound into every signature.
        #[arg(long)]
        name: Option<String>,
        /// Base URL readers use (default http://{listen}).
        #[arg(long)]
        public_url: Option<String>,
    },
    /// Serve the registry (creating it first if the data directory holds none).
    Serve(serve::ServeArgs),
    /// Administration on the data directory.
    Admin {
        #[command(flatten)]
        data: DataArg,
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    #[command(flatten)]
    Project(project::ProjectCommand),
    #[command(flatten)]
    User(user::UserCommand),
    /// Organisations: create one, its members and their roles, its tokens.
    Org {
        #[command(subcommand)]
        command: org::OrgCommand,
    },
    /// Search the registry's packages.
    Search(search::SearchArgs),
    /// Check a lockfile against the registry's security advisories (exit 1 on findings).
    Audit(audit::AuditArgs),
    /// Check blobs, signatures, the index history and derived files (exit 1 on findings).
    Fsck(fsck::FsckArgs),
    /// Serve a C2SP tlog-witness for the logs given (cosigns consistent checkpoints).
    Witness(witness::WitnessArgs),
    /// Move the registry onto the storage another registry.toml names
    /// (stop the server first); that file then becomes registry.toml.
    Migrate {
        #[command(flatten)]
        data: DataArg,
        /// The registry.toml to move to (e.g. with a `[storage]` bucket).
        #[arg(long)]
        to: PathBuf,
    },
    /// Write one consistent backup of what is not derived (the server may run).
    Backup {
        #[command(flatten)]
        data: DataArg,
        /// The directory to write (it must not exist).
        out: PathBuf,
        /// An earlier backup whose blobs this one leaves out.
        #[arg(long)]
        since: Option<PathBuf>,
    },
    /// Make a registry from a backup in a new data directory.
    Restore {
        backup: PathBuf,
        #[command(flatten)]
        data: DataArg,
    },
    /// Upstream registries: warm the cache from lockfiles, list what is cached.
    Upstream {
        #[command(subcommand)]
        command: upstream::UpstreamCommand,
    },
    /// Fill an upstream's cache with no network, from a directory of .crate
    /// files (and the upstream's index files in the sparse layout, if any).
    Import {
        /// The [[upstreams]] entry the crates come from.
        #[arg(long)]
        upstream: String,
        dir: PathBuf,
        #[command(flatten)]
        data: DataArg,
    },
    /// Rewrite derived files from the sources of truth.
    Rebuild {
        job: crate::jobs::Job,
        #[command(flatten)]
        data: DataArg,
        /// Access logs in the combined format (the stats job).
        #[arg(long = "access-log")]
        access_logs: Vec<PathBuf>,
        /// Base URL readers use for static files, when `cairn serve` was given one.
        #[arg(long, env = "CAIRN_PUBLIC_URL")]
        public_url: Option<String>,
    },
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    // `serve` starts its log once it has read registry.toml's `[log] format`.
    if !matches!(cli.command, Command::Serve(_)) {
        let json = std::env::var("CAIRN_LOG_FORMAT").is_ok_and(|f| f == "json");
        init_log(if json { LogFormat::Json } else { LogFormat::Text });
    }
    // libgit2 re-hashes (SHA-1 with collision detection) every object it
    // reads: a fifth of the CPU of reading the index at crates.io scale.
    // Our objects were hashed when libgit2 indexed the packs we wrote, and
    // zlib checks each one on inflate; `fsck` alone re-hashes them all.
    git2::opts::strict_hash_verification(matches!(cli.command, Command::Fsck(_)));
    let result = match cli.command {
        Command::Init { data, name, public_url } => init(&data, name, public_url),
        Command::Serve(args) => serve::run(args),
        Command::Admin { data, command } => admin::run(data, command),
        Command::Project(command) => project::run(command),
        Command::User(command) => user::run(command),
        Command::Org { command } => org::run(command),
        Command::Search(args) => search::run(args),
        Command::Rebuild { job, data, access_logs, public_url } => {
            rebuild(&data, job, access_logs, public_url)
        }
        Command::Migrate { data, to } => crate::migrate::migrate(&data.data, &to).map(|report| {
            println!("{}", serde_json::to_string_pretty(&report).expect("a report serializes"));
        }),
        Command::Backup { data, out, since } => {
            crate::backup::backup(&data.data, &out, since.as_deref()).and_then(|m| print_json(&m))
        }
        Command::Restore { backup, data } => {
            crate::backup::restore(&backup, &data.data).and_then(|m| print_json(&m))
        }
        Command::Upstream { command } => upstream::run(command),
        Command::Import { upstream, dir, data } => upstream::import(&data, &upstream, &dir),
        Command::Audit(args) => audit::run(args),
        Command::Fsck(args) => fsck::run(args),
        Command::Witness(args) => witness::run(args),
    };
    match result {
        Ok(()) => 0,
        Err(e) if e.is::<Findings>() => {
            eprintln!("{e}");
            1
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// The process' log on stderr, filtered by `CAIRN_LOG`. The requests'
/// lines (`cairn::request`) are the JSON log's: in text they are off unless
/// `CAIRN_LOG` asks for them.
fn init_log(format: LogFormat) {
    let default = match format {
        LogFormat::Json => "cairn=info,warn",
        LogFormat::Text => "cairn=info,cairn::request=off,warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG").unwrap_or_else(|_| default.into());
    let log = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => {
            log.json().flatten_event(true).with_current_span(false).with_span_list(false).init()
        }
        LogFormat::Text => log.init(),
    }
}

fn print_json(report: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(report)?);
    Ok(())
}

fn rebuild(
    data: &DataArg,
    job: crate::jobs::Job,
    access_logs: Vec<PathBuf>,
    public_url: Option<String>,
) -> anyhow::Result<()> {
    let mut config = crate::config::Config::load(&data.data)?;
    if public_url.is_some() {
        config.public_url = public_url;
    }
    let reg = crate::registry::Registry::open(&data.data, config)?;
    let report = crate::jobs::rebuild(&reg, job, &crate::jobs::Options { access_logs })?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn init(data: &DataArg, name: Option<String>, public_url: Option<String>) -> anyhow::Result<()> {
    let mut config = crate::config::Config::load(&data.data)?;
    if let Some(n) = name {
        config.name = n;
    }
    if let Some(u) = public_url {
        config.public_url = Some(u);
    }
    std::fs::create_dir_all(&data.data)?;
    let token = crate::registry::Registry::init(&data.data, &config)?;
    eprintln!("created a registry in {}", data.data.display());
    eprintln!("bootstrap token for user `{}` (shown once):", crate::registry::BOOTSTRAP_LOGIN);
    println!("{token}");
    Ok(())
}

/// A check (`audit`, `fsck`) found something: printed as it is, without
/// the `error:` prefix, and the CLI exits 1.
#[derive(Debug)]
pub struct Findings(pub String);

impl std::fmt::Display for Findings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Findings {}
