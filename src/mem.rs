//! How the server's memory goes back to the system.
//!
//! glibc gives each thread that allocates concurrently an arena of its own
//! (up to 8 per core) and keeps what is freed there for that arena. With a
//! tokio worker pool, the writer and the pack merge all allocating, the soak's resident memory ratcheted up with every burst
//! while the live heap stayed small (heaptrack: 2 MB live at the end of a
//! 4-minute soak whose anonymous RSS was 93 MB). Two arenas and a trim
//! after each burst keep it at the live size; libgit2's mapped packs are
//! capped too. The batch jobs, whose working set follows the registry's
//! size, run as child processes (`cli::serve`).

/// Caps glibc's arenas at two (`M_ARENA_MAX`); called once, before the
/// runtime starts threads. Elsewhere a no-op: other allocators manage this
/// themselves.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Caps the pack files libgit2 keeps mapped: a batch job reading every
/// index file maps every pack (151 MB resident on the soak's index) and
/// keeps it mapped; past the cap the least used windows are unmapped. The
/// writer reads a few objects per group and a merge at most 5 000, so
/// 8 MiB is enough; with 32 MiB the soak's file-backed RSS swung by 9 MiB
/// with the merges.
pub fn limit_git_maps() {
    // SAFETY: a libgit2 global option, set before any repository is opened.
    if let Err(e) = unsafe { git2::opts::set_mwindow_mapped_limit(GIT_MAPPED_LIMIT) } {
        tracing::warn!(error = %e, "could not cap libgit2's mapped packs");
    }
}

const GIT_MAPPED_LIMIT: usize = 8 << 20;

/// Returns the free pages of every arena to the system (glibc's
/// `malloc_trim`), after a burst of allocation (a pack merge).
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
