//! Proposals and candidates (SPEC section 19): rows of the database, not
//! of the index. A proposal is one file of a package as its author would
//! have it, against one version; a package's candidate is its owners'
//! composition of proposals, merged on the newest version, until published.

use anyhow::Result;
use serde::Serialize;

use super::{in_space, now, params, Conn, Row, Space};

/// The statuses a proposal goes through: `open` until its owner rejects it,
/// its author withdraws it or a published candidate merges it.
pub const STATUSES: &[&str] = &["open", "rejected", "withdrawn", "merged"];

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Proposal {
    pub id: i64,
    /// The package's stored spelling.
    pub package: String,
    #[serde(skip)]
    pub author_id: i64,
    pub author: String,
    pub title: String,
    pub intent: String,
    pub base_version: String,
    pub path: String,
    pub content: String,
    pub status: String,
    pub merged_version: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A new proposal's fields, checked by the handler.
pub struct New<'a> {
    pub author_id: i64,
    pub title: &'a str,
    pub intent: &'a str,
    pub base_version: &'a str,
    pub path: &'a str,
    pub content: &'a str,
}

const COLUMNS: &str = "SELECT r.id, p.name, r.author_id, u.login, r.title, r.intent, r.base_version, r.path,
            r.content, r.status, r.merged_version, r.created_at, r.updated_at
     FROM proposals r JOIN packages p ON p.key = r.package JOIN users u ON u.id = r.author_id";

fn proposal(r: &Row) -> Result<Proposal> {
    Ok(Proposal {
        id: r.get(0)?,
        package: r.get(1)?,
        author_id: r.get(2)?,
        author: r.get(3)?,
        title: r.get(4)?,
        intent: r.get(5)?,
        base_version: r.get(6)?,
        path: r.get(7)?,
        content: r.get(8)?,
        status: r.get(9)?,
        merged_version: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
    })
}

/// Records an open proposal; returns its id.
pub fn create(conn: &Conn, space: &Space, package: &str, new: &New) -> Result<i64> {
    let at = now();
    conn.query_row(
        "INSERT INTO proposals (package, author_id, title, intent, base_version, path, content, status,
                                created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'open', ?8, ?8) RETURNING id",
        params![
            space.key(package),
            new.author_id,
            new.title,
            new.intent,
            new.base_version,
            new.path,
            new.content,
            at
        ],
        |r| r.get(0),
    )
}

/// One proposal of the package.
pub fn get(conn: &Conn, space: &Space, package: &str, id: i64) -> Result<Option<Proposal>> {
    conn.query_opt(
        &format!("{COLUMNS} WHERE r.package = ?1 AND r.id = ?2"),
        params![space.key(package), id],
        proposal,
    )
}

/// One proposal of any package of the space (`/api/v1/orgs/{org}/proposals/{id}`).
pub fn get_in(conn: &Conn, space: &Space, id: i64) -> Result<Option<Proposal>> {
    conn.query_opt(
        &format!("{COLUMNS} WHERE r.id = ?1 AND {}", in_space!("r.package", 2)),
        params![id, space.key_prefix()],
        proposal,
    )
}

/// The package's proposals, newest first; of one status when given.
pub fn list(conn: &Conn, space: &Space, package: &str, status: Option<&str>) -> Result<Vec<Proposal>> {
    conn.query(
        &format!("{COLUMNS} WHERE r.package = ?1 AND (CAST(?2 AS TEXT) IS NULL OR r.status = CAST(?2 AS TEXT)) ORDER BY r.id DESC"),
        params![space.key(package), status],
        proposal,
    )
}

/// Moves an open proposal to `status`; false when it was not open.
pub fn close(conn: &Conn, id: i64, status: &str, merged_version: Option<&str>) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE proposals SET status = ?1, merged_version = ?2, updated_at = ?3 WHERE id = ?4 AND status = 'open'",
        params![status, merged_version, now(), id],
    )? == 1)
}

/// The proposals a user wrote, for their export.
pub fn by_author(conn: &Conn, user_id: i64) -> Result<Vec<Proposal>> {
    conn.query(&format!("{COLUMNS} WHERE r.author_id = ?1 ORDER BY r.id"), params![user_id], proposal)
}

/// A package's active candidate as stored: JSON texts of its parts.
#[derive(Debug, Clone, Default)]
pub struct Candidate {
    pub base_version: String,
    pub proposal_ids: Vec<i64>,
    pub files: serde_json::Map<String, serde_json::Value>,
    pub conflicts: Vec<serde_json::Value>,
}

