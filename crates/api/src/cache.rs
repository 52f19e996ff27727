//! The edge read cache: what makes Workers KV reads stale in production, modelled per region.
//!
//! A Workers KV location that has read a key keeps serving what it read, even "not found",
//! until the read's cacheTtl runs out, however many newer versions reach the location's store
//! meanwhile. This cache does the same for one region:
//! - A miss reads the store and fills the cache for the read's cacheTtl.
//! - A hit is served as it was filled, `CF-Cache-Status: HIT`, even after replication has
//!   brought something newer.
//! - A write made in the region becomes the region's cached copy, so a location sees its own
//!   writes at once.
//! - An expiration always wins: a cached value past its expiration is not served.
//!
//! Listings are cached the same way, by namespace, prefix, cursor and limit.
//!
//! # Newer wins
//! Fills and writes race: a read may have read the store just before a local write became
//! visible, and fill the cache just after the write stored its copy. So a key's cached state
//! never goes back to an older version. A fill or a write over a newer cached version keeps
//! the newer one. "Not found" carries the version of the delete that made it, if the cache
//! knows it, and otherwise counts as the oldest state of all.
//!
//! The cache holds values in memory, so its size is bounded. Past the bound the least recently
//! used entries go. The cache is split into shards, each behind a lock of its own, so that
//! readers of different keys rarely wait on each other. Each shard is an LRU list threaded
//! through a slab (indices, not pointers), so lookups, fills and evictions are O(1) without
//! unsafe code.
//!
//! Time is the region's clock in milliseconds, passed in by the caller: the cache reads no clock
//! itself, so it runs under virtual time too.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use edgekv_core::{Entry, NamespaceId, Version};
use edgekv_metrics::{Counter, Gauge, Registry};
use edgekv_store::KeyPage;
use parking_lot::Mutex;

/// Workers KV's default cacheTtl, in seconds.
pub const DEFAULT_CACHE_TTL: u64 = 60;
/// The shortest cacheTtl Workers KV accepts, in seconds.
pub const MIN_CACHE_TTL: u64 = 30;

/// How many shards the cache is split into.
const SHARDS: usize = 16;
/// What an entry costs beyond its key and value: the slab node, the map slot, the key's
/// allocation. An estimate, so that a cache of many tiny entries is bounded too.
const ENTRY_OVERHEAD: u64 = 160;

/// What is cached under one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CacheKey {
    /// A key's value (or its absence).
    Key(NamespaceId, String),
    /// A page of a listing.
    List {
        /// The namespace listed.
        namespace: NamespaceId,
        /// The prefix asked for.
        prefix: String,
        /// Where the page starts, as the client's cursor.
        cursor: String,
        /// The page size asked for.
        limit: usize,
    },
}

impl CacheKey {
    fn bytes(&self) -> u64 {
        match self {
            CacheKey::Key(_, key) => key.len() as u64,
            CacheKey::List { prefix, cursor, .. } => (prefix.len() + cursor.len()) as u64,
        }
    }

    fn kind(&self) -> Kind {
        match self {
            CacheKey::Key(..) => Kind::Get,
            CacheKey::List { .. } => Kind::List,
        }
    }
}

/// What a read found, as it is cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cached {
    /// The key's live entry.
    Entry(Entry),
    /// The key was absent (deleted, expired or never written): a negative entry, with the
    /// version of the delete when a write of this region made it.
    Missing(Option<Version>),
    /// A listing page.
    Page(Arc<KeyPage>),
}

impl Cached {
    fn bytes(&self) -> u64 {
        match self {
            Cached::Entry(entry) => {
                let value = entry.value.as_ref().map_or(0, |v| v.len());
                let metadata = entry.metadata.as_ref().map_or(0, |m| m.len());
                (value + metadata) as u64
            }
            Cached::Missing(_) => 0,
            Cached::Page(page) => page
                .keys
                .iter()
                .map(|k| (k.name.len() + k.metadata.as_ref().map_or(0, |m| m.len()) + 32) as u64)
                .sum(),
        }
    }

    /// Whether an expiration has passed since the entry was cached: then it is not served.
    fn expired(&self, now_ms: u64) -> bool {
        match self {
            Cached::Entry(entry) => {
                entry.expiration.is_some_and(|at| at.saturating_mul(1000) <= now_ms)
            }
            Cached::Missing(_) | Cached::Page(_) => false,
        }
    }

