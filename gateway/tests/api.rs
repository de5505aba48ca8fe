//! End-to-end: the four real programs, driven over HTTP only, as the Fenix front-end would.

mod common;

use common::*;
use http::Method;
use serde_json::json;

#[tokio::test]
async fn register_login_profile_browse_settle_pay_and_money_and_stock_add_up() {
    let stack = Stack::start().await;
    let http = &stack.http;
    let admin = http.admin_token().await;
    let product = http
        .new_product(&admin, "Exact Money", json!(69.5), 10)
        .await;

    // Register, log in: the token response is what the front-end reads.
    let token = new_customer(http, "alice", "13800000001").await;
    let login = http.login("ALICE", "alice-pw").await.expect(200);
    assert_eq!(login.header("cache-control"), "no-store");
    let login = login.json();
    assert_eq!(login["token_type"], "bearer");
    assert_eq!(login["username"], "alice");
    assert_eq!(login["authorities"], json!(["ROLE_USER"]));
    assert_eq!(login["scope"], "BROWSER");
    assert_eq!(login["expires_in"], 10800);
    assert!(login["refresh_token"].is_string() && login["jti"].is_string());

    // Read and update the own profile; the password hash never appears.
    let me = http
        .get("/restful/accounts/alice", Some(&token))
        .await
        .expect(200)
        .json();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["telephone"], "13800000001");
    assert!(me.get("password").is_none());
    let id = me["id"].as_i64().expect("id");
    let update = json!({"id": id.to_string(), "username": "alice", "name": "Alice Liddell",
        "telephone": "13800000001", "email": "alice@example.com", "location": "Wonderland",
        "avatar": "", "password": null, "extra": {"ignored": true}});
    http.json(Method::PUT, "/restful/accounts", Some(&token), &update)
        .await
        .expect(200);
    let me = http
        .get("/restful/accounts/alice", Some(&token))
        .await
        .expect(200)
        .json();
    assert_eq!(me["name"], "Alice Liddell");
    assert_eq!(me["location"], "Wonderland");
    // No password in the update: the old one still works.
    http.login("alice", "alice-pw").await.expect(200);

    // Browse: products with specifications, one product, advertisements.
    let products = http.get("/restful/products", None).await.expect(200).json();
    let listed = products.as_array().expect("array");
    assert!(listed.len() > 1);
    let ours = listed.iter().find(|p| p["id"] == product).expect("listed");
    assert_eq!(ours["price"], json!(69.5));
    assert_eq!(ours["specifications"][0]["productId"], product);
    http.get(&format!("/restful/products/{product}"), None)
        .await
        .expect(200);
    http.get("/restful/advertisements", None).await.expect(200);

    // Settle 3 units (two lines of the same product are summed): 3 × 69.50 + 12 shipping.
    let balance_before = http.balance_cents(&token).await;
    let payment = http
        .settle(&token, &settlement(&[(product, 2), (product, 1)]), None)
        .await
        .expect(200)
        .json();
    assert_eq!(payment["totalPrice"], json!(220.5));
    assert_eq!(payment["payState"], "WAITING");
    assert_eq!(payment["expires"], 120000);
    let pay_id = payment["payId"].as_str().expect("payId").to_owned();
    assert_eq!(
        payment["paymentLink"],
        format!("/pay/modify/{pay_id}?state=PAYED&accountId={id}")
    );
    assert!(payment["createTime"].as_str().expect("time").ends_with('Z'));
    assert_eq!(http.stock(&admin, product).await, (7, 3));

    // Pay (a PATCH with no body and no Content-Type).
    let paid = http
        .change_payment(&token, &pay_id, "PAYED", None)
        .await
        .expect(200)
        .json();
    assert_eq!(paid["code"], 0);
    let now = http
        .get(&format!("/restful/pay/{pay_id}"), Some(&token))
        .await
        .expect(200)
        .json();
    assert_eq!(now["payState"], "PAYED");
    assert_eq!(http.stock(&admin, product).await, (7, 0));
    let balance_after = http.balance_cents(&token).await;
    assert_eq!(
        balance_before - balance_after,
        22_050,
        "{balance_before} -> {balance_after}"
    );

    // Paying again is a state conflict that names the state.
    let again = http
        .change_payment(&token, &pay_id, "PAYED", None)
        .await
        .expect(409)
        .json();
    assert_eq!(again["code"], 1);

    // More than is in stock: 422 naming the product, and nothing reserved.
    let too_many = http
        .settle(&token, &settlement(&[(product, 8)]), None)
        .await
        .expect(422)
        .json();
    assert!(
        too_many["message"]
            .as_str()
            .expect("message")
            .contains(&product.to_string())
    );
    assert_eq!(http.stock(&admin, product).await, (7, 0));
    stack.shut_down().await;
}

