//! Organisations (SPEC section 15): members with a role, the packages an
//! organisation owns beside its users, and organisation tokens. Every
//! change here runs in the caller's transaction with its audit row.

use anyhow::Result;

use super::tokens::TOKEN_COLUMNS;
use super::{now, params, Conn, TokenMeta, TokenSpec};

/// A member's role; each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads and downloads (a private organisation's packages).
    Member,
    /// Also publishes, yanks, changes owners, manages members and tokens.
    Admin,
    /// Also changes the settings and deletes the organisation.
    Owner,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

/// The scopes of an organisation token: section 7's, without `tokens` (an
/// organisation's tokens are made by its admins), plus `read`.
pub const TOKEN_SCOPES: &[&str] = &["publish-new", "publish-update", "yank", "change-owners", "read"];

pub use crate::name::{owner_name, slug_of_owner};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub private: bool,
    pub created_at: String,
}

impl Org {
    pub fn visibility(&self) -> &'static str {
        visibility(self.private)
    }
}

/// `private` or `public`, as the table and the API spell them.
fn visibility(private: bool) -> &'static str {
    if private {
        "private"
    } else {
        "public"
    }
}

/// Slugs are what URLs carry (`/orgs/{slug}/`): 1 to 39 lowercase letters,
/// digits and inner `-`.
pub fn check_slug(slug: &str) -> Result<(), String> {
    let valid = !slug.is_empty()
        && slug.len() <= 39
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    match valid {
        true => Ok(()),
        false => Err(format!(
            "invalid organisation `{slug}`: use 1-39 lowercase letters, digits and `-` (not first or last)"
        )),
    }
}

/// `public` or `private`, as the API spells them.
pub fn parse_visibility(s: &str) -> Option<bool> {
    match s {
        "public" => Some(false),
        "private" => Some(true),
        _ => None,
    }
}

/// Creates an organisation with `creator` as its owner; `None` when the
/// slug is taken.
pub fn create(conn: &Conn, slug: &str, name: &str, private: bool, creator: i64) -> Result<Option<Org>> {
    let at = now();
    let id: Option<i64> = conn.query_opt(
        "INSERT INTO orgs (slug, name, visibility, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT DO NOTHING RETURNING id",
        params![slug, name, visibility(private), at],
        |r| r.get(0),
    )?;
    let Some(id) = id else { return Ok(None) };
    add_member(conn, id, creator, Role::Owner)?;
    Ok(Some(Org { id, slug: slug.into(), name: name.into(), private, created_at: at }))
}

const ORG_COLUMNS: &str = "id, slug, name, visibility, created_at";

fn org(r: &super::Row) -> Result<Org> {
    Ok(Org {
        id: r.get(0)?,
        slug: r.get(1)?,
        name: r.get(2)?,
        private: r.get::<String>(3)? == "private",
        created_at: r.get(4)?,
    })
}

pub fn find(conn: &Conn, slug: &str) -> Result<Option<Org>> {
    conn.query_opt(&format!("SELECT {ORG_COLUMNS} FROM orgs WHERE slug = ?1"), params![slug], org)
}

/// Every organisation, by slug.
pub fn all(conn: &Conn) -> Result<Vec<Org>> {
    conn.query(&format!("SELECT {ORG_COLUMNS} FROM orgs ORDER BY slug"), params![], org)
}

/// The user's role in the organisation, if a member.
pub fn role(conn: &Conn, org_id: i64, user_id: i64) -> Result<Option<Role>> {
    let role: Option<String> = conn.query_opt(
        "SELECT role FROM org_members WHERE org_id = ?1 AND user_id = ?2",
        params![org_id, user_id],
        |r| r.get(0),
    )?;
    Ok(role.as_deref().and_then(Role::parse))
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub login: String,
    pub role: &'static str,
    pub added_at: String,
}

/// Whether the user is a member (any role) of the private organisation `slug`.
pub fn member_of_private(conn: &Conn, slug: &str, user_id: i64) -> Result<bool> {
    Ok(conn
        .query_opt(
            "SELECT 1 FROM org_members m JOIN orgs o ON o.id = m.org_id
             WHERE o.slug = ?1 AND o.visibility = 'private' AND m.user_id = ?2",
            params![slug, user_id],
            |_| Ok(()),
        )?
        .is_some())
}

