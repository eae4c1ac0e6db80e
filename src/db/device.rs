//! The device authorization grant (RFC 8628) behind `cairn login --device`:
//! a device code the CLI polls with, a short user code a signed-in person
//! approves on the web, and a token made at the first poll after approval,
//! so no plaintext token is ever stored. Both codes are kept as SHA-256.

use anyhow::Result;
use base64::prelude::{Engine, BASE64_URL_SAFE_NO_PAD};
use rand::Rng;
use sha2::Digest;

use super::{params, Caller, Conn, TokenSpec};

/// How long a code can be approved and polled.
pub const LIFETIME_SECS: i64 = 600;
/// The polling interval a new code asks for.
pub const INTERVAL_SECS: i64 = 5;
/// The label of the tokens the flow makes.
pub const TOKEN_LABEL: &str = "device login";

/// Consonants only, without look-alikes: a code is read off one screen and
/// typed on another, and spells no word (RFC 8628 section 6.1).
const LETTERS: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

/// A new device login.
pub struct Started {
    pub device_code: String,
    pub user_code: String,
    /// Unix seconds.
    pub expires: i64,
}

fn hash(code: &str) -> String {
    crate::store::hex(&sha2::Sha256::digest(code.as_bytes()))
}

fn generate_user_code() -> String {
    let mut rng = rand::rngs::OsRng;
    let letters: String = (0..4).map(|_| LETTERS[rng.gen_range(0..LETTERS.len())] as char).collect();
    format!("{letters}-{:04}", rng.gen_range(0..10_000))
}

/// A user code as typed (any case, with or without the dash or spaces) in
/// its `ABCD-1234` form; `None` when it cannot be one.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let s: String =
        typed.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_uppercase();
    let (letters, digits) = s.split_at_checked(4)?;
    let ok = letters.bytes().all(|b| LETTERS.contains(&b))
        && digits.len() == 4
        && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| format!("{letters}-{digits}"))
}

/// Starts a device login for `scopes` (already checked to be known ones).
/// Codes long expired are deleted here.
pub fn start(conn: &Conn, scopes: &[String]) -> Result<Started> {
    let now = super::session::unix_now();
    conn.execute("DELETE FROM device_codes WHERE expires < ?1", params![now - LIFETIME_SECS])?;
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let device_code = BASE64_URL_SAFE_NO_PAD.encode(bytes);
    let expires = now + LIFETIME_SECS;
    // A user code has about 31 bits: a collision with a live one is rare
    // but possible, and the UNIQUE index catches it.
    for _ in 0..8 {
        let user_code = generate_user_code();
        let inserted = conn.execute(
            "INSERT INTO device_codes (device_hash, user_hash, scopes, expires, \"interval\", state)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending') ON CONFLICT (user_hash) DO NOTHING",
            params![
                hash(&device_code),
                hash(&user_code),
                serde_json::to_string(scopes)?,
                expires,
                INTERVAL_SECS
            ],
        )?;
        if inserted == 1 {
            return Ok(Started { device_code, user_code, expires });
        }
    }
    anyhow::bail!("no free user code after 8 tries")
}

/// What answering a user code did.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// Approved or denied as asked; the scopes asked for.
    Done(Vec<String>),
    Unknown,
    Expired,
    /// Approved or denied before.
    Answered,
    /// The approver may not grant what was asked.
    Refused(String),
}

/// Approves (for `approver`'s user, within its rights: the rule of
/// [`TokenSpec::validate`]) or denies a pending user code.
pub fn answer(conn: &Conn, user_code: &str, approver: &Caller, approve: bool) -> Result<Answer> {
    let Some(code) = normalize_user_code(user_code) else {
        return Ok(Answer::Unknown);
    };
    let row = conn.query_opt(
        "SELECT id, scopes, expires, state FROM device_codes WHERE user_hash = ?1",
        params![hash(&code)],
        |r| Ok((r.get::<i64>(0)?, r.get::<String>(1)?, r.get::<i64>(2)?, r.get::<String>(3)?)),
    )?;
    let Some((id, scopes, expires, state)) = row else {
        return Ok(Answer::Unknown);
    };
    if expires <= super::session::unix_now() {
        return Ok(Answer::Expired);
    }
    if state != "pending" {
        return Ok(Answer::Answered);
    }
    let scopes: Vec<String> = serde_json::from_str(&scopes)?;
    let mut spec = TokenSpec {
        label: TOKEN_LABEL.into(),
        scopes: scopes.clone(),
        packages: approver.packages.clone(),
        expires_at: None,
    };
    if let (true, Err(why)) = (approve, spec.validate(approver, super::ALL_SCOPES)) {
        return Ok(Answer::Refused(why));
    }
    let (state, packages) = match approve {
        true => ("approved", Some(serde_json::to_string(&spec.packages)?)),
        false => ("denied", None),
    };
    let n = conn.execute(
        "UPDATE device_codes SET state = ?1, user_id = ?2, packages = ?3 WHERE id = ?4 AND state = 'pending'",
        params![state, approver.user.id, packages, id],
    )?;
    Ok(if n == 1 { Answer::Done(scopes) } else { Answer::Answered })
}

/// What a poll with a device code gets (RFC 8628 section 3.5).
#[derive(Debug, PartialEq)]
pub enum Poll {
    /// The token, made now, shown this once.
    Token(String),
    Pending,
    SlowDown,
    Expired,
    Denied,
    Unknown,
    /// The token went out at an earlier poll.
    Delivered,
}