#[tokio::test]
async fn settle_then_cancel_releases_the_stock_and_links_are_owner_only() {
    let stack = Stack::start().await;
    let http = &stack.http;
    let admin = http.admin_token().await;
    let product = http
        .new_product(&admin, "Cancelled", json!("19.99"), 5)
        .await;
    let bob = new_customer(http, "bob", "13800000002").await;
    let carol = new_customer(http, "carol", "13800000003").await;

    let payment = http
        .settle(&bob, &settlement(&[(product, 2)]), None)
        .await
        .expect(200)
        .json();
    assert_eq!(payment["totalPrice"], json!(51.98));
    let pay_id = payment["payId"].as_str().expect("payId").to_owned();
    let link = payment["paymentLink"].as_str().expect("link").to_owned();
    assert_eq!(http.stock(&admin, product).await, (3, 2));

    // Someone else can neither read nor use it.
    let carol_me = http
        .get("/restful/accounts/carol", Some(&carol))
        .await
        .expect(200)
        .json();
    let carol_link = link.replace(
        &format!("accountId={}", payment_account(&payment)),
        &format!("accountId={}", carol_me["id"]),
    );
    http.get(&format!("/restful{carol_link}"), Some(&carol))
        .await
        .expect(403);
    http.get(&format!("/restful{link}"), Some(&carol))
        .await
        .expect(403);
    let other = http.change_payment(&carol, &pay_id, "CANCEL", None).await;
    assert!(matches!(other.status.as_u16(), 403 | 404), "{other:?}");
    http.get(&format!("/restful/pay/{pay_id}"), None)
        .await
        .expect(401);

    http.change_payment(&bob, &pay_id, "CANCEL", None)
        .await
        .expect(200);
    assert_eq!(http.stock(&admin, product).await, (5, 0));
    let now = http
        .get(&format!("/restful/pay/{pay_id}"), Some(&bob))
        .await
        .expect(200)
        .json();
    assert_eq!(now["payState"], "CANCEL");
    // The QR link of a cancelled payment: 409.
    http.get(&format!("/restful{link}"), Some(&bob))
        .await
        .expect(409);
    http.change_payment(&bob, &pay_id, "BOGUS", None)
        .await
        .expect(400);

    // The link itself pays a WAITING payment of its owner.
    let second = http
        .settle(&bob, &settlement(&[(product, 1)]), None)
        .await
        .expect(200)
        .json();
    let link = second["paymentLink"].as_str().expect("link").to_owned();
    http.get(&format!("/restful{link}"), Some(&bob))
        .await
        .expect(200);
    assert_eq!(http.stock(&admin, product).await, (4, 0));
    stack.shut_down().await;
}

fn payment_account(payment: &serde_json::Value) -> String {
    let link = payment["paymentLink"].as_str().expect("link");
    link.rsplit("accountId=")
        .next()
        .expect("accountId")
        .to_owned()
}

