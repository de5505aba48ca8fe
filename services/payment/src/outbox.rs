//! The outbox relay: delivers the warehouse calls (commit or release, by payment id) that
//! committed state changes owe, until the warehouse confirms them.
//!
//! A call is claimed before each attempt with a conditional UPDATE on its attempt counter, so two
//! relays (two replicas, or the relay and a request handler delivering inline) do not both make
//! the same attempt; should they ever overlap, the warehouse calls are idempotent by payment id.
//! Failed attempts are retried with exponential backoff, through warehouse outages and restarts
//! of either service, because the owed call is in the database, not in memory.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use platform::{clock::now_ms, shutdown::CancellationToken, trace_context};
use tokio::sync::Notify;
use tracing::Instrument;

use crate::{
    configuration::OutboxConfig,
    store::{OutboxAction, OutboxEntry, Store, StoreError},
    warehouse::{WarehouseClient, WarehouseError},
};

/// At most this many calls are in flight at once.
const CONCURRENCY: usize = 8;
/// Calls read per round.
const BATCH: i64 = 64;
/// How often the backlog gauge (`payment_outbox_pending`) is refreshed.
const BACKLOG_EVERY: Duration = Duration::from_secs(5);

pub struct Relay {
    store: Store,
    warehouse: Arc<WarehouseClient>,
    config: OutboxConfig,
    rpc_timeout: Duration,
    wake: Notify,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Done,
    /// Claimed elsewhere first; nothing was attempted here.
    NotClaimed,
    /// Will be retried.
    Failed(String),
    /// The warehouse refused for good; a person has to look.
    Dead(String),
}

impl Relay {
    pub fn new(
        store: Store,
        warehouse: Arc<WarehouseClient>,
        config: OutboxConfig,
        rpc_timeout: Duration,
    ) -> Self {
        Self {
            store,
            warehouse,
            config,
            rpc_timeout,
            wake: Notify::new(),
        }
    }

    /// Asks the background loop to look for due calls now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// One attempt at `call`: claim it, call the warehouse, record the outcome.
    pub async fn deliver(&self, call: &OutboxEntry) -> Result<Delivery, StoreError> {
        let now = now_ms();
        let delay = retry_delay(&self.config, self.rpc_timeout, call.attempts + 1);
        let retry_at = now.saturating_add(delay);
        if !self.store.claim(call, retry_at, now).await? {
            return Ok(Delivery::NotClaimed);
        }
        let request_id = format!("outbox-{}", call.id);
        // In the trace of the request that owed the call, or linked to it when delivered later.
        let cause = call
            .traceparent
            .as_deref()
            .and_then(trace_context::from_traceparent);
        let result = self
            .warehouse
            .finish(call.action, &call.pay_id, Some(&request_id))
            .instrument(trace_context::follow_up_span("outbox delivery", cause))
            .await;
        let delivery = classify(call.action, result);
        let (status, error) = match &delivery {
            Delivery::Done => ("DONE", None),
            Delivery::Dead(why) => ("DEAD", Some(why.as_str())),
            Delivery::Failed(why) => ("PENDING", Some(why.as_str())),
            Delivery::NotClaimed => return Ok(delivery),
        };
        metrics::counter!("payment_outbox_deliveries_total", "outcome" => status).increment(1);
        self.store
            .finish_attempt(call.id, status, error, now_ms())
            .await?;
        match &delivery {
            Delivery::Done => tracing::info!(
                pay_id = %call.pay_id, action = call.action.as_str(), "warehouse call delivered"
            ),
            Delivery::Failed(why) => tracing::warn!(
                pay_id = %call.pay_id, action = call.action.as_str(), attempt = call.attempts + 1,
                error = %why, "warehouse call failed; will retry"
            ),
            Delivery::Dead(why) => tracing::error!(
                pay_id = %call.pay_id, action = call.action.as_str(), error = %why,
                "warehouse refused an owed call for good; it needs manual attention"
            ),
            Delivery::NotClaimed => {}
        }
        Ok(delivery)
    }

