//! The effects of a committed group: derived files, the search delta and
//! the summaries, made durable before the replies. An effect that fails
//! does not change any answer (the writes are durable in the index): its
//! keys are recorded as pending (in memory for health, in the database for
//! the next start) and redone from the sources of truth by the next group,
//! by the writer's retry timer and at start. `health.json` names the last
//! commit whose effects are all made, so a restart re-derives everything
//! after it even if the pending rows could not be written.
//!
//! With a CDN in front (`[cdn]`), the URLs a group or a retry changed are
//! purged before the replies, with every purge still owed, in one bounded
//! attempt; a failed purge is an `Effect::Purge` per path, pending like the
//! rest (health shows it apart) and tried again with the next group or
//! retry, never an error for a client.

use crate::db::Conn;
use anyhow::Result;
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

use super::plan::{Committed, Planned};
use super::{Change, Pending};
use crate::db;
use crate::derive;
use crate::effect::{self, Effect};
use crate::index::{package_path, IndexLine};
use crate::name::canonical;
use crate::package_files::{self, Readme, Scope, Sources};
use crate::registry::Registry;

pub(super) struct Effects {
    pending: Pending,
    /// The registry's space: its rows in the pending table.
    space: db::Space,
    /// The last commit whose effects are all made (what health.json names).
    derived_at: String,
    /// The CDN purge, if `[cdn]` names one (never a private registry's).
    cdn: Option<crate::cdn::Purger>,
    /// Derivations put off by [`Effects::make_cached`], made once the
    /// writer is idle for [`IDLE_FOR`] (failures wait the retry timer).
    deferred: bool,
}

/// How often the writer retries pending effects while no write comes.
const RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the writer waits for another write before it makes the
/// derivations [`Effects::make_cached`] put off: a resolver asking one
/// missing index file after the other gets each as soon as it commits.
const IDLE_FOR: std::time::Duration = std::time::Duration::from_millis(50);

impl Effects {
    /// Picks up what an earlier run left: the pending rows, and every index
    /// path changed after the commit health.json names.
    pub(super) fn new(
        reg: &Registry,
        conn: &Conn,
        pending: Pending,
        cdn: Option<crate::cdn::Purger>,
    ) -> Effects {
        let head = reg.index.head().map(|h| h.to_string()).unwrap_or_default();
        let derived_at = reg.derived_at().unwrap_or_else(|| head.clone());
        let effects = Effects { pending, derived_at, space: reg.space.clone(), cdn, deferred: false };
        effects.reload(conn);
        {
            let mut p = effects.pending.lock().unwrap();
            if effects.derived_at != head {
                let from = git2::Oid::from_str(&effects.derived_at).ok();
                let changed = git2::Oid::from_str(&head).ok().map(|to| reg.index.changed_paths(from, to));
                for path in changed.and_then(|c| c.ok()).unwrap_or_default() {
                    p.entry(Effect::of_path(&path)).or_insert_with(|| "left by an earlier run".into());
                }
            }
        }
        effects
    }

    /// Takes in the pending rows recorded in the database (by a group
    /// whose effects did not run).
    pub(super) fn reload(&self, conn: &Conn) {
        let mut p = self.pending.lock().unwrap();
        for (key, error) in db::pending_effects(conn, &self.space).unwrap_or_default() {
            match Effect::decode(&key) {
                Some(effect) => drop(p.entry(effect).or_insert(error)),
                None => tracing::error!(
                    key,
                    "a pending effect of an unknown kind (written by a newer cairn?) is left as it is"
                ),
            }
        }
    }

    pub(super) fn any_pending(&self) -> bool {
        !self.pending.lock().unwrap().is_empty()
    }

    /// Whether derived files are owed (a purge owed is not one of them).
    fn derivations_pending(&self) -> bool {
        self.pending.lock().unwrap().keys().any(|e| !matches!(e, Effect::Purge(_)))
    }

    /// Whether a CDN is purged: the writer then journals what it changes.
    pub(super) fn purges(&self) -> bool {
        self.cdn.is_some()
    }

