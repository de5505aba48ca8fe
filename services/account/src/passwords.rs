//! Password hashing with Argon2id.
//!
//! Hashing is deliberately slow and memory-hungry, so it runs on Tokio's blocking pool (never on
//! the threads that serve requests), in two lanes: password checks (logins) and new hashes
//! (registrations, password changes). Each lane caps how many run at once and how many may wait;
//! one more is refused at once ([`HashError::Busy`]), so a flood of registrations gets fast
//! refusals and cannot make logins wait behind it. Checking
//! credentials for an unknown user verifies against a dummy hash made with the same parameters,
//! so that answer takes as long as a wrong password and does not reveal which usernames exist.
//! The dummy hash is made once, in the background after start-up (see
//! [`PasswordHasher::prepare_in_background`]): a hash costs tens of milliseconds of CPU, which
//! start-up and readiness need not wait for.

use std::{fmt, sync::Arc};

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{self, PasswordHasher as _, PasswordVerifier as _, SaltString},
};
use rand::{RngCore, rngs::OsRng};
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

use crate::{configuration::HashingConfig, domain::Password};

/// A stored password hash in PHC string form (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
///
/// Only the store creates one from a database row, and only [`PasswordHasher`] reads it. It has
/// no `Display`, and its `Debug` hides the value, so it cannot be logged or sent by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a value read from the database.
    pub(crate) fn from_stored(phc: String) -> Self {
        Self(phc)
    }

    /// The value to write to the database.
    pub(crate) fn as_stored(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid Argon2 parameters: {0}")]
    Parameters(argon2::Error),
    #[error("cannot hash the password: {0}")]
    Hash(password_hash::Error),
    /// A stored hash that does not parse: the database holds something this code never wrote.
    #[error("a stored password hash is malformed: {0}")]
    Malformed(password_hash::Error),
    #[error("the hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("the password hasher is shut down")]
    Closed,
    /// More work is waiting than the lane takes; nothing was done.
    #[error("too many password hashes are waiting")]
    Busy,
}

/// Hashes and verifies passwords. Cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    checks: Lane,
    new_hashes: Lane,
    /// Verified against when the user does not exist; made once, see [`Self::dummy`].
    dummy: Arc<OnceCell<PasswordHash>>,
}

impl PasswordHasher {
    /// Checks the parameters.
    pub fn new(config: &HashingConfig) -> Result<Self, HashError> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(HashError::Parameters)?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let checks = config.max_concurrent.max(1);
        Ok(Self {
            argon2,
            checks: Lane::new("check", checks, config.max_queued),
            new_hashes: Lane::new("new_hash", checks.div_ceil(2), config.max_queued),
            dummy: Arc::new(OnceCell::new()),
        })
    }

    /// Starts making the dummy hash on a task of its own. Call it once start-up's own work is
    /// done: on a single core the hash would otherwise delay start-up by its whole cost.
    pub fn prepare_in_background(&self) {
        let hasher = self.clone();
        tokio::spawn(async move {
            // A failure here is met again, and reported, by the first verification that needs
            // the dummy hash.
            let _ = hasher.dummy().await;
        });
    }

    /// The dummy hash: a hash of a random password nobody knows, so no input ever verifies
    /// against it. Made once; a verification that comes while it is being made waits for it
    /// (the first unknown-user check after start-up may take one hash longer).
    async fn dummy(&self) -> Result<&PasswordHash, HashError> {
        self.dummy
            .get_or_try_init(|| async {
                let mut secret = [0u8; 32];
                OsRng.fill_bytes(&mut secret);
                let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
                self.hash(&Password::candidate(&secret)).await
            })
            .await
    }

    /// A new salted hash of `password`.
    pub async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let argon2 = self.argon2.clone();
        let password = password.clone();
        self.run_blocking(&self.new_hashes, move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2
                .hash_password(password.expose(), &salt)
                .map(|hash| PasswordHash(hash.to_string()))
                .map_err(HashError::Hash)
        })
        .await
    }

    /// Whether `password` matches `stored`. With no stored hash (unknown user) it verifies
    /// against the dummy hash, which takes the same time and always fails.
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<&PasswordHash>,
    ) -> Result<bool, HashError> {
        let known = stored.is_some();
        let hash = match stored {
            Some(stored) => stored.clone(),
            None => self.dummy().await?.clone(),
        };
        let argon2 = self.argon2.clone();
        let password = password.clone();
        let matches = self
            .run_blocking(&self.checks, move || {
                let parsed =
                    password_hash::PasswordHash::new(&hash.0).map_err(HashError::Malformed)?;
                // The parameters come from the stored hash, so hashes made before a parameter
                // change still verify.
                match argon2.verify_password(password.expose(), &parsed) {
                    Ok(()) => Ok(true),
                    Err(password_hash::Error::Password) => Ok(false),
                    Err(other) => Err(HashError::Malformed(other)),
                }
            })
            .await?;
        Ok(known && matches)
    }

    async fn run_blocking<T: Send + 'static>(
        &self,
        lane: &Lane,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = lane.enter().await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let outcome = work();
            // Argon2's memory (19 MiB by default) was freed on this thread; hand it back to
            // the system now rather than keep it resident until the allocator next tidies up.
            platform::allocator::release_freed_memory();
            outcome
        })
        .await?
    }
}

