//! The state database (SQLite): users, token hashes, package names and their
//! owners, burned versions, and the audit log. One writer connection lives in
//! the publish thread; request handlers open their own for reads.

pub mod token;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    login TEXT NOT NULL UNIQUE,
    email TEXT,
    created_at TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    hash TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    scopes TEXT NOT NULL,          -- JSON array; the core issues all scopes
    packages TEXT NOT NULL,        -- JSON array of name patterns; empty = all
    expires_at TEXT,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS packages (
    key TEXT PRIMARY KEY,          -- canonical name: lowercase, '_' as '-'
    name TEXT NOT NULL,            -- first published spelling
    confusable TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS packages_confusable ON packages(confusable);
CREATE TABLE IF NOT EXISTS owners (
    package TEXT NOT NULL REFERENCES packages(key),
    user_id INTEGER NOT NULL REFERENCES users(id),
    added_at TEXT NOT NULL,
    PRIMARY KEY (package, user_id)
);
CREATE TABLE IF NOT EXISTS versions (
    package TEXT NOT NULL,
    version TEXT NOT NULL,         -- without build metadata: the burned identity
    vers TEXT NOT NULL,            -- as published
    sha256 TEXT NOT NULL,
    published_at TEXT NOT NULL,
    publisher INTEGER REFERENCES users(id),
    deleted_at TEXT,
    PRIMARY KEY (package, version)
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    user_id INTEGER,
    token_id INTEGER,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    addr TEXT,
    outcome TEXT NOT NULL
);
"#;

pub const ALL_SCOPES: &[&str] = &["publish-new", "publish-update", "yank", "change-owners", "tokens"];

/// Opens (and migrates) the state database with durable settings.
pub fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
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

/// What a valid token authenticates.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub token_id: i64,
    pub scopes: Vec<String>,
    pub packages: Vec<String>,
}

impl Caller {
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

/// Adds a user and issues a first token with every scope; returns the token.
pub fn add_user(conn: &Connection, login: &str, email: Option<&str>) -> Result<String> {
    let valid = !login.is_empty()
        && login.len() <= 39
        && login.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    anyhow::ensure!(valid, "invalid login `{login}`: use 1-39 letters, digits, `-` or `_`");
    let exists: bool = conn
        .query_row("SELECT 1 FROM users WHERE login = ?1 COLLATE NOCASE", [login], |_| Ok(true))
        .optional()?
        .unwrap_or(false);
    anyhow::ensure!(!exists, "a user `{login}` exists already");
    conn.execute(
        "INSERT INTO users (login, email, created_at) VALUES (?1, ?2, ?3)",
        params![login, email, now()],
    )?;
    issue_token(conn, conn.last_insert_rowid(), "first token", ALL_SCOPES, &[], None)
}

/// Stores a new token's hash and returns the token (shown once).
pub fn issue_token(
    conn: &Connection,
    user_id: i64,
    label: &str,
    scopes: &[&str],
    packages: &[String],
    expires_at: Option<&str>,
) -> Result<String> {
    let token = token::generate();
    conn.execute(
        "INSERT INTO tokens (user_id, hash, label, scopes, packages, expires_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            user_id,
            token::hash(&token),
            label,
            serde_json::to_string(scopes)?,
            serde_json::to_string(packages)?,
            expires_at,
            now()
        ],
    )?;
    Ok(token)
}

/// Looks a presented token up. `None` for unknown, revoked, expired tokens
/// and disabled users; malformed tokens never reach the database.
pub fn authenticate(conn: &Connection, presented: &str) -> Result<Option<Caller>> {
    if !token::well_formed(presented) {
        return Ok(None);
    }
    let now = now();
    let row = conn
        .query_row(
            "SELECT t.id, t.scopes, t.packages, u.id, u.login, u.email, u.created_at
             FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE t.hash = ?1 AND t.revoked_at IS NULL AND u.disabled = 0
               AND (t.expires_at IS NULL OR t.expires_at > ?2)",
            params![token::hash(presented), now],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    User { id: r.get(3)?, login: r.get(4)?, email: r.get(5)?, created_at: r.get(6)? },
                ))
            },
        )
        .optional()?;
    let Some((token_id, scopes, packages, user)) = row else {
        return Ok(None);
    };
    // Minute resolution is enough for "last used", and it spares most
    // requests a database write.
    let stale = crate::index::line::pubtime(chrono::Utc::now() - chrono::Duration::seconds(60));
    conn.execute(
        "UPDATE tokens SET last_used_at = ?1 WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?3)",
        params![now, token_id, stale],
    )?;
    Ok(Some(Caller {
        user,
        token_id,
        scopes: serde_json::from_str(&scopes)?,
        packages: serde_json::from_str(&packages)?,
    }))
}

