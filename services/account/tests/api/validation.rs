//! Each validation rule of rest-api.md §3, on registration and on update, and that a refused
//! write changes nothing.

use rpc_idl::account::*;

use crate::common::*;

crate::on_both_backends!(
    usernames_must_be_present_short_and_made_of_safe_characters,
    a_name_is_required,
    a_telephone_must_be_1_and_10_digits,
    an_email_must_be_a_valid_address,
    a_password_is_required_on_registration,
    every_broken_rule_is_reported_at_once,
    a_refused_write_changes_nothing,
);

/// The fields an `InvalidInput` names, in order.
fn invalid_fields(exception: AccountServiceCreateAccountException) -> Vec<String> {
    match exception {
        AccountServiceCreateAccountException::InvalidInput(invalid) => {
            assert!(!invalid.message.is_empty());
            invalid.errors.iter().map(|e| e.field.to_string()).collect()
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

fn invalid_update_fields(exception: AccountServiceUpdateAccountException) -> Vec<String> {
    match exception {
        AccountServiceUpdateAccountException::InvalidInput(invalid) => {
            invalid.errors.iter().map(|e| e.field.to_string()).collect()
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

async fn refused_registration(server: &TestServer, req: CreateAccountRequest) -> Vec<String> {
    invalid_fields(expect_exception(server.create(req).await))
}

async fn usernames_must_be_present_short_and_made_of_safe_characters(server: TestServer) {
    let too_long = "a".repeat(51);
    for bad in [
        "",
        "a b",
        "a/b",
        "ünïcödé",
        "a@b",
        "tab\there",
        "semi;colon",
        &too_long,
    ] {
        let fields = refused_registration(&server, registration(bad)).await;
        assert_eq!(fields, ["username"], "username {bad:?}");
    }
    let longest = "b".repeat(50);
    for good in ["x", "A-Z_a.z-0", longest.as_str()] {
        let created = server.register(good).await;
        assert_eq!(created.username, good.to_ascii_lowercase());
    }
}

async fn a_name_is_required(server: TestServer) {
    for bad in ["", "   "] {
        let req = CreateAccountRequest {
            name: bad.into(),
            ..registration("nameless")
        };
        assert_eq!(refused_registration(&server, req).await, ["name"]);
    }
    let created = server.register("named").await;
    let update = UpdateAccountRequest {
        name: "".into(),
        ..update_of(&created)
    };
    let refused = expect_exception(server.update(server.owner(&created), update).await);
    assert_eq!(invalid_update_fields(refused), ["name"]);
}

const BAD_TELEPHONES: [&str; 6] = [
    "12345",
    "23800138000",
    "1380013800",
    "138001380000",
    "1380013800a",
    "+8613800138000",
];

async fn a_telephone_must_be_1_and_10_digits(server: TestServer) {
    for bad in BAD_TELEPHONES {
        let req = CreateAccountRequest {
            telephone: Some(bad.into()),
            ..registration("phoney")
        };
        assert_eq!(
            refused_registration(&server, req).await,
            ["telephone"],
            "{bad:?}"
        );
    }
    let created = expect_ok(
        server
            .create(CreateAccountRequest {
                telephone: Some("13800138000".into()),
                ..registration("phoned")
            })
            .await,
    );
    assert_eq!(created.telephone, "13800138000");

    for bad in BAD_TELEPHONES {
        let update = UpdateAccountRequest {
            telephone: Some(bad.into()),
            ..update_of(&created)
        };
        let refused = expect_exception(server.update(server.owner(&created), update).await);
        assert_eq!(invalid_update_fields(refused), ["telephone"], "{bad:?}");
    }
}

const BAD_EMAILS: [&str; 7] = [
    "plain",
    "@example.com",
    "a@",
    "a b@example.com",
    "a@b..com",
    "a@-b.com",
    "a@@b.com",
];

async fn an_email_must_be_a_valid_address(server: TestServer) {
    for bad in BAD_EMAILS {
        let req = CreateAccountRequest {
            email: Some(bad.into()),
            ..registration("mailer")
        };
        assert_eq!(
            refused_registration(&server, req).await,
            ["email"],
            "{bad:?}"
        );
    }
    let created = expect_ok(
        server
            .create(CreateAccountRequest {
                email: Some("first.last+tag@mail.example.org".into()),
                ..registration("mailed")
            })
            .await,
    );
    assert_eq!(created.email, "first.last+tag@mail.example.org");

    for bad in BAD_EMAILS {
        let update = UpdateAccountRequest {
            email: Some(bad.into()),
            ..update_of(&created)
        };
        let refused = expect_exception(server.update(server.owner(&created), update).await);
        assert_eq!(invalid_update_fields(refused), ["email"], "{bad:?}");
    }
}

async fn a_password_is_required_on_registration(server: TestServer) {
    let req = CreateAccountRequest {
        password: "".into(),
        ..registration("keyless")
    };
    assert_eq!(refused_registration(&server, req).await, ["password"]);
}

async fn every_broken_rule_is_reported_at_once(server: TestServer) {
    let refused = expect_exception(
        server
            .create(CreateAccountRequest {
                username: "not valid".into(),
                password: "".into(),
                name: "".into(),
                avatar: None,
                telephone: Some("1".into()),
                email: Some("nope".into()),
                location: None,
            })
            .await,
    );
    let AccountServiceCreateAccountException::InvalidInput(invalid) = refused else {
        panic!("expected InvalidInput, got {refused:?}");
    };
    let fields: Vec<_> = invalid.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["username", "password", "name", "telephone", "email"]
    );
    for field in fields {
        assert!(invalid.message.contains(field), "{}", invalid.message);
    }
    assert!(invalid.errors.iter().all(|e| !e.message.is_empty()));
}

async fn a_refused_write_changes_nothing(server: TestServer) {
    let req = CreateAccountRequest {
        email: Some("broken".into()),
        ..registration("erin")
    };
    refused_registration(&server, req).await;
    expect_exception(server.get_by_username(server.admin(), "erin").await);
    let created = server.register("erin").await;

    let update = UpdateAccountRequest {
        name: "Changed".into(),
        telephone: Some("123".into()),
        password: Some("changed".into()),
        ..update_of(&created)
    };
    expect_exception(server.update(server.owner(&created), update).await);
    assert_eq!(server.current(created.id).await, created);
    expect_ok(server.check_credentials("erin", PASSWORD).await);
}
