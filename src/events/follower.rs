//! A follower of the public events with a durable cursor of its own (the
//! webhooks' delivery table): each webhook's deliveries and the owners'
//! mails (`mail/notify.rs`). Of several servers on one database, the one
//! holding the cursor's claim follows (renewed at every look and through a
//! handler's waits, lapsing after `[database] lease_seconds`); the others
//! look again and take over when it lapses. A holder that stalled past its
//! claim cannot move the cursor, and stops. A cursor new to the database
//! starts after the newest event.

use anyhow::Result;
use std::time::Duration;

use crate::db::events::{self, Event};
use crate::db::Conn;
use crate::registry::Registry;

/// How long a follower waits for the bell before it looks at the table
/// anyway (events written by another process ring no bell here).
const LOOK_AGAIN: Duration = Duration::from_secs(2);
/// Events read per query.
const PAGE: usize = 100;

/// The follower's claim, for a handler that waits.
pub struct Claim<'a> {
    still_mine: &'a dyn Fn() -> bool,
    /// How often a waiting handler renews it ([`Claim::still_mine`]).
    pub renew: Duration,
}

impl Claim<'_> {
    /// Renews the claim; false once it is another node's.
    pub fn still_mine(&self) -> bool {
        (self.still_mine)()
    }
}

/// Hands each event after the cursor `name` to `handle`, in id order, for
/// good: `Ok(true)` moves the cursor past it; `Ok(false)` ends this look
/// (the claim went to another node); an error is logged and the event is
/// handed again after a pause.
pub fn follow(reg: &Registry, name: &str, mut handle: impl FnMut(&Conn, &Event, &Claim) -> Result<bool>) {
    let holder = crate::db::lease::holder_name();
    let ttl = Duration::from_secs(reg.config.database.lease_seconds.max(1));
    let ttl_ms = ttl.as_millis() as i64;
    // Looked at often enough that a claim never lapses while its holder waits.
    let look_again = LOOK_AGAIN.min(ttl / 2);
    let mut conn = None;
    let mut started = false;
    loop {
        let seen = reg.events.rung();
        let c = match conn.take().map(Ok).unwrap_or_else(|| reg.db()) {
            Ok(c) => conn.insert(c),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), name, "event follower: the state database is unavailable");
                std::thread::sleep(look_again);
                continue;
            }
        };
        if !started {
            match events::start_cursor(c, name) {
                Ok(()) => started = true,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), name, "event follower: recording its first cursor failed");
                    conn = None;
                    std::thread::sleep(look_again);
                    continue;
                }
            }
        }
        let mine = || events::claim(c, name, &holder, now_ms(), ttl_ms);
        let due = mine().and_then(|mine| match mine {
            true => events::cursor(c, name).and_then(|after| events::after(c, after, PAGE)).map(Some),
            false => Ok(None),
        });
        // Not kept through a wait when it was opened read-only (the storage
        // was): SQLite would hold the writer's connections read-only too.
        let read_only = !crate::db::writable(c);
        match due {
            // Another node follows it.
            Ok(None) => {
                if read_only {
                    conn = None;
                }
                std::thread::sleep(look_again)
            }
            Ok(Some(due)) if due.is_empty() => {
                if read_only {
                    conn = None;
                }
                reg.events.wait_past(seen, look_again);
            }
            Ok(Some(due)) => {
                let claim = Claim { still_mine: &|| mine().unwrap_or(false), renew: look_again };
                for event in &due {
                    match handle(c, event, &claim) {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), name, id = event.id, "event follower: handling an event failed; retried");
                            std::thread::sleep(look_again);
                            break;
                        }
                    }
                    // Recorded until it is: a failure here only means the
                    // event may be handled again after a restart.
                    let moved = loop {
                        match events::set_cursor(c, name, &holder, event.id) {
                            Ok(moved) => break moved,
                            Err(e) => {
                                tracing::warn!(error = %format!("{e:#}"), name, "event follower: recording the cursor failed");
                                std::thread::sleep(look_again);
                            }
                        }
                    };
                    if !moved {
                        tracing::warn!(name, id = event.id, "event follower: another node took over");
                        break;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), name, "event follower: reading events failed");
                conn = None;
                std::thread::sleep(look_again);
            }
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
