//! EdgeKV's versioned store: accounts, namespaces and the keys inside them.
//!
//! Every mutation goes through one rule, [`edgekv_core::merge`]'s: the greater version wins. A
//! local write is stamped with a fresh version from the region's hybrid logical clock and then
//! applied by the same step as a write from another region, so the local and replicated paths
//! cannot drift apart. Deletes leave tombstones; expired entries turn into tombstones when
//! purged, so that neither lets an older value of the key come back.
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
//! # Durability
//! [`Store::open`] keeps the data in a fjall database in the region's data directory (see
//! `disk`): values stay on disk and the index in memory holds only versions, expiry and
//! metadata, so memory grows with the number of keys. [`Store::new`] is the in-memory store
//! (values in the index, nothing survives a restart) for tests and quick experiments.
//!
//! # Replication state
//! Besides the data, the store keeps what replication needs, updated in the same critical
//! sections as the data so they cannot disagree: the outbox (this region's own writes, in
//! timestamp order, until every peer has them), the anti-entropy digest (an XOR hash tree over
//! every item older than the digest horizon), and per-origin watermarks that say which
//! tombstones every region has, and so which can be forgotten.

mod applies;
mod codec;
mod digest;
mod disk;
mod error;
mod expiry;
mod outbox;
mod replica;
mod space;
mod store;

pub use applies::{ApplyEvent, ApplyPage};
pub use codec::DecodeError;
pub use disk::{Durability, Flushed, OpenError};
pub use error::{chain, Cause, StoreError};
pub use replica::Replica;
pub use space::Reserve;
pub use store::{
    KeyPage, ListedKey, PurgeStats, Recovered, Store, StoreConfig, WriteListener, WriteOp,
    WriteResult, DEFAULT_ENGINE_MEMORY,
};
