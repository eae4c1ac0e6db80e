//! Where the state database is and how it is opened: SQLite's `state.db`
//! by default, or Postgres with every session's waits bounded below the
//! writer lease.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

use super::{conn, migrate, Conn};

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

/// Opens the Postgres database of `url`, over TLS as its `sslmode` says
/// ([`super::tls`]), and migrates it. Its session's
/// lock, statement and idle-in-transaction waits end after `bound`, and
/// both ends probe the connection (TCP keepalive), so a session of a node
/// that stopped or vanished never holds a lock for long.
fn open_postgres(url: &str, bound: std::time::Duration) -> Result<Conn> {
    let what = Target::Postgres(url.to_string(), bound).describe();
    let (rest, tls) = super::tls::split(url).with_context(|| format!("the database URL {what}"))?;
    let mut config: postgres::Config =
        rest.parse().with_context(|| format!("parsing the database URL {what}"))?;
    config.ssl_mode(tls.mode());
    let connector = tls.connector().with_context(|| format!("TLS to {what}"))?;
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
    let client =
        conn::connect_postgres(&config, connector).with_context(|| format!("connecting to {what}"))?;
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