pub fn list_users(conn: &Connection) -> Result<Vec<(User, bool)>> {
    let mut stmt = conn.prepare("SELECT id, login, email, created_at, disabled FROM users ORDER BY login")?;
    let rows = stmt.query_map([], |r| {
        Ok((User { id: r.get(0)?, login: r.get(1)?, email: r.get(2)?, created_at: r.get(3)? }, r.get(4)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A package's stored identity: (first spelling, confusable key).
pub fn find_package(conn: &Connection, name: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT name FROM packages WHERE key = ?1", [crate::name::canonical(name)], |r| r.get(0))
        .optional()?)
}

/// An existing package whose name looks like `name` but is another package.
pub fn find_confusable(conn: &Connection, name: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT name FROM packages WHERE confusable = ?1 AND key != ?2",
            params![crate::name::confusable(name), crate::name::canonical(name)],
            |r| r.get(0),
        )
        .optional()?)
}

/// Registers a name with `user_id` as its first owner.
pub fn create_package(conn: &Connection, name: &str, user_id: i64) -> Result<()> {
    let key = crate::name::canonical(name);
    conn.execute(
        "INSERT INTO packages (key, name, confusable, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![key, name, crate::name::confusable(name), now()],
    )?;
    conn.execute(
        "INSERT INTO owners (package, user_id, added_at) VALUES (?1, ?2, ?3)",
        params![key, user_id, now()],
    )?;
    Ok(())
}

pub fn find_user(conn: &Connection, login: &str) -> Result<Option<User>> {
    Ok(conn
        .query_row(
            "SELECT id, login, email, created_at FROM users WHERE login = ?1 COLLATE NOCASE",
            [login],
            |r| Ok(User { id: r.get(0)?, login: r.get(1)?, email: r.get(2)?, created_at: r.get(3)? }),
        )
        .optional()?)
}

pub fn add_owner(conn: &Connection, name: &str, user_id: i64) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO owners (package, user_id, added_at) VALUES (?1, ?2, ?3)",
        params![crate::name::canonical(name), user_id, now()],
    )?;
    Ok(())
}

pub fn remove_owner(conn: &Connection, name: &str, user_id: i64) -> Result<()> {
    conn.execute(
        "DELETE FROM owners WHERE package = ?1 AND user_id = ?2",
        params![crate::name::canonical(name), user_id],
    )?;
    Ok(())
}

pub fn is_owner(conn: &Connection, name: &str, user_id: i64) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM owners WHERE package = ?1 AND user_id = ?2",
            params![crate::name::canonical(name), user_id],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

pub fn owners(conn: &Connection, name: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT u.login FROM owners o JOIN users u ON u.id = o.user_id WHERE o.package = ?1 ORDER BY o.added_at, u.login",
    )?;
    let rows = stmt.query_map([crate::name::canonical(name)], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// True when this (package, version-without-build) was ever published, even
/// if it was since deleted: version numbers are burned forever.
pub fn version_burned(conn: &Connection, name: &str, version_key: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM versions WHERE package = ?1 AND version = ?2",
            params![crate::name::canonical(name), version_key],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

pub fn record_version(
    conn: &Connection,
    name: &str,
    version: &semver::Version,
    sha256: &str,
    at: &str,
    by: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO versions (package, version, vers, sha256, published_at, publisher) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![crate::name::canonical(name), crate::name::version_key(version), version.to_string(), sha256, at, by],
    )?;
    Ok(())
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

/// The `n` most recently recorded live versions, newest first.
pub fn recent_versions(conn: &Connection, n: usize) -> Result<Vec<VersionRow>> {
    let mut stmt = conn.prepare(
        "SELECT v.package, p.name, v.version, v.vers, v.sha256, v.published_at FROM versions v JOIN packages p ON p.key = v.package
         WHERE v.deleted_at IS NULL ORDER BY v.rowid DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([n as i64], |r| {
        Ok(VersionRow {
            key: r.get(0)?,
            name: r.get(1)?,
            version_key: r.get(2)?,
            vers: r.get(3)?,
            sha256: r.get(4)?,
            published_at: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// (packages with a live version, live versions).
pub fn counts(conn: &Connection) -> Result<(i64, i64)> {
    Ok(conn.query_row(
        "SELECT COUNT(DISTINCT package), COUNT(*) FROM versions WHERE deleted_at IS NULL",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// Forgets a version recorded by a batch whose index commit never happened
/// (it was never acknowledged, so its number is not burned).
pub fn forget_version(conn: &Connection, package_key: &str, version_key: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM versions WHERE package = ?1 AND version = ?2",
        params![package_key, version_key],
    )?;
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

pub fn audit(conn: &Connection, e: &AuditEntry) -> Result<()> {
    conn.execute(
        "INSERT INTO audit (at, user_id, token_id, action, target, addr, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![now(), e.user_id, e.token_id, e.action, e.target, e.addr, e.outcome],
    )?;
    Ok(())
}
