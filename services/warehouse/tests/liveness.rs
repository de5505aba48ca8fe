//! It keeps working after pressure: a bounded burst of concurrent reservations that mixes
//! successes with every refusal the warehouse has (too little stock, a commit or release in the
//! wrong state, a payment id reused for other items, unknown products) and with callers that
//! give up before their answer comes. Afterwards a single request of each kind succeeds within
//! a second and every unit is accounted for: units put in = on sale + frozen + committed, where
//! frozen and committed are summed from the reservation ledger itself (callers that gave up
//! never learnt of theirs).

#[macro_use]
mod common;

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use common::start;
use platform::{database::DatabaseConfig, rpc_metadata::CallMetadata};
use rpc_idl::warehouse::{
    CreateProductRequest, DeleteProductRequest, GetProductRequest, ListProductsRequest,
    Reservation, ReservationItem, ReservationRequest, ReserveStockRequest, UpdateProductRequest,
    WarehouseServiceClient,
};
use sqlx::Row;
use volo_grpc::{Code, Status};

on_both_backends!(a_burst_of_reservations_leaves_every_path_working);

const PRODUCTS: usize = 3;
const STOCK: i64 = 60;
const CALLERS: usize = 48;
const ROUNDS: usize = 10;

/// The answers a caller may get besides success: the warehouse's business refusals.
const REFUSALS: &[Code] = &[Code::FailedPrecondition, Code::NotFound];

#[derive(Default)]
struct Tally {
    done: AtomicUsize,
    refused: AtomicUsize,
    abandoned: AtomicUsize,
    failed: AtomicUsize,
}

impl Tally {
    fn count<T>(&self, what: &str, outcome: Result<T, Status>) {
        match outcome {
            Ok(_) => self.done.fetch_add(1, Ordering::Relaxed),
            Err(status) if REFUSALS.contains(&status.code()) => {
                self.refused.fetch_add(1, Ordering::Relaxed)
            }
            Err(status) => {
                eprintln!("{what}: {status:?}");
                self.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

struct Caller<'a> {
    client: &'a WarehouseServiceClient,
    token: CallMetadata,
}

impl Caller<'_> {
    async fn reserve(&self, payment_id: &str, lines: &[(i64, i64)]) -> Result<Reservation, Status> {
        let items = lines
            .iter()
            .map(|&(product_id, amount)| ReservationItem { product_id, amount })
            .collect();
        let request = ReserveStockRequest {
            payment_id: payment_id.to_owned().into(),
            items,
        };
        self.client
            .reserve_stock(self.token.grpc_request(request))
            .await
            .map(|r| r.into_inner())
    }

    async fn settle(&self, payment_id: &str, commit: bool) -> Result<Reservation, Status> {
        let request = self.token.grpc_request(ReservationRequest {
            payment_id: payment_id.to_owned().into(),
        });
        let answer = if commit {
            self.client.commit_reservation(request).await
        } else {
            self.client.release_reservation(request).await
        };
        answer.map(|r| r.into_inner())
    }
}

async fn caller(caller: Caller<'_>, seed: usize, products: &[i64], tally: &Tally) {
    for round in 0..ROUNDS {
        let turn = seed * 7 + round;
        let payment_id = format!("burst-{seed}-{round}");
        let product = products[turn % products.len()];
        let lines = [(product, 1 + (turn % 3) as i64)];
        // Every other round gives up after 0 to 1.5 ms, somewhere in its transaction.
        if turn.is_multiple_of(2) {
            let patience = Duration::from_micros(((turn * 131) % 1_500) as u64);
            let _ = tokio::time::timeout(patience, caller.reserve(&payment_id, &lines)).await;
            let _ =
                tokio::time::timeout(patience, caller.settle(&payment_id, turn.is_multiple_of(4)))
                    .await;
            tally.abandoned.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match turn % 7 {
            // Too little stock, and an unknown product.
            0 => tally.count(
                "too many",
                caller.reserve(&payment_id, &[(product, 10_000)]).await,
            ),
            1 => tally.count(
                "unknown",
                caller.reserve(&payment_id, &[(i64::MAX, 1)]).await,
            ),
            _ => {
                let reserved = caller.reserve(&payment_id, &lines).await;
                let ok = reserved.is_ok();
                tally.count("reserve", reserved);
                if !ok {
                    continue;
                }
                // The same payment id for other items.
                let other = [(product, 9)];
                tally.count("reused id", caller.reserve(&payment_id, &other).await);
                let commit = !turn.is_multiple_of(3);
                tally.count("settle", caller.settle(&payment_id, commit).await);
                // The other final state, which is refused.
                tally.count("wrong way", caller.settle(&payment_id, !commit).await);
            }
        }
    }
}

/// (on sale, frozen) per the stock row, (frozen, committed) per the ledger.
async fn units(database: &DatabaseConfig, product_id: i64) -> ((i64, i64), (i64, i64)) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&database.url)
        .await
        .expect("open the warehouse database");
    let stock = sqlx::query("SELECT amount, frozen FROM stockpiles WHERE product_id = $1")
        .bind(product_id)
        .fetch_one(&pool)
        .await
        .expect("stock row");
    let in_state = |state: &'static str| {
        let pool = pool.clone();
        async move {
            let sum: Option<i64> = sqlx::query(
                "SELECT CAST(SUM(l.amount) AS BIGINT) AS n FROM reservation_lines l \
                 JOIN reservations r ON r.payment_id = l.payment_id \
                 WHERE r.state = $1 AND l.product_id = $2",
            )
            .bind(state)
            .bind(product_id)
            .fetch_one(&pool)
            .await
            .expect("ledger")
            .try_get("n")
            .expect("sum");
            sum.unwrap_or(0)
        }
    };
    let ledger = (in_state("RESERVED").await, in_state("COMMITTED").await);
    let row = (
        stock.try_get("amount").expect("amount"),
        stock.try_get("frozen").expect("frozen"),
    );
    pool.close().await;
    (row, ledger)
}

