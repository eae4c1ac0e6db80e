//! The state database (SQLite, or Postgres by `[database] url`): users, token hashes, package names and their
//! owners, burned versions, and the audit log; web accounts' passwords,
//! sessions and device codes in `account`, `session` and `device`; the
//! event log and webhook cursors in `events`; the writer lease of several
//! servers in `lease`; organisations in `org`. One
//! writer connection lives in the publish thread; request handlers use the
//! pool's.

pub mod account;
pub mod conn;
pub mod device;
pub mod downloads;
pub mod events;
pub mod lease;
pub mod migrate;
pub mod org;
pub mod pool;
pub mod session;
pub mod space;
#[cfg(test)]
pub(crate) mod testdb;
#[cfg(test)]
mod tests;
pub mod token;

pub use crate::params;
pub use conn::{Conn, Engine, Param, Row, Txn, Value};
pub use space::Space;

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub const ALL_SCOPES: &[&str] = &["publish-new", "publish-update", "yank", "change-owners", "tokens"];

/// Where the state database is: `[database] url` (`postgres://…`), or the
/// embedded default, SQLite's `state.db` in the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Sqlite(PathBuf),
    /// The URL, and the bound of every session's waits (see [`session_bound`]).
    Postgres(String, std::time::Duration),
}

/// How long a Postgres session of cairn may wait for a lock, run one
/// statement or sit idle inside a transaction: below the writer lease, so
/// a node that stops mid-write (SIGSTOP, a frozen VM) has its session ended
/// and its locks freed before its lease lapses, and another node takes the
/// writes over within the lease plus a few seconds (SPEC section 13).
pub fn session_bound(lease_seconds: u64) -> std::time::Duration {
    std::time::Duration::from_millis(lease_seconds.max(1) * 800)
}

impl Target {
    /// A Postgres database with the default lease's bound.
    pub fn postgres(url: &str) -> Target {
        Target::Postgres(url.to_string(), session_bound(crate::config::Database::default().lease_seconds))
    }

    /// The database a data directory's configuration names.
    pub fn of(data: &Path, config: &crate::config::Config) -> Result<Target> {
        match config.database.url.as_deref().map(str::trim) {
            None | Some("") => Ok(Target::Sqlite(data.join("state.db"))),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Target::Postgres(url.to_string(), session_bound(config.database.lease_seconds)))
            }
            Some(url) => match url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
                Some(path) => Ok(Target::Sqlite(data.join(path))),
                None => anyhow::bail!(
                    "[database] url `{url}`: use postgres://user@host:port/db, or sqlite:path (default: state.db)"
                ),
            },
        }
    }

    /// What logs may show: the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Target::Sqlite(path) => path.display().to_string(),
            Target::Postgres(url, _) => {
                match url.split_once("://").and_then(|(s, rest)| Some((s, rest.split_once('@')?))) {
                    Some((scheme, (user, host))) => {
                        format!("{scheme}://{}@{host}", user.split(':').next().unwrap_or(user))
                    }
                    None => url.clone(),
                }
            }
        }
    }
}

/// Opens (and migrates) the state database.
pub fn open(target: &Target) -> Result<Conn> {
    match target {
        Target::Sqlite(path) => open_sqlite(path),
        Target::Postgres(url, bound) => open_postgres(url, *bound),
    }
}

/// How long a statement waits for a lock another connection holds (SQLite's
/// busy timeout), and how long connecting to Postgres may take (its waits
/// are [`session_bound`]'s).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens the Postgres database of `url`, without TLS (for now: a database on
/// the same host or a private network), and migrates it. Its session's
/// lock, statement and idle-in-transaction waits end after `bound`, and
/// both ends probe the connection (TCP keepalive), so a session of a node
/// that stopped or vanished never holds a lock for long.
fn open_postgres(url: &str, bound: std::time::Duration) -> Result<Conn> {
    let what = Target::Postgres(url.to_string(), bound).describe();
    let mut config: postgres::Config =
        url.parse().with_context(|| format!("parsing the database URL {what}"))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(LOCK_WAIT);
    }
    let (ms, secs) = (bound.as_millis(), bound.as_secs().max(1));
    let options = format!(
        "{} -c lock_timeout={ms} -c statement_timeout={ms} -c idle_in_transaction_session_timeout={ms} \
         -c tcp_keepalives_idle={secs} -c tcp_keepalives_interval=1 -c tcp_keepalives_count=3",
        config.get_options().unwrap_or_default()
    );
    config.options(options.trim());
    config.keepalives(true).keepalives_idle(bound).keepalives_interval(std::time::Duration::from_secs(1));
    config.keepalives_retries(3);
    let client = conn::connect_postgres(&config).with_context(|| format!("connecting to {what}"))?;
    let conn = Conn::from_postgres(client);
    migrate::run(&conn).with_context(|| format!("migrating {what}"))?;
    Ok(conn)
}

