//! The tokens table: issuing (a token's secret is shown once, its SHA-256
//! kept), authenticating a presented token, listing, scoping and revoking.

use anyhow::Result;

use super::{find_user, now, params, token, Caller, Conn, OrgToken, Row, User, ALL_SCOPES};

/// Stores a new token's hash and returns its id and the token (shown once).
pub fn issue_token(
    conn: &Conn,
    user_id: i64,
    label: &str,
    scopes: &[&str],
    packages: &[String],
    expires_at: Option<&str>,
) -> Result<(i64, String)> {
    let row = NewToken { user_id, org_id: None, label, scopes, packages, expires_at, provenance: None };
    insert_token(conn, &row)
}

/// A token row to insert: a user's, an organisation's (`org_id`), or a
/// trusted-publishing one (`provenance`, JSON).
#[derive(Clone, Copy)]
pub(super) struct NewToken<'a> {
    pub user_id: i64,
    pub org_id: Option<i64>,
    pub label: &'a str,
    pub scopes: &'a [&'a str],
    pub packages: &'a [String],
    pub expires_at: Option<&'a str>,
    pub provenance: Option<&'a str>,
}

/// The one insert of a token row; returns its id and the token (shown once).
pub(super) fn insert_token(conn: &Conn, t: &NewToken) -> Result<(i64, String)> {
    let NewToken { user_id, org_id, label, scopes, packages, expires_at, provenance } = *t;
    let token = token::generate();
    let id = conn.query_row(
        "INSERT INTO tokens (user_id, org_id, hash, label, scopes, packages, expires_at, created_at, provenance)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
        params![
            user_id,
            org_id,
            token::hash(&token),
            label,
            serde_json::to_string(scopes)?,
            serde_json::to_string(packages)?,
            expires_at,
            now(),
            provenance
        ],
        |r| r.get(0),
    )?;
    Ok((id, token))
}

/// Looks a presented token up (a read: the caller records its use with
/// [`touch_tokens`] later, in a batch). `None` for unknown, revoked,
/// expired tokens and disabled users (an organisation token is the
/// organisation's, not its maker's); malformed tokens never reach the
/// database.
pub fn authenticate(conn: &Conn, presented: &str) -> Result<Option<Caller>> {
    if !token::well_formed(presented) {
        return Ok(None);
    }
    let now = now();
    let row = conn.query_opt(
        "SELECT t.id, t.scopes, t.packages, u.id, u.login, u.email, u.created_at, o.id, o.slug, o.visibility,
                t.provenance
             FROM tokens t JOIN users u ON u.id = t.user_id LEFT JOIN orgs o ON o.id = t.org_id
             WHERE t.hash = ?1 AND t.revoked_at IS NULL AND (u.disabled = 0 OR t.org_id IS NOT NULL)
               AND (t.expires_at IS NULL OR t.expires_at > ?2)",
        params![token::hash(presented), now],
        |r| {
            let org = match r.get::<Option<i64>>(7)? {
                Some(id) => Some(OrgToken { id, slug: r.get(8)?, private: r.get::<String>(9)? == "private" }),
                None => None,
            };
            Ok((
                r.get::<i64>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                User { id: r.get(3)?, login: r.get(4)?, email: r.get(5)?, created_at: r.get(6)? },
                org,
                r.get::<Option<String>>(10)?,
            ))
        },
    )?;
    let Some((token_id, scopes, packages, user, org, provenance)) = row else {
        return Ok(None);
    };
    Ok(Some(Caller {
        user,
        token_id: Some(token_id),
        scopes: serde_json::from_str(&scopes)?,
        packages: serde_json::from_str(&packages)?,
        org,
        provenance: provenance.map(|p| serde_json::from_str(&p)).transpose()?,
    }))
}

/// Records when tokens were last used, in one transaction: (token id, time).
pub fn touch_tokens(conn: &Conn, used: &[(i64, String)]) -> Result<()> {
    let txn = conn.transaction()?;
    for (id, at) in used {
        txn.execute(
            "UPDATE tokens SET last_used_at = ?1 WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?1)",
            params![at, id],
        )?;
    }
    txn.commit()?;
    Ok(())
}

/// A token as its owner may see it: never the secret.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenMeta {
    pub id: i64,
    pub label: String,
    pub scopes: Vec<String>,
    pub packages: Vec<String>,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub created_at: String,
}

pub(super) fn token_meta(r: &Row) -> Result<TokenMeta> {
    let json = |i: usize| -> Result<Vec<String>> {
        let text: String = r.get(i)?;
        Ok(serde_json::from_str(&text).unwrap_or_default())
    };
    Ok(TokenMeta {
        id: r.get(0)?,
        label: r.get(1)?,
        scopes: json(2)?,
        packages: json(3)?,
        expires_at: r.get(4)?,
        last_used_at: r.get(5)?,
        created_at: r.get(6)?,
    })
}

