//! The pure data model of EdgeKV.
//!
//! Everything here is deterministic logic with no I/O, no async runtime and no global state:
//! key and value validation against the Workers KV limits, the hybrid logical clock that stamps
//! every write, and the last-writer-wins rule that decides which of two versions of an entry
//! survives. Keeping it free of tokio, axum and tonic (this crate's `Cargo.toml` lists none of
//! them, and must not) is what lets the replication logic be property-tested and reused by the
//! store, the API and, later, the gossip layer without dragging I/O into the tests.
//!
//! # Versions and the merge rule
//! Every stored item (a key's entry, a namespace record) carries a [`Version`]: the HLC
//! [`Timestamp`] of the write and the [`RegionId`] of the region that accepted it. Versions are
//! totally ordered, timestamp first and region name as the tie-break, and a region's HLC is
//! strictly monotonic, so two distinct writes never share a version. The merge keeps the greater
//! version; it is commutative, associative and idempotent, which is what lets regions converge
//! whatever order updates arrive in.

mod clock;
mod delay;
pub mod digest;
mod entry;
pub mod failpoint;
mod fault;
mod key;
pub mod limits;
mod namespace;
mod region;
mod replicated;
mod size;
mod tokens;
mod validate;
mod version;
pub mod watermark;

pub use clock::{
    Hlc, ManualClock, OffsetClock, PhysicalClock, SkewError, SystemClock, Timers, Timestamp,
};
pub use delay::{parse_duration, DelayModel, LatencyMatrix, LinkDelay, ParseDelayError, MAX_DELAY};
pub use entry::{merge, replaces, Entry, Versioned};
pub use fault::{ActiveFault, Fault, FaultError, ANY};
pub use key::{decode_key, percent_decode, validate_key, KeyError};
pub use namespace::{AccountId, NamespaceId, NamespaceIds, NamespaceOrder, NamespaceRecord};
pub use region::{RegionId, RegionIdError};
pub use replicated::{ItemId, ReplicatedWrite};
pub use size::parse_bytes;
pub use tokens::Tokens;
pub use validate::{
    canonical_metadata, canonical_metadata_value, resolve_expiration, validate_list_limit,
    validate_title, ValidationError,
};
pub use version::{ParseVersionError, Rendered, Version};
pub use watermark::{may_collect, Watermarks};
