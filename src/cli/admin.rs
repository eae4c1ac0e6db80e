//! `cairn admin`: operator commands working directly on the data directory,
//! under the same writer lock as a running server.

use anyhow::Result;
use clap::Subcommand;
use std::sync::Arc;

use super::DataArg;
use crate::config::Config;
use crate::db;
use crate::publish::{apply_now, Actor, Change, Outcome, WriteRequest};
use crate::registry::Registry;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Manage user accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Hard-delete a version (NAME@VERSION: blob, signature and index line go; the number
    /// stays burned) or a whole package (NAME: every version, the name keeps its owners).
    Delete {
        /// NAME@VERSION or NAME
        spec: String,
        /// In this private organisation's registry.
        #[arg(long)]
        org: Option<String>,
    },
    /// Erase accounts whose erasure grace period has passed.
    Purge,
    /// Security advisories (OSV JSON) in the index.
    Advisory {
        #[command(subcommand)]
        command: AdvisoryCommand,
    },
    /// Hard-delete the prereleases the [[retention]] rules let go (a version
    /// another live version pins with `=` stays) and list them as JSON.
    Retention {
        /// List what would go, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Names an upstream registry offers (SPEC section 16).
    Upstream {
        #[command(subcommand)]
        command: UpstreamCommand,
    },
}

#[derive(Subcommand)]
pub enum UpstreamCommand {
    /// Claim NAME for local packages: no upstream serves it any more, its
    /// cached lines leave the index, and a local publish of it is accepted.
    Claim { name: String },
}

#[derive(Subcommand)]
pub enum AdvisoryCommand {
    /// Validate an OSV file and commit it at advisories/{ID}.json.
    Add { file: std::path::PathBuf },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user and print their first token, alone, on stdout.
    Add {
        login: String,
        #[arg(long)]
        email: Option<String>,
    },
    /// List users.
    List,
    /// Disable a user: every token of theirs fails at once.
    Disable { login: String },
    /// Issue a new token with every scope to a user, printed alone on stdout.
    Token { login: String },
}

pub fn run(data: DataArg, cmd: AdminCommand) -> Result<()> {
    match cmd {
        AdminCommand::User { command: UserCommand::Add { login, email } } => {
            println!("{}", db::add_user(&open_db(&data)?, &login, email.as_deref())?);
        }
        AdminCommand::User { command: UserCommand::List } => {
            for (user, disabled) in db::list_users(&open_db(&data)?)? {
                let state = if disabled { "disabled" } else { "active" };
                println!(
                    "{}\t{}\t{}\t{}",
                    user.login,
                    user.email.unwrap_or_default(),
                    user.created_at,
                    state
                );
            }
        }
        AdminCommand::User { command: UserCommand::Disable { login } } => {
            anyhow::ensure!(db::disable_user(&open_db(&data)?, &login)?, "no user `{login}`");
            eprintln!("disabled `{login}`");
        }
        AdminCommand::User { command: UserCommand::Token { login } } => {
            println!("{}", db::issue_first_token(&open_db(&data)?, &login)?);
        }
        AdminCommand::Delete { spec, org } => {
            let public = Registry::open(&data.data, Config::load(&data.data)?)?;
            let reg = Arc::new(match org {
                Some(slug) => {
                    let found = db::org::find(&public.db()?, &slug)?;
                    anyhow::ensure!(found.is_some_and(|o| o.private), "no private organisation `{slug}`");
                    public.org_registry(&slug)?
                }
                None => public,
            });
            let change = match spec.split_once('@') {
                Some((name, version)) => Change::HardDelete { name: name.into(), version: version.into() },
                None => Change::DeletePackage { name: spec.clone() },
            };
            match apply_now(reg, WriteRequest { actor: Actor::Admin, addr: None, change })? {
                Outcome::PackageDeleted { versions } => eprintln!(
                    "deleted {spec} ({}); the version numbers stay burned and the name keeps its owners",
                    versions.join(", ")
                ),
                _ => eprintln!("deleted {spec}; the version number stays burned"),
            }
        }
        AdminCommand::Advisory { command: AdvisoryCommand::Add { file } } => {
            let reg = Arc::new(Registry::open(&data.data, Config::load(&data.data)?)?);
            let id = crate::jobs::advisories::add(reg, &file)?;
            eprintln!("added advisory {id}");
        }
        AdminCommand::Upstream { command: UpstreamCommand::Claim { name } } => {
            crate::name::validate(&name).map_err(|e| anyhow::anyhow!("`{name}`: {e}"))?;
            let reg = Arc::new(Registry::open(&data.data, Config::load(&data.data)?)?);
            let change = Change::Claim { name: name.clone() };
            match apply_now(reg, WriteRequest { actor: Actor::Admin, addr: None, change })? {
                Outcome::Claimed { new: true } => eprintln!("claimed {name} for local use"),
                _ => eprintln!("{name} was claimed already"),
            }
        }
        AdminCommand::Retention { dry_run } => {
            let reg = Registry::open(&data.data, Config::load(&data.data)?)?;
            let report = crate::retention::run(reg, dry_run)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        AdminCommand::Purge => {
            for login in db::purge_accounts(&open_db(&data)?)? {
                println!("{login}");
            }
        }
    }
    Ok(())
}

fn open_db(data: &DataArg) -> Result<db::Conn> {
    anyhow::ensure!(
        Registry::exists(&data.data),
        "{} holds no registry (run `cairn init` or `cairn serve`)",
        data.data.display()
    );
    let config = crate::config::Config::load(&data.data)?;
    db::open(&db::Target::of(&data.data, &config)?)
}
