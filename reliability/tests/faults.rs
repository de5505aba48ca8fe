//! Faults under a steady mix of REST traffic, against the real binaries: a backend SIGKILLed
//! and restarted, a rolling restart of every backend, and the gateway's configuration swapped
//! to new backend addresses. Every scenario ends with the conservation audit, and waits until
//! every payment has reached a final state (paid, cancelled or timed out) with nothing frozen.

use std::time::Duration;

use reliability::{
    programs::Kind,
    stack::{Stack, StackOptions, Storage},
    traffic::{Event, Op, Outcome, Plan, Traffic, listing, summary},
};

/// No scenario may take longer than this, start-up and shut-down included.
const SCENARIO_DEADLINE: Duration = Duration::from_secs(150);
/// "Full service within seconds of its return."
const RECOVERY: Duration = Duration::from_secs(5);

async fn within(scenario: impl Future<Output = ()>) {
    tokio::time::timeout(SCENARIO_DEADLINE, scenario)
        .await
        .expect("the scenario finished within its deadline");
}

fn plan(shop: &reliability::stack::Shop) -> Plan {
    Plan {
        workers: 3,
        products: shop.products.clone(),
        shoppers: shop.shoppers.clone(),
        max_requests: 3_000,
        duration: Duration::from_secs(60),
        pause: Duration::from_millis(10),
    }
}

/// Events that started at or after `from` and finished before `to`.
fn between(events: &[Event], from: Duration, to: Duration) -> Vec<&Event> {
    events
        .iter()
        .filter(|e| e.started >= from && e.finished < to)
        .collect()
}

fn failures<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<&'a Event> {
    events
        .into_iter()
        .filter(|e| e.outcome.is_failure())
        .collect()
}

/// Asserts that every request that started at or after `from` and finished before `to`
/// succeeded, and that there were more than `at_least` of them.
fn assert_served(events: &[Event], from: Duration, to: Duration, at_least: usize, what: &str) {
    let served = between(events, from, to);
    let failed = failures(served.iter().copied());
    assert!(
        failed.is_empty() && served.len() > at_least,
        "{what}: {}\n{}",
        summary(events),
        listing(failed)
    );
}

/// Requests cut off by a kill at `killed` may fail, but only as an outage.
fn assert_cut_off_only_as_outage(events: &[Event], killed: Duration) {
    for event in events
        .iter()
        .filter(|e| e.started < killed && e.finished >= killed)
    {
        assert!(
            matches!(
                event.outcome,
                Outcome::Ok | Outcome::Refused(_) | Outcome::Status(503 | 504, _)
            ),
            "{event}"
        );
    }
}

/// A bookstore on `storage` with `instances` of each backend, and payment windows short enough
/// that abandoned carts time out during the test.
async fn start_stack(storage: Storage, instances: usize) -> Stack {
    Stack::start(StackOptions {
        storage,
        instances,
        payment_window_ms: 3_000,
        ..StackOptions::default()
    })
    .await
}

/// Opens the shop (one scarce product, so it sells out and oversold stock would show, and one
/// plentiful) and starts the shoppers' traffic.
async fn start_shopping(stack: &Stack) -> Traffic {
    let shop = stack.open_shop(3, &[12, 1_000]).await;
    Traffic::start(stack.rest.clone(), plan(&shop))
}

/// The scenario ends as every one does: every payment final, nothing frozen, nothing lost.
async fn audit_and_shut_down(stack: Stack) {
    let report = stack.assert_all_final(Duration::from_secs(20)).await;
    println!("{report}");
    stack.shut_down().await;
}

/// What the traffic saw of one backend SIGKILLed and restarted on its address; times are since
/// the traffic started.
struct Outage {
    events: Vec<Event>,
    killed: Duration,
    restarting: Duration,
    /// The restarted program is up.
    back: Duration,
    /// When each op the scenario waited for first succeeded after `back` (if within
    /// [`RECOVERY`]).
    recovered: [Option<Duration>; 2],
}