#[tokio::test]
async fn tokens_refresh_and_bad_credentials_are_indistinguishable() {
    let stack = Stack::start().await;
    let http = &stack.http;
    new_customer(http, "dave", "13800000004").await;
    let login = http.login("dave", "dave-pw").await.expect(200).json();
    let refresh = login["refresh_token"].as_str().expect("refresh").to_owned();

    // Refresh with a POST form body and HTTP Basic client authentication.
    let basic = base64_basic(CLIENT_ID, CLIENT_SECRET);
    let body = form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]);
    let refreshed = http
        .send(
            Method::POST,
            "/oauth/token",
            None,
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("authorization", &basic),
            ],
            Some(body.into()),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(refreshed["username"], "dave");
    let access = refreshed["access_token"].as_str().expect("access");
    http.get("/restful/accounts/dave", Some(access))
        .await
        .expect(200);
    // A refresh token is not an access token, and an access token cannot refresh.
    http.get("/restful/accounts/dave", Some(&refresh))
        .await
        .expect(401);
    let query = token_query(&[("grant_type", "refresh_token"), ("refresh_token", access)]);
    let refused = http
        .get(&format!("/oauth/token?{query}"), None)
        .await
        .expect(400)
        .json();
    assert_eq!(refused["error"], "invalid_grant");

    // A wrong password and an unknown user: the same 400 invalid_grant, word for word.
    let wrong = http.login("dave", "not-it").await.expect(400).json();
    let unknown = http
        .login("nobody-at-all", "not-it")
        .await
        .expect(400)
        .json();
    assert_eq!(wrong["error"], "invalid_grant");
    assert_eq!(wrong, unknown);

    // Client and grant errors follow RFC 6749.
    let bad_client = form(&[
        ("grant_type", "password"),
        ("username", "dave"),
        ("password", "dave-pw"),
        ("client_id", CLIENT_ID),
        ("client_secret", "wrong"),
    ]);
    let scope = [
        ("grant_type", "password"),
        ("username", "dave"),
        ("password", "dave-pw"),
        ("scope", "SERVICE"),
    ];
    for (query, status, error) in [
        (bad_client, 401, "invalid_client"),
        (
            token_query(&[("grant_type", "implicit")]),
            400,
            "unsupported_grant_type",
        ),
        (
            token_query(&[("grant_type", "password")]),
            400,
            "invalid_request",
        ),
        (token_query(&scope), 400, "invalid_scope"),
        (
            token_query(&[("grant_type", "client_credentials")]),
            400,
            "unauthorized_client",
        ),
    ] {
        let reply = http
            .get(&format!("/oauth/token?{query}"), None)
            .await
            .expect(status);
        assert_eq!(reply.json()["error"], error, "{query}");
    }

    // The payment service's client gets a SERVICE token with no user in it.
    let service = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "payment_service"),
        ("client_secret", "payment_service_dev_secret"),
    ]);
    let service = http
        .send(
            Method::POST,
            "/oauth/token",
            None,
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(service.into()),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(service["scope"], "SERVICE");
    assert!(service.get("refresh_token").is_none() && service.get("username").is_none());
    stack.shut_down().await;
}

#[tokio::test]
async fn tokens_issued_before_a_key_rotation_keep_working_after_it() {
    // Before: every program on the stack's key, A.
    let mut stack = Stack::start().await;
    new_customer(&stack.http, "erin", "13800000009").await;
    let login = stack.http.login("erin", "erin-pw").await.expect(200).json();
    let access_a = login["access_token"].as_str().expect("access").to_owned();
    let refresh_a = login["refresh_token"].as_str().expect("refresh").to_owned();

    // After: a gateway signing with B and still trusting A, and the account service verifying
    // with B while A is its previous key (SECURITY.md, "Rotating the token-signing key").
    let keys_b = platform::testing::TestKeys::new();
    let address = stack.account.address;
    stack.account.stop_now().await;
    let rotated = platform::configuration::AuthConfig {
        public_key_path: keys_b.public_key_path(),
        previous_public_key_paths: vec![stack.keys.public_key_path()],
        ..Default::default()
    };
    let listener = rebind(address).await;
    stack.account =
        start_account_trusting(rotated, stack.databases.account.clone(), listener).await;
    let mut config = gateway_config(
        &keys_b,
        stack.account.address,
        stack.warehouse.address,
        stack.payment.address,
    );
    config.oauth.trusted_public_key_paths = vec![stack.keys.public_key_path()];
    let (_config, receiver) = tokio::sync::watch::channel(config);
    let gateway_b = start_gateway(receiver, loopback().await).await;
    let http_b = Rest::new(gateway_b.address);

    // A's access token still opens the account, through B's gateway and the account service.
    http_b
        .get("/restful/accounts/erin", Some(&access_a))
        .await
        .expect(200);
    // A's refresh token still refreshes, into tokens signed with B.
    let query = token_query(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh_a),
    ]);
    let refreshed = http_b
        .get(&format!("/oauth/token?{query}"), None)
        .await
        .expect(200)
        .json();
    let access_b = refreshed["access_token"].as_str().expect("access");
    http_b
        .get("/restful/accounts/erin", Some(access_b))
        .await
        .expect(200);
    // A gateway that was never told about B refuses B's tokens: why every program must trust
    // the new key before any gateway signs with it.
    stack
        .http
        .get("/restful/accounts/erin", Some(access_b))
        .await
        .expect(401);

    gateway_b.shut_down().await;
    stack.shut_down().await;
}

