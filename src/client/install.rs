//! `cairn install`, `fetch` and `verify`: resolve against the sparse index
//! (or take the lock as it is), download every tarball concurrently through
//! the content-addressed cache, verify every one of them, inspect every one
//! under the registry's archive rules (each unpacked into a staging
//! directory as it comes: `target`), and only then write `cairn.lock` and
//! move the packages into place. A single failure anywhere before that
//! leaves the target directory and the lock untouched.

use anyhow::{anyhow, bail, Context, Result};
use futures_util::stream::StreamExt;
use rayon::prelude::*;
use semver::{Version, VersionReq};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::deprecation;
use super::lockfile::{LockedPackage, Lockfile};
use super::policy::Policy;
use super::progress;
use super::remote::{RegistryConfig, Remote};
use super::resolve::{self, dep_counts, dep_target, Universe};
use super::target::{Stage, Unpacking};
use super::trust::Trust;
use super::verify::Expected;
use crate::index::IndexLine;

pub struct InstallOptions {
    pub roots: Roots,
    /// Lock pins not to prefer (`cairn update`).
    pub release: Release,
    pub target: PathBuf,
    pub lockfile: PathBuf,
    /// Re-resolve even when the lock already satisfies the roots.
    pub resolve_again: bool,
    /// Concurrent downloads.
    pub jobs: usize,
    /// The cooldown and the provenance required.
    pub policy: Policy,
}

/// What to install.
pub enum Roots {
    /// Exactly what `cairn.lock` pins (no manifest, no names).
    Lock,
    /// These requirements (a manifest's, or names given), resolved with
    /// the lock's pins preferred wherever they satisfy them (cargo's rule).
    Given(Vec<(String, VersionReq)>),
}

/// Which lock pins `cairn update` lets go of.
pub enum Release {
    None,
    Names(Vec<String>),
    All,
}

/// What an install did, for its summary line and for tests.
#[derive(Debug, Default)]
pub struct Summary {
    pub packages: usize,
    pub downloaded: usize,
    pub downloaded_bytes: u64,
    pub unpacked: usize,
}

/// `NAME[@REQ]`; a bare version means `^VERSION`, as in cargo.
pub fn parse_spec(spec: &str) -> Result<(String, VersionReq)> {
    let (name, req) = match spec.split_once('@') {
        Some((n, r)) => (n, r),
        None => (spec, "*"),
    };
    crate::name::validate(name).map_err(|e| anyhow!("`{spec}`: {e}"))?;
    let req =
        VersionReq::parse(req).map_err(|e| anyhow!("`{spec}`: `{req}` is not a version requirement: {e}"))?;
    Ok((name.to_string(), req))
}

/// The roots of an install by name without a manifest: what the lock
/// holds at the top (any version), and the names given.
pub fn lock_roots(lock: Option<&Lockfile>, requested: &[(String, VersionReq)]) -> Vec<(String, VersionReq)> {
    let mut roots: BTreeMap<String, (String, VersionReq)> = BTreeMap::new();
    for p in lock.map(|l| l.roots()).unwrap_or_default() {
        roots.insert(crate::name::canonical(&p.name), (p.name.clone(), VersionReq::STAR));
    }
    for (n, req) in requested {
        roots.insert(crate::name::canonical(n), (n.clone(), req.clone()));
    }
    roots.into_values().collect()
}

/// Whether `lock` is exactly what `roots` need: each root locked at a
/// version it matches, and every locked package reachable from them.
fn lock_satisfies(lock: &Lockfile, roots: &[(String, VersionReq)]) -> bool {
    let matches = roots.iter().all(|(n, req)| {
        lock.get(n).is_some_and(|p| Version::parse(&p.version).is_ok_and(|v| req.matches(&v)))
    });
    let mut reached: HashSet<String> = HashSet::new();
    let mut todo: Vec<String> = roots.iter().map(|(n, _)| n.clone()).collect();
    while let Some(n) = todo.pop() {
        if let Some(p) = lock.get(&n) {
            if reached.insert(crate::name::canonical(&p.name)) {
                todo.extend(p.dependencies.iter().cloned());
            }
        }
    }
    matches && reached.len() == lock.packages.len()
}

/// One package to install.
struct Planned {
    want: Expected,
    /// Its index line, when this install resolved it.
    line: Option<IndexLine>,
}

