//! Messages to people (invitations, notifications): where a registry with
//! a mail server would send an email, the embedded default appends it to
//! `outbox.jsonl` in the data directory and logs it, for the operator to
//! deliver or forward.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

pub const FILE: &str = "outbox.jsonl";

/// Appends one message: `{"at","to","login","subject","body"}`;
/// `login`: the account it is for (`None`: an address invited, no account yet).
pub fn send(data: &Path, login: Option<&str>, to: Option<&str>, subject: &str, body: &str) -> Result<()> {
    let line = serde_json::json!({
        "at": crate::db::now(), "login": login, "to": to, "subject": subject, "body": body,
    });
    let path = data.join(FILE);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.write_all(format!("{line}\n").as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(login, to, subject, "message for a user in the outbox");
    Ok(())
}
