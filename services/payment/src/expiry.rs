//! The expiry sweeper: turns WAITING payments whose window has closed into TIMEOUT and queues the
//! release of their stock, in one transaction per payment.
//!
//! Expiry times live in the database, so a payment whose window closed while no process was
//! running times out at the next start. Each change is conditional (`WHERE state = 'WAITING'`),
//! so with several replicas sweeping one PostgreSQL database each payment times out exactly once.
//! The sweeper also forgets old idempotency keys and delivered outbox rows.

use std::{sync::Arc, time::Duration};

use platform::{clock::now_ms, shutdown::CancellationToken};
use tokio::sync::watch;

use crate::{
    configuration::Settings,
    domain::PayState,
    outbox::Relay,
    payments::payment_reached,
    store::{Store, StoreError},
};

/// Payments handled per query.
const BATCH: i64 = 100;
/// How often old keys and delivered calls are forgotten.
const CLEANUP_EVERY: Duration = Duration::from_secs(60);

/// Times out every overdue payment; returns how many this call changed.
pub async fn sweep(store: &Store, relay: &Relay) -> Result<usize, StoreError> {
    let mut timed_out = 0;
    loop {
        let now = now_ms();
        let overdue = store.overdue(now, BATCH).await?;
        for pay_id in &overdue {
            if store.time_out(pay_id, now).await?.is_some() {
                tracing::info!(%pay_id, "payment timed out");
                payment_reached(PayState::Timeout);
                metrics::counter!("payment_expiries_total").increment(1);
                timed_out += 1;
            }
        }
        if (overdue.len() as i64) < BATCH {
            break;
        }
    }
    if timed_out > 0 {
        relay.wake();
    }
    Ok(timed_out)
}

/// Sweeps now and then every `[payment] expiry_sweep_interval_ms` (read live) until `stop`.
pub async fn run(
    store: Store,
    relay: Arc<Relay>,
    config: watch::Receiver<Settings>,
    stop: CancellationToken,
) {
    let mut last_cleanup: Option<tokio::time::Instant> = None;
    loop {
        let swept = tokio::select! {
            _ = stop.cancelled() => break,
            swept = sweep(&store, &relay) => swept,
        };
        if let Err(error) = swept {
            tracing::warn!(%error, "expiry sweep failed; will try again");
        }
        let rules = config.borrow().payment.clone();
        if last_cleanup.is_none_or(|at| at.elapsed() >= CLEANUP_EVERY) {
            last_cleanup = Some(tokio::time::Instant::now());
            let cutoff = now_ms().saturating_sub(rules.idempotency_retention_ms);
            match store.forget_before(cutoff).await {
                Ok(0) => {}
                Ok(forgotten) => tracing::info!(
                    forgotten,
                    "old idempotency keys and delivered calls removed"
                ),
                Err(error) => tracing::warn!(%error, "cannot remove old idempotency keys"),
            }
        }
        let interval = Duration::from_millis(rules.expiry_sweep_interval_ms.max(1));
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
    tracing::info!("expiry sweeper stopped");
}