/// Installs `opts.roots` and returns what it did and the lock now in force.
pub async fn install(remote: &Remote, opts: &InstallOptions) -> Result<(Summary, Lockfile)> {
    let started = Instant::now();
    let lock = Lockfile::load(&opts.lockfile)?;
    let keep_lock = match (&opts.roots, &lock) {
        (Roots::Lock, _) => true,
        (Roots::Given(roots), Some(lock)) => {
            !opts.resolve_again && matches!(opts.release, Release::None) && lock_satisfies(lock, roots)
        }
        (Roots::Given(_), None) => false,
    };
    let (plan, config, new_lock) = match (&opts.roots, lock.as_ref().filter(|_| keep_lock)) {
        (_, Some(lock)) => {
            let plan = lock
                .packages
                .iter()
                .map(|p| Planned {
                    want: Expected {
                        name: p.name.clone(),
                        version: p.version.clone(),
                        sha256: p.checksum.to_lowercase(),
                        blake3: None,
                    },
                    line: None,
                })
                .collect();
            (plan, None, lock.clone())
        }
        (Roots::Lock, None) => bail!(
            "there is no {} here: name the packages to install (`cairn add NAME` records them in cairn.toml)",
            opts.lockfile.display()
        ),
        (Roots::Given(roots), None) => {
            let mut locked = HashMap::new();
            for p in lock.iter().flat_map(|l| &l.packages) {
                let released = match &opts.release {
                    Release::None => false,
                    Release::All => true,
                    Release::Names(names) => {
                        names.iter().any(|n| crate::name::canonical(n) == crate::name::canonical(&p.name))
                    }
                };
                if let (false, Ok(v)) = (released, Version::parse(&p.version)) {
                    locked.insert(p.name.to_lowercase(), v);
                }
            }
            // config.json (and the key's pin) and the index files are asked
            // at once; a failure of the first is the one reported.
            let names: Vec<String> = roots.iter().map(|(n, _)| n.clone()).collect();
            let (config, files) = tokio::join!(remote.connect(false), fetch_closure(remote, &names, &locked));
            let (config, mut files) = (config?, files?);
            opts.policy.cool_down(&mut files, &locked, chrono::Utc::now().timestamp());
            let (plan, new_lock) = resolve_plan(&files, roots, &locked, &opts.policy)?;
            (plan, Some(config), new_lock)
        }
    };

    // A resolution asks the registry which packages are deprecated while
    // the rest goes on; an install from the lock asks nothing and says
    // what the cached meta files say.
    let names: Vec<String> = plan.iter().map(|p| p.want.name.clone()).collect();
    let asking =
        config.is_some().then(|| tokio::spawn(deprecation::ask(remote.clone(), names.clone(), opts.jobs)));
    let trust = match &config {
        Some(c) => Trust { pubkey: c.pubkey.clone(), name: c.name.clone() },
        None => remote.trust().await?,
    };
    let checking = std::time::Instant::now();
    let lines: Vec<IndexLine> = match &config {
        // The lines just resolved: every one is checked.
        Some(_) => plan.iter().filter_map(|p| p.line.clone()).collect(),
        // From a lock, only versions this client has not yet seen in the
        // log need their index lines (and a check).
        None => {
            let wanted: Vec<(String, String, String)> = plan
                .iter()
                .map(|p| (p.want.name.clone(), p.want.version.clone(), p.want.sha256.clone()))
                .collect();
            let unproven: HashSet<(&str, &str)> = super::log::unproven(remote, &wanted)?
                .into_iter()
                .map(|(n, v, _)| (&n[..], &v[..]))
                .collect();
            let todo: Vec<&Planned> =
                plan.iter().filter(|p| unproven.contains(&(&p.want.name[..], &p.want.version[..]))).collect();
            lines_of(remote, &todo, opts.jobs).await?
        }
    };
    // Provenance required: the lines of the packages it covers (fetched
    // for those a lock pins and the log proved before, and checked against
    // the log with the rest), refused before anything is downloaded.
    let mut lines = lines;
    if !opts.policy.require_provenance.is_empty() {
        let have: HashSet<(String, &str)> =
            lines.iter().map(|l| (l.name.to_lowercase(), l.vers.as_str())).collect();
        let missing: Vec<&Planned> = plan
            .iter()
            .filter(|p| opts.policy.wants_provenance(&p.want.name))
            .filter(|p| !have.contains(&(p.want.name.to_lowercase(), p.want.version.as_str())))
            .collect();
        let fetched = lines_of(remote, &missing, opts.jobs).await?;
        lines.extend(fetched);
        opts.policy.check_provenance(&lines).context("nothing was downloaded or unpacked")?;
    }
    // The log is checked while the blobs download (each verified against
    // its signature as it lands); nothing is unpacked unless both pass.
    let log_check = async {
        if config.is_some() || !lines.is_empty() {
            super::log::check(remote, config.as_ref(), &lines).await?;
        }
        tracing::debug!(
            ms = checking.elapsed().as_millis() as u64,
            lines = lines.len(),
            "the log's checks done"
        );
        Ok(())
    };
    // What is to unpack is inspected and unpacked (staged) as it is read
    // or downloaded; it moves into place once every check passed.
    let wants: Vec<&Expected> = plan.iter().map(|p| &p.want).collect();
    let unpacking = Unpacking::new(&opts.target, &wants)?;
    let ((), summary) = tokio::try_join!(
        log_check,
        download_all(remote, config.as_ref(), &trust, &plan, &unpacking, opts.jobs)
    )?;
    // Every check passed: the lock is written (and fsync'd) before the
    // unpacked files move into place.
    if Some(&new_lock) != lock.as_ref() {
        new_lock.save(&opts.lockfile)?;
    }
    let unpacked = unpacking.finish(&wants)?;
    deprecation::warn(match asking {
        Some(task) => task.await?,
        None => deprecation::cached(remote, &names),
    });
    let summary = Summary { packages: plan.len(), unpacked, ..summary };
    eprintln!(
        "installed {} into {} ({} downloaded, {} from cache, {} unpacked) in {:.2}s",
        crate::words::count(summary.packages, "package"),
        opts.target.display(),
        summary.downloaded,
        summary.packages - summary.downloaded,
        summary.unpacked,
        started.elapsed().as_secs_f64()
    );
    Ok((summary, new_lock))
}