    /// The version this state is of, for "newer wins"; `None` for a listing page, which has
    /// no one version, and for "not found" with no known delete.
    fn version(&self) -> Option<Version> {
        match self {
            Cached::Entry(entry) => Some(entry.version),
            Cached::Missing(version) => *version,
            Cached::Page(_) => None,
        }
    }

    /// Whether this state may take the place of `old`: not if `old` is of a newer version.
    fn supersedes(&self, old: &Cached) -> bool {
        match (self, old) {
            (Cached::Page(_), _) | (_, Cached::Page(_)) => true,
            _ => self.version() >= old.version(),
        }
    }
}

/// Whether a read was served from the cache: the `CF-Cache-Status` a binding read answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served as cached.
    Hit,
    /// Read from the store (and cached).
    Miss,
}

impl CacheStatus {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Get,
    List,
}

/// The cache's series in the node's metrics registry.
#[derive(Debug)]
struct CacheMetrics {
    hits: [Counter; 2],
    misses: [Counter; 2],
    evictions: Counter,
    entries: Gauge,
    bytes: Gauge,
}

impl CacheMetrics {
    fn register(registry: &Registry) -> Self {
        let hits = registry.counter(
            "edgekv_edge_cache_hits_total",
            "Binding reads served from the region's edge cache, by kind (get, list).",
            &["kind"],
        );
        let misses = registry.counter(
            "edgekv_edge_cache_misses_total",
            "Binding reads that went to the store and filled the edge cache, by kind.",
            &["kind"],
        );
        CacheMetrics {
            hits: [hits.with(&["get"]), hits.with(&["list"])],
            misses: [misses.with(&["get"]), misses.with(&["list"])],
            evictions: registry
                .counter(
                    "edgekv_edge_cache_evictions_total",
                    "Edge cache entries dropped to stay within the cache's memory bound.",
                    &[],
                )
                .with(&[]),
            entries: registry
                .gauge("edgekv_edge_cache_entries", "Entries in the edge cache.", &[])
                .with(&[]),
            bytes: registry
                .gauge(
                    "edgekv_edge_cache_bytes",
                    "Memory the edge cache accounts for its entries (keys, values, overhead).",
                    &[],
                )
                .with(&[]),
        }
    }
}

/// One region's edge read cache.
#[derive(Debug)]
pub struct EdgeCache {
    shards: Box<[Mutex<Shard>]>,
    /// Picks a key's shard. Fixed keys, so that which entries share a shard, and so which go
    /// first under memory pressure, is the same in every run (a simulation replays from its
    /// seed); a client that aims its keys at one shard only makes that shard's lock busier.
    hasher: BuildHasherDefault<DefaultHasher>,
    /// Each shard's share of the memory bound.
    shard_limit: u64,
    /// Entries and bytes over all shards.
    entries: AtomicU64,
    bytes: AtomicU64,
    metrics: CacheMetrics,
}

/// Moves `total` by the change from `before` to `after`; returns the new total.
fn shift(total: &AtomicU64, (before, after): (u64, u64)) -> u64 {
    if after >= before {
        total.fetch_add(after - before, Ordering::Relaxed) + (after - before)
    } else {
        total.fetch_sub(before - after, Ordering::Relaxed).saturating_sub(before - after)
    }
}