    /// Purges `urls` (what a group or a retry just changed) with every
    /// purge still owed, in one attempt bounded by `cdn::WAIT`; what
    /// fails stays owed. Owed purges of a CDN no longer configured go.
    pub(super) fn purge(&self, conn: &Conn, urls: Vec<String>) {
        let owed: Vec<String> = {
            let p = self.pending.lock().unwrap();
            p.keys()
                .filter_map(|e| if let Effect::Purge(path) = e { Some(path.clone()) } else { None })
                .collect()
        };
        let Some(cdn) = &self.cdn else {
            return self.forget(conn, owed);
        };
        let all: Vec<String> =
            owed.iter().cloned().chain(urls).collect::<BTreeSet<_>>().into_iter().collect();
        match cdn.purge(&all) {
            Ok(()) => self.forget(conn, owed),
            Err(e) => {
                tracing::warn!(error = %e, paths = all.len(), "CDN purge failed; retried");
                self.defer(conn, all.into_iter().map(Effect::Purge), &format!("CDN purge: {e}"));
            }
        }
    }

    /// Drops these purges from what is owed.
    fn forget(&self, conn: &Conn, paths: Vec<String>) {
        let effects: Vec<Effect> = paths.into_iter().map(Effect::Purge).collect();
        self.clear(conn, &effects);
    }

    /// Drops these effects from what is pending (the rows in one
    /// transaction; best effort, as [`Effects::defer`]).
    fn clear<'e>(&self, conn: &Conn, effects: impl IntoIterator<Item = &'e Effect> + Clone) {
        let mut p = self.pending.lock().unwrap();
        let keys: Vec<String> = effects.clone().into_iter().map(Effect::encode).collect();
        if !keys.is_empty() {
            let _ = db::clear_pending_effects(conn, &self.space, &keys);
        }
        effects.into_iter().for_each(|e| drop(p.remove(e)));
    }

    /// This group's effects (what its plans list), then whatever is
    /// pending, then the summaries.
    pub(super) fn make(&mut self, reg: &Registry, conn: &Conn, planned: &[Planned], c: &Committed) {
        let effects: BTreeSet<&Effect> = planned.iter().flat_map(|p| &p.plan.effects).collect();
        match group_effects(reg, conn, planned, c, &effects) {
            Ok(()) => {
                // Recorded pending with the rows (`group.rs`): no index
                // commit would tell a start about them.
                self.clear(conn, effects.iter().copied().filter(|e| matches!(e, Effect::Owners(_))));
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "a write group's effects failed; they are retried");
                self.defer(conn, effects.into_iter().cloned(), &format!("{e:#}"));
            }
        }
        self.retry(reg, conn);
    }

    /// A group of upstream cachings, which readers wait on: the log's
    /// entries and the packages' documents now; their pages and the rest are
    /// pending (recorded like a failed effect, and `health.json` keeps
    /// naming the last commit derived, so a start makes them too) until
    /// the writer is idle ([`Effects::wait`]) or the next group.
    pub(super) fn make_cached(&mut self, reg: &Registry, conn: &Conn, planned: &[Planned], c: &Committed) {
        let effects: BTreeSet<Effect> = planned.iter().flat_map(|p| p.plan.effects.iter().cloned()).collect();
        match cached_documents(reg, conn, planned, c) {
            Ok(()) => {
                self.defer(conn, effects, "derived once the writer is idle");
                self.deferred = true;
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "a write group's effects failed; they are retried");
                self.defer(conn, effects, &format!("{e:#}"));
            }
        }
    }

    /// How long the idle writer waits before it retries what is pending.
    pub(super) fn wait(&self) -> std::time::Duration {
        match self.deferred {
            true => IDLE_FOR,
            false => RETRY_EVERY,
        }
    }

    /// A failed group's rows could not be taken back: match the recent rows
    /// against the index again, as a start would.
    pub(super) fn repair_rows_later(&self, conn: &Conn, error: &str) {
        self.defer(conn, [Effect::RepairRows], error);
    }

    fn defer(&self, conn: &Conn, effects: impl IntoIterator<Item = Effect>, error: &str) {
        let mut p = self.pending.lock().unwrap();
        let effects: Vec<Effect> = effects.into_iter().collect();
        // Best effort, in one transaction: if the database cannot take
        // them, health.json not moving past this commit still tells the
        // next start.
        let keys: Vec<String> = effects.iter().map(Effect::encode).collect();
        let _ = db::add_pending_effects(conn, &self.space, &keys, error);
        effects.into_iter().for_each(|e| drop(p.insert(e, error.to_string())));
    }

    /// Redoes every pending effect from the sources of truth (purges are
    /// [`Effects::purge`]'s); then writes the summaries, naming the head
    /// once no derived file is owed.
    pub(super) fn retry(&mut self, reg: &Registry, conn: &Conn) {
        self.deferred = false;
        self.emit_events(reg, conn);
        let effects: Vec<Effect> = {
            let p = self.pending.lock().unwrap();
            p.keys().filter(|e| !matches!(e, Effect::Purge(_))).cloned().collect()
        };
        if !effects.is_empty() {
            match redo(reg, conn, &effects) {
                Ok(()) => {
                    self.clear(conn, &effects);
                    tracing::info!(effects = effects.len(), "pending effects made");
                }
                Err(e) => {
                    let mut p = self.pending.lock().unwrap();
                    let error = format!("{e:#}");
                    for effect in &effects {
                        if let Some(v) = p.get_mut(effect) {
                            v.clone_from(&error);
                        }
                    }
                }
            }
        }
        if !self.derivations_pending() {
            if let Ok(head) = reg.index.head() {
                self.derived_at = head.to_string();
            }
        }
        if let Err(e) = reg.write_summaries(conn, &self.derived_at) {
            tracing::warn!(error = %format!("{e:#}"), "writing health.json and recent.json failed; the next group retries");
        }
    }
}

