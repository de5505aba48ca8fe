//! A steady, bounded mix of REST traffic, as shoppers make it: browse the catalogue, settle a
//! cart, pay, cancel or abandon it, look at the payment, the wallet and the account. Every
//! request is recorded with when it started and ended and how it came out, so a test can ask
//! what happened before, during and after a fault.
//!
//! Bounded: each worker stops after `max_requests` or when the plan's `duration` has passed,
//! whichever comes first, or when [`Traffic::stop`] is called.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use gateway::testing::{Reply, Rest, settlement};
use tokio::task::JoinHandle;

/// A logged-in user of the bookstore.
#[derive(Debug, Clone)]
pub struct Shopper {
    pub username: String,
    pub token: String,
}

#[derive(Clone)]
pub struct Plan {
    pub workers: usize,
    /// Products the shoppers buy (one unit at a time).
    pub products: Vec<i64>,
    pub shoppers: Vec<Shopper>,
    pub max_requests: usize,
    pub duration: Duration,
    /// Between two requests of one worker.
    pub pause: Duration,
}

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    ListProducts,
    GetProduct,
    GetAccount,
    Wallet,
    Settle,
    Pay,
    Cancel,
    GetPayment,
}

impl Op {
    /// Reads change nothing, so the gateway may retry them.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Self::ListProducts
                | Self::GetProduct
                | Self::GetAccount
                | Self::Wallet
                | Self::GetPayment
        )
    }

    /// Whether the payment service takes part.
    pub fn uses_payment(self) -> bool {
        matches!(
            self,
            Self::Wallet | Self::Settle | Self::Pay | Self::Cancel | Self::GetPayment
        )
    }

    /// Whether the warehouse must answer before the gateway can (a pay or cancel only owes it
    /// a call, which the payment service's outbox delivers later).
    pub fn needs_warehouse(self) -> bool {
        matches!(self, Self::ListProducts | Self::GetProduct | Self::Settle)
    }
}

/// How a request came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Ok,
    /// 409 or 422: a business rule said no (sold out, payment no longer WAITING).
    Refused(u16),
    /// Any other status, with the start of the body.
    Status(u16, String),
    /// No HTTP answer at all.
    Transport(String),
}

impl Outcome {
    fn of(outcome: &Result<Reply, String>) -> Self {
        match outcome {
            Ok(reply) if reply.status.is_success() => Self::Ok,
            Ok(reply) if matches!(reply.status.as_u16(), 409 | 422) => {
                Self::Refused(reply.status.as_u16())
            }
            Ok(reply) => {
                let mut body = reply.text();
                body.truncate(200);
                Self::Status(reply.status.as_u16(), body)
            }
            Err(error) => Self::Transport(error.clone()),
        }
    }

    /// Anything but a success or a business refusal.
    pub fn is_failure(&self) -> bool {
        !matches!(self, Self::Ok | Self::Refused(_))
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Ok => Some(200),
            Self::Refused(status) | Self::Status(status, _) => Some(*status),
            Self::Transport(_) => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Event {
    pub worker: usize,
    pub op: Op,
    /// Since the traffic started.
    pub started: Duration,
    pub finished: Duration,
    pub outcome: Outcome,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:>6} ms..{:>6} ms] worker {} {:?}: {:?}",
            self.started.as_millis(),
            self.finished.as_millis(),
            self.worker,
            self.op,
            self.outcome
        )
    }
}

pub struct Traffic {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    events: Arc<Mutex<Vec<Event>>>,
    epoch: Instant,
}

