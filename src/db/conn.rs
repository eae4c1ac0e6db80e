//! One connection to the state database, SQLite or Postgres, behind one
//! small API close to rusqlite's: `execute`, `query`, `query_row`,
//! `query_opt`, `execute_batch` and transactions. Every query is one SQL
//! text for both engines, written with `?N` placeholders (turned into
//! Postgres's `$N` here, once per statement) and the syntax both accept
//! (`ON CONFLICT`, `RETURNING`, `lower(x) = lower(?1)` for a
//! case-insensitive match). Values cross as [`Value`]: 64-bit integers
//! (BIGINT in Postgres), text and blobs (BYTEA), so callers read and bind
//! the same Rust types on both.
//!
//! Postgres goes through the `postgres` crate's synchronous client (over
//! TLS as the URL's `sslmode` says: [`super::tls`]). Its `Client` needs `&mut`; it sits in a `RefCell` so every caller keeps
//! passing `&Conn`. A `Conn` is used by one thread at a time (the writer's,
//! or a pooled one on the blocking pool), as a rusqlite connection was.

use anyhow::{anyhow, Context, Result};
use std::cell::RefCell;
use std::collections::HashMap;

pub use super::value::{FromValue, Param, Value};

/// One result row, read by column index.
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T> {
        let v = self.values.get(i).ok_or_else(|| anyhow!("no column {i}"))?;
        T::from_value(v).with_context(|| format!("reading column {i}"))
    }
}

/// Which engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

pub struct Conn {
    inner: Inner,
}

enum Inner {
    Sqlite(rusqlite::Connection),
    /// Boxed: a client with its runtime is a few hundred bytes.
    Postgres(Box<RefCell<Pg>>),
}

/// A Postgres client and its prepared statements by SQL text: a statement
/// is parsed once per connection, as rusqlite's statement cache does.
struct Pg {
    /// `None` only while it is dropped.
    client: Option<postgres::Client>,
    statements: HashMap<String, postgres::Statement>,
    /// Set when a call failed for want of the database (see
    /// [`pg_unavailable`]): the client notices a closed socket only while
    /// it polls, so its own `is_closed` may lag behind the error.
    lost: bool,
}

thread_local! {
    /// Set while a pool's caller runs on tokio's blocking pool (see [`may_block`]).
    static MAY_BLOCK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with this thread marked as one that may block (tokio's blocking
/// pool, where the pool's connections are used).
pub fn may_block<T>(f: impl FnOnce() -> T) -> T {
    let before = MAY_BLOCK.with(|b| b.replace(true));
    let out = f();
    MAY_BLOCK.with(|b| b.set(before));
    out
}

/// Runs a call of the Postgres client where it may block. The client drives
/// its own small runtime, which tokio refuses to enter from an async thread
/// (a server's start, or a handler that opens a connection): there, the
/// call runs on a thread of its own; elsewhere (the writer thread, the
/// blocking pool, the CLI) it runs here. SQLite calls simply block.
fn off_async<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if MAY_BLOCK.with(|b| b.get()) || tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| s.spawn(f).join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
}

impl Drop for Pg {
    /// Closing the client blocks on its runtime too.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            off_async(move || drop(client));
        }
    }
}

/// Connects to Postgres (where blocking is allowed, see [`off_async`]).
pub fn connect_postgres(
    config: &postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
) -> Result<postgres::Client, postgres::Error> {
    off_async(|| config.connect(tls))
}

/// Statements kept prepared per connection (the same bound as SQLite's cache).
const STATEMENTS: usize = 64;

/// Transaction-level advisory lock keys ("cairn" and a number): every
/// writer transaction on Postgres takes [`WRITER_LOCK`], as SQLite's
/// `BEGIN IMMEDIATE` takes the file's write lock; migrations take
/// [`MIGRATE_LOCK`] so servers starting at once migrate one at a time.
pub const WRITER_LOCK: i64 = 0x6361_6972_6e00_0001;
pub const MIGRATE_LOCK: i64 = 0x6361_6972_6e00_0002;
/// The statistics job's read-merge-write of fingerprints (jobs/stats.rs),
/// one server at a time, without waiting for the writer.
pub const STATS_LOCK: i64 = 0x6361_6972_6e00_0003;

