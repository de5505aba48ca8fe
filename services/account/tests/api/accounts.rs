//! Registration, lookup and update round trips, and the seeded administrator.

use account::configuration::DEVELOPMENT_ADMIN_PASSWORD;
use rpc_idl::account::*;

use crate::common::*;

crate::on_both_backends!(
    a_registration_round_trips_through_every_lookup,
    optional_fields_may_be_absent_or_empty,
    an_update_round_trips_and_replaces_the_profile,
    an_update_without_a_password_keeps_the_old_one,
    the_administrator_is_seeded_once_into_an_empty_database,
    every_method_answers_without_the_password_hash,
);

fn full_registration() -> CreateAccountRequest {
    CreateAccountRequest {
        username: "Alice.B-1_x".into(),
        password: PASSWORD.into(),
        name: "Alice B".into(),
        avatar: Some("/static/avatar/alice.png".into()),
        telephone: Some("13800138000".into()),
        email: Some("Alice@Example.com".into()),
        location: Some("Zhuhai".into()),
    }
}

async fn a_registration_round_trips_through_every_lookup(server: TestServer) {
    let created = expect_ok(server.create(full_registration()).await);
    assert!(created.id > 0);
    assert_eq!(
        created,
        Account {
            id: created.id,
            username: "alice.b-1_x".into(),
            name: "Alice B".into(),
            avatar: "/static/avatar/alice.png".into(),
            telephone: "13800138000".into(),
            email: "Alice@Example.com".into(),
            location: "Zhuhai".into(),
            roles: vec!["ROLE_USER".into()],
        }
    );

    let owner = server.owner(&created);
    let by_name = expect_ok(server.get_by_username(owner.clone(), "alice.b-1_x").await);
    let by_other_case = expect_ok(server.get_by_username(owner.clone(), "ALICE.b-1_X").await);
    let by_id = expect_ok(server.get_by_id(owner, created.id).await);
    let by_admin = expect_ok(server.get_by_username(server.admin(), "Alice.B-1_x").await);
    for read in [by_name, by_other_case, by_id, by_admin] {
        assert_eq!(read, created);
    }

    let second = server.register("bob").await;
    assert_ne!(second.id, created.id);
    assert_eq!(server.current(created.id).await, created);
}

async fn optional_fields_may_be_absent_or_empty(server: TestServer) {
    let absent = server.register("absent").await;
    let empty = expect_ok(
        server
            .create(CreateAccountRequest {
                avatar: Some("".into()),
                telephone: Some("".into()),
                email: Some("".into()),
                location: Some("".into()),
                ..registration("empty")
            })
            .await,
    );
    for account in [&absent, &empty] {
        assert_eq!(
            (
                account.avatar.as_str(),
                account.telephone.as_str(),
                account.email.as_str(),
                account.location.as_str()
            ),
            ("", "", "", "")
        );
    }
    // A third without e-mail or telephone: absent values never clash with each other.
    server.register("third").await;
}

async fn an_update_round_trips_and_replaces_the_profile(server: TestServer) {
    let created = expect_ok(server.create(full_registration()).await);
    let owner = server.owner(&created);

    let changed = expect_ok(
        server
            .update(
                owner.clone(),
                UpdateAccountRequest {
                    id: created.id,
                    name: "Alice C".into(),
                    avatar: Some("/static/avatar/new.png".into()),
                    telephone: Some("13900139000".into()),
                    email: Some("alice@new.example".into()),
                    location: Some("Guangzhou".into()),
                    password: None,
                    token: None,
                },
            )
            .await,
    );
    let expected = Account {
        name: "Alice C".into(),
        avatar: "/static/avatar/new.png".into(),
        telephone: "13900139000".into(),
        email: "alice@new.example".into(),
        location: "Guangzhou".into(),
        ..created.clone()
    };
    assert_eq!(changed, expected);
    assert_eq!(server.current(created.id).await, expected);

    // The update replaces the profile: what it leaves out is cleared, the username stays.
    let cleared = expect_ok(
        server
            .update(
                owner,
                UpdateAccountRequest {
                    id: created.id,
                    name: "Alice D".into(),
                    ..Default::default()
                },
            )
            .await,
    );
    let expected = Account {
        id: created.id,
        username: created.username.clone(),
        name: "Alice D".into(),
        roles: created.roles.clone(),
        ..Default::default()
    };
    assert_eq!(cleared, expected);
    assert_eq!(server.current(created.id).await, expected);
}

async fn an_update_without_a_password_keeps_the_old_one(server: TestServer) {
    let created = server.register("carol").await;
    let owner = server.owner(&created);

    for password in [None, Some("".into())] {
        let update = UpdateAccountRequest {
            name: "Carol".into(),
            password,
            ..update_of(&created)
        };
        expect_ok(server.update(owner.clone(), update).await);
        expect_ok(server.check_credentials("carol", PASSWORD).await);
    }

    let update = UpdateAccountRequest {
        password: Some("a-new-password".into()),
        ..update_of(&created)
    };
    expect_ok(server.update(owner, update).await);
    expect_exception(server.check_credentials("carol", PASSWORD).await);
    let checked = expect_ok(server.check_credentials("carol", "a-new-password").await);
    assert_eq!(checked.id, created.id);
}

async fn the_administrator_is_seeded_once_into_an_empty_database(server: TestServer) {
    let admin = expect_ok(server.get_by_username(server.admin(), "icyfenix").await);
    assert_eq!(admin.roles, ["ROLE_USER", "ROLE_ADMIN"]);
    assert_eq!(admin.name, "周志明");
    assert_eq!(admin.telephone, "18888888888");
    let logged_in = expect_ok(
        server
            .check_credentials("IcyFenix", DEVELOPMENT_ADMIN_PASSWORD)
            .await,
    );
    assert_eq!(logged_in, admin);

    let user = server.register("dave").await;
    assert_eq!(user.roles, ["ROLE_USER"]);

    // The database is no longer empty: a different [admin] is not seeded, nothing is lost.
    let server = server
        .restart_with(|settings| {
            settings.admin.username = "second-admin".into();
            settings.admin.email = "second@example.com".into();
            settings.admin.telephone = "13000000000".into();
        })
        .await;
    expect_exception(server.get_by_username(server.admin(), "second-admin").await);
    assert_eq!(server.current(admin.id).await, admin);
    assert_eq!(server.current(user.id).await, user);
    expect_ok(server.check_credentials("dave", PASSWORD).await);
}

/// Every call helper already scans its response for hash material; this drives each method
/// through its success path once, so each response shape is scanned.
async fn every_method_answers_without_the_password_hash(server: TestServer) {
    let create = server.create(full_registration()).await;
    let first = describe(&create);
    let created = expect_ok(create);
    let owner = server.owner(&created);
    let responses = vec![
        first,
        describe(&server.get_by_username(owner.clone(), "alice.b-1_x").await),
        describe(&server.get_by_id(owner.clone(), created.id).await),
        describe(&server.update(owner, update_of(&created)).await),
        describe(&server.check_credentials("alice.b-1_x", PASSWORD).await),
        describe(
            &server
                .check_credentials("icyfenix", DEVELOPMENT_ADMIN_PASSWORD)
                .await,
        ),
    ];
    for response in &responses {
        assert!(response.starts_with("Ok(Account {"), "{response}");
        assert!(!response.contains("$argon2"), "{response}");
    }
}
