//! Password guessing, slowed down: the password grant keeps a failure count per (username,
//! client address). After `free_attempts` failures in a row, that pair must wait before its next
//! try, and every further failure doubles the wait, up to `max_delay_ms`. A try during the wait
//! is refused with 429 without asking the account service, so the guesses cost the attacker
//! time, not the account service's CPU.
//!
//! Why it cannot lock the real user out for good:
//! - the wait is capped, and a pair with no failure for `forget_after_ms` starts afresh;
//! - the key includes the client address, so guesses from one machine do not slow the owner's
//!   logins from another (behind a proxy every client has the proxy's address unless
//!   `trusted_proxies` lets its `X-Forwarded-For` name the client; see `src/forwarded.rs` and
//!   SECURITY.md);
//! - a successful login clears its pair.
//!
//! Concurrent guesses cannot overrun the count: a try in flight counts against the free
//! attempts until it is decided. Memory is bounded by `max_entries`; when full, idle pairs are
//! dropped first, then the least recently seen.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use http::HeaderMap;

use crate::{
    configuration::LoginThrottleConfig,
    forwarded::{self, TrustedNetwork},
};

/// The client's address, put into every request's extensions: the TCP peer, or, when the peer
/// is a trusted proxy, the address its `X-Forwarded-For` names (with port 0: the header carries
/// none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub SocketAddr);

impl ClientAddress {
    /// The client's IP address from a request's extensions (unspecified when the server did not
    /// say, as in a test calling a handler directly).
    pub fn ip_of(address: Option<axum::Extension<ClientAddress>>) -> IpAddr {
        address.map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |a| a.0.0.ip())
    }

    /// The client of a request with `headers` that arrived from `peer`.
    pub fn of(peer: SocketAddr, headers: &HeaderMap, trusted_proxies: &[TrustedNetwork]) -> Self {
        let client = forwarded::client_ip(peer.ip(), headers, trusted_proxies);
        let port = if client == peer.ip().to_canonical() {
            peer.port()
        } else {
            0
        };
        Self(SocketAddr::new(client, port))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    username: String,
    client: IpAddr,
}

#[derive(Debug, Clone)]
struct Entry {
    /// Failed tries since the last success (or since the pair was forgotten).
    failures: u32,
    /// Tries admitted and not yet decided.
    in_flight: u32,
    /// No try is admitted before this.
    blocked_until: Option<Instant>,
    last_seen: Instant,
}

/// The failure counts of every (username, client) pair seen recently.
pub struct LoginThrottle {
    config: LoginThrottleConfig,
    entries: Mutex<HashMap<Key, Entry>>,
}

/// A try that was let through; report how it went with [`Attempt::failed`] or
/// [`Attempt::succeeded`]. Dropped undecided (the account service was down), it counts as
/// neither.
pub struct Attempt {
    throttle: Arc<LoginThrottle>,
    key: Option<Key>,
}

impl LoginThrottle {
    pub fn new(config: LoginThrottleConfig) -> Self {
        Self {
            config,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Lets a try of `username` from `client` through, or says how long it must wait.
    pub fn admit(
        self: &Arc<Self>,
        username: &str,
        client: IpAddr,
        now: Instant,
    ) -> Result<Attempt, Duration> {
        let key = Key {
            username: username.trim().to_lowercase(),
            client,
        };
        let Ok(mut entries) = self.entries.lock() else {
            // A poisoned lock means a panic elsewhere; failing open keeps logins working.
            return Ok(Attempt {
                throttle: self.clone(),
                key: None,
            });
        };
        if !entries.contains_key(&key) {
            self.make_room(&mut entries, now);
        }
        let entry = entries.entry(key.clone()).or_insert(Entry {
            failures: 0,
            in_flight: 0,
            blocked_until: None,
            last_seen: now,
        });
        if now.saturating_duration_since(entry.last_seen) >= self.config.forget_after()
            && entry.in_flight == 0
        {
            entry.failures = 0;
            entry.blocked_until = None;
        }
        entry.last_seen = now;
        if let Some(until) = entry.blocked_until
            && until > now
        {
            return Err(throttled(until - now));
        }
        if entry.in_flight > 0 && entry.failures + entry.in_flight >= self.config.free_attempts {
            // Parallel guesses beyond the free budget wait for the ones in flight.
            return Err(throttled(self.config.base_delay()));
        }
        entry.in_flight += 1;
        Ok(Attempt {
            throttle: self.clone(),
            key: Some(key),
        })
    }

    /// How many pairs are remembered.
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |entries| entries.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn make_room(&self, entries: &mut HashMap<Key, Entry>, now: Instant) {
        let max = self.config.max_entries.max(1);
        if entries.len() < max {
            return;
        }
        let forget_after = self.config.forget_after();
        entries.retain(|_, entry| {
            entry.in_flight > 0
                || entry.blocked_until.is_some_and(|until| until > now)
                || now.saturating_duration_since(entry.last_seen) < forget_after
        });
        while entries.len() >= max {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_seen)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            entries.remove(&oldest);
        }
    }

    fn decide(&self, key: &Key, failed: bool, now: Instant) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let Some(entry) = entries.get_mut(key) else {
            return;
        };
        entry.in_flight = entry.in_flight.saturating_sub(1);
        entry.last_seen = now;
        if !failed {
            if entry.in_flight == 0 {
                entries.remove(key);
            } else {
                entry.failures = 0;
                entry.blocked_until = None;
            }
            return;
        }
        entry.failures = entry.failures.saturating_add(1);
        if entry.failures >= self.config.free_attempts {
            let doublings = (entry.failures - self.config.free_attempts).min(30);
            let delay = self
                .config
                .base_delay()
                .saturating_mul(1 << doublings)
                .min(self.config.max_delay());
            entry.blocked_until = Some(now + delay);
        }
    }

