//! The load generator: a closed loop that finds how much one path can take, and an open loop
//! that offers a fixed rate and measures latency the way a user would see it.
//!
//! - **Closed loop** (saturation): `concurrency` virtual users, each sending its next request as
//!   soon as the previous answer arrives. The completed requests per second are the path's
//!   throughput at that concurrency.
//! - **Open loop** (latency): request `i` is due at `start + i / rate`, whether or not earlier
//!   requests have been answered, and its latency runs from that *intended* time to the answer.
//!   A stall therefore shows up in every request that should have been sent during it, not just
//!   in the one that was waiting when it began (the "coordinated omission" of a closed loop).
//!   How late the generator itself sent each request is recorded too, so the report can show
//!   that the generator kept its schedule (see [`wait_until`]).
//!
//! Both loops are bounded in time and in request count, and every request has a deadline.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hdrhistogram::Histogram;
use tokio::{sync::Semaphore, task::JoinSet, time::Instant};

/// Why one request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError(pub String);

impl CallError {
    pub fn new(message: impl std::fmt::Display) -> Self {
        Self(message.to_string())
    }
}

/// How many requests failed for each reason (the first 100 characters of the error), over at
/// most [`Reasons::KINDS`] reasons; any further ones are counted together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reasons(BTreeMap<String, u64>);

impl Reasons {
    pub const KINDS: usize = 12;
    const OTHER: &str = "(other reasons)";

    pub fn add(&mut self, error: &CallError, count: u64) {
        let mut reason: String = error.0.chars().take(100).collect();
        if !self.0.contains_key(&reason) && self.0.len() >= Self::KINDS {
            reason = Self::OTHER.to_owned();
        }
        *self.0.entry(reason).or_default() += count;
    }

    pub fn merge(&mut self, other: &Reasons) {
        for (reason, count) in &other.0 {
            self.add(&CallError(reason.clone()), *count);
        }
    }

    /// Most frequent first.
    pub fn by_count(&self) -> Vec<(String, u64)> {
        let mut reasons: Vec<_> = self.0.iter().map(|(r, c)| (r.clone(), *c)).collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        reasons
    }
}

/// One kind of request against the system under test. Cheap to clone (clients share their
/// connections).
pub trait Target: Clone + Send + Sync + 'static {
    /// Sends one request and checks its answer.
    fn call(&self) -> impl Future<Output = Result<(), CallError>> + Send;
}

/// A latency histogram in nanoseconds, from 100 ns to 60 s at 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    // Constant bounds that satisfy the constructor's rules (low >= 1, high >= 2 * low, sigfig
    // <= 5): this cannot fail.
    Histogram::new_with_bounds(100, 60_000_000_000, 3).expect("valid histogram bounds")
}

fn record(histogram: &mut Histogram<u64>, value: Duration) {
    histogram.saturating_record(u64::try_from(value.as_nanos()).unwrap_or(u64::MAX));
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let micros = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1_000.0;
        Self {
            p50: micros(0.5),
            p90: micros(0.9),
            p99: micros(0.99),
            p999: micros(0.999),
            max: histogram.max() as f64 / 1_000.0,
        }
    }
}

/// What the closed loop does.
#[derive(Debug, Clone)]
pub struct ClosedLoop {
    pub concurrency: usize,
    pub duration: Duration,
    /// No more requests than this are started, however fast the path is.
    pub max_requests: u64,
    /// Deadline of one request.
    pub timeout: Duration,
}

/// What the closed loop saw.
#[derive(Debug)]
pub struct ClosedOutcome {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<CallError>,
    pub reasons: Reasons,
    /// From the first request sent to the last answer received.
    pub elapsed: Duration,
    /// Per request, from send to answer.
    pub latency: Histogram<u64>,
}

