//! `cairn serve`: the write API and the static root on one listener.

use anyhow::{Context, Result};
use std::sync::Arc;

use super::DataArg;
use crate::config::Config;
use crate::jobs::Job;
use crate::registry::{open_or_init, Registry, BOOTSTRAP_LOGIN};

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    data: DataArg,
    /// Address to listen on (default 127.0.0.1:7878; port 0 picks a free port).
    #[arg(long, env = "CAIRN_LISTEN")]
    listen: Option<String>,
    /// Base URL readers use for static files (default http://{listen}).
    #[arg(long, env = "CAIRN_PUBLIC_URL")]
    public_url: Option<String>,
    /// Address of the administration API; loopback only.
    #[arg(long, env = "CAIRN_ADMIN_LISTEN")]
    admin_listen: Option<std::net::SocketAddr>,
}

pub fn run(args: ServeArgs) -> Result<()> {
    crate::mem::limit_arenas();
    crate::mem::limit_git_maps();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let mut config = Config::load(&args.data.data)?;
        super::init_log(config.log.format);
        crate::metrics::get().set_enabled(config.metrics);
        if let Some(l) = args.listen {
            config.listen = l;
        }
        if let Some(u) = args.public_url {
            config.public_url = Some(u);
        }
        if let Some(addr) = &args.admin_listen {
            crate::server::admin::check_loopback(addr)?;
        }
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        // With port 0 the real address is known only now.
        config.listen = listener.local_addr()?.to_string();
        let data = args.data.data.clone();
        let (reg, token) = tokio::task::spawn_blocking(move || -> Result<_> {
            let (reg, token) = open_or_init(&data, config)?;
            // Released when the process ends, however it ends.
            std::mem::forget(reg.lock_serving(false)?);
            reg.recover()?;
            // This release's stylesheet and scripts, which its pages name.
            if let Err(e) = crate::site::write_fixed(&reg.root, &reg.config.sign_in_providers()) {
                tracing::warn!(error = %e, "writing the site's assets failed");
            }
            Ok((reg, token))
        })
        .await??;
        let admin = match args.admin_listen {
            Some(addr) => {
                Some(tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?)
            }
            None => None,
        };
        println!("cairn {} serving {}", env!("CARGO_PKG_VERSION"), reg.data.display());
        println!("listening on http://{}", reg.config.listen);
        println!("public url: {}", reg.config.public_url());
        if reg.config.read_only {
            println!("read-only mirror: writes are refused");
        }
        if let Some(admin) = &admin {
            println!("admin api on http://{}", admin.local_addr()?);
        }
        if let Some(token) = token {
            println!("bootstrap token for user `{BOOTSTRAP_LOGIN}` (shown once): {token}");
        }
        // Last: scripts wait for this line.
        println!("public key: {}", reg.pubkey);
        use std::io::Write;
        std::io::stdout().flush()?;
        let state = crate::server::State::new(Arc::new(reg))?;
        if let Some(admin) = admin {
            tokio::spawn(crate::server::admin::run(state.clone(), admin));
        }
        spawn_timers(&state);
        crate::server::run(state, listener).await;
        Ok(())
    })
}

/// Starts the batch jobs registry.toml puts on a timer: search when the
/// index moved, statistics over the configured access logs, static.
fn spawn_timers(state: &Arc<crate::server::State>) {
    let reg = &state.reg;
    let c = &reg.config;
    if c.search_interval > 0 {
        tokio::spawn(every(reg.clone(), c.search_interval, Job::Search, search_is_stale));
    }
    if c.stats_interval > 0 && !c.access_logs.is_empty() {
        tokio::spawn(every(reg.clone(), c.stats_interval, Job::Stats, |_| Ok(true)));
    }
    if c.static_interval > 0 {
        tokio::spawn(every(reg.clone(), c.static_interval, Job::Static, |_| Ok(true)));
    }
    if !c.retention.is_empty() && c.retention_interval > 0 {
        tokio::spawn(retention(reg.clone(), c.retention_interval));
    }
    if reg.log.is_some() && c.log.cosign_interval > 0 {
        tokio::spawn(recosign(state.clone(), c.log.cosign_interval));
    }
    if reg.log.is_some() && !c.log.witnesses.is_empty() {
        tokio::spawn(submit_to_witnesses(reg.clone()));
    }
}