    fn release(&self, key: &Key) {
        if let Ok(mut entries) = self.entries.lock()
            && let Some(entry) = entries.get_mut(key)
        {
            entry.in_flight = entry.in_flight.saturating_sub(1);
        }
    }
}

impl Attempt {
    /// The password was wrong (or the user unknown: the two are not told apart).
    pub fn failed(mut self, now: Instant) {
        if let Some(key) = self.key.take() {
            self.throttle.decide(&key, true, now);
        }
    }

    /// The password was right: the pair starts afresh.
    pub fn succeeded(mut self, now: Instant) {
        if let Some(key) = self.key.take() {
            self.throttle.decide(&key, false, now);
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.throttle.release(&key);
        }
    }
}

/// Counts a refused attempt (`gateway_logins_throttled_total`) and answers its wait.
fn throttled(wait: Duration) -> Duration {
    metrics::counter!("gateway_logins_throttled_total").increment(1);
    wait
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(max_entries: usize) -> Arc<LoginThrottle> {
        Arc::new(LoginThrottle::new(LoginThrottleConfig {
            free_attempts: 3,
            base_delay_ms: 1_000,
            max_delay_ms: 8_000,
            forget_after_ms: 60_000,
            max_entries,
            trusted_proxies: Vec::new(),
        }))
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const ELSEWHERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn fail(throttle: &Arc<LoginThrottle>, user: &str, client: IpAddr, now: Instant) {
        throttle
            .admit(user, client, now)
            .expect("admitted")
            .failed(now);
    }

    #[test]
    fn waits_grow_with_failures_up_to_the_cap_and_then_the_pair_gets_in_again() {
        let throttle = throttle(100);
        let start = Instant::now();
        for _ in 0..3 {
            fail(&throttle, "Alice", HOME, start);
        }
        // Three free failures, then one second, doubling per failure, capped at eight.
        let wait = throttle.admit("alice", HOME, start).err().expect("blocked");
        assert!(wait <= Duration::from_secs(1) && wait > Duration::from_millis(900));
        let mut now = start;
        let mut waits = Vec::new();
        for _ in 0..5 {
            now += throttle.admit("alice", HOME, now).err().expect("blocked");
            fail(&throttle, "alice", HOME, now);
            waits.push(throttle.admit("alice", HOME, now).err().expect("blocked"));
        }
        let secs: Vec<u64> = waits.iter().map(|w| w.as_secs()).collect();
        assert_eq!(secs, [2, 4, 8, 8, 8]);
        // Another client address is not slowed by these guesses.
        throttle
            .admit("alice", ELSEWHERE, now)
            .expect("admitted")
            .succeeded(now);
        // After the wait, the right password gets in and clears the count.
        now += Duration::from_secs(8);
        throttle
            .admit("alice", HOME, now)
            .expect("admitted")
            .succeeded(now);
        fail(&throttle, "alice", HOME, now);
        assert!(throttle.admit("alice", HOME, now).is_ok());
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_while() {
        let throttle = throttle(100);
        let start = Instant::now();
        for _ in 0..3 {
            fail(&throttle, "bob", HOME, start);
        }
        assert!(throttle.admit("bob", HOME, start).is_err());
        let later = start + Duration::from_secs(61);
        assert!(throttle.admit("bob", HOME, later).is_ok());
    }

    #[test]
    fn parallel_guesses_cannot_overrun_the_free_attempts() {
        let throttle = throttle(100);
        let now = Instant::now();
        let admitted: Vec<Attempt> = (0..10)
            .filter_map(|_| throttle.admit("carol", HOME, now).ok())
            .collect();
        assert_eq!(admitted.len(), 3);
        // Undecided tries (the account service was down) do not count as failures.
        drop(admitted);
        assert!(throttle.admit("carol", HOME, now).is_ok());
    }

    #[test]
    fn memory_is_bounded() {
        let throttle = throttle(50);
        let now = Instant::now();
        for i in 0..1_000 {
            fail(
                &throttle,
                &format!("user{i}"),
                HOME,
                now + Duration::from_millis(i),
            );
        }
        assert!(throttle.len() <= 50, "{}", throttle.len());
        // The most recent pairs are the ones kept.
        assert!(
            throttle
                .admit("user999", HOME, now + Duration::from_secs(1))
                .is_ok()
        );
    }
}
