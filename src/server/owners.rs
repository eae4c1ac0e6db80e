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
    let owners = req.writer().owners(req.by()?, name, added, removed).await?;
    Ok((users, owners))
}
