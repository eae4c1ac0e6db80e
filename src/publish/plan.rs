//! The checks of each kind of change against the state as the group leaves
//! it, and the database rows each records inside the group's transaction.

use crate::db::Conn;
use std::collections::{BTreeMap, HashMap};

use super::checks::{
    check_new_name, check_org_owner, check_owner, check_publish, check_quota, may_act, owner, private_org,
    Owner,
};
use super::{Actor, Change, Job, MetaEdit, Outcome, Published, WriteError, WriteRequest};
use crate::db;
use crate::effect::Effect;
use crate::index::{meta, package_path, IndexLine, IndexSnapshot, Meta};
use crate::name;
use crate::registry::Registry;

pub(super) fn describe(change: &Change) -> (&'static str, String) {
    match change {
        Change::Publish(u) => ("publish", format!("{} {}", u.line.name, u.line.vers)),
        Change::Yank { name, version, yanked: true } => ("yank", format!("{name} {version}")),
        Change::Yank { name, version, .. } => ("unyank", format!("{name} {version}")),
        Change::Owners { name, add, remove } => {
            ("owners", format!("{name} +{} -{}", add.join(","), remove.join(",")))
        }
        Change::Register { name } => ("register", name.clone()),
        Change::DeleteAccount => ("delete-account", String::new()),
        Change::HardDelete { name, version } => ("delete", format!("{name} {version}")),
        Change::Meta { name, edit: MetaEdit::Package(Some(_)) } => ("deprecate", name.clone()),
        Change::Meta { name, edit: MetaEdit::Package(None) } => ("undeprecate", name.clone()),
        Change::Meta { name, edit: MetaEdit::Versions(_) } => ("deprecate-versions", name.clone()),
        Change::Meta { name, edit: MetaEdit::Tag { tag, .. } } => ("dist-tag", format!("{name} {tag}")),
        Change::DeletePackage { name } => ("delete", name.clone()),
        Change::Advisory { id, .. } => ("advisory", id.clone()),
        Change::Cache { name, row, .. } => ("cache", format!("{name} from {}", row.upstream)),
        Change::Claim { name } => ("upstream-claim", name.clone()),
    }
}

/// A change that passed its checks: the index commit it makes, the line
/// it wrote or changed, the lines it removed, the effects it owes once
/// committed, its answer, and how to take its rows back.
pub(super) struct Plan {
    pub commit: Option<Commit>,
    pub line: Option<IndexLine>,
    /// Lines a delete removes (their blobs and documents go in the effects).
    pub gone: Vec<IndexLine>,
    /// What the effects stage makes for it (`publish/effects.rs`), and
    /// keeps pending if that fails.
    pub effects: Vec<Effect>,
    pub outcome: Outcome,
    pub undo: Undo,
}

/// One index commit: files set (`Some`) or removed (`None`), its subject,
/// the trailer that replaces `Published-By` (an upstream's), and how many
/// log entries it makes (`log::history` makes them from the commit).
pub(super) struct Commit {
    pub files: Vec<(String, Option<Vec<u8>>)>,
    pub subject: String,
    pub trailer: Option<String>,
    pub entries: u64,
}

impl Commit {
    /// A change the log records with one entry.
    fn logged(files: Vec<(String, Option<Vec<u8>>)>, subject: String) -> Commit {
        Commit { files, subject, trailer: None, entries: 1 }
    }
}

/// A commit that sets one file.
fn sets(path: String, content: Vec<u8>, subject: String) -> Option<Commit> {
    Some(Commit::logged(vec![(path, Some(content))], subject))
}

/// The database rows of a change whose index commit failed, to take back.
/// Changes without an index commit (owners, registrations, account
/// deletion) are done when the transaction commits and need none.
pub(super) enum Undo {
    Nothing,
    Publish {
        name: String,
        version_key: String,
        new_package: bool,
    },
    HardDelete {
        name: String,
        version_keys: Vec<String>,
    },
    /// The log entries a cache change's versions were given.
    Cache {
        name: String,
        versions: Vec<String>,
    },
}

