//! The client's CPU-heavy steps, off its runtime's one thread. The client
//! runs its requests on a current-thread runtime: an install makes some
//! 900 small requests, and handing each one's wake-ups between the workers
//! of a multi-threaded runtime cost more CPU than the requests themselves
//! (a fifth of a cold install's). What needs the cores (a downloaded
//! blob's signature check, its inspection and unpacking) runs on rayon's
//! pool, one thread per core, while the runtime's thread goes on with the
//! requests.

/// Runs `f` on rayon's pool and waits for it without blocking the runtime;
/// a panic in `f` is resumed here.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.await.expect("a rayon job always answers") {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "current_thread")]
    async fn runs_off_the_runtime_thread_and_resumes_panics() {
        let here = std::thread::current().id();
        assert_ne!(super::run(move || std::thread::current().id()).await, here);
        let panicked = tokio::spawn(super::run(|| panic!("in the pool"))).await.unwrap_err();
        assert!(panicked.is_panic());
    }
}