fn base64_basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

#[tokio::test]
async fn anonymous_wrong_user_and_non_admin_calls_are_refused() {
    let stack = Stack::start().await;
    let http = &stack.http;
    let erin = new_customer(http, "erin", "13800000005").await;
    new_customer(http, "frank", "13800000006").await;

    let anonymous = http.get("/restful/accounts/erin", None).await.expect(401);
    assert!(anonymous.header("www-authenticate").starts_with("Bearer"));
    assert_eq!(anonymous.json()["code"], 1);
    http.get("/restful/accounts/erin", Some("not.a.jwt"))
        .await
        .expect(401);
    // A token signed with someone else's key is refused; one from the gateway's key verifies.
    let forged = platform::testing::TestKeys::new().token(platform::testing::TestIdentity::Admin);
    http.get("/restful/accounts/erin", Some(&forged))
        .await
        .expect(401);
    let genuine = stack.keys.token(platform::testing::TestIdentity::Admin);
    http.get("/restful/accounts/erin", Some(&genuine))
        .await
        .expect(200);
    let expired = stack
        .keys
        .token_expiring_in(platform::testing::TestIdentity::Admin, -60);
    let reply = http
        .get("/restful/accounts/erin", Some(&expired))
        .await
        .expect(401);
    assert!(reply.header("www-authenticate").contains("invalid_token"));

    // Wrong user: 403, for reads and for updates of another account id.
    http.get("/restful/accounts/frank", Some(&erin))
        .await
        .expect(403);
    let admin = http.admin_token().await;
    let frank = http
        .get("/restful/accounts/frank", Some(&admin))
        .await
        .expect(200)
        .json();
    let update = json!({"id": frank["id"], "username": "frank", "name": "Mallory"});
    http.json(Method::PUT, "/restful/accounts", Some(&erin), &update)
        .await
        .expect(403);
    http.get("/restful/accounts/nobody", Some(&admin))
        .await
        .expect(404);

    // Non-admin: no catalogue or stock writes.
    let product = json!({"title": "Nope", "price": 1});
    http.json(Method::POST, "/restful/products", Some(&erin), &product)
        .await
        .expect(403);
    http.json(Method::POST, "/restful/products", None, &product)
        .await
        .expect(401);
    http.delete("/restful/products/1", Some(&erin))
        .await
        .expect(403);
    http.get("/restful/products/stockpile/1", Some(&erin))
        .await
        .expect(403);
    http.set_stock(&erin, 1, 5).await.expect(403);
    http.json(
        Method::POST,
        "/restful/settlements",
        None,
        &settlement(&[(1, 1)]),
    )
    .await
    .expect(401);
    stack.shut_down().await;
}