/// The SQLite and PostgreSQL runs take turns: the "within a second" checks time the system at
/// rest, not beside the other run's burst.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn a_burst_of_reservations_leaves_every_path_working(database: DatabaseConfig) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = start(database.clone()).await;
    let mut products = Vec::new();
    for i in 0..PRODUCTS {
        let product = server
            .product_with_stock(&format!("Burst {i}"), 1_000, STOCK)
            .await;
        products.push(product.id);
    }
    let tally = Tally::default();
    let burst = (0..CALLERS).map(|seed| {
        let caller_ = Caller {
            client: &server.client,
            token: server.service(),
        };
        caller(caller_, seed, &products, &tally)
    });
    futures::future::join_all(burst).await;
    let (done, refused, abandoned, failed) = (
        tally.done.load(Ordering::Relaxed),
        tally.refused.load(Ordering::Relaxed),
        tally.abandoned.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    eprintln!("burst: {done} done, {refused} refused, {abandoned} abandoned, {failed} failed");
    assert!(
        done > 0 && refused > 0 && abandoned > 0,
        "the burst exercised every path"
    );
    assert_eq!(failed, 0, "no call failed other than by a business refusal");

    // At rest, one request at a time, each kind answers within a second.
    let within_a_second = |started: Instant, what: &str| {
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "{what} took {took:?}");
    };
    let admin = server.admin();
    let client = &server.client;
    let started = Instant::now();
    let fresh = server.product_with_stock("Fresh", 500, 5).await;
    let input = common::product_input("Fresh, revised", 600, &[]);
    client
        .update_product(admin.grpc_request(UpdateProductRequest {
            id: fresh.id,
            product: Some(input),
        }))
        .await
        .expect("update a product");
    within_a_second(started, "create, stock and update a product");
    let buyer = Caller {
        client,
        token: server.service(),
    };
    let started = Instant::now();
    buyer
        .reserve("fresh-1", &[(fresh.id, 2)])
        .await
        .expect("reserve");
    buyer.settle("fresh-1", true).await.expect("commit");
    buyer
        .reserve("fresh-2", &[(fresh.id, 1)])
        .await
        .expect("reserve");
    buyer.settle("fresh-2", false).await.expect("release");
    within_a_second(started, "reserve, commit, reserve, release");
    let started = Instant::now();
    client
        .list_products(server.anonymous().grpc_request(ListProductsRequest {}))
        .await
        .expect("list");
    client
        .get_product(
            server
                .anonymous()
                .grpc_request(GetProductRequest { id: fresh.id }),
        )
        .await
        .expect("read");
    within_a_second(started, "reads");
    assert_eq!(server.stock(fresh.id).await.amount, 3);
    let started = Instant::now();
    let short_lived = client
        .create_product(admin.grpc_request(CreateProductRequest {
            product: Some(common::product_input("Short-lived", 100, &[])),
        }))
        .await
        .expect("create a product")
        .into_inner();
    client
        .delete_product(admin.grpc_request(DeleteProductRequest { id: short_lived.id }))
        .await
        .expect("delete a product");
    within_a_second(started, "create and delete");

    // Every unit is where the ledger says.
    for product_id in products {
        let ((on_sale, frozen), (reserved, committed)) = units(&database, product_id).await;
        assert_eq!(
            frozen, reserved,
            "product {product_id}: frozen = open reservations"
        );
        assert_eq!(
            on_sale + frozen + committed,
            STOCK,
            "product {product_id}: {on_sale} on sale + {frozen} frozen + {committed} committed"
        );
    }
    server.stop().await;
}
