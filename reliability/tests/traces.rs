//! One trace per request across HTTP, Thrift and gRPC: the four real programs export their spans
//! over OTLP/HTTP to a receiver in the test, and a caller's W3C `traceparent` comes back as one
//! trace with spans from every program the request touched, each parented by the span that
//! called it. An owed warehouse call delivered by a restarted payment service is linked to the
//! payment that owed it.

use std::time::Duration;

use bytes::Bytes;
use gateway::testing::{Rest, settlement, token_query};
use http::Method;
use reliability::{
    otlp_receiver::{OtlpReceiver, ReceivedSpan, listing},
    programs::Kind,
    stack::{Stack, StackOptions},
};

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
/// How long the programs may take to export (they send a batch every second).
const EXPORTED_WITHIN: Duration = Duration::from_secs(20);

fn traceparent(trace_id: &str, parent: &str) -> String {
    format!("00-{trace_id}-{parent}-01")
}

/// The server span `service` recorded in `trace`, if any.
fn server_span<'a>(
    spans: &'a [ReceivedSpan],
    trace: &str,
    service: &str,
) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|span| span.trace_id == trace && span.service == service && span.kind == SERVER)
}

fn span_by_id<'a>(spans: &'a [ReceivedSpan], trace: &str, id: &str) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|span| span.trace_id == trace && span.span_id == id)
}

/// The server span `callee` recorded in `trace` is the child of a client span `caller`
/// recorded in the same trace.
fn called_by(spans: &[ReceivedSpan], trace: &str, callee: &str, caller: &str) -> bool {
    server_span(spans, trace, callee)
        .and_then(|server| span_by_id(spans, trace, &server.parent_span_id))
        .is_some_and(|client| client.service == caller && client.kind == CLIENT)
}

/// Settles one unit of `product`, sending `traceparent` when given; answers the payment's id.
async fn settle(rest: &Rest, token: &str, product: i64, traceparent: Option<&str>) -> String {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend(traceparent.map(|value| ("traceparent", value)));
    let body = settlement(&[(product, 1)]).to_string();
    let settled = rest
        .send(
            Method::POST,
            "/restful/settlements",
            Some(token),
            &headers,
            Some(Bytes::from(body)),
        )
        .await
        .expect(200);
    settled.json()["payId"].as_str().expect("payId").to_owned()
}

