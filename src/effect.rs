//! The typed effects of a committed write, and the one executor that makes
//! any of them from the sources of truth. The planner lists each change's
//! effects; a write group makes them (its packages' files directly, with
//! the READMEs of its uploads, the rest through [`make`]); what it could
//! not make is recorded, in memory and in the `pending_effects` table
//! ([`Effect::encode`], versioned), and made again by the writer's retries
//! and by recovery through [`make`].

use anyhow::Result;
use std::fmt;

use crate::db::Conn;
use crate::index::{meta, package_path};
use crate::package_files::{self, Scope, Sources};
use crate::registry::Registry;
use crate::search::DeltaEntry;

/// One thing to bring in line with the index and the database.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Effect {
    /// Every file of a package (by its index file's name: lowercase).
    Package(String),
    /// A package's `meta/` file copy, then its package document and pages.
    Meta(String),
    /// `config.json`'s copy in the static root.
    Config,
    /// An advisory's copy in the static root (by its id).
    Advisory(String),
    /// A package's files after its owners changed (no index commit).
    Owners(String),
    /// The rows of a failed group that could not be taken back: the recent
    /// rows matched against the index again, as a start does.
    RepairRows,
    /// The events of index commits that have none yet.
    Events,
    /// The CDN purge of a changed URL path (`[cdn]`): made by the writer's
    /// purger (`publish/effects.rs`), with every other path it owes, once
    /// the files it names are made.
    Purge(String),
}

/// The version of [`Effect::encode`]'s form (unversioned keys were written
/// before effects had types, and still read).
const V1: &str = "v1 ";

impl Effect {
    /// The files of a package, by any spelling of its name.
    pub fn package(name: &str) -> Effect {
        Effect::Package(name.to_ascii_lowercase())
    }

    /// A package's meta file copy, by any spelling of its name.
    pub fn meta(name: &str) -> Effect {
        Effect::Meta(name.to_ascii_lowercase())
    }

    /// The effect of a change of one index path.
    pub fn of_path(path: &str) -> Effect {
        if path == "config.json" {
            return Effect::Config;
        }
        if let Some(id) = path.strip_prefix("advisories/").and_then(|p| p.strip_suffix(".json")) {
            return Effect::Advisory(id.to_string());
        }
        let last = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
        match path.strip_prefix(meta::DIR).and_then(|p| p.strip_suffix(".json")) {
            Some(package) => Effect::Meta(last(package)),
            None => Effect::Package(last(path)),
        }
    }

    /// Its form in the pending table.
    pub fn encode(&self) -> String {
        match self {
            Effect::Package(name) => format!("{V1}package {name}"),
            Effect::Meta(name) => format!("{V1}meta {name}"),
            Effect::Config => format!("{V1}config"),
            Effect::Advisory(id) => format!("{V1}advisory {id}"),
            Effect::Owners(name) => format!("{V1}owners {name}"),
            Effect::RepairRows => format!("{V1}repair-rows"),
            Effect::Events => format!("{V1}events"),
            Effect::Purge(path) => format!("{V1}purge {path}"),
        }
    }

    /// Reads a pending key: this version's form, or the unversioned one
    /// (`owners:{name}`, `repair:rows`, `events`, or an index path).
    pub fn decode(key: &str) -> Option<Effect> {
        let Some(v1) = key.strip_prefix(V1) else {
            return Some(match key {
                "repair:rows" => Effect::RepairRows,
                "events" => Effect::Events,
                _ => match key.strip_prefix("owners:") {
                    Some(name) => Effect::Owners(name.to_string()),
                    None => Effect::of_path(key),
                },
            });
        };
        let (kind, arg) = v1.split_once(' ').unwrap_or((v1, ""));
        let arg = || (!arg.is_empty()).then(|| arg.to_string());
        Some(match kind {
            "package" => Effect::Package(arg()?),
            "meta" => Effect::Meta(arg()?),
            "config" => Effect::Config,
            "advisory" => Effect::Advisory(arg()?),
            "owners" => Effect::Owners(arg()?),
            "repair-rows" => Effect::RepairRows,
            "events" => Effect::Events,
            "purge" => Effect::Purge(arg()?),
            _ => return None,
        })
    }
}

/// As health's `pending` shows it.
impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::Package(name) => write!(f, "the files of {name} ({})", package_path(name)),
            Effect::Meta(name) => write!(f, "the meta file of {name} ({})", meta::path(name)),
            Effect::Config => f.write_str("config.json"),
            Effect::Advisory(id) => write!(f, "advisory {id}"),
            Effect::Owners(name) => write!(f, "the owners of {name}"),
            Effect::RepairRows => f.write_str("the rows of a failed group"),
            Effect::Events => f.write_str("the events of the index's commits"),
            Effect::Purge(path) => write!(f, "the CDN purge of {path}"),
        }
    }
}

