//! Settlement, pay, cancel, timeout, concurrency, balance and idempotency, with real payment and
//! warehouse servers talking gRPC, on SQLite and on PostgreSQL. Every scenario ends by checking
//! that stock and money are conserved.

#[macro_use]
mod common;

use std::time::Duration;

use common::{Backend, OPENING_BALANCE, SHIPPING_FEE, World, eventually};
use rpc_idl::payment::PayState;
use volo_grpc::Code;

on_both_backends!(
    settle_then_pay_moves_wallet_and_stock_exactly,
    settle_then_cancel_releases_the_stock,
    an_unpaid_payment_times_out_and_its_stock_returns,
    a_pay_after_the_window_is_refused_even_before_the_sweep,
    two_concurrent_pays_of_one_payment_give_one_success,
    insufficient_balance_changes_nothing,
    an_idempotency_key_replay_returns_the_first_answer,
    bad_requests_strangers_and_unknown_things_are_refused,
);

async fn settle_then_pay_moves_wallet_and_stock_exactly(backend: Backend) {
    let mut world = World::new(backend).await;
    let service = world.start_payment(world.payment_settings()).await;
    let book = world.product(4_990, 10).await;
    let pencil = world.product(10, 5).await;
    let user = world.user(7);

    let payment = world
        .settle(&service, &user, &[(book, 2), (pencil, 1), (book, 1)])
        .await;
    assert_eq!(payment.pay_state, PayState::WAITING);
    assert_eq!(payment.total_price_cents, 3 * 4_990 + 10 + SHIPPING_FEE);
    assert_eq!(payment.account_id, 7);
    assert_eq!(payment.expires_millis, 60_000);
    assert_eq!(
        payment.payment_link,
        format!("/pay/modify/{}?state=PAYED&accountId=7", payment.pay_id)
    );
    let created = payment.create_time.expect("create time");
    let expires = payment.expire_time.expect("expire time");
    assert_eq!(
        (expires.seconds - created.seconds) * 1_000
            + i64::from(expires.nanos - created.nanos) / 1_000_000,
        60_000
    );
    let lines: Vec<(i64, i64, i64)> = payment
        .items
        .iter()
        .map(|i| (i.product_id, i.amount, i.price_cents))
        .collect();
    assert_eq!(lines, [(book, 3, 4_990), (pencil, 1, 10)]);
    assert_eq!(world.stock_of(book).await, (7, 3));
    assert_eq!(world.stock_of(pencil).await, (4, 1));
    assert_eq!(service.wallet(&user).await.balance_cents, OPENING_BALANCE);

    let paid = service.pay(&user, &payment.pay_id).await.expect("pay");
    assert_eq!(paid.pay_state, PayState::PAYED);
    assert_eq!(paid.pay_id, payment.pay_id);
    let wallet = service.wallet(&user).await;
    assert_eq!(
        wallet.balance_cents,
        OPENING_BALANCE - payment.total_price_cents
    );
    assert_eq!(wallet.account_id, 7);
    // Paying delivers the commit before it answers when the warehouse is up.
    assert_eq!(world.stock_of(book).await, (7, 0));
    assert_eq!(world.stock_of(pencil).await, (4, 0));
    let read = service.get(&user, &payment.pay_id).await.expect("get");
    assert_eq!(read.pay_state, PayState::PAYED);

    for refused in [
        service.pay(&user, &payment.pay_id).await,
        service.cancel(&user, &payment.pay_id).await,
    ] {
        let status = refused.expect_err("a PAYED payment cannot change");
        assert_eq!(status.code(), Code::Aborted);
        assert!(status.message().contains("PAYED"), "{}", status.message());
    }
    assert_eq!(
        service.wallet(&user).await.balance_cents,
        OPENING_BALANCE - payment.total_price_cents
    );
    // One service token served every warehouse call.
    assert_eq!(world.tokens.requests(), 1);
    world.assert_conserved(&service, OPENING_BALANCE).await;
    service.stop().await;
}

async fn settle_then_cancel_releases_the_stock(backend: Backend) {
    let mut world = World::new(backend).await;
    let service = world.start_payment(world.payment_settings()).await;
    let book = world.product(2_500, 4).await;
    let user = world.user(8);

    let payment = world.settle(&service, &user, &[(book, 3)]).await;
    assert_eq!(world.stock_of(book).await, (1, 3));
    let cancelled = service
        .cancel(&user, &payment.pay_id)
        .await
        .expect("cancel");
    assert_eq!(cancelled.pay_state, PayState::CANCEL);
    assert_eq!(world.stock_of(book).await, (4, 0));
    assert_eq!(service.wallet(&user).await.balance_cents, OPENING_BALANCE);

    let status = service
        .pay(&user, &payment.pay_id)
        .await
        .expect_err("a cancelled payment cannot be paid");
    assert_eq!(status.code(), Code::Aborted);
    assert!(status.message().contains("CANCEL"), "{}", status.message());
    world.assert_conserved(&service, OPENING_BALANCE).await;
    service.stop().await;
}