/// Fetches the index files of `roots` and everything they can reach,
/// concurrently (at most 32 requests in flight over keep-alive connections).
/// The index line of each planned version (the log checks them), found by
/// version and checksum in the package's index file (revalidated: the
/// resolver fetched it just before, or the lock names it).
async fn lines_of(remote: &Remote, plan: &[&Planned], jobs: usize) -> Result<Vec<IndexLine>> {
    use futures_util::TryStreamExt;
    futures_util::stream::iter(plan)
        .map(|p| async move {
            let lines = remote.index_file(&p.want.name).await?.unwrap_or_default();
            lines.into_iter().find(|l| l.vers == p.want.version && l.cksum == p.want.sha256).ok_or_else(
                || {
                    anyhow!(
                        "the index lists no {} {} with checksum {}",
                        p.want.name,
                        p.want.version,
                        p.want.sha256
                    )
                },
            )
        })
        .buffer_unordered(jobs.max(1))
        .try_collect()
        .await
}

pub async fn fetch_closure(
    remote: &Remote,
    roots: &[String],
    locked: &HashMap<String, Version>,
) -> Result<HashMap<String, Option<Vec<IndexLine>>>> {
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut seen: HashSet<String> = HashSet::new();
    // A task per file, so that reading, parsing and caching the files that
    // arrive runs on every worker; the rest are aborted on a failure.
    let mut pending = tokio::task::JoinSet::new();
    let spawn = |pending: &mut tokio::task::JoinSet<_>, name: String| {
        let (remote, sem) = (remote.clone(), sem.clone());
        pending.spawn(async move {
            let _permit = sem.acquire().await.expect("semaphore open");
            let r = remote.index_file(&name).await;
            (name, r)
        });
    };
    for r in roots {
        if seen.insert(r.to_lowercase()) {
            spawn(&mut pending, r.clone());
        }
    }
    let bar = progress::spinner("fetching the index");
    let mut files = HashMap::new();
    while let Some(joined) = pending.join_next().await {
        let (name, fetched) = joined?;
        let key = name.to_lowercase();
        let lines = fetched?;
        if lines.iter().flatten().any(IndexLine::is_npm) {
            bail!(
                "`{name}` is an npm package: install it with npm (`npm install {name} --registry {}/npm/`), \
                 which resolves npm's ranges",
                remote.url
            );
        }
        bar.inc(1);
        for line in lines.iter().flatten() {
            let pinned =
                locked.get(&key).is_some_and(|v| Version::parse(&line.vers).ok().as_ref() == Some(v));
            if line.yanked && !pinned {
                continue;
            }
            for d in line.deps.iter().filter(|d| dep_counts(d)) {
                let target = dep_target(d);
                if seen.insert(target.to_lowercase()) {
                    spawn(&mut pending, target.to_string());
                }
            }
        }
        files.insert(key, lines);
    }
    bar.finish_and_clear();
    Ok(files)
}

