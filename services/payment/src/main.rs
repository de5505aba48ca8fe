//! The payment binary: load configuration, build the application, serve until SIGTERM.

use payment::{Application, configuration::Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = platform::program::start::<Settings>().await?;
    let listen = started.config.borrow().server.listen.clone();
    let listener = platform::serve::bind(&listen).await?;
    let application = Application::build_live(started.config, listener, None, started.stop).await?;
    application.run_until_stopped().await?;
    started.telemetry.shutdown().await;
    Ok(())
}