impl ClosedOutcome {
    /// Successful requests per second.
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `plan.concurrency` virtual users until `plan.duration` has passed or
/// `plan.max_requests` have been started.
pub async fn closed_loop<T: Target>(target: &T, plan: &ClosedLoop) -> ClosedOutcome {
    let started = Instant::now();
    let end = started + plan.duration;
    let issued = Arc::new(AtomicU64::new(0));
    let mut users = JoinSet::new();
    for _ in 0..plan.concurrency.max(1) {
        let (target, issued, plan) = (target.clone(), issued.clone(), plan.clone());
        users.spawn(async move {
            let mut latency = histogram();
            let (mut ok, mut errors, mut first_error) = (0, 0, None);
            let mut reasons = Reasons::default();
            while Instant::now() < end && issued.fetch_add(1, Ordering::Relaxed) < plan.max_requests
            {
                let sent = Instant::now();
                match tokio::time::timeout(plan.timeout, target.call()).await {
                    Ok(Ok(())) => {
                        record(&mut latency, sent.elapsed());
                        ok += 1;
                    }
                    outcome => {
                        errors += 1;
                        let error = match outcome {
                            Ok(Err(error)) => error,
                            _ => CallError::new(format!("no answer within {:?}", plan.timeout)),
                        };
                        reasons.add(&error, 1);
                        first_error.get_or_insert(error);
                    }
                }
            }
            (latency, ok, errors, first_error, reasons)
        });
    }
    let mut outcome = ClosedOutcome {
        ok: 0,
        errors: 0,
        first_error: None,
        reasons: Reasons::default(),
        elapsed: Duration::ZERO,
        latency: histogram(),
    };
    while let Some(joined) = users.join_next().await {
        let Ok((latency, ok, errors, first_error, reasons)) = joined else {
            outcome.errors += 1;
            continue;
        };
        let _ = outcome.latency.add(&latency);
        outcome.ok += ok;
        outcome.errors += errors;
        outcome.first_error = outcome.first_error.or(first_error);
        outcome.reasons.merge(&reasons);
    }
    outcome.elapsed = started.elapsed();
    outcome
}

/// What the open loop does.
#[derive(Debug, Clone)]
pub struct OpenLoop {
    /// Requests per second offered.
    pub rate: f64,
    pub duration: Duration,
    pub max_requests: u64,
    /// Deadline of one request, counted from its intended send time.
    pub timeout: Duration,
    /// At most this many requests outstanding; past it, sending waits (and the wait counts in
    /// the latency of the requests it delays).
    pub max_in_flight: usize,
}

/// What the open loop saw.
#[derive(Debug)]
pub struct OpenOutcome {
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<CallError>,
    pub reasons: Reasons,
    pub elapsed: Duration,
    /// Per request, from its intended send time to its answer.
    pub latency: Histogram<u64>,
    /// Per request, from its intended to its actual send time: the generator's own lateness.
    pub send_lag: Histogram<u64>,
}

impl OpenOutcome {
    /// Requests per second actually sent.
    pub fn achieved_rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    first_error: Option<CallError>,
    reasons: Reasons,
}

/// Offers `plan.rate` requests per second for `plan.duration`.
impl OpenOutcome {
    /// Adds another turn of the same path: counts and histograms add up, the first error
    /// stays the first.
    pub fn merge(&mut self, turn: OpenOutcome) {
        self.sent += turn.sent;
        self.ok += turn.ok;
        self.errors += turn.errors;
        self.first_error = self.first_error.take().or(turn.first_error);
        self.reasons.merge(&turn.reasons);
        self.elapsed += turn.elapsed;
        // Both come from `histogram()`, which resizes itself: adding cannot run out of range.
        let _ = self.latency.add(&turn.latency);
        let _ = self.send_lag.add(&turn.send_lag);
    }
}

pub async fn open_loop<T: Target>(target: &T, plan: &OpenLoop) -> OpenOutcome {
    let rate = plan.rate.max(1.0);
    let total = ((rate * plan.duration.as_secs_f64()) as u64).clamp(1, plan.max_requests.max(1));
    let interval_ns = 1e9 / rate;
    let max_in_flight = plan.max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let latency = Arc::new(Mutex::new(histogram()));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut send_lag = histogram();

    let start = Instant::now() + Duration::from_millis(1);
    for i in 0..total {
        let intended = start + Duration::from_nanos((i as f64 * interval_ns) as u64);
        wait_until(intended).await;
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        record(
            &mut send_lag,
            Instant::now().saturating_duration_since(intended),
        );
        let (target, latency, tally) = (target.clone(), latency.clone(), tally.clone());
        let deadline = intended + plan.timeout;
        tokio::spawn(async move {
            let outcome = tokio::time::timeout_at(deadline, target.call()).await;
            let answered = Instant::now();
            if let Ok(mut tally) = tally.lock() {
                match outcome {
                    Ok(Ok(())) => {
                        tally.ok += 1;
                        if let Ok(mut latency) = latency.lock() {
                            record(&mut latency, answered.saturating_duration_since(intended));
                        }
                    }
                    outcome => {
                        tally.errors += 1;
                        let error = match outcome {
                            Ok(Err(error)) => error,
                            _ => CallError::new("no answer before the deadline"),
                        };
                        tally.reasons.add(&error, 1);
                        tally.first_error.get_or_insert(error);
                    }
                }
            }
            drop(slot);
        });
    }
    // Every request has a deadline, so all slots come back; the bound is a safety net.
    let all = u32::try_from(max_in_flight).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(
        plan.timeout + Duration::from_secs(1),
        slots.acquire_many(all),
    )
    .await;
    let elapsed = start.elapsed();
    let tally = tally
        .lock()
        .map(|mut t| std::mem::take(&mut *t))
        .unwrap_or_default();
    let latency = latency
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| histogram());
    let unanswered = if drained.is_ok() {
        0
    } else {
        total.saturating_sub(tally.ok + tally.errors)
    };
    let mut reasons = tally.reasons;
    if unanswered > 0 {
        reasons.add(&CallError::new("no answer after the deadline"), unanswered);
    }
    OpenOutcome {
        sent: send_lag.len(),
        ok: tally.ok,
        errors: tally.errors + unanswered,
        first_error: tally.first_error,
        reasons,
        elapsed,
        latency,
        send_lag,
    }
}

