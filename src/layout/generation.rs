//! A change counter shared by every process that writes one static root
//! (`cairn serve`, and `cairn admin` or `cairn rebuild` beside it): eight
//! bytes of a file mapped shared, bumped after each write. The server's
//! hot cache reads it on every hit (one atomic load) and re-checks its
//! entries against their files once it moved, so a change made by another
//! process is seen as soon as that process's write returns.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Generation {
    counter: *const AtomicU64,
}

// SAFETY: the mapping is shared memory used only through the AtomicU64,
// and stays mapped until drop.
unsafe impl Send for Generation {}
unsafe impl Sync for Generation {}

const SIZE: usize = std::mem::size_of::<AtomicU64>();

impl Generation {
    /// Maps `path` (created if missing); fails on a read-only directory,
    /// where no process writes anyway.
    pub fn open(path: &Path) -> io::Result<Generation> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        if file.metadata()?.len() < SIZE as u64 {
            file.set_len(SIZE as u64)?;
        }
        // SAFETY: a fresh shared mapping of SIZE bytes of an open file of at
        // least that size; the kernel keeps it valid after the file is closed.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Generation { counter: p as *const AtomicU64 })
    }

    fn counter(&self) -> &AtomicU64 {
        // SAFETY: page-aligned, mapped for the life of self.
        unsafe { &*self.counter }
    }

    pub fn bump(&self) {
        self.counter().fetch_add(1, Ordering::Release);
    }

    pub fn get(&self) -> u64 {
        self.counter().load(Ordering::Acquire)
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in open.
        unsafe { libc::munmap(self.counter as *mut libc::c_void, SIZE) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_mappings_of_one_file_see_each_others_bumps() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            Generation::open(&dir.path().join("g")).unwrap(),
            Generation::open(&dir.path().join("g")).unwrap(),
        );
        let before = b.get();
        a.bump();
        a.bump();
        assert_eq!(b.get(), before + 2);
    }
}
