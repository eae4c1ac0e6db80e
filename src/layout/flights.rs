//! The PUTs an [`super::ObjectStorage`] has in flight: started at
//! `put`, waited for by `sync` (all of them) and by any other request for
//! the same key (that one), so writes stay in order and readable by their
//! writer. A PUT that failed stays failed, and every later `sync` of any
//! thread says so, until its key is written again or removed: no caller
//! acknowledges a write on the strength of a `sync` while a PUT it may
//! have made is lost (the writer's retries rewrite those keys).

use futures_util::future::{BoxFuture, FutureExt, Shared};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};

/// Concurrent PUTs of one storage: enough to hide a store's latency,
/// few enough not to flood it.
const IN_FLIGHT: usize = 32;

/// Resolves once its PUT has been answered (and recorded).
pub type Done = Shared<BoxFuture<'static, ()>>;

pub struct Flights {
    state: Arc<Mutex<State>>,
    slots: Arc<tokio::sync::Semaphore>,
}

#[derive(Default)]
struct State {
    /// By key: the PUT's number and its end.
    pending: HashMap<String, (u64, Done)>,
    /// Keys whose last PUT failed, with the error.
    failed: BTreeMap<String, String>,
    next: u64,
}

impl Flights {
    pub fn new() -> Flights {
        Flights { state: Arc::default(), slots: Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT)) }
    }

    /// Starts `put` of `key` on `runtime`. The caller waited for the key's
    /// previous PUT ([`Flights::of`]): one at a time per key.
    pub fn start(
        &self,
        runtime: &tokio::runtime::Runtime,
        key: &str,
        put: impl Future<Output = Result<(), object_store::Error>> + Send + 'static,
    ) {
        // Held while spawning: the task records its end only after its entry is in.
        let mut state = self.state.lock().unwrap();
        let (id, shared, slots, owned) =
            (state.next, self.state.clone(), self.slots.clone(), key.to_string());
        state.next += 1;
        let task = runtime.spawn(async move {
            let slot = slots.acquire_owned().await.expect("the semaphore is never closed");
            let result = put.await;
            drop(slot);
            let mut state = shared.lock().unwrap();
            match result {
                Ok(()) => drop(state.failed.remove(&owned)),
                Err(e) => drop(state.failed.insert(owned.clone(), e.to_string())),
            }
            if state.pending.get(&owned).is_some_and(|(n, _)| *n == id) {
                state.pending.remove(&owned);
            }
        });
        let done = async move { drop(task.await) }.boxed().shared();
        state.pending.insert(key.to_string(), (id, done));
    }

    /// The end of `key`'s PUT in flight, if any.
    pub fn of(&self, key: &str) -> Option<Done> {
        self.state.lock().unwrap().pending.get(key).map(|(_, done)| done.clone())
    }

    /// The ends of every PUT in flight now.
    pub fn all(&self) -> Vec<Done> {
        self.state.lock().unwrap().pending.values().map(|(_, done)| done.clone()).collect()
    }

    /// `key` was written (or removed) since, by a request answered at once.
    pub fn settled(&self, key: &str) {
        self.state.lock().unwrap().failed.remove(key);
    }

    /// A PUT that failed and was not made good since.
    pub fn failure(&self) -> Option<io::Error> {
        let state = self.state.lock().unwrap();
        let (key, error) = state.failed.iter().next()?;
        Some(io::Error::other(format!("storing {key} failed ({} in all): {error}", state.failed.len())))
    }
}
