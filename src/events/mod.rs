//! Events (SPEC section 13): one per change, appended to the state
//! database's `events` table (`db::events`) with a growing id, then sent
//! to the webhooks (`webhooks.rs`) and streamed by `GET /api/v1/events`
//! (`server/events.rs`).
//!
//! A change that commits to the index gets its event from the commit alone
//! (its subject, id and time), by [`catch_up`]: after every group, at start
//! and on recovery, the history after the newest event's commit is turned
//! into events, and re-emitting one that is there is a no-op. So an event
//! is made after the commit point, retried until it is made, and never made
//! twice. Owner changes have no commit: the writer records theirs in the
//! transaction of their rows.
//!
//! Mapping of the index's commit subjects (SPEC section 5) to events:
//! `publish|yank|unyank|delete {name} {version}` → that event and version;
//! `delete {name}` (a whole package) → `delete` with no version;
//! `deprecate {name}` and `undeprecate {name}` → `deprecate` (the meta file
//! says which); `advisory {ID}` → `advisory` with `name` the advisory's ID
//! (its file is `index/advisories/{ID}.json`). Other commits (`config`, the
//! first commit) make none.

pub mod follower;
pub mod webhooks;

use crate::db::Conn;
use anyhow::Result;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::db::events::{self, NewEvent};
use crate::index::IndexRepo;

/// Rings when events were appended, so followers need not poll the
/// database: webhook threads wait on it, the event streams watch it.
/// Writes of another process (`cairn admin` on the data directory) ring
/// no bell here; followers also look again every few seconds.
pub struct Bell {
    rung: Mutex<u64>,
    cond: Condvar,
    watch: tokio::sync::watch::Sender<u64>,
}

impl Default for Bell {
    fn default() -> Self {
        Bell { rung: Mutex::new(0), cond: Condvar::new(), watch: tokio::sync::watch::channel(0).0 }
    }
}

impl Bell {
    pub fn ring(&self) {
        let mut n = self.rung.lock().unwrap();
        *n += 1;
        self.cond.notify_all();
        self.watch.send_replace(*n);
    }

    /// How often it has rung (to wait past).
    pub fn rung(&self) -> u64 {
        *self.rung.lock().unwrap()
    }

    /// Blocks until it rings after `seen` or `timeout` passes; returns `rung()`.
    pub fn wait_past(&self, seen: u64, timeout: Duration) -> u64 {
        let n = self.rung.lock().unwrap();
        let (n, _) = self.cond.wait_timeout_while(n, timeout, |n| *n == seen).unwrap();
        *n
    }

    /// For async followers: changes whenever it rings.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.watch.subscribe()
    }
}

/// The event of one index commit, from its subject, id and time.
pub fn of_commit(subject: &str, commit: &str, time: i64) -> Option<NewEvent> {
    let (action, target, version) = crate::log::leaf::parse_subject(subject)?;
    let event = match action {
        "publish" => "publish",
        "yank" => "yank",
        "unyank" => "unyank",
        "delete" => "delete",
        "deprecate" | "undeprecate" => "deprecate",
        "advisory" => "advisory",
        _ => return None,
    };
    let at = chrono::DateTime::from_timestamp(time, 0)?;
    Some(NewEvent {
        event,
        name: target.to_string(),
        version: version.map(str::to_string),
        index_commit: Some(commit.to_string()),
        at: crate::index::line::pubtime(at),
    })
}

/// Appends the events of the index commits after the newest event's
/// commit (all of the history if that commit is not in it); returns how
/// many were added. Called under the writer lock.
pub fn catch_up(index: &IndexRepo, conn: &Conn) -> Result<usize> {
    let since = events::last_commit(conn)?;
    let mut new = Vec::new();
    let collect = |c: &crate::index::CommitView| {
        new.extend(of_commit(&c.subject(), &c.id(), c.time()));
        Ok(())
    };
    if index.for_each_after(since.as_deref(), collect).is_err() {
        new.clear();
        index.for_each_after(None, |c| {
            new.extend(of_commit(&c.subject(), &c.id(), c.time()));
            Ok(())
        })?;
    }
    if new.is_empty() {
        return Ok(0);
    }
    let txn = conn.transaction()?;
    let mut added = 0;
    for e in &new {
        added += events::record(&txn, e)? as usize;
    }
    txn.commit()?;
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_subjects_map_to_events() {
        let e = |s: &str| of_commit(s, "c", 1_700_000_000).map(|e| (e.event, e.name, e.version));
        let v = |s: &str| Some(s.to_string());
        assert_eq!(e("publish a 1.0.0"), Some(("publish", "a".into(), v("1.0.0"))));
        assert_eq!(e("unyank a 1.0.0"), Some(("unyank", "a".into(), v("1.0.0"))));
        assert_eq!(e("delete a"), Some(("delete", "a".into(), None)));
        assert_eq!(e("undeprecate a"), Some(("deprecate", "a".into(), None)));
        assert_eq!(e("advisory CAIRN-2026-0001"), Some(("advisory", "CAIRN-2026-0001".into(), None)));
        assert_eq!(e("config"), None);
        assert_eq!(of_commit("publish a 1.0.0", "c", 1_700_000_000).unwrap().at, "2023-11-14T22:13:20Z");
    }

    #[test]
    fn the_bell_wakes_a_waiter() {
        let bell = std::sync::Arc::new(Bell::default());
        let seen = bell.rung();
        let b = bell.clone();
        let t = std::thread::spawn(move || b.wait_past(seen, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(50));
        bell.ring();
        assert_eq!(t.join().unwrap(), seen + 1);
        assert_eq!(bell.wait_past(seen + 1, Duration::from_millis(10)), seen + 1, "times out");
    }
}
