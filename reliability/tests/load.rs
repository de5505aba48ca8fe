//! Load: 200 buyers, each with their own account, race through the REST API for a book of which
//! 10 are in stock. Exactly 10 settle and pay, the other 190 are told it is sold out, nobody is
//! charged without goods, and the stock is never negative, on SQLite and on PostgreSQL.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::{StreamExt, stream};
use gateway::testing::{Reply, Rest, settlement};
use reliability::stack::{Stack, StackOptions, Storage};
use tokio::sync::Barrier;

const BUYERS: usize = 200;
const IN_STOCK: i64 = 10;
/// The book costs 10.00; shipping is 12.00 (the payment service's default).
const CHARGE_CENTS: i64 = 1_000 + 1_200;
const OPENING_CENTS: i64 = 1_000_000;

/// A 503/504 or a lost answer leaves a write's fate unknown: repeat it with the same
/// idempotency key (at most a few times), as a careful client does.
async fn with_retries<F, Fut>(mut attempt: F) -> Reply
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Reply, String>>,
{
    for _ in 0..5 {
        match attempt().await {
            Ok(reply) if !matches!(reply.status.as_u16(), 503 | 504) => return reply,
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    panic!("no definite answer after 5 tries");
}

/// What one buyer got: the settlement's status and, if it settled, the payment's.
async fn buy(rest: Rest, token: String, product: i64, start: Arc<Barrier>) -> (u16, Option<u16>) {
    let settle_key = uuid::Uuid::new_v4().to_string();
    start.wait().await;
    let cart = settlement(&[(product, 1)]);
    let settled = with_retries(|| rest.try_settle(&token, &cart, Some(&settle_key))).await;
    if settled.status != 200 {
        return (settled.status.as_u16(), None);
    }
    let pay_id = settled.json()["payId"].as_str().expect("payId").to_owned();
    let pay_key = uuid::Uuid::new_v4().to_string();
    let paid =
        with_retries(|| rest.try_change_payment(&token, &pay_id, "PAYED", Some(&pay_key))).await;
    (200, Some(paid.status.as_u16()))
}

async fn race(storage: Storage) {
    // The race is about correctness, not deadlines: give every hop room under the burst.
    let stack = Stack::start(StackOptions::with_room(storage)).await;
    let rest = stack.rest.clone().with_timeout(Duration::from_secs(60));
    let admin = rest.admin_token().await;
    let product = rest
        .new_product(&admin, "The Last Copies", serde_json::json!(10), IN_STOCK)
        .await;
    let tokens: Vec<String> = stream::iter(0..BUYERS)
        .map(|i| {
            let rest = rest.clone();
            async move { rest.new_user(&format!("buyer{i}")).await }
        })
        .buffered(8)
        .collect()
        .await;

    // Watch the stock while the race runs.
    let racing = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (rest, admin, racing) = (rest.clone(), admin.clone(), racing.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while racing.load(Ordering::Relaxed) && samples.len() < 10_000 {
                samples.push(rest.stock(&admin, product).await);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            samples
        })
    };
    let start = Arc::new(Barrier::new(BUYERS));
    let buyers: Vec<_> = tokens
        .iter()
        .map(|token| tokio::spawn(buy(rest.clone(), token.clone(), product, start.clone())))
        .collect();
    let mut outcomes = Vec::new();
    for buyer in buyers {
        outcomes.push(buyer.await.expect("buyer"));
    }
    racing.store(false, Ordering::Relaxed);
    let samples = watcher.await.expect("watcher");

    let settled = outcomes.iter().filter(|(s, _)| *s == 200).count();
    let sold_out = outcomes.iter().filter(|(s, _)| *s == 422).count();
    let paid = outcomes.iter().filter(|(_, p)| *p == Some(200)).count();
    assert_eq!(
        (settled, sold_out, paid),
        (
            IN_STOCK as usize,
            BUYERS - IN_STOCK as usize,
            IN_STOCK as usize
        ),
        "outcomes: {outcomes:?}"
    );
    assert!(samples.len() > 3, "the stock was watched during the race");
    for &(amount, frozen) in &samples {
        assert!(
            amount >= 0 && frozen >= 0 && amount + frozen <= IN_STOCK,
            "stock seen at {amount} + {frozen} frozen"
        );
    }
    assert_eq!(rest.stock(&admin, product).await, (0, 0));

    // Exactly the ten who got the goods paid, exactly once; nobody else was charged.
    for (token, (_, paid)) in tokens.iter().zip(&outcomes) {
        let expected = if *paid == Some(200) {
            OPENING_CENTS - CHARGE_CENTS
        } else {
            OPENING_CENTS
        };
        assert_eq!(rest.balance_cents(token).await, expected);
    }
    let report = stack.assert_all_final(Duration::from_secs(20)).await;
    println!("{report}");
    stack.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_buyers_race_for_ten_books_on_sqlite() {
    tokio::time::timeout(Duration::from_secs(150), race(Storage::Sqlite))
        .await
        .expect("within its deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_buyers_race_for_ten_books_on_postgres() {
    tokio::time::timeout(Duration::from_secs(150), race(Storage::Postgres))
        .await
        .expect("within its deadline");
}
