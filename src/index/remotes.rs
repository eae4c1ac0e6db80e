//! Pushes of the index to `[index] remotes` (SPEC section 13: git remotes
//! are mirrors of the index in the static root, which stays the
//! authoritative copy). After every write group the writer wakes this
//! thread, which pushes `main` as it is then (one push carries every
//! commit since the last: a burst of groups coalesces into one) to each
//! remote, fast-forward only: the refspec has no `+`, so libgit2 refuses a
//! push that would drop a commit the remote has, and a server's own
//! refusal comes back per ref and counts as a failure too.
//!
//! The thread never holds a reply: a failed push is logged, shown in
//! `GET /api/v1/health` (`remotes`), and retried with waits doubling from
//! [`FIRST_RETRY`] to [`MAX_WAIT`]; a new commit tries every remote at
//! once. Every [`LOOK_AGAIN`] the head is compared with what each remote
//! got, so commits of another process (`cairn admin`) reach them too.
//!
//! Remotes: a path or `file://` URL (libgit2's local transport), or an ssh
//! one when libgit2 is built with ssh (the `git2` crate's `ssh` feature,
//! off in this build), with keys from ssh-agent. A remote whose branch
//! moved on its own stays refused until an operator resets it to a commit
//! of the index's history; it then catches up at the next attempt.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const FIRST_RETRY: Duration = Duration::from_secs(1);
pub const MAX_WAIT: Duration = Duration::from_secs(60);
const LOOK_AGAIN: Duration = Duration::from_secs(30);
const REFSPEC: &str = "refs/heads/main:refs/heads/main";

/// What a remote has been sent, as health shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteStatus {
    pub url: String,
    /// The last commit the remote took.
    pub pushed: Option<String>,
    /// Why the last push failed; `None` after a push that worked.
    pub error: Option<String>,
    /// Failed pushes since the last one that worked.
    pub failures: u32,
}

#[derive(Clone)]
pub struct Pusher {
    wake: mpsc::SyncSender<()>,
    status: Arc<Mutex<Vec<RemoteStatus>>>,
}

impl Pusher {
    /// Starts the pushing thread for the bare repository at `repo`; it
    /// pushes once at start (a remote may have missed commits while the
    /// registry was down).
    pub fn start(repo: PathBuf, remotes: Vec<String>) -> std::io::Result<Pusher> {
        // Capacity 1: wakes while a push runs coalesce into one more push.
        let (wake, rx) = mpsc::sync_channel(1);
        let status: Vec<RemoteStatus> = remotes
            .iter()
            .map(|url| RemoteStatus { url: url.clone(), pushed: None, error: None, failures: 0 })
            .collect();
        let status = Arc::new(Mutex::new(status));
        let shared = status.clone();
        std::thread::Builder::new().name("cairn-push".into()).spawn(move || run(&repo, &shared, &rx))?;
        Ok(Pusher { wake, status })
    }

    /// The index moved: push it.
    pub fn wake(&self) {
        let _ = self.wake.try_send(());
    }

    pub fn status(&self) -> Vec<RemoteStatus> {
        self.status.lock().unwrap().clone()
    }
}

fn run(repo: &std::path::Path, status: &Mutex<Vec<RemoteStatus>>, rx: &mpsc::Receiver<()>) {
    let n = status.lock().unwrap().len();
    // When each remote is next tried, and the wait after its next failure.
    let mut due: Vec<Instant> = vec![Instant::now(); n];
    let mut backoff = vec![FIRST_RETRY; n];
    loop {
        let now = Instant::now();
        let next = due.iter().min().copied().unwrap_or(now + LOOK_AGAIN);
        match rx.recv_timeout(next.saturating_duration_since(now)) {
            // A new commit: every remote now, in backoff or not.
            Ok(()) => due.iter_mut().for_each(|d| *d = Instant::now()),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let head = match git2::Repository::open_bare(repo).and_then(|r| r.refname_to_id("refs/heads/main")) {
            Ok(head) => head.to_string(),
            Err(e) => {
                tracing::warn!(error = %e, "pushing the index: no head to push");
                due.iter_mut().for_each(|d| *d = Instant::now() + FIRST_RETRY);
                continue;
            }
        };
        for i in 0..n {
            if due[i] > Instant::now() {
                continue;
            }
            let (url, pushed) = {
                let s = &status.lock().unwrap()[i];
                (s.url.clone(), s.pushed.clone())
            };
            if pushed.as_deref() == Some(head.as_str()) {
                due[i] = Instant::now() + LOOK_AGAIN;
                continue;
            }
            let result = push(repo, &url);
            let mut s = status.lock().unwrap();
            let s = &mut s[i];
            match result {
                Ok(()) => {
                    if s.failures > 0 {
                        tracing::info!(remote = %url, failures = s.failures, "the index remote caught up");
                    }
                    (s.pushed, s.error, s.failures) = (Some(head.clone()), None, 0);
                    backoff[i] = FIRST_RETRY;
                    due[i] = Instant::now() + LOOK_AGAIN;
                }
                Err(e) => {
                    s.failures += 1;
                    tracing::warn!(remote = %url, error = %e, failures = s.failures, retry_in = ?backoff[i], "pushing the index failed");
                    s.error = Some(e);
                    due[i] = Instant::now() + backoff[i];
                    backoff[i] = (backoff[i] * 2).min(MAX_WAIT);
                }
            }
        }
    }
}

/// One push of `main`, fast-forward only; a refusal by the remote is an error.
fn push(repo: &std::path::Path, url: &str) -> Result<(), String> {
    let repo = git2::Repository::open_bare(repo).map_err(|e| e.message().to_string())?;
    let mut remote = repo.remote_anonymous(url).map_err(|e| e.message().to_string())?;
    let mut refused: Option<String> = None;
    {
        let mut callbacks = git2::RemoteCallbacks::new();
        callbacks.credentials(|_url, user, allowed| {
            if allowed.contains(git2::CredentialType::SSH_KEY) {
                git2::Cred::ssh_key_from_agent(user.unwrap_or("git"))
            } else {
                git2::Cred::default()
            }
        });
        callbacks.push_update_reference(|name, problem| {
            if let Some(problem) = problem {
                refused = Some(format!("the remote refused {name}: {problem}"));
            }
            Ok(())
        });
        let mut options = git2::PushOptions::new();
        options.remote_callbacks(callbacks);
        remote.push(&[REFSPEC], Some(&mut options)).map_err(|e| e.message().to_string())?;
    }
    match refused {
        Some(why) => Err(why),
        None => Ok(()),
    }
}
