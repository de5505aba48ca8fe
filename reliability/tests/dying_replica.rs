//! A dying replica costs nothing: with two warehouse replicas behind the gateway and readers
//! hammering the catalogue, one replica is SIGKILLed (as a crash or an OOM kill does, before
//! DNS or readiness could drop it). The first call that finds nobody there ejects its address
//! from the gateway's list (platform::discovery), the read is retried on the other replica, and
//! no reader sees a failure.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use reliability::{
    programs::Kind,
    stack::{Stack, StackOptions, Storage},
};

const READERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_warehouse_replica_fails_no_read() {
    let mut stack = Stack::start(StackOptions {
        instances: 2,
        ..StackOptions::with_room(Storage::Sqlite)
    })
    .await;
    let shop = stack.open_shop(0, &[5, 5]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let started = Instant::now();
    let readers: Vec<_> = (0..READERS)
        .map(|reader| {
            let (rest, stop, reads, failures) = (
                stack.rest.clone(),
                Arc::clone(&stop),
                Arc::clone(&reads),
                Arc::clone(&failures),
            );
            let product = shop.products[reader % shop.products.len()];
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let path = format!("/restful/products/{product}");
                    match rest.try_get(&path, None).await {
                        Ok(reply) if reply.status == 200 => {}
                        Ok(reply) => failures.lock().expect("failures").push(format!(
                            "{:?}: {} {}",
                            started.elapsed(),
                            reply.status,
                            reply.text()
                        )),
                        Err(error) => failures
                            .lock()
                            .expect("failures")
                            .push(format!("{:?}: {error}", started.elapsed())),
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let before = reads.load(Ordering::Relaxed);
    stack.program(Kind::Warehouse, 1).kill().await;
    let killed_at = started.elapsed();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.expect("reader");
    }
    let total = reads.load(Ordering::Relaxed);
    let failures = failures.lock().expect("failures").clone();
    assert!(
        before > 50 && total - before > 200,
        "too little traffic to tell: {before} reads before the kill, {} after",
        total - before
    );
    assert!(
        failures.is_empty(),
        "{} of {total} reads failed (replica killed at {killed_at:?}):\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The survivor keeps serving everything that needs the warehouse.
    stack.rest.get("/restful/products", None).await.expect(200);
    stack.shut_down().await;
}
