//! `cairn fsck`: one line per finding on stdout (`{kind}: {what}`), a
//! summary on stderr; exit 1 when anything was found. With `--repair`, the
//! findings and the repairs go to stderr first, and what is printed and
//! decides the exit code is a second check after the repairs.

use anyhow::Result;

use super::{DataArg, Findings};
use crate::config::Config;
use crate::fsck::Report;
use crate::registry::Registry;

#[derive(clap::Args)]
pub struct FsckArgs {
    #[command(flatten)]
    data: DataArg,
    /// Print the report as JSON instead of one line per finding.
    #[arg(long)]
    json: bool,
    /// Repair what can be: rewrite derived files, remove orphan blobs
    /// (older than an hour); never re-sign. Then check again.
    #[arg(long)]
    repair: bool,
}

pub fn run(args: FsckArgs) -> Result<()> {
    let config = Config::load(&args.data.data)?;
    // On shared storage the node's working copy of the index is a running
    // server's too, whose groups pull into it and merge its packs: fsck
    // pulls and reads it between groups, under the writer lock (a repair
    // takes that lock itself, so it lets go after the pull).
    let mut writer = match config.storage.kind {
        crate::config::StorageKind::S3 => Some(crate::registry::lock_writer_of(&args.data.data)?),
        _ => None,
    };
    let reg = Registry::open(&args.data.data, config)?;
    if args.repair {
        writer.take();
    }
    // Then each private organisation's registry, which is one of its own.
    let private = match reg.key {
        Some(_) => reg.private_registries(&reg.db()?)?,
        None => Vec::new(),
    };
    let mut reports = Vec::new();
    for r in std::iter::once(&reg).chain(&private) {
        // A private registry's working copy likewise, under its own lock.
        let _its_writer = match r.space.org().is_some() && writer.is_some() {
            true => Some(r.lock_writer()?),
            false => None,
        };
        reports.push((r.root.layout().top().to_string(), check(r, args.repair)?));
    }
    let (public, orgs) = reports.split_first().expect("the public registry's report");
    if args.json {
        let mut doc = serde_json::to_value(&public.1)?;
        if !orgs.is_empty() {
            doc["orgs"] = orgs.iter().map(|(top, report)| (top.clone(), serde_json::json!(report))).collect();
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for (top, report) in &reports {
            for f in &report.findings {
                match top.is_empty() {
                    true => println!("{f}"),
                    false => println!("{}: {top}: {}", f.kind.as_str(), f.what),
                }
            }
        }
    }
    let summaries: Vec<String> = reports.iter().map(|(top, report)| summary(top, report)).collect();
    if reports.iter().any(|(_, r)| !r.findings.is_empty()) {
        return Err(Findings(summaries.join("\n")).into());
    }
    eprintln!("{}", summaries.join("\n"));
    Ok(())
}

/// One registry's check; with `repair`, what can be repaired is, and the
/// report is of a second check after it (a private registry's derived
/// files, which no check compares, are rewritten on every repair).
fn check(reg: &Registry, repair: bool) -> Result<Report> {
    let report = crate::fsck::check(reg)?;
    if !repair || (report.findings.is_empty() && reg.space.derived_files_checked()) {
        return Ok(report);
    }
    for f in &report.findings {
        eprintln!("found {f}");
    }
    for done in crate::fsck::repair(reg, &report)? {
        eprintln!("repaired: {done}");
    }
    crate::fsck::check(reg)
}

/// `fsck: 2 findings at {commit}: 3 packages, 4 versions, 6 commits checked
/// in 0.01s`, with a private registry's prefix after `fsck`.
fn summary(top: &str, report: &Report) -> String {
    use crate::words::count;
    let found = match report.findings.len() {
        0 => "no findings".to_string(),
        n => count(n, "finding"),
    };
    let top = match top {
        "" => String::new(),
        top => format!(" {}", top.trim_end_matches('/')),
    };
    let mut s = format!(
        "fsck{top}: {found} at {}: {}, {}, {} checked in {:.2}s",
        report.head,
        count(report.packages, "package"),
        count(report.versions, "version"),
        count(report.commits, "commit"),
        report.seconds,
    );
    if let (Some(now), false) = (&report.moved_to, report.findings.is_empty()) {
        // A writer changed the registry during the run (see crate::fsck).
        s += &format!("; main moved to {now} meanwhile: run fsck again to tell a race from damage");
    }
    s
}