async fn an_unpaid_payment_times_out_and_its_stock_returns(backend: Backend) {
    let mut world = World::new(backend).await;
    let mut settings = world.payment_settings();
    settings.payment.payment_window_ms = 1_000;
    settings.payment.expiry_sweep_interval_ms = 50;
    let service = world.start_payment(settings).await;
    let book = world.product(1_000, 5).await;
    let user = world.user(9);

    let payment = world.settle(&service, &user, &[(book, 2)]).await;
    assert_eq!(payment.expires_millis, 1_000);
    assert_eq!(world.stock_of(book).await, (3, 2));
    // Nothing reads the payment meanwhile: the sweeper alone must time it out and release.
    world.wait_for_stock(book, (5, 0)).await;
    let read = service.get(&user, &payment.pay_id).await.expect("get");
    assert_eq!(read.pay_state, PayState::TIMEOUT);

    let status = service
        .pay(&user, &payment.pay_id)
        .await
        .expect_err("a timed-out payment cannot be paid");
    assert_eq!(status.code(), Code::Aborted);
    assert!(status.message().contains("TIMEOUT"), "{}", status.message());
    assert_eq!(service.wallet(&user).await.balance_cents, OPENING_BALANCE);
    assert_eq!(
        world
            .outbox_count(&format!(
                "pay_id = '{}' AND action = 'RELEASE' AND status = 'DONE'",
                payment.pay_id
            ))
            .await,
        1
    );
    world.assert_conserved(&service, OPENING_BALANCE).await;
    service.stop().await;
}

async fn a_pay_after_the_window_is_refused_even_before_the_sweep(backend: Backend) {
    let mut world = World::new(backend).await;
    let mut settings = world.payment_settings();
    settings.payment.payment_window_ms = 300;
    // The sweeper runs once at start and then not again during this test.
    settings.payment.expiry_sweep_interval_ms = 600_000;
    let service = world.start_payment(settings).await;
    let book = world.product(1_000, 5).await;
    let user = world.user(10);

    let payment = world.settle(&service, &user, &[(book, 1)]).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    let status = service
        .pay(&user, &payment.pay_id)
        .await
        .expect_err("the window has closed");
    assert_eq!(status.code(), Code::Aborted);
    assert!(status.message().contains("TIMEOUT"), "{}", status.message());
    assert_eq!(service.wallet(&user).await.balance_cents, OPENING_BALANCE);
    // The refused pay timed the payment out itself and queued the release.
    world.wait_for_stock(book, (5, 0)).await;
    world.assert_conserved(&service, OPENING_BALANCE).await;
    service.stop().await;
}

async fn two_concurrent_pays_of_one_payment_give_one_success(backend: Backend) {
    let mut world = World::new(backend).await;
    let service = world.start_payment(world.payment_settings()).await;
    let book = world.product(3_000, 20).await;
    let user = world.user(11);

    for round in 0..3 {
        let payment = world.settle(&service, &user, &[(book, 2)]).await;
        let (a, b) = tokio::join!(
            service.pay(&user, &payment.pay_id),
            service.pay(&user, &payment.pay_id)
        );
        let results = [a, b];
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {results:?}");
        for result in &results {
            if let Err(status) = result {
                assert_eq!(status.code(), Code::Aborted, "{status:?}");
                assert!(status.message().contains("PAYED"), "{}", status.message());
            }
        }
        assert_eq!(
            world
                .outbox_count(&format!(
                    "pay_id = '{}' AND action = 'COMMIT'",
                    payment.pay_id
                ))
                .await,
            1
        );
    }
    // A pay racing a cancel: exactly one wins, and stock follows the winner.
    let payment = world.settle(&service, &user, &[(book, 4)]).await;
    let (paid, cancelled) = tokio::join!(
        service.pay(&user, &payment.pay_id),
        service.cancel(&user, &payment.pay_id)
    );
    assert!(
        paid.is_ok() != cancelled.is_ok(),
        "{paid:?} / {cancelled:?}"
    );
    let paid_total = 3 * (2 * 3_000 + SHIPPING_FEE)
        + if paid.is_ok() {
            payment.total_price_cents
        } else {
            0
        };
    assert_eq!(
        service.wallet(&user).await.balance_cents,
        OPENING_BALANCE - paid_total
    );
    world.assert_conserved(&service, OPENING_BALANCE).await;
    service.stop().await;
}