impl Traffic {
    pub fn start(rest: Rest, plan: Plan) -> Self {
        assert!(!plan.shoppers.is_empty() && !plan.products.is_empty());
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(Vec::new()));
        let epoch = Instant::now();
        let workers = (0..plan.workers)
            .map(|worker| {
                let worker_state = Worker {
                    id: worker,
                    rest: rest.clone(),
                    shopper: plan.shoppers[worker % plan.shoppers.len()].clone(),
                    products: plan.products.clone(),
                    events: events.clone(),
                    epoch,
                };
                let (stop, plan) = (stop.clone(), plan.clone());
                tokio::spawn(worker_state.run(plan, stop))
            })
            .collect();
        Self {
            stop,
            workers,
            events,
            epoch,
        }
    }

    /// Time since the traffic started (the scale of [`Event::started`]).
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Waits (at most `limit`) until a request of an op matching `op` that started at or after
    /// `since` succeeds; returns when it finished.
    pub async fn first_success_after(
        &self,
        since: Duration,
        op: impl Fn(Op) -> bool,
        limit: Duration,
    ) -> Option<Duration> {
        let started = Instant::now();
        loop {
            let found = self
                .events()
                .iter()
                .filter(|e| e.started >= since && op(e.op) && e.outcome == Outcome::Ok)
                .map(|e| e.finished)
                .min();
            if found.is_some() || started.elapsed() > limit {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the workers (each finishes its request in flight) and returns every event.
    pub async fn stop(self) -> Vec<Event> {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
        }
        let mut events = self.events.lock().map(|e| e.clone()).unwrap_or_default();
        events.sort_by_key(|e| e.started);
        events
    }
}

/// Counts per op and outcome, for assertion messages.
pub fn summary(events: &[Event]) -> String {
    let mut counts: BTreeMap<(Op, String), usize> = BTreeMap::new();
    for event in events {
        let outcome = match &event.outcome {
            Outcome::Transport(_) => "transport".to_owned(),
            other => other.status().unwrap_or_default().to_string(),
        };
        *counts.entry((event.op, outcome)).or_default() += 1;
    }
    counts
        .iter()
        .map(|((op, outcome), n)| format!("{op:?} {outcome}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The failed events among `events`, one per line, for assertion messages.
pub fn listing<'a>(events: impl IntoIterator<Item = &'a Event>) -> String {
    events
        .into_iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

struct Worker {
    id: usize,
    rest: Rest,
    shopper: Shopper,
    products: Vec<i64>,
    events: Arc<Mutex<Vec<Event>>>,
    epoch: Instant,
}

/// One worker's round: browse, settle, look, decide, look again.
const ROUND: [Op; 8] = [
    Op::ListProducts,
    Op::GetProduct,
    Op::Settle,
    Op::GetPayment,
    Op::Pay,
    Op::Wallet,
    Op::GetAccount,
    Op::GetPayment,
];

impl Worker {
    async fn run(self, plan: Plan, stop: Arc<AtomicBool>) {
        let mut open: Option<String> = None;
        let mut last: Option<String> = None;
        let token = self.shopper.token.clone();
        for request in 0..plan.max_requests {
            if stop.load(Ordering::Relaxed) || self.epoch.elapsed() >= plan.duration {
                break;
            }
            let round = request / ROUND.len();
            let product = self.products[(self.id + round) % self.products.len()];
            let mut op = ROUND[request % ROUND.len()];
            // Three rounds in four pay, the fourth cancels every other time or walks away
            // (the payment then times out).
            if op == Op::Pay && round % 4 == 3 {
                op = if round % 8 == 3 {
                    Op::Cancel
                } else {
                    Op::Wallet
                };
                if op == Op::Wallet {
                    open = None;
                }
            }
            if matches!(op, Op::Pay | Op::Cancel) && open.is_none()
                || op == Op::GetPayment && last.is_none()
            {
                op = Op::ListProducts;
            }
            let started = self.epoch.elapsed();
            let key = uuid::Uuid::new_v4().to_string();
            let outcome = match op {
                Op::ListProducts => self.rest.try_get("/restful/products", None).await,
                Op::GetProduct => {
                    self.rest
                        .try_get(&format!("/restful/products/{product}"), None)
                        .await
                }
                Op::GetAccount => {
                    self.rest
                        .try_get(
                            &format!("/restful/accounts/{}", self.shopper.username),
                            Some(&token),
                        )
                        .await
                }
                Op::Wallet => self.rest.try_get("/restful/wallet", Some(&token)).await,
                Op::Settle => {
                    let cart = settlement(&[(product, 1)]);
                    self.rest.try_settle(&token, &cart, Some(&key)).await
                }
                Op::Pay | Op::Cancel => {
                    let state = if op == Op::Pay { "PAYED" } else { "CANCEL" };
                    let pay_id = open.take().unwrap_or_default();
                    self.rest
                        .try_change_payment(&token, &pay_id, state, Some(&key))
                        .await
                }
                Op::GetPayment => {
                    let pay_id = last.clone().unwrap_or_default();
                    self.rest
                        .try_get(&format!("/restful/pay/{pay_id}"), Some(&token))
                        .await
                }
            };
            if op == Op::Settle
                && let Ok(reply) = &outcome
                && reply.status == 200
                && let Some(pay_id) = serde_json::from_slice::<serde_json::Value>(&reply.body)
                    .ok()
                    .and_then(|v| v["payId"].as_str().map(str::to_owned))
            {
                open = Some(pay_id.clone());
                last = Some(pay_id);
            }
            let event = Event {
                worker: self.id,
                op,
                started,
                finished: self.epoch.elapsed(),
                outcome: Outcome::of(&outcome),
            };
            if let Ok(mut events) = self.events.lock() {
                events.push(event);
            }
            if !plan.pause.is_zero() {
                tokio::time::sleep(plan.pause).await;
            }
        }
    }
}
