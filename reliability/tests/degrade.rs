//! One backend down degrades the gateway instead of taking it out: with the warehouse stopped,
//! the gateway stays ready (so Kubernetes keeps it in its Service), reports the warehouse down,
//! keeps serving logins, accounts and the storefront, and answers the catalogue with a fast 503
//! that says when to try again; when the warehouse comes back, everything works again without
//! restarting the gateway.

use std::time::{Duration, Instant};

use reliability::{
    programs::Kind,
    stack::{Stack, StackOptions},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_warehouse_degrades_the_gateway_without_taking_it_out() {
    let mut stack = Stack::start(StackOptions::default()).await;
    let shop = stack.open_shop(1, &[5]).await;
    let shopper = shop.shoppers[0].clone();
    stack.terminate(Kind::Warehouse, 0).await;

    // Ready all along; degraded once the health checker has seen the warehouse go.
    let rest = stack.rest.clone();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let report = rest.get("/readyz", None).await.expect(200).json();
        if report["backends"]["warehouse"] == "down" {
            assert_eq!(report["degraded"], true, "{report}");
            assert_eq!(report["backends"]["account"], "up", "{report}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the warehouse was never reported down: {report}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // What does not need the warehouse keeps working.
    let password = format!("{}-pw", shopper.username);
    rest.login(&shopper.username, &password).await.expect(200);
    let me = rest
        .get(
            &format!("/restful/accounts/{}", shopper.username),
            Some(&shopper.token),
        )
        .await
        .expect(200);
    assert_eq!(me.json()["username"], shopper.username.as_str());
    rest.get("/", None).await.expect(200);

    // The catalogue fails fast, within its deadline, and says when to come back.
    let asked = Instant::now();
    let refused = rest.get("/restful/products", None).await.expect(503);
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "a down backend's 503 took {took:?}"
    );
    assert_eq!(refused.header("retry-after"), "2");
    assert!(
        refused.json()["message"]
            .as_str()
            .is_some_and(|message| message.contains("warehouse")),
        "{}",
        refused.text()
    );

    // Recovery without restarting the gateway.
    stack.restart(Kind::Warehouse, 0).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let products = rest.get("/restful/products", None).await;
        let report = rest.get("/readyz", None).await.expect(200).json();
        if products.status == 200 && report["degraded"] == false {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery: /restful/products {}, /readyz {report}",
            products.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack.shut_down().await;
}