impl Effects {
    /// The events of the index commits that have none yet (this group's,
    /// and any a crash or a failure left): recorded from the history, so
    /// making them again adds nothing. A failure is pending like any effect.
    fn emit_events(&mut self, reg: &Registry, conn: &Conn) {
        // A private organisation's changes are no public events.
        if !reg.space.emits_events() {
            return;
        }
        match crate::events::catch_up(&reg.index, conn) {
            Ok(_) => {
                // Its row is written only when it was pending.
                let was_pending = self.pending.lock().unwrap().contains_key(&Effect::Events);
                if was_pending {
                    self.clear(conn, [&Effect::Events]);
                }
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "recording the index's events failed; retried");
                self.defer(conn, [Effect::Events], &format!("{e:#}"));
            }
        }
    }
}

/// Makes `effects` again from the index and the database.
fn redo(reg: &Registry, conn: &Conn, effects: &[Effect]) -> Result<()> {
    let head = reg.index.head()?.to_string();
    let mut delta = Vec::new();
    for effect in effects {
        delta.extend(effect::make(reg, conn, effect, &head)?);
    }
    crate::search::delta::record(&reg.root, delta)?;
    if let Some(log) = &reg.log {
        log.catch_up(&reg.index, &reg.root)?;
    }
    reg.root.sync()?;
    Ok(())
}

