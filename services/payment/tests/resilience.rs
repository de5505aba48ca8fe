//! Nothing is lost or done twice across the two services: a warehouse that is down during a pay,
//! a payment process stopped between its local change and the warehouse call, a restart after a
//! payment's window closed, a reservation whose answer never came, and two payment replicas
//! sweeping one database. Real servers, real gRPC, SQLite and PostgreSQL.

#[macro_use]
mod common;

use std::time::Duration;

use common::{Backend, OPENING_BALANCE, World, eventually};
use rpc_idl::payment::PayState;
use volo_grpc::Code;

on_both_backends!(
    a_pay_while_the_warehouse_is_down_commits_once_it_is_back,
    a_payment_process_stopped_between_steps_finishes_after_restart,
    expiry_survives_a_restart,
    a_reservation_whose_answer_is_lost_is_released,
    a_settlement_is_one_warehouse_call_priced_by_its_reservation,
    two_payment_instances_time_each_payment_out_exactly_once,
    settlements_go_through_while_one_of_two_warehouse_replicas_is_gone,
);

async fn a_pay_while_the_warehouse_is_down_commits_once_it_is_back(backend: Backend) {
    let mut world = World::new(backend).await;
    let service = world.start_payment(world.payment_settings()).await;
    let book = world.product(2_000, 6).await;
    let user = world.user(21);
    let payment = world.settle(&service, &user, &[(book, 2)]).await;
    assert_eq!(world.stock_of(book).await, (4, 2));

    world.stop_warehouse().await;
    let paid = service
        .pay(&user, &payment.pay_id)
        .await
        .expect("paying needs only the local database");
    assert_eq!(paid.pay_state, PayState::PAYED);
    assert_eq!(
        service.wallet(&user).await.balance_cents,
        OPENING_BALANCE - payment.total_price_cents
    );
    // The commit is owed, and retried while the warehouse is away.
    let pending = format!(
        "pay_id = '{}' AND action = 'COMMIT' AND status = 'PENDING'",
        payment.pay_id
    );
    eventually("the commit to be retried", || async {
        (world
            .outbox_count(&format!("{pending} AND attempts >= 2"))
            .await
            == 1)
            .then_some(())
    })
    .await;

    // The warehouse comes back elsewhere; the payment service learns the new address live.
    let address = world.start_warehouse().await;
    service.point_at_warehouse(address);
    world.wait_for_stock(book, (4, 0)).await;
    // The warehouse has committed; the payment service records the call as done once its
    // answer is back, a moment later.
    let done = format!(
        "pay_id = '{}' AND action = 'COMMIT' AND status = 'DONE'",
        payment.pay_id
    );
    eventually("the commit to be recorded as done", || async {
        (world.outbox_count(&done).await == 1).then_some(())
    })
    .await;
    world.assert_conserved(&service, OPENING_BALANCE).await;
    service.stop().await;
}

async fn a_payment_process_stopped_between_steps_finishes_after_restart(backend: Backend) {
    let mut world = World::new(backend).await;
    let first = world.start_payment(world.payment_settings()).await;
    let book = world.product(1_000, 10).await;
    let user = world.user(22);
    let to_pay = world.settle(&first, &user, &[(book, 3)]).await;
    let to_cancel = world.settle(&first, &user, &[(book, 2)]).await;
    assert_eq!(world.stock_of(book).await, (5, 5));

    // The local changes commit, but the warehouse calls cannot be made: then the process stops.
    world.stop_warehouse().await;
    first.pay(&user, &to_pay.pay_id).await.expect("pay");
    first
        .cancel(&user, &to_cancel.pay_id)
        .await
        .expect("cancel");
    first.stop().await;
    assert_eq!(world.outbox_count("status = 'PENDING'").await, 2);

    let address = world.start_warehouse().await;
    assert_eq!(world.stock_of(book).await, (5, 5));
    let mut settings = world.payment_settings();
    settings.warehouse.hostport = vec![address.to_string()];
    let second = world.start_payment(settings).await;
    // The new process delivers what the old one owed: 3 sold, 2 back on sale.
    world.wait_for_stock(book, (7, 0)).await;
    assert_eq!(
        second
            .get(&user, &to_pay.pay_id)
            .await
            .expect("get")
            .pay_state,
        PayState::PAYED
    );
    assert_eq!(
        second
            .get(&user, &to_cancel.pay_id)
            .await
            .expect("get")
            .pay_state,
        PayState::CANCEL
    );
    assert_eq!(
        second.wallet(&user).await.balance_cents,
        OPENING_BALANCE - to_pay.total_price_cents
    );
    assert_eq!(world.outbox_count("status = 'DONE'").await, 2);
    world.assert_conserved(&second, OPENING_BALANCE).await;
    second.stop().await;
}

