//! End-to-end on PostgreSQL: the purchase flow with every service on its own throw-away
//! database (the gateway itself has none; this proves the whole chain on the other backend).

mod common;

use common::*;
use platform::{database::DatabaseConfig, testing::TestPostgres};
use serde_json::json;

fn on(database: &TestPostgres) -> DatabaseConfig {
    DatabaseConfig {
        url: database.url.clone(),
        ..DatabaseConfig::default()
    }
}

#[tokio::test]
async fn the_purchase_flow_works_on_postgresql() {
    let (account, warehouse, payment) = (
        TestPostgres::create().await,
        TestPostgres::create().await,
        TestPostgres::create().await,
    );
    let databases = Databases {
        account: on(&account),
        warehouse: on(&warehouse),
        payment: on(&payment),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let stack = Stack::start_on(dir, databases, |_| {}).await;
    let http = &stack.http;
    let admin = http.admin_token().await;
    let product = http
        .new_product(&admin, "On Postgres", json!("25.25"), 4)
        .await;
    let token = new_customer(http, "paula", "13900000001").await;
    let balance = http.balance_cents(&token).await;

    let payment = http
        .settle(&token, &settlement(&[(product, 4)]), None)
        .await
        .expect(200)
        .json();
    assert_eq!(payment["totalPrice"], json!(113.0));
    assert_eq!(http.stock(&admin, product).await, (0, 4));
    let pay_id = payment["payId"].as_str().expect("payId");
    http.change_payment(&token, pay_id, "PAYED", None)
        .await
        .expect(200);
    assert_eq!(http.stock(&admin, product).await, (0, 0));
    assert_eq!(balance - http.balance_cents(&token).await, 11_300);
    // Sold out: the next cart is refused and changes nothing.
    http.settle(&token, &settlement(&[(product, 1)]), None)
        .await
        .expect(422);
    stack.shut_down().await;
}