impl Undo {
    pub(super) fn apply(&self, conn: &Conn, space: &db::Space) -> anyhow::Result<()> {
        match self {
            Undo::Nothing => Ok(()),
            Undo::Publish { name, version_key, new_package } => {
                db::forget_version(conn, &space.key(name), version_key)?;
                if *new_package {
                    db::forget_package(conn, space, name)?;
                }
                Ok(())
            }
            Undo::HardDelete { name, version_keys } => {
                version_keys.iter().try_for_each(|key| db::unmark_version_deleted(conn, space, name, key))
            }
            // The validators named a file the index does not hold: the next look fetches it whole.
            Undo::Cache { name, versions } => {
                db::upstream::forget_validators(conn, space, name)?;
                versions.iter().try_for_each(|v| db::upstream::clear_log_index(conn, space, name, v))
            }
        }
    }
}

/// A change without an index commit, owing `effects`.
fn done(outcome: Outcome, effects: Vec<Effect>) -> Plan {
    Plan { commit: None, line: None, gone: Vec::new(), effects, outcome, undo: Undo::Nothing }
}

/// The meta file `edit` makes of `before`, for a package with `lines`.
fn edited(before: &Meta, edit: &MetaEdit, lines: &[IndexLine]) -> Result<Meta, WriteError> {
    let mut after = before.clone();
    let has = |v: &str| lines.iter().any(|l| l.vers == v);
    match edit {
        MetaEdit::Package(asked) => {
            let asked = asked.clone().unwrap_or_default();
            (after.deprecated, after.replacement) = (asked.deprecated, asked.replacement);
        }
        MetaEdit::Versions(messages) => {
            let live: Vec<&str> = lines.iter().filter(|l| !l.yanked).map(|l| l.vers.as_str()).collect();
            // The package's deprecation becomes each version's, so one can be undone.
            if let Some(m) = after.deprecated.take() {
                for v in &live {
                    after.versions.entry(v.to_string()).or_insert_with(|| m.clone());
                }
            }
            for (version, message) in messages {
                if !has(version) {
                    return Err(WriteError::NotFound(format!("no version {version}")));
                }
                match message.trim() {
                    "" => after.versions.remove(version),
                    m => after.versions.insert(version.clone(), m.to_string()),
                };
            }
            // Every live version saying the same is the package's deprecation.
            let first = live.first().and_then(|v| after.versions.get(*v)).cloned();
            if let Some(m) = first.filter(|m| live.iter().all(|v| after.versions.get(*v) == Some(m))) {
                after.versions.retain(|v, _| !live.contains(&v.as_str()));
                after.deprecated = Some(m);
            }
            if after.deprecated.is_none() {
                after.replacement = None;
            }
        }
        MetaEdit::Tag { tag, version: Some(version) } => {
            if !has(version) {
                return Err(WriteError::NotFound(format!("no version {version}")));
            }
            after.tags.insert(tag.clone(), version.clone());
        }
        MetaEdit::Tag { tag, version: None } => drop(after.tags.remove(tag)),
    }
    Ok(after)
}

/// What an index commit on package `name` owes: its files and its event.
fn package_effects(name: &str) -> Vec<Effect> {
    vec![Effect::package(name), Effect::Events]
}

