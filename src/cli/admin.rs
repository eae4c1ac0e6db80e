//! `cairn admin`: operator commands working directly on the data directory.

use anyhow::Result;
use clap::Subcommand;

use super::DataArg;
use crate::db;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Manage user accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user and print their first token, alone, on stdout.
    Add {
        login: String,
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        data: DataArg,
    },
    /// List users.
    List {
        #[command(flatten)]
        data: DataArg,
    },
}

pub fn run(cmd: AdminCommand) -> Result<()> {
    match cmd {
        AdminCommand::User { command: UserCommand::Add { login, email, data } } => {
            let conn = open_db(&data)?;
            let token = db::add_user(&conn, &login, email.as_deref())?;
            println!("{token}");
        }
        AdminCommand::User { command: UserCommand::List { data } } => {
            let conn = open_db(&data)?;
            for (user, disabled) in db::list_users(&conn)? {
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
    }
    Ok(())
}

fn open_db(data: &DataArg) -> Result<rusqlite::Connection> {
    anyhow::ensure!(
        crate::registry::Registry::exists(&data.data),
        "{} holds no registry (run `cairn init` or `cairn serve`)",
        data.data.display()
    );
    db::open(&data.data.join("state.db"))
}
