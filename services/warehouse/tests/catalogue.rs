//! Products, stock and advertisements through a real volo-grpc client: CRUD round trips,
//! validation, the authorization matrix and the demo catalogue, each on SQLite and PostgreSQL.

#[macro_use]
mod common;

use common::{assert_code, product_input, start, start_seeded};
use platform::{database::DatabaseConfig, rpc_metadata::CallMetadata};
use rpc_idl::warehouse::{
    CreateProductRequest, DeleteProductRequest, GetProductRequest, GetStockRequest,
    ListAdvertisementsRequest, ListProductsRequest, ReservationItem, ReservationRequest,
    ReserveStockRequest, SetStockAmountRequest, UpdateProductRequest,
};
use volo_grpc::Code;

on_both_backends!(
    crud_round_trips,
    validation_lists_every_failed_field,
    authorization_matrix,
    demo_catalogue_is_seeded_once_into_an_empty_database,
    an_unreadable_token_is_refused_not_taken_as_anonymous,
);

async fn crud_round_trips(database: DatabaseConfig) {
    let server = start(database).await;
    let admin = server.admin();
    assert!(server.products().await.is_empty(), "no seed was asked for");

    // Create: the answer carries the new ids, and a free book keeps its price of 0.
    let created = server
        .client
        .create_product(admin.grpc_request(CreateProductRequest {
            product: Some(product_input(
                "  Crafting Interpreters ",
                0,
                &[("Author", "Robert Nystrom"), ("Pages", "640")],
            )),
        }))
        .await
        .expect("create")
        .into_inner();
    assert!(created.id > 0);
    assert_eq!(created.title, "Crafting Interpreters", "title is trimmed");
    assert_eq!((created.price_cents, created.rate), (0, 8.5));
    assert_eq!(created.cover, "/static/cover/test.jpg");
    let specs: Vec<(&str, &str, i64)> = created
        .specifications
        .iter()
        .map(|s| (s.item.as_str(), s.value.as_str(), s.product_id))
        .collect();
    assert_eq!(
        specs,
        vec![
            ("Author", "Robert Nystrom", created.id),
            ("Pages", "640", created.id)
        ]
    );
    assert!(created.specifications.iter().all(|s| s.id > 0));
    assert_ne!(created.specifications[0].id, created.specifications[1].id);

    // What was saved reads back identically, alone and in the list.
    assert_eq!(server.product(created.id).await.expect("get"), created);
    let second = server.product_with_stock("Second Book", 2550, 0).await;
    let listed = server.products().await;
    assert_eq!(
        listed,
        vec![created.clone(), second.clone()],
        "ordered by id"
    );

    // A new product has an empty stock row; the admin sets the sellable amount.
    let stock = server.stock(created.id).await;
    assert_eq!(
        (stock.product_id, stock.amount, stock.frozen),
        (created.id, 0, 0)
    );
    let stock = server.set_stock(created.id, 7).await;
    assert_eq!((stock.amount, stock.frozen), (7, 0));
    assert_eq!(server.stock(created.id).await, stock);

    // Update replaces fields and specifications (the old specification rows are gone).
    let mut changed = product_input("Crafting Interpreters, 1st ed.", 3999, &[("ISBN", "978")]);
    changed.rate = 9.5;
    let updated = server
        .client
        .update_product(admin.grpc_request(UpdateProductRequest {
            id: created.id,
            product: Some(changed),
        }))
        .await
        .expect("update")
        .into_inner();
    assert_eq!(updated.id, created.id);
    assert_eq!(
        (updated.title.as_str(), updated.price_cents, updated.rate),
        ("Crafting Interpreters, 1st ed.", 3999, 9.5)
    );
    assert_eq!(updated.specifications.len(), 1);
    assert_eq!(updated.specifications[0].item, "ISBN");
    assert!(
        created
            .specifications
            .iter()
            .all(|old| old.id != updated.specifications[0].id)
    );
    assert_eq!(server.product(created.id).await.expect("get"), updated);
    assert_eq!(
        server.stock(created.id).await.amount,
        7,
        "update keeps stock"
    );
    assert_eq!(
        server.product(second.id).await.expect("get"),
        second,
        "other products are untouched"
    );

    // Unknown ids are NOT_FOUND for every operation.
    let unknown = updated.id + second.id + 1000;
    assert_code(server.product(unknown).await, Code::NotFound, "get unknown");
    let update_unknown = server
        .client
        .update_product(admin.grpc_request(UpdateProductRequest {
            id: unknown,
            product: Some(product_input("Ghost", 1, &[])),
        }))
        .await;
    assert_code(update_unknown, Code::NotFound, "update unknown");
    let stock_unknown = server
        .client
        .get_stock(admin.grpc_request(GetStockRequest {
            product_id: unknown,
        }))
        .await;
    assert_code(stock_unknown, Code::NotFound, "stock of unknown");
    let set_unknown = server
        .client
        .set_stock_amount(admin.grpc_request(SetStockAmountRequest {
            product_id: unknown,
            amount: 1,
        }))
        .await;
    assert_code(set_unknown, Code::NotFound, "set stock of unknown");

    // Delete takes the product, its specifications and its stock; a second delete finds nothing.
    server
        .client
        .delete_product(admin.grpc_request(DeleteProductRequest { id: created.id }))
        .await
        .expect("delete");
    assert_code(server.product(created.id).await, Code::NotFound, "deleted");
    let stock_gone = server
        .client
        .get_stock(admin.grpc_request(GetStockRequest {
            product_id: created.id,
        }))
        .await;
    assert_code(stock_gone, Code::NotFound, "stock of deleted");
    let again = server
        .client
        .delete_product(admin.grpc_request(DeleteProductRequest { id: created.id }))
        .await;
    assert_code(again, Code::NotFound, "second delete");
    assert_eq!(server.products().await, vec![second]);

    // Ids are never reused, so an id a payment remembers cannot come to name another product.
    let third = server.product_with_stock("Third Book", 100, 0).await;
    server
        .client
        .delete_product(admin.grpc_request(DeleteProductRequest { id: third.id }))
        .await
        .expect("delete the newest");
    let fourth = server.product_with_stock("Fourth Book", 100, 0).await;
    assert!(
        fourth.id > third.id,
        "{} reused after {}",
        fourth.id,
        third.id
    );

    server.stop().await;
}