/// The log's entries of a group of cachings and each cached package's
/// documents as the group committed it ([`package_files::write_documents`])
/// at once, then their index copies: a reader starts from a line, and
/// finds the checkpoint covering its entry and its version's document.
fn cached_documents(reg: &Registry, conn: &Conn, planned: &[Planned], c: &Committed) -> Result<()> {
    let cached = planned.iter().filter(|p| p.plan.commit.is_some()).filter_map(|p| match &p.job.req.change {
        Change::Cache { name, .. } => Some(name),
        _ => None,
    });
    let sources: Vec<Sources> =
        cached.map(|name| group_sources(reg, conn, planned, c, name)).collect::<Result<_>>()?;
    let (log, written) = std::thread::scope(|s| {
        let log =
            s.spawn(|| reg.log.as_ref().map_or(Ok(()), |log| log.catch_up(&reg.index, &reg.root).map(drop)));
        let written: Vec<_> = super::overlapped(reg, || {
            sources.par_iter().map(|src| package_files::write_documents(reg, src)).collect()
        });
        (log.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the log's catch-up panicked"))), written)
    });
    // No line is shown before the log has its entries.
    log?;
    let copies: Vec<_> = written.iter().filter_map(|(copy, _)| copy.as_ref()).collect();
    super::overlapped(reg, || {
        copies.par_iter().try_for_each(|doc| reg.root.put_doc(&doc.key, &doc.bytes).map(drop))
    })?;
    written.into_iter().try_for_each(|(_, done)| done)
}

/// The effects the group's plans list, then synced: the files of each
/// package whose lines changed written for exactly what changed (the
/// README from the upload, not from the stored blob), every other effect
/// through the one executor.
fn group_effects(
    reg: &Registry,
    conn: &Conn,
    planned: &[Planned],
    c: &Committed,
    effects: &BTreeSet<&Effect>,
) -> Result<()> {
    // Deletes: the blobs and documents of the lines they removed.
    for p in planned {
        for line in &p.plan.gone {
            reg.store.remove(&line.cksum)?;
            derive::remove_version(&reg.root, &line.name, &line.vers)?;
        }
    }
    // The versions each package's lines changed, with their uploads' READMEs.
    let mut versions: BTreeMap<String, Vec<package_files::Changed>> = BTreeMap::new();
    for p in planned.iter().filter(|p| p.plan.gone.is_empty()) {
        let Some(line) = &p.plan.line else { continue };
        let readme = match &p.job.req.change {
            Change::Publish(upload) => Readme::Uploaded(upload.readme.as_deref()),
            _ => Readme::Kept,
        };
        versions.entry(canonical(&line.name)).or_default().push((line, readme));
    }
    // Every package whose lines changed (a deleted one's name from its
    // removed lines), as the index has it after the group.
    let changed: Vec<Sources> = effects
        .iter()
        .filter_map(|e| if let Effect::Package(name) = e { Some(name) } else { None })
        .map(|name| group_sources(reg, conn, planned, c, name))
        .collect::<Result<_>>()?;
    // A package cached from an upstream: every version is new here.
    let cached: BTreeSet<String> = planned
        .iter()
        .filter_map(|p| match &p.job.req.change {
            Change::Cache { name, .. } => Some(canonical(name)),
            _ => None,
        })
        .collect();
    let delta = search_delta(reg, conn, planned, c, &changed)?;
    // The log's entries first (the commit is done, and they prove it): a
    // reader who finds a new line in an index copy finds a checkpoint that
    // covers its entry.
    if let Some(log) = &reg.log {
        log.catch_up(&reg.index, &reg.root)?;
    }
    // The packages' files, the search delta (a compare-and-swap) and what
    // needs the database each on a thread of its own: on a bucket their
    // round trips overlap.
    std::thread::scope(|s| {
        let files = s.spawn(|| {
            super::overlapped(reg, || {
                changed.par_iter().try_for_each(|src| {
                    let key = canonical(&src.name);
                    let scope = match (cached.contains(&key), versions.get(&key)) {
                        (true, _) => Scope::Everything,
                        (false, mine) => Scope::Versions(mine.map_or(&[][..], Vec::as_slice)),
                    };
                    package_files::write_files(reg, src, scope)
                })
            })
        });
        let delta = s.spawn(|| crate::search::delta::record(&reg.root, delta));
        proposal_pages(reg, conn, planned, &changed);
        // Each owner once, however many of its packages the group changed.
        let owners: BTreeSet<&String> = changed.iter().flat_map(|src| src.owners.iter()).collect();
        let owners = package_files::write_owners_if_missing(reg, conn, owners);
        let panicked = |_| anyhow::anyhow!("deriving a group's files panicked");
        files.join().map_err(panicked)?.and(delta.join().map_err(panicked)?).and(owners)
    })?;
    // The packages whose dependents these changed: their documents and
    // pages (after the packages' own, which hold the dependents as before).
    for src in &changed {
        package_files::follow_dependencies(reg, conn, &src.name, &src.lines)?;
    }
    let written: BTreeSet<String> = changed.iter().map(|src| canonical(&src.name)).collect();
    for effect in effects {
        match effect {
            // Written above.
            Effect::Package(_) => {}
            Effect::Owners(name) if written.contains(&canonical(name)) => {}
            // The stage's catch-up makes them, with any a failure left (`Effects::retry`).
            Effect::Events => {}
            // A meta file's copy, owners, an advisory: as the index and the database have them.
            other => drop(effect::make(reg, conn, other, "")?),
        }
    }
    // Durable before the replies, so a reader sees the change with the 201.
    reg.root.sync()?;
    Ok(())
}

/// A publish's proposals page starts from its archive, in hand. The rows
/// are the truth: a failed page is made again by the package's next
/// change (or the static job), never a failure of the group.
fn proposal_pages(reg: &Registry, conn: &Conn, planned: &[Planned], changed: &[Sources]) {
    for p in planned {
        let (Change::Publish(upload), Some(line)) = (&p.job.req.change, &p.plan.line) else { continue };
        let Some(src) = changed.iter().find(|s| canonical(&s.name) == canonical(&line.name)) else {
            continue;
        };
        if let Err(e) = crate::proposal_pages::published(reg, conn, &src.lines, line, &upload.bytes) {
            tracing::warn!(error = %e, package = %line.name, "writing a package's proposals page failed");
        }
    }
}

/// The search delta's entries: each package a version change or a
/// deprecation touched, as it is after the group, with the commit that
/// last changed it.
fn search_delta(
    reg: &Registry,
    conn: &Conn,
    planned: &[Planned],
    c: &Committed,
    changed: &[Sources],
) -> Result<Vec<crate::search::DeltaEntry>> {
    let mut delta = Vec::new();
    for (p, id) in planned.iter().zip(&c.commits) {
        let Some(id) = id else { continue };
        let name = match (&p.job.req.change, p.plan.line.as_ref().or(p.plan.gone.first())) {
            (Change::Meta { name, .. } | Change::Cache { name, .. }, _) => name.clone(),
            (_, Some(line)) => line.name.clone(),
            _ => continue,
        };
        let read;
        let src = match changed.iter().find(|s| canonical(&s.name) == canonical(&name)) {
            Some(src) => src,
            None => {
                read = Sources::load(reg, conn, &name)?;
                &read
            }
        };
        delta.push(src.delta(&id.to_string()));
    }
    Ok(delta)
}

/// A package's sources as the group left it: its index file and lines as
/// the group committed them (not read and parsed again), else as the index
/// has them.
fn group_sources(
    reg: &Registry,
    conn: &Conn,
    planned: &[Planned],
    c: &Committed,
    name: &str,
) -> Result<Sources<'static>> {
    let path = package_path(name);
    // Spelled as its lines have it (`with_file`), else as its removed ones did.
    let spelled = gone_line(planned, &path).map_or(name, |l| &l.name);
    match (c.files.get(&path), committed(planned, &path)) {
        (Some(lines), Some(file)) => Sources::with_file(reg, conn, spelled, file, lines.clone()),
        _ => Sources::load(reg, conn, spelled),
    }
}

/// The bytes the group's last commit of `path` left there (empty: removed).
fn committed(planned: &[Planned], path: &str) -> Option<Vec<u8>> {
    let commits = planned.iter().rev().filter_map(|p| p.plan.commit.as_ref());
    let (_, content) = commits.flat_map(|c| &c.files).find(|(f, _)| f == path)?;
    Some(content.clone().unwrap_or_default())
}

/// A line a group removed from the package file at `path` (its name, when
/// the file is left empty).
fn gone_line<'p>(planned: &'p [Planned], path: &str) -> Option<&'p IndexLine> {
    planned.iter().flat_map(|p| &p.plan.gone).find(|l| package_path(&l.name) == path)
}