    /// Delivers every call due now (up to one batch); returns how many were due.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        let due = self.store.due_calls(now_ms(), BATCH).await?;
        let found = due.len();
        futures::stream::iter(due)
            .for_each_concurrent(CONCURRENCY, |call| async move {
                if let Err(error) = self.deliver(&call).await {
                    tracing::warn!(%error, call_id = call.id, "cannot record a warehouse call attempt");
                }
            })
            .await;
        Ok(found)
    }

    /// Delivers due calls whenever woken, and every poll interval, until `stop` fires.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut counted = None;
        let poll = Duration::from_millis(self.config.poll_interval_ms);
        loop {
            let round = tokio::select! {
                _ = stop.cancelled() => break,
                round = self.deliver_due() => round,
            };
            // The backlog gauge: counted now and then, not on every round (a pay wakes the relay,
            // and a query per purchase would cost every purchase).
            if counted.is_none_or(|at: tokio::time::Instant| at.elapsed() >= BACKLOG_EVERY) {
                counted = Some(tokio::time::Instant::now());
                match self.store.pending_calls().await {
                    Ok(pending) => metrics::gauge!("payment_outbox_pending").set(pending as f64),
                    Err(error) => tracing::debug!(%error, "cannot count the outbox backlog"),
                }
            }
            let wait = match round {
                // A full batch: more may be due right away.
                Ok(found) if found as i64 >= BATCH => Duration::ZERO,
                Ok(_) => poll,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the warehouse outbox");
                    poll
                }
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!("outbox relay stopped");
    }
}

/// How long after attempt number `attempt` (1-based) the next one is due: exponential backoff,
/// and never sooner than the RPC deadline, so a slow attempt is not overtaken by its retry.
fn retry_delay(config: &OutboxConfig, rpc_timeout: Duration, attempt: i64) -> i64 {
    let exponent = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(20);
    let backoff = config
        .retry_initial_ms
        .saturating_mul(1u64 << exponent)
        .min(config.retry_max_ms);
    let floor = u64::try_from(rpc_timeout.as_millis()).unwrap_or(u64::MAX);
    i64::try_from(backoff.max(floor)).unwrap_or(i64::MAX)
}

/// Which answers settle an owed call, and which mean it can never succeed.
fn classify(action: OutboxAction, result: Result<(), WarehouseError>) -> Delivery {
    match (action, result) {
        (_, Ok(())) => Delivery::Done,
        // No reservation was ever made (a settlement whose reservation never landed).
        (OutboxAction::Release, Err(WarehouseError::NotFound(_))) => Delivery::Done,
        (_, Err(error @ (WarehouseError::NotFound(_) | WarehouseError::Refused(_)))) => {
            Delivery::Dead(error.to_string())
        }
        (_, Err(error @ WarehouseError::Rejected(_))) => Delivery::Dead(error.to_string()),
        (_, Err(error)) => Delivery::Failed(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_between_the_deadline_and_the_cap() {
        let config = OutboxConfig {
            poll_interval_ms: 1_000,
            retry_initial_ms: 200,
            retry_max_ms: 5_000,
        };
        let deadline = Duration::from_millis(300);
        let delays: Vec<i64> = (1..=7)
            .map(|attempt| retry_delay(&config, deadline, attempt))
            .collect();
        assert_eq!(delays, [300, 400, 800, 1_600, 3_200, 5_000, 5_000]);
        assert_eq!(retry_delay(&config, deadline, i64::MAX), 5_000);
    }

    #[test]
    fn owed_calls_finish_only_on_answers_that_settle_them() {
        use OutboxAction::*;
        let not_found = || Err(WarehouseError::NotFound("no reservation".into()));
        assert_eq!(classify(Commit, Ok(())), Delivery::Done);
        assert_eq!(classify(Release, not_found()), Delivery::Done);
        assert!(matches!(classify(Commit, not_found()), Delivery::Dead(_)));
        assert!(matches!(
            classify(Release, Err(WarehouseError::Refused("committed".into()))),
            Delivery::Dead(_)
        ));
        for error in [
            WarehouseError::Deadline,
            WarehouseError::Unavailable("down".into()),
            WarehouseError::Identity("expired".into()),
        ] {
            assert!(matches!(classify(Commit, Err(error)), Delivery::Failed(_)));
        }
    }
}
