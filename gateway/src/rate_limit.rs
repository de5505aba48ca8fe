//! Rate limits on the public operations that cost the most: registration (an Argon2 hash in the
//! account service) and every grant of the token endpoint (an Argon2 check of the client's
//! secret, and for the password grant one of the password). Each operation has a token bucket
//! per client address and one shared by everybody: a flood from one address is refused at that
//! address's rate, a flood from many at the global one, and the refused requests cost a map
//! lookup. The answer is 429 with `Retry-After`.
//!
//! Memory is bounded: at most `max_clients` addresses are remembered per operation; when the
//! map is full, addresses whose buckets have refilled (which are indistinguishable from new
//! ones) are forgotten first, and if that frees nothing the map starts afresh.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::configuration::{RateLimitConfig, RatePair};

/// How fast a bucket refills, and how much it holds.
#[derive(Debug, Clone, Copy)]
struct Rate {
    burst: f64,
    per_second: f64,
}

impl Rate {
    fn per_minute(count: u32) -> Self {
        Self {
            burst: f64::from(count.max(1)),
            per_second: f64::from(count.max(1)) / 60.0,
        }
    }

    fn per_second(count: u32) -> Self {
        Self {
            burst: f64::from(count.max(1)),
            per_second: f64::from(count.max(1)),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst,
            updated: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.updated = now;
    }

    /// Takes one token, or says how long until one is there.
    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / rate.per_second,
            ))
        }
    }
}

/// One operation's limits.
#[derive(Debug)]
pub struct RateLimit {
    operation: &'static str,
    per_client: Rate,
    global_rate: Rate,
    max_clients: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    global: Bucket,
    clients: HashMap<IpAddr, Bucket>,
}

impl RateLimit {
    fn new(operation: &'static str, pair: &RatePair, max_clients: usize) -> Self {
        let now = Instant::now();
        let global_rate = Rate::per_second(pair.global_per_second);
        Self {
            operation,
            per_client: Rate::per_minute(pair.per_client_per_minute),
            global_rate,
            max_clients: max_clients.max(1),
            state: Mutex::new(State {
                global: Bucket::full(global_rate, now),
                clients: HashMap::new(),
            }),
        }
    }

    /// [`Self::admit`] at the current time.
    pub fn admit_now(&self, client: IpAddr) -> Result<(), Duration> {
        self.admit(client, Instant::now())
    }

    /// Admits one request from `client`, or answers how long it should wait.
    pub fn admit(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(mut state) = self.state.lock() else {
            // A poisoned lock means a panic elsewhere; failing open keeps the service working.
            return Ok(());
        };
        if !state.clients.contains_key(&client) {
            self.make_room(&mut state.clients, now);
        }
        let per_client = self.per_client;
        let bucket = state
            .clients
            .entry(client)
            .or_insert_with(|| Bucket::full(per_client, now));
        let outcome = bucket
            .take(per_client, now)
            .and_then(|()| state.global.take(self.global_rate, now));
        if outcome.is_err() {
            metrics::counter!("gateway_rate_limited_total", "operation" => self.operation)
                .increment(1);
        }
        outcome
    }

    fn make_room(&self, clients: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        if clients.len() < self.max_clients {
            return;
        }
        let rate = self.per_client;
        clients.retain(|_, bucket| {
            bucket.refill(rate, now);
            bucket.tokens < rate.burst
        });
        if clients.len() >= self.max_clients {
            clients.clear();
        }
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.state.lock().map_or(0, |state| state.clients.len())
    }
}

/// The limits of every limited operation.
#[derive(Debug)]
pub struct RateLimits {
    pub registration: RateLimit,
    pub token: RateLimit,
}

impl RateLimits {
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            registration: RateLimit::new("registration", &config.registration, config.max_clients),
            token: RateLimit::new("token", &config.token, config.max_clients),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const HOME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const ELSEWHERE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    fn limit(per_client_per_minute: u32, global_per_second: u32, max_clients: usize) -> RateLimit {
        RateLimit::new(
            "test",
            &RatePair {
                per_client_per_minute,
                global_per_second,
            },
            max_clients,
        )
    }

    #[test]
    fn a_client_gets_its_burst_then_its_rate_and_others_are_not_affected() {
        let limit = limit(6, 1_000, 100);
        let start = Instant::now();
        for _ in 0..6 {
            assert!(limit.admit(HOME, start).is_ok());
        }
        let wait = limit.admit(HOME, start).expect_err("burst spent");
        assert!(
            wait > Duration::from_secs(9) && wait <= Duration::from_secs(10),
            "{wait:?}"
        );
        assert!(limit.admit(ELSEWHERE, start).is_ok());
        // Six a minute: one more after ten seconds.
        let later = start + Duration::from_secs(10);
        assert!(limit.admit(HOME, later).is_ok());
        assert!(limit.admit(HOME, later).is_err());
    }

    #[test]
    fn the_global_bucket_limits_many_clients_together() {
        let limit = limit(1_000, 5, 1_000);
        let now = Instant::now();
        let admitted = (0..50u8)
            .filter(|i| {
                limit
                    .admit(IpAddr::V4(Ipv4Addr::new(10, 0, 0, *i)), now)
                    .is_ok()
            })
            .count();
        assert_eq!(admitted, 5);
        assert!(limit.admit(HOME, now + Duration::from_millis(250)).is_ok());
    }

    #[test]
    fn memory_stays_bounded_by_max_clients() {
        let limit = limit(2, 100_000, 100);
        let now = Instant::now();
        for i in 0..10_000u32 {
            let _ = limit.admit(IpAddr::V4(Ipv4Addr::from(i)), now);
            assert!(limit.remembered() <= 100);
        }
        // A client that spent its burst is remembered while others come and go... up to the
        // bound, after which the map starts afresh rather than grow.
        assert!(limit.remembered() <= 100);
    }
}
