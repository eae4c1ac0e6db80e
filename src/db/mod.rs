//! The state database (SQLite, or Postgres by `[database] url`): users, token hashes, package names and their
//! owners, burned versions, and the audit log; web accounts' passwords,
//! sessions and device codes in `account`, `session` and `device`; the
//! event log and webhook cursors in `events`; the writer lease of several
//! servers in `lease`; organisations in `org`; proposals and candidates in
//! `proposals`. One
//! writer connection lives in the publish thread; request handlers use the
//! pool's.

pub mod account;
pub mod conn;
pub mod dependents;
pub mod device;
pub mod downloads;
mod erasure;
pub mod events;
pub mod identity;
pub mod invitation;
pub mod lease;
pub mod migrate;
mod open;
pub mod org;
mod pending;
pub mod pool;
pub mod proposals;
pub mod quota;
pub mod session;
pub mod space;
#[cfg(test)]
pub(crate) mod testdb;
#[cfg(test)]
mod tests;
mod tls;
pub mod token;
mod tokens;
pub mod upstream;
mod value;

pub use crate::params;
pub use conn::{Conn, Engine, Param, Row, Txn, Value};
pub use erasure::*;
pub use open::{open, open_sqlite, session_bound, Target};
pub use pending::*;
use space::in_space;
pub use space::Space;
pub use tokens::*;

use anyhow::Result;

pub const ALL_SCOPES: &[&str] = &["publish-new", "publish-update", "yank", "change-owners", "tokens"];

/// Whether this connection can write (false on read-only storage, or when
/// a Postgres connection was lost: the holder opens a new one).
pub fn writable(conn: &Conn) -> bool {
    conn.writable()
}

pub fn now() -> String {
    crate::index::line::pubtime(chrono::Utc::now())
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub login: String,
    pub email: Option<String>,
    pub created_at: String,
}

/// What a valid token or web session authenticates.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    /// The token presented, or the one a session was opened with; `None`
    /// for a session opened with a password.
    pub token_id: Option<i64>,
    pub scopes: Vec<String>,
    pub packages: Vec<String>,
    /// The organisation of an organisation token: it acts for that
    /// organisation alone (`user` is the admin who made it).
    pub org: Option<OrgToken>,
    /// A trusted-publishing token's CI run (SPEC section 17): it publishes
    /// its packages as their trust configurations allowed, and its
    /// versions record where they were built.
    pub provenance: Option<Box<crate::index::line::Provenance>>,
}

#[derive(Debug, Clone)]
pub struct OrgToken {
    pub id: i64,
    pub slug: String,
    pub private: bool,
}

impl Caller {
    /// Who acts, as commits (`Published-By`) and answers name it: the
    /// user's login, or `org:{slug}` for an organisation token.
    pub fn login(&self) -> std::borrow::Cow<'_, str> {
        match &self.org {
            Some(o) => org::owner_name(&o.slug).into(),
            None => self.user.login.as_str().into(),
        }
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Package patterns: exact names or a prefix with a trailing `*`,
    /// compared on canonical names; no patterns means every package.
    pub fn may_touch(&self, package: &str) -> bool {
        self.packages.is_empty() || self.packages.iter().any(|p| crate::name::matches(p, package))
    }
}

/// The rule for logins, for administrators and signup alike.
pub fn check_login(login: &str) -> Result<(), String> {
    let valid = !login.is_empty()
        && login.len() <= 39
        && login.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match valid {
        true => Ok(()),
        false => Err(format!("invalid login `{login}`: use 1-39 letters, digits, `-` or `_`")),
    }
}

/// Adds a user and issues a first token with every scope; returns the token.
pub fn add_user(conn: &Conn, login: &str, email: Option<&str>) -> Result<String> {
    check_login(login).map_err(anyhow::Error::msg)?;
    let Some(id) = insert_user(conn, login, email)? else { anyhow::bail!("a user `{login}` exists already") };
    Ok(issue_token(conn, id, "first token", ALL_SCOPES, &[], None)?.1)
}

/// Inserts a user unless a login equal but for case exists (`None` then):
/// checked and inserted in one statement; on Postgres a unique index on
/// lower(login) also stops a concurrent twin.
pub(crate) fn insert_user(conn: &Conn, login: &str, email: Option<&str>) -> Result<Option<i64>> {
    conn.query_opt(
        "INSERT INTO users (login, email, created_at)
         SELECT CAST(?1 AS TEXT), CAST(?2 AS TEXT), CAST(?3 AS TEXT)
         WHERE NOT EXISTS (SELECT 1 FROM users WHERE lower(login) = lower(?1))
         ON CONFLICT DO NOTHING RETURNING id",
        params![login, email, now()],
        |r| r.get(0),
    )
}

