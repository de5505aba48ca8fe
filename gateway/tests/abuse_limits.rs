//! The rate limits on what costs the most (`[rate_limits]`, src/rate_limit.rs): registration and
//! the token endpoint, per client address and for everybody together. A client over its rate
//! gets 429 with `Retry-After` and costs a map lookup; other clients keep being served, and the
//! limited client is served again once its bucket has refilled.

mod common;

use std::time::Duration;

use common::*;
use gateway::configuration::{RateLimitConfig, RatePair};
use http::Method;
use serde_json::json;

/// Requests as if from `client` (the stack trusts loopback as a proxy, so `X-Forwarded-For`
/// names the client).
async fn register_from(http: &Rest, client: &str, username: &str) -> Reply {
    let body = json!({
        "username": username,
        "password": format!("{username}-pw"),
        "name": "Limited",
        "location": "Somewhere 1",
    });
    http.send(
        Method::POST,
        "/restful/accounts",
        None,
        &[
            ("content-type", "application/json"),
            ("x-forwarded-for", client),
        ],
        Some(body.to_string().into()),
    )
    .await
}

async fn token_from(http: &Rest, client: &str, username: &str) -> Reply {
    let grant = [
        ("grant_type", "password"),
        ("username", username),
        ("password", &format!("{username}-pw")),
    ];
    http.send(
        Method::GET,
        &format!("/oauth/token?{}", token_query(&grant)),
        None,
        &[("x-forwarded-for", client)],
        None,
    )
    .await
}

#[tokio::test]
async fn registrations_and_token_requests_are_limited_per_client_and_in_total() {
    let stack = Stack::start_with(|config| {
        config.login_throttle.trusted_proxies = vec!["127.0.0.1".parse().expect("network")];
        config.rate_limits = RateLimitConfig {
            registration: RatePair {
                per_client_per_minute: 3,
                global_per_second: 4,
            },
            token: RatePair {
                per_client_per_minute: 4,
                global_per_second: 1_000,
            },
            max_clients: 100,
        };
    })
    .await;
    let http = &stack.http;

    // Three registrations a minute from one address; the fourth waits about twenty seconds.
    for i in 0..3 {
        register_from(http, "198.51.100.1", &format!("flood{i}"))
            .await
            .expect(200);
    }
    let refused = register_from(http, "198.51.100.1", "flood3")
        .await
        .expect(429);
    let wait: u64 = refused.header("retry-after").parse().expect("seconds");
    assert!((15..=20).contains(&wait), "Retry-After {wait}");
    assert_eq!(refused.json()["code"], 1);
    // Nothing was created for the refused one.
    register_from(http, "198.51.100.2", "flood3")
        .await
        .expect(200);
    // The global bucket (4 a second, already spent) refuses even a new address now.
    register_from(http, "198.51.100.3", "newcomer")
        .await
        .expect(429);
    tokio::time::sleep(Duration::from_millis(600)).await;
    register_from(http, "198.51.100.3", "newcomer")
        .await
        .expect(200);

    // Four token requests a minute from one address, whatever the grant or outcome.
    for _ in 0..4 {
        token_from(http, "203.0.113.9", "flood0").await.expect(200);
    }
    let refused = token_from(http, "203.0.113.9", "flood0").await.expect(429);
    assert_eq!(refused.json()["error"], "slow_down");
    assert!(!refused.header("retry-after").is_empty());
    // Another address is served, with the same account.
    token_from(http, "203.0.113.10", "flood0").await.expect(200);
    // And the REST API does not care about the token endpoint's buckets.
    http.get("/restful/products", None).await.expect(200);
    stack.shut_down().await;
}
