//! A few connections to the state database for the server's request
//! handlers, used only on tokio's blocking pool: no SQLite call runs on an
//! async worker thread, so a writer holding a transaction never stalls the
//! runtime. Connections are opened on demand and kept for reuse; a
//! read-only one (opened on read-only storage) is not kept, so the next use
//! reopens it writable once the storage takes writes again.

use anyhow::Result;
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::Mutex;

pub struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// Connections kept idle at most (two cores; a few waiting on the busy
/// timeout while the writer commits).
const KEEP: usize = 4;

/// Page cache per handler connection, KiB. Handlers look up a token or a
/// user by key, a few pages each; SQLite's default 2 MiB per connection
/// only filled the server's RSS as the database grew (the soak's second
/// and third minutes), and the OS caches the file anyway.
const CACHE_KIB: u32 = 256;

impl Pool {
    pub fn new(path: PathBuf) -> Pool {
        Pool { path, idle: Mutex::default() }
    }

    /// Runs `f` on a connection. Call it from the blocking pool.
    pub fn run<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = match self.idle.lock().unwrap().pop() {
            Some(conn) => conn,
            None => {
                let conn = super::open(&self.path)?;
                conn.execute_batch(&format!("PRAGMA cache_size = -{CACHE_KIB}"))?;
                conn
            }
        };
        let out = f(&conn);
        let mut idle = self.idle.lock().unwrap();
        if super::writable(&conn) && idle.len() < KEEP {
            idle.push(conn);
        }
        out
    }
}