/// Opens the SQLite database for reading and writing; on storage that takes
/// no writes (a read-only filesystem), for reading only, so a server there
/// still authenticates and serves (its writes then fail as unavailable).
pub fn open_sqlite(path: &Path) -> Result<Conn> {
    match open_writable(path) {
        Ok(conn) => Ok(conn),
        Err(e) if read_only_storage(&e) => {
            tracing::warn!(error = %format!("{e:#}"), "the state database is read-only");
            open_read_only(path)
        }
        Err(e) => Err(e),
    }
}

fn open_writable(path: &Path) -> Result<Conn> {
    let conn = rusqlite::Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    conn.busy_timeout(LOCK_WAIT)?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
    let conn = Conn::from_sqlite(conn);
    migrate::run(&conn)?;
    Ok(conn)
}

/// Read-only, through the WAL when its files can be used, else as an
/// immutable file (a read-only filesystem where the `-shm` cannot be made).
fn open_read_only(path: &Path) -> Result<Conn> {
    use rusqlite::{Connection, OpenFlags};
    let flags =
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let plain = Connection::open_with_flags(path, flags)
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM users", [], |r| r.get::<_, i64>(0)).map(|_| c));
    let conn = match plain {
        Ok(conn) => conn,
        Err(_) => Connection::open_with_flags(format!("file:{}?immutable=1", path.display()), flags)
            .with_context(|| format!("opening {} read-only", path.display()))?,
    };
    conn.busy_timeout(LOCK_WAIT)?;
    Ok(Conn::from_sqlite(conn))
}

/// Whether a failure to open means the storage takes no writes.
fn read_only_storage(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let sqlite = c.downcast_ref::<rusqlite::Error>().and_then(|e| e.sqlite_error_code());
        let io = c.downcast_ref::<std::io::Error>().and_then(|e| e.raw_os_error());
        matches!(sqlite, Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen))
            || io == Some(libc::EROFS)
    })
}

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
        let key = crate::name::canonical(package);
        self.packages.is_empty()
            || self.packages.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => key.starts_with(&crate::name::canonical(prefix)),
                None => crate::name::canonical(p) == key,
            })
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
    // Checked and inserted in one statement; on Postgres a unique index on
    // lower(login) also stops a concurrent twin.
    let id: Option<i64> = conn.query_opt(
        "INSERT INTO users (login, email, created_at)
         SELECT CAST(?1 AS TEXT), CAST(?2 AS TEXT), CAST(?3 AS TEXT)
         WHERE NOT EXISTS (SELECT 1 FROM users WHERE lower(login) = lower(?1))
         ON CONFLICT DO NOTHING RETURNING id",
        params![login, email, now()],
        |r| r.get(0),
    )?;
    let Some(id) = id else { anyhow::bail!("a user `{login}` exists already") };
    Ok(issue_token(conn, id, "first token", ALL_SCOPES, &[], None)?.1)
}

/// Stores a new token's hash and returns its id and the token (shown once).
pub fn issue_token(
    conn: &Conn,
    user_id: i64,
    label: &str,
    scopes: &[&str],
    packages: &[String],
    expires_at: Option<&str>,
) -> Result<(i64, String)> {
    insert_token(conn, user_id, None, label, scopes, packages, expires_at)
}

fn insert_token(
    conn: &Conn,
    user_id: i64,
    org_id: Option<i64>,
    label: &str,
    scopes: &[&str],
    packages: &[String],
    expires_at: Option<&str>,
) -> Result<(i64, String)> {
    let token = token::generate();
    let id = conn.query_row(
        "INSERT INTO tokens (user_id, org_id, hash, label, scopes, packages, expires_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
        params![
            user_id,
            org_id,
            token::hash(&token),
            label,
            serde_json::to_string(scopes)?,
            serde_json::to_string(packages)?,
            expires_at,
            now()
        ],
        |r| r.get(0),
    )?;
    Ok((id, token))
}

