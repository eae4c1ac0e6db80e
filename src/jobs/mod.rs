//! Batch jobs (SPEC section 9): rebuild derived files from the sources of
//! truth with rayon, idempotently. Files are written content-named first and
//! pointed at last, so a reader never sees a mix of old and new.

pub mod advisories;
pub mod static_files;
pub mod stats;

use anyhow::Result;
use rayon::prelude::*;
use std::collections::HashSet;
use std::path::PathBuf;

use crate::derive::Recent;
use crate::index::{meta, IndexLine, Meta};
use crate::registry::Registry;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Job {
    /// Every derived document: index copies, package, version and owners documents, listings, user pages
    Static,
    /// Search shards, then listings and user pages
    Search,
    /// Download counts from --access-log files, then the documents of packages with new counts
    Stats,
    /// Affected versions of every advisory
    Advisories,
    /// All of the above
    All,
}

impl Job {
    /// Its name on the command line (clap's, from the variant) and in the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Job::Static => "static",
            Job::Search => "search",
            Job::Stats => "stats",
            Job::Advisories => "advisories",
            Job::All => "all",
        }
    }
}

#[derive(Default)]
pub struct Options {
    /// Access logs (combined format) for the stats job.
    pub access_logs: Vec<PathBuf>,
}

/// What the jobs keep of one package once its lines have been seen: small,
/// so a crates.io-sized index (1.5 M versions) fits in memory.
pub struct Package {
    /// The name as first published.
    pub name: String,
    /// The line of [`crate::derive::latest_version`] (else the last one),
    /// without its dependencies and features.
    pub latest: IndexLine,
    /// Every version, oldest first.
    pub versions: Vec<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    /// Its `meta/` file (deprecation), if it has one.
    pub meta: Option<Meta>,
}

impl Package {
    fn of(lines: &[IndexLine]) -> Package {
        let mut latest =
            crate::derive::latest_version(lines).or(lines.last()).expect("a package has lines").clone();
        latest.deps = Vec::new();
        latest.features = Default::default();
        latest.features2 = None;
        Package {
            name: lines[0].name.clone(),
            latest,
            versions: lines.iter().map(|l| l.vers.clone()).collect(),
            created_at: lines[0].pubtime.clone(),
            updated_at: lines.iter().filter_map(|l| l.pubtime.clone()).max(),
            meta: None,
        }
    }

    /// Downloads of all its versions, from [`crate::db::downloads::version_totals`].
    pub fn downloads(&self, totals: &crate::db::downloads::Totals) -> u64 {
        let counts = totals.get(&crate::name::canonical(&self.name));
        counts.map_or(0, |d| self.versions.iter().filter_map(|v| d.get(v)).sum())
    }
}

/// Every package at `main`, read once for all jobs.
pub struct Snapshot {
    /// Sorted by lowercase name.
    pub packages: Vec<Package>,
    /// The newest publishes (at most `RECENT`), newest first.
    pub recent: Vec<Recent>,
    pub versions: u64,
    /// Advisory files: (path under the index, bytes).
    pub advisories: Vec<(String, Vec<u8>)>,
    /// Meta files (SPEC section 5): (path under the index, bytes), also
    /// parsed into their packages' [`Package::meta`].
    pub meta: Vec<(String, Vec<u8>)>,
    /// Every other file (config.json), for the static index copy.
    pub other: Vec<(String, Vec<u8>)>,
    pub head: String,
}

/// Entries of `recent.json`.
pub const RECENT: usize = 100;

/// Sees each package's index file (its bytes and its lines) and its meta
/// file once, in parallel, while the snapshot is read.
pub type Visit<'a> = &'a (dyn Fn(&[u8], &[IndexLine], Option<&Meta>) -> Result<()> + Sync);

impl Snapshot {
    pub fn load(reg: &Registry) -> Result<Snapshot> {
        Snapshot::load_visiting(reg, &|_, _, _| Ok(()))
    }

