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
//! unsafe code, and a hash table of slab indices, so each key is stored once. The bound is in
//! bytes the allocator hands out: an entry is accounted at its slot and its heap allocations,
//! rounded as jemalloc rounds them.
//!
//! Time is the region's clock in milliseconds, passed in by the caller: the cache reads no clock
//! itself, so it runs under virtual time too.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use edgekv_core::{Entry, NamespaceId, Version};
use edgekv_metrics::{Counter, Gauge, Registry};
use edgekv_store::KeyPage;
use hashbrown::HashTable;
use parking_lot::Mutex;

/// Workers KV's default cacheTtl, in seconds.
pub const DEFAULT_CACHE_TTL: u64 = 60;
/// The shortest cacheTtl Workers KV accepts, in seconds.
pub const MIN_CACHE_TTL: u64 = 30;

/// How many shards the cache is split into.
const SHARDS: usize = 16;
/// What is cached under one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CacheKey {
    /// A key's value (or its absence).
    Key(NamespaceId, String),
    /// A page of a listing. Boxed: listings are the rare case, and every slot of the cache is
    /// as large as its largest key.
    List(Box<ListKey>),
}

/// What identifies a cached listing page.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ListKey {
    /// The namespace listed.
    pub namespace: NamespaceId,
    /// The prefix asked for.
    pub prefix: String,
    /// Where the page starts, as the client's cursor.
    pub cursor: String,
    /// The page size asked for.
    pub limit: usize,
}