/// Members, owners first, then admins, then by login.
pub fn members(conn: &Conn, org_id: i64) -> Result<Vec<Member>> {
    let mut all = conn.query(
        "SELECT u.login, m.role, m.added_at FROM org_members m JOIN users u ON u.id = m.user_id
         WHERE m.org_id = ?1 ORDER BY u.login",
        params![org_id],
        |r| {
            let role = Role::parse(&r.get::<String>(1)?).unwrap_or(Role::Member);
            Ok((role, Member { login: r.get(0)?, role: role.as_str(), added_at: r.get(2)? }))
        },
    )?;
    all.sort_by_key(|m| std::cmp::Reverse(m.0));
    Ok(all.into_iter().map(|(_, m)| m).collect())
}

/// The login of the member whose account has the address `email`
/// (lowercase), if any.
pub fn member_with_email(conn: &Conn, org_id: i64, email: &str) -> Result<Option<String>> {
    conn.query_opt(
        "SELECT u.login FROM org_members m JOIN users u ON u.id = m.user_id
         WHERE m.org_id = ?1 AND lower(trim(u.email)) = ?2",
        params![org_id, email],
        |r| r.get(0),
    )
}

/// Adds a member; false if the user is one already.
pub fn add_member(conn: &Conn, org_id: i64, user_id: i64, role: Role) -> Result<bool> {
    let n = conn.execute(
        "INSERT INTO org_members (org_id, user_id, role, added_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        params![org_id, user_id, role.as_str(), now()],
    )?;
    Ok(n == 1)
}

/// Why a change of membership is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    NotAMember,
    LastOwner,
}

/// Sets a member's role (`None`: removes the member); an organisation
/// never loses its last owner.
pub fn set_role(conn: &Conn, org_id: i64, user_id: i64, role: Option<Role>) -> Result<Result<(), Refusal>> {
    let Some(before) = self::role(conn, org_id, user_id)? else {
        return Ok(Err(Refusal::NotAMember));
    };
    if before == Role::Owner && role != Some(Role::Owner) && owners(conn, org_id)? == 1 {
        return Ok(Err(Refusal::LastOwner));
    }
    match role {
        Some(role) => conn.execute(
            "UPDATE org_members SET role = ?1 WHERE org_id = ?2 AND user_id = ?3",
            params![role.as_str(), org_id, user_id],
        )?,
        None => conn.execute(
            "DELETE FROM org_members WHERE org_id = ?1 AND user_id = ?2",
            params![org_id, user_id],
        )?,
    };
    Ok(Ok(()))
}

fn owners(conn: &Conn, org_id: i64) -> Result<i64> {
    conn.query_row(
        "SELECT COUNT(*) FROM org_members WHERE org_id = ?1 AND role = 'owner'",
        params![org_id],
        |r| r.get(0),
    )
}

/// The organisations the user is the only owner of (an account that would
/// leave them ownerless is not deleted).
pub fn sole_owner_of(conn: &Conn, user_id: i64) -> Result<Vec<String>> {
    conn.query(
        "SELECT o.slug FROM org_members m JOIN orgs o ON o.id = m.org_id
         WHERE m.user_id = ?1 AND m.role = 'owner'
           AND (SELECT COUNT(*) FROM org_members x WHERE x.org_id = m.org_id AND x.role = 'owner') = 1
         ORDER BY o.slug",
        params![user_id],
        |r| r.get(0),
    )
}

/// Leaves every organisation (an account's erasure).
pub fn leave_all(conn: &Conn, user_id: i64) -> Result<()> {
    conn.execute("DELETE FROM org_members WHERE user_id = ?1", params![user_id])?;
    Ok(())
}