    /// Reads `main` once: index files are read and parsed in parallel chunks,
    /// each package's lines handed to `visit`; only one chunk of full lines
    /// is held at a time.
    pub fn load_visiting(reg: &Registry, visit: Visit) -> Result<Snapshot> {
        const CHUNK: usize = 4096;
        let (head, files) = reg.index.files()?;
        let blobs = reg.index.blobs()?;
        let (mut advisories, mut other, mut package_files) = (Vec::new(), Vec::new(), Vec::new());
        let mut metas = Vec::new();
        for (path, id) in &files {
            if path == "config.json" {
                other.push((path.clone(), blobs.read(*id, <[u8]>::to_vec)?));
            } else if path.starts_with("advisories/") {
                advisories.push((path.clone(), blobs.read(*id, <[u8]>::to_vec)?));
            } else if path.starts_with(meta::DIR) {
                metas.push((path.clone(), blobs.read(*id, <[u8]>::to_vec)?));
            } else {
                package_files.push((path, *id));
            }
        }
        // Meta files by the lowercased name their path ends with.
        let mut by_name = std::collections::HashMap::new();
        for (path, bytes) in &metas {
            let m = Meta::parse(bytes).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
            let name = path.trim_end_matches(".json").rsplit('/').next().unwrap_or_default();
            by_name.insert(name.to_string(), m);
        }
        let mut recent: Vec<Recent> = Vec::new();
        let mut packages = Vec::with_capacity(package_files.len());
        for chunk in package_files.chunks(CHUNK) {
            let parsed: Vec<(Package, Vec<Recent>)> = chunk
                .par_iter()
                .map(|(path, id)| -> Result<Option<(Package, Vec<Recent>)>> {
                    let raw = blobs.read(*id, <[u8]>::to_vec)?;
                    let lines = IndexLine::parse_file(&raw).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
                    if lines.is_empty() {
                        return Ok(None);
                    }
                    let meta = by_name.get(&lines[0].name.to_ascii_lowercase());
                    visit(&raw, &lines, meta)?;
                    let mut package = Package::of(&lines);
                    package.meta = meta.cloned();
                    Ok(Some((package, newest(lines.iter().filter_map(Recent::of).collect()))))
                })
                .filter_map(Result::transpose)
                .collect::<Result<_>>()?;
            for (package, mut r) in parsed {
                packages.push(package);
                recent.append(&mut r);
            }
            recent = newest(std::mem::take(&mut recent));
        }
        packages.par_sort_by_cached_key(|p| p.name.to_ascii_lowercase());
        let versions = packages.iter().map(|p| p.versions.len() as u64).sum();
        Ok(Snapshot { packages, recent, versions, advisories, meta: metas, other, head: head.to_string() })
    }
}

/// The newest `RECENT` of `all`, newest first.
fn newest(mut all: Vec<Recent>) -> Vec<Recent> {
    all.sort_by(|a, b| b.published_at.cmp(&a.published_at));
    all.truncate(RECENT);
    all
}

/// Runs a job (or all of them, in dependency order) and returns a report.
pub fn rebuild(reg: &Registry, job: Job, opts: &Options) -> Result<serde_json::Value> {
    // Search writes files the writer never writes (its shards, the
    // listings and user pages) but for the delta, which it locks for; the
    // other jobs rewrite files the writer also writes, so they hold the
    // writer lock throughout.
    let _lock = if job == Job::Search { None } else { Some(reg.lock_writer()?) };
    let mut report = serde_json::Map::new();
    // New download counts change the package and version documents of the
    // packages they touch; `stats` alone rewrites only those.
    let mut only: Option<HashSet<String>> = None;
    let mut counted = None;
    if matches!(job, Job::Stats | Job::All) {
        let (stats, touched, totals) = stats::run(reg, &opts.access_logs)?;
        report.insert("stats".into(), stats);
        if job == Job::Stats {
            only = Some(touched);
        }
        counted = Some(totals);
    }
    // Download totals as the stats job left them, read once for the jobs that rank or show them.
    let totals = match counted {
        Some(totals) => totals,
        None if job == Job::Advisories => crate::db::downloads::Totals::new(),
        None => crate::db::downloads::version_totals(&reg.db()?)?,
    };
    let snap = if matches!(job, Job::Static | Job::Stats | Job::All) {
        let (snap, report_static) = static_files::run(reg, only.as_ref(), &totals)?;
        report.insert("static".into(), report_static);
        snap
    } else {
        Snapshot::load(reg)?
    };
    if job == Job::Search {
        report.insert("browse".into(), static_files::browse(reg, &snap, &totals)?);
    }
    if matches!(job, Job::Search | Job::All) {
        let mut built = crate::search::run(reg, &snap, &totals)?;
        // The delta keeps what this build does not contain. Folding it
        // rewrites a file the writer writes: under the writer lock.
        let _fold_lock = if job == Job::Search { Some(reg.lock_writer()?) } else { None };
        let folding = std::time::Instant::now();
        built["deltaLeft"] = crate::search::delta::fold(&reg.root, &reg.index, &snap.head)?.into();
        built["foldSeconds"] = folding.elapsed().as_secs_f64().into();
        report.insert("search".into(), built);
    }
    if matches!(job, Job::Advisories | Job::All) {
        report.insert("advisories".into(), advisories::run(reg, &snap)?);
    }
    Ok(serde_json::Value::Object(report))
}
