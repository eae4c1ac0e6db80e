//! The install target (`cairn_packages/`): which packages an install
//! unpacks, and their unpacking. A package is unpacked as soon as its
//! archive is verified and inspected, while the others still download, into
//! a staging directory: beside the target when there is none yet (it then
//! becomes the target, one rename), else inside it (each package then moves
//! into place). Nothing moves before every check of the install passed; a
//! failure removes the staging directory, and the target is as it was.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::verify::Expected;

/// Which package each directory holds (name → checksum).
const STATE_FILE: &str = ".cairn-installed.json";

/// The unpacking of one install.
pub struct Unpacking {
    target: PathBuf,
    /// The install state found (name → checksum).
    old: BTreeMap<String, String>,
    /// The indexes (in the plan) of the packages to unpack: not in the
    /// target at the same checksum. Their archives must all pass inspection.
    pub todo: Vec<usize>,
    /// Where they are unpacked; `None` when there is nothing to unpack.
    stage: Option<Stage>,
    /// There was no target: the staging directory becomes it.
    fresh: bool,
}

/// Unpacks into the staging directory, from any thread, until the
/// unpacking is dropped unfinished (which waits for unpacks under way,
/// then removes the directory).
#[derive(Clone)]
pub struct Stage {
    dir: PathBuf,
    /// `false` once the staging directory is removed or moved.
    open: Arc<RwLock<bool>>,
}

impl Stage {
    /// Unpacks an archive that passed inspection.
    pub fn put(&self, want: &Expected, bytes: &[u8]) -> Result<()> {
        let open = self.open.read().unwrap_or_else(|e| e.into_inner());
        if !*open {
            return Ok(());
        }
        crate::archive::unpack::unpack(bytes, &want.name, &want.version, &self.dir.join(&want.name))
            .map(|_| ())
            .with_context(|| format!("unpacking {} {}", want.name, want.version))
    }

    fn close(&self) {
        *self.open.write().unwrap_or_else(|e| e.into_inner()) = false;
    }
}

impl Unpacking {
    /// What of `plan` is to be unpacked into `target`, with its staging
    /// directory made.
    pub fn new(target: &Path, plan: &[&Expected]) -> Result<Unpacking> {
        let old: BTreeMap<String, String> = std::fs::read(target.join(STATE_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let todo: Vec<usize> = (0..plan.len())
            .filter(|&i| {
                let p = plan[i];
                old.get(&p.name) != Some(&p.sha256) || !target.join(&p.name).is_dir()
            })
            .collect();
        let fresh = !target.exists();
        let stage = match todo.is_empty() {
            true => None,
            false => {
                let parent = match fresh {
                    true => target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")),
                    false => target,
                };
                std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
                let dir = crate::fsutil::temp_path(parent);
                std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
                Some(Stage { dir, open: Arc::new(RwLock::new(true)) })
            }
        };
        Ok(Unpacking { target: target.to_path_buf(), old, todo, stage, fresh })
    }

    /// Where the packages of `todo` are to be unpacked.
    pub fn stage(&self) -> Option<&Stage> {
        self.stage.as_ref()
    }

    /// Every check passed: moves what was unpacked into place, removes
    /// the packages an earlier install put there that `plan` no longer
    /// holds, and records the state. Returns how many were unpacked.
    pub fn finish(mut self, plan: &[&Expected]) -> Result<usize> {
        let new: BTreeMap<String, String> = plan.iter().map(|p| (p.name.clone(), p.sha256.clone())).collect();
        // Not fsync'd, like the unpacked files it describes (an fsync here
        // would wait for all of them): a state lost in a crash costs an unpack.
        let state = serde_json::to_vec_pretty(&new)?;
        let stage = self.stage.take();
        stage.iter().for_each(Stage::close);
        let done = match (&stage, self.fresh) {
            (Some(stage), true) => std::fs::write(stage.dir.join(STATE_FILE), &state)
                .and_then(|()| std::fs::rename(&stage.dir, &self.target))
                .with_context(|| format!("moving {} to {}", stage.dir.display(), self.target.display())),
            (stage, _) => self.settle(stage.as_ref().map(|s| s.dir.as_path()), plan, &new, &state),
        };
        if let (Err(_), Some(stage)) = (&done, &stage) {
            let _ = std::fs::remove_dir_all(&stage.dir);
        }
        done.map(|()| self.todo.len())
    }

    /// Into a target that exists (or is made now, with nothing to unpack):
    /// moves each package staged inside it into place, then removes the
    /// packages the plan no longer holds.
    fn settle(
        &self,
        stage: Option<&Path>,
        plan: &[&Expected],
        new: &BTreeMap<String, String>,
        state: &[u8],
    ) -> Result<()> {
        std::fs::create_dir_all(&self.target)
            .with_context(|| format!("creating {}", self.target.display()))?;
        if let Some(stage) = stage {
            for &i in &self.todo {
                let name = &plan[i].name;
                replace_dir(&stage.join(name), &self.target.join(name))
                    .with_context(|| format!("moving {name} into {}", self.target.display()))?;
            }
            std::fs::remove_dir(stage).with_context(|| format!("removing {}", stage.display()))?;
        }
        for name in self.old.keys().filter(|n| !new.contains_key(*n)) {
            let dir = self.target.join(name);
            if dir.is_dir() && crate::name::validate(name).is_ok() {
                std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            }
        }
        if *new != self.old {
            crate::fsutil::write_replace(&self.target.join(STATE_FILE), state)?;
        }
        Ok(())
    }
}

/// An install that did not finish leaves no staging directory.
impl Drop for Unpacking {
    fn drop(&mut self) {
        if let Some(stage) = self.stage.take() {
            stage.close();
            let _ = std::fs::remove_dir_all(&stage.dir);
        }
    }
}

fn replace_dir(tmp: &Path, dest: &Path) -> Result<()> {
    if dest.exists() {
        let old = dest.with_file_name(format!(".old-{}", rand::random::<u64>()));
        std::fs::rename(dest, &old)?;
        std::fs::rename(tmp, dest)?;
        std::fs::remove_dir_all(&old)?;
    } else {
        std::fs::rename(tmp, dest)?;
    }
    Ok(())
}