async fn validation_lists_every_failed_field(database: DatabaseConfig) {
    let server = start(database).await;
    let (admin, service) = (server.admin(), server.service());
    let existing = server.product_with_stock("Existing", 100, 5).await;

    let mut bad = product_input(" ", -1, &[("", "x"), ("Pages", "  "), ("ok", "ok")]);
    bad.rate = 10.5;
    let create = server
        .client
        .create_product(admin.grpc_request(CreateProductRequest {
            product: Some(bad.clone()),
        }))
        .await;
    let status = assert_code(create, Code::InvalidArgument, "create invalid");
    assert_eq!(
        status.message(),
        "title: must not be empty; price_cents: must not be negative; \
         rate: must be between 0 and 10; specifications[0].item: must not be empty; \
         specifications[1].value: must not be empty"
    );

    let mut long = product_input(&"x".repeat(51), 0, &[]);
    long.rate = f64::NAN;
    let create = server
        .client
        .create_product(admin.grpc_request(CreateProductRequest {
            product: Some(long),
        }))
        .await;
    let status = assert_code(create, Code::InvalidArgument, "too long, NaN rate");
    assert_eq!(
        status.message(),
        "title: must be at most 50 characters (got 51); rate: must be between 0 and 10"
    );

    // NUL cannot be stored in PostgreSQL text: refused up front as bad input, not a failure.
    let mut nul = product_input("Null\0Title", 100, &[("Item", "va\0lue")]);
    nul.description = "<p>\0</p>".into();
    let create = server
        .client
        .create_product(admin.grpc_request(CreateProductRequest { product: Some(nul) }))
        .await;
    let status = assert_code(create, Code::InvalidArgument, "NUL characters");
    assert_eq!(
        status.message(),
        "title: must not contain control characters; \
         description: must not contain NUL characters; \
         specifications[0].value: must not contain control characters"
    );

    let missing = server
        .client
        .create_product(admin.grpc_request(CreateProductRequest { product: None }))
        .await;
    let status = assert_code(missing, Code::InvalidArgument, "no product");
    assert_eq!(status.message(), "product: is required");

    let update = server
        .client
        .update_product(admin.grpc_request(UpdateProductRequest {
            id: 0,
            product: Some(bad),
        }))
        .await;
    let status = assert_code(update, Code::InvalidArgument, "update invalid");
    assert!(
        status.message().starts_with(
            "id: must be a positive product id; title: must not be empty; price_cents:"
        ),
        "{}",
        status.message()
    );

    let set = server
        .client
        .set_stock_amount(admin.grpc_request(SetStockAmountRequest {
            product_id: -3,
            amount: -1,
        }))
        .await;
    let status = assert_code(set, Code::InvalidArgument, "set stock invalid");
    assert_eq!(
        status.message(),
        "product_id: must be a positive product id; amount: must not be negative"
    );
    let set = server
        .client
        .set_stock_amount(admin.grpc_request(SetStockAmountRequest {
            product_id: existing.id,
            amount: -1,
        }))
        .await;
    assert_code(set, Code::InvalidArgument, "negative amount");

    let get = server
        .client
        .get_product(admin.grpc_request(GetProductRequest { id: 0 }))
        .await;
    let status = assert_code(get, Code::InvalidArgument, "get id 0");
    assert_eq!(status.message(), "id: must be a positive product id");

    let reserve = server
        .client
        .reserve_stock(service.grpc_request(ReserveStockRequest {
            payment_id: "has space".into(),
            items: vec![
                ReservationItem {
                    product_id: 0,
                    amount: 1,
                },
                ReservationItem {
                    product_id: existing.id,
                    amount: 0,
                },
            ],
        }))
        .await;
    let status = assert_code(reserve, Code::InvalidArgument, "reserve invalid");
    assert_eq!(
        status.message(),
        "payment_id: must not contain whitespace or control characters; \
         items[0].product_id: must be a positive product id; items[1].amount: must be at least 1"
    );
    let reserve = server
        .client
        .reserve_stock(service.grpc_request(ReserveStockRequest {
            payment_id: "".into(),
            items: vec![],
        }))
        .await;
    let status = assert_code(reserve, Code::InvalidArgument, "reserve empty");
    assert_eq!(
        status.message(),
        "payment_id: must not be empty; items: must not be empty"
    );
    let commit = server
        .client
        .commit_reservation(service.grpc_request(ReservationRequest {
            payment_id: "x".repeat(65).into(),
        }))
        .await;
    let status = assert_code(commit, Code::InvalidArgument, "commit long id");
    assert_eq!(
        status.message(),
        "payment_id: must be at most 64 characters"
    );

    // Nothing was written by any refused call.
    assert_eq!(server.products().await, vec![existing.clone()]);
    let stock = server.stock(existing.id).await;
    assert_eq!((stock.amount, stock.frozen), (5, 0));
    server.stop().await;
}

