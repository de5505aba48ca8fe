//! Reservations through a real volo-grpc client, on SQLite and PostgreSQL: exactly the stock is
//! sold under concurrency, repeats change nothing, final states stay final, and a mixed storm of
//! reserve/commit/release never creates or loses a unit.

#[macro_use]
mod common;

use std::collections::HashMap;

use common::{TestServer, assert_code, start};
use platform::database::DatabaseConfig;
use rand::{Rng, SeedableRng, rngs::StdRng};
use rpc_idl::warehouse::{
    Reservation, ReservationItem, ReservationRequest, ReservationState, ReserveStockRequest,
    WarehouseServiceClient,
};
use volo_grpc::{Code, Status};

on_both_backends!(
    fifty_concurrent_single_unit_reservations_sell_exactly_the_stock,
    repeats_change_nothing_and_final_states_stay_final,
    reservations_are_all_or_nothing,
    a_reservation_answers_the_prices_it_was_taken_at,
    mixed_storm_conserves_every_unit,
);

fn items(lines: &[(i64, i64)]) -> Vec<ReservationItem> {
    lines
        .iter()
        .map(|&(product_id, amount)| ReservationItem { product_id, amount })
        .collect()
}

fn lines(reservation: &Reservation) -> Vec<(i64, i64)> {
    reservation
        .items
        .iter()
        .map(|i| (i.product_id, i.amount))
        .collect()
}

/// Calls as the payment service would, with a fresh service token on each call.
#[derive(Clone)]
struct Payments {
    client: WarehouseServiceClient,
    token: platform::rpc_metadata::CallMetadata,
}

impl Payments {
    fn of(server: &TestServer) -> Self {
        Self {
            client: server.client.clone(),
            token: server.service(),
        }
    }

    async fn reserve(
        &self,
        payment_id: &str,
        wanted: &[(i64, i64)],
    ) -> Result<Reservation, Status> {
        self.client
            .reserve_stock(self.token.grpc_request(ReserveStockRequest {
                payment_id: payment_id.to_owned().into(),
                items: items(wanted),
            }))
            .await
            .map(|r| r.into_inner())
    }

    async fn commit(&self, payment_id: &str) -> Result<Reservation, Status> {
        self.client
            .commit_reservation(self.token.grpc_request(ReservationRequest {
                payment_id: payment_id.to_owned().into(),
            }))
            .await
            .map(|r| r.into_inner())
    }

    async fn release(&self, payment_id: &str) -> Result<Reservation, Status> {
        self.client
            .release_reservation(self.token.grpc_request(ReservationRequest {
                payment_id: payment_id.to_owned().into(),
            }))
            .await
            .map(|r| r.into_inner())
    }
}

/// (amount, frozen) of a product.
async fn stock(server: &TestServer, product_id: i64) -> (i64, i64) {
    let stock = server.stock(product_id).await;
    (stock.amount, stock.frozen)
}

fn prices(reservation: &Reservation) -> Vec<(i64, i64)> {
    reservation
        .unit_prices
        .iter()
        .map(|p| (p.product_id, p.unit_price_cents))
        .collect()
}

async fn a_reservation_answers_the_prices_it_was_taken_at(database: DatabaseConfig) {
    let server = start(database).await;
    let book = server.product_with_stock("Priced", 4_990, 5).await;
    let pen = server.product_with_stock("Pen", 10, 5).await;
    let payments = Payments::of(&server);
    let reserved = payments
        .reserve("priced-1", &[(pen.id, 1), (book.id, 2)])
        .await
        .expect("reserve");
    let mut expected = vec![(book.id, 4_990), (pen.id, 10)];
    expected.sort();
    assert_eq!(prices(&reserved), expected);

    // A new price applies to new reservations; a repeat answers the price it was taken at.
    let input = common::product_input("Priced", 5_990, &[("ISBN", "0000")]);
    server
        .client
        .update_product(
            server
                .admin()
                .grpc_request(rpc_idl::warehouse::UpdateProductRequest {
                    id: book.id,
                    product: Some(input),
                }),
        )
        .await
        .expect("new price");
    let repeat = payments
        .reserve("priced-1", &[(pen.id, 1), (book.id, 2)])
        .await
        .expect("repeat");
    assert_eq!(prices(&repeat), expected);
    let fresh = payments
        .reserve("priced-2", &[(book.id, 1)])
        .await
        .expect("reserve");
    assert_eq!(prices(&fresh), vec![(book.id, 5_990)]);
    server.stop().await;
}