pub(super) const TOKEN_COLUMNS: &str = "id, label, scopes, packages, expires_at, last_used_at, created_at";

/// The caller's live (not revoked) tokens; organisation tokens it made are
/// the organisation's.
pub fn list_tokens(conn: &Conn, user_id: i64) -> Result<Vec<TokenMeta>> {
    conn.query(
        &format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE user_id = ?1 AND org_id IS NULL AND revoked_at IS NULL ORDER BY id"
        ),
        params![user_id],
        token_meta,
    )
}

/// What a new token may do: the body of `POST /api/v1/tokens` and of an
/// organisation's `POST …/tokens`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenSpec {
    pub label: String,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub packages: Vec<String>,
    pub expires_at: Option<String>,
}

impl TokenSpec {
    /// A token can never do more than the token that creates it: its scopes
    /// and package patterns must be within the creator's. Normalises the
    /// expiry to the database's time format. `allowed`: the scopes this kind
    /// of token has ([`ALL_SCOPES`], or [`org::TOKEN_SCOPES`], whose `read`
    /// every member has without a scope).
    pub fn validate(&mut self, creator: &Caller, allowed: &[&str]) -> Result<(), String> {
        if self.label.trim().is_empty() || self.label.len() > 64 {
            return Err("`label` must be 1 to 64 characters".into());
        }
        if self.scopes.is_empty() {
            return Err(format!("`scopes` must name at least one of {}", allowed.join(", ")));
        }
        for scope in &self.scopes {
            if !allowed.contains(&scope.as_str()) {
                return Err(format!("unknown scope `{scope}`; scopes are {}", allowed.join(", ")));
            }
            if scope != "read" && !creator.has_scope(scope) {
                return Err(format!("this token lacks `{scope}`, so it cannot grant it"));
            }
        }
        for pattern in &self.packages {
            let stem = pattern.strip_suffix('*').unwrap_or(pattern);
            let ok = stem.is_empty() && pattern == "*"
                || stem.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    && !stem.is_empty();
            if !ok {
                return Err(format!("invalid package pattern `{pattern}`: a name, or a prefix and `*`"));
            }
        }
        if !creator.packages.is_empty() {
            let within = |p: &String| creator.packages.iter().any(|c| pattern_within(p, c));
            if self.packages.is_empty() || !self.packages.iter().all(within) {
                return Err("a token limited to some packages can only create tokens within those".into());
            }
        }
        if let Some(at) = &self.expires_at {
            let t = chrono::DateTime::parse_from_rfc3339(at)
                .map_err(|e| format!("`expiresAt` must be an RFC 3339 time: {e}"))?
                .with_timezone(&chrono::Utc);
            if t <= chrono::Utc::now() {
                return Err("`expiresAt` is in the past".into());
            }
            self.expires_at = Some(crate::index::line::pubtime(t));
        }
        Ok(())
    }
}

/// True when every name `inner` matches is matched by `outer`.
fn pattern_within(inner: &str, outer: &str) -> bool {
    let canon = crate::name::canonical;
    match (inner.strip_suffix('*'), outer.strip_suffix('*')) {
        (_, Some(o)) => canon(inner.trim_end_matches('*')).starts_with(&canon(o)),
        (None, None) => canon(inner) == canon(outer),
        (Some(_), None) => false,
    }
}

/// Stores a new token; returns its metadata and the key (shown once).
pub fn create_token(conn: &Conn, user_id: i64, spec: &TokenSpec) -> Result<(TokenMeta, String)> {
    create_token_for(conn, user_id, None, spec)
}

pub(super) fn create_token_for(
    conn: &Conn,
    user_id: i64,
    org_id: Option<i64>,
    spec: &TokenSpec,
) -> Result<(TokenMeta, String)> {
    let scopes: Vec<&str> = spec.scopes.iter().map(String::as_str).collect();
    let row = NewToken {
        user_id,
        org_id,
        label: &spec.label,
        scopes: &scopes,
        packages: &spec.packages,
        expires_at: spec.expires_at.as_deref(),
        provenance: None,
    };
    let (id, key) = insert_token(conn, &row)?;
    let meta = conn.query_row(
        &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1"),
        params![id],
        token_meta,
    )?;
    Ok((meta, key))
}

/// Revokes one of the user's tokens; false if there is no such live token.
pub fn revoke_token(conn: &Conn, user_id: i64, id: i64) -> Result<bool> {
    let n = conn.execute(
        "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2 AND user_id = ?3 AND org_id IS NULL AND revoked_at IS NULL",
        params![now(), id, user_id],
    )?;
    Ok(n == 1)
}

/// Issues a token with every scope to an existing, enabled user.
pub fn issue_first_token(conn: &Conn, login: &str) -> Result<String> {
    let user = find_user(conn, login)?.ok_or_else(|| anyhow::anyhow!("no user `{login}`"))?;
    Ok(issue_token(conn, user.id, "issued by an administrator", ALL_SCOPES, &[], None)?.1)
}