impl Conn {
    pub fn from_sqlite(conn: rusqlite::Connection) -> Conn {
        conn.set_prepared_statement_cache_capacity(STATEMENTS);
        Conn { inner: Inner::Sqlite(conn) }
    }

    pub fn from_postgres(client: postgres::Client) -> Conn {
        Conn {
            inner: Inner::Postgres(Box::new(RefCell::new(Pg {
                client: Some(client),
                statements: HashMap::new(),
                lost: false,
            }))),
        }
    }

    /// A connection to nothing (an in-memory SQLite database), held while
    /// the real one is reopened.
    pub fn placeholder() -> Conn {
        Conn::from_sqlite(rusqlite::Connection::open_in_memory().expect("an in-memory database opens"))
    }

    pub fn engine(&self) -> Engine {
        match self.inner {
            Inner::Sqlite(_) => Engine::Sqlite,
            Inner::Postgres(_) => Engine::Postgres,
        }
    }

    /// The SQLite connection, for the engine's own settings (src/db only).
    pub(super) fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.inner {
            Inner::Sqlite(c) => Some(c),
            Inner::Postgres(_) => None,
        }
    }

    /// Whether this connection can write: false for SQLite opened read-only
    /// (read-only storage) and for a Postgres connection that was lost.
    pub fn writable(&self) -> bool {
        match &self.inner {
            Inner::Sqlite(c) => !c.is_readonly(rusqlite::DatabaseName::Main).unwrap_or(true),
            Inner::Postgres(pg) => {
                let pg = pg.borrow();
                !pg.lost && !pg.client().is_closed()
            }
        }
    }

    /// Runs a statement; returns the rows it changed.
    pub fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<usize> {
        let values: Vec<Value> = params.iter().map(|p| p.value()).collect();
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(values.iter()))?)
            }
            Inner::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let stmt = pg.prepare(sql)?;
                let client = pg.client_mut();
                let changed = off_async(|| client.execute(&stmt, &pg_params(&values)));
                Ok(pg.seen(changed)? as usize)
            }
        }
    }

    /// Runs a query and maps every row.
    pub fn query<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let values: Vec<Value> = params.iter().map(|p| p.value()).collect();
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let n = stmt.column_count();
                let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let values = (0..n).map(|i| sqlite_value(r.get_ref(i)?)).collect::<Result<_>>()?;
                    out.push(f(&Row { values })?);
                }
                Ok(out)
            }
            Inner::Postgres(pg) => {
                // Rows are read whole before `f` runs, so `f` may use this
                // connection again.
                let rows = {
                    let mut pg = pg.borrow_mut();
                    let stmt = pg.prepare(sql)?;
                    let client = pg.client_mut();
                    let rows = off_async(|| client.query(&stmt, &pg_params(&values)));
                    pg.seen(rows)?
                };
                rows.iter().map(|r| f(&Row { values: pg_row(r)? })).collect()
            }
        }
    }

    /// The first row of a query, if there is one.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut f = Some(f);
        let mut first = None;
        // Every engine reads the rows of a one-row query anyway; the rest
        // (none, for the keyed lookups that call this) are skipped.
        self.query(sql, params, |r| {
            if let Some(f) = f.take() {
                first = Some(f(r)?);
            }
            Ok(())
        })?;
        Ok(first)
    }

    /// The first row of a query; an error when there is none.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        self.query_opt(sql, params, f)?.ok_or_else(|| anyhow!("the query returned no row: {sql}"))
    }

    /// Runs statements separated by `;`, without parameters.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Inner::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let client = pg.client_mut();
                let done = off_async(|| client.batch_execute(sql));
                Ok(pg.seen(done)?)
            }
        }
    }

    /// Begins a transaction for reads and writes that need no order among
    /// writers (rolled back when dropped without [`Txn::commit`]).
    pub fn transaction(&self) -> Result<Txn<'_>> {
        self.execute_batch("BEGIN")?;
        Ok(Txn { conn: self, open: true })
    }

    /// Begins a writer's transaction: one at a time across every process
    /// using the database, so what it reads stays true until it commits (a
    /// burned version is checked, then recorded). SQLite: `BEGIN IMMEDIATE`
    /// (the file's write lock, waited for up to the busy timeout).
    /// Postgres: a transaction-level advisory lock, released by the commit
    /// or rollback; the constraints (primary keys, unique names) hold
    /// whatever the lock. The writer lease of several servers (SPEC 13,
    /// a later step) is to be checked here, with its epoch.
    pub fn transaction_exclusive(&self) -> Result<Txn<'_>> {
        self.transaction_locked(WRITER_LOCK)
    }

    /// Begins a transaction that runs alone among those taking `lock`
    /// (Postgres: a transaction-level advisory lock; SQLite: `BEGIN
    /// IMMEDIATE`, its one write lock whatever the key).
    ///
    /// On Postgres a wait for the lock that ran out (`lock_timeout`, bounded
    /// below the lease) is tried again for up to [`LOCK_PATIENCE`]: the
    /// holder may be a stopped node, whose session Postgres ends within the
    /// same bound, and the next try then gets the lock.
    pub fn transaction_locked(&self, lock: i64) -> Result<Txn<'_>> {
        match self.engine() {
            Engine::Sqlite => self.execute_batch("BEGIN IMMEDIATE")?,
            Engine::Postgres => {
                let until = std::time::Instant::now() + LOCK_PATIENCE;
                loop {
                    match self.execute_batch(&format!("BEGIN; SELECT pg_advisory_xact_lock({lock})")) {
                        Ok(()) => break,
                        Err(e) if lock_wait_ran_out(&e) && std::time::Instant::now() < until => {
                            self.execute_batch("ROLLBACK")?;
                        }
                        Err(e) => {
                            let _ = self.execute_batch("ROLLBACK");
                            return Err(e);
                        }
                    }
                }
            }
        }
        Ok(Txn { conn: self, open: true })
    }
}