/// Every operation under every kind of caller. Refused writes must change nothing.
async fn authorization_matrix(database: DatabaseConfig) {
    let server = start(database).await;
    let product = server.product_with_stock("Guarded", 1000, 10).await;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Rule {
        Public,
        Admin,
        Service,
    }
    let callers: [(&str, CallMetadata); 7] = [
        ("anonymous", server.anonymous()),
        ("user", server.user()),
        ("admin", server.admin()),
        ("service", server.service()),
        ("expired admin", server.expired_admin()),
        ("forged admin", server.forged_admin()),
        (
            "garbage token",
            CallMetadata {
                token: Some("not.a.jwt".into()),
                ..CallMetadata::default()
            },
        ),
    ];
    let expected = |caller: &str, rule: Rule| -> Code {
        match (caller, rule) {
            ("expired admin" | "forged admin" | "garbage token", _) => Code::Unauthenticated,
            (_, Rule::Public) => Code::Ok,
            ("anonymous", _) => Code::Unauthenticated,
            ("admin", Rule::Admin) | ("service", Rule::Service) => Code::Ok,
            _ => Code::PermissionDenied,
        }
    };

    for (name, who) in &callers {
        let client = &server.client;
        // Writes carry invalid input, so an admitted call answers INVALID_ARGUMENT and changes
        // nothing, and every cell of the matrix runs against the same data.
        let bad_product = || Some(product_input("", -1, &[]));
        // (method, who may call it, the code an admitted caller gets, the code this one got)
        let outcomes: Vec<(&str, Rule, Code, Code)> = vec![
            (
                "ListProducts",
                Rule::Public,
                Code::Ok,
                code(
                    client
                        .list_products(who.grpc_request(ListProductsRequest {}))
                        .await,
                ),
            ),
            (
                "GetProduct",
                Rule::Public,
                Code::Ok,
                code(
                    client
                        .get_product(who.grpc_request(GetProductRequest { id: product.id }))
                        .await,
                ),
            ),
            (
                "ListAdvertisements",
                Rule::Public,
                Code::Ok,
                code(
                    client
                        .list_advertisements(who.grpc_request(ListAdvertisementsRequest {}))
                        .await,
                ),
            ),
            (
                "CreateProduct",
                Rule::Admin,
                Code::InvalidArgument,
                code(
                    client
                        .create_product(who.grpc_request(CreateProductRequest {
                            product: bad_product(),
                        }))
                        .await,
                ),
            ),
            (
                "UpdateProduct",
                Rule::Admin,
                Code::InvalidArgument,
                code(
                    client
                        .update_product(who.grpc_request(UpdateProductRequest {
                            id: product.id,
                            product: bad_product(),
                        }))
                        .await,
                ),
            ),
            (
                "DeleteProduct",
                Rule::Admin,
                Code::InvalidArgument,
                code(
                    client
                        .delete_product(who.grpc_request(DeleteProductRequest { id: 0 }))
                        .await,
                ),
            ),
            (
                "GetStock",
                Rule::Admin,
                Code::Ok,
                code(
                    client
                        .get_stock(who.grpc_request(GetStockRequest {
                            product_id: product.id,
                        }))
                        .await,
                ),
            ),
            (
                "SetStockAmount",
                Rule::Admin,
                Code::InvalidArgument,
                code(
                    client
                        .set_stock_amount(who.grpc_request(SetStockAmountRequest {
                            product_id: product.id,
                            amount: -1,
                        }))
                        .await,
                ),
            ),
            (
                "ReserveStock",
                Rule::Service,
                Code::InvalidArgument,
                code(
                    client
                        .reserve_stock(who.grpc_request(ReserveStockRequest {
                            payment_id: "".into(),
                            items: vec![],
                        }))
                        .await,
                ),
            ),
            (
                "CommitReservation",
                Rule::Service,
                Code::InvalidArgument,
                code(
                    client
                        .commit_reservation(who.grpc_request(ReservationRequest {
                            payment_id: "".into(),
                        }))
                        .await,
                ),
            ),
            (
                "ReleaseReservation",
                Rule::Service,
                Code::InvalidArgument,
                code(
                    client
                        .release_reservation(who.grpc_request(ReservationRequest {
                            payment_id: "".into(),
                        }))
                        .await,
                ),
            ),
        ];
        for (method, rule, admitted, got) in outcomes {
            let want = match expected(name, rule) {
                Code::Ok => admitted,
                refused => refused,
            };
            assert_eq!(got, want, "{method} as {name}");
        }
    }

    // Real writes by the wrong callers change nothing.
    for who in [server.anonymous(), server.user(), server.service()] {
        let set = server
            .client
            .set_stock_amount(who.grpc_request(SetStockAmountRequest {
                product_id: product.id,
                amount: 999,
            }))
            .await;
        assert!(set.is_err());
        let delete = server
            .client
            .delete_product(who.grpc_request(DeleteProductRequest { id: product.id }))
            .await;
        assert!(delete.is_err());
    }
    for who in [server.anonymous(), server.user(), server.admin()] {
        let reserve = server
            .client
            .reserve_stock(who.grpc_request(ReserveStockRequest {
                payment_id: "sneaky".into(),
                items: vec![ReservationItem {
                    product_id: product.id,
                    amount: 1,
                }],
            }))
            .await;
        assert!(reserve.is_err());
    }
    let stock = server.stock(product.id).await;
    assert_eq!((stock.amount, stock.frozen), (10, 0));
    assert_eq!(
        server.product(product.id).await.expect("still there"),
        product
    );
    server.stop().await;
}

