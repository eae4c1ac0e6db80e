//! The CDN purge hook (`[cdn] purge_url`): after a write group has
//! answered, the URL paths it changed are POSTed as `{"paths":[…]}`, from
//! a thread of their own so a slow or failing CDN never delays a reply.
//! A failed POST is retried with exponential backoff; one that never
//! succeeds is logged, and the files' max-age bounds how stale the CDN stays.

use std::sync::mpsc;
use std::time::Duration;

/// Attempts per purge, and the wait before the second (doubled each time).
const ATTEMPTS: u32 = 6;
const FIRST_RETRY: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub struct Purger {
    tx: mpsc::Sender<Vec<String>>,
}

impl Purger {
    pub fn start(url: String) -> std::io::Result<Purger> {
        let (tx, rx) = mpsc::channel::<Vec<String>>();
        std::thread::Builder::new().name("cairn-purge".into()).spawn(move || {
            let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build();
            let Ok(http) = http else { return };
            while let Ok(paths) = rx.recv() {
                post(&http, &url, &paths);
            }
        })?;
        Ok(Purger { tx })
    }

    /// Queues the purge of these URL paths.
    pub fn purge(&self, paths: Vec<String>) {
        if !paths.is_empty() {
            let _ = self.tx.send(paths);
        }
    }
}

fn post(http: &reqwest::blocking::Client, url: &str, paths: &[String]) {
    let body = serde_json::json!({ "paths": paths });
    let mut wait = FIRST_RETRY;
    for attempt in 1..=ATTEMPTS {
        match http.post(url).json(&body).send() {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => tracing::warn!(status = %r.status(), attempt, "CDN purge refused"),
            Err(e) => tracing::warn!(error = %e, attempt, "CDN purge failed"),
        }
        if attempt < ATTEMPTS {
            std::thread::sleep(wait);
            wait *= 2;
        }
    }
    tracing::error!(paths = paths.len(), "CDN purge given up; the files' max-age bounds the staleness");
}
