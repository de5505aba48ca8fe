//! The warehouse binary: load configuration, build the application, serve until SIGTERM.

use warehouse::{Application, configuration::Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = platform::program::start::<Settings>().await?;
    let settings = started.config.borrow().clone();
    let application = Application::build(settings, started.stop).await?;
    application.run_until_stopped().await?;
    started.telemetry.shutdown().await;
    Ok(())
}
