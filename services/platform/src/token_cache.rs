//! Access tokens that already passed verification, remembered until they expire.
//!
//! Checking an Ed25519 signature costs tens of microseconds, more than everything else a read
//! request does in the gateway, and a client sends the same token with every request for hours.
//! So [`crate::tokens::TokenVerifier`] keeps what it concluded about each token it accepted:
//!
//! - the key is the whole token text, signature included, so only the identical token hits;
//! - an entry is used only while the token is unexpired (with the verifier's leeway), exactly
//!   as long as a fresh verification would accept it;
//! - only accepted tokens are stored, so invalid tokens cannot fill the cache; it holds at most
//!   `capacity` entries, dropping expired ones first and everything when that is not enough.

use std::{collections::HashMap, sync::Mutex};

use crate::tokens::Caller;

/// How many verified tokens a verifier remembers by default.
pub const DEFAULT_CAPACITY: usize = 1024;

/// What one verification concluded.
#[derive(Debug, Clone)]
struct Verified {
    caller: Caller,
    /// Expiry, seconds since the Unix epoch.
    exp: i64,
}

/// A bounded map from token text to its verified caller.
#[derive(Debug)]
pub struct VerifiedTokens {
    entries: Mutex<HashMap<Box<str>, Verified>>,
    capacity: usize,
}

impl VerifiedTokens {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The caller of `token` if it was verified before and expires at or after `not_before`
    /// (now minus the leeway).
    pub fn get(&self, token: &str, not_before: i64) -> Option<Caller> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(token)
            .filter(|verified| verified.exp >= not_before)
            .map(|verified| verified.caller.clone())
    }

    /// Remembers that `token`, expiring at `exp`, speaks for `caller`. `not_before` decides
    /// which entries are stale when room is needed.
    pub fn insert(&self, token: &str, caller: Caller, exp: i64, not_before: i64) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= self.capacity {
            entries.retain(|_, verified| verified.exp >= not_before);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(token.into(), Verified { caller, exp });
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |entries| entries.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(name: &str) -> Caller {
        Caller {
            username: Some(name.into()),
            account_id: Some(7),
            authorities: vec!["ROLE_USER".into()],
            scopes: vec!["BROWSER".into()],
            client_id: "test".into(),
        }
    }

    #[test]
    fn a_remembered_token_is_served_until_it_expires() {
        let cache = VerifiedTokens::new(8);
        assert_eq!(cache.get("a.b.c", 100), None);
        cache.insert("a.b.c", caller("alice"), 200, 100);
        assert_eq!(cache.get("a.b.c", 150), Some(caller("alice")));
        assert_eq!(cache.get("a.b.c", 200), Some(caller("alice")));
        assert_eq!(cache.get("a.b.c", 201), None, "expired");
        // Only the identical text hits: another signature is another token.
        assert_eq!(cache.get("a.b.d", 100), None);
    }

    #[test]
    fn the_cache_never_grows_past_its_capacity() {
        let cache = VerifiedTokens::new(3);
        cache.insert("old", caller("old"), 10, 0);
        cache.insert("t1", caller("1"), 1_000, 0);
        cache.insert("t2", caller("2"), 1_000, 0);
        // Full: the expired entry makes room.
        cache.insert("t3", caller("3"), 1_000, 100);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("old", 0), None);
        assert!(cache.get("t1", 100).is_some());
        // Full of live entries: everything goes, the new one stays.
        cache.insert("t4", caller("4"), 1_000, 100);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get("t4", 100), Some(caller("4")));
    }
}