/// Submits each new checkpoint to the configured witnesses (checked every
/// two seconds, off the writer's path: a 201 never waits on a witness) and
/// publishes their cosignatures.
async fn submit_to_witnesses(reg: Arc<Registry>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    let mut submitted: Option<String> = None;
    loop {
        tick.tick().await;
        let (r, last) = (reg.clone(), submitted.clone());
        let result = tokio::task::spawn_blocking(move || -> Result<Option<String>> {
            let _lock = r.lock_writer()?;
            let l = r.root.layout();
            // The tree the checkpoint names: its first three lines.
            let tree = r
                .root
                .read(&l.log_checkpoint())?
                .map(|b| String::from_utf8_lossy(&b).lines().take(3).collect::<Vec<_>>().join("\n"));
            match (&r.log, &tree) {
                (Some(log), Some(t)) if last.as_ref() != Some(t) => {
                    let n = log.submit(&r.root, &r.config.log.witnesses)?;
                    Ok((n == r.config.log.witnesses.len()).then(|| t.clone()).or(last))
                }
                _ => Ok(last),
            }
        })
        .await;
        match result {
            Ok(Ok(s)) => submitted = s,
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "submitting the checkpoint to witnesses failed")
            }
            Err(_) => {}
        }
    }
}

/// Re-cosigns the log's checkpoint with a fresh time every `secs` seconds,
/// even when nothing changed, so a frozen copy shows its age; and the
/// logs of the private organisations' registries this server writes.
async fn recosign(state: Arc<crate::server::State>, secs: u64) {
    let orgs = state.clone();
    periodically(state.reg.clone(), secs, "re-cosigning the log's checkpoint", move |reg| {
        for reg in std::iter::once(reg).chain(orgs.org_registries().iter().map(|r| &**r)) {
            // Under the writer lock: a group's newer checkpoint is never overwritten by an older one.
            let _lock = reg.lock_writer()?;
            if let Some(log) = &reg.log {
                log.recosign(&reg.root)?;
            }
        }
        Ok(())
    })
    .await
}

/// Whether the search shards were built for another commit than `main`'s.
fn search_is_stale(reg: &Registry) -> Result<bool> {
    let built_for = reg
        .root
        .read(&reg.root.layout().search_manifest())?
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["indexCommit"].as_str().map(String::from));
    Ok(built_for.as_deref() != Some(reg.index.head()?.to_string().as_str()))
}

/// Runs `job` every `secs` seconds when `due` says so, as a child process
/// (`cairn rebuild JOB`): a job's working set follows the registry's size
/// (the search job holds every package's terms), and a process of its own
/// hands all of it back to the system when it ends, where the server's
/// heap would keep its high-water mark. The writer lock is a file lock and
/// the hot cache follows the root's change counter, so the child takes
/// turns with the writer and its files are served at once.
async fn every(reg: Arc<Registry>, secs: u64, job: Job, due: fn(&Registry) -> Result<bool>) {
    periodically(reg, secs, "scheduled rebuild", move |reg| {
        if due(reg)? {
            let started = std::time::Instant::now();
            let ran = rebuild_in_child(reg, job);
            crate::metrics::get().job(job.name(), ran.is_ok(), started.elapsed());
            ran.with_context(|| format!("the {job:?} job"))?;
        }
        Ok(())
    })
    .await
}

fn rebuild_in_child(reg: &Registry, job: Job) -> Result<()> {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("rebuild").arg(job.name()).arg("--data").arg(&reg.data);
    if let Some(url) = &reg.config.public_url {
        cmd.arg("--public-url").arg(url);
    }
    for log in &reg.config.access_logs {
        cmd.arg("--access-log").arg(log);
    }
    let out = cmd.stdin(std::process::Stdio::null()).output()?;
    if !out.status.success() {
        anyhow::bail!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    tracing::debug!(report = %String::from_utf8_lossy(&out.stdout), "{job:?} job done");
    Ok(())
}

/// Applies the `[[retention]]` rules every `secs` seconds, as `cairn admin
/// retention` in a child process: its deletes go through the writer lock
/// and the hot cache sees them by the root's change counter, as a job's.
async fn retention(reg: Arc<Registry>, secs: u64) {
    periodically(reg, secs, "retention", |reg| {
        let started = std::time::Instant::now();
        let out = std::process::Command::new(std::env::current_exe()?)
            .args(["admin", "retention", "--data"])
            .arg(&reg.data)
            .stdin(std::process::Stdio::null())
            .output()?;
        crate::metrics::get().job("retention", out.status.success(), started.elapsed());
        if !out.status.success() {
            anyhow::bail!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        }
        tracing::info!(report = %String::from_utf8_lossy(&out.stdout), "retention applied");
        Ok(())
    })
    .await
}

/// Runs `work` on the blocking pool every `secs` seconds (the first time
/// after one period); a failure is logged as `what` and tried again next time.
async fn periodically(
    reg: Arc<Registry>,
    secs: u64,
    what: &'static str,
    work: impl Fn(&Registry) -> Result<()> + Clone + Send + 'static,
) {
    let period = std::time::Duration::from_secs(secs);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (reg, work) = (reg.clone(), work.clone());
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || work(&reg)).await {
            tracing::warn!(error = %format!("{e:#}"), "{what} failed");
        }
    }
}
