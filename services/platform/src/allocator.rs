//! The allocator of every bookstore program (and of the launcher that runs all four in one
//! process): mimalloc rather than glibc's. It costs less CPU per request, and freed memory
//! (Argon2's 19 MiB buffers, a burst's buffers) goes back to the system instead of staying
//! resident in glibc's per-thread arenas (BENCHMARKS.md). Declared here, once, because every
//! program links this crate.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Returns the memory this thread has freed to the system at once. mimalloc otherwise keeps
/// freed pages for a while and releases them on a later allocation, which an idle program never
/// makes: a program that freed a large buffer (an Argon2 hash) and then waits would keep it
/// resident. Cheap next to what it follows (a hash takes tens of milliseconds); not for hot paths.
pub fn release_freed_memory() {
    // SAFETY: `mi_collect` has no preconditions; it only tidies the calling thread's heap.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
