//! It keeps working after pressure: a bounded burst of concurrent registrations and updates that
//! mixes successes with every refusal the account service has (a taken username or e-mail, an
//! update of someone else's account, invalid input, wrong credentials) and with callers that
//! give up before their answer comes. Afterwards a single request of each kind succeeds within a
//! second, and every account that exists is whole (it has its role).

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use volo_thrift::MaybeException;

use crate::common::*;

crate::on_both_backends!(a_burst_of_registrations_leaves_every_path_working);

const CALLERS: usize = 32;
const ROUNDS: usize = 8;

#[derive(Default)]
struct Tally {
    done: AtomicUsize,
    refused: AtomicUsize,
    abandoned: AtomicUsize,
}

impl Tally {
    /// Counts an answer; the transport itself must work (the helpers panic otherwise).
    fn count<T, E>(&self, outcome: MaybeException<T, E>) -> Option<T> {
        match outcome {
            MaybeException::Ok(value) => {
                self.done.fetch_add(1, Ordering::Relaxed);
                Some(value)
            }
            MaybeException::Exception(_) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

async fn caller(server: &TestServer, seed: usize, tally: &Tally) {
    let neighbour = server.register(&format!("neighbour{seed}")).await;
    for round in 0..ROUNDS {
        let turn = seed * 5 + round;
        let username = format!("burst{seed}x{round}");
        // Every third round gives up after 0 to 3 ms: mid-registration or mid-update.
        if turn.is_multiple_of(3) {
            let patience = Duration::from_micros(((turn * 131) % 3_000) as u64);
            let _ = tokio::time::timeout(patience, server.create(registration(&username))).await;
            let mut update = update_of(&neighbour);
            update.location = Some(format!("round {round}").into());
            let _ = tokio::time::timeout(patience, server.update(server.owner(&neighbour), update))
                .await;
            tally.abandoned.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let Some(account) = tally.count(server.create(registration(&username)).await) else {
            continue;
        };
        // A taken username, invalid input, someone else's account, wrong credentials.
        tally.count(server.create(registration(&username)).await);
        tally.count(server.create(registration("")).await);
        tally.count(
            server
                .update(server.owner(&account), update_of(&neighbour))
                .await,
        );
        tally.count(
            server
                .check_credentials(&username, "not the password")
                .await,
        );
        let mut update = update_of(&account);
        update.email = Some(format!("{username}@example.com").into());
        tally.count(server.update(server.owner(&account), update).await);
        tally.count(server.check_credentials(&username, PASSWORD).await);
    }
}

async fn a_burst_of_registrations_leaves_every_path_working(server: TestServer) {
    let tally = Tally::default();
    futures::future::join_all((0..CALLERS).map(|seed| caller(&server, seed, &tally))).await;
    let (done, refused, abandoned) = (
        tally.done.load(Ordering::Relaxed),
        tally.refused.load(Ordering::Relaxed),
        tally.abandoned.load(Ordering::Relaxed),
    );
    eprintln!("burst: {done} done, {refused} refused, {abandoned} abandoned");
    assert!(
        done > 0 && refused > 0 && abandoned > 0,
        "the burst exercised every path"
    );

    // At rest, one request at a time, each kind answers within a second.
    let started = Instant::now();
    let fresh = server.register("fresh").await;
    let mut update = update_of(&fresh);
    update.location = Some("Guangzhou".into());
    expect_ok(server.update(server.owner(&fresh), update).await);
    expect_ok(server.get_by_username(server.owner(&fresh), "fresh").await);
    expect_ok(server.check_credentials("fresh", PASSWORD).await);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "register, update, read, log in took {took:?}"
    );

    // Registrations that were given up on happened whole or not at all.
    for seed in 0..CALLERS {
        for round in (0..ROUNDS).filter(|round| (seed * 5 + round).is_multiple_of(3)) {
            let username = format!("burst{seed}x{round}");
            if let MaybeException::Ok(account) =
                server.get_by_username(server.admin(), &username).await
            {
                assert_eq!(account.roles.len(), 1, "{username}: {:?}", account.roles);
            }
        }
    }
}
