//! The consumer's verbs (SPEC section 10): `new`, `add`, `remove`, `list`,
//! `update`, `outdated` and `install`, over the project's `cairn.toml`
//! (the direct requirements) and `cairn.lock` (what they resolved to).
//!
//! `install` with no names installs what cairn.toml asks for, keeping the
//! lock's pins that still satisfy it (without a manifest: exactly the
//! lock). `install NAME…` in a project with a cairn.toml records the names
//! as `add` does, so the manifest and the lock never disagree; without a
//! manifest it installs them beside what the lock holds.

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use semver::VersionReq;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use super::user::{runtime, LogArgs, RegistryArgs};
use crate::client::install::{self, InstallOptions, Release, Roots};
use crate::client::lockfile::{self, Lockfile};
use crate::client::policy::Policy;
use crate::client::project::{self, Project};
use crate::name::canonical;
use crate::words::count;

/// Where a project's files are, and how to reach its registry.
#[derive(Args)]
pub struct ProjectArgs {
    /// Where packages are unpacked.
    #[arg(long, default_value = "cairn_packages")]
    target: PathBuf,
    /// The lock file.
    #[arg(long, default_value = lockfile::FILE)]
    lockfile: PathBuf,
    /// Concurrent downloads.
    #[arg(long, default_value_t = 16)]
    jobs: usize,
    /// Leave out versions published less than this long ago (`3d`, `12h`;
    /// `[install] min_age`), unless the lock pins them.
    #[arg(long, value_name = "AGE")]
    min_age: Option<String>,
    /// Stop before unpacking when a package NAME (or NAME=OWNER/REPO; `*`
    /// ends a prefix) lacks provenance from a matching repository
    /// (repeatable; `[install] require_provenance`).
    #[arg(long, value_name = "PATTERN")]
    require_provenance: Vec<String>,
    #[command(flatten)]
    reg: RegistryArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Subcommand)]
pub enum ProjectCommand {
    /// Scaffold a package (cairn.toml and README.md) in ./NAME, or here when NAME is omitted.
    New {
        name: Option<String>,
        /// library, skill, mcp, subagent, prompt, command, hook, …
        #[arg(long, default_value = "library")]
        kind: String,
    },
    /// Record NAME[@REQ]… in cairn.toml's [dependencies] (default `^` of the version resolved) and install.
    Add {
        #[arg(required = true)]
        specs: Vec<String>,
        #[command(flatten)]
        project: ProjectArgs,
    },
    /// Drop dependencies from cairn.toml, re-resolve, and delete what is no longer needed.
    Remove {
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        project: ProjectArgs,
    },
    /// Show what is installed (direct dependencies marked), or the dependency graph.
    List {
        /// Print the dependency graph.
        #[arg(long)]
        tree: bool,
        /// Where packages are unpacked.
        #[arg(long, default_value = "cairn_packages")]
        target: PathBuf,
        /// The lock file.
        #[arg(long, default_value = lockfile::FILE)]
        lockfile: PathBuf,
    },
    /// Re-resolve within cairn.toml's ranges, ignoring the lock's pins of NAME… (all when none).
    Update {
        names: Vec<String>,
        #[command(flatten)]
        project: ProjectArgs,
    },
    /// Show, per locked package, the newest version within cairn.toml's ranges and the newest of all.
    Outdated {
        /// The lock file.
        #[arg(long, default_value = lockfile::FILE)]
        lockfile: PathBuf,
        #[command(flatten)]
        reg: RegistryArgs,
    },
    /// Resolve, download, verify and unpack packages; write cairn.lock.
    Install {
        /// NAME[@REQ]… (recorded in cairn.toml when there is one); none: what cairn.toml and cairn.lock say.
        specs: Vec<String>,
        /// Resolve again even if the lock already satisfies the request.
        #[arg(long)]
        update: bool,
        #[command(flatten)]
        project: ProjectArgs,
    },
}

pub fn run(cmd: ProjectCommand) -> Result<()> {
    let manifest_path = std::path::absolute(project::FILE)?;
    let manifest = Project::load(&manifest_path)?;
    match cmd {
        ProjectCommand::New { name, kind } => new(name, &kind),
        ProjectCommand::List { tree, target, lockfile } => list(manifest, tree, &target, &lockfile),
        ProjectCommand::Add { specs, project } => {
            runtime()?.block_on(add(manifest, &manifest_path, &specs, &project, false))
        }
        ProjectCommand::Remove { names, project } => runtime()?.block_on(remove(manifest, &names, &project)),
        ProjectCommand::Update { names, project } => runtime()?.block_on(update(manifest, names, &project)),
        ProjectCommand::Outdated { lockfile, reg } => {
            let lock = Lockfile::load(&lockfile)?.ok_or_else(|| {
                anyhow!("there is no {} here: run `cairn install` first", lockfile.display())
            })?;
            let roots = match &manifest {
                Some(m) => m.requirements()?,
                None => install::lock_roots(Some(&lock), &[]),
            };
            runtime()?.block_on(outdated(&reg.remote()?, &roots, &lock))
        }
        ProjectCommand::Install { specs, update, project } => runtime()?.block_on(async {
            match manifest {
                Some(m) if !specs.is_empty() => add(Some(m), &manifest_path, &specs, &project, update).await,
                Some(m) => {
                    project.install(Roots::Given(m.requirements()?), Release::None, update).await.map(|_| ())
                }
                None => {
                    let lock = Lockfile::load(&project.lockfile)?;
                    let requested: Vec<(String, VersionReq)> =
                        specs.iter().map(|s| install::parse_spec(s)).collect::<Result<_>>()?;
                    let roots = if requested.is_empty() && !update {
                        Roots::Lock
                    } else {
                        Roots::Given(install::lock_roots(lock.as_ref(), &requested))
                    };
                    project.install(roots, Release::None, update).await.map(|_| ())
                }
            }
        }),
    }
}

