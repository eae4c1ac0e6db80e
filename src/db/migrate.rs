//! Versioned migrations, one numbered list per engine (the SQL files in
//! `migrations/{sqlite,postgres}/`), recorded in
//! `schema_migrations(version, applied_at)` and applied in order, all in
//! one transaction, when a connection opens. On Postgres the transaction
//! takes an advisory lock first, so servers starting at once migrate one at
//! a time and the others then find the work done.
//!
//! A SQLite database made before this list (its tables created with
//! `IF NOT EXISTS` at every open) has no `schema_migrations`: version 1 is
//! that schema, so applying it changes nothing there, and a database older
//! still gets the `users.password_hash` column it lacks.

use anyhow::{Context, Result};

use super::conn::{Conn, Engine, MIGRATE_LOCK};

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const SQLITE: &[Migration] = &[
    Migration { version: 1, name: "baseline", sql: include_str!("migrations/sqlite/0001_baseline.sql") },
    Migration {
        version: 2,
        name: "portable order",
        sql: include_str!("migrations/sqlite/0002_portable_order.sql"),
    },
    Migration {
        version: 3,
        name: "events and the writer lease",
        sql: include_str!("migrations/sqlite/0003_events_and_lease.sql"),
    },
    Migration {
        version: 4,
        name: "organisations",
        sql: include_str!("migrations/sqlite/0004_organisations.sql"),
    },
    Migration {
        version: 5,
        name: "webhook claims",
        sql: include_str!("migrations/sqlite/0005_webhook_claims.sql"),
    },
    Migration {
        version: 6,
        name: "registry leases",
        sql: include_str!("migrations/sqlite/0006_registry_leases.sql"),
    },
    Migration { version: 7, name: "upstreams", sql: include_str!("migrations/sqlite/0007_upstreams.sql") },
    Migration { version: 8, name: "identity", sql: include_str!("migrations/sqlite/0008_identity.sql") },
    Migration {
        version: 9,
        name: "version sizes",
        sql: include_str!("migrations/sqlite/0009_version_sizes.sql"),
    },
    Migration { version: 10, name: "proposals", sql: include_str!("migrations/sqlite/0010_proposals.sql") },
    Migration {
        version: 11,
        name: "dependencies",
        sql: include_str!("migrations/sqlite/0011_dependencies.sql"),
    },
    Migration {
        version: 12,
        name: "notifications",
        sql: include_str!("migrations/sqlite/0012_notifications.sql"),
    },
    Migration {
        version: 13,
        name: "invitations",
        sql: include_str!("migrations/sqlite/0013_invitations.sql"),
    },
];

const POSTGRES: &[Migration] = &[
    Migration { version: 1, name: "baseline", sql: include_str!("migrations/postgres/0001_baseline.sql") },
    Migration {
        version: 2,
        name: "events and the writer lease",
        sql: include_str!("migrations/postgres/0002_events_and_lease.sql"),
    },
    Migration {
        version: 3,
        name: "organisations",
        sql: include_str!("migrations/postgres/0003_organisations.sql"),
    },
    Migration {
        version: 4,
        name: "webhook claims",
        sql: include_str!("migrations/postgres/0004_webhook_claims.sql"),
    },
    Migration {
        version: 5,
        name: "registry leases",
        sql: include_str!("migrations/postgres/0005_registry_leases.sql"),
    },
    Migration { version: 6, name: "upstreams", sql: include_str!("migrations/postgres/0006_upstreams.sql") },
    Migration { version: 7, name: "identity", sql: include_str!("migrations/postgres/0007_identity.sql") },
    Migration {
        version: 8,
        name: "version sizes",
        sql: include_str!("migrations/postgres/0008_version_sizes.sql"),
    },
    Migration { version: 9, name: "proposals", sql: include_str!("migrations/postgres/0009_proposals.sql") },
    Migration {
        version: 10,
        name: "dependencies",
        sql: include_str!("migrations/postgres/0010_dependencies.sql"),
    },
    Migration {
        version: 11,
        name: "notifications",
        sql: include_str!("migrations/postgres/0011_notifications.sql"),
    },
    Migration {
        version: 12,
        name: "invitations",
        sql: include_str!("migrations/postgres/0012_invitations.sql"),
    },
];

/// The public registry's live packages and versions (a private
/// organisation's keys start with `@`: `db::Space`), computed when a
/// counter is missing (a new database, or a tool wrote rows directly and
/// deleted the counters).
const COUNTERS: &str = "
INSERT INTO counters (name, value) SELECT 'versions', COUNT(*) FROM versions
    WHERE deleted_at IS NULL AND package NOT LIKE '@%' AND NOT EXISTS (SELECT 1 FROM counters WHERE name = 'versions')
    ON CONFLICT DO NOTHING;
INSERT INTO counters (name, value) SELECT 'packages', COUNT(DISTINCT package) FROM versions
    WHERE deleted_at IS NULL AND package NOT LIKE '@%' AND NOT EXISTS (SELECT 1 FROM counters WHERE name = 'packages')
    ON CONFLICT DO NOTHING;
";

/// The newest schema version this build knows for the engine.
pub fn latest(engine: Engine) -> i64 {
    list(engine).last().map_or(0, |m| m.version)
}

/// How many migrations this build knows for the engine (the numbers may
/// have gaps: two branches' migrations merge in either order).
#[cfg(test)]
pub(crate) fn known(engine: Engine) -> i64 {
    list(engine).len() as i64
}

fn list(engine: Engine) -> &'static [Migration] {
    match engine {
        Engine::Sqlite => SQLITE,
        Engine::Postgres => POSTGRES,
    }
}

/// The schema version a database is at (0: none recorded).
pub fn version(conn: &Conn) -> Result<i64> {
    conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", crate::params![], |r| r.get(0))
}

/// Brings the database to the newest version, in one transaction.
pub fn run(conn: &Conn) -> Result<()> {
    let engine = conn.engine();
    // SQLite: the write lock, so readers of an old schema wait. Postgres:
    // the migrators' own lock, not the writer's, so a connection opening
    // while a write group is open does not wait for it.
    let txn = match engine {
        Engine::Sqlite => conn.transaction_exclusive()?,
        Engine::Postgres => {
            let txn = conn.transaction()?;
            txn.execute_batch(&format!("SELECT pg_advisory_xact_lock({MIGRATE_LOCK})"))?;
            txn
        }
    };
    txn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
    )?;
    let current = version(&txn)?;
    anyhow::ensure!(
        current <= latest(engine),
        "the state database is at schema version {current}, newer than this cairn knows ({}): run a newer cairn",
        latest(engine)
    );
    for m in list(engine).iter().filter(|m| m.version > current) {
        txn.execute_batch(m.sql).with_context(|| format!("migration {} ({})", m.version, m.name))?;
        if engine == Engine::Sqlite && m.version == 1 {
            add_password_column(&txn)?;
        }
        txn.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            crate::params![m.version, super::now()],
        )?;
        tracing::info!(version = m.version, name = m.name, "state database migrated");
    }
    txn.execute_batch(COUNTERS)?;
    txn.commit()
}

/// Adds `users.password_hash` to a SQLite database made before web accounts.
fn add_password_column(conn: &Conn) -> Result<()> {
    let has = conn
        .query_opt(
            "SELECT 1 FROM pragma_table_info('users') WHERE name = 'password_hash'",
            crate::params![],
            |_| Ok(()),
        )?
        .is_some();
    if !has {
        conn.execute_batch("ALTER TABLE users ADD COLUMN password_hash TEXT")?;
    }
    Ok(())
}
