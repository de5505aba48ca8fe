//! It keeps working after pressure: a bounded burst of concurrent buyers that mixes purchases
//! with every refusal the payment service has (insufficient stock, insufficient balance, a
//! payment that is not WAITING, one that is someone else's, an idempotency key reused for
//! another request) and with callers that give up before their answer comes. Afterwards a
//! single request of each kind succeeds within a second, the outbox drains, and stock and money
//! are conserved. Before write transactions ran on tasks of their own, a caller that gave up
//! while its `BEGIN` was on its way left a pooled connection inside a transaction for good, and
//! on SQLite every later purchase failed.

#[macro_use]
mod common;

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use common::{Backend, TestPayment, User, World, eventually};
use rpc_idl::payment::PayState;
use volo_grpc::Code;

on_both_backends!(a_burst_of_buyers_leaves_every_path_working);

/// Concurrent buyers, and rounds each of them makes.
const BUYERS: usize = 48;
const ROUNDS: usize = 10;
/// What each wallet opens with: enough for a few purchases, so the burst runs wallets dry.
const OPENING: i64 = 30_000;

#[derive(Default)]
struct Tally {
    paid: AtomicUsize,
    refused: AtomicUsize,
    abandoned: AtomicUsize,
    failed: AtomicUsize,
}

impl Tally {
    /// Counts an answer: success, an expected business refusal, or a failure.
    fn count<T>(&self, what: &str, outcome: Result<T, volo_grpc::Status>, refusals: &[Code]) {
        match outcome {
            Ok(_) => {}
            Err(status) if refusals.contains(&status.code()) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
            }
            Err(status) => {
                eprintln!("{what}: {status:?}");
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One buyer's rounds: settle and pay, with a refusal or a give-up mixed in by `seed`.
async fn buyer(
    service: &TestPayment,
    me: &User,
    other: &User,
    book: i64,
    scarce: i64,
    seed: usize,
    tally: &Tally,
) {
    for round in 0..ROUNDS {
        let turn = seed * 7 + round;
        // A caller that gives up: on every other round, the pay (or the settlement) is left
        // after 0 to 1.5 ms, spread over the moments its transaction begins and ends.
        if turn.is_multiple_of(2) {
            let patience = Duration::from_micros(((turn * 131) % 1_500) as u64);
            if turn.is_multiple_of(6) {
                let _ = tokio::time::timeout(patience * 4, service.settle(me, &[(book, 1)])).await;
            } else if let Ok(payment) = service.settle(me, &[(book, 1)]).await {
                let _ = tokio::time::timeout(patience, service.pay(me, &payment.pay_id)).await;
            }
            tally.abandoned.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        // Insufficient stock: more of the scarce book than there is.
        if turn.is_multiple_of(11) {
            let outcome = service.settle(me, &[(scarce, 1_000)]).await;
            tally.count("settle too many", outcome, &[Code::FailedPrecondition]);
            continue;
        }
        let payment = match service.settle(me, &[(book, 1)]).await {
            Ok(payment) => payment,
            Err(status) => {
                tally.count("settle", Err::<(), _>(status), &[Code::FailedPrecondition]);
                continue;
            }
        };
        match turn % 4 {
            // Not the owner: someone else tries to pay it, then its owner cancels it.
            0 => {
                let stranger = service.pay(other, &payment.pay_id).await;
                tally.count("stranger pays", stranger, &[Code::PermissionDenied]);
                let cancel = service.cancel(me, &payment.pay_id).await;
                tally.count("cancel", cancel, &[]);
            }
            // An idempotency key reused for another request.
            1 => {
                let key = format!("key-{seed}-{round}");
                let paid = service.pay_with_key(me, &payment.pay_id, &key).await;
                tally.count("keyed pay", paid, &[Code::FailedPrecondition]);
                let reused = service.cancel_with_key(me, &payment.pay_id, &key).await;
                tally.count(
                    "reused key",
                    reused,
                    &[Code::InvalidArgument, Code::FailedPrecondition],
                );
            }
            // Pay; a second pay of the same payment is not WAITING any more.
            _ => match service.pay(me, &payment.pay_id).await {
                Ok(_) => {
                    tally.paid.fetch_add(1, Ordering::Relaxed);
                    let again = service.pay(me, &payment.pay_id).await;
                    tally.count("pay again", again, &[Code::Aborted]);
                }
                Err(status) => {
                    tally.count("pay", Err::<(), _>(status), &[Code::FailedPrecondition])
                }
            },
        }
    }
}

/// The SQLite and PostgreSQL runs take turns: the "within a second" checks time the system at
/// rest, not beside the other run's burst.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn a_burst_of_buyers_leaves_every_path_working(backend: Backend) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut world = World::new(backend).await;
    let mut settings = world.payment_settings();
    settings.payment.opening_balance_cents = OPENING;
    // Reservations of abandoned settlements are released soon, so the outbox drains in the test.
    settings.payment.reservation_guard_ms = 2_500;
    let service = world.start_payment(settings).await;
    let book = world.product(2_000, 10_000).await;
    let scarce = world.product(5_000, 3).await;
    let users: Vec<User> = (0..8).map(|i| world.user(100 + i)).collect();

    let tally = Tally::default();
    let burst = (0..BUYERS).map(|seed| {
        let me = &users[seed % users.len()];
        let other = &users[(seed + 1) % users.len()];
        buyer(&service, me, other, book, scarce, seed, &tally)
    });
    futures::future::join_all(burst).await;
    let (paid, refused, abandoned, failed) = (
        tally.paid.load(Ordering::Relaxed),
        tally.refused.load(Ordering::Relaxed),
        tally.abandoned.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    eprintln!("burst: {paid} paid, {refused} refused, {abandoned} abandoned, {failed} failed");
    assert!(
        paid > 0 && refused > 0 && abandoned > 0,
        "the burst exercised every path"
    );
    assert_eq!(failed, 0, "no call failed other than by a business refusal");

    // At rest, one request at a time, each kind answers within a second.
    let fresh = world.user(999);
    let quick = |started: Instant, what: &str| {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{what} took {:?}",
            started.elapsed()
        );
    };
    let started = Instant::now();
    let payment = service
        .settle(&fresh, &[(book, 1)])
        .await
        .expect("a fresh settlement");
    quick(started, "settle");
    let started = Instant::now();
    let paid = service
        .pay(&fresh, &payment.pay_id)
        .await
        .expect("a fresh pay");
    assert_eq!(paid.pay_state, PayState::PAYED);
    quick(started, "pay");
    let started = Instant::now();
    let second = service
        .settle(&fresh, &[(book, 1)])
        .await
        .expect("another settlement");
    service
        .cancel(&fresh, &second.pay_id)
        .await
        .expect("a fresh cancel");
    quick(started, "settle and cancel");
    let started = Instant::now();
    service.get(&fresh, &payment.pay_id).await.expect("a read");
    service.wallet(&fresh).await;
    quick(started, "reads");

    // Every payment made, including those whose callers never heard of them, is accounted for.
    world.record_every_stored_payment().await;
    eventually("the outbox to drain", || async {
        (world.outbox_count("status = 'PENDING'").await == 0).then_some(())
    })
    .await;
    world.assert_conserved(&service, OPENING).await;
    service.stop().await;
}
