//! Web accounts (SPEC section 12): a user's optional password, stored as an
//! argon2id PHC string only, and the users that open signup creates.
//! Hashing and verifying take tens of milliseconds of CPU: callers run them
//! on the blocking pool, never on an async thread.

use super::{params, Conn};
use anyhow::Result;
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use super::User;

/// The shortest password signup takes, in characters.
pub const MIN_PASSWORD: usize = 12;
/// The longest, so a body cannot make the hash work on megabytes.
pub const MAX_PASSWORD: usize = 1024;

/// Why a password cannot be used, if it cannot.
pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(format!("the password must be at least {MIN_PASSWORD} characters"));
    }
    if n > MAX_PASSWORD {
        return Err(format!("the password must be at most {MAX_PASSWORD} characters"));
    }
    Ok(())
}

/// The argon2id PHC string of a password, with argon2's default parameters
/// and a random salt.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    Ok(hash.to_string())
}

/// Whether `password` matches a stored PHC string (its own parameters are used).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A PHC string no password matches, verified when the login is unknown so
/// the answer takes as long as for a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&super::token::generate()).expect("argon2 hashes"))
}

/// Creates a user with a password (open signup); `None` when the login is
/// taken (case-insensitively), checked and inserted in one statement.
pub fn create(conn: &Conn, login: &str, email: &str, password_hash: &str) -> Result<Option<User>> {
    super::check_login(login).map_err(anyhow::Error::msg)?;
    let at = super::now();
    // On Postgres, a unique index on lower(login) stops a concurrent twin
    // that the NOT EXISTS did not see yet.
    let id: Option<i64> = conn.query_opt(
        "INSERT INTO users (login, email, created_at, password_hash)
         SELECT CAST(?1 AS TEXT), CAST(?2 AS TEXT), CAST(?3 AS TEXT), CAST(?4 AS TEXT)
         WHERE NOT EXISTS (SELECT 1 FROM users WHERE lower(login) = lower(?1))
         ON CONFLICT DO NOTHING RETURNING id",
        params![login, email, at, password_hash],
        |r| r.get(0),
    )?;
    Ok(id.map(|id| User { id, login: login.to_string(), email: Some(email.to_string()), created_at: at }))
}

/// An enabled user and their password hash (`None` when they have none).
pub fn find_with_password(conn: &Conn, login: &str) -> Result<Option<(User, Option<String>)>> {
    conn.query_opt(
        "SELECT id, login, email, created_at, password_hash FROM users
         WHERE lower(login) = lower(?1) AND disabled = 0",
        params![login],
        |r| {
            let user = User { id: r.get(0)?, login: r.get(1)?, email: r.get(2)?, created_at: r.get(3)? };
            Ok((user, r.get(4)?))
        },
    )
}

/// The addresses of those of `logins` who have one and take notifications
/// (organisations, disabled users and the opted-out are left out), as
/// (login, email).
pub fn notified(conn: &Conn, logins: &[String]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for login in logins {
        let row = conn.query_opt(
            "SELECT login, email FROM users WHERE lower(login) = lower(?1) AND email IS NOT NULL
                 AND notify = 1 AND disabled = 0",
            params![login],
            |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
        )?;
        out.extend(row);
    }
    Ok(out)
}

/// Whether a user takes notifications.
pub fn notify(conn: &Conn, user_id: i64) -> Result<bool> {
    conn.query_row("SELECT notify FROM users WHERE id = ?1", params![user_id], |r| Ok(r.get::<i64>(0)? != 0))
}

/// A user's opt-in (`true`) or opt-out of notifications.
pub fn set_notify(conn: &Conn, user_id: i64, on: bool) -> Result<()> {
    conn.execute("UPDATE users SET notify = ?1 WHERE id = ?2", params![on as i64, user_id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_phc_strings_that_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterx", &h));
        assert!(!verify_password("anything", decoy_hash()));
        assert!(!verify_password("anything", "not a phc string"));
    }

    #[test]
    fn an_old_database_gets_the_password_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, login TEXT NOT NULL UNIQUE, email TEXT,
             created_at TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0, delete_after TEXT);
             INSERT INTO users (login, created_at) VALUES ('old', '2024-01-01T00:00:00Z');",
        )
        .unwrap();
        drop(old);
        let conn = crate::db::open_sqlite(&path).unwrap();
        let (user, hash) = find_with_password(&conn, "old").unwrap().unwrap();
        assert_eq!((user.login.as_str(), hash), ("old", None));
        assert!(create(&conn, "OLD", "o@example.org", "x").unwrap().is_none(), "taken, case-insensitively");
        assert!(create(&conn, "new", "n@example.org", "x").unwrap().is_some());
    }

    #[test]
    fn signup_takes_a_login_once_whatever_its_case() {
        crate::db::testdb::each(|conn| {
            let ann = create(conn, "Ann", "a@example.org", "phc").unwrap().unwrap();
            assert!(create(conn, "ann", "b@example.org", "x").unwrap().is_none());
            assert!(crate::db::add_user(conn, "ANN", None).is_err());
            let (found, hash) = find_with_password(conn, "aNN").unwrap().unwrap();
            assert_eq!((found.id, found.login.as_str(), hash.as_deref()), (ann.id, "Ann", Some("phc")));
            assert!(crate::db::disable_user(conn, "ann").unwrap());
            assert!(find_with_password(conn, "Ann").unwrap().is_none(), "a disabled user signs in no more");
        });
    }
}
