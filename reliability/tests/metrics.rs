//! Every program serves its metrics on a listener of its own (never the public port), and after
//! ordinary traffic, a few refusals, an expiry and two configuration changes, each one's scrape
//! holds the series an operator watches: calls served and made, database pool and write waits,
//! payments and reservations by state, expiries, the outbox, reloads, token refusals and login
//! throttling.

use std::{net::SocketAddr, time::Duration};

use gateway::testing::{Rest, settlement};
use reliability::stack::{Instance, Stack, StackOptions};

/// One program's scrape.
async fn scrape<S>(instance: &Instance<S>, listen: &str) -> String {
    let address: SocketAddr = listen.parse().expect("a metrics address");
    assert_ne!(
        address,
        instance.address(),
        "metrics have a listener of their own"
    );
    let reply = Rest::new(address).get("/metrics", None).await.expect(200);
    assert!(
        reply.header("content-type").starts_with("text/plain"),
        "Prometheus text format"
    );
    reply.text()
}

/// Asserts that `text` has a sample line of `series` carrying every one of `labels`.
fn assert_series(program: &str, text: &str, series: &str, labels: &[&str]) {
    let found = text.lines().any(|line| {
        line.strip_prefix(series)
            .is_some_and(|rest| rest.starts_with(['{', ' ']))
            && labels.iter().all(|label| line.contains(label))
    });
    assert!(
        found,
        "{program}: no {series} with {labels:?} in its metrics:\n{text}"
    );
}

