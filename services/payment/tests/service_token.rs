//! The service's own identity: OAuth2 client credentials over real HTTP against a token endpoint
//! on 127.0.0.1, cached until shortly before the token expires, with a deadline on every request.

mod common;

use std::{sync::Arc, time::Duration};

use common::{TokenBehaviour, TokenEndpoint};
use payment::{
    configuration::{Secret, ServiceCredentials},
    service_token::{ClientCredentials, ServiceTokenError, ServiceTokenSource},
};
use platform::testing::TestKeys;

async fn endpoint() -> (Arc<TestKeys>, TokenEndpoint) {
    let keys = Arc::new(TestKeys::new());
    let endpoint = TokenEndpoint::start(keys.clone()).await;
    (keys, endpoint)
}

#[tokio::test]
async fn a_service_token_is_fetched_once_and_then_served_from_the_cache() {
    let (keys, endpoint) = endpoint().await;
    let source = Arc::new(ClientCredentials::new(&endpoint.credentials()).expect("source"));

    // Concurrent first callers share one request.
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let source = source.clone();
            tokio::spawn(async move { source.token().await })
        })
        .collect();
    let mut tokens = Vec::new();
    for caller in callers {
        tokens.push(caller.await.expect("task").expect("token"));
    }
    assert!(tokens.windows(2).all(|w| w[0] == w[1]));
    for _ in 0..5 {
        assert_eq!(source.token().await.expect("token"), tokens[0]);
    }
    assert_eq!(endpoint.requests(), 1);

    let verifier = keys.auth_config().verifier().expect("verifier");
    let caller = verifier.verify_access(&tokens[0]).expect("a valid token");
    assert!(caller.has_scope(platform::tokens::SCOPE_SERVICE));
    assert_eq!(caller.account_id, None);
}

#[tokio::test]
async fn a_token_is_renewed_shortly_before_it_expires_or_when_refused() {
    let (_keys, endpoint) = endpoint().await;
    endpoint.set_behaviour(TokenBehaviour {
        lifetime_secs: 1,
        delay: Duration::ZERO,
    });
    let source = ClientCredentials::new(&endpoint.credentials()).expect("source");
    let first = source.token().await.expect("token");
    assert_eq!(source.token().await.expect("cached"), first);
    assert_eq!(endpoint.requests(), 1);
    // Renewed once 90% of its one-second life has passed.
    tokio::time::sleep(Duration::from_millis(950)).await;
    let second = source.token().await.expect("renewed");
    assert_eq!(endpoint.requests(), 2);

    endpoint.set_behaviour(TokenBehaviour {
        lifetime_secs: 3_600,
        delay: Duration::ZERO,
    });
    // Forgetting some other token changes nothing; forgetting the current one forces a fetch.
    source.invalidate("some.other.token");
    assert_eq!(source.token().await.expect("cached"), second);
    assert_eq!(endpoint.requests(), 2);
    source.invalidate(&second);
    let third = source.token().await.expect("fetched again");
    assert_eq!(endpoint.requests(), 3);
    assert_eq!(source.token().await.expect("cached"), third);
    assert_eq!(endpoint.requests(), 3);
}

#[tokio::test]
async fn bad_credentials_slow_and_missing_endpoints_are_reported() {
    let (_keys, endpoint) = endpoint().await;
    let wrong = ServiceCredentials {
        client_secret: Secret("wrong".into()),
        ..endpoint.credentials()
    };
    let refused = ClientCredentials::new(&wrong)
        .expect("source")
        .token()
        .await
        .expect_err("refused");
    assert_eq!(
        refused,
        ServiceTokenError::Refused {
            status: 401,
            error: "invalid_client: bad client credentials".into()
        }
    );

    endpoint.set_behaviour(TokenBehaviour {
        lifetime_secs: 3_600,
        delay: Duration::from_secs(5),
    });
    let impatient = ServiceCredentials {
        timeout_ms: 200,
        ..endpoint.credentials()
    };
    let started = std::time::Instant::now();
    let slow = ClientCredentials::new(&impatient)
        .expect("source")
        .token()
        .await
        .expect_err("too slow");
    assert_eq!(slow, ServiceTokenError::Timeout(Duration::from_millis(200)));
    assert!(started.elapsed() < Duration::from_secs(2));

    // Nothing listens on a port just released.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = closed.local_addr().expect("address");
    drop(closed);
    let nowhere = ServiceCredentials {
        token_url: format!("http://{address}/oauth/token"),
        ..endpoint.credentials()
    };
    let unreachable = ClientCredentials::new(&nowhere)
        .expect("source")
        .token()
        .await
        .expect_err("nobody there");
    assert!(
        matches!(unreachable, ServiceTokenError::Unreachable(_)),
        "{unreachable:?}"
    );
}
