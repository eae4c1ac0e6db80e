//! The writer lease, the writer's side (SPEC section 13): when several
//! `cairn serve` share one bucket and one database, a server writes only
//! while it holds the lease (`db/lease.rs`). A group waits for it; a server
//! lets it go as soon as its queue is empty, so the servers take turns and
//! each accepts writes (they wait here, briefly, instead of being handed to
//! the holder: nothing to route, and a group's commit is milliseconds).
//!
//! Taking the lease brings the index level with the bucket's and fences
//! the bucket's ref with the new epoch (`IndexRepo::take_over`): a holder
//! that stalled past its lease and wakes up cannot commit, because its
//! compare-and-swap of the ref names the version before the fence. When
//! the previous holder did not let the lease go, its last group may have
//! stopped anywhere: the new holder repairs rows and derived files as a
//! restart would (`Registry::repair`).

use anyhow::Result;
use std::time::{Duration, Instant};

use crate::db::{lease, Conn};
use crate::registry::Registry;

/// How long a group waits for another server's lease before answering 503.
const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

/// The writer lease could not be held for a group: another server has
/// kept it too long, or this one overran it. Nothing of the group is
/// written; the client may try again (503).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LeaseUnavailable(String);

pub struct Lease {
    holder: String,
    ttl: Duration,
    /// The epoch held, and until when (measured from before the taking).
    held: Option<(i64, Instant)>,
    /// Taken before: the first taking repairs what a restart would.
    taken_once: bool,
    /// The epoch this server last let go of.
    let_go: Option<i64>,
    /// Whose registry's lease.
    space: crate::db::Space,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Lease {
    /// The lease of the registry of `space`.
    pub fn new(ttl: Duration, space: crate::db::Space) -> Lease {
        Lease { holder: lease::holder_name(), ttl, held: None, taken_once: false, let_go: None, space }
    }

    /// Holds the lease with at least half its time left, waiting for it
    /// (at most [`WAIT`]) while another server holds it.
    pub fn hold(&mut self, conn: &Conn, reg: &Registry) -> Result<()> {
        let ttl_ms = self.ttl.as_millis() as i64;
        if let Some((epoch, until)) = self.held {
            let asked = Instant::now();
            if until.saturating_duration_since(asked) > self.ttl / 2 {
                return Ok(());
            }
            // Renewed only while it still runs: a holder that overran it (it
            // was stopped, say) may have been taken over, and takes it anew
            // (a new epoch, the fence, the repair) instead of carrying on.
            if until > asked && lease::renew(conn, &self.space, &self.holder, epoch, now_ms(), ttl_ms)? {
                self.held = Some((epoch, asked + self.ttl));
                return Ok(());
            }
            self.held = None;
            crate::metrics::get().lease_held(false);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let asked = Instant::now();
            // A row lock of a stopped holder's session is waited out like its lease.
            let taken = match lease::take(conn, &self.space, &self.holder, now_ms(), ttl_ms) {
                Err(e) if crate::db::conn::lock_wait_ran_out(&e) => None,
                taken => taken?,
            };
            if let Some(taken) = taken {
                self.held = Some((taken.epoch, asked + self.ttl));
                crate::metrics::get().lease_held(true);
                // Taken back at the epoch after the one this server let go
                // of: nobody held it in between (each taking counts one), so
                // the bucket's ref, its packs and the log are as this server
                // left them, and a holder from before is fenced already.
                // Busy, a server lets go and takes back between most groups.
                if taken.released && self.let_go.is_some_and(|e| e + 1 == taken.epoch) {
                    return Ok(());
                }
                // Another writer may have published the log meanwhile.
                if let Some(log) = &reg.log {
                    log.forget_published();
                }
                let moved = reg.index.take_over(taken.epoch)?;
                tracing::debug!(epoch = taken.epoch, moved, released = taken.released, "writer lease taken");
                if moved || !taken.released || !self.taken_once {
                    reg.repair(conn)?;
                }
                self.taken_once = true;
                // A long repair may have used most of it: renewed if so.
                return self.hold(conn, reg);
            }
            if Instant::now() > deadline {
                let why = format!("another server has held the writer lease for {} s", WAIT.as_secs());
                return Err(LeaseUnavailable(why).into());
            }
            std::thread::sleep(POLL);
        }
    }

    /// Whether the lease still runs: a group that overran it gives up
    /// before its rows commit, rather than racing a new holder (whose
    /// fence would refuse its index commit anyway).
    pub fn check(&self) -> Result<()> {
        match self.held {
            Some((_, until)) if Instant::now() < until => Ok(()),
            _ => Err(LeaseUnavailable("the writer lease ran out during the write group".into()).into()),
        }
    }

    /// Lets the lease go (the queue is empty).
    pub fn release(&mut self, conn: &Conn) {
        if let Some((epoch, _)) = self.held.take() {
            crate::metrics::get().lease_held(false);
            match lease::release(conn, &self.space, &self.holder, epoch) {
                Ok(released) => self.let_go = released.then_some(epoch),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "letting the writer lease go failed; it expires")
                }
            }
        }
    }
}
