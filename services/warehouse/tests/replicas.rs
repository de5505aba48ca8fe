//! The catalogue in memory (`database.read_cache_ms`) with two replicas on one PostgreSQL
//! database: a replica reads its own writes at once, and a change made through the other
//! replica within the configured bound; stock and reservations never lag.

#[allow(unused_macros)]
mod common;

use std::time::{Duration, Instant};

use common::{TestServer, assert_code, product_input, start, within_deadline};
use platform::{database::DatabaseConfig, testing::TestPostgres};
use rpc_idl::warehouse::{DeleteProductRequest, UpdateProductRequest};
use volo_grpc::Code;

/// The bound under test: long enough that a stale answer is certainly seen in between, short
/// enough to keep the test quick.
const BOUND: Duration = Duration::from_millis(400);
/// What the check allows beyond the bound: one poll, and a loaded machine's scheduling.
const SLACK: Duration = Duration::from_millis(600);

async fn titles(server: &TestServer) -> Vec<String> {
    let products = server.products().await;
    products.into_iter().map(|p| p.title.to_string()).collect()
}

/// Polls `seen` on `server` until it holds; returns how long that took, failing past the bound.
async fn visible_within_bound<F, Fut>(what: &str, mut seen: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let since = Instant::now();
    loop {
        if seen().await {
            return since.elapsed();
        }
        assert!(
            since.elapsed() <= BOUND + SLACK,
            "{what}: not visible through the other replica after {:?} (bound {BOUND:?})",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_replica_shows_through_the_other_within_the_bound() {
    let postgres = TestPostgres::create().await;
    let database = DatabaseConfig {
        url: postgres.url.clone(),
        read_cache_ms: BOUND.as_millis() as u64,
        ..DatabaseConfig::default()
    };
    within_deadline(async {
        let writer = start(database.clone()).await;
        let reader = start(database).await;

        // The reader holds the catalogue in memory.
        assert!(titles(&reader).await.is_empty());
        let created = writer.product_with_stock("Replicated", 1_000, 5).await;

        // The writer's own reads see the write at once.
        assert_eq!(titles(&writer).await, ["Replicated"]);
        assert_eq!(
            writer.product(created.id).await.expect("get").title,
            "Replicated"
        );
        // Stock never comes from memory: the other replica sees it at once.
        assert_eq!(reader.stock(created.id).await.amount, 5);
        // The reader's catalogue catches up within the bound.
        visible_within_bound("a new product", || async {
            titles(&reader).await == ["Replicated"]
        })
        .await;

        let mut input = product_input("Renamed", 1_200, &[]);
        input.description = "second edition".into();
        writer
            .client
            .update_product(writer.admin().grpc_request(UpdateProductRequest {
                id: created.id,
                product: Some(input),
            }))
            .await
            .expect("update");
        assert_eq!(
            writer.product(created.id).await.expect("get").title,
            "Renamed"
        );
        visible_within_bound("an update", || async {
            reader
                .product(created.id)
                .await
                .is_ok_and(|product| product.title == "Renamed")
        })
        .await;

        writer
            .client
            .delete_product(
                writer
                    .admin()
                    .grpc_request(DeleteProductRequest { id: created.id }),
            )
            .await
            .expect("delete");
        assert_code(
            writer.product(created.id).await,
            Code::NotFound,
            "deleted, writer",
        );
        visible_within_bound("a deletion", || async {
            reader
                .product(created.id)
                .await
                .is_err_and(|status| status.code() == Code::NotFound)
        })
        .await;

        writer.stop().await;
        reader.stop().await;
    })
    .await;
}
