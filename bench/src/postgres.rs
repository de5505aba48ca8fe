//! The PostgreSQL mode (`--database postgres://…`): one fresh database per service on the given
//! server, dropped when the run ends, and the conservation audit of what the run left behind.
//!
//! On PostgreSQL the benchmark runs the system the way the Kubernetes overlay does: two
//! replicas of warehouse and of payment sharing their databases, behind the gateway (which
//! spreads its calls over both), and payment calling both warehouses.

use std::time::Duration;

use platform::testing::TestPostgres;
use reliability::conservation;

use crate::error::BenchError;

/// The run's databases, one per service as in the Kubernetes overlay. Dropping this drops them.
pub struct Databases {
    pub account: TestPostgres,
    pub warehouse: TestPostgres,
    pub payment: TestPostgres,
}

impl Databases {
    /// Creates three empty databases on the server that `server_url` reaches (a URL of any
    /// database there that may `CREATE DATABASE`, e.g. `postgres://postgres@127.0.0.1/postgres`).
    pub async fn create(server_url: &str) -> Result<Self, BenchError> {
        let create = || async {
            TestPostgres::create_on(server_url)
                .await
                .map_err(|e| BenchError::Setup(format!("PostgreSQL at {server_url}: {e}")))
        };
        Ok(Self {
            account: create().await?,
            warehouse: create().await?,
            payment: create().await?,
        })
    }

    /// Audits stock and money once the run is over, while the programs still run: re-reads until
    /// nothing is violated and no owed warehouse call is still in flight, for up to `deadline`
    /// (payments still WAITING are allowed; their stock is legitimately held).
    pub async fn audit(&self, deadline: Duration) -> String {
        let sources = conservation::Sources {
            warehouse_db: self.warehouse.url.clone(),
            payment_db: self.payment.url.clone(),
        };
        match conservation::verify(&sources, &conservation::Options::default(), deadline).await {
            Ok(report) if report.is_clean() => format!("clean: {}", report.to_string().trim()),
            Ok(report) => format!("NOT CLEAN: {}", report.to_string().trim()),
            Err(e) => format!("could not audit: {e}"),
        }
    }
}