impl EdgeCache {
    /// A cache holding at most about `memory` bytes, its series registered in `registry`.
    pub fn new(memory: u64, registry: &Registry) -> Self {
        EdgeCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: BuildHasherDefault::default(),
            shard_limit: memory / SHARDS as u64,
            entries: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            metrics: CacheMetrics::register(registry),
        }
    }

    fn shard(&self, key: &CacheKey) -> &Mutex<Shard> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    /// What is cached under `key` and still fresh at `now_ms`, counted as a hit; `None`
    /// (counted as a miss) when the caller must read the store and [`EdgeCache::fill`].
    pub fn lookup(&self, key: &CacheKey, now_ms: u64) -> Option<Cached> {
        let kind = key.kind() as usize;
        let found = self.changing(self.shard(key), |shard| (shard.lookup(key, now_ms), 0));
        match found {
            Some(cached) => {
                self.metrics.hits[kind].inc();
                Some(cached)
            }
            None => {
                self.metrics.misses[kind].inc();
                None
            }
        }
    }

    /// Caches what a read of `key` found, for `ttl_ms` from `now_ms`.
    pub fn fill(&self, key: CacheKey, value: Cached, ttl_ms: u64, now_ms: u64) {
        let (until, limit) = (now_ms.saturating_add(ttl_ms), self.shard_limit);
        self.changing(self.shard(&key), |shard| ((), shard.insert(key, value, until, limit)));
    }

    /// A write in this region changed `key`: the cache now holds the new state, for what was
    /// left of the cached entry's cacheTtl, or for `ttl_ms` from `now_ms` if the key was not
    /// cached. (Which also fences off a read that read the store before the write and fills
    /// after it: its older state does not replace this one.)
    pub fn replace(&self, key: CacheKey, value: Cached, ttl_ms: u64, now_ms: u64) {
        let (until, limit) = (now_ms.saturating_add(ttl_ms), self.shard_limit);
        self.changing(self.shard(&key), |shard| ((), shard.replace(key, value, until, limit)));
    }

    /// Entries and bytes held now.
    pub fn usage(&self) -> (u64, u64) {
        (self.entries.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed))
    }

    /// Runs `change` on `shard` (it returns its result and how many entries it evicted), and
    /// carries what it changed into the totals and the gauges. The totals are kept by
    /// difference, so no operation has to visit every shard.
    fn changing<T>(&self, shard: &Mutex<Shard>, change: impl FnOnce(&mut Shard) -> (T, u64)) -> T {
        let (out, evicted, entries, bytes) = {
            let mut shard = shard.lock();
            let before = (shard.map.len() as u64, shard.bytes);
            let (out, evicted) = change(&mut shard);
            (out, evicted, (before.0, shard.map.len() as u64), (before.1, shard.bytes))
        };
        let entries = shift(&self.entries, entries);
        let bytes = shift(&self.bytes, bytes);
        if evicted > 0 {
            self.metrics.evictions.add(evicted);
        }
        self.metrics.entries.set(entries as i64);
        self.metrics.bytes.set(bytes as i64);
        out
    }
}

/// Marks the end of the LRU list.
const NIL: usize = usize::MAX;

/// One cached entry, a node of its shard's LRU list.
#[derive(Debug)]
struct Node {
    key: CacheKey,
    value: Cached,
    fresh_until_ms: u64,
    bytes: u64,
    /// Towards the most recently used end.
    newer: usize,
    /// Towards the least recently used end.
    older: usize,
}

/// A shard: a map to slab slots, and the LRU order threaded through the slab.
#[derive(Debug)]
struct Shard {
    map: HashMap<CacheKey, usize>,
    slab: Vec<Option<Node>>,
    free: Vec<usize>,
    /// Most recently used.
    newest: usize,
    /// Least recently used: the next to go.
    oldest: usize,
    bytes: u64,
}

impl Default for Shard {
    fn default() -> Self {
        Shard {
            map: HashMap::new(),
            slab: Vec::new(),
            free: Vec::new(),
            newest: NIL,
            oldest: NIL,
            bytes: 0,
        }
    }
}

impl Shard {
    fn node(&mut self, at: usize) -> &mut Node {
        // Every index in the map or the list points at an occupied slot.
        self.slab[at].as_mut().expect("an occupied cache slot")
    }

    fn lookup(&mut self, key: &CacheKey, now_ms: u64) -> Option<Cached> {
        let at = *self.map.get(key)?;
        let node = self.node(at);
        if node.fresh_until_ms <= now_ms || node.value.expired(now_ms) {
            self.remove(at);
            return None;
        }
        let value = node.value.clone();
        self.unlink(at);
        self.push_newest(at);
        Some(value)
    }