/// The user's memberships: (slug, role, since), for the export.
pub fn memberships(conn: &Conn, user_id: i64) -> Result<Vec<(String, String, String)>> {
    conn.query(
        "SELECT o.slug, m.role, m.added_at FROM org_members m JOIN orgs o ON o.id = m.org_id
         WHERE m.user_id = ?1 ORDER BY o.slug",
        params![user_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// The packages the organisation owns (canonical names' first spellings).
pub fn packages(conn: &Conn, org_id: i64) -> Result<Vec<String>> {
    conn.query(
        "SELECT p.name FROM org_owners o JOIN packages p ON p.key = o.package WHERE o.org_id = ?1 ORDER BY p.key",
        params![org_id],
        |r| r.get(0),
    )
}

/// Whether a version of a package the organisation owns was ever published
/// (its visibility is then fixed: history and logs are append-only).
pub fn has_published(conn: &Conn, org_id: i64) -> Result<bool> {
    Ok(conn
        .query_opt(
            "SELECT 1 FROM org_owners o JOIN versions v ON v.package = o.package WHERE o.org_id = ?1 LIMIT 1",
            params![org_id],
            |_| Ok(()),
        )?
        .is_some())
}

pub fn update(conn: &Conn, org_id: i64, name: &str, private: bool) -> Result<()> {
    conn.execute(
        "UPDATE orgs SET name = ?1, visibility = ?2 WHERE id = ?3",
        params![name, visibility(private), org_id],
    )?;
    Ok(())
}

/// Deletes an organisation that owns no package: its memberships and its
/// tokens go with it.
pub fn delete(conn: &Conn, org_id: i64) -> Result<()> {
    conn.execute("DELETE FROM org_members WHERE org_id = ?1", params![org_id])?;
    conn.execute("DELETE FROM tokens WHERE org_id = ?1", params![org_id])?;
    conn.execute("DELETE FROM orgs WHERE id = ?1", params![org_id])?;
    Ok(())
}

/// Whether the organisation owns the package.
pub fn owns(conn: &Conn, space: &super::Space, package: &str, org_id: i64) -> Result<bool> {
    Ok(conn
        .query_opt(
            "SELECT 1 FROM org_owners WHERE package = ?1 AND org_id = ?2",
            params![space.key(package), org_id],
            |_| Ok(()),
        )?
        .is_some())
}

/// Whether the user acts as an owner of the package through an
/// organisation that owns it (as its admin or owner).
pub fn acts_for(conn: &Conn, space: &super::Space, package: &str, user_id: i64) -> Result<bool> {
    Ok(conn
        .query_opt(
            "SELECT 1 FROM org_owners o JOIN org_members m ON m.org_id = o.org_id
             WHERE o.package = ?1 AND m.user_id = ?2 AND m.role IN ('admin', 'owner') LIMIT 1",
            params![space.key(package), user_id],
            |_| Ok(()),
        )?
        .is_some())
}

pub fn add_package(conn: &Conn, space: &super::Space, package: &str, org_id: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO org_owners (package, org_id, added_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        params![space.key(package), org_id, now()],
    )?;
    Ok(())
}

pub fn remove_package(conn: &Conn, space: &super::Space, package: &str, org_id: i64) -> Result<()> {
    conn.execute(
        "DELETE FROM org_owners WHERE package = ?1 AND org_id = ?2",
        params![space.key(package), org_id],
    )?;
    Ok(())
}

/// The organisation's live tokens.
pub fn tokens(conn: &Conn, org_id: i64) -> Result<Vec<TokenMeta>> {
    conn.query(
        &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE org_id = ?1 AND revoked_at IS NULL ORDER BY id"),
        params![org_id],
        super::token_meta,
    )
}

/// Stores an organisation token made by the admin `creator`; returns its
/// metadata and the key (shown once).
pub fn create_token(conn: &Conn, org_id: i64, creator: i64, spec: &TokenSpec) -> Result<(TokenMeta, String)> {
    super::tokens::create_token_for(conn, creator, Some(org_id), spec)
}

/// Revokes one of the organisation's tokens; false if there is none such.
pub fn revoke_token(conn: &Conn, org_id: i64, id: i64) -> Result<bool> {
    let n = conn.execute(
        "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2 AND org_id = ?3 AND revoked_at IS NULL",
        params![now(), id, org_id],
    )?;
    Ok(n == 1)
}