#[tokio::test]
async fn an_admin_creates_edits_stocks_and_deletes_a_product() {
    let stack = Stack::start().await;
    let http = &stack.http;
    let admin = http.admin_token().await;
    let login = http.login(ADMIN, ADMIN_PASSWORD).await.expect(200).json();
    assert!(
        login["authorities"]
            .as_array()
            .expect("authorities")
            .contains(&json!("ROLE_ADMIN"))
    );

    let created = http
        .json(Method::POST, "/restful/products", Some(&admin), &json!({
            "id": 12345, "title": "Free Book", "price": 0, "rate": "7", "description": "<b>x</b>",
            "specifications": [{"item": "Pages", "value": "100"}, {"item": "ISBN", "value": "978"}],
        }))
        .await
        .expect(200)
        .json();
    let id = created["id"].as_i64().expect("id");
    assert_ne!(id, 12345, "an id in the body is ignored");
    assert_eq!(created["price"], json!(0.0));
    assert_eq!(
        created["specifications"].as_array().expect("specs").len(),
        2
    );
    assert!(created["specifications"][0]["id"].as_i64().is_some());
    assert_eq!(http.stock(&admin, id).await, (0, 0));

    http.json(
        Method::PUT,
        "/restful/products",
        Some(&admin),
        &json!({
            "id": id, "title": "Not Free", "price": "129", "rate": 9,
            "specifications": [{"item": "Pages", "value": "120"}],
        }),
    )
    .await
    .expect(200);
    let edited = http
        .get(&format!("/restful/products/{id}"), None)
        .await
        .expect(200)
        .json();
    assert_eq!(edited["title"], "Not Free");
    assert_eq!(edited["price"], json!(129.0));
    assert_eq!(edited["specifications"].as_array().expect("specs").len(), 1);

    http.set_stock(&admin, id, 42).await.expect(200);
    assert_eq!(http.stock(&admin, id).await, (42, 0));
    http.set_stock(&admin, id, -1).await.expect(400);

    // Validation lists every failed rule.
    let invalid = http
        .json(
            Method::POST,
            "/restful/products",
            Some(&admin),
            &json!({"title": "", "price": -1, "rate": 11}),
        )
        .await
        .expect(400)
        .json();
    let message = invalid["message"].as_str().expect("message");
    assert!(
        message.contains("title") && message.contains("price") && message.contains("rate"),
        "{message}"
    );

    http.delete(&format!("/restful/products/{id}"), Some(&admin))
        .await
        .expect(200);
    http.get(&format!("/restful/products/{id}"), None)
        .await
        .expect(404);
    http.delete(&format!("/restful/products/{id}"), Some(&admin))
        .await
        .expect(404);
    http.json(
        Method::PUT,
        "/restful/products",
        Some(&admin),
        &json!({"id": id, "title": "Gone", "price": 1}),
    )
    .await
    .expect(404);
    stack.shut_down().await;
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer() {
    let stack = Stack::start().await;
    let http = &stack.http;
    let admin = http.admin_token().await;
    let product = http.new_product(&admin, "Once Only", json!(10), 10).await;
    let gina = new_customer(http, "gina", "13800000007").await;

    let cart = settlement(&[(product, 2)]);
    let settle = async |key| {
        http.settle(&gina, &cart, Some(key))
            .await
            .expect(200)
            .json()
    };
    let first = settle("cart-1").await;
    let replay = settle("cart-1").await;
    assert_eq!(first["payId"], replay["payId"]);
    assert_eq!(
        http.stock(&admin, product).await,
        (8, 2),
        "the replay reserved nothing"
    );

    let pay_id = first["payId"].as_str().expect("payId");
    let balance = http.balance_cents(&gina).await;
    // Paid, then paid again with the same key: one charge, both 200.
    for _ in 0..2 {
        http.change_payment(&gina, pay_id, "PAYED", Some("pay-1"))
            .await
            .expect(200);
    }
    assert_eq!(
        balance - http.balance_cents(&gina).await,
        3_200,
        "charged once"
    );
    let too_long = "k".repeat(256);
    http.send(
        Method::POST,
        "/restful/settlements",
        Some(&gina),
        &[("idempotency-key", too_long.as_str())],
        Some(cart.to_string().into()),
    )
    .await
    .expect(400);
    stack.shut_down().await;
}

#[tokio::test]
async fn input_is_lenient_but_malformed_or_oversized_bodies_are_refused() {
    let stack = Stack::start_with(|config| config.server.max_body_bytes = 4096).await;
    let http = &stack.http;
    // Registration with numbers as strings and fields the API does not know.
    let body = json!({"username": "hank", "password": "pw", "name": "Hank",
        "telephone": 13800000008u64, "email": "hank@example.com", "desc": "x", "address": {}});
    http.json(Method::POST, "/restful/accounts", None, &body)
        .await
        .expect(200);
    // Conflicts name the field.
    let clash =
        json!({"username": "hank2", "password": "pw", "name": "H", "telephone": "13800000008"});
    let conflict = http
        .json(Method::POST, "/restful/accounts", None, &clash)
        .await
        .expect(409)
        .json();
    assert!(
        conflict["message"]
            .as_str()
            .expect("message")
            .contains("telephone")
    );
    let invalid = http
        .json(
            Method::POST,
            "/restful/accounts",
            None,
            &json!({"username": "", "telephone": "123"}),
        )
        .await
        .expect(400)
        .json();
    assert!(invalid["errors"].as_array().expect("errors").len() >= 3);

    let malformed = http
        .send(
            Method::POST,
            "/restful/accounts",
            None,
            &[],
            Some("{not json".into()),
        )
        .await
        .expect(400);
    assert_eq!(malformed.json()["code"], 1);
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(10_000));
    let too_large = http
        .send(
            Method::POST,
            "/restful/accounts",
            None,
            &[("content-type", "application/json")],
            Some(big.into()),
        )
        .await
        .expect(413);
    assert_eq!(too_large.json()["code"], 1);
    http.get("/restful/products/abc", None).await.expect(400);
    http.get("/restful/no-such-thing", None).await.expect(404);
    let wrong_method = http.delete("/restful/accounts", None).await.expect(405);
    assert_eq!(wrong_method.json()["code"], 1);
    stack.shut_down().await;
}

