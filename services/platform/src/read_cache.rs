//! Hot reads from memory: values loaded from the database, kept for a bounded time.
//!
//! A [`ReadCache`] answers a read from memory while its copy is younger than `fresh_for`, and
//! from the database otherwise. A write made through this process calls
//! [`ReadCache::invalidate_all`] in the same operation, so this process reads its own writes at
//! once; a write made through another replica (several replicas share one PostgreSQL database)
//! shows here within `fresh_for`. That bound is the whole consistency contract, so only reads
//! that may lag by it belong here: shop windows (the catalogue, a profile), never a decision
//! (stock reservations, credentials), which always reads the database.
//!
//! Memory is bounded by `capacity` entries. Loads are not merged: when a popular entry expires,
//! the readers that miss at that moment each load it once, which costs one query per concurrent
//! reader per `fresh_for`, and avoids making every reader wait behind one slow load.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

/// A bounded map of recently loaded values (see the module docs).
#[derive(Debug)]
pub struct ReadCache<K, V> {
    fresh_for: Duration,
    capacity: usize,
    state: Mutex<State<K, V>>,
}

#[derive(Debug)]
struct State<K, V> {
    entries: HashMap<K, Entry<V>>,
    /// Bumped by every invalidation. A load that began before one must not store what it read:
    /// it may predate the write.
    generation: u64,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    loaded_at: Instant,
}

impl<K: Hash + Eq + Clone, V: Clone> ReadCache<K, V> {
    /// A cache whose entries serve for `fresh_for` (zero turns it off) and that holds at most
    /// `capacity` of them.
    pub fn new(fresh_for: Duration, capacity: usize) -> Self {
        Self {
            fresh_for,
            capacity: capacity.max(1),
            state: Mutex::new(State {
                entries: HashMap::new(),
                generation: 0,
            }),
        }
    }

    /// The value for `key`: from memory while fresh, otherwise from `load`, whose answer is kept
    /// when it is `Some` (an absence is not remembered: it may be created any moment).
    pub async fn get_or_load<E, Fut>(
        &self,
        key: &K,
        load: impl FnOnce() -> Fut,
    ) -> Result<Option<V>, E>
    where
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        let generation = {
            let state = self.lock();
            if let Some(entry) = state.entries.get(key)
                && entry.loaded_at.elapsed() < self.fresh_for
            {
                return Ok(Some(entry.value.clone()));
            }
            state.generation
        };
        let loaded_at = Instant::now();
        let value = load().await?;
        if let Some(value) = &value
            && !self.fresh_for.is_zero()
        {
            self.store(key.clone(), value.clone(), loaded_at, generation);
        }
        Ok(value)
    }

    /// Forgets every entry, and every load still under way. Call it in the operation that
    /// changes what the entries were read from.
    pub fn invalidate_all(&self) {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.clear();
    }

    fn store(&self, key: K, value: V, loaded_at: Instant, generation: u64) {
        let mut state = self.lock();
        if state.generation != generation {
            return;
        }
        if state.entries.len() >= self.capacity && !state.entries.contains_key(&key) {
            let fresh_for = self.fresh_for;
            state
                .entries
                .retain(|_, entry| entry.loaded_at.elapsed() < fresh_for);
            if state.entries.len() >= self.capacity {
                // Full of fresh entries: start over rather than track recency for each read.
                state.entries.clear();
            }
        }
        state.entries.insert(key, Entry { value, loaded_at });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K, V>> {
        // A panic cannot leave the map half-changed (every change is one call), so a poisoned
        // lock is still sound to use.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    async fn read(cache: &ReadCache<u32, u32>, key: u32, loads: &AtomicU32) -> Option<u32> {
        cache
            .get_or_load(&key, || async {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ()>(Some(key * 10))
            })
            .await
            .expect("load")
    }

    #[tokio::test]
    async fn a_fresh_entry_is_served_from_memory_and_an_invalidation_reloads_it() {
        let cache = ReadCache::new(Duration::from_secs(60), 10);
        let loads = AtomicU32::new(0);
        assert_eq!(read(&cache, 1, &loads).await, Some(10));
        assert_eq!(read(&cache, 1, &loads).await, Some(10));
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        cache.invalidate_all();
        assert_eq!(read(&cache, 1, &loads).await, Some(10));
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_entry_older_than_the_bound_is_loaded_again() {
        let cache = ReadCache::new(Duration::from_millis(30), 10);
        let loads = AtomicU32::new(0);
        read(&cache, 1, &loads).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
        read(&cache, 1, &loads).await;
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_load_overtaken_by_an_invalidation_is_not_kept() {
        let cache = ReadCache::new(Duration::from_secs(60), 10);
        let stale = cache
            .get_or_load(&1, || async {
                // The write lands while this load is under way.
                cache.invalidate_all();
                Ok::<_, ()>(Some(1))
            })
            .await;
        assert_eq!(stale, Ok(Some(1)));
        let loads = AtomicU32::new(0);
        assert_eq!(read(&cache, 1, &loads).await, Some(10));
        assert_eq!(loads.load(Ordering::SeqCst), 1, "the stale value was kept");
    }

    #[tokio::test]
    async fn absences_are_not_remembered_and_the_size_stays_bounded() {
        let cache = ReadCache::<u32, u32>::new(Duration::from_secs(60), 3);
        let missing = cache.get_or_load(&7, || async { Ok::<_, ()>(None) }).await;
        assert_eq!(missing, Ok(None));
        let loads = AtomicU32::new(0);
        assert_eq!(read(&cache, 7, &loads).await, Some(70));
        for key in 0..100 {
            read(&cache, key, &loads).await;
            assert!(cache.lock().entries.len() <= 3);
        }
    }

    #[tokio::test]
    async fn a_zero_bound_turns_the_cache_off() {
        let cache = ReadCache::new(Duration::ZERO, 10);
        let loads = AtomicU32::new(0);
        read(&cache, 1, &loads).await;
        read(&cache, 1, &loads).await;
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }
}
