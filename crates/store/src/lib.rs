//! EdgeKV's versioned store: accounts, namespaces and the keys inside them.
//!
//! Every mutation goes through one rule, [`edgekv_core::merge`]: a local write is stamped with a
//! fresh version from the region's hybrid logical clock and then *applied* exactly as a write
//! from another region will be, so the local and replicated paths cannot drift apart. Deletes
//! leave tombstones; expired entries turn into tombstones when purged, so that neither lets an
//! older value of the key come back.
//!
//! # Layout
//! Namespaces live in a [`dashmap::DashMap`] keyed by namespace id: lookups on the request path
//! touch one shard and never contend with each other. Inside a namespace, keys live in an ordered
//! map behind a reader-writer lock, because the Workers KV listing is in UTF-8 byte order with a
//! cursor, and an ordered map serves a page in O(limit + log n) where a hash map would need a
//! scan and a sort. Locks are `parking_lot` locks held only for the map operation itself, never
//! across an `.await` (this crate has no async at all), so a plain blocking lock is the right
//! tool and cheaper than an async one.
//!
//! This is the in-memory backend; values live in memory and nothing survives a restart.

mod expiry;
mod namespace;
mod store;

pub use namespace::{AccountId, NamespaceId, NamespaceOrder, NamespaceRecord};
pub use store::{
    KeyPage, ListedKey, PurgeStats, Store, StoreConfig, StoreError, WriteOp, WriteResult,
};
