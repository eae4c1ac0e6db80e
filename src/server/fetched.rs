//! The `fetched` rows of blob misses (SPEC section 16), written together.
//! A cold `cargo fetch` misses forty blobs at once; a row each would be
//! forty commits of the database, each an fsync and a wait for its one
//! write lock (SQLite's busy handler sleeps between tries), one after the
//! other, while every one of those downloads waits. As the writer's group
//! commit: a miss queues its row, and whoever writes next writes every row
//! queued, in one transaction, and tells each miss how it went.

use std::sync::Mutex;
use tokio::sync::oneshot;

use super::{ApiError, State};
use crate::db::Space;

/// One blob fetched from an upstream: its row's new `fetched_ms` and size.
pub struct Fetch {
    pub space: Space,
    pub cksum: String,
    pub size: u64,
    pub at_ms: i64,
}

type Reply = oneshot::Sender<Result<(), ApiError>>;

#[derive(Default)]
pub struct Fetched {
    queued: Mutex<Vec<(Fetch, Reply)>>,
    /// Held while a batch is written: the rows queued meanwhile go next.
    writing: tokio::sync::Mutex<()>,
}

impl Fetched {
    /// Records `fetch`, in a batch with the misses queued beside it; `Ok`
    /// once its row is committed.
    pub async fn record(&self, state: &State, fetch: Fetch) -> Result<(), ApiError> {
        let (reply, done) = oneshot::channel();
        self.queued.lock().unwrap().push((fetch, reply));
        {
            let _writing = self.writing.lock().await;
            // Empty: an earlier batch took this row (its answer is sent).
            let batch = std::mem::take(&mut *self.queued.lock().unwrap());
            if !batch.is_empty() {
                let (rows, replies): (Vec<Fetch>, Vec<Reply>) = batch.into_iter().unzip();
                let written = state.db(move |conn| write(conn, &rows)).await;
                replies.into_iter().for_each(|r| drop(r.send(written.clone())));
            }
        }
        done.await.map_err(|_| ApiError::internal("a fetched blob's row was dropped unwritten"))?
    }
}

fn write(conn: &crate::db::Conn, rows: &[Fetch]) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    for r in rows {
        crate::db::upstream::fetched(&tx, &r.space, &r.cksum, r.size, r.at_ms)?;
    }
    tx.commit()
}