/// An open transaction; statements run on it through `Deref` to the
/// connection. Dropped without `commit`, it rolls back.
pub struct Txn<'a> {
    conn: &'a Conn,
    open: bool,
}

impl Txn<'_> {
    pub fn commit(mut self) -> Result<()> {
        // Postgres answers COMMIT of a failed transaction with a silent
        // rollback: the `SELECT 1` fails first in that case, and the drop
        // rolls back.
        match self.conn.engine() {
            Engine::Sqlite => self.conn.execute_batch("COMMIT")?,
            Engine::Postgres => self.conn.execute_batch("SELECT 1; COMMIT")?,
        }
        self.open = false;
        Ok(())
    }
}

impl std::ops::Deref for Txn<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl Pg {
    fn client(&self) -> &postgres::Client {
        self.client.as_ref().expect("a client until dropped")
    }

    fn client_mut(&mut self) -> &mut postgres::Client {
        self.client.as_mut().expect("a client until dropped")
    }

    /// Passes a call's result on, noting a failure that means the database
    /// is gone for this connection.
    fn seen<T>(&mut self, r: Result<T, postgres::Error>) -> Result<T, postgres::Error> {
        if let Err(e) = &r {
            self.lost |= pg_unavailable(e).is_some();
        }
        r
    }

    fn prepare(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let text = dollar_placeholders(sql);
        let client = self.client_mut();
        let stmt = off_async(|| client.prepare(&text));
        let stmt = self.seen(stmt)?;
        if self.statements.len() >= STATEMENTS {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }
}

/// `?N` placeholders as Postgres's `$N`, outside quoted text and names.
pub fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '?') if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('$');
                continue;
            }
            (None, _) => {}
        }
        out.push(c);
    }
    out
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn sqlite_value(v: rusqlite::types::ValueRef) -> Result<Value> {
    use rusqlite::types::ValueRef;
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Text(t) => Value::Text(String::from_utf8(t.to_vec())?),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        ValueRef::Real(r) => anyhow::bail!("a REAL column ({r}): cairn stores integers"),
    })
}