/// Makes `effect` from the index as it is at `head` and the database; for
/// an effect on a package, returns its search delta entry as of `head`.
/// Documents of versions the index no longer has are removed, with their
/// blobs (a hard delete whose effects did not run). Not synced.
pub fn make(reg: &Registry, conn: &Conn, effect: &Effect, head: &str) -> Result<Option<DeltaEntry>> {
    let copy = |path: &str| -> Result<()> {
        let key = reg.root.layout().index_file(path);
        match reg.index.read_file(path)? {
            Some(bytes) => drop(reg.root.put_doc(&key, &bytes)?),
            None => reg.root.remove(&key)?,
        }
        Ok(())
    };
    match effect {
        Effect::Config => copy("config.json")?,
        Effect::Advisory(id) => copy(&format!("advisories/{id}.json"))?,
        Effect::Meta(name) => {
            // A package no longer deprecated has none: the copy goes.
            copy(&meta::path(name))?;
            // Its deprecation shows in its package document and pages, and
            // in the registry's list of deprecated packages.
            let src = Sources::load(reg, conn, name)?;
            package_files::write(reg, conn, &src, Scope::Pages)?;
            crate::derive::deprecations::update(&reg.root, name, src.meta.as_deref(), || {
                let (_, files) = reg.index.files()?;
                let metas = files.into_iter().filter(|(path, _)| path.starts_with(meta::DIR));
                metas
                    .map(|(path, _)| Ok((path.clone(), reg.index.read_file(&path)?.unwrap_or_default())))
                    .collect()
            })?;
            return Ok(Some(src.delta(head)));
        }
        Effect::Package(name) => {
            let src = Sources::load(reg, conn, name)?;
            reg.prune_versions(&src.name, &src.lines)?;
            package_files::write(reg, conn, &src, Scope::Everything)?;
            return Ok(Some(src.delta(head)));
        }
        Effect::Owners(name) => {
            let src = Sources::load(reg, conn, name)?;
            match src.lines.is_empty() {
                // The owners list of a name whose versions were all deleted stays.
                true => crate::derive::write_owners(&reg.root, name, &src.owners)?,
                false => package_files::write(reg, conn, &src, Scope::Pages)?,
            }
        }
        Effect::RepairRows => reg.repair_rows(conn)?,
        Effect::Events => drop(crate::events::catch_up(&reg.index, conn)?),
        // The writer's purger makes these, all pending paths in one go.
        Effect::Purge(path) => anyhow::bail!("{path}: a CDN purge is made by the writer's purger"),
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::Effect;

    #[test]
    fn every_effect_reads_back_and_old_keys_still_read() {
        let all = [
            Effect::Package("foo_bar".into()),
            Effect::Meta("foo".into()),
            Effect::Config,
            Effect::Advisory("CAIRN-2026-0001".into()),
            Effect::Owners("Foo".into()),
            Effect::RepairRows,
            Effect::Events,
            Effect::Purge("/index/fo/o_/foo_bar".into()),
        ];
        for e in &all {
            assert_eq!(Effect::decode(&e.encode()).as_ref(), Some(e), "{}", e.encode());
        }
        assert_eq!(Effect::decode("fo/o_/foo_bar"), Some(Effect::Package("foo_bar".into())));
        assert_eq!(Effect::decode("meta/3/f/foo.json"), Some(Effect::Meta("foo".into())));
        assert_eq!(Effect::decode("advisories/X-1.json"), Some(Effect::Advisory("X-1".into())));
        assert_eq!(Effect::decode("config.json"), Some(Effect::Config));
        assert_eq!(Effect::decode("owners:Foo"), Some(Effect::Owners("Foo".into())));
        assert_eq!(Effect::decode("repair:rows"), Some(Effect::RepairRows));
        assert_eq!(Effect::decode("events"), Some(Effect::Events));
        assert_eq!(Effect::decode("v1 package"), None, "a package effect names its package");
        assert_eq!(Effect::decode("v1 launch-rockets"), None, "an unknown kind is refused");
    }

    #[test]
    fn a_planned_effect_is_the_one_its_index_path_gives() {
        use crate::index::{meta, package_path};
        for name in ["Foo_Bar", "ab", "x"] {
            assert_eq!(Effect::package(name), Effect::of_path(&package_path(name)), "{name}");
            assert_eq!(Effect::meta(name), Effect::of_path(&meta::path(name)), "{name}");
        }
    }
}