async fn expiry_survives_a_restart(backend: Backend) {
    let mut world = World::new(backend).await;
    let mut settings = world.payment_settings();
    settings.payment.payment_window_ms = 500;
    // This instance sweeps once, at start, and then never again.
    settings.payment.expiry_sweep_interval_ms = 600_000;
    let first = world.start_payment(settings).await;
    let book = world.product(1_000, 4).await;
    let user = world.user(23);
    let payment = world.settle(&first, &user, &[(book, 4)]).await;
    first.stop().await;
    // The window closes while no payment process runs.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(world.stock_of(book).await, (0, 4));

    let second = world.start_payment(world.payment_settings()).await;
    world.wait_for_stock(book, (4, 0)).await;
    let read = second.get(&user, &payment.pay_id).await.expect("get");
    assert_eq!(read.pay_state, PayState::TIMEOUT);
    world.assert_conserved(&second, OPENING_BALANCE).await;
    second.stop().await;
}

async fn a_reservation_whose_answer_is_lost_is_released(backend: Backend) {
    let mut world = World::new(backend).await;
    let book = world.product(1_000, 3).await;
    let user = world.user(24);
    let rpc_timeout = Duration::from_millis(1_000);
    let proxy = lossy::start(world.warehouse_address(), rpc_timeout * 2).await;
    let mut settings = world.payment_settings();
    settings.warehouse.hostport = vec![proxy.address.to_string()];
    settings.warehouse.rpc_timeout_ms = 1_000;
    settings.payment.reservation_guard_ms = 2_500;
    let service = world.start_payment(settings).await;

    // The reservation is made, but its answer arrives after the deadline.
    let status = service
        .settle(&user, &[(book, 2)])
        .await
        .expect_err("the reserve call's answer is lost");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(world.stock_of(book).await, (1, 2));
    assert_eq!(
        world
            .outbox_count("action = 'RELEASE' AND status = 'PENDING'")
            .await,
        1
    );

    // No payment exists for it, so the guard releases it once it is due.
    world.wait_for_stock(book, (3, 0)).await;
    eventually("the release to be recorded as done", || async {
        (world
            .outbox_count("action = 'RELEASE' AND status = 'DONE'")
            .await
            == 1)
            .then_some(())
    })
    .await;
    world.assert_conserved(&service, OPENING_BALANCE).await;
    service.stop().await;
    proxy.stop.cancel();
}

async fn a_settlement_is_one_warehouse_call_priced_by_its_reservation(backend: Backend) {
    let mut world = World::new(backend).await;
    let book = world.product(4_990, 5).await;
    let pencil = world.product(10, 5).await;
    let user = world.user(25);
    let proxy = lossy::start(world.warehouse_address(), Duration::ZERO).await;
    let mut settings = world.payment_settings();
    settings.warehouse.hostport = vec![proxy.address.to_string()];
    let service = world.start_payment(settings).await;

    let payment = world
        .settle(&service, &user, &[(book, 2), (pencil, 1)])
        .await;
    assert_eq!(
        payment.total_price_cents,
        2 * 4_990 + 10 + common::SHIPPING_FEE
    );
    let calls = |i: usize| proxy.calls[i].load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        (calls(0), calls(1)),
        (0, 1),
        "(GetProduct, ReserveStock) calls for one settlement"
    );
    world.assert_conserved(&service, OPENING_BALANCE).await;
    service.stop().await;
    proxy.stop.cancel();
}

/// A warehouse stand-in that forwards every call to the real warehouse but answers
/// `ReserveStock` only after `delay`, after the reservation was made: a lost answer.
mod lossy {
    use std::{
        net::SocketAddr,
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        time::Duration,
    };

    use platform::{
        configuration::ServerConfig, rpc_metadata::CallMetadata, serve::ServerTask,
        shutdown::CancellationToken,
    };
    use rpc_idl::warehouse::*;
    use volo_grpc::{
        Request, Response, Status,
        server::{Server, ServiceBuilder},
    };

    pub struct Proxy {
        pub address: SocketAddr,
        pub stop: CancellationToken,
        /// Calls forwarded so far: `GetProduct`, `ReserveStock`.
        pub calls: Arc<[AtomicUsize; 2]>,
    }

    pub async fn start(warehouse: SocketAddr, delay: Duration) -> Proxy {
        let server_config = ServerConfig {
            drain_seconds: 1,
            ..ServerConfig::with_listen("127.0.0.1:0")
        };
        let listener = tokio::net::TcpListener::bind(&server_config.listen)
            .await
            .expect("bind");
        let stop = CancellationToken::new();
        let calls = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let forward = Forward {
            client: WarehouseServiceClientBuilder::new("warehouse")
                .address(warehouse)
                .build(),
            delay,
            calls: calls.clone(),
        };
        let server = Server::new()
            .add_service(ServiceBuilder::new(WarehouseServiceServer::new(forward)).build());
        let task = ServerTask::new(
            "lossy warehouse",
            listener,
            &server_config,
            stop.clone(),
            || {},
            |incoming, shutdown| server.run_with_shutdown(incoming, shutdown),
        )
        .expect("server");
        let address = task.address();
        tokio::spawn(task.run());
        Proxy {
            address,
            stop,
            calls,
        }
    }

    struct Forward {
        client: WarehouseServiceClient,
        delay: Duration,
        calls: Arc<[AtomicUsize; 2]>,
    }