pub fn list_users(conn: &Conn) -> Result<Vec<(User, bool)>> {
    conn.query("SELECT id, login, email, created_at, disabled FROM users ORDER BY login", params![], |r| {
        Ok((User { id: r.get(0)?, login: r.get(1)?, email: r.get(2)?, created_at: r.get(3)? }, r.get(4)?))
    })
}

/// A package's stored identity: (first spelling, confusable key).
pub fn find_package(conn: &Conn, space: &Space, name: &str) -> Result<Option<String>> {
    conn.query_opt("SELECT name FROM packages WHERE key = ?1", params![space.key(name)], |r| r.get(0))
}

/// An existing package whose name looks like `name` but is another package.
pub fn find_confusable(conn: &Conn, space: &Space, name: &str) -> Result<Option<String>> {
    conn.query_opt(
        "SELECT name FROM packages WHERE confusable = ?1 AND key != ?2",
        params![space.confusable(name), space.key(name)],
        |r| r.get(0),
    )
}

/// Registers a name with its first owner: the user, or the organisation
/// of an organisation token; in a private organisation's space, always
/// the organisation (`org_id`).
pub fn create_package(
    conn: &Conn,
    space: &Space,
    name: &str,
    caller: &Caller,
    org_id: Option<i64>,
) -> Result<()> {
    conn.execute(
        "INSERT INTO packages (key, name, confusable, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![space.key(name), name, space.confusable(name), now()],
    )?;
    match (org_id, &caller.org) {
        (Some(id), _) => org::add_package(conn, space, name, id),
        (None, Some(o)) => org::add_package(conn, space, name, o.id),
        (None, None) => add_owner(conn, space, name, caller.user.id),
    }
}

pub fn find_user(conn: &Conn, login: &str) -> Result<Option<User>> {
    conn.query_opt(
        "SELECT id, login, email, created_at FROM users WHERE lower(login) = lower(?1)",
        params![login],
        |r| Ok(User { id: r.get(0)?, login: r.get(1)?, email: r.get(2)?, created_at: r.get(3)? }),
    )
}

pub fn add_owner(conn: &Conn, space: &Space, name: &str, user_id: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO owners (package, user_id, added_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        params![space.key(name), user_id, now()],
    )?;
    Ok(())
}

pub fn remove_owner(conn: &Conn, space: &Space, name: &str, user_id: i64) -> Result<()> {
    conn.execute(
        "DELETE FROM owners WHERE package = ?1 AND user_id = ?2",
        params![space.key(name), user_id],
    )?;
    Ok(())
}

pub fn is_owner(conn: &Conn, space: &Space, name: &str, user_id: i64) -> Result<bool> {
    Ok(conn
        .query_opt(
            "SELECT 1 FROM owners WHERE package = ?1 AND user_id = ?2",
            params![space.key(name), user_id],
            |_| Ok(()),
        )?
        .is_some())
}

/// Every owner row: (package key, user or organisation id, login, when
/// added), users by login and organisations as `org:{slug}`. The one query
/// of owners, for one package and for all.
macro_rules! owner_rows {
    () => {
        "SELECT o.package AS package, u.id AS id, u.login AS login, o.added_at AS added_at
         FROM owners o JOIN users u ON u.id = o.user_id
     UNION ALL
     SELECT x.package, g.id, 'org:' || g.slug, x.added_at FROM org_owners x JOIN orgs g ON g.id = x.org_id"
    };
}

