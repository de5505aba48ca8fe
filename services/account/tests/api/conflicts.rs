//! Username, e-mail and telephone are unique among accounts, enforced by the database: each
//! clash is a `Conflict` naming the field, also when two registrations race.

use std::time::Duration;

use rpc_idl::account::*;

use crate::common::*;

crate::on_both_backends!(
    usernames_are_unique_regardless_of_case,
    emails_are_unique_regardless_of_case,
    telephones_are_unique,
    updates_cannot_take_another_accounts_email_or_telephone,
    racing_registrations_of_one_username_let_exactly_one_win,
    racing_registrations_of_one_email_let_exactly_one_win,
);

fn conflict_field(exception: AccountServiceCreateAccountException) -> String {
    match exception {
        AccountServiceCreateAccountException::Conflict(conflict) => {
            assert!(conflict.message.contains(conflict.field.as_str()));
            conflict.field.to_string()
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
}

fn update_conflict_field(exception: AccountServiceUpdateAccountException) -> String {
    match exception {
        AccountServiceUpdateAccountException::Conflict(conflict) => conflict.field.to_string(),
        other => panic!("expected Conflict, got {other:?}"),
    }
}

async fn refused(server: &TestServer, req: CreateAccountRequest) -> String {
    conflict_field(expect_exception(server.create(req).await))
}

async fn usernames_are_unique_regardless_of_case(server: TestServer) {
    server.register("Frank").await;
    for clash in ["frank", "FRANK", "fRaNk"] {
        assert_eq!(refused(&server, registration(clash)).await, "username");
    }
    // The seeded administrator's name is taken too.
    assert_eq!(refused(&server, registration("IcyFenix")).await, "username");
}

async fn emails_are_unique_regardless_of_case(server: TestServer) {
    let with_email = |username: &str, email: &str| CreateAccountRequest {
        email: Some(email.to_owned().into()),
        ..registration(username)
    };
    expect_ok(
        server
            .create(with_email("grace", "Grace@Example.com"))
            .await,
    );
    for clash in [
        "Grace@Example.com",
        "grace@example.com",
        "GRACE@EXAMPLE.COM",
    ] {
        assert_eq!(refused(&server, with_email("heidi", clash)).await, "email");
    }
    expect_ok(
        server
            .create(with_email("heidi", "heidi@example.com"))
            .await,
    );
}

async fn telephones_are_unique(server: TestServer) {
    let with_phone = |username: &str, phone: &str| CreateAccountRequest {
        telephone: Some(phone.to_owned().into()),
        ..registration(username)
    };
    expect_ok(server.create(with_phone("ivan", "13800138000")).await);
    assert_eq!(
        refused(&server, with_phone("judy", "13800138000")).await,
        "telephone"
    );
    // The seeded administrator's number is taken too.
    assert_eq!(
        refused(&server, with_phone("judy", "18888888888")).await,
        "telephone"
    );
    expect_ok(server.create(with_phone("judy", "13800138001")).await);
}

async fn updates_cannot_take_another_accounts_email_or_telephone(server: TestServer) {
    let mallory = expect_ok(
        server
            .create(CreateAccountRequest {
                email: Some("mallory@example.com".into()),
                telephone: Some("13700137000".into()),
                ..registration("mallory")
            })
            .await,
    );
    let oscar = expect_ok(
        server
            .create(CreateAccountRequest {
                email: Some("oscar@example.com".into()),
                telephone: Some("13600136000".into()),
                ..registration("oscar")
            })
            .await,
    );
    let owner = server.owner(&oscar);

    let take_email = UpdateAccountRequest {
        email: Some("MALLORY@example.com".into()),
        ..update_of(&oscar)
    };
    let clash = expect_exception(server.update(owner.clone(), take_email).await);
    assert_eq!(update_conflict_field(clash), "email");

    let take_phone = UpdateAccountRequest {
        telephone: Some("13700137000".into()),
        ..update_of(&oscar)
    };
    let clash = expect_exception(server.update(owner.clone(), take_phone).await);
    assert_eq!(update_conflict_field(clash), "telephone");
    assert_eq!(server.current(oscar.id).await, oscar);
    assert_eq!(server.current(mallory.id).await, mallory);

    // Keeping one's own values is no clash.
    let keep = UpdateAccountRequest {
        name: "Oscar".into(),
        ..update_of(&oscar)
    };
    let kept = expect_ok(server.update(owner, keep).await);
    assert_eq!((kept.email, kept.telephone), (oscar.email, oscar.telephone));
}

/// How many registrations race in each round, and how many rounds.
const RACERS: usize = 4;
const ROUNDS: usize = 3;

/// Starts `RACERS` registrations at once (each on its own connection) and returns the results.
async fn race(
    server: &TestServer,
    make: impl Fn(usize) -> CreateAccountRequest,
) -> Vec<volo_thrift::MaybeException<Account, AccountServiceCreateAccountException>> {
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(RACERS));
    let calls = (0..RACERS).map(|i| {
        let client = client(server.address);
        let start = start.clone();
        let req = make(i);
        tokio::spawn(async move {
            start.wait().await;
            let result = client.create_account(req).await;
            result.expect("the call reached the server and came back")
        })
    });
    let mut results = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        let result = tokio::time::timeout(Duration::from_secs(30), call)
            .await
            .expect("registration answered in time")
            .expect("task");
        assert_no_hash(&describe(&result));
        results.push(result);
    }
    results
}

/// Exactly one registration won; every other one got a `Conflict` on `field`.
fn exactly_one_winner(
    results: Vec<volo_thrift::MaybeException<Account, AccountServiceCreateAccountException>>,
    field: &str,
) -> Account {
    let mut winners = Vec::new();
    for result in results {
        match result {
            volo_thrift::MaybeException::Ok(account) => winners.push(account),
            volo_thrift::MaybeException::Exception(exception) => {
                assert_eq!(conflict_field(exception), field);
            }
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    winners.remove(0)
}

async fn racing_registrations_of_one_username_let_exactly_one_win(server: TestServer) {
    for round in 0..ROUNDS {
        let username = format!("racer{round}");
        let results = race(&server, |_| registration(&username)).await;
        let winner = exactly_one_winner(results, "username");
        assert_eq!(server.current(winner.id).await, winner);
        expect_ok(server.check_credentials(&username, PASSWORD).await);
    }
}

async fn racing_registrations_of_one_email_let_exactly_one_win(server: TestServer) {
    for round in 0..ROUNDS {
        let results = race(&server, |i| CreateAccountRequest {
            email: Some(format!("race{round}@example.com").into()),
            ..registration(&format!("mail-racer-{round}-{i}"))
        })
        .await;
        let winner = exactly_one_winner(results, "email");
        assert_eq!(server.current(winner.id).await, winner);
    }
}