/// Resolves `roots` over the index files fetched (`policy`'s cooldown applied).
fn resolve_plan(
    files: &HashMap<String, Option<Vec<IndexLine>>>,
    roots: &[(String, VersionReq)],
    locked: &HashMap<String, Version>,
    policy: &Policy,
) -> Result<(Vec<Planned>, Lockfile)> {
    let universe = Universe::new(files);
    let solution = resolve::resolve(&universe, roots, locked).map_err(|e| match policy.min_age {
        Some(age) => anyhow!("{e}\n(versions published less than {age} s ago are left out: --min-age)"),
        None => anyhow!("{e}"),
    })?;

    let mut plan = Vec::new();
    let mut locked_out = Vec::new();
    for line in solution.values() {
        if line.yanked {
            eprintln!("note: {} {} is yanked; kept because the lock pins it", line.name, line.vers);
        }
        let mut deps: Vec<String> = line
            .deps
            .iter()
            .filter(|d| dep_counts(d))
            .filter_map(|d| solution.get(&dep_target(d).to_lowercase()).map(|l| l.name.clone()))
            .collect();
        deps.sort();
        deps.dedup();
        locked_out.push(LockedPackage {
            name: line.name.clone(),
            version: line.vers.clone(),
            checksum: line.cksum.clone(),
            dependencies: deps,
        });
        plan.push(Planned { want: Expected::from_line(line), line: Some(line.clone()) });
    }
    eprintln!("resolved {}", crate::words::count(plan.len(), "package"));
    Ok((plan, Lockfile::new(locked_out)))
}

/// Reads (from the cache, verified on every core) or downloads (`jobs`
/// at a time, each verified on a worker thread) every planned blob, with
/// one progress display; those `unpacking` is to unpack are inspected under
/// the registry's archive rules and staged. Fails on the first refusal.
async fn download_all(
    remote: &Remote,
    config: Option<&RegistryConfig>,
    trust: &Trust,
    plan: &[Planned],
    unpacking: &Unpacking,
    jobs: usize,
) -> Result<Summary> {
    let mut stage: Vec<Option<Stage>> = vec![None; plan.len()];
    unpacking.todo.iter().for_each(|&i| stage[i] = unpacking.stage().cloned());
    let cached: Vec<bool> = plan
        .par_iter()
        .zip(&stage)
        .map(|(p, stage)| {
            let Some(bytes) = remote.cached_blob(trust, &p.want) else { return Ok(false) };
            if let Some(stage) = stage {
                check_archive(&p.want, &bytes)?;
                stage.put(&p.want, &bytes)?;
            }
            Ok(true)
        })
        .collect::<Result<_>>()?;
    let missing: Vec<usize> = (0..plan.len()).filter(|&i| !cached[i]).collect();
    let mut summary = Summary::default();
    if missing.is_empty() {
        return Ok(summary);
    }
    // The config is needed only for a download.
    let config = Arc::new(match config {
        Some(c) => c.clone(),
        None => remote.connect(false).await?,
    });
    let sem = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let bar = progress::bar(missing.len() as u64, "downloading");
    // A JoinSet: a refusal drops the rest, which aborts them.
    let mut tasks = tokio::task::JoinSet::new();
    for i in missing {
        let (remote, trust, config, sem, bar) =
            (remote.clone(), trust.clone(), config.clone(), sem.clone(), bar.clone());
        let (want, stage) = (plan[i].want.clone(), stage[i].clone());
        tasks.spawn(async move {
            let _permit = sem.acquire().await.expect("semaphore open");
            // Inspected and staged in the job that verifies it.
            let staging = want.clone();
            let r = remote
                .blob(Some(&config), &trust, &want, move |bytes| match stage {
                    Some(stage) => check_archive(&staging, &bytes).and_then(|()| stage.put(&staging, &bytes)),
                    None => Ok(()),
                })
                .await;
            bar.inc(1);
            let ((), n) = r?;
            Ok::<_, anyhow::Error>(n)
        });
    }
    while let Some(r) = tasks.join_next().await {
        let n = r??;
        if n > 0 {
            summary.downloaded += 1;
            summary.downloaded_bytes += n;
        }
    }
    bar.finish_and_clear();
    Ok(summary)
}

/// The registry's own inspection of an archive to unpack: every one passes
/// it before any is unpacked.
fn check_archive(want: &Expected, bytes: &[u8]) -> Result<()> {
    crate::archive::unpack::check(bytes, &want.name, &want.version)
        .map(|_| ())
        .map_err(|e| anyhow!("refusing {} {}: {e}", want.name, want.version))
}

/// The highest usable version of `name` that `req` matches (an exact
/// `=VERSION` may name a yanked one).
pub fn pick<'a>(lines: &'a [IndexLine], req: &VersionReq) -> Option<&'a IndexLine> {
    let exact = req.comparators.len() == 1 && req.comparators[0].op == semver::Op::Exact;
    lines
        .iter()
        .filter_map(|l| Version::parse(&l.vers).ok().map(|v| (v, l)))
        .filter(|(v, l)| req.matches(v) && (!l.yanked || exact))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, l)| l)
}
