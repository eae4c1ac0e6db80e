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
    let reg = Registry::open(&args.data.data, Config::load(&args.data.data)?)?;
    let mut report = crate::fsck::check(&reg)?;
    if args.repair && !report.findings.is_empty() {
        for f in &report.findings {
            eprintln!("found {f}");
        }
        for done in crate::fsck::repair(&reg, &report)? {
            eprintln!("repaired: {done}");
        }
        report = crate::fsck::check(&reg)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for f in &report.findings {
            println!("{f}");
        }
    }
    let summary = summary(&report);
    if !report.findings.is_empty() {
        return Err(Findings(summary).into());
    }
    eprintln!("{summary}");
    Ok(())
}

/// `fsck: 2 findings at {commit}: 3 packages, 4 versions, 6 commits checked in 0.01s`.
fn summary(report: &Report) -> String {
    use crate::words::count;
    let found = match report.findings.len() {
        0 => "no findings".to_string(),
        n => count(n, "finding"),
    };
    let mut s = format!(
        "fsck: {found} at {}: {}, {}, {} checked in {:.2}s",
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
