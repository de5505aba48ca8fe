//! `conservation`: audits a running (or stopped) bookstore's books and exits non-zero when stock
//! or money was lost, created or misdirected. See `reliability::conservation` for the rules.
//!
//! ```text
//! cargo run -p bookstore-reliability --bin conservation -- \
//!     --warehouse-db sqlite://data/warehouse.db --payment-db sqlite://data/payment.db
//! ```
//!
//! Exit status: 0 clean, 1 violations (or still in flight when `--wait-seconds` ran out),
//! 2 the databases could not be read.

use std::{process::ExitCode, time::Duration};

use clap::Parser;
use reliability::conservation::{Options, Sources, verify};

#[derive(Debug, Parser)]
#[command(about = "Checks that the bookstore neither lost nor created stock or money")]
struct Args {
    /// The warehouse's database (`[database] url` of warehouse.toml): sqlite://… or postgres://…
    #[arg(long, env = "WAREHOUSE_DB")]
    warehouse_db: String,
    /// The payment service's database (`[database] url` of payment.toml).
    #[arg(long, env = "PAYMENT_DB")]
    payment_db: String,
    /// Keep re-reading this long while owed warehouse calls are still being delivered.
    #[arg(long, default_value_t = 10)]
    wait_seconds: u64,
    /// A WAITING payment this long past its window counts as stuck.
    #[arg(long, default_value_t = 10)]
    stuck_after_seconds: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let sources = Sources {
        warehouse_db: args.warehouse_db,
        payment_db: args.payment_db,
    };
    let options = Options {
        stuck_after: Duration::from_secs(args.stuck_after_seconds),
    };
    match verify(&sources, &options, Duration::from_secs(args.wait_seconds)).await {
        Ok(report) => {
            print!("{report}");
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("conservation: {error}");
            ExitCode::from(2)
        }
    }
}
