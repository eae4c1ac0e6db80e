//! Durable file writes: every file a reader or a restart relies on is written
//! to a temporary sibling, fsync'd, renamed over the target, and the directory
//! fsync'd, so a crash leaves either the old file or the new one, never half.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("target has a parent directory");
    fs::create_dir_all(dir)?;
    let tmp = temp_path(dir);
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` by a temporary sibling renamed over it, without
/// fsync: readers see the old file or the new one, never half, and the
/// caller makes a whole batch durable at once with [`sync_filesystem`]
/// before anything that depends on it (a ref move, `health.json`).
pub fn write_replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path.parent().expect("target has a parent directory"));
    let result = write_creating_dirs(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `path` holding `bytes` unless it exists (a temporary sibling
/// hard-linked to the name, which fails on an existing file): `false` when
/// it was there already, never replaced. Not fsync'd, like [`write_replace`].
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    let tmp = temp_path(path.parent().expect("target has a parent directory"));
    let result = write_creating_dirs(&tmp, bytes).and_then(|()| match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    });
    let _ = fs::remove_file(&tmp);
    result
}

/// Creates the directory `dir`, which must not exist yet, holding `files`
/// (paths relative to it): they are written under a temporary sibling
/// name that is then renamed to `dir`, so readers see all of them or none,
/// for one rename instead of one per file. Not fsync'd, like
/// [`write_replace`].
pub fn write_new_dir<'a>(dir: &Path, files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> io::Result<()> {
    let tmp = temp_path(dir.parent().expect("target has a parent directory"));
    let result = fs::create_dir_all(&tmp)
        .and_then(|()| {
            files.into_iter().try_for_each(|(name, bytes)| write_creating_dirs(&tmp.join(name), bytes))
        })
        .and_then(|()| fs::rename(&tmp, dir));
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

/// A new temporary name in `dir`, of the form [`remove_stale_temps`] removes.
pub fn temp_path(dir: &Path) -> PathBuf {
    dir.join(format!(".tmp-{}-{}", std::process::id(), rand::random::<u64>()))
}

/// Creates `path`, and its directory only when the write says it is
/// missing: it usually exists, and asking first would cost two system calls
/// per file of a rebuild.
fn write_creating_dirs(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let write = || OpenOptions::new().write(true).create_new(true).open(path)?.write_all(bytes);
    match write() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(path.parent().expect("a file has a parent directory"))?;
            write()
        }
        other => other,
    }
}

/// Flushes the whole filesystem holding `path` (syncfs): one call makes a
/// batch of [`write_replace`]s durable, instead of one fsync per file.
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    let f = File::open(path)?;
    // SAFETY: syncfs takes a valid open file descriptor, which `f` holds.
    let rc = unsafe { libc::syncfs(std::os::unix::io::AsRawFd::as_raw_fd(&f)) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes a directory's entries (renames, creations, removals) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// fsyncs an existing file in place.
pub fn sync_file(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Removes temporary files and directories a crash left behind under `dir`
/// (recursively).
pub fn remove_stale_temps(dir: &Path) {
    let mut walk = walkdir::WalkDir::new(dir).into_iter();
    while let Some(entry) = walk.next() {
        let Ok(entry) = entry else { continue };
        if !entry.file_name().to_string_lossy().starts_with(".tmp-") {
            continue;
        }
        if entry.file_type().is_dir() {
            walk.skip_current_dir();
            let _ = fs::remove_dir_all(entry.path());
        } else if entry.file_type().is_file() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut out: Vec<String> = walkdir::WalkDir::new(dir)
            .min_depth(1)
            .into_iter()
            .map(|e| e.unwrap().path().strip_prefix(dir).unwrap().to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn write_new_dir_appears_whole_and_refuses_an_existing_dir() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/pkg");
        write_new_dir(
            &dir,
            [("1.0.0.json", &b"{}"[..]), ("1.0.0/readme.md", b"# hi"), ("owners.json", b"[]")],
        )
        .unwrap();
        assert_eq!(
            names(root.path()),
            ["a", "a/pkg", "a/pkg/1.0.0", "a/pkg/1.0.0.json", "a/pkg/1.0.0/readme.md", "a/pkg/owners.json"]
        );
        assert_eq!(fs::read(dir.join("1.0.0/readme.md")).unwrap(), b"# hi");

        // A directory that exists is not replaced, and the staging copy is gone.
        let err = write_new_dir(&dir, [("owners.json", &b"changed"[..])]).unwrap_err();
        assert!(
            matches!(err.kind(), io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty),
            "{err}"
        );
        assert_eq!(fs::read(dir.join("owners.json")).unwrap(), b"[]");
        assert_eq!(names(&root.path().join("a")).iter().filter(|n| n.starts_with(".tmp-")).count(), 0);
    }

    #[test]
    fn write_replace_creates_missing_directories_and_replaces() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("x/y/z.json");
        write_replace(&path, b"one").unwrap();
        write_replace(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(names(root.path()), ["x", "x/y", "x/y/z.json"]);
    }

    #[test]
    fn stale_temp_files_and_directories_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let keep = root.path().join("p/keep.json");
        write_replace(&keep, b"k").unwrap();
        fs::write(root.path().join("p/.tmp-1-2"), b"half").unwrap();
        fs::create_dir_all(root.path().join(".tmp-3-4/1.0.0")).unwrap();
        fs::write(root.path().join(".tmp-3-4/1.0.0/readme.md"), b"half").unwrap();
        remove_stale_temps(root.path());
        assert_eq!(names(root.path()), ["p", "p/keep.json"]);
    }
}