/// One kind of hashing work's share: at most `running` at once and `max_queued` waiting.
#[derive(Clone)]
struct Lane {
    name: &'static str,
    permits: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
    max_queued: usize,
}

impl Lane {
    fn new(name: &'static str, running: usize, max_queued: usize) -> Self {
        Self {
            name,
            permits: Arc::new(Semaphore::new(running.max(1))),
            queued: Arc::new(AtomicUsize::new(0)),
            max_queued,
        }
    }

    /// A turn to run, at once or after waiting; [`HashError::Busy`] when the queue is full.
    async fn enter(&self) -> Result<OwnedSemaphorePermit, HashError> {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(permit);
        }
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            metrics::counter!("account_hashing_refused_total", "lane" => self.name).increment(1);
            return Err(HashError::Busy);
        }
        // Leaves the queue however the wait ends (a turn, a shutdown, a caller that gave up).
        let _waiting = Waiting(Arc::clone(&self.queued));
        Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| HashError::Closed)
    }
}

struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> HashingConfig {
        HashingConfig {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 2,
            max_queued: 8,
        }
    }

    #[tokio::test]
    async fn a_full_lane_refuses_at_once_and_the_other_lane_is_not_affected() {
        let new_hashes = Lane::new("new_hash", 1, 1);
        let checks = Lane::new("check", 1, 1);
        let running = new_hashes.enter().await.expect("a turn");
        let queued = tokio::spawn({
            let lane = new_hashes.clone();
            async move { lane.enter().await.map(drop) }
        });
        // Wait until the spawned one is queued.
        while new_hashes.queued.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(new_hashes.enter().await, Err(HashError::Busy)));
        // Logins have their own lane.
        drop(checks.enter().await.expect("a check runs"));
        drop(running);
        queued
            .await
            .expect("task")
            .expect("the queued one gets its turn");
        assert_eq!(new_hashes.queued.load(Ordering::Acquire), 0);
        drop(new_hashes.enter().await.expect("room again"));
    }

    #[tokio::test]
    async fn hashes_are_salted_argon2id_and_verify_only_the_right_password() {
        let hasher = PasswordHasher::new(&cheap()).expect("hasher");
        let password = Password::new("correct horse").expect("password");
        let first = hasher.hash(&password).await.expect("hash");
        let second = hasher.hash(&password).await.expect("hash");
        assert!(
            first
                .as_stored()
                .starts_with("$argon2id$v=19$m=64,t=1,p=1$")
        );
        assert_ne!(first, second, "each hash has its own salt");
        assert!(!format!("{first:?}").contains("argon2"));

        assert!(
            hasher
                .verify(&password, Some(&first))
                .await
                .expect("verify")
        );
        let wrong = Password::candidate("correct horse ");
        assert!(!hasher.verify(&wrong, Some(&first)).await.expect("verify"));
        assert!(!hasher.verify(&password, None).await.expect("verify"));
    }

    #[tokio::test]
    async fn the_dummy_hash_is_made_once_with_the_configured_parameters() {
        let hasher = PasswordHasher::new(&cheap()).expect("hasher");
        hasher.prepare_in_background();
        let password = Password::new("correct horse").expect("password");
        // Whether or not the background task got there first, both checks use one dummy.
        assert!(!hasher.verify(&password, None).await.expect("verify"));
        let dummy = hasher.dummy().await.expect("dummy").clone();
        assert!(!hasher.verify(&password, None).await.expect("verify"));
        assert_eq!(hasher.dummy().await.expect("dummy"), &dummy);
        assert!(
            dummy
                .as_stored()
                .starts_with("$argon2id$v=19$m=64,t=1,p=1$")
        );
        // Clones share it.
        assert_eq!(hasher.clone().dummy().await.expect("dummy"), &dummy);
    }

    #[tokio::test]
    async fn hashes_made_with_other_parameters_still_verify() {
        let old = PasswordHasher::new(&cheap()).expect("hasher");
        let password = Password::new("pw").expect("password");
        let hash = old.hash(&password).await.expect("hash");
        let new = PasswordHasher::new(&HashingConfig {
            memory_kib: 128,
            iterations: 2,
            ..cheap()
        })
        .expect("hasher");
        assert!(new.verify(&password, Some(&hash)).await.expect("verify"));
    }

    #[tokio::test]
    async fn bad_parameters_and_malformed_hashes_are_errors_not_panics() {
        let too_little_memory = HashingConfig {
            memory_kib: 4,
            ..cheap()
        };
        assert!(matches!(
            PasswordHasher::new(&too_little_memory),
            Err(HashError::Parameters(_))
        ));
        let hasher = PasswordHasher::new(&cheap()).expect("hasher");
        let garbage = PasswordHash::from_stored("not a hash".into());
        assert!(matches!(
            hasher
                .verify(&Password::candidate("x"), Some(&garbage))
                .await,
            Err(HashError::Malformed(_))
        ));
    }
}