async fn fifty_concurrent_single_unit_reservations_sell_exactly_the_stock(
    database: DatabaseConfig,
) {
    let server = start(database).await;
    let product = server.product_with_stock("Scarce Edition", 4200, 10).await;
    let payments = Payments::of(&server);

    let calls: Vec<_> = (0..50)
        .map(|i| {
            let payments = payments.clone();
            tokio::spawn(async move {
                payments
                    .reserve(&format!("rush-{i}"), &[(product.id, 1)])
                    .await
            })
        })
        .collect();
    let (mut reserved, mut refused) = (0, 0);
    for call in calls {
        match call.await.expect("task") {
            Ok(reservation) => {
                assert_eq!(reservation.state, ReservationState::RESERVED);
                assert_eq!(lines(&reservation), vec![(product.id, 1)]);
                reserved += 1;
            }
            Err(status) => {
                assert_eq!(
                    status.code(),
                    Code::FailedPrecondition,
                    "{}",
                    status.message()
                );
                let message = status.message();
                assert!(
                    message.contains(&format!("product {}", product.id))
                        && message.contains("Scarce Edition"),
                    "the refusal names the product: {message}"
                );
                refused += 1;
            }
        }
    }
    assert_eq!((reserved, refused), (10, 40));
    assert_eq!(stock(&server, product.id).await, (0, 10));
    server.stop().await;
}

async fn repeats_change_nothing_and_final_states_stay_final(database: DatabaseConfig) {
    let server = start(database).await;
    let alpha = server.product_with_stock("Alpha", 500, 10).await.id;
    let beta = server.product_with_stock("Beta", 700, 5).await.id;
    let payments = Payments::of(&server);

    // Duplicates are summed; lines come back ordered by product id.
    let first = payments
        .reserve("pay-1", &[(beta, 1), (alpha, 2), (alpha, 1)])
        .await
        .expect("reserve");
    assert_eq!(first.payment_id, "pay-1");
    assert_eq!(first.state, ReservationState::RESERVED);
    assert_eq!(lines(&first), vec![(alpha, 3), (beta, 1)]);
    assert_eq!(stock(&server, alpha).await, (7, 3));
    assert_eq!(stock(&server, beta).await, (4, 1));

    // The same reservation again, in another order: the same answer and nothing moves.
    let repeat = payments
        .reserve("pay-1", &[(alpha, 3), (beta, 1)])
        .await
        .expect("repeat reserve");
    assert_eq!(repeat, first);
    assert_eq!(stock(&server, alpha).await, (7, 3));
    // Other items under the same payment id are refused, also without moving anything.
    let other = payments.reserve("pay-1", &[(alpha, 1)]).await;
    assert_code(other, Code::FailedPrecondition, "different items");
    assert_eq!(stock(&server, alpha).await, (7, 3));
    assert_eq!(stock(&server, beta).await, (4, 1));

    // Commit: the units leave for good. Repeats change nothing.
    let committed = payments.commit("pay-1").await.expect("commit");
    assert_eq!(committed.state, ReservationState::COMMITTED);
    assert_eq!(lines(&committed), vec![(alpha, 3), (beta, 1)]);
    assert_eq!(stock(&server, alpha).await, (7, 0));
    assert_eq!(stock(&server, beta).await, (4, 0));
    for _ in 0..2 {
        assert_eq!(payments.commit("pay-1").await.expect("again"), committed);
    }
    let reserve_again = payments
        .reserve("pay-1", &[(alpha, 3), (beta, 1)])
        .await
        .expect("reserve after commit");
    assert_eq!(reserve_again.state, ReservationState::COMMITTED);
    // Releasing what was sold is refused.
    let status = assert_code(
        payments.release("pay-1").await,
        Code::FailedPrecondition,
        "release after commit",
    );
    assert!(
        status.message().contains("COMMITTED"),
        "{}",
        status.message()
    );
    assert_eq!(stock(&server, alpha).await, (7, 0));
    assert_eq!(stock(&server, beta).await, (4, 0));

    // Release: the units go back on sale. Repeats change nothing; commit is then refused.
    payments
        .reserve("pay-2", &[(alpha, 2)])
        .await
        .expect("reserve");
    assert_eq!(stock(&server, alpha).await, (5, 2));
    let released = payments.release("pay-2").await.expect("release");
    assert_eq!(released.state, ReservationState::RELEASED);
    assert_eq!(stock(&server, alpha).await, (7, 0));
    for _ in 0..2 {
        assert_eq!(payments.release("pay-2").await.expect("again"), released);
    }
    let reserve_again = payments
        .reserve("pay-2", &[(alpha, 2)])
        .await
        .expect("reserve after release");
    assert_eq!(reserve_again.state, ReservationState::RELEASED);
    let status = assert_code(
        payments.commit("pay-2").await,
        Code::FailedPrecondition,
        "commit after release",
    );
    assert!(
        status.message().contains("RELEASED"),
        "{}",
        status.message()
    );
    assert_eq!(stock(&server, alpha).await, (7, 0));

    // Unknown payments.
    assert_code(
        payments.commit("nope").await,
        Code::NotFound,
        "commit unknown",
    );
    assert_code(
        payments.release("nope").await,
        Code::NotFound,
        "release unknown",
    );

    // Setting the sellable amount leaves what open reservations hold alone.
    payments
        .reserve("pay-3", &[(alpha, 4)])
        .await
        .expect("reserve");
    assert_eq!(server.set_stock(alpha, 20).await.frozen, 4);
    assert_eq!(stock(&server, alpha).await, (20, 4));
    payments.release("pay-3").await.expect("release");
    assert_eq!(stock(&server, alpha).await, (24, 0));
    server.stop().await;
}

