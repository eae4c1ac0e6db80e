//! The event log of SPEC section 13 (`events`) and each webhook's delivery
//! cursor (`webhook_cursors`). Events are appended by the writer only, so
//! `id` grows with every change; webhooks and `GET /api/v1/events` read
//! them by id.
//!
//! The tables are migration 3 (SQLite) and 2 (Postgres, a BIGSERIAL id).
//!
//! Organisations (issue 17): an event carries no organisation today, so
//! every event is public. When private organisations land, an `org`
//! column (NULL: public) goes here; `after` for the public stream then
//! reads only `org IS NULL`, and each webhook only its own organisation's
//! rows (a private organisation's events reach its webhooks and nothing else).

use anyhow::Result;

use super::Conn;
use crate::params;

/// One event as it is stored and sent (SPEC section 13's JSON, in this
/// key order).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: i64,
    pub event: String,
    pub name: String,
    pub version: Option<String>,
    pub index_commit: Option<String>,
    pub at: String,
}

/// An event before it has an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event: &'static str,
    pub name: String,
    pub version: Option<String>,
    pub index_commit: Option<String>,
    pub at: String,
}

impl NewEvent {
    fn dedup(&self) -> Option<String> {
        let commit = self.index_commit.as_deref()?;
        Some(format!("{commit} {} {} {}", self.event, self.name, self.version.as_deref().unwrap_or("-")))
    }
}

/// Appends an event; one of an index commit that is already there is
/// skipped. Returns whether a row was added.
pub fn record(conn: &Conn, e: &NewEvent) -> Result<bool> {
    let n = conn.execute(
        "INSERT INTO events (event, name, version, index_commit, at, dedup) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT DO NOTHING",
        params![e.event, e.name, e.version, e.index_commit, e.at, e.dedup()],
    )?;
    Ok(n > 0)
}

/// Up to `limit` events after id `after`, oldest first.
pub fn after(conn: &Conn, after: i64, limit: usize) -> Result<Vec<Event>> {
    conn.query(
        "SELECT id, event, name, version, index_commit, at FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
        params![after, limit as i64],
        |r| {
            Ok(Event {
                id: r.get(0)?,
                event: r.get(1)?,
                name: r.get(2)?,
                version: r.get(3)?,
                index_commit: r.get(4)?,
                at: r.get(5)?,
            })
        },
    )
}

/// The index commit of the newest event that has one: the history after it
/// may still owe events.
pub fn last_commit(conn: &Conn) -> Result<Option<String>> {
    conn.query_opt(
        "SELECT index_commit FROM events WHERE index_commit IS NOT NULL ORDER BY id DESC LIMIT 1",
        params![],
        |r| r.get(0),
    )
}

/// The last event id a webhook acknowledged (0: none yet).
pub fn cursor(conn: &Conn, url: &str) -> Result<i64> {
    Ok(conn
        .query_opt("SELECT delivered FROM webhook_cursors WHERE url = ?1", params![url], |r| r.get(0))?
        .unwrap_or(0))
}

/// Gives a webhook seen for the first time a cursor at the newest event:
/// a webhook added to a running registry hears of changes from then on,
/// not of its whole history (the event stream replays that). Once it has
/// a cursor, this changes nothing.
pub fn start_cursor(conn: &Conn, url: &str) -> Result<()> {
    // `WHERE true`: SQLite's parser needs it before an upsert's ON CONFLICT.
    conn.execute(
        "INSERT INTO webhook_cursors (url, delivered) SELECT CAST(?1 AS TEXT), COALESCE(MAX(id), 0) FROM events WHERE true
         ON CONFLICT (url) DO NOTHING",
        params![url],
    )?;
    Ok(())
}

/// Claims the delivery of a webhook for `holder` until `now_ms + ttl_ms`
/// when no node holds it, its claim expired, or it is `holder`'s already
/// (a renewal): several servers with the same `[[webhooks]]` deliver each
/// event once, from whichever holds the claim. False while another does.
pub fn claim(conn: &Conn, url: &str, holder: &str, now_ms: i64, ttl_ms: i64) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE webhook_cursors SET claimed_by = ?2, claim_expires_ms = ?4
         WHERE url = ?1 AND (claimed_by IS NULL OR claimed_by = ?2 OR claim_expires_ms < ?3)",
        params![url, holder, now_ms, now_ms + ttl_ms],
    )? == 1)
}

/// Moves the cursor of `holder`'s claimed webhook forward to `delivered`;
/// false if the claim is no longer `holder`'s (it stalled past the claim,
/// and another node delivers now).
pub fn set_cursor(conn: &Conn, url: &str, holder: &str, delivered: i64) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE webhook_cursors SET delivered = CASE WHEN delivered < ?3 THEN ?3 ELSE delivered END
         WHERE url = ?1 AND claimed_by = ?2",
        params![url, holder, delivered],
    )? == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(commit: Option<&str>, event: &'static str) -> NewEvent {
        NewEvent {
            event,
            name: "a".into(),
            version: Some("1.0.0".into()),
            index_commit: commit.map(str::to_string),
            at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn index_events_are_recorded_once_and_owner_events_always() {
        super::super::testdb::each(|conn| {
            assert!(record(conn, &event(Some("c1"), "publish")).unwrap());
            assert!(!record(conn, &event(Some("c1"), "publish")).unwrap(), "a replay adds nothing");
            assert!(record(conn, &event(Some("c2"), "yank")).unwrap());
            assert!(record(conn, &event(None, "owners")).unwrap());
            assert!(
                record(conn, &event(None, "owners")).unwrap(),
                "owner changes have no commit to dedup by"
            );
            // Ids grow; Postgres's sequence may skip the one a refused insert took.
            let all = after(conn, 0, 10).unwrap();
            let ids: Vec<i64> = all.iter().map(|e| e.id).collect();
            assert_eq!(ids.len(), 4);
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
            assert_eq!(after(conn, ids[1], 10).unwrap().len(), 2);
            assert_eq!(after(conn, 0, 1).unwrap()[0].event, "publish");
            assert_eq!(last_commit(conn).unwrap().as_deref(), Some("c2"));
            assert_eq!(cursor(conn, "http://h").unwrap(), 0);
            start_cursor(conn, "http://new").unwrap();
            assert_eq!(
                cursor(conn, "http://new").unwrap(),
                ids[3],
                "a new webhook starts at the newest event"
            );
            // One node delivers at a time; a claim lapses, a cursor never goes back.
            let url = "http://new";
            assert!(claim(conn, url, "a", 1_000, 500).unwrap());
            assert!(!claim(conn, url, "b", 1_200, 500).unwrap(), "a holds it");
            assert!(!set_cursor(conn, url, "b", ids[3] + 1).unwrap(), "b does not deliver");
            assert!(claim(conn, url, "a", 1_400, 500).unwrap(), "a renews until 1 900");
            assert!(!claim(conn, url, "b", 1_800, 500).unwrap());
            assert!(claim(conn, url, "b", 2_000, 500).unwrap(), "a's claim lapsed");
            assert!(!set_cursor(conn, url, "a", ids[3] + 1).unwrap(), "a stalled past its claim");
            assert!(set_cursor(conn, url, "b", ids[2]).unwrap());
            assert_eq!(cursor(conn, url).unwrap(), ids[3], "never backwards");
            start_cursor(conn, url).unwrap();
            assert!(set_cursor(conn, url, "b", ids[3] + 7).unwrap());
            start_cursor(conn, url).unwrap();
            assert_eq!(cursor(conn, url).unwrap(), ids[3] + 7, "a known one keeps its cursor");
        });
    }
}