/// Looks a presented token up (a read: the caller records its use with
/// [`touch_tokens`] later, in a batch). `None` for unknown, revoked,
/// expired tokens and disabled users (an organisation token is the
/// organisation's, not its maker's); malformed tokens never reach the
/// database.
pub fn authenticate(conn: &Conn, presented: &str) -> Result<Option<Caller>> {
    if !token::well_formed(presented) {
        return Ok(None);
    }
    let now = now();
    let row = conn.query_opt(
        "SELECT t.id, t.scopes, t.packages, u.id, u.login, u.email, u.created_at, o.id, o.slug, o.visibility
             FROM tokens t JOIN users u ON u.id = t.user_id LEFT JOIN orgs o ON o.id = t.org_id
             WHERE t.hash = ?1 AND t.revoked_at IS NULL AND (u.disabled = 0 OR t.org_id IS NOT NULL)
               AND (t.expires_at IS NULL OR t.expires_at > ?2)",
        params![token::hash(presented), now],
        |r| {
            let org = match r.get::<Option<i64>>(7)? {
                Some(id) => Some(OrgToken { id, slug: r.get(8)?, private: r.get::<String>(9)? == "private" }),
                None => None,
            };
            Ok((
                r.get::<i64>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                User { id: r.get(3)?, login: r.get(4)?, email: r.get(5)?, created_at: r.get(6)? },
                org,
            ))
        },
    )?;
    let Some((token_id, scopes, packages, user, org)) = row else {
        return Ok(None);
    };
    Ok(Some(Caller {
        user,
        token_id: Some(token_id),
        scopes: serde_json::from_str(&scopes)?,
        packages: serde_json::from_str(&packages)?,
        org,
    }))
}