/// Waits until `instant` with microsecond precision. Tokio's timer has millisecond
/// granularity, so the last stretch yields to the runtime instead, which keeps sending and
/// receiving meanwhile (and polls the network after every yield). The generator has a core of
/// its own to spend on this; a generator that slept would add its own wake-up latency (tens of
/// microseconds on a virtual machine whose idle core has been halted) to every request.
async fn wait_until(instant: Instant) {
    loop {
        let now = Instant::now();
        if now >= instant {
            return;
        }
        let left = instant - now;
        if left > Duration::from_millis(3) {
            tokio::time::sleep(left - Duration::from_millis(2)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers after a fixed time; optionally, one request stalls for much longer.
    #[derive(Clone)]
    struct Sleeper {
        service: Duration,
        stall_on: Option<u64>,
        stall: Duration,
        calls: Arc<AtomicU64>,
        /// Serialises calls like a single-threaded server does.
        server: Arc<tokio::sync::Mutex<()>>,
    }

    impl Sleeper {
        fn new(service: Duration) -> Self {
            Self {
                service,
                stall_on: None,
                stall: Duration::ZERO,
                calls: Arc::default(),
                server: Arc::default(),
            }
        }
    }

    impl Target for Sleeper {
        async fn call(&self) -> Result<(), CallError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let _busy = self.server.lock().await;
            let pause = if Some(n) == self.stall_on {
                self.stall
            } else {
                self.service
            };
            // Even a zero sleep waits for the timer's next millisecond tick.
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            Ok(())
        }
    }

    #[derive(Clone)]
    struct Failing;

    impl Target for Failing {
        async fn call(&self) -> Result<(), CallError> {
            Err(CallError::new("refused"))
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_closed_loop_is_bounded_by_time_and_count() {
        let target = Sleeper::new(Duration::ZERO);
        let plan = ClosedLoop {
            concurrency: 4,
            duration: Duration::from_secs(30),
            max_requests: 1_000,
            timeout: Duration::from_secs(1),
        };
        let started = std::time::Instant::now();
        let outcome = closed_loop(&target, &plan).await;
        assert_eq!(outcome.ok, 1_000);
        assert_eq!(outcome.latency.len(), 1_000);
        assert!(started.elapsed() < Duration::from_secs(10));

        let plan = ClosedLoop {
            duration: Duration::from_millis(200),
            max_requests: u64::MAX,
            ..plan
        };
        let started = std::time::Instant::now();
        let outcome = closed_loop(&Sleeper::new(Duration::from_millis(5)), &plan).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200) && took < Duration::from_secs(2));
        assert!(outcome.ok > 0 && outcome.errors == 0);
        // One request at a time on the "server": about 200 per second whatever the concurrency.
        assert!(outcome.throughput() < 260.0, "{}", outcome.throughput());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn failures_and_timeouts_are_counted_not_timed() {
        let plan = ClosedLoop {
            concurrency: 2,
            duration: Duration::from_secs(5),
            max_requests: 10,
            timeout: Duration::from_millis(20),
        };
        let outcome = closed_loop(&Failing, &plan).await;
        assert_eq!((outcome.ok, outcome.errors), (0, 10));
        assert_eq!(outcome.first_error, Some(CallError::new("refused")));
        assert_eq!(outcome.latency.len(), 0);

        let slow = Sleeper::new(Duration::from_millis(200));
        let plan = ClosedLoop {
            max_requests: 2,
            ..plan
        };
        let outcome = closed_loop(&slow, &plan).await;
        assert_eq!(outcome.errors, 2);
        assert!(
            outcome
                .first_error
                .is_some_and(|e| e.0.contains("no answer"))
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_open_loop_keeps_its_schedule() {
        let target = Sleeper::new(Duration::ZERO);
        let plan = OpenLoop {
            rate: 2_000.0,
            duration: Duration::from_millis(500),
            max_requests: 100_000,
            timeout: Duration::from_secs(1),
            max_in_flight: 64,
        };
        let outcome = open_loop(&target, &plan).await;
        assert_eq!(outcome.sent, 1_000);
        assert_eq!(outcome.ok, 1_000);
        // Generous bounds: the schedule must hold, but a loaded CI machine may not be punctual.
        let rate = outcome.achieved_rate();
        assert!((1_000.0..2_100.0).contains(&rate), "{rate}");
        let lag = Percentiles::of(&outcome.send_lag);
        assert!(lag.p50 < 20_000.0, "{lag:?}");
    }

    /// The point of the open loop: a 300 ms stall at 200 requests per second delays about 60
    /// requests, and their latencies (from the intended send time) show it, where a closed loop
    /// with one user would record a single slow request.
    #[tokio::test(flavor = "current_thread")]
    async fn a_stall_delays_every_request_due_during_it() {
        let mut target = Sleeper::new(Duration::from_micros(100));
        target.stall_on = Some(20);
        target.stall = Duration::from_millis(300);
        let plan = OpenLoop {
            rate: 200.0,
            duration: Duration::from_secs(1),
            max_requests: 1_000,
            timeout: Duration::from_secs(5),
            max_in_flight: 1_000,
        };
        let outcome = open_loop(&target, &plan).await;
        assert_eq!(outcome.ok, 200);
        // Only lower bounds: a busy machine (CI) can only make more requests late, and this
        // must not flake there. Without the correction, one request would show the stall.
        let delayed = outcome.latency.count_between(50_000_000, u64::MAX);
        assert!(delayed >= 45, "{delayed} requests saw the stall");
        let latency = Percentiles::of(&outcome.latency);
        assert!(latency.max >= 290_000.0, "{latency:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn open_loop_turns_add_up() {
        let target = Sleeper::new(Duration::ZERO);
        let turn = OpenLoop {
            rate: 1_000.0,
            duration: Duration::from_millis(50),
            max_requests: 10_000,
            timeout: Duration::from_secs(1),
            max_in_flight: 64,
        };
        let mut total = open_loop(&target, &turn).await;
        let second = open_loop(&target, &turn).await;
        let (ok, sent) = (total.ok + second.ok, total.sent + second.sent);
        let elapsed = total.elapsed + second.elapsed;
        total.merge(second);
        assert_eq!((ok, sent), (100, 100), "two turns of 50 requests");
        assert_eq!((total.ok, total.sent, total.elapsed), (ok, sent, elapsed));
        assert_eq!((total.latency.len(), total.send_lag.len()), (ok, sent));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn open_loop_failures_are_counted() {
        let plan = OpenLoop {
            rate: 1_000.0,
            duration: Duration::from_millis(50),
            max_requests: 1_000,
            timeout: Duration::from_millis(100),
            max_in_flight: 8,
        };
        let outcome = open_loop(&Failing, &plan).await;
        assert_eq!(outcome.ok, 0);
        assert_eq!(outcome.errors, outcome.sent);
        assert!(outcome.first_error.is_some());
    }
}
