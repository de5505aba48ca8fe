//! The `conservation` command against a running bookstore, on SQLite and on PostgreSQL: clean
//! books pass, and stock or money created behind the services' backs is caught.

use std::{process::Output, time::Duration};

use gateway::testing::settlement;
use reliability::stack::{Stack, StackOptions, Storage};

async fn command(stack: &Stack) -> Output {
    let sources = stack.sources();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_conservation"))
        .args(["--warehouse-db", &sources.warehouse_db])
        .args(["--payment-db", &sources.payment_db])
        .args(["--wait-seconds", "2"])
        .output()
        .await
        .expect("run the conservation command")
}

/// Changes a database behind the services' backs.
async fn tamper(database: &str, sql: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(database)
        .await
        .expect("open the database");
    sqlx::query(sql).execute(&pool).await.expect(sql);
    pool.close().await;
}

async fn catches_what_the_services_did_not_do(storage: Storage) {
    let stack = Stack::start(StackOptions {
        storage,
        ..StackOptions::default()
    })
    .await;
    let shop = stack.open_shop(2, &[7, 3]).await;
    let rest = &stack.rest;
    for (shopper, product) in shop.shoppers.iter().zip(&shop.products) {
        let cart = settlement(&[(*product, 2)]);
        let payment = rest
            .settle(&shopper.token, &cart, Some("cart"))
            .await
            .expect(200)
            .json();
        let pay_id = payment["payId"].as_str().expect("payId");
        rest.change_payment(&shopper.token, pay_id, "PAYED", Some("pay"))
            .await
            .expect(200);
    }
    // One more, left waiting: its stock is frozen, which is fine.
    let waiting = &shop.shoppers[0];
    let cart = settlement(&[(shop.products[0], 1)]);
    rest.settle(&waiting.token, &cart, Some("later"))
        .await
        .expect(200);

    let clean = command(&stack).await;
    let report = String::from_utf8_lossy(&clean.stdout);
    assert!(clean.status.success(), "{report}");
    assert!(
        report.contains("2 products, 3 payments (1 waiting), 2 wallets: 0 violations"),
        "{report}"
    );

    // A unit appears on the shelf that nobody put in.
    let warehouse = stack.databases.warehouse.url.clone();
    tamper(
        &warehouse,
        &format!(
            "UPDATE stockpiles SET amount = amount + 1 WHERE product_id = {}",
            shop.products[1]
        ),
    )
    .await;
    let caught = command(&stack).await;
    let report = String::from_utf8_lossy(&caught.stdout);
    assert_eq!(caught.status.code(), Some(1), "{report}");
    assert!(report.contains("VIOLATION product"), "{report}");
    tamper(
        &warehouse,
        &format!(
            "UPDATE stockpiles SET amount = amount - 1 WHERE product_id = {}",
            shop.products[1]
        ),
    )
    .await;
    assert!(command(&stack).await.status.success());

    // Money appears in a wallet.
    let payment_db = stack.databases.payment.url.clone();
    tamper(
        &payment_db,
        "UPDATE wallets SET balance_cents = balance_cents + 100 WHERE id = 1",
    )
    .await;
    let caught = command(&stack).await;
    let report = String::from_utf8_lossy(&caught.stdout);
    assert_eq!(caught.status.code(), Some(1), "{report}");
    assert!(report.contains("VIOLATION account"), "{report}");

    // Unreadable databases are exit status 2, not a verdict.
    let missing = tokio::process::Command::new(env!("CARGO_BIN_EXE_conservation"))
        .args(["--warehouse-db", "sqlite:///nonexistent/warehouse.db"])
        .args(["--payment-db", "sqlite:///nonexistent/payment.db"])
        .output()
        .await
        .expect("run");
    assert_eq!(missing.status.code(), Some(2));
    stack.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_passes_clean_books_and_catches_tampering_on_sqlite() {
    tokio::time::timeout(
        Duration::from_secs(90),
        catches_what_the_services_did_not_do(Storage::Sqlite),
    )
    .await
    .expect("within its deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_passes_clean_books_and_catches_tampering_on_postgres() {
    tokio::time::timeout(
        Duration::from_secs(90),
        catches_what_the_services_did_not_do(Storage::Postgres),
    )
    .await
    .expect("within its deadline");
}
