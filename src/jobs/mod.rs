//! Batch jobs (SPEC section 9): rebuild derived files from the sources of
//! truth with rayon, idempotently. Files are written content-named first and
//! pointed at last, so a reader never sees a mix of old and new.

pub mod advisories;
pub mod search;
pub mod static_files;
pub mod stats;

use anyhow::Result;
use rayon::prelude::*;
use std::path::PathBuf;

use crate::index::IndexLine;
use crate::registry::Registry;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Job {
    Static,
    Search,
    Stats,
    Advisories,
    All,
}

#[derive(Default)]
pub struct Options {
    /// Access logs (combined format) for the stats job.
    pub access_logs: Vec<PathBuf>,
}

/// Every package's index lines at `main`, parsed once for all jobs.
pub struct Snapshot {
    /// (package name as first published, its lines oldest first), sorted by lowercase name.
    pub packages: Vec<(String, Vec<IndexLine>)>,
    /// Advisory files: (path under the index, bytes).
    pub advisories: Vec<(String, Vec<u8>)>,
    /// Every other file (config.json), for the static index copy.
    pub other: Vec<(String, Vec<u8>)>,
    pub head: String,
}

impl Snapshot {
    /// Reads `main` once, parsing index files in parallel chunks as the
    /// tree is walked, so only one chunk of raw bytes is held at a time.
    pub fn load(reg: &Registry) -> Result<Snapshot> {
        const CHUNK: usize = 4096;
        let mut packages = Vec::new();
        let (mut advisories, mut other) = (Vec::new(), Vec::new());
        let mut chunk: Vec<(String, Vec<u8>)> = Vec::with_capacity(CHUNK);
        let mut parse = |chunk: &mut Vec<(String, Vec<u8>)>| -> Result<()> {
            let parsed: Result<Vec<(String, Vec<IndexLine>)>> = chunk
                .par_iter()
                .map(|(path, bytes)| {
                    let lines = IndexLine::parse_file(bytes).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
                    Ok((lines.first().map(|l| l.name.clone()).unwrap_or_default(), lines))
                })
                .collect();
            packages.extend(parsed?.into_iter().filter(|(n, _)| !n.is_empty()));
            chunk.clear();
            Ok(())
        };
        let head = reg.index.for_each_file(|path, bytes| {
            if path == "config.json" {
                other.push((path.to_string(), bytes.to_vec()));
            } else if path.starts_with("advisories/") {
                advisories.push((path.to_string(), bytes.to_vec()));
            } else if !bytes.is_empty() {
                chunk.push((path.to_string(), bytes.to_vec()));
                if chunk.len() == CHUNK {
                    parse(&mut chunk)?;
                }
            }
            Ok(())
        })?;
        parse(&mut chunk)?;
        packages.par_sort_by_key(|(n, _)| n.to_ascii_lowercase());
        Ok(Snapshot { packages, advisories, other, head: head.to_string() })
    }
}

/// Runs a job (or all of them, in dependency order) and returns a report.
pub fn rebuild(reg: &Registry, job: Job, opts: &Options) -> Result<serde_json::Value> {
    // Search writes only its own files; the other jobs rewrite files the
    // writer also writes, so they hold the writer lock.
    let _lock = if job == Job::Search { None } else { Some(reg.lock_writer()?) };
    let mut report = serde_json::Map::new();
    if matches!(job, Job::Stats | Job::All) {
        report.insert("stats".into(), stats::run(reg, &opts.access_logs)?);
    }
    let snap = Snapshot::load(reg)?;
    // Package documents carry download counts, so new counts rewrite them.
    if matches!(job, Job::Static | Job::Stats | Job::All) {
        report.insert("static".into(), static_files::run(reg, &snap)?);
    }
    if matches!(job, Job::Search | Job::All) {
        report.insert("search".into(), search::run(reg, &snap)?);
    }
    if matches!(job, Job::Advisories | Job::All) {
        report.insert("advisories".into(), advisories::run(reg, &snap)?);
    }
    Ok(serde_json::Value::Object(report))
}