/// Checks one change against the state as the group leaves it and records
/// its database effects inside the group's transaction. `leaf` is the log
/// entry the change's commit will be (`None`: no log), which a new line
/// records.
pub(super) fn plan(
    conn: &Conn,
    reg: &Registry,
    head: &IndexSnapshot,
    r: &mut WriteRequest,
    at: &str,
    leaf: Option<u64>,
    files: &mut BTreeMap<String, Vec<IndexLine>>,
) -> Result<Plan, WriteError> {
    let actor = &r.actor;
    let space = &reg.space;
    match &mut r.change {
        Change::Publish(upload) => {
            let caller = actor.caller()?;
            let new_package = check_publish(conn, reg, caller, upload)?;
            let line = &mut upload.line;
            line.pubtime = Some(at.to_string());
            line.provenance = caller.provenance.as_deref().cloned();
            line.log_index = leaf;
            if new_package {
                db::create_package(conn, space, &line.name, caller, private_org(conn, reg)?.map(|o| o.id))?;
            }
            db::record_version(conn, space, &line.name, &upload.version, &line.cksum, at, caller.user.id)?;
            let size = line.size;
            db::quota::record_size(conn, space, &line.name, &name::version_key(&upload.version), size)?;
            check_quota(conn, reg, &line.name, size)?;
            let path = package_path(&line.name);
            let lines = lines_mut(head, files, &path)?;
            lines.push(line.clone());
            let content = IndexLine::file_bytes(lines);
            let subject = format!("publish {} {}", line.name, line.vers);
            let published = Published {
                name: line.name.clone(),
                version: line.vers.clone(),
                sha256: line.cksum.clone(),
                blake3: line.blake3.clone(),
                size_bytes: line.size,
                signature: crate::layout::url(&reg.root.layout().signature(&line.cksum)),
                index_commit: String::new(),
                published_at: at.to_string(),
            };
            let undo = Undo::Publish {
                name: line.name.clone(),
                version_key: name::version_key(&upload.version),
                new_package,
            };
            Ok(Plan {
                commit: sets(path, content, subject),
                effects: package_effects(&line.name),
                line: Some(line.clone()),
                gone: Vec::new(),
                outcome: Outcome::Published(published),
                undo,
            })
        }
        Change::Yank { name, version, yanked } => {
            let spelled = check_owner(conn, reg, actor.caller()?, name, "yank")?;
            let path = package_path(&spelled);
            let lines = lines_mut(head, files, &path)?;
            let line = lines
                .iter_mut()
                .find(|l| l.vers == *version)
                .ok_or_else(|| WriteError::NotFound(format!("{spelled} has no version {version}")))?;
            // Yanking twice (or unyanking a live version) changes nothing.
            if line.yanked == *yanked {
                return Ok(done(Outcome::Yanked { yanked: *yanked }, Vec::new()));
            }
            line.yanked = *yanked;
            let line = line.clone();
            let content = IndexLine::file_bytes(lines);
            let verb = if *yanked { "yank" } else { "unyank" };
            let subject = format!("{verb} {spelled} {version}");
            let outcome = Outcome::Yanked { yanked: *yanked };
            Ok(Plan {
                commit: sets(path, content, subject),
                line: Some(line),
                gone: Vec::new(),
                effects: package_effects(&spelled),
                outcome,
                undo: Undo::Nothing,
            })
        }
        Change::Owners { name, add, remove } => {
            let caller = actor.caller()?;
            let spelled = check_owner(conn, reg, caller, name, "change-owners")?;
            if let (false, Some(slug)) = (space.has_own_owners(), space.org()) {
                return Err(WriteError::Invalid(format!(
                    "`{spelled}` is org:{slug}'s, as every package of its private registry: its admins act as owners"
                )));
            }
            let adding: Vec<Owner> = add.iter().map(|o| owner(conn, o)).collect::<Result<_, _>>()?;
            let removing: Vec<Owner> = remove.iter().map(|o| owner(conn, o)).collect::<Result<_, _>>()?;
            for o in &adding {
                if let Owner::Org(org) = o {
                    check_org_owner(conn, caller, org)?;
                }
            }
            for o in adding {
                match o {
                    Owner::User(id) => db::add_owner(conn, space, &spelled, id)?,
                    Owner::Org(org) => db::org::add_package(conn, space, &spelled, org.id)?,
                }
            }
            for o in removing {
                match o {
                    Owner::User(id) => db::remove_owner(conn, space, &spelled, id)?,
                    Owner::Org(org) => db::org::remove_package(conn, space, &spelled, org.id)?,
                }
            }
            let owners = db::owners(conn, space, &spelled)?;
            if owners.is_empty() {
                return Err(WriteError::Conflict(format!(
                    "`{spelled}` would have no owner left; add another owner first"
                )));
            }
            let effects = vec![Effect::Owners(spelled.clone())];
            *name = spelled;
            Ok(done(Outcome::Owners { owners }, effects))
        }
        Change::Register { name } => {
            let caller = actor.caller()?;
            let created = match db::find_package(conn, space, name)? {
                Some(spelled) if spelled == *name && may_act(conn, reg, caller, name)? => false,
                Some(spelled) => {
                    return Err(WriteError::Conflict(format!("the name `{spelled}` is taken")));
                }
                None => {
                    check_new_name(conn, reg, caller, name)?;
                    db::create_package(conn, space, name, caller, private_org(conn, reg)?.map(|o| o.id))?;
                    true
                }
            };
            let owner = caller.login().into_owned();
            let effects = vec![Effect::Owners(name.clone())];
            Ok(done(Outcome::Registered { name: name.clone(), owner, created }, effects))
        }
        Change::DeleteAccount => {
            let caller = actor.caller()?;
            if !space.keeps_accounts() {
                return Err(WriteError::Invalid("an account is deleted through the public registry".into()));
            }
            let sole = db::org::sole_owner_of(conn, caller.user.id)?;
            if !sole.is_empty() {
                return Err(WriteError::Conflict(format!(
                    "you are the only owner of {}: make another member an owner first",
                    sole.iter().map(|s| db::org::owner_name(s)).collect::<Vec<_>>().join(", ")
                )));
            }
            let (purge_after, packages) = db::mark_for_deletion(conn, caller.user.id)?;
            let effects = packages.iter().cloned().map(Effect::Owners).collect();
            Ok(done(Outcome::AccountDeleted { purge_after, packages }, effects))
        }
        Change::HardDelete { name, version } => {
            if !matches!(actor, Actor::Admin) {
                return Err(WriteError::Forbidden("only an administrator deletes versions".into()));
            }
            let spelled = db::find_package(conn, space, name)?
                .ok_or_else(|| WriteError::NotFound(format!("no package `{name}`")))?;
            let path = package_path(&spelled);
            let lines = lines_mut(head, files, &path)?;
            let at = lines
                .iter()
                .position(|l| l.vers == *version)
                .ok_or_else(|| WriteError::NotFound(format!("{spelled} has no version {version}")))?;
            let line = lines.remove(at);
            let semver = crate::name::parse_version(version).map_err(WriteError::Invalid)?;
            let version_key = name::version_key(&semver);
            db::mark_version_deleted(conn, space, &spelled, &version_key)?;
            let content = IndexLine::file_bytes(lines);
            let subject = format!("delete {spelled} {version}");
            let effects = package_effects(&spelled);
            let undo = Undo::HardDelete { name: spelled, version_keys: vec![version_key] };
            Ok(Plan {
                commit: sets(path, content, subject),
                line: Some(line.clone()),
                gone: vec![line],
                effects,
                outcome: Outcome::Deleted,
                undo,
            })
        }
        Change::DeletePackage { name } => {
            if !matches!(actor, Actor::Admin) {
                return Err(WriteError::Forbidden("only an administrator deletes packages".into()));
            }
            let spelled = db::find_package(conn, space, name)?
                .ok_or_else(|| WriteError::NotFound(format!("no package `{name}`")))?;
            let path = package_path(&spelled);
            let gone = std::mem::take(lines_mut(head, files, &path)?);
            if gone.is_empty() {
                return Err(WriteError::NotFound(format!("`{spelled}` has no version to delete")));
            }
            let mut version_keys = Vec::new();
            for line in &gone {
                let semver = crate::name::parse_version(&line.vers).map_err(WriteError::Invalid)?;
                version_keys.push(name::version_key(&semver));
                db::mark_version_deleted(conn, space, &spelled, version_keys.last().expect("pushed"))?;
            }
            let mut removed = vec![(path, None)];
            if head.read(&meta::path(&spelled))?.is_some() {
                removed.push((meta::path(&spelled), None));
            }
            let commit = Some(Commit::logged(removed, format!("delete {spelled}")));
            let versions = gone.iter().map(|l| l.vers.clone()).collect();
            // Its meta file's copy follows the index (gone with the file).
            let mut effects = package_effects(&spelled);
            effects.push(Effect::meta(&spelled));
            let undo = Undo::HardDelete { name: spelled, version_keys };
            let outcome = Outcome::PackageDeleted { versions };
            Ok(Plan { commit, line: None, gone, effects, outcome, undo })
        }
        Change::Meta { name, edit } => {
            let spelled = check_owner(conn, reg, actor.caller()?, name, "publish-update")?;
            let path = meta::path(&spelled);
            let before =
                head.read(&path)?.map(|b| Meta::parse(&b)).transpose().map_err(anyhow::Error::from)?;
            let before = before.unwrap_or_default();
            let lines = head.read(&package_path(&spelled))?.unwrap_or_default();
            let lines = IndexLine::parse_file(&lines).map_err(anyhow::Error::from)?;
            let after = edited(&before, edit, &lines)?;
            let outcome = Outcome::Deprecated { name: spelled.clone(), meta: after.clone() };
            // Saying again what the file says commits nothing.
            if before == after {
                return Ok(done(outcome, Vec::new()));
            }
            // The log's verb: `deprecate` binds the file written, `undeprecate` the one removed.
            let file = after.file_bytes();
            let verb = if file.is_some() { "deprecate" } else { "undeprecate" };
            let commit = Some(Commit::logged(vec![(path, file)], format!("{verb} {spelled}")));
            let effects = vec![Effect::meta(&spelled), Effect::Events];
            *name = spelled;
            Ok(Plan { commit, line: None, gone: Vec::new(), effects, outcome, undo: Undo::Nothing })
        }
        Change::Advisory { id, json } => {
            if !matches!(actor, Actor::Admin) {
                return Err(WriteError::Forbidden("only an administrator adds advisories".into()));
            }
            let path = format!("advisories/{id}.json");
            let subject = format!("advisory {id}");
            let outcome = Outcome::Advisory { id: id.clone() };
            Ok(Plan {
                commit: sets(path, json.clone(), subject),
                line: None,
                gone: Vec::new(),
                effects: vec![Effect::Advisory(id.clone()), Effect::Events],
                outcome,
                undo: Undo::Nothing,
            })
        }
        Change::Cache { name, file, row } => cache(conn, reg, head, row, name, file, leaf, files),
        Change::Claim { name } => {
            if !matches!(actor, Actor::Admin) {
                return Err(WriteError::Forbidden("only an administrator claims a name".into()));
            }
            let new = db::upstream::claim(conn, space, name)?;
            db::upstream::forget(conn, space, name)?;
            let path = package_path(name);
            // The lines an upstream served leave the index with the claim;
            // a local package's file stays.
            let cached = db::find_package(conn, space, name)?.is_none() && head.read(&path)?.is_some();
            let (mut commit, mut gone, mut effects) = (None, Vec::new(), Vec::new());
            if cached {
                // Their blobs and documents go with them.
                gone = std::mem::take(lines_mut(head, files, &path)?);
                let subject = format!("claim {name}");
                commit = Some(Commit { files: vec![(path, None)], subject, trailer: None, entries: 0 });
                effects = package_effects(name);
            }
            let outcome = Outcome::Claimed { new };
            Ok(Plan { commit, line: None, gone, effects, outcome, undo: Undo::Nothing })
        }
    }
}

