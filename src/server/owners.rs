//! Owner changes, as the native API and cargo's owner API both make them.

use serde::Deserialize;

use super::{ApiError, Request};

#[derive(Deserialize)]
struct Users {
    users: Vec<String>,
}

/// Adds (`add`) or removes the logins of a `{"users":[…]}` body; returns
/// them and the owners after the change.
pub async fn change(
    req: &Request<'_>,
    name: &str,
    add: bool,
) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let Users { users } = req.json()?;
    if users.is_empty() {
        return Err(ApiError::invalid("`users` is empty"));
    }
    let (added, removed) = if add { (users.clone(), vec![]) } else { (vec![], users.clone()) };
    let owners = change_by(req, name, added, removed).await?;
    Ok((users, owners))
}

/// Adds and removes owners through the writer, then mails the owners
/// (and those removed) that they changed; returns the owners after.
pub async fn change_by(
    req: &Request<'_>,
    name: &str,
    added: Vec<String>,
    removed: Vec<String>,
) -> Result<Vec<String>, ApiError> {
    let owners = req.writer().owners(req.by()?, name, added.clone(), removed.clone()).await?;
    let (reg, n) = (req.registry(), name.to_string());
    // The change is made: a mail that cannot be queued is logged, not an error.
    let queued =
        req.state.db(move |conn| crate::mail::notify::owners_changed(&reg, conn, &n, &added, &removed)).await;
    if let Err(e) = queued {
        tracing::warn!(error = %e.message, package = name, "mailing the owners' change failed");
    }
    Ok(owners)
}
