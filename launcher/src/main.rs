//! `cargo run --release -p bookstore`: the whole bookstore on this machine, with demo data.

use std::path::PathBuf;

use anyhow::Context;
use bookstore::{LocalConfig, Options, System, configuration};
use clap::Parser;
use platform::{
    configuration::LogConfig,
    reload::{ReloadTiming, follow, watch_config},
    shutdown, telemetry,
};

/// Runs account, warehouse, payment and the gateway in one process on loopback.
#[derive(Debug, Parser)]
struct Args {
    /// A TOML file with a section per program ([account], [warehouse], [payment], [gateway]),
    /// each with that program's own keys; watched and reloaded like a ConfigMap. README.md,
    /// "Configuring a local run", has an example.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory for the SQLite databases and the development signing key.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// The gateway's address (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// The account service's Thrift address.
    #[arg(long, default_value = "127.0.0.1:8810")]
    account_listen: String,
    /// The warehouse service's gRPC address.
    #[arg(long, default_value = "127.0.0.1:8820")]
    warehouse_listen: String,
    /// The payment service's gRPC address.
    #[arg(long, default_value = "127.0.0.1:8830")]
    payment_listen: String,
    /// Where to serve every program's metrics (Prometheus text at `/metrics`).
    #[arg(long, default_value = "127.0.0.1:9464")]
    metrics_listen: String,
    /// A built web front-end to serve at `/` instead of the storefront (for example the Fenix
    /// bookstore's `dist/`).
    #[arg(long)]
    static_dir: Option<PathBuf>,
    /// Log filter, e.g. `info` or `info,gateway=debug` (RUST_LOG wins when set); each program's
    /// `[<program>.log] level` in the config file is added, scoped to that program.
    #[arg(long, default_value = "info")]
    log_level: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let source = configuration::source(args.config.clone());
    let config: LocalConfig = source.load().context("cannot load the configuration")?;
    let telemetry = telemetry::init(
        &LogConfig {
            level: config.log_filter(&args.log_level),
            ..LogConfig::default()
        },
        "bookstore",
    );
    let stop = shutdown::token_cancelled_on_signal();
    let base_level = args.log_level.clone();
    let config = watch_config(source, config, ReloadTiming::default(), stop.clone())?;
    let filter = {
        let initial = config.borrow().log_filter(&base_level);
        follow(
            config.clone(),
            initial,
            stop.clone(),
            move |c: &LocalConfig| Some(c.log_filter(&base_level)),
        )
    };
    telemetry
        .log
        .clone()
        .follow(filter, |filter: &String| filter.as_str());

    let options = Options {
        data_dir: args.data_dir,
        listen: args.listen,
        account_listen: args.account_listen,
        warehouse_listen: args.warehouse_listen,
        payment_listen: args.payment_listen,
        static_dir: args.static_dir,
        metrics_listen: args.metrics_listen,
    };
    let system = System::build(options, config, stop).await?;
    let address = system.gateway_address();
    println!(
        "bookstore is running at http://{address}/ (the storefront; REST API under /restful, tokens at /oauth/token); Ctrl-C stops it"
    );
    for (program, protocol, address) in system.addresses() {
        println!("  {program:<9} {address:<21} {protocol}");
    }
    let stopped_cleanly = system.run_until_stopped().await;
    telemetry.shutdown().await;
    if stopped_cleanly {
        Ok(())
    } else {
        anyhow::bail!("some programs did not stop cleanly")
    }
}