fn pg_params(values: &[Value]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn postgres::types::ToSql + Sync)).collect()
}

/// A Postgres row as values, by the column's type.
fn pg_row(r: &postgres::Row) -> Result<Vec<Value>> {
    use postgres::types::Type;
    (0..r.len())
        .map(|i| {
            let ty = r.columns()[i].type_();
            let v = match *ty {
                Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Int),
                Type::INT4 => r.try_get::<_, Option<i32>>(i)?.map(|n| Value::Int(n.into())),
                Type::INT2 => r.try_get::<_, Option<i16>>(i)?.map(|n| Value::Int(n.into())),
                Type::BOOL => r.try_get::<_, Option<bool>>(i)?.map(|b| Value::Int(b.into())),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                    r.try_get::<_, Option<String>>(i)?.map(Value::Text)
                }
                Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
                Type::VOID => None,
                _ => anyhow::bail!("column {i} has type {ty}, which cairn does not read"),
            };
            Ok(v.unwrap_or(Value::Null))
        })
        .collect()
}

impl postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::{IsNull, Type};
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::BOOL) => (*i != 0).to_sql(ty, out),
            (Value::Int(i), &Type::TEXT | &Type::VARCHAR) => i.to_string().as_str().to_sql(ty, out),
            (Value::Text(s), &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME | &Type::UNKNOWN) => {
                s.as_str().to_sql(&Type::TEXT, out)
            }
            (Value::Blob(b), &Type::BYTEA) => b.as_slice().to_sql(ty, out),
            (v, ty) => Err(format!("cannot bind {v:?} as {ty}").into()),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// How long [`Conn::transaction_locked`] goes on asking for its lock on
/// Postgres (as long as a write group waits for the writer lease).
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether `e` is Postgres's `lock_timeout` (SQL state 55P03).
pub fn lock_wait_ran_out(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<postgres::Error>().and_then(|p| p.code()).is_some_and(|c| c.code() == "55P03")
    })
}

/// Whether `e` means the database cannot take writes now, and why: SQLite's
/// full disk or read-only file, a lost or refused Postgres connection, its
/// full disk, read-only mode, or shutdown. Publish answers these with 503.
pub fn unavailable(e: &anyhow::Error) -> Option<&'static str> {
    for cause in e.chain() {
        if let Some(rusqlite::Error::SqliteFailure(f, _)) = cause.downcast_ref::<rusqlite::Error>() {
            use rusqlite::ErrorCode::*;
            match f.code {
                DiskFull => return Some("no space left"),
                ReadOnly => return Some("read-only storage"),
                SystemIoFailure | CannotOpen => return Some("I/O error"),
                _ => {}
            }
        }
        if let Some(why) = cause.downcast_ref::<postgres::Error>().and_then(pg_unavailable) {
            return Some(why);
        }
    }
    None
}

/// [`unavailable`] for one Postgres error.
fn pg_unavailable(pg: &postgres::Error) -> Option<&'static str> {
    if pg.is_closed() {
        return Some("the database connection was lost");
    }
    let Some(code) = pg.code() else {
        // No SQL state: unavailable when the connection's I/O failed.
        let io = std::error::Error::source(pg).is_some_and(|s| s.is::<std::io::Error>());
        return io.then_some("the database is unreachable");
    };
    let code = code.code();
    match code {
        // A wait cairn bounds (`db::session_bound`) ran out: the session, or
        // its transaction, outlived its time (a node that was stopped).
        "25P03" | "57014" | "55P03" => Some("a database wait ran out"),
        "53100" => Some("no space left"),
        "25006" => Some("read-only database"),
        _ if code.starts_with("08") || code.starts_with("57P") || code.starts_with("53") => {
            Some("the database is unavailable")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_quotes() {
        assert_eq!(
            dollar_placeholders("SELECT '?1', \"?2\" FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?1', \"?2\" FROM t WHERE a = $1 AND b = $12"
        );
        assert_eq!(dollar_placeholders("SELECT 'it''s ?1' WHERE x = ?2"), "SELECT 'it''s ?1' WHERE x = $2");
    }
}
