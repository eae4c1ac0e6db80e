//! `cairn audit [LOCKFILE]`: checks a `cairn.lock` (or a `Cargo.lock`)
//! against the registry's advisories ([`crate::audit`]: the advisory index,
//! then only the per-package files of locked packages it names) of the
//! last login unless `--registry` names one, its key checked against the
//! pin, and prints each finding as `ID package version (fixed: …)`, one per
//! line. Exit 1 when there is any finding (a [`Findings`] error), 0 when
//! there is none.

use anyhow::{Context, Result};
use std::path::PathBuf;

use super::Findings;
use crate::audit::{audit, read_lockfile};

#[derive(clap::Args)]
pub struct AuditArgs {
    /// The lockfile: cairn.lock, or a Cargo.lock.
    #[arg(default_value = "cairn.lock")]
    lockfile: PathBuf,
    #[command(flatten)]
    reg: super::user::RegistryArgs,
}

pub fn run(args: AuditArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.lockfile)
        .with_context(|| format!("reading {}", args.lockfile.display()))?;
    let cargo = args.lockfile.file_name().is_some_and(|n| n == "Cargo.lock");
    let locked =
        read_lockfile(&text, cargo).with_context(|| format!("parsing {}", args.lockfile.display()))?;
    let rt = super::user::runtime()?;
    let remote = args.reg.remote()?;
    rt.block_on(remote.connect(false))?;
    let mut get = |key: &str| Ok(rt.block_on(remote.static_file(key))?);
    let all = audit(&crate::layout::Layout::public(), &mut get, &locked)?.with_context(|| {
        format!(
            "{}{} is not there: the registry publishes no advisory index yet, so there is nothing \
             to check against (its advisories job writes one: `cairn rebuild advisories` on the registry)",
            remote.url,
            crate::layout::url(&crate::layout::Layout::public().advisories_index())
        )
    })?;
    for f in &all {
        let fixed = if f.fixed.is_empty() { "none".to_string() } else { f.fixed.join(", ") };
        println!("{} {} {} (fixed: {fixed})", f.id, f.package, f.version);
    }
    if all.is_empty() {
        eprintln!("no known advisories affect the {}", crate::words::count(locked.len(), "locked package"));
        Ok(())
    } else {
        Err(Findings(format!("{} found", crate::words::count(all.len(), "vulnerable package version")))
            .into())
    }
}