/// A package's owners in the order they were added: (id, login); an
/// organisation's id is its own, its login `org:{slug}`.
pub fn owner_rows(conn: &Conn, space: &Space, name: &str) -> Result<Vec<(i64, String)>> {
    conn.query(
        concat!(
            "SELECT id, login FROM (",
            owner_rows!(),
            ") AS w WHERE package = ?1 ORDER BY added_at, login"
        ),
        params![space.key(name)],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// A package's owners' logins, in the order they were added.
pub fn owners(conn: &Conn, space: &Space, name: &str) -> Result<Vec<String>> {
    Ok(owner_rows(conn, space, name)?.into_iter().map(|(_, login)| login).collect())
}

/// The packages `login` (a user's, or `org:{slug}`) owns in a space, by
/// their first published names, in key order.
pub fn owned_packages(conn: &Conn, space: &Space, login: &str) -> Result<Vec<String>> {
    conn.query(
        concat!(
            "SELECT p.name FROM (",
            owner_rows!(),
            ") AS w JOIN packages p ON p.key = w.package WHERE lower(w.login) = lower(?1) AND ",
            in_space!("w.package", 2),
            " ORDER BY p.key"
        ),
        params![login, space.key_prefix()],
        |r| r.get(0),
    )
}

/// Every public package's owners' logins by canonical name.
pub fn all_owners(conn: &Conn) -> Result<std::collections::HashMap<String, Vec<String>>> {
    let rows = conn.query(
        concat!(
            "SELECT package, login FROM (",
            owner_rows!(),
            ") AS w WHERE ",
            in_space!("package", 1),
            " ORDER BY package, added_at, login"
        ),
        params![Space::Public.key_prefix()],
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
    )?;
    let mut out: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for (pkg, login) in rows {
        out.entry(pkg).or_default().push(login);
    }
    Ok(out)
}

/// True when this (package, version-without-build) was ever published, even
/// if it was since deleted: version numbers are burned forever.
pub fn version_burned(conn: &Conn, space: &Space, name: &str, version_key: &str) -> Result<bool> {
    Ok(conn
        .query_opt(
            "SELECT 1 FROM versions WHERE package = ?1 AND version = ?2",
            params![space.key(name), version_key],
            |_| Ok(()),
        )?
        .is_some())
}

pub fn record_version(
    conn: &Conn,
    space: &Space,
    name: &str,
    version: &semver::Version,
    sha256: &str,
    at: &str,
    by: i64,
) -> Result<()> {
    conn.execute(
        // `seq`: the order of recording (writers take turns: one at a time).
        "INSERT INTO versions (package, version, vers, sha256, published_at, publisher, seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, (SELECT COALESCE(MAX(seq), 0) + 1 FROM versions))",
        params![space.key(name), crate::name::version_key(version), version.to_string(), sha256, at, by],
    )?;
    count_version(conn, &space.key(name), 1)
}

/// A row of the versions table.
#[derive(Debug, Clone)]
pub struct VersionRow {
    pub key: String,
    pub name: String,
    pub version_key: String,
    pub vers: String,
    pub sha256: String,
    pub published_at: String,
}

/// The query of [`VersionRow`]s of the space bound as `?2`, at most `?1`.
macro_rules! version_rows_sql {
    ($filter_and_order:literal) => {
        concat!(
            "SELECT v.package, p.name, v.version, v.vers, v.sha256, v.published_at
             FROM versions v JOIN packages p ON p.key = v.package WHERE ",
            in_space!("v.package", 2),
            " AND ",
            $filter_and_order,
            " LIMIT ?1"
        )
    };
}

/// The space's `n` most recently recorded live versions, newest first.
pub fn recent_versions(conn: &Conn, space: &Space, n: usize) -> Result<Vec<VersionRow>> {
    version_rows(conn, version_rows_sql!("v.deleted_at IS NULL ORDER BY v.seq DESC"), space, n)
}

/// The space's `n` versions hard-deleted last.
pub fn recently_deleted(conn: &Conn, space: &Space, n: usize) -> Result<Vec<VersionRow>> {
    version_rows(conn, version_rows_sql!("v.deleted_at IS NOT NULL ORDER BY v.deleted_at DESC"), space, n)
}

fn version_rows(conn: &Conn, sql: &str, space: &Space, n: usize) -> Result<Vec<VersionRow>> {
    conn.query(sql, params![n as i64, space.key_prefix()], |r| {
        Ok(VersionRow {
            key: r.get(0)?,
            name: r.get(1)?,
            version_key: r.get(2)?,
            vers: r.get(3)?,
            sha256: r.get(4)?,
            published_at: r.get(5)?,
        })
    })
}

/// The public registry's (packages with a live version, live versions).
pub fn counts(conn: &Conn) -> Result<(i64, i64)> {
    let get = |name: &str| {
        conn.query_row("SELECT value FROM counters WHERE name = ?1", params![name], |r| r.get(0))
    };
    Ok((get("packages")?, get("versions")?))
}

/// A space's (packages with a live version, live versions): the public
/// registry's from its counters, a private organisation's counted (the
/// counters are the public registry's, read on every health probe).
pub fn space_counts(conn: &Conn, space: &Space) -> Result<(i64, i64)> {
    match space {
        Space::Public => counts(conn),
        Space::Org(_) => conn.query_row(
            concat!(
                "SELECT COUNT(DISTINCT package), COUNT(*) FROM versions WHERE deleted_at IS NULL AND ",
                in_space!("package", 1)
            ),
            params![space.key_prefix()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        ),
    }
}

/// Adjusts the public counters after a version of `package_key` became
/// live (+1) or stopped being live (-1); a private key counts in none.
fn count_version(conn: &Conn, package_key: &str, delta: i64) -> Result<()> {
    if Space::Public.own(package_key).is_none() {
        return Ok(());
    }
    let live: i64 = conn.query_row(
        "SELECT COUNT(*) FROM versions WHERE package = ?1 AND deleted_at IS NULL",
        params![package_key],
        |r| r.get(0),
    )?;
    conn.execute("UPDATE counters SET value = value + ?1 WHERE name = 'versions'", params![delta])?;
    // The package appeared (first live version) or disappeared (last one gone).
    if (delta > 0 && live == 1) || (delta < 0 && live == 0) {
        conn.execute("UPDATE counters SET value = value + ?1 WHERE name = 'packages'", params![delta])?;
    }
    Ok(())
}

/// Forgets a version recorded by a batch whose index commit never happened
/// (it was never acknowledged, so its number is not burned).
pub fn forget_version(conn: &Conn, package_key: &str, version_key: &str) -> Result<()> {
    let n = conn.execute(
        "DELETE FROM versions WHERE package = ?1 AND version = ?2 AND deleted_at IS NULL",
        params![package_key, version_key],
    )?;
    if n == 1 {
        count_version(conn, package_key, -1)?;
    }
    Ok(())
}

pub struct AuditEntry<'a> {
    pub user_id: Option<i64>,
    pub token_id: Option<i64>,
    pub action: &'a str,
    pub target: &'a str,
    pub addr: Option<&'a str>,
    pub outcome: &'a str,
}

/// Appends an audit row; returns its id.
pub fn audit(conn: &Conn, e: &AuditEntry) -> Result<i64> {
    conn.query_row(
        "INSERT INTO audit (at, user_id, token_id, action, target, addr, outcome)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        params![now(), e.user_id, e.token_id, e.action, e.target, e.addr, e.outcome],
        |r| r.get(0),
    )
}

/// Whether a live version of the space is stored under this SHA-256.
pub fn blob_in_use(conn: &Conn, space: &Space, sha256: &str) -> Result<bool> {
    let n: i64 = conn.query_row(
        concat!(
            "SELECT COUNT(*) FROM versions WHERE sha256 = ?1 AND deleted_at IS NULL AND ",
            in_space!("package", 2)
        ),
        params![sha256, space.key_prefix()],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// Takes back the audit row of a change that did not happen after all (its
/// group's index commit failed).
pub fn forget_audit(conn: &Conn, id: i64) -> Result<()> {
    conn.execute("DELETE FROM audit WHERE id = ?1", params![id])?;
    Ok(())
}

/// Takes back a package row and its first owner, made by a publish whose
/// index commit failed.
pub fn forget_package(conn: &Conn, space: &Space, name: &str) -> Result<()> {
    let key = space.key(name);
    conn.execute("DELETE FROM owners WHERE package = ?1", params![key])?;
    conn.execute("DELETE FROM org_owners WHERE package = ?1", params![key])?;
    conn.execute("DELETE FROM packages WHERE key = ?1", params![key])?;
    Ok(())
}

/// Takes back a hard delete's mark (its index commit failed, or a crash
/// came before it).
pub fn unmark_version_deleted(conn: &Conn, space: &Space, name: &str, version_key: &str) -> Result<()> {
    let key = space.key(name);
    let n = conn.execute(
        "UPDATE versions SET deleted_at = NULL WHERE package = ?1 AND version = ?2 AND deleted_at IS NOT NULL",
        params![key, version_key],
    )?;
    if n == 1 {
        count_version(conn, &key, 1)?;
    }
    Ok(())
}

/// Marks a version hard-deleted: it leaves every listing, its number stays burned.
pub fn mark_version_deleted(conn: &Conn, space: &Space, name: &str, version_key: &str) -> Result<()> {
    let n = conn.execute(
        "UPDATE versions SET deleted_at = ?1 WHERE package = ?2 AND version = ?3 AND deleted_at IS NULL",
        params![now(), space.key(name), version_key],
    )?;
    if n == 1 {
        count_version(conn, &space.key(name), -1)?;
    }
    Ok(())
}
