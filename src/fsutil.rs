//! Durable file writes: every file a reader or a restart relies on is written
//! to a temporary sibling, fsync'd, renamed over the target, and the directory
//! fsync'd, so a crash leaves either the old file or the new one, never half.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("target has a parent directory");
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), rand::random::<u64>()));
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
    let dir = path.parent().expect("target has a parent directory");
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), rand::random::<u64>()));
    let result = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// [`write_replace`] unless `path` already holds exactly `bytes`; returns
/// whether it wrote. Keeps rebuilds idempotent and cheap on a second run.
pub fn write_if_changed(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    if fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    write_replace(path, bytes)?;
    Ok(true)
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

/// Removes temporary files a crash left behind under `dir` (recursively).
pub fn remove_stale_temps(dir: &Path) {
    for entry in walkdir::WalkDir::new(dir).into_iter().flatten() {
        if entry.file_type().is_file() && entry.file_name().to_string_lossy().starts_with(".tmp-") {
            let _ = fs::remove_file(entry.path());
        }
    }
}