fn code<T>(result: Result<T, volo_grpc::Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

async fn demo_catalogue_is_seeded_once_into_an_empty_database(database: DatabaseConfig) {
    // Seeding switched off: the database stays empty.
    let server = start_seeded(database.clone(), false).await;
    assert!(server.products().await.is_empty());
    server.stop().await;

    // Switched on, into an empty database: books, specifications, images, stock, banners.
    let server = start_seeded(database.clone(), true).await;
    let products = server.products().await;
    assert!(products.len() >= 8, "{} demo products", products.len());
    for product in &products {
        assert!(!product.title.is_empty());
        assert!(!product.specifications.is_empty(), "{}", product.title);
        assert!(
            product.cover.starts_with("/static/cover/"),
            "{}",
            product.cover
        );
        assert!(
            product.detail.starts_with("/static/desc/"),
            "{}",
            product.detail
        );
        assert!((0.0..=10.0).contains(&product.rate));
        assert!(
            server.stock(product.id).await.amount > 0,
            "{}",
            product.title
        );
    }
    let ads = server
        .client
        .list_advertisements(
            server
                .anonymous()
                .grpc_request(ListAdvertisementsRequest {}),
        )
        .await
        .expect("ads")
        .into_inner()
        .advertisements;
    assert_eq!(ads.len(), 3);
    for ad in &ads {
        assert!(ad.image.starts_with("/static/carousel/"), "{}", ad.image);
        assert!(products.iter().any(|p| p.id == ad.product_id));
    }

    // Deleting an advertised product takes its advertisement with it.
    let advertised = ads[0].product_id;
    server
        .client
        .delete_product(
            server
                .admin()
                .grpc_request(DeleteProductRequest { id: advertised }),
        )
        .await
        .expect("delete advertised product");
    let remaining = server
        .client
        .list_advertisements(
            server
                .anonymous()
                .grpc_request(ListAdvertisementsRequest {}),
        )
        .await
        .expect("ads")
        .into_inner()
        .advertisements;
    assert_eq!(remaining, ads[1..].to_vec());
    let after_delete = server.products().await;
    server.stop().await;

    // A restart seeds nothing again, not even after the catalogue was changed.
    let server = start_seeded(database, true).await;
    assert_eq!(server.products().await, after_delete);
    server.stop().await;
}

/// A public call may be anonymous, but a token that is sent must verify: one in another scheme,
/// empty, or not text at all is refused rather than ignored.
async fn an_unreadable_token_is_refused_not_taken_as_anonymous(database: DatabaseConfig) {
    let server = start(database).await;
    let token = server.admin().token.expect("token");
    let values = [
        format!("Basic {token}"),
        "Bearer".to_owned(),
        "garbage".to_owned(),
    ];
    for value in values {
        let mut request = volo_grpc::Request::new(ListProductsRequest {});
        request
            .metadata_mut()
            .insert("authorization", value.parse().expect("ASCII"));
        assert_code(
            server.client.list_products(request).await,
            Code::Unauthenticated,
            &value,
        );
    }
    // The bare JWT, without a scheme, is read.
    let mut request = volo_grpc::Request::new(ListProductsRequest {});
    request
        .metadata_mut()
        .insert("authorization", token.parse().expect("ASCII"));
    server
        .client
        .list_products(request)
        .await
        .expect("a bare JWT is accepted");
    server.stop().await;
}
