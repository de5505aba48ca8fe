//! Checking a username and password: the account and its roles for the right pair, one and the
//! same `BadCredentials` for everything else, in about the same time.

use std::time::{Duration, Instant};

use account::{configuration::HashingConfig, rpc::BAD_CREDENTIALS};
use rpc_idl::account::*;

use crate::common::*;

crate::on_both_backends!(
    the_right_password_returns_the_account_and_its_roles,
    wrong_passwords_and_unknown_users_get_the_same_answer,
    unknown_users_take_as_long_as_wrong_passwords,
);

fn bad_credentials(exception: AccountServiceCheckCredentialsException) -> BadCredentials {
    match exception {
        AccountServiceCheckCredentialsException::BadCredentials(bad) => bad,
        other => panic!("expected BadCredentials, got {other:?}"),
    }
}

async fn the_right_password_returns_the_account_and_its_roles(server: TestServer) {
    let created = expect_ok(
        server
            .create(CreateAccountRequest {
                email: Some("kim@example.com".into()),
                ..registration("kim")
            })
            .await,
    );
    for spelling in ["kim", "KIM", "Kim"] {
        let account = expect_ok(server.check_credentials(spelling, PASSWORD).await);
        assert_eq!(account, created);
        assert_eq!(account.roles, vec![pilota::FastStr::from("ROLE_USER")]);
    }
}

async fn wrong_passwords_and_unknown_users_get_the_same_answer(server: TestServer) {
    server.register("liam").await;
    let long_name = "x".repeat(51);
    let cases = [
        ("liam", "wrong"),              // wrong password
        ("liam", ""),                   // empty password
        ("liam", &PASSWORD[1..]),       // a prefix of the right one
        ("liam ", PASSWORD),            // not the same username
        ("nobody", PASSWORD),           // unknown user
        ("", PASSWORD),                 // no username at all
        (long_name.as_str(), PASSWORD), // a username that cannot exist
        ("li@m", PASSWORD),             // another that cannot exist
    ];
    let mut answers = Vec::new();
    for (username, password) in cases {
        let exception = expect_exception(server.check_credentials(username, password).await);
        answers.push(bad_credentials(exception));
    }
    for answer in &answers {
        assert_eq!(answer.message, BAD_CREDENTIALS);
        assert_eq!(answer, &answers[0]);
    }
}

/// Median of `samples`.
fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// When hashing dominates the cost of a call (as it does in production), a check for an unknown
/// user must verify a (dummy) hash just like a wrong password does. Without that, it would answer
/// in the time of a database lookup, many times faster, and reveal which usernames exist.
async fn unknown_users_take_as_long_as_wrong_passwords(server: TestServer) {
    // Dear enough to dwarf a lookup, cheap enough for a test (about 50 ms: argon2 is built
    // optimised even in debug builds, see the root Cargo.toml).
    let dear = HashingConfig {
        memory_kib: 32 * 1024,
        iterations: 3,
        ..HashingConfig::default()
    };
    let server = server
        .restart_with(|settings| settings.password_hashing = dear)
        .await;
    // Registered under the same parameters as the dummy hash, so both paths verify equally dear
    // hashes.
    server.register("mona").await;

    const ROUNDS: usize = 5;
    let (mut wrong, mut unknown, mut cheap) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let started = Instant::now();
        expect_exception(server.check_credentials("mona", "wrong").await);
        wrong.push(started.elapsed());

        let started = Instant::now();
        expect_exception(server.check_credentials("nobody", "wrong").await);
        unknown.push(started.elapsed());

        // A call that hashes nothing: what the answer would cost without hashing.
        let started = Instant::now();
        expect_exception(server.get_by_username(server.admin(), "nobody").await);
        cheap.push(started.elapsed());
    }
    let (wrong, unknown, cheap) = (median(wrong), median(unknown), median(cheap));
    // The comparison means something only if hashing dominates the cost of a call.
    assert!(
        wrong > cheap * 5,
        "hashing is too cheap to compare: wrong password {wrong:?}, lookup {cheap:?}"
    );
    assert!(
        unknown > wrong / 2 && unknown < wrong * 2,
        "unknown user {unknown:?} vs wrong password {wrong:?} (lookup {cheap:?})"
    );
}