/// One poll. Polls closer together than the code's interval get
/// `SlowDown` and add 5 seconds to it; the first poll after approval makes
/// the token and marks the code delivered, in one transaction.
pub fn poll(conn: &Conn, device_code: &str) -> Result<Poll> {
    // Exclusive: two polls of one code cannot both see it approved.
    let txn = conn.transaction_exclusive()?;
    let row = txn.query_opt(
        "SELECT d.id, d.scopes, d.expires, d.\"interval\", d.polled, d.state, d.user_id, d.packages,
                    u.disabled
             FROM device_codes d LEFT JOIN users u ON u.id = d.user_id WHERE d.device_hash = ?1",
        params![hash(device_code)],
        |r| {
            Ok((
                r.get::<i64>(0)?,
                r.get::<String>(1)?,
                r.get::<i64>(2)?,
                r.get::<i64>(3)?,
                r.get::<Option<i64>>(4)?,
                r.get::<String>(5)?,
                r.get::<Option<i64>>(6)?,
                r.get::<Option<String>>(7)?,
                r.get::<Option<bool>>(8)?,
            ))
        },
    )?;
    let Some((id, scopes, expires, interval, polled, state, user_id, packages, disabled)) = row else {
        return Ok(Poll::Unknown);
    };
    if state == "delivered" {
        return Ok(Poll::Delivered);
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    if now_ms >= expires * 1000 {
        return Ok(Poll::Expired);
    }
    if polled.is_some_and(|p| now_ms - p < interval * 1000) {
        txn.execute(
            "UPDATE device_codes SET polled = ?1, \"interval\" = \"interval\" + ?2 WHERE id = ?3",
            params![now_ms, INTERVAL_SECS, id],
        )?;
        txn.commit()?;
        return Ok(Poll::SlowDown);
    }
    txn.execute("UPDATE device_codes SET polled = ?1 WHERE id = ?2", params![now_ms, id])?;
    let outcome = match (state.as_str(), user_id, packages) {
        // An approver disabled since cannot hand out a token.
        ("approved", Some(_), _) if disabled == Some(true) => Poll::Denied,
        ("approved", Some(user_id), Some(packages)) => {
            let scopes: Vec<String> = serde_json::from_str(&scopes)?;
            let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let packages: Vec<String> = serde_json::from_str(&packages)?;
            let (_, token) = super::issue_token(&txn, user_id, TOKEN_LABEL, &scopes, &packages, None)?;
            txn.execute("UPDATE device_codes SET state = 'delivered' WHERE id = ?1", params![id])?;
            Poll::Token(token)
        }
        ("denied", _, _) => Poll::Denied,
        _ => Poll::Pending,
    };
    txn.commit()?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_read_back_in_any_spelling() {
        for _ in 0..100 {
            let code = generate_user_code();
            assert_eq!(code.len(), 9);
            assert_eq!(normalize_user_code(&code).as_deref(), Some(code.as_str()));
            let typed = code.to_lowercase().replace('-', " ");
            assert_eq!(normalize_user_code(&typed).as_deref(), Some(code.as_str()));
        }
        assert_eq!(normalize_user_code("AEIO-1234"), None, "vowels are never in a code");
        assert_eq!(normalize_user_code("BCDF-123"), None);
        assert_eq!(normalize_user_code("BCDF-12345"), None);
        assert_eq!(normalize_user_code("ÄBCD-1234"), None);
    }

    #[test]
    fn approval_is_within_the_approvers_rights_and_delivers_once() {
        crate::db::testdb::each(approval_and_delivery);
    }

    fn approval_and_delivery(conn: &Conn) {
        let root = crate::db::add_user(conn, "ann", None).unwrap();
        let ann = crate::db::authenticate(conn, &root).unwrap().unwrap();
        let narrow = Caller { scopes: vec!["tokens".into(), "yank".into()], ..ann.clone() };

        let all: Vec<String> = crate::db::ALL_SCOPES.iter().map(|s| s.to_string()).collect();
        let s = start(conn, &all).unwrap();
        assert!(matches!(answer(conn, &s.user_code, &narrow, true).unwrap(), Answer::Refused(_)));
        assert_eq!(poll(conn, &s.device_code).unwrap(), Poll::Pending);
        assert_eq!(answer(conn, &s.user_code, &ann, true).unwrap(), Answer::Done(all));
        assert_eq!(answer(conn, &s.user_code, &ann, false).unwrap(), Answer::Answered);
        // Polled again at once: slow down, and the interval grows.
        assert_eq!(poll(conn, &s.device_code).unwrap(), Poll::SlowDown);
        conn.execute("UPDATE device_codes SET polled = polled - 10000", params![]).unwrap();
        let Poll::Token(token) = poll(conn, &s.device_code).unwrap() else { panic!("no token") };
        let caller = crate::db::authenticate(conn, &token).unwrap().unwrap();
        assert_eq!(caller.user.login, "ann");
        assert_eq!(poll(conn, &s.device_code).unwrap(), Poll::Delivered);
        assert_eq!(poll(conn, "nonsense").unwrap(), Poll::Unknown);
        assert_eq!(answer(conn, "BCDF-0000", &ann, true).unwrap(), Answer::Unknown);
    }
}
