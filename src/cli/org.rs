//! `cairn org`: organisations (SPEC section 15) through the write API.

use anyhow::Result;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::user::{RegistryArgs, TokenCommand};
use crate::client::api::Api;

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create an organisation; you become its owner.
    Create {
        slug: String,
        /// Its display name (default: the slug).
        #[arg(long)]
        name: Option<String>,
        /// A private organisation (fixed once it owns a package).
        #[arg(long)]
        private: bool,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Show an organisation: settings, members, packages.
    Info {
        slug: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// List the members and their roles.
    Members {
        slug: String,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Make a user a member at once (they are told through the registry's
    /// mail), or invite an email address: a pending invitation, mailed,
    /// that its invitee accepts within 7 days.
    Invite {
        slug: String,
        /// A login, or an email address (it has an `@`).
        login: String,
        /// member, admin or owner.
        #[arg(long, default_value = "member")]
        role: String,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Change a member's role (member, admin, owner).
    Role {
        slug: String,
        login: String,
        role: String,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Remove a member (your own login: leave).
    Remove {
        slug: String,
        login: String,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Create, list or revoke the organisation's tokens (for CI).
    Token {
        slug: String,
        #[command(subcommand)]
        command: TokenCommand,
    },
}

pub fn run(cmd: OrgCommand) -> Result<()> {
    super::user::runtime()?.block_on(org(cmd))
}

async fn org(cmd: OrgCommand) -> Result<()> {
    let connect = |reg: RegistryArgs| async move { Api::connect(reg.remote()?).await };
    match cmd {
        OrgCommand::Create { slug, name, private, reg } => {
            let visibility = if private { "private" } else { "public" };
            let body = json!({ "slug": slug, "name": name, "visibility": visibility });
            connect(reg).await?.call(Method::POST, "orgs", Some(body)).await?;
            eprintln!("created the {visibility} organisation {slug}; you are its owner");
        }
        OrgCommand::Info { slug, json, reg } => {
            let doc = connect(reg).await?.call(Method::GET, &format!("orgs/{slug}"), None).await?;
            match json {
                true => println!("{}", serde_json::to_string_pretty(&doc)?),
                false => print!("{}", format_info(&doc)),
            }
        }
        OrgCommand::Members { slug, reg } => {
            let doc = connect(reg).await?.call(Method::GET, &format!("orgs/{slug}/members"), None).await?;
            print!("{}", format_members(&doc["members"]));
        }
        OrgCommand::Invite { slug, login, role, reg } => {
            let by_email = login.contains('@');
            let body = match by_email {
                true => json!({ "email": login, "role": role }),
                false => json!({ "login": login, "role": role }),
            };
            let doc =
                connect(reg).await?.call(Method::POST, &format!("orgs/{slug}/members"), Some(body)).await?;
            match by_email {
                true => eprintln!(
                    "invited {login} to org:{slug} ({role}); the invitation was mailed and expires at {}",
                    doc["expiresAt"].as_str().unwrap_or("?")
                ),
                false => eprintln!("{login} is now a member of org:{slug} ({role})"),
            }
        }
        OrgCommand::Role { slug, login, role, reg } => {
            let body = json!({ "role": role });
            connect(reg)
                .await?
                .call(Method::PATCH, &format!("orgs/{slug}/members/{login}"), Some(body))
                .await?;
            eprintln!("{login} is now {role} of org:{slug}");
        }
        OrgCommand::Remove { slug, login, reg } => {
            connect(reg).await?.call(Method::DELETE, &format!("orgs/{slug}/members/{login}"), None).await?;
            eprintln!("{login} is no longer a member of org:{slug}");
        }
        OrgCommand::Token { slug, command } => {
            super::user::token(command, &format!("orgs/{slug}/tokens")).await?
        }
    }
    Ok(())
}

fn format_members(members: &Value) -> String {
    let mut out = String::new();
    for m in members.as_array().into_iter().flatten() {
        let s = |k: &str| m[k].as_str().unwrap_or("").to_string();
        match m["pending"].as_bool() == Some(true) {
            true => out.push_str(&format!(
                "{:<24} {:<7} invited, expires {}\n",
                s("email"),
                s("role"),
                s("expiresAt")
            )),
            false => out.push_str(&format!("{:<24} {:<7} since {}\n", s("login"), s("role"), s("addedAt"))),
        }
    }
    out
}

fn format_info(doc: &Value) -> String {
    let s = |k: &str| doc[k].as_str().unwrap_or("").to_string();
    let mut out = format!("org:{} {} ({})\n", s("slug"), s("name"), s("visibility"));
    if let Some(registry) = doc["registry"].as_str() {
        out.push_str(&format!("registry: {registry}\n"));
    }
    let packages: Vec<&str> =
        doc["packages"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if !packages.is_empty() {
        out.push_str(&format!("packages: {}\n", packages.join(", ")));
    }
    out.push_str("members:\n");
    for line in format_members(&doc["members"]).lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out
}