async fn remove(manifest: Option<Project>, names: &[String], project: &ProjectArgs) -> Result<()> {
    let mut m = manifest.ok_or_else(|| {
        anyhow!("there is no {} here: `cairn remove` edits a project's manifest", project::FILE)
    })?;
    for n in names {
        if !m.remove(n) {
            bail!("`{n}` is not a dependency in {}: `cairn list` shows what is", m.path().display());
        }
    }
    let before = Lockfile::load(&project.lockfile)?;
    let after = project.install(Roots::Given(m.requirements()?), Release::None, false).await?;
    m.save()?;
    report_changes(before.as_ref(), &after);
    eprintln!("removed {} from {}", names.join(", "), project::FILE);
    Ok(())
}

async fn update(manifest: Option<Project>, names: Vec<String>, project: &ProjectArgs) -> Result<()> {
    let before = Lockfile::load(&project.lockfile)?
        .ok_or_else(|| anyhow!("there is no {} here: run `cairn install` first", lockfile::FILE))?;
    if let Some(n) = names.iter().find(|n| before.get(n).is_none()) {
        bail!("`{n}` is not in {}: `cairn list` shows what is", lockfile::FILE);
    }
    let roots = match &manifest {
        Some(m) => m.requirements()?,
        None => install::lock_roots(Some(&before), &[]),
    };
    let release = if names.is_empty() { Release::All } else { Release::Names(names) };
    let after = project.install(Roots::Given(roots), release, true).await?;
    if !report_changes(Some(&before), &after) {
        eprintln!("every locked package is already the newest its requirements allow");
    }
    Ok(())
}

impl ProjectArgs {
    /// The install policy: these flags over the project's `[install]`.
    fn policy(&self) -> Result<Policy> {
        let manifest = Project::load(&std::path::absolute(project::FILE)?)?;
        Policy::new(manifest.as_ref(), self.min_age.as_deref(), &self.require_provenance)
    }

    /// Installs `roots` and returns the lock now in force.
    async fn install(&self, roots: Roots, release: Release, resolve_again: bool) -> Result<Lockfile> {
        let opts = InstallOptions {
            roots,
            release,
            target: std::path::absolute(&self.target)?,
            lockfile: std::path::absolute(&self.lockfile)?,
            resolve_again,
            jobs: self.jobs,
            policy: self.policy()?,
        };
        let (_, lock) = install::install(&self.reg.remote_checked(&self.log)?, &opts).await?;
        Ok(lock)
    }
}

fn new(name: Option<String>, kind: &str) -> Result<()> {
    let cwd = std::env::current_dir()?;
    let (dir, name) = match name {
        Some(n) => (cwd.join(&n), n),
        None => {
            let n = cwd
                .file_name()
                .and_then(|n| n.to_str())
                .context("the current directory has no usable name")?;
            (cwd.clone(), n.to_string())
        }
    };
    project::scaffold(&dir, &name, kind)?;
    eprintln!("created the {kind} package `{name}` in {}", dir.display());
    Ok(())
}

/// `add`: the manifest's requirements with the new ones in their place,
/// installed; then each new one recorded, as the user wrote it or as `^`
/// of the version resolved.
async fn add(
    manifest: Option<Project>,
    path: &Path,
    specs: &[String],
    project: &ProjectArgs,
    resolve_again: bool,
) -> Result<()> {
    let mut m = manifest.unwrap_or_else(|| Project::empty(path));
    let mut roots: BTreeMap<String, (String, VersionReq)> =
        m.requirements()?.into_iter().map(|(n, r)| (canonical(&n), (n, r))).collect();
    let mut given = Vec::new();
    for spec in specs {
        let (name, req) = install::parse_spec(spec)?;
        roots.insert(canonical(&name), (name.clone(), req));
        given.push((name, spec.split_once('@').map(|(_, r)| r.to_string())));
    }
    let before = Lockfile::load(&project.lockfile)?;
    let after =
        project.install(Roots::Given(roots.into_values().collect()), Release::None, resolve_again).await?;
    for (name, req) in given {
        let req = match req {
            Some(r) => r,
            None => format!("^{}", after.get(&name).context("the resolution holds every root")?.version),
        };
        m.set(&name, &req);
        eprintln!("added {name} = \"{req}\" to {}", project::FILE);
    }
    m.save()?;
    report_changes(before.as_ref(), &after);
    Ok(())
}

