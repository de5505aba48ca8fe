//! The gateway binary: load configuration (watched for changes), build, serve until SIGTERM.

use gateway::{Application, configuration::GatewayConfig};

/// mimalloc rather than glibc's allocator: less CPU per request, and freed memory (Argon2's
/// buffers among it) goes back to the system instead of staying resident (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = platform::program::start::<GatewayConfig>()?;
    let application = Application::build(started.config, started.stop).await?;
    application.run_until_stopped().await;
    Ok(())
}
