//! A few connections to the state database for the server's request
//! handlers, used only on tokio's blocking pool: no database call runs on
//! an async worker thread, so a writer holding a transaction never stalls
//! the runtime. Connections are opened on demand and kept for reuse; one
//! that cannot write (SQLite opened on read-only storage, or a Postgres
//! connection that was lost) is not kept, so the next use reopens it.

use anyhow::Result;
use std::sync::Mutex;

use super::{Conn, Target};

pub struct Pool {
    target: Target,
    idle: Mutex<Vec<Conn>>,
}

/// Connections kept idle at most (two cores; a few waiting on the busy
/// timeout while the writer commits).
const KEEP: usize = 4;

/// Page cache per SQLite handler connection, KiB. Handlers look up a token
/// or a user by key, a few pages each; SQLite's default 2 MiB per
/// connection only filled the server's RSS as the database grew (the
/// soak's second and third minutes), and the OS caches the file anyway.
const CACHE_KIB: u32 = 256;

impl Pool {
    pub fn new(target: Target) -> Pool {
        Pool { target, idle: Mutex::default() }
    }

    /// Runs `f` on a connection. Call it from the blocking pool.
    pub fn run<T>(&self, f: impl FnOnce(&Conn) -> Result<T>) -> Result<T> {
        super::conn::may_block(|| self.run_here(f))
    }

    fn run_here<T>(&self, f: impl FnOnce(&Conn) -> Result<T>) -> Result<T> {
        let conn = match self.idle.lock().unwrap().pop() {
            Some(conn) => conn,
            None => {
                let conn = super::open(&self.target)?;
                if let Some(sqlite) = conn.sqlite() {
                    sqlite.execute_batch(&format!("PRAGMA cache_size = -{CACHE_KIB}"))?;
                }
                conn
            }
        };
        let out = f(&conn);
        let mut idle = self.idle.lock().unwrap();
        if conn.writable() && idle.len() < KEEP {
            idle.push(conn);
        }
        out
    }
}