    /// Inserts (or refreshes) an entry, unless a newer version is cached; returns how many
    /// entries were evicted for room.
    fn insert(&mut self, key: CacheKey, value: Cached, fresh_until_ms: u64, limit: u64) -> u64 {
        if let Some(&at) = self.map.get(&key) {
            if !value.supersedes(&self.node(at).value) {
                return 0;
            }
            self.remove(at);
        }
        let bytes = key.bytes() + value.bytes() + ENTRY_OVERHEAD;
        if bytes > limit {
            // Bigger than the whole shard: caching it would flush everything else.
            return 0;
        }
        let evicted = self.make_room(bytes, limit);
        let node = Node { key: key.clone(), value, fresh_until_ms, bytes, newer: NIL, older: NIL };
        let at = match self.free.pop() {
            Some(at) => {
                self.slab[at] = Some(node);
                at
            }
            None => {
                self.slab.push(Some(node));
                self.slab.len() - 1
            }
        };
        self.map.insert(key, at);
        self.bytes += bytes;
        self.push_newest(at);
        evicted
    }

    fn replace(&mut self, key: CacheKey, value: Cached, fresh_until_ms: u64, limit: u64) -> u64 {
        let fresh_until_ms = match self.map.get(&key) {
            Some(&at) => self.node(at).fresh_until_ms,
            None => fresh_until_ms,
        };
        self.insert(key, value, fresh_until_ms, limit)
    }

    fn make_room(&mut self, bytes: u64, limit: u64) -> u64 {
        let mut evicted = 0;
        while self.bytes + bytes > limit && self.oldest != NIL {
            self.remove(self.oldest);
            evicted += 1;
        }
        evicted
    }

    fn remove(&mut self, at: usize) {
        self.unlink(at);
        if let Some(node) = self.slab[at].take() {
            self.bytes -= node.bytes;
            self.map.remove(&node.key);
            self.free.push(at);
        }
    }

    fn unlink(&mut self, at: usize) {
        let (newer, older) = {
            let node = self.node(at);
            let links = (node.newer, node.older);
            node.newer = NIL;
            node.older = NIL;
            links
        };
        match newer {
            NIL => self.newest = older,
            n => self.node(n).older = older,
        }
        match older {
            NIL => self.oldest = newer,
            o => self.node(o).newer = newer,
        }
    }