async fn insufficient_balance_changes_nothing(backend: Backend) {
    let mut world = World::new(backend).await;
    let opening = 2 * 5_000 + SHIPPING_FEE;
    let mut settings = world.payment_settings();
    settings.payment.opening_balance_cents = opening;
    let service = world.start_payment(settings).await;
    let book = world.product(5_000, 10).await;
    let user = world.user(12);

    let too_dear = world.settle(&service, &user, &[(book, 3)]).await;
    let status = service
        .pay(&user, &too_dear.pay_id)
        .await
        .expect_err("not enough money");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "insufficient balance");
    assert_eq!(service.wallet(&user).await.balance_cents, opening);
    assert_eq!(
        service
            .get(&user, &too_dear.pay_id)
            .await
            .expect("get")
            .pay_state,
        PayState::WAITING
    );
    assert_eq!(world.stock_of(book).await, (7, 3));

    // A balance exactly equal to the total is enough.
    let exact = world.settle(&service, &user, &[(book, 2)]).await;
    assert_eq!(exact.total_price_cents, opening);
    service.pay(&user, &exact.pay_id).await.expect("pay");
    assert_eq!(service.wallet(&user).await.balance_cents, 0);

    service
        .cancel(&user, &too_dear.pay_id)
        .await
        .expect("cancel");
    assert_eq!(world.stock_of(book).await, (8, 0));
    world.assert_conserved(&service, opening).await;
    service.stop().await;
}

async fn an_idempotency_key_replay_returns_the_first_answer(backend: Backend) {
    let mut world = World::new(backend).await;
    let service = world.start_payment(world.payment_settings()).await;
    let book = world.product(1_500, 10).await;
    let user = world.user(13);
    let other = world.user(14);

    let first = service
        .settle_with_key(&user, &[(book, 2)], "cart-1")
        .await
        .expect("settle");
    world.record(&first);
    let again = service
        .settle_with_key(&user, &[(book, 2)], "cart-1")
        .await
        .expect("replay");
    assert_eq!(again, first);
    assert_eq!(world.stock_of(book).await, (8, 2));

    // The same key for another request is refused; another caller's key is their own.
    let status = service
        .settle_with_key(&user, &[(book, 3)], "cart-1")
        .await
        .expect_err("a different request");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("idempotency_key"),
        "{}",
        status.message()
    );
    let others = service
        .settle_with_key(&other, &[(book, 1)], "cart-1")
        .await
        .expect("another caller");
    world.record(&others);
    assert_ne!(others.pay_id, first.pay_id);
    assert_eq!(world.stock_of(book).await, (7, 3));

    let paid = service
        .pay_with_key(&user, &first.pay_id, "pay-1")
        .await
        .expect("pay");
    let repaid = service
        .pay_with_key(&user, &first.pay_id, "pay-1")
        .await
        .expect("replayed pay");
    assert_eq!(repaid, paid);
    assert_eq!(
        service.wallet(&user).await.balance_cents,
        OPENING_BALANCE - first.total_price_cents
    );
    // The settlement key still answers with the first (WAITING) answer.
    let replayed = service
        .settle_with_key(&user, &[(book, 2)], "cart-1")
        .await
        .expect("replay");
    assert_eq!(replayed.pay_state, PayState::WAITING);

    let cancelled = service
        .cancel_with_key(&other, &others.pay_id, "cancel-1")
        .await
        .expect("cancel");
    assert_eq!(
        service
            .cancel_with_key(&other, &others.pay_id, "cancel-1")
            .await
            .expect("replayed cancel"),
        cancelled
    );

    // Two concurrent settlements with one key: one payment; the loser's reservation is undone.
    let cart = [(book, 4)];
    let (a, b) = tokio::join!(
        service.settle_with_key(&user, &cart, "cart-2"),
        service.settle_with_key(&user, &cart, "cart-2")
    );
    let (a, b) = (a.expect("settle"), b.expect("settle"));
    assert_eq!(a.pay_id, b.pay_id);
    world.record(&a);
    world.wait_for_stock(book, (4, 4)).await;

    let status = service
        .pay_with_key(&user, &a.pay_id, &"k".repeat(256))
        .await
        .expect_err("key too long");
    assert_eq!(status.code(), Code::InvalidArgument);
    world.assert_conserved(&service, OPENING_BALANCE).await;
    service.stop().await;
}