pub fn candidate(conn: &Conn, space: &Space, package: &str) -> Result<Option<Candidate>> {
    conn.query_opt(
        "SELECT base_version, proposal_ids, files, conflicts FROM candidates WHERE package = ?1",
        params![space.key(package)],
        |r| {
            Ok(Candidate {
                base_version: r.get(0)?,
                proposal_ids: serde_json::from_str(&r.get::<String>(1)?)?,
                files: serde_json::from_str(&r.get::<String>(2)?)?,
                conflicts: serde_json::from_str(&r.get::<String>(3)?)?,
            })
        },
    )
}

/// Writes the package's active candidate (made or recomposed).
pub fn put_candidate(conn: &Conn, space: &Space, package: &str, c: &Candidate) -> Result<()> {
    conn.execute(
        "INSERT INTO candidates (package, base_version, proposal_ids, files, conflicts, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (package) DO UPDATE SET base_version = excluded.base_version,
             proposal_ids = excluded.proposal_ids, files = excluded.files,
             conflicts = excluded.conflicts, updated_at = excluded.updated_at",
        params![
            space.key(package),
            c.base_version,
            serde_json::to_string(&c.proposal_ids)?,
            serde_json::to_string(&c.files)?,
            serde_json::to_string(&c.conflicts)?,
            now()
        ],
    )?;
    Ok(())
}

/// Ends the package's candidate once published: the next fetch makes a new one.
pub fn drop_candidate(conn: &Conn, space: &Space, package: &str) -> Result<()> {
    conn.execute("DELETE FROM candidates WHERE package = ?1", params![space.key(package)])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_and_candidates_on_both_engines() {
        super::super::testdb::each(|conn| {
            let token_user = |login| {
                super::super::add_user(conn, login, None).unwrap();
                super::super::find_user(conn, login).unwrap().unwrap()
            };
            let (ann, bob) = (token_user("ann"), token_user("bob"));
            let acme = Space::Org("acme".into());
            for space in [&Space::Public, &acme] {
                conn.execute(
                    "INSERT INTO packages (key, name, confusable, created_at) VALUES (?1, 'Pkg', ?2, ?3)",
                    params![space.key("Pkg"), space.confusable("Pkg"), now()],
                )
                .unwrap();
            }
            let new = |author_id, title| New {
                author_id,
                title,
                intent: "why",
                base_version: "1.0.0",
                path: "SKILL.md",
                content: "text\n",
            };
            let first = create(conn, &Space::Public, "pkg", &new(ann.id, "first")).unwrap();
            let second = create(conn, &Space::Public, "PKG", &new(bob.id, "second")).unwrap();
            let private = create(conn, &acme, "pkg", &new(bob.id, "private")).unwrap();
            let titles = |s: Option<&str>| -> Vec<String> {
                list(conn, &Space::Public, "pkg", s).unwrap().into_iter().map(|p| p.title).collect()
            };
            assert_eq!(titles(None), ["second", "first"], "newest first, the private one apart");
            assert!(close(conn, first, "withdrawn", None).unwrap());
            assert!(!close(conn, first, "rejected", None).unwrap(), "only an open proposal closes");
            assert_eq!(titles(Some("open")), ["second"]);
            assert_eq!(get(conn, &Space::Public, "pkg", second).unwrap().unwrap().author, "bob");
            assert!(get(conn, &Space::Public, "pkg", private).unwrap().is_none());
            assert!(get_in(conn, &Space::Public, private).unwrap().is_none());
            assert_eq!(get_in(conn, &acme, private).unwrap().unwrap().package, "Pkg");
            assert_eq!(by_author(conn, bob.id).unwrap().len(), 2);

            assert!(candidate(conn, &Space::Public, "pkg").unwrap().is_none());
            let mut c = Candidate { base_version: "1.0.0".into(), ..Candidate::default() };
            put_candidate(conn, &Space::Public, "pkg", &c).unwrap();
            c.proposal_ids = vec![second];
            c.files.insert("SKILL.md".into(), "merged\n".into());
            put_candidate(conn, &Space::Public, "pkg", &c).unwrap();
            let stored = candidate(conn, &Space::Public, "pkg").unwrap().unwrap();
            assert_eq!(
                (stored.proposal_ids, stored.files["SKILL.md"].as_str()),
                (vec![second], Some("merged\n"))
            );
            assert!(candidate(conn, &acme, "pkg").unwrap().is_none());
            drop_candidate(conn, &Space::Public, "pkg").unwrap();
            assert!(candidate(conn, &Space::Public, "pkg").unwrap().is_none());
        });
    }
}