/// Records when tokens were last used, in one transaction: (token id, time).
pub fn touch_tokens(conn: &Conn, used: &[(i64, String)]) -> Result<()> {
    let txn = conn.transaction()?;
    for (id, at) in used {
        txn.execute(
            "UPDATE tokens SET last_used_at = ?1 WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?1)",
            params![at, id],
        )?;
    }
    txn.commit()?;
    Ok(())
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
const OWNER_ROWS: &str = "SELECT o.package AS package, u.id AS id, u.login AS login, o.added_at AS added_at
         FROM owners o JOIN users u ON u.id = o.user_id
     UNION ALL
     SELECT x.package, g.id, 'org:' || g.slug, x.added_at FROM org_owners x JOIN orgs g ON g.id = x.org_id";

/// A package's owners in the order they were added: (id, login); an
/// organisation's id is its own, its login `org:{slug}`.
pub fn owner_rows(conn: &Conn, space: &Space, name: &str) -> Result<Vec<(i64, String)>> {
    conn.query(
        &format!("SELECT id, login FROM ({OWNER_ROWS}) AS w WHERE package = ?1 ORDER BY added_at, login"),
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
        &format!(
            "SELECT p.name FROM ({OWNER_ROWS}) AS w JOIN packages p ON p.key = w.package
             WHERE lower(w.login) = lower(?1) AND {} ORDER BY p.key",
            space.holds("w.package")
        ),
        params![login],
        |r| r.get(0),
    )
}

/// Every public package's owners' logins by canonical name.
pub fn all_owners(conn: &Conn) -> Result<std::collections::HashMap<String, Vec<String>>> {
    let rows = conn.query(
        &format!(
            "SELECT package, login FROM ({OWNER_ROWS}) AS w WHERE {} ORDER BY package, added_at, login",
            Space::Public.holds("package")
        ),
        params![],
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

/// The space's `n` most recently recorded live versions, newest first.
pub fn recent_versions(conn: &Conn, space: &Space, n: usize) -> Result<Vec<VersionRow>> {
    version_rows(conn, space, "v.deleted_at IS NULL ORDER BY v.seq DESC", n)
}

/// The space's `n` versions hard-deleted last.
pub fn recently_deleted(conn: &Conn, space: &Space, n: usize) -> Result<Vec<VersionRow>> {
    version_rows(conn, space, "v.deleted_at IS NOT NULL ORDER BY v.deleted_at DESC", n)
}

fn version_rows(conn: &Conn, space: &Space, filter_and_order: &str, n: usize) -> Result<Vec<VersionRow>> {
    let sql = format!(
        "SELECT v.package, p.name, v.version, v.vers, v.sha256, v.published_at FROM versions v JOIN packages p ON p.key = v.package
         WHERE {} AND {filter_and_order} LIMIT ?1",
        space.holds("v.package")
    );
    conn.query(&sql, params![n as i64], |r| {
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
            &format!(
                "SELECT COUNT(DISTINCT package), COUNT(*) FROM versions WHERE deleted_at IS NULL AND {}",
                space.holds("package")
            ),
            params![],
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
        &format!(
            "SELECT COUNT(*) FROM versions WHERE sha256 = ?1 AND deleted_at IS NULL AND {}",
            space.holds("package")
        ),
        params![sha256],
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

/// Effects a write group of the space could not make yet (a package's
/// derived files, its owners document), by key, with the error; retried
/// by that space's writer.
pub fn pending_effects(conn: &Conn, space: &Space) -> Result<Vec<(String, String)>> {
    let sql = format!("SELECT key, error FROM pending_effects WHERE {} ORDER BY key", space.holds("key"));
    let rows: Vec<(String, String)> = conn.query(&sql, params![], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.into_iter().filter_map(|(k, e)| Some((space.own(&k)?.to_string(), e))).collect())
}

pub fn add_pending_effect(conn: &Conn, space: &Space, key: &str, error: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO pending_effects (key, error, since) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET error = excluded.error",
        params![space.pending_key(key), error, now()],
    )?;
    Ok(())
}

pub fn clear_pending_effect(conn: &Conn, space: &Space, key: &str) -> Result<()> {
    conn.execute("DELETE FROM pending_effects WHERE key = ?1", params![space.pending_key(key)])?;
    Ok(())
}

pub fn clear_pending_effects(conn: &Conn, space: &Space) -> Result<()> {
    conn.execute(&format!("DELETE FROM pending_effects WHERE {}", space.holds("key")), params![])?;
    Ok(())
}

/// A token as its owner may see it: never the secret.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenMeta {
    pub id: i64,
    pub label: String,
    pub scopes: Vec<String>,
    pub packages: Vec<String>,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub created_at: String,
}

fn token_meta(r: &Row) -> Result<TokenMeta> {
    let json = |i: usize| -> Result<Vec<String>> {
        let text: String = r.get(i)?;
        Ok(serde_json::from_str(&text).unwrap_or_default())
    };
    Ok(TokenMeta {
        id: r.get(0)?,
        label: r.get(1)?,
        scopes: json(2)?,
        packages: json(3)?,
        expires_at: r.get(4)?,
        last_used_at: r.get(5)?,
        created_at: r.get(6)?,
    })
}

const TOKEN_COLUMNS: &str = "id, label, scopes, packages, expires_at, last_used_at, created_at";

/// The caller's live (not revoked) tokens; organisation tokens it made are
/// the organisation's.
pub fn list_tokens(conn: &Conn, user_id: i64) -> Result<Vec<TokenMeta>> {
    conn.query(
        &format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE user_id = ?1 AND org_id IS NULL AND revoked_at IS NULL ORDER BY id"
        ),
        params![user_id],
        token_meta,
    )
}

/// What a new token may do: the body of `POST /api/v1/tokens` and of an
/// organisation's `POST …/tokens`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenSpec {
    pub label: String,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub packages: Vec<String>,
    pub expires_at: Option<String>,
}

impl TokenSpec {
    /// A token can never do more than the token that creates it: its scopes
    /// and package patterns must be within the creator's. Normalises the
    /// expiry to the database's time format. `allowed`: the scopes this kind
    /// of token has ([`ALL_SCOPES`], or [`org::TOKEN_SCOPES`], whose `read`
    /// every member has without a scope).
    pub fn validate(&mut self, creator: &Caller, allowed: &[&str]) -> Result<(), String> {
        if self.label.trim().is_empty() || self.label.len() > 64 {
            return Err("`label` must be 1 to 64 characters".into());
        }
        if self.scopes.is_empty() {
            return Err(format!("`scopes` must name at least one of {}", allowed.join(", ")));
        }
        for scope in &self.scopes {
            if !allowed.contains(&scope.as_str()) {
                return Err(format!("unknown scope `{scope}`; scopes are {}", allowed.join(", ")));
            }
            if scope != "read" && !creator.has_scope(scope) {
                return Err(format!("this token lacks `{scope}`, so it cannot grant it"));
            }
        }
        for pattern in &self.packages {
            let stem = pattern.strip_suffix('*').unwrap_or(pattern);
            let ok = stem.is_empty() && pattern == "*"
                || stem.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    && !stem.is_empty();
            if !ok {
                return Err(format!("invalid package pattern `{pattern}`: a name, or a prefix and `*`"));
            }
        }
        if !creator.packages.is_empty() {
            let within = |p: &String| creator.packages.iter().any(|c| pattern_within(p, c));
            if self.packages.is_empty() || !self.packages.iter().all(within) {
                return Err("a token limited to some packages can only create tokens within those".into());
            }
        }
        if let Some(at) = &self.expires_at {
            let t = chrono::DateTime::parse_from_rfc3339(at)
                .map_err(|e| format!("`expiresAt` must be an RFC 3339 time: {e}"))?
                .with_timezone(&chrono::Utc);
            if t <= chrono::Utc::now() {
                return Err("`expiresAt` is in the past".into());
            }
            self.expires_at = Some(crate::index::line::pubtime(t));
        }
        Ok(())
    }
}

/// True when every name `inner` matches is matched by `outer`.
fn pattern_within(inner: &str, outer: &str) -> bool {
    let canon = crate::name::canonical;
    match (inner.strip_suffix('*'), outer.strip_suffix('*')) {
        (_, Some(o)) => canon(inner.trim_end_matches('*')).starts_with(&canon(o)),
        (None, None) => canon(inner) == canon(outer),
        (Some(_), None) => false,
    }
}

/// Stores a new token; returns its metadata and the key (shown once).
pub fn create_token(conn: &Conn, user_id: i64, spec: &TokenSpec) -> Result<(TokenMeta, String)> {
    create_token_for(conn, user_id, None, spec)
}

fn create_token_for(
    conn: &Conn,
    user_id: i64,
    org_id: Option<i64>,
    spec: &TokenSpec,
) -> Result<(TokenMeta, String)> {
    let scopes: Vec<&str> = spec.scopes.iter().map(String::as_str).collect();
    let (id, key) = insert_token(
        conn,
        user_id,
        org_id,
        &spec.label,
        &scopes,
        &spec.packages,
        spec.expires_at.as_deref(),
    )?;
    let meta = conn.query_row(
        &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1"),
        params![id],
        token_meta,
    )?;
    Ok((meta, key))
}

/// Revokes one of the user's tokens; false if there is no such live token.
pub fn revoke_token(conn: &Conn, user_id: i64, id: i64) -> Result<bool> {
    let n = conn.execute(
        "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2 AND user_id = ?3 AND org_id IS NULL AND revoked_at IS NULL",
        params![now(), id, user_id],
    )?;
    Ok(n == 1)
}

/// Everything tied to a user: profile, token metadata with hashes (never a
/// plaintext token), web sessions, owned packages with their versions,
/// organisation memberships, audit entries.
pub fn export(conn: &Conn, user_id: i64) -> Result<serde_json::Value> {
    use serde_json::json;
    let user = conn.query_row(
        "SELECT login, email, created_at, disabled, delete_after FROM users WHERE id = ?1",
        params![user_id],
        |r| {
            Ok(json!({ "login": r.get::<String>(0)?, "email": r.get::<Option<String>>(1)?,
                       "createdAt": r.get::<String>(2)?, "disabled": r.get::<bool>(3)?,
                       "deleteAfter": r.get::<Option<String>>(4)? }))
        },
    )?;
    let tokens = conn.query(
        &format!(
            "SELECT {TOKEN_COLUMNS}, hash, revoked_at FROM tokens WHERE user_id = ?1 AND org_id IS NULL ORDER BY id"
        ),
        params![user_id],
        |r| {
            let mut v = serde_json::to_value(token_meta(r)?)?;
            v["sha256"] = json!(r.get::<String>(7)?);
            v["revokedAt"] = json!(r.get::<Option<String>>(8)?);
            Ok(v)
        },
    )?;
    let owned: Vec<(String, String)> = conn.query(
        "SELECT p.name, p.key FROM owners o JOIN packages p ON p.key = o.package WHERE o.user_id = ?1 ORDER BY p.key",
        params![user_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut packages = Vec::new();
    for (name, key) in owned {
        let versions = conn.query(
            "SELECT vers, sha256, published_at, deleted_at FROM versions WHERE package = ?1 ORDER BY seq",
            params![key],
            |r| {
                Ok(json!({ "version": r.get::<String>(0)?, "sha256": r.get::<String>(1)?,
                           "publishedAt": r.get::<String>(2)?, "deletedAt": r.get::<Option<String>>(3)? }))
            },
        )?;
        packages.push(json!({ "name": name, "versions": versions }));
    }
    let audit = conn.query(
        "SELECT at, token_id, action, target, addr, outcome FROM audit WHERE user_id = ?1 ORDER BY id",
        params![user_id],
        |r| {
            Ok(json!({ "at": r.get::<String>(0)?, "tokenId": r.get::<Option<i64>>(1)?,
                       "action": r.get::<String>(2)?, "target": r.get::<String>(3)?,
                       "addr": r.get::<Option<String>>(4)?, "outcome": r.get::<String>(5)? }))
        },
    )?;
    let sessions = session::export(conn, user_id)?;
    let organisations: Vec<_> = org::memberships(conn, user_id)?
        .into_iter()
        .map(|(slug, role, since)| json!({ "org": slug, "role": role, "addedAt": since }))
        .collect();
    Ok(json!({ "user": user, "tokens": tokens, "sessions": sessions, "packages": packages,
               "organisations": organisations, "audit": audit }))
}

/// How long an account marked for erasure waits before it is purged.
pub const ERASURE_GRACE_DAYS: i64 = 30;

/// Revokes every token of the user at once (not the organisation tokens it
/// made: those are the organisations'), removes them from every package's
/// owners and every organisation, and marks the account for purge after
/// the grace period. Returns the purge time and the packages the user left.
pub fn mark_for_deletion(conn: &Conn, user_id: i64) -> Result<(String, Vec<String>)> {
    let now = now();
    let purge_after =
        crate::index::line::pubtime(chrono::Utc::now() + chrono::Duration::days(ERASURE_GRACE_DAYS));
    conn.execute(
        "UPDATE tokens SET revoked_at = ?1 WHERE user_id = ?2 AND org_id IS NULL AND revoked_at IS NULL",
        params![now, user_id],
    )?;
    org::leave_all(conn, user_id)?;
    session::end_all(conn, user_id)?;
    conn.execute(
        "UPDATE users SET disabled = 1, delete_after = ?1 WHERE id = ?2",
        params![purge_after, user_id],
    )?;
    let packages: Vec<String> = conn.query(
        "SELECT p.name FROM owners o JOIN packages p ON p.key = o.package WHERE o.user_id = ?1 ORDER BY p.key",
        params![user_id],
        |r| r.get(0),
    )?;
    conn.execute("DELETE FROM owners WHERE user_id = ?1", params![user_id])?;
    Ok((purge_after, packages))
}

/// Erases accounts whose grace period has passed: tokens go, the login and
/// email are replaced; the row stays so audit entries keep their subject id.
pub fn purge_accounts(conn: &Conn) -> Result<Vec<String>> {
    let due: Vec<(i64, String)> = conn.query(
        "SELECT id, login FROM users WHERE delete_after IS NOT NULL AND delete_after <= ?1",
        params![now()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    for (id, _) in &due {
        session::end_all(conn, *id)?;
        conn.execute("DELETE FROM tokens WHERE user_id = ?1 AND org_id IS NULL", params![id])?;
        conn.execute(
            "UPDATE users SET login = ?1, email = NULL, delete_after = NULL, disabled = 1 WHERE id = ?2",
            params![format!("deleted-{id}"), id],
        )?;
    }
    Ok(due.into_iter().map(|(_, login)| login).collect())
}

/// Disables a user: their tokens stop working at once. False if unknown.
pub fn disable_user(conn: &Conn, login: &str) -> Result<bool> {
    Ok(conn.execute("UPDATE users SET disabled = 1 WHERE lower(login) = lower(?1)", params![login])? == 1)
}

/// Issues a token with every scope to an existing, enabled user.
pub fn issue_first_token(conn: &Conn, login: &str) -> Result<String> {
    let user = find_user(conn, login)?.ok_or_else(|| anyhow::anyhow!("no user `{login}`"))?;
    Ok(issue_token(conn, user.id, "issued by an administrator", ALL_SCOPES, &[], None)?.1)
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
