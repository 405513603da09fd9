//! The process's in-memory caches: quick_cache's bounded concurrent map (S3-FIFO eviction,
//! sharded locks, no background work), and [`TtlCache`] over it for entries that go stale.
//!
//! moka did this before. A lookup cost 600-700 instructions there (its epoch-based map, a
//! read log and a housekeeper that a later request runs), three lookups per signed-in
//! request; here it is a hash, a shard's read lock and a probe (BENCHMARKS.md, issue 17).

use std::{
    hash::Hash,
    time::{Duration, Instant},
};

pub use quick_cache::{
    Equivalent,
    sync::{EntryAction, EntryResult},
};

/// A bounded concurrent map: at most `capacity` entries; past it, the least useful go.
pub type Cache<K, V> = quick_cache::sync::Cache<
    K,
    V,
    quick_cache::UnitWeighter,
    crate::FastHash,
    quick_cache::sync::DefaultLifecycle<K, V>,
>;

/// A [`Cache`] that starts empty (its tables grow with use) and holds at most `capacity`.
/// quick_cache sizes its shards from the expected number of entries (at least 32 each):
/// given the capacity, it keeps its default of four shards per core.
pub fn bounded<K: Eq + Hash, V: Clone>(capacity: u64) -> Cache<K, V> {
    Cache::with(
        usize::try_from(capacity).unwrap_or(usize::MAX),
        capacity,
        quick_cache::UnitWeighter,
        crate::FastHash::default(),
        quick_cache::sync::DefaultLifecycle::default(),
    )
}

/// A [`Cache`] whose entries are trusted for `ttl` after they were inserted, then read as
/// missing (and dropped).
pub struct TtlCache<K, V> {
    map: Cache<K, (Instant, V)>,
    ttl: Duration,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        TtlCache {
            map: bounded(capacity),
            ttl,
        }
    }

    /// The value under `key`, if it was inserted less than the TTL ago.
    pub fn get<Q: Hash + Equivalent<K> + ?Sized>(&self, key: &Q) -> Option<V> {
        let (inserted, value) = self.map.get(key)?;
        if inserted.elapsed() < self.ttl {
            return Some(value);
        }
        self.map.remove_if(key, |(at, _)| *at == inserted);
        None
    }

    pub fn insert(&self, key: K, value: V) {
        self.map.insert(key, (Instant::now(), value));
    }

    pub fn remove<Q: Hash + Equivalent<K> + ?Sized>(&self, key: &Q) {
        self.map.remove(key);
    }

    /// Keeps only the entries `keep` says yes to.
    pub fn retain(&self, keep: impl Fn(&K, &V) -> bool) {
        self.map.retain(|key, (_, value)| keep(key, value));
    }

    pub fn clear(&self) {
        self.map.clear();
    }

    /// Drops the entries older than the TTL (a stale entry otherwise stays until it is read
    /// or evicted): the server's periodic upkeep calls it, so the memory a burst of sign-ins
    /// took goes back.
    pub fn forget_stale(&self) {
        let ttl = self.ttl;
        self.map.retain(|_, (inserted, _)| inserted.elapsed() < ttl);
    }

    /// Entries held, stale ones included until they are read or evicted.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_go_stale_after_the_ttl() {
        let cache = TtlCache::new(10, Duration::from_millis(50));
        cache.insert("a".to_owned(), 1);
        assert_eq!(cache.get("a"), Some(1));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("a"), None);
        assert!(cache.is_empty(), "a stale entry read is dropped");
        for i in 0..10 {
            cache.insert(i.to_string(), i);
        }
        std::thread::sleep(Duration::from_millis(60));
        cache.insert("fresh".to_owned(), 10);
        cache.forget_stale();
        assert_eq!(cache.len(), 1, "only the fresh entry is kept");
    }

    #[test]
    fn it_grows_from_empty_and_stays_bounded() {
        let cache = TtlCache::new(1_000, Duration::from_secs(60));
        for i in 0..500 {
            cache.insert(i.to_string(), i);
        }
        assert_eq!(cache.len(), 500, "all fit below the capacity");
        assert_eq!(cache.get("499"), Some(499));
        for i in 500..5_000 {
            cache.insert(i.to_string(), i);
        }
        assert!(cache.len() <= 1_000, "{}", cache.len());
    }

    #[test]
    fn remove_retain_and_clear() {
        let cache = TtlCache::new(10, Duration::from_secs(60));
        for i in 0..4 {
            cache.insert(i, i * 10);
        }
        cache.remove(&0);
        assert_eq!(cache.get(&0), None);
        cache.retain(|_, value| *value != 20);
        assert_eq!(cache.get(&2), None);
        assert_eq!(cache.get(&1), Some(10));
        cache.clear();
        assert!(cache.is_empty());
    }
}