/// An upstream's file for a name with no local package: committed when it
/// differs from the index's, each line it adds or changes a log entry
/// (whose numbers the cached versions' rows record), with the upstream's
/// row (its validators: they name the file the index holds).
#[allow(clippy::too_many_arguments)]
fn cache(
    conn: &Conn,
    reg: &Registry,
    head: &IndexSnapshot,
    row: &db::upstream::Cached,
    name: &str,
    file: &[u8],
    leaf: Option<u64>,
    files: &mut BTreeMap<String, Vec<IndexLine>>,
) -> Result<Plan, WriteError> {
    let space = &reg.space;
    if db::find_package(conn, space, name)?.is_some() || db::upstream::claimed(conn, space, name)? {
        return Err(WriteError::Conflict(format!("`{name}` is a local package: no upstream serves it")));
    }
    let path = package_path(name);
    let before = head.read(&path)?;
    // A second file for the name in one group waits for the next revalidation.
    if files.contains_key(&path) {
        return Ok(done(Outcome::Cached { changed: false }, Vec::new()));
    }
    db::upstream::checked(conn, space, name, row)?;
    if before.as_deref() == Some(file) {
        return Ok(done(Outcome::Cached { changed: false }, Vec::new()));
    }
    // Each version's row (its first sighting, if the cooldown did not record it).
    let lines = crate::upstream::parse(name, file).map_err(WriteError::Internal)?;
    let seen: Vec<(&str, &str)> = lines.iter().map(|(_, l)| (l.vers.as_str(), l.cksum.as_str())).collect();
    db::upstream::record_versions(conn, space, name, &row.upstream, &seen, chrono::Utc::now().timestamp())?;
    let added = crate::log::history::cached_lines(before.as_deref(), file);
    let mut versions = Vec::new();
    if let Some(first) = leaf {
        let version_of: HashMap<&[u8], &str> = lines.iter().map(|(raw, l)| (*raw, l.vers.as_str())).collect();
        for (i, raw) in added.iter().enumerate() {
            let version = version_of[raw];
            db::upstream::set_log_index(conn, space, name, version, first + i as u64)?;
            versions.push(version.to_string());
        }
    }
    files.insert(path.clone(), IndexLine::parse_file(file).map_err(anyhow::Error::from)?);
    let commit = Commit {
        files: vec![(path, Some(file.to_vec()))],
        subject: format!("cache {name}"),
        trailer: Some(format!("Upstream: {}", row.upstream)),
        entries: added.len() as u64,
    };
    let undo = Undo::Cache { name: name.to_string(), versions };
    Ok(Plan {
        commit: Some(commit),
        line: None,
        gone: Vec::new(),
        // Every version of the package is new here (`Scope::Everything` in the effects).
        effects: package_effects(name),
        outcome: Outcome::Cached { changed: true },
        undo,
    })
}

/// The lines of an index file as the group has it so far.
fn lines_mut<'f>(
    head: &IndexSnapshot,
    files: &'f mut BTreeMap<String, Vec<IndexLine>>,
    path: &str,
) -> Result<&'f mut Vec<IndexLine>, WriteError> {
    if !files.contains_key(path) {
        let existing = head.read(path)?;
        let lines = existing.map(|b| IndexLine::parse_file(&b)).transpose().map_err(anyhow::Error::from)?;
        files.insert(path.to_string(), lines.unwrap_or_default());
    }
    Ok(files.get_mut(path).unwrap())
}

/// A change that passed its checks, with what it will answer.
pub(super) struct Planned {
    pub(super) job: Job,
    pub(super) plan: Plan,
    /// Its audit row, taken back if the group's index commit fails.
    pub(super) audit_id: i64,
}

/// What the commit step made durable, for the effects.
pub(super) struct Committed {
    /// Index files as the group leaves them, by path.
    pub(super) files: BTreeMap<String, Vec<IndexLine>>,
    /// The commit of each planned change that changed the index.
    pub(super) commits: Vec<Option<git2::Oid>>,
}