#[tokio::test]
async fn the_published_key_set_verifies_the_tokens_the_gateway_signs() {
    let stack = Stack::start().await;
    let http = &stack.http;
    let published = http.get("/.well-known/jwks.json", None).await.expect(200);
    assert!(published.header("cache-control").contains("max-age"));
    // What an outside verifier does: parse the set, pick the key the token names, verify.
    let keys: jsonwebtoken::jwk::JwkSet =
        serde_json::from_slice(&published.body).expect("a JSON Web Key Set");
    let token = http.admin_token().await;
    let kid = jsonwebtoken::decode_header(&token)
        .expect("header")
        .kid
        .expect("tokens name their key");
    let key = keys.find(&kid).expect("the signing key is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(key).expect("an Ed25519 key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_issuer(&["bookstore"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation)
        .expect("the token verifies with the published key")
        .claims;
    assert_eq!(claims["user_name"], "icyfenix");
    // A token signed by anyone else does not.
    let forged = platform::testing::TestKeys::new().token(platform::testing::TestIdentity::Admin);
    assert!(jsonwebtoken::decode::<serde_json::Value>(&forged, &key, &validation).is_err());
    stack.shut_down().await;
}

#[tokio::test]
async fn operations_endpoints_and_the_openapi_document_match_the_server() {
    let stack = Stack::start().await;
    let http = &stack.http;
    http.get("/healthz", None).await.expect(200);
    // The backends' health follows the first round of checks; the gateway is ready throughout.
    let mut ready = http.get("/readyz", None).await.expect(200).json();
    for _ in 0..50 {
        if ready["degraded"] == false {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        ready = http.get("/readyz", None).await.expect(200).json();
    }
    assert_eq!(ready["backends"]["payment"], "up", "{ready}");

    let traced = http
        .send(
            Method::GET,
            "/restful/products",
            None,
            &[("x-request-id", "trace-me-1")],
            None,
        )
        .await;
    assert_eq!(traced.header("x-request-id"), "trace-me-1");
    assert!(
        !http
            .get("/healthz", None)
            .await
            .header("x-request-id")
            .is_empty()
    );

    // Metrics are on the metrics listener (reliability/tests/metrics.rs), not the public port.
    http.get("/metrics", None).await.expect(404);

    // Every documented operation is routed (no 404/405 from the router itself).
    let document = http.get("/openapi.json", None).await.expect(200).json();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            let concrete = path
                .replace("{username}", "icyfenix")
                .replace("{id}", "1")
                .replace("{productId}", "1")
                .replace("{payId}", "00000000-0000-0000-0000-000000000000");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let reply = http.send(method.clone(), &concrete, None, &[], None).await;
            assert_ne!(reply.status.as_u16(), 405, "{method} {path}");
            if reply.status.as_u16() == 404 {
                // A 404 must be the API's own answer about a missing entity, not "no route".
                assert_ne!(
                    reply.json()["message"],
                    "no such API endpoint",
                    "{method} {path}"
                );
            }
        }
    }
    stack.shut_down().await;
}

#[tokio::test]
async fn static_files_are_served_with_types_and_without_escaping_the_directory() {
    let site = tempfile::tempdir().expect("tempdir");
    let root = static_site(site.path());
    let stack = Stack::start_with(move |config| config.static_files.dir = Some(root)).await;
    let http = &stack.http;

    let index = http.get("/", None).await.expect(200);
    assert!(index.header("content-type").starts_with("text/html"));
    assert!(index.text().contains("Fenix"));
    assert!(!index.header("cache-control").is_empty());
    assert!(!index.header("last-modified").is_empty());
    let css = http.get("/static/css/app.css", None).await.expect(200);
    assert!(css.header("content-type").starts_with("text/css"));
    let js = http.get("/static/app.js", None).await.expect(200);
    assert!(js.header("content-type").contains("javascript"));
    http.get("/static/missing.png", None).await.expect(404);
    for escape in [
        "/../secret.txt",
        "/static/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/static/%2e%2e/%2e%2e/secret.txt",
    ] {
        let reply = http.get(escape, None).await;
        assert!(
            !reply.text().contains(SECRET_OUTSIDE),
            "{escape} escaped the directory"
        );
        assert!(reply.status.is_client_error(), "{escape}: {}", reply.status);
    }
    // The API is never shadowed by files.
    http.get("/restful/products", None).await.expect(200);
    stack.shut_down().await;
}

/// A password grant with `X-Forwarded-For: {forwarded_for}`, as a proxy would pass it on.
async fn login_forwarded(
    http: &Rest,
    forwarded_for: &str,
    username: &str,
    password: &str,
) -> Reply {
    let grant = [
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
    ];
    let path = format!("/oauth/token?{}", token_query(&grant));
    http.send(
        Method::GET,
        &path,
        None,
        &[("x-forwarded-for", forwarded_for)],
        None,
    )
    .await
}

#[tokio::test]
async fn behind_a_trusted_proxy_password_guessing_is_throttled_per_forwarded_client() {
    // The stack's client connects from 127.0.0.1, which plays the ingress here.
    let stack = Stack::start_with(|config| {
        config.login_throttle.free_attempts = 2;
        // Long enough that no wait runs out during the test.
        config.login_throttle.base_delay_ms = 60_000;
        config.login_throttle.max_delay_ms = 60_000;
        config.login_throttle.trusted_proxies = vec!["127.0.0.1".parse().expect("network")];
    })
    .await;
    let proxy = &stack.http;
    proxy.new_user("grace").await;

    for guess in ["guess0", "guess1"] {
        let reply = login_forwarded(proxy, "198.51.100.1", "grace", guess)
            .await
            .expect(400);
        assert_eq!(reply.json()["error"], "invalid_grant");
    }
    let refused = login_forwarded(proxy, "198.51.100.1", "grace", "grace-pw")
        .await
        .expect(429);
    assert_eq!(refused.json()["error"], "slow_down");
    // Addresses the attacker writes left of the proxy's entry change nothing.
    login_forwarded(proxy, "198.51.100.2, 198.51.100.1", "grace", "grace-pw")
        .await
        .expect(429);

    // The owner, behind the same proxy, still reaches the account service.
    let owner = login_forwarded(proxy, "198.51.100.2", "grace", "grace-pw")
        .await
        .expect(200);
    assert!(owner.json()["access_token"].is_string());
    login_forwarded(proxy, "198.51.100.2", "grace", "typo")
        .await
        .expect(400);

    // A client that is no trusted proxy (127.0.0.2) is counted by its own address, whatever
    // it forwards: a fresh X-Forwarded-For per guess does not buy fresh attempts.
    let direct = Rest::from_local_address(
        stack.gateway.address,
        Some("127.0.0.2".parse().expect("address")),
    );
    for (forwarded_for, status) in [
        ("203.0.113.1", 400),
        ("203.0.113.2", 400),
        ("203.0.113.3", 429),
    ] {
        login_forwarded(&direct, forwarded_for, "grace", "guess")
            .await
            .expect(status);
    }
    stack.shut_down().await;
}

/// Each rule has one owner: the service that owns the data decides, and the REST answer is its
/// verdict, field by field, whatever protocol the input came in by. The same product inputs
/// sent to the warehouse over gRPC (its `google.rpc.BadRequest` details) and through the
/// gateway over REST get the same failed fields and messages (only `price_cents` is spelt
/// `price` in REST); the same carts sent to the payment service likewise; and the e-mail rules
/// are the account service's (the gateway once had stricter ones of its own).
#[tokio::test]
async fn the_owner_decides_and_every_protocol_says_the_same() {
    use platform::{grpc_error_details::field_errors, rpc_metadata::CallMetadata};
    use rpc_idl::{
        payment::{PaymentServiceClientBuilder, Purchase, SettleRequest, SettlementItem},
        warehouse::{
            CreateProductRequest, ProductInput, SpecificationInput, WarehouseServiceClientBuilder,
        },
    };

    let stack = Stack::start().await;
    let http = &stack.http;
    let admin = http.admin_token().await;
    let as_admin = CallMetadata {
        token: Some(admin.clone()),
        request_id: None,
    };
    let warehouse = WarehouseServiceClientBuilder::new("warehouse")
        .address(stack.warehouse.address)
        .build();
    let rest_errors = |body: serde_json::Value| {
        let errors = body["errors"].as_array().expect("errors").clone();
        let errors: Vec<(String, String)> = errors
            .iter()
            .map(|e| {
                let text = |key: &str| e[key].as_str().expect(key).to_owned();
                (text("field"), text("message"))
            })
            .collect();
        let message = errors
            .iter()
            .map(|(field, message)| format!("{field}: {message}"))
            .collect::<Vec<_>>()
            .join("; ");
        assert_eq!(body["message"], message.as_str(), "{body}");
        errors
    };
    let grpc_errors = |status: &volo_grpc::Status, renames: &[(&str, &str)]| {
        field_errors(status)
            .expect("per-field details")
            .into_iter()
            .map(|error| {
                let field = renames
                    .iter()
                    .fold(error.field, |field, (rpc, rest)| field.replace(rpc, rest));
                (field, error.message)
            })
            .collect::<Vec<_>>()
    };

    // Products: (REST body, the same as the warehouse's input).
    let products = [
        (
            json!({"title": "", "price": -1, "rate": 11, "specifications": [{"item": "a"}]}),
            ("", -100, 11.0, vec![("a", "")]),
        ),
        (
            json!({"title": "x".repeat(51), "price": 1}),
            (&*"x".repeat(51), 100, 0.0, vec![]),
        ),
        (
            json!({"title": "Tab\there", "price": 1, "specifications": [{"item": " ", "value": "v"}]}),
            ("Tab\there", 100, 0.0, vec![(" ", "v")]),
        ),
    ];
    for (body, (title, price_cents, rate, specifications)) in products {
        let input = ProductInput {
            title: title.to_owned().into(),
            price_cents,
            rate,
            specifications: specifications
                .iter()
                .map(|(item, value)| SpecificationInput {
                    item: (*item).to_owned().into(),
                    value: (*value).to_owned().into(),
                })
                .collect(),
            ..Default::default()
        };
        let status = warehouse
            .create_product(as_admin.grpc_request(CreateProductRequest {
                product: Some(input),
            }))
            .await
            .expect_err("refused over gRPC");
        assert_eq!(status.code(), volo_grpc::Code::InvalidArgument);
        let over_grpc = grpc_errors(&status, &[("price_cents", "price")]);
        let over_rest = http
            .json(Method::POST, "/restful/products", Some(&admin), &body)
            .await
            .expect(400)
            .json();
        assert_eq!(rest_errors(over_rest), over_grpc, "{body}");
    }

    // Carts: the payment service's rules.
    let token = new_customer(http, "olive", "13800000031").await;
    let as_olive = CallMetadata {
        token: Some(token.clone()),
        request_id: None,
    };
    let payment = PaymentServiceClientBuilder::new("payment")
        .address(stack.payment.address)
        .build();
    let purchase = |name: &str| {
        Some(Purchase {
            name: name.to_owned().into(),
            telephone: "13800000031".into(),
            location: "Here".into(),
            ..Default::default()
        })
    };
    let carts = [
        (
            json!({"items": [{"id": 1, "amount": 0}], "purchase": {"name": " ", "telephone": "13800000031", "location": "Here"}}),
            vec![SettlementItem {
                product_id: 1,
                amount: 0,
            }],
            purchase(" "),
        ),
        (json!({"items": []}), vec![], None),
    ];
    for (body, items, purchase) in carts {
        let status = payment
            .settle(as_olive.grpc_request(SettleRequest {
                items,
                purchase,
                idempotency_key: Default::default(),
            }))
            .await
            .expect_err("refused over gRPC");
        let over_grpc = grpc_errors(&status, &[(".product_id", ".id")]);
        let over_rest = http
            .json(Method::POST, "/restful/settlements", Some(&token), &body)
            .await
            .expect(400)
            .json();
        assert_eq!(rest_errors(over_rest), over_grpc, "{body}");
    }

    // Accounts: the account service's e-mail rules, not a second set in the gateway.
    let register = |username: &str, email: &str, telephone: &str| {
        json!({"username": username, "password": "pw", "name": "N",
               "telephone": telephone, "email": email})
    };
    http.json(
        Method::POST,
        "/restful/accounts",
        None,
        &register("localmail", "a@localhost", "13800000032"),
    )
    .await
    .expect(200);
    let refused = http
        .json(
            Method::POST,
            "/restful/accounts",
            None,
            &register("unicodemail", "ü@example.com", "13800000033"),
        )
        .await
        .expect(400)
        .json();
    assert_eq!(rest_errors(refused)[0].0, "email");
    stack.shut_down().await;
}