    fn unused() -> Status {
        Status::unimplemented("not forwarded")
    }

    impl WarehouseService for Forward {
        async fn get_product(
            &self,
            req: Request<GetProductRequest>,
        ) -> Result<Response<Product>, Status> {
            self.calls[0].fetch_add(1, Ordering::SeqCst);
            let meta = CallMetadata::from_grpc(&req);
            self.client
                .get_product(meta.grpc_request(req.into_inner()))
                .await
        }
        async fn reserve_stock(
            &self,
            req: Request<ReserveStockRequest>,
        ) -> Result<Response<Reservation>, Status> {
            self.calls[1].fetch_add(1, Ordering::SeqCst);
            let meta = CallMetadata::from_grpc(&req);
            let answer = self
                .client
                .reserve_stock(meta.grpc_request(req.into_inner()))
                .await;
            tokio::time::sleep(self.delay).await;
            answer
        }
        async fn commit_reservation(
            &self,
            req: Request<ReservationRequest>,
        ) -> Result<Response<Reservation>, Status> {
            let meta = CallMetadata::from_grpc(&req);
            self.client
                .commit_reservation(meta.grpc_request(req.into_inner()))
                .await
        }
        async fn release_reservation(
            &self,
            req: Request<ReservationRequest>,
        ) -> Result<Response<Reservation>, Status> {
            let meta = CallMetadata::from_grpc(&req);
            self.client
                .release_reservation(meta.grpc_request(req.into_inner()))
                .await
        }
        async fn list_products(
            &self,
            _: Request<ListProductsRequest>,
        ) -> Result<Response<ListProductsResponse>, Status> {
            Err(unused())
        }
        async fn create_product(
            &self,
            _: Request<CreateProductRequest>,
        ) -> Result<Response<Product>, Status> {
            Err(unused())
        }
        async fn update_product(
            &self,
            _: Request<UpdateProductRequest>,
        ) -> Result<Response<Product>, Status> {
            Err(unused())
        }
        async fn delete_product(
            &self,
            _: Request<DeleteProductRequest>,
        ) -> Result<Response<DeleteProductResponse>, Status> {
            Err(unused())
        }
        async fn get_stock(&self, _: Request<GetStockRequest>) -> Result<Response<Stock>, Status> {
            Err(unused())
        }
        async fn set_stock_amount(
            &self,
            _: Request<SetStockAmountRequest>,
        ) -> Result<Response<Stock>, Status> {
            Err(unused())
        }
        async fn list_advertisements(
            &self,
            _: Request<ListAdvertisementsRequest>,
        ) -> Result<Response<ListAdvertisementsResponse>, Status> {
            Err(unused())
        }
    }
}

async fn two_payment_instances_time_each_payment_out_exactly_once(backend: Backend) {
    const PAYMENTS: i64 = 24;
    let mut world = World::new(backend).await;
    let mut settings = world.payment_settings();
    settings.payment.payment_window_ms = 400;
    settings.payment.expiry_sweep_interval_ms = 5;
    let a = world.start_payment(settings.clone()).await;
    let b = world.start_payment(settings).await;
    let books = [world.product(700, 50).await, world.product(900, 50).await];
    let user = world.user(25);

    let mut ids = Vec::new();
    for i in 0..PAYMENTS {
        let service = if i % 2 == 0 { &a } else { &b };
        let book = books[(i % 2) as usize];
        let payment = world.settle(service, &user, &[(book, 1 + i % 3)]).await;
        ids.push(payment.pay_id.to_string());
    }
    for book in books {
        world.wait_for_stock(book, (50, 0)).await;
    }
    for pay_id in &ids {
        assert_eq!(
            a.get(&user, pay_id).await.expect("get").pay_state,
            PayState::TIMEOUT
        );
        // One TIMEOUT transition means one release queued, however many sweepers raced.
        assert_eq!(
            world
                .outbox_count(&format!("pay_id = '{pay_id}' AND action = 'RELEASE'"))
                .await,
            1,
            "payment {pay_id}"
        );
    }
    assert_eq!(world.outbox_count("action = 'RELEASE'").await, PAYMENTS);
    world.assert_conserved(&a, OPENING_BALANCE).await;
    a.stop().await;
    b.stop().await;
}

/// A replica that has just gone away stays in discovery until the next DNS refresh; meanwhile
/// the price lookups and reservations the balancer sends it are asked again of the others.
async fn settlements_go_through_while_one_of_two_warehouse_replicas_is_gone(backend: Backend) {
    let mut world = World::new(backend).await;
    let gone = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    };
    // The listener is closed: connections to `gone` are refused.
    let mut settings = world.payment_settings();
    settings.warehouse.hostport.insert(0, gone.to_string());
    let service = world.start_payment(settings).await;
    let book = world.product(1_000, 20).await;
    let user = world.user(31);
    for _ in 0..10 {
        world.settle(&service, &user, &[(book, 1)]).await;
    }
    assert_eq!(world.stock_of(book).await, (10, 10));
}
