//! The gateway binary: load configuration (watched for changes), build, serve until SIGTERM.

use gateway::{Application, configuration::GatewayConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = platform::program::start::<GatewayConfig>().await?;
    let application = Application::build(started.config, started.stop).await?;
    application.run_until_stopped().await;
    started.telemetry.shutdown().await;
    Ok(())
}
