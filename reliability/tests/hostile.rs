//! Hostile input against the real binaries: forged and misused tokens (at the gateway and at
//! every service directly), oversized and pathological bodies, path traversal on the static
//! files, SQL metacharacters in every stored text field, random and truncated bytes on the
//! Thrift and gRPC ports, and password guessing.

use std::{net::SocketAddr, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use gateway::testing::{ADMIN, ADMIN_PASSWORD, Rest, settlement};
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use platform::{
    rpc_metadata::CallMetadata,
    testing::{TestIdentity, TestKeys},
    tokens::{Claims, ROLE_ADMIN, ROLE_USER, SCOPE_BROWSER, TokenUse},
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use reliability::{
    programs::Kind,
    stack::{Stack, StackOptions, Storage},
    wire::{self, THRIFT_PING, thrift_ping},
};
use serde_json::{Value, json};
use sqlx::Row;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const DEADLINE: Duration = Duration::from_secs(120);

async fn within(scenario: impl Future<Output = ()>) {
    tokio::time::timeout(DEADLINE, scenario)
        .await
        .expect("the scenario finished within its deadline");
}

// ---- tokens ----------------------------------------------------------------------------------

/// Claims of an administrator, as the gateway would issue them.
fn admin_claims(expires_in: i64) -> Claims {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    Claims {
        user_name: Some(ADMIN.into()),
        username: Some(ADMIN.into()),
        account_id: Some(1),
        authorities: vec![ROLE_USER.into(), ROLE_ADMIN.into()],
        scope: vec![SCOPE_BROWSER.into()],
        client_id: "bookstore_frontend".into(),
        jti: uuid::Uuid::new_v4().to_string(),
        token_use: TokenUse::Access,
        iss: "bookstore".into(),
        iat: now,
        exp: now + expires_in,
    }
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Every way of forging an administrator's token, by name.
fn forged_admin_tokens(keys: &TestKeys, user_token: &str) -> Vec<(&'static str, String)> {
    let claims = serde_json::to_value(admin_claims(3_600)).expect("claims");
    let unsigned = format!(
        "{}.{}.",
        encode_part(&json!({"alg": "none", "typ": "JWT"})),
        encode_part(&claims)
    );
    // HS256 "signed" with the public key, which anyone can read.
    let public_pem = std::fs::read(&keys.auth_config().public_key_path).expect("public key");
    let hmac = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &admin_claims(3_600),
        &jsonwebtoken::EncodingKey::from_secret(&public_pem),
    )
    .expect("hmac token");
    // A user's real token with the payload swapped for an administrator's.
    let parts: Vec<&str> = user_token.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], encode_part(&claims), parts[2]);
    // A genuine signature by a key the system does not trust.
    let foreign = TestKeys::new().token(TestIdentity::Admin);
    let expired = keys.token_expiring_in(TestIdentity::Admin, -120);
    vec![
        ("alg none", unsigned),
        ("HMAC with the public key", hmac),
        ("tampered payload", tampered),
        ("foreign key", foreign),
        ("expired", expired),
        ("garbage", "not.a.jwt".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_borrowed_tokens_are_refused_at_the_gateway_and_every_service() {
    within(async {
        let stack = Stack::start(StackOptions::default()).await;
        let rest = &stack.rest;
        let shop = stack.open_shop(2, &[5]).await;
        let product = shop.products[0];
        let (alice, bob) = (&shop.shoppers[0], &shop.shoppers[1]);

        let mut forged = forged_admin_tokens(&stack.keys, &alice.token);
        let login = rest
            .login(&alice.username, &format!("{}-pw", alice.username))
            .await
            .expect(200)
            .json();
        forged.push((
            "refresh token used as an access token",
            login["refresh_token"].as_str().expect("refresh").to_owned(),
        ));

        // At the gateway: 401 with a Bearer challenge, and nothing changes.
        for (name, token) in &forged {
            for (method, path) in [
                (Method::GET, format!("/restful/accounts/{ADMIN}")),
                (
                    Method::PATCH,
                    format!("/restful/products/stockpile/{product}?amount=999"),
                ),
                (Method::GET, "/restful/wallet".to_owned()),
                (Method::POST, "/restful/settlements".to_owned()),
            ] {
                let reply = rest.send(method.clone(), &path, Some(token), &[], None).await;
                assert_eq!(reply.status, 401, "{name}: {method} {path}: {}", reply.text());
                assert!(reply.header("www-authenticate").starts_with("Bearer"));
                assert_eq!(reply.json()["code"], 1);
            }
        }
        assert_eq!(rest.stock(&shop.admin, product).await, (5, 0));

        // At the services themselves, called directly: the same tokens are refused there too,
        // so getting past the gateway would not help.
        let warehouse = rpc_idl::warehouse::WarehouseServiceClientBuilder::new("warehouse")
            .address(stack.warehouses[0].address())
            .build();
        let payment = rpc_idl::payment::PaymentServiceClientBuilder::new("payment")
            .address(stack.payments[0].address())
            .build();
        let account = rpc_idl::account::AccountServiceClientBuilder::new("account")
            .address(stack.accounts[0].address())
            .build();
        for (name, token) in &forged {
            let meta = CallMetadata {
                token: Some(token.clone()),
                request_id: None,
            };
            let refused = warehouse
                .set_stock_amount(meta.grpc_request(rpc_idl::warehouse::SetStockAmountRequest {
                    product_id: product,
                    amount: 999,
                }))
                .await
                .expect_err(name);
            assert_eq!(refused.code(), volo_grpc::Code::Unauthenticated, "{name}");
            let refused = payment
                .get_wallet(meta.grpc_request(rpc_idl::payment::GetWalletRequest {}))
                .await
                .expect_err(name);
            assert_eq!(refused.code(), volo_grpc::Code::Unauthenticated, "{name}");
            let answer = meta
                .thrift_call(account.get_account_by_username(
                    rpc_idl::account::GetAccountByUsernameRequest {
                        username: ADMIN.into(),
                        token: None,
                    },
                ))
                .await
                .expect("a Thrift answer");
            assert!(
                matches!(
                    answer,
                    volo_thrift::MaybeException::Exception(
                        rpc_idl::account::AccountServiceGetAccountByUsernameException::Unauthenticated(_)
                    )
                ),
                "{name}: the account service did not refuse the token"
            );
        }
        // A genuine user token does not make its holder an administrator anywhere.
        let user = CallMetadata {
            token: Some(alice.token.clone()),
            request_id: None,
        };
        let refused = warehouse
            .set_stock_amount(user.grpc_request(rpc_idl::warehouse::SetStockAmountRequest {
                product_id: product,
                amount: 999,
            }))
            .await
            .expect_err("a user may not set stock");
        assert_eq!(refused.code(), volo_grpc::Code::PermissionDenied);
        assert_eq!(rest.stock(&shop.admin, product).await, (5, 0));

        // Another user's valid token on someone else's account and payment.
        let bob_path = format!("/restful/accounts/{}", bob.username);
        let bob_account = rest.get(&bob_path, Some(&bob.token)).await.expect(200).json();
        rest.get(&bob_path, Some(&alice.token)).await.expect(403);
        let mut takeover = bob_account.clone();
        takeover["name"] = json!("Mallory");
        takeover["password"] = json!("stolen");
        rest.json(Method::PUT, "/restful/accounts", Some(&alice.token), &takeover)
            .await
            .expect(403);
        let payment = rest
            .settle(&bob.token, &settlement(&[(product, 1)]), Some("bob-cart"))
            .await
            .expect(200)
            .json();
        let pay_id = payment["payId"].as_str().expect("payId");
        let alice_before = rest.balance_cents(&alice.token).await;
        let bob_before = rest.balance_cents(&bob.token).await;
        for (method, path) in [
            (Method::GET, format!("/restful/pay/{pay_id}")),
            (Method::PATCH, format!("/restful/pay/{pay_id}?state=PAYED")),
            (Method::PATCH, format!("/restful/pay/{pay_id}?state=CANCEL")),
            (
                Method::GET,
                format!(
                    "/restful/pay/modify/{pay_id}?state=PAYED&accountId={}",
                    bob_account["id"]
                ),
            ),
        ] {
            let reply = rest.send(method.clone(), &path, Some(&alice.token), &[], None).await;
            assert!(
                matches!(reply.status.as_u16(), 403 | 404),
                "{method} {path}: {} {}",
                reply.status,
                reply.text()
            );
        }
        // Bob's payment still waits, nobody paid for anything, and Bob's name is his own.
        let current = rest
            .get(&format!("/restful/pay/{pay_id}"), Some(&bob.token))
            .await
            .expect(200)
            .json();
        assert_eq!(current["payState"], "WAITING");
        assert_eq!(rest.balance_cents(&alice.token).await, alice_before);
        assert_eq!(rest.balance_cents(&bob.token).await, bob_before);
        let unchanged = rest.get(&bob_path, Some(&bob.token)).await.expect(200).json();
        assert_eq!(unchanged, bob_account);
        stack.assert_conserved(Duration::from_secs(10)).await;
        stack.shut_down().await;
    })
    .await;
}

// ---- bodies and paths ------------------------------------------------------------------------

/// Sends `request` as raw bytes and returns the status code and the whole answer.
async fn raw_http(address: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    // Read until the server closes or goes quiet.
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_secs(2), stream.read(&mut chunk)).await
    {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
        if answer.len() > 1 << 20 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_deeply_nested_and_malformed_bodies_are_refused_in_the_documented_shape() {
    within(async {
        let mut stack = Stack::start(StackOptions::default()).await;
        let rest = stack.rest.clone();
        let gateway = stack.gateway.address();
        let limit = stack.gateway.settings.server.max_body_bytes;

        // Over the limit with a Content-Length: 413 before the body is read.
        let big = Bytes::from(vec![b' '; limit + 1]);
        let reply = rest
            .send(
                Method::POST,
                "/restful/accounts",
                None,
                &[("content-type", "application/json")],
                Some(big),
            )
            .await;
        assert_eq!(reply.status, 413, "{}", reply.text());
        assert_eq!(reply.json()["code"], 1);

        // Over the limit in chunks, with no Content-Length: 413 once the limit is passed.
        let mut chunked = b"POST /restful/accounts HTTP/1.1\r\nHost: gateway\r\n\
            Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
        let piece = vec![b'['; 64 * 1024];
        for _ in 0..(limit / piece.len() + 2) {
            chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            chunked.extend_from_slice(&piece);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let (status, answer) = raw_http(gateway, &chunked).await;
        assert_eq!(
            status,
            413,
            "chunked oversized body: {}",
            &answer[..answer.len().min(300)]
        );
        assert!(answer.contains("\"code\":1"), "{answer}");

        let token = stack.rest.new_user("nester").await;
        let deep_array = "[".repeat(100_000);
        let deep_object = "{\"a\":".repeat(50_000);
        let deep_items = format!(
            "{{\"items\":{}1{},\"purchase\":{{}}}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let bodies: Vec<(&str, Vec<u8>)> = vec![
            ("deep array", deep_array.into_bytes()),
            ("deep object", deep_object.into_bytes()),
            ("deep items", deep_items.into_bytes()),
            ("invalid UTF-8", b"{\"items\":\"\xff\xfe\"}".to_vec()),
            (
                "huge number",
                b"{\"items\":[{\"id\":1e999999,\"amount\":1}]}".to_vec(),
            ),
            ("NUL bytes", b"{\"items\":\0\0\0}".to_vec()),
            ("truncated", b"{\"items\":[{\"id\":1,\"amo".to_vec()),
            ("not JSON", b"<xml/>".to_vec()),
        ];
        for (name, body) in bodies {
            for path in ["/restful/settlements", "/restful/accounts"] {
                let reply = rest
                    .send(
                        Method::POST,
                        path,
                        Some(&token),
                        &[("content-type", "application/json")],
                        Some(Bytes::from(body.clone())),
                    )
                    .await;
                assert_eq!(reply.status, 400, "{name} to {path}: {}", reply.text());
                let error = reply.json();
                assert_eq!(error["code"], 1, "{name}");
                assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
            }
        }
        assert!(stack.program(Kind::Gateway, 0).is_running());
        rest.get("/healthz", None).await.expect(200);
        rest.get("/restful/products", None).await.expect(200);
        stack.shut_down().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_cannot_be_escaped_by_any_spelling_of_dot_dot() {
    within(async {
        let stack = Stack::start(StackOptions {
            static_files: true,
            ..StackOptions::default()
        })
        .await;
        let gateway = stack.gateway.address();
        let get = |path: &str| {
            format!("GET {path} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
        };
        let (status, page) = raw_http(gateway, get("/").as_bytes()).await;
        assert_eq!(status, 200);
        assert!(page.contains("Fenix"));
        let (status, _) = raw_http(gateway, get("/static/css/app.css").as_bytes()).await;
        assert_eq!(status, 200);
        for path in [
            "/../secret.txt",
            "/static/../../secret.txt",
            "/static/css/../../../secret.txt",
            "/%2e%2e/secret.txt",
            "/%2E%2E/secret.txt",
            "/%2e%2e%2fsecret.txt",
            "/static/%2e%2e/%2e%2e/secret.txt",
            "/..%2fsecret.txt",
            "/..%5csecret.txt",
            "/..\\secret.txt",
            "/%252e%252e/secret.txt",
            "/%c0%ae%c0%ae/secret.txt",
            "/.%2e/secret.txt",
            "/..;/secret.txt",
            "//secret.txt",
            "/./../secret.txt",
            "/index.html%00/../../secret.txt",
            "http://gateway/../secret.txt",
        ] {
            let (status, answer) = raw_http(gateway, get(path).as_bytes()).await;
            assert!(
                !answer.contains("TOP-SECRET"),
                "{path} escaped the static directory"
            );
            assert!(
                matches!(status, 400 | 404),
                "{path}: {}",
                &answer[..answer.len().min(200)]
            );
        }
        stack.shut_down().await;
    })
    .await;
}

// ---- SQL metacharacters ----------------------------------------------------------------------

/// Text that breaks naively built SQL, in every dialect this system speaks.
const NASTY: &str = "Robert'); DROP TABLE accounts;-- \" OR '1'='1' /* */ `x` \\ % _ $1 ? :p; 漢字";

/// An idempotency key (visible ASCII only) that breaks naively built SQL.
const NASTY_KEY: &str = "k'); DROP TABLE idempotency_keys;-- \" OR '1'='1' %_\\";

async fn metacharacters_are_stored_and_returned_verbatim(storage: Storage) {
    let stack = Stack::start(StackOptions {
        storage,
        ..StackOptions::default()
    })
    .await;
    let rest = &stack.rest;
    let admin = rest.admin_token().await;

    // An account whose every free-text field (and password) is hostile.
    let email = "o'brien%_x+1@example.com";
    let password = format!("{NASTY} password");
    let registered = rest
        .register(
            "sqlfan",
            json!({"name": NASTY, "avatar": NASTY, "location": NASTY, "email": email,
                   "password": password, "telephone": "13900000001"}),
        )
        .await
        .expect(200);
    assert_eq!(registered.json()["code"], 0);
    let token = rest.token("sqlfan", &password).await;
    rest.login("sqlfan", &format!("{NASTY} passwore"))
        .await
        .expect(400);
    let mut account = rest
        .get("/restful/accounts/sqlfan", Some(&token))
        .await
        .expect(200)
        .json();
    for field in ["name", "avatar", "location"] {
        assert_eq!(account[field], NASTY, "{field}");
    }
    assert_eq!(account["email"], email);
    account["name"] = json!(format!("{NASTY} (renamed)"));
    account["location"] = json!(format!("{NASTY} (moved)"));
    rest.json(Method::PUT, "/restful/accounts", Some(&token), &account)
        .await
        .expect(200);
    let updated = rest
        .get("/restful/accounts/sqlfan", Some(&token))
        .await
        .expect(200)
        .json();
    assert_eq!(updated["name"], format!("{NASTY} (renamed)"));
    assert_eq!(updated["location"], format!("{NASTY} (moved)"));
    // Hostile usernames are refused by validation, and hurt nothing.
    rest.register(NASTY, json!({})).await.expect(400);
    for path in [
        format!("/restful/accounts/{}", urlencode(NASTY)),
        format!("/restful/pay/{}", urlencode(NASTY)),
        format!("/restful/products/{}", urlencode(NASTY)),
    ] {
        let reply = rest.get(&path, Some(&token)).await;
        assert!(
            matches!(reply.status.as_u16(), 400 | 403 | 404),
            "{path}: {} {}",
            reply.status,
            reply.text()
        );
    }

    // A product whose every text field is hostile (the title is limited to 50 characters).
    let title: String = NASTY.chars().take(50).collect();
    let product = rest
        .json(
            Method::POST,
            "/restful/products",
            Some(&admin),
            &json!({"title": title, "price": 12.5, "rate": 7, "description": NASTY,
                    "cover": NASTY, "detail": NASTY,
                    "specifications": [{"item": NASTY, "value": NASTY}]}),
        )
        .await
        .expect(200)
        .json();
    let id = product["id"].as_i64().expect("id");
    let stored = rest
        .get(&format!("/restful/products/{id}"), None)
        .await
        .expect(200)
        .json();
    assert_eq!(stored["title"], title);
    for field in ["description", "cover", "detail"] {
        assert_eq!(stored[field], NASTY, "{field}");
    }
    assert_eq!(stored["specifications"][0]["item"], NASTY);
    assert_eq!(stored["specifications"][0]["value"], NASTY);
    rest.set_stock(&admin, id, 3).await.expect(200);

    // A settlement whose purchase details are hostile: stored verbatim by the payment service.
    let mut cart = settlement(&[(id, 1)]);
    for field in ["name", "telephone", "location", "pay", "delivery"] {
        cart["purchase"][field] = json!(NASTY);
    }
    let payment = rest
        .settle(&token, &cart, Some(NASTY_KEY))
        .await
        .expect(200)
        .json();
    let pay_id = payment["payId"].as_str().expect("payId");
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&stack.databases.payment.url)
        .await
        .expect("payment database");
    let row = sqlx::query(
        "SELECT recipient_name, telephone, location, pay_method, delivery FROM payments \
         WHERE pay_id = $1",
    )
    .bind(pay_id)
    .fetch_one(&pool)
    .await
    .expect("the payment row");
    for column in [
        "recipient_name",
        "telephone",
        "location",
        "pay_method",
        "delivery",
    ] {
        let value: String = row.try_get(column).expect("text");
        assert_eq!(value, NASTY, "{column}");
    }
    pool.close().await;
    // The same hostile (visible ASCII, as keys must be) idempotency key replays the answer.
    let replay = rest
        .settle(&token, &cart, Some(NASTY_KEY))
        .await
        .expect(200)
        .json();
    assert_eq!(replay["payId"], pay_id);

    // Every table is still there: the administrator can still log in and list products.
    rest.token(ADMIN, ADMIN_PASSWORD).await;
    let products = rest.get("/restful/products", None).await.expect(200).json();
    assert_eq!(products.as_array().map(Vec::len), Some(1));
    stack.assert_conserved(Duration::from_secs(10)).await;
    stack.shut_down().await;
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_metacharacters_are_stored_and_returned_verbatim_on_sqlite() {
    within(metacharacters_are_stored_and_returned_verbatim(
        Storage::Sqlite,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_metacharacters_are_stored_and_returned_verbatim_on_postgres() {
    within(metacharacters_are_stored_and_returned_verbatim(
        Storage::Postgres,
    ))
    .await;
}

// ---- garbage on the RPC ports ----------------------------------------------------------------

/// Writes `bytes`, then reads whatever comes back until the server closes or goes quiet.
async fn throw(address: SocketAddr, bytes: &[u8]) {
    wire::throw_and_close(address, bytes, Duration::from_secs(2)).await;
}

/// gRPC requests with a valid HTTP/2 frame layer and garbage inside.
async fn grpc_garbage(address: SocketAddr, paths: &[&str], rng: &mut StdRng) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    for path in paths {
        let mut bodies: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 0, 0, 0, 10, 1, 2],      // declares 10 bytes, sends 2
            vec![0, 0xff, 0xff, 0xff, 0xff], // declares 4 GiB
            vec![1, 0, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef], // "compressed" garbage
            vec![0, 0, 0, 0, 3, 0x0a, 0xff, 0xff], // a field whose length runs off the end
        ];
        for _ in 0..10 {
            let length = rng.gen_range(1..512);
            let mut body = vec![0u8];
            body.extend_from_slice(&(length as u32).to_be_bytes());
            body.extend((0..length).map(|_| rng.r#gen::<u8>()));
            if rng.gen_bool(0.3) {
                body.truncate(rng.gen_range(1..body.len()));
            }
            bodies.push(body);
        }
        for body in bodies {
            let request = http::Request::post(format!("http://{address}{path}"))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(Full::new(Bytes::from(body)))
                .expect("request");
            if let Ok(Ok(response)) =
                tokio::time::timeout(Duration::from_secs(5), client.request(request)).await
            {
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
                        .await;
            }
        }
    }
}

/// Random blobs and truncated copies of `valid`, each on its own connection.
async fn noise(address: SocketAddr, valid: &[u8], rng: &mut StdRng) {
    for _ in 0..25 {
        let length = rng.gen_range(1..4096);
        let blob: Vec<u8> = (0..length).map(|_| rng.r#gen::<u8>()).collect();
        throw(address, &blob).await;
    }
    for cut in 1..valid.len() {
        throw(address, &valid[..cut]).await;
    }
    // Valid bytes with one flipped.
    for _ in 0..10 {
        let mut flipped = valid.to_vec();
        let at = rng.gen_range(0..flipped.len());
        flipped[at] ^= 1 << rng.gen_range(0..8);
        throw(address, &flipped).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_truncated_bytes_on_the_rpc_ports_leave_every_server_serving() {
    within(async {
        let mut stack = Stack::start(StackOptions::default()).await;
        let shop = stack.open_shop(1, &[5]).await;
        let mut rng = StdRng::seed_from_u64(0x5eed_b00c);
        let account = stack.accounts[0].address();
        let warehouse = stack.warehouses[0].address();
        let payment = stack.payments[0].address();

        // Thrift: noise, truncated and bit-flipped pings, and two known decoder traps.
        noise(account, THRIFT_PING, &mut rng).await;
        #[rustfmt::skip]
        let traps: [&[u8]; 2] = [
            &[0, 0, 0, 12, 0x80, 1, 0, 1, 0x7f, 0xff, 0xff, 0xff, b'P', b'i', b'n', b'g'],
            &[0x7f, 0xff, 0xff, 0xff, 0x80, 1, 0, 1],
        ];
        for trap in traps {
            throw(account, trap).await;
        }
        thrift_ping(account).await;

        // gRPC: noise before and after the HTTP/2 preface, then well-framed garbage.
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
        for address in [warehouse, payment] {
            noise(address, preface, &mut rng).await;
        }
        grpc_garbage(
            warehouse,
            &[
                "/warehouse.WarehouseService/GetProduct",
                "/warehouse.WarehouseService/ReserveStock",
                "/warehouse.WarehouseService/SetStockAmount",
                "/grpc.health.v1.Health/Check",
                "/no.such.Service/Method",
            ],
            &mut rng,
        )
        .await;
        grpc_garbage(
            payment,
            &[
                "/payment.PaymentService/Settle",
                "/payment.PaymentService/GetPayment",
                "/grpc.health.v1.Health/Check",
            ],
            &mut rng,
        )
        .await;

        // Every process is up and serves the next client, end to end.
        for kind in [Kind::Account, Kind::Warehouse, Kind::Payment, Kind::Gateway] {
            assert!(stack.program(kind, 0).is_running(), "{kind:?} died");
        }
        thrift_ping(account).await;
        let rest = &stack.rest;
        rest.get("/restful/products", None).await.expect(200);
        let shopper = &shop.shoppers[0];
        rest.token(&shopper.username, &format!("{}-pw", shopper.username))
            .await;
        let payment = rest
            .settle(
                &shopper.token,
                &settlement(&[(shop.products[0], 1)]),
                Some("after-the-noise"),
            )
            .await
            .expect(200)
            .json();
        let pay_id = payment["payId"].as_str().expect("payId");
        rest.change_payment(&shopper.token, pay_id, "PAYED", Some("pay-after-the-noise"))
            .await
            .expect(200);
        stack.assert_all_final(Duration::from_secs(10)).await;
        stack.shut_down().await;
    })
    .await;
}

// ---- password guessing -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_slowed_down_without_locking_the_owner_out() {
    within(async {
        let stack = Stack::start(StackOptions {
            adjust_gateway: |config| {
                config.login_throttle.free_attempts = 3;
                config.login_throttle.base_delay_ms = 1_500;
                config.login_throttle.max_delay_ms = 3_000;
            },
            ..StackOptions::default()
        })
        .await;
        let owner = stack.rest.clone();
        owner.new_user("victim").await;
        // The attacker connects from another address (127.0.0.2 is loopback too).
        let attacker = Rest::from_local_address(
            stack.gateway.address(),
            Some("127.0.0.2".parse().expect("address")),
        );
        for guess in 0..3 {
            let reply = attacker
                .login("victim", &format!("guess{guess}"))
                .await
                .expect(400);
            assert_eq!(reply.json()["error"], "invalid_grant");
        }
        let refused = attacker.login("victim", "guess3").await.expect(429);
        assert_eq!(refused.json()["error"], "slow_down");
        let wait: u64 = refused.header("retry-after").parse().expect("Retry-After");
        assert!((1..=2).contains(&wait), "Retry-After {wait}");
        // Even the right password waits: the attacker learns nothing during the wait.
        attacker.login("victim", "victim-pw").await.expect(429);
        // The owner, elsewhere, is not locked out.
        owner.token("victim", "victim-pw").await;
        // Unknown users are slowed the same way, so the answer tells nothing about who exists.
        for guess in 0..3 {
            attacker
                .login("nobody-here", &format!("g{guess}"))
                .await
                .expect(400);
        }
        attacker.login("nobody-here", "g3").await.expect(429);

        // After the wait, the right password gets in (and clears the count).
        tokio::time::sleep(Duration::from_secs(wait)).await;
        attacker.token("victim", "victim-pw").await;
        attacker.login("victim", "wrong-again").await.expect(400);
        stack.shut_down().await;
    })
    .await;
}