/// Shoppers' traffic, 1.5 s of it, then a SIGKILL to the first instance of `kind`, its restart
/// 2 s later, a wait (at most [`RECOVERY`] each) for the first success of each op in
/// `recovering`, and 1.5 s more traffic.
async fn kill_and_restart(stack: &mut Stack, kind: Kind, recovering: [Op; 2]) -> Outage {
    let traffic = start_shopping(stack).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let killed = traffic.now();
    stack.program(kind, 0).kill().await;
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let restarting = traffic.now();
    stack.restart(kind, 0).await;
    let back = traffic.now();
    let mut recovered = [None; 2];
    for (first, op) in recovered.iter_mut().zip(recovering) {
        *first = traffic
            .first_success_after(back, |o| o == op, RECOVERY)
            .await;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let events = traffic.stop().await;
    println!("traffic: {}", summary(&events));
    Outage {
        events,
        killed,
        restarting,
        back,
        recovered,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warehouse_sigkill_mid_traffic_is_503_then_full_service_and_nothing_is_lost() {
    within(warehouse_sigkill(Storage::Sqlite)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warehouse_sigkill_on_postgres_is_503_then_full_service_and_nothing_is_lost() {
    within(warehouse_sigkill(Storage::Postgres)).await;
}

async fn warehouse_sigkill(storage: Storage) {
    let mut stack = start_stack(storage, 1).await;
    let recovering = [Op::ListProducts, Op::Settle];
    let outage = kill_and_restart(&mut stack, Kind::Warehouse, recovering).await;
    let (events, all) = (&outage.events, summary(&outage.events));

    let before_the_kill = "before the kill everything works";
    assert_served(events, Duration::ZERO, outage.killed, 20, before_the_kill);
    // While it is down: whatever needs the warehouse is a 503 (never a 500 or a hang);
    // paying and cancelling still work (the payment service owes the warehouse a call).
    let down = between(
        events,
        outage.killed + Duration::from_millis(100),
        outage.restarting,
    );
    let needing = down.iter().filter(|e| e.op.needs_warehouse()).count();
    assert!(needing > 5, "traffic ran while it was down: {all}");
    for event in &down {
        let expected_503 = event.op.needs_warehouse();
        match &event.outcome {
            Outcome::Status(503, _) if expected_503 => {}
            Outcome::Ok | Outcome::Refused(_) if !expected_503 => {}
            _ => panic!("while the warehouse was down: {event}\n{all}"),
        }
    }
    assert_cut_off_only_as_outage(events, outage.killed);
    let [reads_back, settle_back] = outage.recovered;
    let reads_back = reads_back.expect("catalogue reads recover within seconds");
    let settle_back = settle_back.expect("settlements recover within seconds");
    assert!(reads_back - outage.back < RECOVERY && settle_back - outage.back < RECOVERY);
    let full_service = "full service after the return";
    assert_served(
        events,
        reads_back.max(settle_back),
        Duration::MAX,
        10,
        full_service,
    );

    // The scarce product sold out without being oversold, nothing is stuck, and every
    // payment ends paid, cancelled or timed out with its stock committed or back.
    audit_and_shut_down(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_sigkill_mid_traffic_every_settlement_completes_or_times_out_and_releases() {
    within(async {
        let mut stack = start_stack(Storage::Sqlite, 1).await;
        let recovering = [Op::Settle, Op::Wallet];
        let outage = kill_and_restart(&mut stack, Kind::Payment, recovering).await;
        let (events, all) = (&outage.events, summary(&outage.events));

        let before_the_kill = "before the kill everything works";
        assert_served(events, Duration::ZERO, outage.killed, 20, before_the_kill);
        // While it is down: everything about payments is a 503; the catalogue and accounts
        // are unaffected.
        let down = between(
            events,
            outage.killed + Duration::from_millis(100),
            outage.restarting,
        );
        assert!(
            down.iter().filter(|e| e.op.uses_payment()).count() > 5,
            "traffic ran while it was down: {all}"
        );
        for event in &down {
            match &event.outcome {
                Outcome::Status(503, _) if event.op.uses_payment() => {}
                Outcome::Ok if !event.op.uses_payment() => {}
                _ => panic!("while the payment service was down: {event}\n{all}"),
            }
        }
        assert_cut_off_only_as_outage(events, outage.killed);
        let [settle_back, wallet_back] = outage.recovered;
        let settle_back = settle_back.expect("settlements recover within seconds");
        let wallet_back = wallet_back.expect("wallet reads recover within seconds");
        let full_service = "full service after the return";
        assert_served(
            events,
            settle_back.max(wallet_back),
            Duration::MAX,
            10,
            full_service,
        );

        // Settlements cut off by the kill released their stock through their guards, carts
        // left unpaid timed out (the restarted service found them overdue), and paid ones
        // were committed.
        audit_and_shut_down(stack).await;
    })
    .await;
}

/// Replaces each instance of `kind` in turn: start a new one, re-point the gateway (and, for
/// the warehouse, the payment services) at the survivors through their config files, then
/// SIGTERM the old one, which drains what it still has and exits cleanly. This is the order the
/// Kubernetes manifests produce: a terminating pod leaves the endpoints first and gets SIGTERM
/// only after its preStop sleep (`deploy/base/*.yaml`).
async fn roll(stack: &mut Stack, kind: Kind) {
    for _ in 0..2 {
        let old = stack.running(kind)[0];
        stack.spawn(kind).await;
        let keep: Vec<usize> = stack
            .running(kind)
            .into_iter()
            .filter(|&i| i != old)
            .collect();
        stack.point_gateway(&[(kind, keep.clone())]).await;
        if kind == Kind::Warehouse {
            stack.point_payments(&keep).await;
        }
        let took = stack.terminate(kind, old).await;
        println!("{kind:?} instance {old} drained and stopped in {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_of_every_backend_behind_two_instances_fails_no_request() {
    within(rolling_restart(Storage::Sqlite)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_on_postgres_fails_no_request() {
    within(rolling_restart(Storage::Postgres)).await;
}

async fn rolling_restart(storage: Storage) {
    let mut stack = start_stack(storage, 2).await;
    let traffic = start_shopping(&stack).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for kind in [Kind::Account, Kind::Warehouse, Kind::Payment] {
        roll(&mut stack, kind).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = traffic.stop().await;
    println!("traffic: {}", summary(&events));
    let no_failures = "no request may fail during a rolling restart (of more than 100)";
    assert_served(&events, Duration::ZERO, Duration::MAX, 100, no_failures);
    audit_and_shut_down(stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_the_gateway_config_to_new_backends_mid_traffic_fails_no_request() {
    within(async {
        let mut stack = start_stack(Storage::Sqlite, 1).await;
        let traffic = start_shopping(&stack).await;
        tokio::time::sleep(Duration::from_millis(700)).await;

        // A second set of backends on the same databases, with the new payment service
        // calling the new warehouse only.
        let account = stack.spawn(Kind::Account).await;
        let warehouse = stack.spawn(Kind::Warehouse).await;
        let payment = stack.spawn(Kind::Payment).await;
        let mark = stack.payments[payment].program.log.mark();
        stack.payments[payment].settings.warehouse.hostport =
            stack.address_list(Kind::Warehouse, &[warehouse]);
        stack.payments[payment].publish();
        stack.payments[payment]
            .program
            .wait_for_log(
                mark,
                &["backend addresses changed"],
                Duration::from_secs(10),
            )
            .await;
        // One swap of the gateway's ConfigMap-style directory moves all three backends.
        let swapped = traffic.now();
        stack
            .point_gateway(&[
                (Kind::Account, vec![account]),
                (Kind::Warehouse, vec![warehouse]),
                (Kind::Payment, vec![payment]),
            ])
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The old set is no longer used and can go.
        for kind in [Kind::Payment, Kind::Warehouse, Kind::Account] {
            stack.terminate(kind, 0).await;
        }
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let events = traffic.stop().await;
        let all = summary(&events);
        println!("traffic: {all}");
        assert!(
            events.iter().filter(|e| e.started > swapped).count() > 30,
            "traffic ran after the swap: {all}"
        );
        let no_failures = "no request may fail across the swap";
        assert_served(&events, Duration::ZERO, Duration::MAX, 0, no_failures);
        audit_and_shut_down(stack).await;
    })
    .await;
}
