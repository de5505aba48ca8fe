//! The allocator of every bookstore program (and of the launcher that runs all four in one
//! process): mimalloc rather than glibc's. It costs less CPU per request, and freed memory
//! (Argon2's 19 MiB buffers, a burst's buffers) goes back to the system instead of staying
//! resident in glibc's per-thread arenas (BENCHMARKS.md). Declared here, once, because every
//! program links this crate.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
