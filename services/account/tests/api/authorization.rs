//! Who may call what: registration is public; reads and updates need the owner or an
//! administrator; credential checks need a service token, which grants nothing else.

use platform::testing::{TestIdentity, TestKeys};
use rpc_idl::account::*;

use crate::common::*;

crate::on_both_backends!(
    registration_is_public,
    calls_without_a_valid_token_are_unauthenticated,
    other_users_may_neither_read_nor_change_an_account,
    owners_may_read_and_change_their_own_account,
    administrators_may_read_and_change_any_account,
    services_may_neither_read_nor_change_accounts,
    only_services_may_check_credentials,
);

async fn registration_is_public(server: TestServer) {
    // No token at all (the helper sends none); and a token, even a bad one, is simply ignored.
    server.register("nina").await;
    let call = server.client.create_account(registration("olga"));
    let with_garbage = platform::rpc_metadata::CallMetadata {
        token: Some("not.a.jwt".into()),
        request_id: None,
    }
    .thrift_call(call)
    .await
    .expect("call");
    expect_ok(with_garbage);
}

async fn calls_without_a_valid_token_are_unauthenticated(server: TestServer) {
    let victim = server.register("paul").await;
    let foreign = TestKeys::new().token(TestIdentity::Admin);
    let expired = server.keys.token_expiring_in(TestIdentity::Admin, -120);
    let tokens = [
        None,
        Some("not.a.jwt".to_owned()),
        Some(foreign),
        Some(expired),
    ];
    for token in tokens {
        assert_refused(
            server.get_by_username(token.clone(), "paul").await,
            "Unauthenticated",
        );
        assert_refused(
            server.get_by_id(token.clone(), victim.id).await,
            "Unauthenticated",
        );
        let update = UpdateAccountRequest {
            name: "Hacked".into(),
            ..update_of(&victim)
        };
        assert_refused(
            server.update(token.clone(), update).await,
            "Unauthenticated",
        );
        assert_refused(
            server
                .check_credentials_as(token.clone(), "paul", PASSWORD)
                .await,
            "Unauthenticated",
        );
    }
    assert_eq!(server.current(victim.id).await, victim);
}

async fn other_users_may_neither_read_nor_change_an_account(server: TestServer) {
    let victim = server.register("quinn").await;
    let other = server.register("rita").await;
    let as_other = server.owner(&other);
    // The right name with another account's id is not the owner either.
    let mixed = Some(server.keys.token(TestIdentity::User {
        username: "quinn",
        account_id: other.id,
    }));

    for token in [as_other.clone(), mixed] {
        assert_refused(
            server.get_by_username(token.clone(), "quinn").await,
            "PermissionDenied",
        );
        assert_refused(
            server.get_by_id(token.clone(), victim.id).await,
            "PermissionDenied",
        );
        let update = UpdateAccountRequest {
            name: "Hacked".into(),
            password: Some("hacked".into()),
            ..update_of(&victim)
        };
        assert_refused(server.update(token, update).await, "PermissionDenied");
    }
    assert_eq!(server.current(victim.id).await, victim);
    expect_ok(server.check_credentials("quinn", PASSWORD).await);

    // Whether an account exists is not theirs to learn either.
    assert_refused(
        server.get_by_username(as_other.clone(), "ghost").await,
        "PermissionDenied",
    );
    assert_refused(
        server.get_by_username(as_other.clone(), "bad name").await,
        "PermissionDenied",
    );
    assert_refused(
        server.get_by_id(as_other.clone(), 999_999).await,
        "PermissionDenied",
    );
    let ghost = UpdateAccountRequest {
        id: 999_999,
        ..update_of(&other)
    };
    assert_refused(server.update(as_other, ghost).await, "PermissionDenied");
}

async fn owners_may_read_and_change_their_own_account(server: TestServer) {
    let owner_account = server.register("sam").await;
    let owner = server.owner(&owner_account);
    assert_eq!(
        expect_ok(server.get_by_username(owner.clone(), "SAM").await),
        owner_account
    );
    assert_eq!(
        expect_ok(server.get_by_id(owner.clone(), owner_account.id).await),
        owner_account
    );
    let update = UpdateAccountRequest {
        name: "Samuel".into(),
        ..update_of(&owner_account)
    };
    assert_eq!(expect_ok(server.update(owner, update).await).name, "Samuel");
}

async fn administrators_may_read_and_change_any_account(server: TestServer) {
    let user = server.register("tina").await;
    let admin = server.admin();
    assert_eq!(
        expect_ok(server.get_by_username(admin.clone(), "tina").await),
        user
    );
    assert_eq!(
        expect_ok(server.get_by_id(admin.clone(), user.id).await),
        user
    );
    let update = UpdateAccountRequest {
        name: "Tina by admin".into(),
        ..update_of(&user)
    };
    assert_eq!(
        expect_ok(server.update(admin.clone(), update).await).name,
        "Tina by admin"
    );

    // Administrators may learn that an account does not exist, or that a name is malformed.
    assert_refused(
        server.get_by_username(admin.clone(), "ghost").await,
        "NotFound",
    );
    assert_refused(server.get_by_id(admin.clone(), 999_999).await, "NotFound");
    let ghost = UpdateAccountRequest {
        id: 999_999,
        ..update_of(&user)
    };
    assert_refused(server.update(admin.clone(), ghost).await, "NotFound");
    let malformed = expect_exception(server.get_by_username(admin, "bad name").await);
    let AccountServiceGetAccountByUsernameException::InvalidInput(invalid) = malformed else {
        panic!("expected InvalidInput, got {malformed:?}");
    };
    assert_eq!(invalid.errors[0].field, "username");
}

async fn services_may_neither_read_nor_change_accounts(server: TestServer) {
    let user = server.register("ursula").await;
    let service = server.service();
    assert_refused(
        server.get_by_username(service.clone(), "ursula").await,
        "PermissionDenied",
    );
    assert_refused(
        server.get_by_id(service.clone(), user.id).await,
        "PermissionDenied",
    );
    assert_refused(
        server.get_by_username(service.clone(), "ghost").await,
        "PermissionDenied",
    );
    let update = UpdateAccountRequest {
        name: "Changed by a service".into(),
        ..update_of(&user)
    };
    assert_refused(server.update(service, update).await, "PermissionDenied");
    assert_eq!(server.current(user.id).await, user);
}

async fn only_services_may_check_credentials(server: TestServer) {
    let user = server.register("victor").await;
    for token in [server.owner(&user), server.admin()] {
        assert_refused(
            server.check_credentials_as(token, "victor", PASSWORD).await,
            "PermissionDenied",
        );
    }
    let checked = expect_ok(
        server
            .check_credentials_as(server.service(), "victor", PASSWORD)
            .await,
    );
    assert_eq!(checked, user);
}