async fn bad_requests_strangers_and_unknown_things_are_refused(backend: Backend) {
    let mut world = World::new(backend).await;
    let service = world.start_payment(world.payment_settings()).await;
    let book = world.product(1_000, 2).await;
    let owner = world.user(15);
    let stranger = world.user(16);

    let anonymous = common::User {
        account_id: 0,
        meta: Default::default(),
    };
    let status = service
        .settle(&anonymous, &[(book, 1)])
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
    let forged = common::user(&platform::testing::TestKeys::new(), 15);
    let status = service
        .settle(&forged, &[(book, 1)])
        .await
        .expect_err("forged");
    assert_eq!(status.code(), Code::Unauthenticated);
    let service_caller = common::User {
        account_id: 0,
        meta: platform::rpc_metadata::CallMetadata {
            token: Some(world.keys.token(platform::testing::TestIdentity::Service)),
            request_id: None,
        },
    };
    let status = service
        .settle(&service_caller, &[(book, 1)])
        .await
        .expect_err("not a user");
    assert_eq!(status.code(), Code::PermissionDenied);

    // Every failed rule is listed.
    let request = rpc_idl::payment::SettleRequest {
        items: vec![rpc_idl::payment::SettlementItem {
            product_id: book,
            amount: 0,
        }],
        purchase: Some(rpc_idl::payment::Purchase {
            name: " ".into(),
            ..common::purchase()
        }),
        idempotency_key: "x".repeat(300).into(),
    };
    let status = service
        .client
        .settle(owner.meta.grpc_request(request))
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    for field in ["items[0].amount", "purchase.name", "idempotency_key"] {
        assert!(status.message().contains(field), "{}", status.message());
    }
    let status = service.settle(&owner, &[]).await.expect_err("empty cart");
    assert_eq!(status.message(), "items: must not be empty");

    let status = service
        .settle(&owner, &[(book, 1), (book + 1000, 1)])
        .await
        .expect_err("unknown product");
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().contains(&(book + 1000).to_string()),
        "{}",
        status.message()
    );
    let status = service
        .settle(&owner, &[(book, 3)])
        .await
        .expect_err("not enough stock");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains(&book.to_string()),
        "{}",
        status.message()
    );
    assert_eq!(world.stock_of(book).await, (2, 0));
    // A refused reservation leaves no pending release behind.
    eventually("no pending outbox rows", || async {
        (world.outbox_count("status = 'PENDING'").await == 0).then_some(())
    })
    .await;

    let payment = world.settle(&service, &owner, &[(book, 1)]).await;
    for status in [
        service
            .get(&stranger, &payment.pay_id)
            .await
            .expect_err("stranger"),
        service
            .pay(&stranger, &payment.pay_id)
            .await
            .expect_err("stranger"),
        service
            .cancel(&stranger, &payment.pay_id)
            .await
            .expect_err("stranger"),
    ] {
        assert_eq!(status.code(), Code::PermissionDenied);
    }
    assert_eq!(
        service.wallet(&stranger).await.balance_cents,
        OPENING_BALANCE
    );
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        service
            .pay(&owner, &unknown)
            .await
            .expect_err("unknown")
            .code(),
        Code::NotFound
    );
    assert_eq!(
        service
            .get(&owner, "not-a-payment")
            .await
            .expect_err("malformed")
            .code(),
        Code::InvalidArgument
    );
    // The pay id may be written in upper case.
    let read = service
        .get(&owner, &payment.pay_id.to_uppercase())
        .await
        .expect("get");
    assert_eq!(read.pay_id, payment.pay_id);
    world.assert_conserved(&service, OPENING_BALANCE).await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_rules_follow_live_configuration_but_invalid_updates_are_refused() {
    common::within_deadline(async {
        let mut world = World::new(Backend::Sqlite).await;
        let service = world.start_payment(world.payment_settings()).await;
        let book = world.product(1_000, 10).await;
        let user = world.user(17);

        // Invalid as a whole (a zero window), so the new fee does not apply either.
        service.reconfigure(|settings| {
            settings.payment.payment_window_ms = 0;
            settings.payment.shipping_fee_cents = 500;
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let payment = world.settle(&service, &user, &[(book, 1)]).await;
        assert_eq!(payment.expires_millis, 60_000);
        assert_eq!(payment.total_price_cents, 1_000 + SHIPPING_FEE);

        service.reconfigure(|settings| {
            settings.payment.payment_window_ms = 30_000;
            settings.payment.shipping_fee_cents = 500;
        });
        let started = tokio::time::Instant::now();
        let payment = loop {
            let payment = world.settle(&service, &user, &[(book, 1)]).await;
            if payment.expires_millis == 30_000 {
                break payment;
            }
            assert!(
                started.elapsed() < common::SETTLE_DEADLINE,
                "rules not applied"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        assert_eq!(payment.total_price_cents, 1_000 + 500);
        world.assert_conserved(&service, OPENING_BALANCE).await;
        service.stop().await;
    })
    .await;
}