    fn push_newest(&mut self, at: usize) {
        let previous = self.newest;
        {
            let node = self.node(at);
            node.older = previous;
            node.newer = NIL;
        }
        match previous {
            NIL => self.oldest = at,
            p => self.node(p).newer = at,
        }
        self.newest = at;
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use edgekv_core::{RegionId, Timestamp};

    use super::*;

    fn ns() -> NamespaceId {
        NamespaceId::parse("0123456789abcdef0123456789abcdef").expect("a valid id")
    }

    fn entry(value: &str, expiration: Option<u64>) -> Cached {
        versioned(value, expiration, 1)
    }

    fn versioned(value: &str, expiration: Option<u64>, ts: u64) -> Cached {
        let region: RegionId = "wnam".parse().expect("a region");
        Cached::Entry(Entry {
            value: Some(Bytes::from(value.to_owned())),
            metadata: None,
            expiration,
            version: Version::new(Timestamp(ts), region),
        })
    }

    fn key(name: &str) -> CacheKey {
        CacheKey::Key(ns(), name.to_owned())
    }

    #[test]
    fn a_hit_is_served_until_its_ttl_runs_out_then_the_store_is_asked_again() {
        let cache = EdgeCache::new(1 << 20, &Registry::default());
        assert_eq!(cache.lookup(&key("k"), 0), None);
        cache.fill(key("k"), entry("old", None), 30_000, 1_000);
        assert_eq!(cache.lookup(&key("k"), 30_999), Some(entry("old", None)));
        assert_eq!(cache.lookup(&key("k"), 31_000), None, "the ttl ran out");
        cache.fill(key("gone"), Cached::Missing(None), 60_000, 0);
        let missing = cache.lookup(&key("gone"), 59_999);
        assert_eq!(missing, Some(Cached::Missing(None)), "negative caching");
    }

    #[test]
    fn an_expiration_wins_over_the_cache() {
        let cache = EdgeCache::new(1 << 20, &Registry::default());
        cache.fill(key("k"), entry("v", Some(100)), 60_000, 90_000);
        assert!(cache.lookup(&key("k"), 99_999).is_some());
        assert_eq!(cache.lookup(&key("k"), 100_000), None);
    }

    #[test]
    fn a_local_write_replaces_what_is_cached_keeping_its_ttl_or_caches_itself() {
        let cache = EdgeCache::new(1 << 20, &Registry::default());
        cache.replace(key("never-read"), versioned("new", None, 5), 60_000, 0);
        assert_eq!(cache.lookup(&key("never-read"), 59_999), Some(versioned("new", None, 5)));
        cache.fill(key("k"), entry("old", None), 30_000, 0);
        let deleted = Cached::Missing(Some(Version::new(Timestamp(9), "wnam".parse().unwrap())));
        cache.replace(key("k"), deleted.clone(), 60_000, 10_000);
        assert_eq!(cache.lookup(&key("k"), 29_999), Some(deleted), "the old entry's ttl holds");
        assert_eq!(cache.lookup(&key("k"), 30_000), None);
    }

    #[test]
    fn a_cached_state_never_goes_back_to_an_older_version() {
        let cache = EdgeCache::new(1 << 20, &Registry::default());
        // A write stored its copy; a read that read the store before it fills afterwards.
        cache.replace(key("k"), versioned("written", None, 20), 60_000, 0);
        cache.fill(key("k"), versioned("read-before", None, 10), 60_000, 1);
        cache.fill(key("k"), Cached::Missing(None), 60_000, 1);
        assert_eq!(cache.lookup(&key("k"), 2), Some(versioned("written", None, 20)));
        // Two writes whose copies arrive out of order.
        cache.replace(key("k"), versioned("second", None, 40), 60_000, 3);
        cache.replace(key("k"), versioned("first", None, 30), 60_000, 3);
        assert_eq!(cache.lookup(&key("k"), 4), Some(versioned("second", None, 40)));
        // A newer state does take the place of an older one.
        cache.fill(key("k"), versioned("newest", None, 50), 60_000, 5);
        assert_eq!(cache.lookup(&key("k"), 6), Some(versioned("newest", None, 50)));
    }

    #[test]
    fn the_least_recently_used_entries_go_first_and_memory_stays_bounded() {
        let registry = Registry::default();
        // One shard's share is 1/16 of the bound: room for a few 1 KiB values per shard.
        let cache = EdgeCache::new(16 * 4 * 1024, &registry);
        let big = "x".repeat(1000);
        for i in 0..2_000 {
            cache.fill(key(&format!("k{i}")), entry(&big, None), 60_000, 0);
            // Keep k0 hot: it is looked up after every fill, so it is never the oldest.
            assert!(cache.lookup(&key("k0"), 1).is_some(), "k0 evicted at {i}");
        }
        let (entries, bytes) = cache.usage();
        assert!(bytes <= 16 * 4 * 1024, "{bytes} bytes held");
        assert!(entries < 100, "{entries} entries held");
        let text = registry.render();
        assert!(text.contains("edgekv_edge_cache_evictions_total"), "{text}");
        assert!(text
            .lines()
            .any(|l| l.starts_with("edgekv_edge_cache_hits_total{kind=\"get\"} 2000")));
    }

    #[test]
    fn an_entry_larger_than_a_shard_is_not_cached() {
        let cache = EdgeCache::new(16 * 1024, &Registry::default());
        cache.fill(key("small"), entry("v", None), 60_000, 0);
        cache.fill(key("huge"), entry(&"x".repeat(4096), None), 60_000, 0);
        assert_eq!(cache.lookup(&key("huge"), 1), None);
        assert!(cache.lookup(&key("small"), 1).is_some());
    }

    #[test]
    fn the_lru_list_survives_any_order_of_operations() {
        let mut shard = Shard::default();
        let mut state = 7u64;
        for step in 0..20_000u64 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let name = format!("k{}", (state >> 33) % 50);
            match (state >> 20) % 4 {
                0 | 1 => {
                    shard.insert(key(&name), entry("v", None), step + 100, 4_000);
                }
                2 => {
                    shard.lookup(&key(&name), step);
                }
                _ => {
                    shard.replace(key(&name), Cached::Missing(None), step + 100, 4_000);
                }
            }
            // Walking the list from newest to oldest visits every entry once.
            let (mut at, mut seen, mut bytes) = (shard.newest, 0, 0);
            while at != NIL {
                let node = shard.slab[at].as_ref().expect("linked slots are occupied");
                bytes += node.bytes;
                seen += 1;
                at = node.older;
            }
            assert_eq!((seen, bytes), (shard.map.len(), shard.bytes), "at step {step}");
            assert!(shard.bytes <= 4_000);
        }
    }
}
