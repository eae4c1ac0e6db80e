//! Group commit with siblings (as Postgres's `commit_delay` with
//! `commit_siblings`): publishes whose bodies are read and being inspected
//! are counted, and a group waits a little for them before it starts. The
//! clients of one group are answered together and come back together; without
//! the wait the first of them makes a group alone, and every group's fixed
//! cost (on a bucket, a dozen round trips) is paid twice per cycle. A lone
//! publish waits for nothing. Upstream cachings whose index files are being
//! fetched count too: a resolution's levels, fetched ahead, share a group.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::Job;

/// How long a group waits at most for the publishes being prepared.
const GATHER_FOR: Duration = Duration::from_millis(10);

/// How many publishes are being prepared for one writer.
#[derive(Clone, Default)]
pub(super) struct Siblings(Arc<AtomicUsize>);

/// One publish being prepared: counted until it is queued (or given up).
pub struct Preparing(Arc<AtomicUsize>);

impl Drop for Preparing {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Siblings {
    pub(super) fn preparing(&self) -> Preparing {
        self.0.fetch_add(1, Ordering::Relaxed);
        Preparing(self.0.clone())
    }

    /// `first` and what else is queued, up to `max` jobs, having waited
    /// up to [`GATHER_FOR`] while publishes are still being prepared.
    pub(super) fn gather(&self, first: Job, rx: &mpsc::Receiver<Job>, max: usize) -> Vec<Job> {
        let mut batch = vec![first];
        let until = Instant::now() + GATHER_FOR;
        while batch.len() < max {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(mpsc::TryRecvError::Disconnected) => break,
                Err(mpsc::TryRecvError::Empty) => {
                    let left = until.saturating_duration_since(Instant::now());
                    if self.0.load(Ordering::Relaxed) == 0 || left.is_zero() {
                        break;
                    }
                    // Woken by the next job, else looked at again shortly.
                    match rx.recv_timeout(left.min(Duration::from_millis(1))) {
                        Ok(job) => batch.push(job),
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
        }
        batch
    }
}