async fn reservations_are_all_or_nothing(database: DatabaseConfig) {
    let server = start(database).await;
    let alpha = server.product_with_stock("Alpha", 500, 10).await.id;
    let beta = server.product_with_stock("Beta Volume", 700, 4).await.id;
    let payments = Payments::of(&server);

    // The second line cannot be served, so the first is not taken either.
    let short = payments
        .reserve("pay-x", &[(alpha, 1), (beta, 3), (beta, 2)])
        .await;
    let status = assert_code(short, Code::FailedPrecondition, "insufficient");
    assert_eq!(
        status.message(),
        format!("insufficient stock for product {beta} \"Beta Volume\": 5 requested, 4 available")
    );
    assert_eq!(stock(&server, alpha).await, (10, 0));
    assert_eq!(stock(&server, beta).await, (4, 0));

    let unknown = alpha + beta + 1000;
    let missing = payments.reserve("pay-x", &[(alpha, 1), (unknown, 1)]).await;
    let status = assert_code(missing, Code::NotFound, "unknown product");
    assert!(
        status.message().contains(&unknown.to_string()),
        "{}",
        status.message()
    );
    assert_eq!(stock(&server, alpha).await, (10, 0));

    // Nothing of the refused attempts was recorded: the payment id is still free.
    assert_code(
        payments.commit("pay-x").await,
        Code::NotFound,
        "no ledger entry",
    );
    let reservation = payments
        .reserve("pay-x", &[(alpha, 10), (beta, 4)])
        .await
        .expect("everything there is");
    assert_eq!(lines(&reservation), vec![(alpha, 10), (beta, 4)]);
    assert_eq!(stock(&server, alpha).await, (0, 10));
    assert_eq!(stock(&server, beta).await, (0, 4));
    server.stop().await;
}

/// What one payment of the storm ended as, as its caller saw it.
struct Outcome {
    lines: Vec<(i64, i64)>,
    state: ReservationState,
}

const STORM_PRODUCTS: usize = 3;
const STORM_STOCK: i64 = 40;
const STORM_WORKERS: u64 = 6;
const STORM_ROUNDS: u64 = 15;

