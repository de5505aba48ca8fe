//! The account binary: load configuration, build the application, serve until SIGTERM.

use account::{Application, configuration::Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    return_large_blocks_to_the_system();
    let started = platform::program::start::<Settings>().await?;
    let settings = started.config.borrow().clone();
    let application = Application::build(settings, started.stop).await?;
    application.run_until_stopped().await?;
    started.telemetry.shutdown().await;
    Ok(())
}

/// Every Argon2 hash takes `[password_hashing] memory_kib` (19 MiB by default) of memory. glibc's
/// malloc raises its mmap threshold each time such a block is freed, so from the second hash on
/// the block comes from the heap and stays resident, about doubling the idle service's memory.
/// A fixed threshold keeps every block of 1 MiB or more a mapping of its own, unmapped when
/// freed.
fn return_large_blocks_to_the_system() {
    // SAFETY: mallopt only changes glibc's allocation policy; it takes two plain integers.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
