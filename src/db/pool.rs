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

impl Pool {
    pub fn new(path: PathBuf) -> Pool {
        Pool { path, idle: Mutex::default() }
    }

    /// Runs `f` on a connection. Call it from the blocking pool.
    pub fn run<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = match self.idle.lock().unwrap().pop() {
            Some(conn) => conn,
            None => super::open(&self.path)?,
        };
        let out = f(&conn);
        let mut idle = self.idle.lock().unwrap();
        if super::writable(&conn) && idle.len() < KEEP {
            idle.push(conn);
        }
        out
    }
}