async fn mixed_storm_conserves_every_unit(database: DatabaseConfig) {
    let server = start(database).await;
    let mut products = Vec::new();
    for i in 0..STORM_PRODUCTS {
        let product = server
            .product_with_stock(&format!("Storm {i}"), 1000, STORM_STOCK)
            .await;
        products.push(product.id);
    }
    let payments = Payments::of(&server);

    let workers: Vec<_> = (0..STORM_WORKERS)
        .map(|worker| {
            let (payments, products) = (payments.clone(), products.clone());
            tokio::spawn(storm_worker(worker, payments, products))
        })
        .collect();
    let mut outcomes = Vec::new();
    let mut refused = 0;
    for worker in workers {
        let (mut done, worker_refused) = worker.await.expect("worker");
        outcomes.append(&mut done);
        refused += worker_refused;
    }
    assert!(!outcomes.is_empty(), "some reservations succeeded");
    assert!(refused > 0, "demand outran supply at least once");

    let mut committed: HashMap<i64, i64> = HashMap::new();
    let mut held: HashMap<i64, i64> = HashMap::new();
    for outcome in &outcomes {
        let tally = match outcome.state {
            ReservationState::COMMITTED => &mut committed,
            ReservationState::RESERVED => &mut held,
            _ => continue,
        };
        for &(product_id, amount) in &outcome.lines {
            *tally.entry(product_id).or_default() += amount;
        }
    }
    for product_id in products {
        let (amount, frozen) = stock(&server, product_id).await;
        let sold = committed.get(&product_id).copied().unwrap_or(0);
        let reserved = held.get(&product_id).copied().unwrap_or(0);
        assert!(amount >= 0 && frozen >= 0);
        assert_eq!(
            frozen, reserved,
            "product {product_id}: frozen = open reservations"
        );
        assert_eq!(
            amount + frozen + sold,
            STORM_STOCK,
            "product {product_id}: amount {amount} + frozen {frozen} + committed {sold}"
        );
    }
    server.stop().await;
}

/// One client of the storm: `STORM_ROUNDS` payments, each reserved and then committed,
/// released, raced both ways, or left open, with repeats and wrong-way calls thrown in.
/// Returns the payments that got a reservation and how many reservations were refused.
async fn storm_worker(worker: u64, payments: Payments, products: Vec<i64>) -> (Vec<Outcome>, u32) {
    let mut rng = StdRng::seed_from_u64(0x5eed + worker);
    let mut outcomes = Vec::new();
    let mut refused = 0;
    for round in 0..STORM_ROUNDS {
        let payment_id = format!("storm-{worker}-{round}");
        let wanted: Vec<(i64, i64)> = (0..rng.gen_range(1..=3))
            .map(|_| {
                let product = products[rng.gen_range(0..products.len())];
                (product, rng.gen_range(1..=4))
            })
            .collect();
        let reservation = match payments.reserve(&payment_id, &wanted).await {
            Ok(reservation) => reservation,
            Err(status) if status.code() == Code::FailedPrecondition => {
                refused += 1;
                continue;
            }
            Err(status) => panic!("{payment_id}: reserve failed: {status:?}"),
        };
        assert_eq!(reservation.state, ReservationState::RESERVED);

        let state = match rng.gen_range(0..10) {
            0..=3 => settle(&payments, &payment_id, true, rng.gen_bool(0.3)).await,
            4..=6 => settle(&payments, &payment_id, false, rng.gen_bool(0.3)).await,
            7..=8 => {
                // Commit and release at once: exactly one wins; the other is refused.
                let (commit, release) =
                    tokio::join!(payments.commit(&payment_id), payments.release(&payment_id));
                match (commit, release) {
                    (Ok(r), Err(s)) | (Err(s), Ok(r)) => {
                        assert_eq!(s.code(), Code::FailedPrecondition, "{}", s.message());
                        r.state
                    }
                    (commit, release) => {
                        panic!("{payment_id}: race gave {commit:?} and {release:?}")
                    }
                }
            }
            _ => ReservationState::RESERVED,
        };
        // Repeating the reservation reports where it stands and changes nothing.
        let repeat = payments
            .reserve(&payment_id, &wanted)
            .await
            .expect("repeat");
        assert_eq!(repeat.state, state, "{payment_id}");
        outcomes.push(Outcome {
            lines: lines(&reservation),
            state,
        });
    }
    (outcomes, refused)
}

/// Commits or releases a reservation, maybe repeats it, and maybe tries the opposite (which
/// must be refused). Returns the final state.
async fn settle(
    payments: &Payments,
    payment_id: &str,
    commit: bool,
    also_wrong_way: bool,
) -> ReservationState {
    let run = |commit: bool| async move {
        if commit {
            payments.commit(payment_id).await
        } else {
            payments.release(payment_id).await
        }
    };
    let done = run(commit).await.expect("settle");
    let repeated = run(commit).await.expect("repeat settle");
    assert_eq!(repeated, done);
    if also_wrong_way {
        assert_code(run(!commit).await, Code::FailedPrecondition, "wrong way");
    }
    done.state
}