/// Pays `pay_id`, sending `traceparent`.
async fn pay(rest: &Rest, token: &str, pay_id: &str, traceparent: &str) {
    rest.send(
        Method::PATCH,
        &format!("/restful/pay/{pay_id}?state=PAYED"),
        Some(token),
        &[("traceparent", traceparent)],
        None,
    )
    .await
    .expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_one_trace_across_gateway_account_payment_and_warehouse() {
    let receiver = OtlpReceiver::start().await;
    let mut stack = Stack::start(StackOptions {
        otlp_endpoint: receiver.endpoint(),
        ..StackOptions::default()
    })
    .await;
    let shop = stack.open_shop(1, &[10, 10]).await;
    let shopper = &shop.shoppers[0];
    let password = format!("{}-pw", shopper.username);

    // A login: gateway → account over Thrift (TTHeader carries the context).
    let login_trace = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "b7ad6b7169203331";
    let grant = [
        ("grant_type", "password"),
        ("username", shopper.username.as_str()),
        ("password", password.as_str()),
    ];
    let login = stack
        .rest
        .send(
            Method::GET,
            &format!("/oauth/token?{}", token_query(&grant)),
            None,
            &[("traceparent", &traceparent(login_trace, caller_span))],
            None,
        )
        .await
        .expect(200);
    assert_eq!(
        login.header("x-request-id"),
        login_trace,
        "the request id is the trace id"
    );

    // A purchase: settle (gateway → payment → warehouse ReserveStock) and pay (gateway →
    // payment → warehouse CommitReservation), each in the caller's trace.
    let settle_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let pay_trace = "5a9e0c3f1b2d4e6f8a7b6c5d4e3f2a1b";
    let settled_in = traceparent(settle_trace, caller_span);
    let pay_id = settle(
        &stack.rest,
        &shopper.token,
        shop.products[0],
        Some(&settled_in),
    )
    .await;
    pay(
        &stack.rest,
        &shopper.token,
        &pay_id,
        &traceparent(pay_trace, caller_span),
    )
    .await;

    let spans = receiver
        .wait_for(
            EXPORTED_WITHIN,
            "complete login and purchase traces",
            |spans| {
                called_by(spans, login_trace, "account", "gateway")
                    && called_by(spans, settle_trace, "payment", "gateway")
                    && called_by(spans, settle_trace, "warehouse", "payment")
                    && called_by(spans, pay_trace, "payment", "gateway")
                    && called_by(spans, pay_trace, "warehouse", "payment")
            },
        )
        .await;
    for trace in [login_trace, settle_trace, pay_trace] {
        let gateway = server_span(&spans, trace, "gateway")
            .unwrap_or_else(|| panic!("no gateway span in trace {trace}:\n{}", listing(&spans)));
        assert_eq!(
            gateway.parent_span_id, caller_span,
            "the gateway's span is a child of the caller's"
        );
    }
    // Every span of those requests is in the caller's trace: no fragments elsewhere.
    let services_in = |trace: &str| {
        let mut services: Vec<_> = spans
            .iter()
            .filter(|span| span.trace_id == trace)
            .map(|span| span.service.as_str())
            .collect();
        services.sort_unstable();
        services.dedup();
        services
    };
    assert_eq!(
        services_in(settle_trace),
        ["gateway", "payment", "warehouse"]
    );
    assert_eq!(services_in(login_trace), ["account", "gateway"]);

    // An owed call delivered after a restart: the warehouse is down when the payment is paid,
    // so the commit waits in the outbox; a new payment process delivers it, in a trace of its
    // own linked to the paying request's.
    let pay_id = settle(&stack.rest, &shopper.token, shop.products[1], None).await;
    stack.terminate(Kind::Warehouse, 0).await;
    let owed_trace = "6b8f1d2e3c4a5b6c7d8e9f0a1b2c3d4e";
    pay(
        &stack.rest,
        &shopper.token,
        &pay_id,
        &traceparent(owed_trace, caller_span),
    )
    .await;
    stack.terminate(Kind::Payment, 0).await;
    stack.restart(Kind::Warehouse, 0).await;
    stack.restart(Kind::Payment, 0).await;

    // The first process's retries fail (the warehouse is down until it has gone), so the
    // delivery that reaches the warehouse is the new process's.
    let delivered = |spans: &[ReceivedSpan]| {
        spans
            .iter()
            .find(|span| {
                span.service == "payment"
                    && span.name == "outbox delivery"
                    && span.trace_id != owed_trace
                    && span.links.iter().any(|(trace, _)| trace == owed_trace)
                    && called_by(spans, &span.trace_id, "warehouse", "payment")
            })
            .cloned()
    };
    let spans = receiver
        .wait_for(
            Duration::from_secs(40),
            "a linked outbox delivery",
            |spans| delivered(spans).is_some(),
        )
        .await;
    let delivery = delivered(&spans).expect("delivery span");
    assert!(
        delivery.parent_span_id.is_empty(),
        "a delivery after a restart starts a trace of its own"
    );

    // A collector that has gone away costs the requests nothing: spans wait in a bounded queue
    // and are dropped, never waited for.
    drop(receiver);
    stack
        .rest
        .login(&shopper.username, &password)
        .await
        .expect(200);
    stack.rest.get("/restful/products", None).await.expect(200);

    // Still working afterwards, and the stock shows the committed sale.
    let (on_sale, frozen) = stack.rest.stock(&shop.admin, shop.products[1]).await;
    assert_eq!(
        (on_sale, frozen),
        (9, 0),
        "the owed commit was delivered once"
    );
    stack.shut_down().await;
}
