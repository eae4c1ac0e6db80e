//! The db tests' engines: each test body runs once on SQLite (a fresh
//! `state.db` in a temporary directory) and once on Postgres (a fresh
//! database in the test process's own cluster, tests/testsuite/support/pg.rs).

use super::{Conn, Target};

#[path = "../../tests/testsuite/support/pg.rs"]
pub(crate) mod pg;

/// Runs `test` on a new database of each engine, with its target (to open
/// further connections).
pub(crate) fn each_target(test: impl Fn(&Target)) {
    let dir = tempfile::tempdir().unwrap();
    test(&Target::Sqlite(dir.path().join("state.db")));
    test(&Target::postgres(&pg::Postgres::shared().create_database()));
}

/// Runs `test` on a connection to a new database of each engine.
pub(crate) fn each(test: impl Fn(&Conn)) {
    each_target(|target| {
        let conn = super::open(target).unwrap_or_else(|e| panic!("opening {target:?}: {e:#}"));
        test(&conn)
    });
}
