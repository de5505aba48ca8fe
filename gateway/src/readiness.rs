//! What `/readyz` answers: whether the gateway can serve (it is not draining), and the cached
//! health of every backend (refreshed in the background, so a probe never waits on a backend).
//!
//! A backend that is down does not make the gateway unready: taking the gateway out of its
//! Service would take the login, account and static pages with it, a cascade from one outage to
//! all of them. The routes of the down backend answer a fast 503 with `Retry-After` instead, and
//! the report says `degraded` and which backend is down.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    time::Duration,
};

use platform::shutdown::CancellationToken;
use serde::Serialize;

use crate::backends::Backends;

const UP: u8 = 1;
const DOWN: u8 = 2;

/// Per backend: 0 (not checked yet), [`UP`] or [`DOWN`].
#[derive(Clone, Default)]
pub struct Readiness {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    draining: AtomicBool,
    account: AtomicU8,
    warehouse: AtomicU8,
    payment: AtomicU8,
}

/// The readiness picture, as `/readyz` returns it.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Not draining: the gateway can serve.
    pub ready: bool,
    pub draining: bool,
    /// Some backend is down (or not checked yet): its routes answer 503.
    pub degraded: bool,
    pub backends: BackendsReport,
}

#[derive(Debug, Serialize)]
pub struct BackendsReport {
    pub account: &'static str,
    pub warehouse: &'static str,
    pub payment: &'static str,
}

fn word(state: u8) -> &'static str {
    match state {
        UP => "up",
        DOWN => "down",
        _ => "unknown",
    }
}

fn encode(up: bool) -> u8 {
    if up { UP } else { DOWN }
}

impl Readiness {
    /// Checks every backend now and then every `interval`, until `stop`.
    pub fn start(backends: Backends, interval: Duration, stop: CancellationToken) -> Self {
        let readiness = Self::default();
        let inner = readiness.inner.clone();
        tokio::spawn(async move {
            loop {
                let (account, warehouse, payment) = tokio::join!(
                    backends.account.healthy(),
                    backends.warehouse.healthy(),
                    backends.payment.healthy(),
                );
                inner.account.store(encode(account), Ordering::Relaxed);
                inner.warehouse.store(encode(warehouse), Ordering::Relaxed);
                inner.payment.store(encode(payment), Ordering::Relaxed);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(interval) => {}
                }
            }
            tracing::info!("backend health checker stopped");
        });
        readiness
    }

    /// From now on `/readyz` fails (503).
    pub fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
    }

    pub fn report(&self) -> Report {
        let load = |state: &AtomicU8| state.load(Ordering::Relaxed);
        let (account, warehouse, payment) = (
            load(&self.inner.account),
            load(&self.inner.warehouse),
            load(&self.inner.payment),
        );
        let draining = self.inner.draining.load(Ordering::Relaxed);
        Report {
            ready: !draining,
            draining,
            degraded: [account, warehouse, payment].iter().any(|s| *s != UP),
            backends: BackendsReport {
                account: word(account),
                warehouse: word(warehouse),
                payment: word(payment),
            },
        }
    }
}
