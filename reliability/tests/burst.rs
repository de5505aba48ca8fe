//! Liveness after a burst of buyers, through the REST API of the launched programs: 64 and then
//! 128 connections in a closed loop settle and pay until their buyers' wallets run dry (so later
//! payments are refused for balance), while a fifth of the callers give up on their requests
//! after a few milliseconds. The callers who wait must see only purchases and business refusals;
//! afterwards, at rest, a purchase succeeds at once, every payment reaches a final state and the
//! conservation audit is clean. On SQLite and on PostgreSQL.
//!
//! Before write transactions ran on tasks of their own, such a burst left a pooled connection
//! inside a transaction and every later purchase failed until a restart; before the gateway let
//! abandoned writes finish and the gRPC servers tolerated resets up to their stream limit, the
//! abandoning callers made the payment server close the gateway's connection, failing the calls
//! of everyone else on it.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use gateway::testing::{Rest, settlement};
use reliability::stack::{Stack, StackOptions, Storage};

/// The book costs 1 500.00: a wallet's 10 000.00 pays for six of them (with shipping), so the
/// wallets run dry early in the first burst and payments are refused from then on.
const PRICE: i64 = 1_500;
const BUYERS: usize = 8;
/// Each burst runs this long (and at most this many purchases per connection).
const BURST: Duration = Duration::from_secs(4);
const MAX_ROUNDS: usize = 200;

/// What the callers who waited for their answers saw, by status.
type Seen = Arc<Mutex<BTreeMap<u16, usize>>>;

async fn patient(rest: Rest, token: String, product: i64, until: Instant, seen: Seen) {
    let cart = settlement(&[(product, 1)]);
    for _ in 0..MAX_ROUNDS {
        if Instant::now() >= until {
            break;
        }
        let status = match rest.try_settle(&token, &cart, None).await {
            Ok(settled) if settled.status == 200 => {
                let pay_id = settled.json()["payId"].as_str().expect("payId").to_owned();
                match rest
                    .try_change_payment(&token, &pay_id, "PAYED", None)
                    .await
                {
                    Ok(paid) if paid.status == 422 => {
                        // Refused for balance: the buyer gives the books back.
                        let _ = rest
                            .try_change_payment(&token, &pay_id, "CANCEL", None)
                            .await;
                        422
                    }
                    Ok(paid) => paid.status.as_u16(),
                    Err(_) => 0,
                }
            }
            Ok(refused) => {
                if refused.status != 422 {
                    println!("settle: {} {}", refused.status, refused.text());
                }
                refused.status.as_u16()
            }
            Err(error) => {
                println!("settle: {error}");
                0
            }
        };
        *seen.lock().expect("tally").entry(status).or_default() += 1;
    }
}

/// Gives up on every request after 1 to 20 ms, mid-settlement or mid-payment, and tries again
/// a moment later (as a person who lost patience and clicks again does).
async fn impatient(rest: Rest, token: String, product: i64, until: Instant, seed: u64) {
    let cart = settlement(&[(product, 1)]);
    for round in 0..MAX_ROUNDS as u64 {
        if Instant::now() >= until {
            break;
        }
        let patience = Duration::from_millis(1 + (seed * 7 + round * 13) % 20);
        let hasty = rest.clone().with_timeout(patience);
        if let Ok(settled) = hasty.try_settle(&token, &cart, None).await
            && settled.status == 200
        {
            let pay_id = settled.json()["payId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let _ = hasty
                .try_change_payment(&token, &pay_id, "PAYED", None)
                .await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The two bursts run one after the other: side by side, two whole bookstores of debug builds
/// under 128 connections each would measure the two cores, not the system.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn burst(storage: Storage) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start(StackOptions {
        // Payments whose callers gave up stay WAITING until their window closes.
        payment_window_ms: 15_000,
        ..StackOptions::with_room(storage)
    })
    .await;
    let rest = stack.rest.clone().with_timeout(Duration::from_secs(60));
    let admin = rest.admin_token().await;
    let product = rest
        .new_product(&admin, "Burst Edition", serde_json::json!(PRICE), 100_000)
        .await;
    for connections in [64, 128] {
        // New buyers for each burst, with full wallets.
        let mut tokens = Vec::new();
        for i in 0..BUYERS {
            tokens.push(rest.new_user(&format!("buyer{connections}x{i}")).await);
        }
        let seen: Seen = Arc::default();
        let until = Instant::now() + BURST;
        let callers: Vec<_> = (0..connections)
            .map(|i| {
                let (rest, token) = (rest.clone(), tokens[i % BUYERS].clone());
                if i % 5 == 4 {
                    tokio::spawn(impatient(rest, token, product, until, i as u64))
                } else {
                    tokio::spawn(patient(rest, token, product, until, seen.clone()))
                }
            })
            .collect();
        for caller in callers {
            caller.await.expect("caller");
        }
        let seen = seen.lock().expect("tally").clone();
        println!("{connections} connections: statuses seen by patient callers {seen:?}");
        let purchases = seen.get(&200).copied().unwrap_or(0);
        let refusals = seen.get(&422).copied().unwrap_or(0);
        let failures: usize = seen
            .iter()
            .filter(|(status, _)| !matches!(status, 200 | 422))
            .map(|(_, n)| n)
            .sum();
        assert!(purchases > 0, "some purchases went through: {seen:?}");
        assert_eq!(
            failures, 0,
            "patient callers saw only purchases and refusals: {seen:?}"
        );
        assert!(refusals > 0, "the wallets ran dry: {seen:?}");

        // Writes whose callers gave up still run to their end (each within its deadline);
        // then, at rest, one request at a time: new buyers' purchases go through at once. Three
        // in a row, each of which must succeed; the quickest must take under a second (the
        // first may still wait for the row lock of a given-up write finishing on a loaded
        // machine; a wedged path, the failure this guards against, fails all three).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut took = Vec::new();
        for attempt in 0..3 {
            let fresh = rest
                .new_user(&format!("after{connections}-{attempt}"))
                .await;
            let started = Instant::now();
            let settled = rest
                .settle(&fresh, &settlement(&[(product, 1)]), None)
                .await
                .expect(200);
            let pay_id = settled.json()["payId"].as_str().expect("payId").to_owned();
            rest.change_payment(&fresh, &pay_id, "PAYED", None)
                .await
                .expect(200);
            took.push(started.elapsed());
        }
        println!("{connections} connections: purchases at rest afterwards took {took:?}");
        let quickest = took.iter().min().copied().unwrap_or_default();
        assert!(
            quickest < Duration::from_secs(1),
            "purchases at rest took {took:?}"
        );
    }
    let report = stack.assert_all_final(Duration::from_secs(45)).await;
    println!("{report}");
    stack.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_64_and_128_buyers_leave_purchases_working_on_sqlite() {
    tokio::time::timeout(Duration::from_secs(300), burst(Storage::Sqlite))
        .await
        .expect("within its deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_64_and_128_buyers_leave_purchases_working_on_postgres() {
    tokio::time::timeout(Duration::from_secs(300), burst(Storage::Postgres))
        .await
        .expect("within its deadline");
}