impl CacheKey {
    /// The heap bytes the key holds beyond its slot. The namespace id is shared with the
    /// store's and costs nothing here.
    fn heap(&self) -> u64 {
        match self {
            CacheKey::Key(_, key) => allocation(key.capacity()),
            CacheKey::List(list) => {
                allocation(std::mem::size_of::<ListKey>())
                    + allocation(list.prefix.capacity())
                    + allocation(list.cursor.capacity())
            }
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
    /// The heap bytes the state holds beyond its slot.
    fn heap(&self) -> u64 {
        match self {
            Cached::Entry(entry) => shared(entry.value.as_ref()) + shared(entry.metadata.as_ref()),
            Cached::Missing(_) => 0,
            Cached::Page(page) => {
                let keys = page
                    .keys
                    .iter()
                    .map(|k| allocation(k.name.capacity()) + shared(k.metadata.as_ref()));
                allocation(2 * std::mem::size_of::<usize>() + std::mem::size_of::<KeyPage>())
                    + allocation(
                        page.keys.capacity() * std::mem::size_of::<edgekv_store::ListedKey>(),
                    )
                    + page.resume_after.as_ref().map_or(0, |r| allocation(r.capacity()))
                    + keys.sum::<u64>()
            }
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
            shard_limit: memory / SHARDS as u64,
            entries: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            metrics: CacheMetrics::register(registry),
        }
    }

    /// A key's shard, and its hash.
    fn shard(&self, key: &CacheKey) -> (&Mutex<Shard>, u64) {
        let hash = hash_of(key);
        (&self.shards[(hash >> 32) as usize % SHARDS], hash)
    }

    /// What is cached under `key` and still fresh at `now_ms`, counted as a hit; `None`
    /// (counted as a miss) when the caller must read the store and [`EdgeCache::fill`].
    pub fn lookup(&self, key: &CacheKey, now_ms: u64) -> Option<Cached> {
        let kind = key.kind() as usize;
        let (shard, hash) = self.shard(key);
        let found = self.changing(shard, |shard| (shard.lookup(hash, key, now_ms), 0));
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
        let (shard, hash) = self.shard(&key);
        self.changing(shard, |shard| ((), shard.insert(hash, key, value, until, limit)));
    }

    /// A write in this region changed `key`: the cache now holds the new state, for what was
    /// left of the cached entry's cacheTtl, or for `ttl_ms` from `now_ms` if the key was not
    /// cached. (Which also fences off a read that read the store before the write and fills
    /// after it: its older state does not replace this one.)
    pub fn replace(&self, key: CacheKey, value: Cached, ttl_ms: u64, now_ms: u64) {
        let (until, limit) = (now_ms.saturating_add(ttl_ms), self.shard_limit);
        let (shard, hash) = self.shard(&key);
        self.changing(shard, |shard| ((), shard.replace(hash, key, value, until, limit)));
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
            let before = (shard.len() as u64, shard.bytes);
            let (out, evicted) = change(&mut shard);
            (out, evicted, (before.0, shard.len() as u64), (before.1, shard.bytes))
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

/// What an entry is accounted at: its slab slot and its table slot, plus the heap bytes of
/// its key and its state, rounded up as the allocator rounds them. Measured, not estimated,
/// so that the configured memory is what the cache takes: with a fixed estimate of 160 bytes
/// a slot, a million 100-byte values cached by a bulk load took twice the bound (heap
/// profile, docs/performance.md).
fn cost(key: &CacheKey, value: &Cached) -> u64 {
    SLOT + key.heap() + value.heap()
}

/// A slab slot, and a table slot (an index and a control byte) at the table's lowest load
/// after it grows, half full.
const SLOT: u64 =
    (std::mem::size_of::<Option<Node>>() + 2 * (std::mem::size_of::<u32>() + 1)) as u64;

/// The size of an allocation of `len` bytes: jemalloc's size classes, four to each doubling
/// of size and at least 16 bytes apart.
fn allocation(len: usize) -> u64 {
    let step = (len.next_power_of_two() / 8).max(16);
    len.div_ceil(step).saturating_mul(step) as u64
}

/// The bytes a cached `Bytes` holds: its buffer, and the shared header it gets once cloned
/// (every hit clones it).
fn shared(bytes: Option<&bytes::Bytes>) -> u64 {
    bytes.map_or(0, |b| allocation(b.len()) + allocation(4 * std::mem::size_of::<usize>()))
}

/// Marks the end of the LRU list.
const NIL: u32 = u32::MAX;

/// One cached entry, a node of its shard's LRU list. Its key is stored here only: the shard's
/// table holds slab indices and finds keys through them.
#[derive(Debug)]
struct Node {
    key: CacheKey,
    value: Cached,
    fresh_until_ms: u64,
    /// What the entry is accounted at, see [`cost`].
    bytes: u32,
    /// Towards the most recently used end.
    newer: u32,
    /// Towards the least recently used end.
    older: u32,
}

/// A shard: a table of slab slots by key hash, and the LRU order threaded through the slab.
#[derive(Debug)]
struct Shard {
    table: HashTable<u32>,
    slab: Vec<Option<Node>>,
    free: Vec<u32>,
    /// Most recently used.
    newest: u32,
    /// Least recently used: the next to go.
    oldest: u32,
    bytes: u64,
}

impl Default for Shard {
    fn default() -> Self {
        Shard {
            table: HashTable::new(),
            slab: Vec::new(),
            free: Vec::new(),
            newest: NIL,
            oldest: NIL,
            bytes: 0,
        }
    }
}

/// The hash of a key. Fixed keys, so that which entries share a shard, and so which go first
/// under memory pressure, is the same in every run (a simulation replays from its seed); a
/// client that aims its keys at one shard only makes that shard's lock busier. Its high half
/// picks the shard and its low half the slot in the shard's table, so a shard's keys spread
/// over its whole table.
fn hash_of(key: &CacheKey) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(key)
}

impl Shard {
    fn len(&self) -> usize {
        self.table.len()
    }

    fn node(&mut self, at: u32) -> &mut Node {
        // Every index in the table or the list points at an occupied slot.
        self.slab[at as usize].as_mut().expect("an occupied cache slot")
    }

    fn find(&self, hash: u64, key: &CacheKey) -> Option<u32> {
        let slab = &self.slab;
        self.table
            .find(hash, |&at| slab[at as usize].as_ref().is_some_and(|n| n.key == *key))
            .copied()
    }

    fn lookup(&mut self, hash: u64, key: &CacheKey, now_ms: u64) -> Option<Cached> {
        let at = self.find(hash, key)?;
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
    fn insert(
        &mut self,
        hash: u64,
        key: CacheKey,
        value: Cached,
        fresh_until_ms: u64,
        limit: u64,
    ) -> u64 {
        if let Some(at) = self.find(hash, &key) {
            if !value.supersedes(&self.node(at).value) {
                return 0;
            }
            self.remove(at);
        }
        let bytes = cost(&key, &value);
        if bytes > limit {
            // Bigger than the whole shard: caching it would flush everything else.
            return 0;
        }
        let evicted = self.make_room(bytes, limit);
        // Slots count in `u32`: an entry of 4 GiB or more, or a shard past four billion
        // slots, is not cached.
        let Ok(accounted) = u32::try_from(bytes) else { return evicted };
        let node = Node { key, value, fresh_until_ms, bytes: accounted, newer: NIL, older: NIL };
        let at = match self.free.pop() {
            Some(at) => {
                self.slab[at as usize] = Some(node);
                at
            }
            None => {
                let Ok(at) = u32::try_from(self.slab.len()) else { return evicted };
                if self.slab.len() == self.slab.capacity() {
                    // By an eighth, not by doubling: the spare capacity of a slab that just
                    // doubled would be a third of its memory, none of it accounted.
                    self.slab.reserve_exact((self.slab.len() / 8).max(16));
                }
                self.slab.push(Some(node));
                at
            }
        };
        let slab = &self.slab;
        self.table
            .insert_unique(hash, at, |&i| slab[i as usize].as_ref().map_or(0, |n| hash_of(&n.key)));
        self.bytes += bytes;
        self.push_newest(at);
        evicted
    }

    fn replace(
        &mut self,
        hash: u64,
        key: CacheKey,
        value: Cached,
        fresh_until_ms: u64,
        limit: u64,
    ) -> u64 {
        let fresh_until_ms = match self.find(hash, &key) {
            Some(at) => self.node(at).fresh_until_ms,
            None => fresh_until_ms,
        };
        self.insert(hash, key, value, fresh_until_ms, limit)
    }

    fn make_room(&mut self, bytes: u64, limit: u64) -> u64 {
        let mut evicted = 0;
        while self.bytes + bytes > limit && self.oldest != NIL {
            self.remove(self.oldest);
            evicted += 1;
        }
        evicted
    }

    fn remove(&mut self, at: u32) {
        self.unlink(at);
        if let Some(node) = self.slab[at as usize].take() {
            self.bytes -= u64::from(node.bytes);
            if let Ok(slot) = self.table.find_entry(hash_of(&node.key), |&i| i == at) {
                slot.remove();
            }
            self.free.push(at);
        }
    }

    fn unlink(&mut self, at: u32) {
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

    fn push_newest(&mut self, at: u32) {
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
                    let k = key(&name);
                    shard.insert(hash_of(&k), k, entry("v", None), step + 100, 4_000);
                }
                2 => {
                    let k = key(&name);
                    shard.lookup(hash_of(&k), &k, step);
                }
                _ => {
                    let k = key(&name);
                    shard.replace(hash_of(&k), k, Cached::Missing(None), step + 100, 4_000);
                }
            }
            // Walking the list from newest to oldest visits every entry once.
            let (mut at, mut seen, mut bytes) = (shard.newest, 0, 0);
            while at != NIL {
                let node = shard.slab[at as usize].as_ref().expect("linked slots are occupied");
                bytes += u64::from(node.bytes);
                seen += 1;
                at = node.older;
            }
            assert_eq!((seen, bytes), (shard.len(), shard.bytes), "at step {step}");
            assert!(shard.bytes <= 4_000);
        }
    }
}