/// Every series name in the queries of deploy/components/observability/dashboards/bookstore.json.
fn dashboard_series() -> Vec<String> {
    const DASHBOARD: &str =
        include_str!("../../deploy/components/observability/dashboards/bookstore.json");
    const PREFIXES: [&str; 7] = [
        "rpc_",
        "gateway_",
        "payment_",
        "warehouse_",
        "db_",
        "config_",
        "token_",
    ];
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard JSON");
    let mut names: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|target| target["expr"].as_str().map(str::to_owned))
        .flat_map(|expr| {
            expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|word| PREFIXES.iter().any(|prefix| word.starts_with(prefix)))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 10, "the dashboard queries {names:?}");
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_program_serves_the_series_operators_watch() {
    let stack = Stack::start(StackOptions {
        metrics: true,
        payment_window_ms: 1_500,
        ..StackOptions::default()
    })
    .await;
    let rest = &stack.rest;
    let shop = stack.open_shop(1, &[10]).await;
    let token = &shop.shoppers[0].token;

    // A purchase, and a settlement left to expire.
    let cart = settlement(&[(shop.products[0], 1)]);
    let paid = rest.settle(token, &cart, None).await.expect(200);
    let pay_id = paid.json()["payId"].as_str().expect("payId").to_owned();
    rest.change_payment(token, &pay_id, "PAYED", None)
        .await
        .expect(200);
    rest.settle(token, &cart, None).await.expect(200);

    // Refusals: a forged token, and password guesses until the throttle steps in.
    rest.get("/restful/accounts/shopper0", Some("not.a.token"))
        .await
        .expect(401);
    let mut throttled = false;
    for _ in 0..8 {
        let reply = rest.login("shopper0", "wrong password").await;
        throttled |= reply.status.as_u16() == 429;
    }
    assert!(throttled, "the throttle refused some guesses");

    // A configuration change, and a broken file the gateway refuses.
    let mut gateway = stack.gateway.settings.clone();
    gateway.request.read_retries += 1;
    let config = &stack.gateway.program.config;
    config
        .publish(&toml::to_string(&gateway).expect("toml"))
        .expect("publish");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    config.publish("[server\n").expect("publish");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stack.gateway.publish();

    // The expiry sweeper runs every 100 ms; the window is 1.5 s.
    let payment = &stack.payments[0];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let payment_text = loop {
        let text = scrape(payment, &payment.settings.metrics.listen).await;
        if text.contains("payment_expiries_total") || tokio::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let program = |name: &str| format!("program=\"{name}\"");

    let payment_program = program("payment");
    for (series, labels) in [
        (
            "rpc_server_requests_total",
            vec![
                payment_program.as_str(),
                "method=\"/payment.PaymentService/Settle\"",
                "code=\"OK\"",
            ],
        ),
        (
            "rpc_client_requests_total",
            vec![
                payment_program.as_str(),
                "service=\"warehouse\"",
                "method=\"ReserveStock\"",
                "outcome=\"ok\"",
            ],
        ),
        ("payment_payments_total", vec!["state=\"PAYED\""]),
        ("payment_payments_total", vec!["state=\"TIMEOUT\""]),
        ("payment_expiries_total", vec![]),
        ("payment_outbox_deliveries_total", vec!["outcome=\"DONE\""]),
        ("payment_outbox_pending", vec![]),
        ("db_pool_connections", vec![payment_program.as_str()]),
        ("db_pool_idle_connections", vec![payment_program.as_str()]),
        (
            "db_write_wait_seconds_bucket",
            vec![payment_program.as_str()],
        ),
        (
            "rpc_server_duration_seconds_bucket",
            vec![payment_program.as_str()],
        ),
    ] {
        assert_series("payment", &payment_text, series, &labels);
    }

    let mut scraped = payment_text.clone();
    let warehouse = &stack.warehouses[0];
    let text = scrape(warehouse, &warehouse.settings.metrics.listen).await;
    scraped.push_str(&text);
    let warehouse_program = program("warehouse");
    for (series, labels) in [
        (
            "rpc_server_requests_total",
            vec![
                warehouse_program.as_str(),
                "method=\"/warehouse.WarehouseService/ReserveStock\"",
                "code=\"OK\"",
            ],
        ),
        ("warehouse_reservations_total", vec!["state=\"RESERVED\""]),
        ("warehouse_reservations_total", vec!["state=\"COMMITTED\""]),
        ("warehouse_reservations_total", vec!["state=\"RELEASED\""]),
        ("db_pool_connections", vec![warehouse_program.as_str()]),
    ] {
        assert_series("warehouse", &text, series, &labels);
    }

    let account = &stack.accounts[0];
    let text = scrape(account, &account.settings.metrics.listen).await;
    scraped.push_str(&text);
    let account_program = program("account");
    for (series, labels) in [
        (
            "rpc_server_requests_total",
            vec![
                account_program.as_str(),
                "method=\"CheckCredentials\"",
                "code=\"ok\"",
            ],
        ),
        (
            "db_write_wait_seconds_count",
            vec![account_program.as_str()],
        ),
        ("db_pool_connections", vec![account_program.as_str()]),
    ] {
        assert_series("account", &text, series, &labels);
    }

    let text = scrape(&stack.gateway, &stack.gateway.settings.metrics.listen).await;
    scraped.push_str(&text);
    let gateway_program = program("gateway");
    for (series, labels) in [
        (
            "gateway_http_requests_total",
            vec!["route=\"/restful/settlements\"", "status=\"200\""],
        ),
        (
            "gateway_http_request_duration_seconds_bucket",
            vec!["route=\"/restful/settlements\""],
        ),
        (
            "rpc_client_requests_total",
            vec![
                gateway_program.as_str(),
                "service=\"account\"",
                "method=\"CheckCredentials\"",
            ],
        ),
        ("gateway_logins_throttled_total", vec![]),
        (
            "token_verification_failures_total",
            vec!["reason=\"malformed\""],
        ),
        ("config_reloads_total", vec!["outcome=\"accepted\""]),
        ("config_reloads_total", vec!["outcome=\"refused\""]),
    ] {
        assert_series("gateway", &text, series, &labels);
    }

    // The Grafana dashboard deployed with the observability component charts only series that
    // exist.
    for name in dashboard_series() {
        assert!(
            scraped.lines().any(|line| line
                .strip_prefix(name.as_str())
                .is_some_and(|rest| rest.starts_with(['{', ' ']))),
            "the dashboard charts {name}, which no program exports"
        );
    }

    // Not on the public port; and the listener serves nothing else.
    rest.get("/metrics", None).await.expect(404);
    let listener: SocketAddr = stack
        .gateway
        .settings
        .metrics
        .listen
        .parse()
        .expect("address");
    Rest::new(listener).get("/", None).await.expect(404);
    // Still serving after all that.
    rest.get("/restful/products", None).await.expect(200);
    stack.shut_down().await;
}