/// Prints what changed between two locks, cargo's way; false when nothing did.
fn report_changes(before: Option<&Lockfile>, after: &Lockfile) -> bool {
    let empty = Lockfile::default();
    let before = before.unwrap_or(&empty);
    let mut changed = false;
    for p in &after.packages {
        match before.get(&p.name) {
            Some(old) if old.version != p.version => {
                eprintln!("  updating {} {} -> {}", p.name, old.version, p.version);
                changed = true;
            }
            Some(_) => {}
            None => {
                eprintln!("    adding {} {}", p.name, p.version);
                changed = true;
            }
        }
    }
    for p in before.packages.iter().filter(|p| after.get(&p.name).is_none()) {
        eprintln!("  removing {} {}", p.name, p.version);
        changed = true;
    }
    changed
}

/// The names of the direct dependencies: the manifest's, else the lock's roots.
fn direct(manifest: Option<Project>, lock: &Lockfile) -> Result<HashSet<String>> {
    Ok(match manifest {
        Some(m) => m.dependencies()?.into_iter().map(|(n, _)| canonical(&n)).collect(),
        None => lock.roots().into_iter().map(|p| canonical(&p.name)).collect(),
    })
}

fn list(manifest: Option<Project>, tree: bool, target: &Path, lockfile: &Path) -> Result<()> {
    let lock = Lockfile::load(lockfile)?.ok_or_else(|| {
        anyhow!(
            "there is no {} here: nothing is installed (`cairn add NAME` installs a package)",
            lockfile.display()
        )
    })?;
    let direct = direct(manifest, &lock)?;
    if tree {
        let mut roots: Vec<_> =
            lock.packages.iter().filter(|p| direct.contains(&canonical(&p.name))).collect();
        roots.sort_by_key(|p| p.name.to_lowercase());
        let mut shown = HashSet::new();
        for p in roots {
            print_tree(&lock, &p.name, "", "", &mut shown);
        }
        return Ok(());
    }
    let mut missing = 0;
    for p in &lock.packages {
        let mark = if direct.contains(&canonical(&p.name)) { " (direct)" } else { "" };
        let gone = if target.join(&p.name).is_dir() {
            ""
        } else {
            missing += 1;
            " (not installed)"
        };
        println!("{} {}{mark}{gone}", p.name, p.version);
    }
    if missing > 0 {
        eprintln!("{} locked but not installed: run `cairn install`", count(missing, "package"));
    }
    Ok(())
}

/// One package and what it depends on, cargo tree's way: a package whose
/// dependencies were shown already is marked `(*)` and not expanded again.
fn print_tree(lock: &Lockfile, name: &str, first: &str, rest: &str, shown: &mut HashSet<String>) {
    let Some(p) = lock.get(name) else { return };
    let again = !p.dependencies.is_empty() && !shown.insert(canonical(&p.name));
    println!("{first}{} {}{}", p.name, p.version, if again { " (*)" } else { "" });
    if again {
        return;
    }
    for (i, d) in p.dependencies.iter().enumerate() {
        let last = i + 1 == p.dependencies.len();
        let (branch, indent) = if last { ("└── ", "    ") } else { ("├── ", "│   ") };
        print_tree(lock, d, &format!("{rest}{branch}"), &format!("{rest}{indent}"), shown);
    }
}

async fn outdated(
    remote: &crate::client::remote::Remote,
    roots: &[(String, VersionReq)],
    lock: &Lockfile,
) -> Result<()> {
    remote.connect(false).await?;
    let rows = crate::client::outdated::outdated(remote, roots, lock).await?;
    let rows: Vec<_> = rows.into_iter().filter(|r| !r.is_current()).collect();
    if rows.is_empty() {
        eprintln!("all {} are up to date", count(lock.packages.len(), "locked package"));
        return Ok(());
    }
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(4);
    println!("{:<width$}  {:<10}  {:<15}  NEWEST", "NAME", "LOCKED", "NEWEST IN RANGE");
    for r in &rows {
        let mark = if r.out_of_range() { "  (out of range)" } else { "" };
        println!(
            "{:<width$}  {:<10}  {:<15}  {}{mark}",
            r.name,
            r.locked,
            dash(&r.in_range),
            dash(&r.newest)
        );
    }
    let in_range = rows.iter().filter(|r| r.in_range.as_deref() != Some(&r.locked)).count();
    let beyond = rows.iter().filter(|r| r.out_of_range()).count();
    eprintln!(
        "{} can be updated within the ranges (`cairn update`); {} newer versions out of range (widen the requirement in {})",
        count(in_range, "package"),
        if beyond == 1 { "1 package has".to_string() } else { format!("{beyond} packages have") },
        project::FILE
    );
    Ok(())
}
