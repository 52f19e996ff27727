//! Accounts, namespace identities and the replicated namespace record.

use std::fmt;
use std::sync::Arc;

use crate::{Version, Versioned};

/// An account id as it appears in the API path. Accounts are isolated: every namespace belongs
/// to exactly one, and no request on one account sees another's namespaces.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct AccountId(Arc<str>);

impl AccountId {
    /// Longest accepted account id. Cloudflare's are 32 hex digits; local tools often use
    /// readable names, so anything short and URL-safe is accepted.
    pub const MAX_LEN: usize = 64;

    /// Parses an account id: 1 to 64 characters of `[A-Za-z0-9_-]`.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        ok.then(|| AccountId(Arc::from(raw)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A namespace id: 32 lowercase hex digits, random, so regions can create namespaces
/// independently without ever colliding.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct NamespaceId(Arc<str>);

impl NamespaceId {
    /// A fresh random id.
    pub fn random() -> Self {
        NamespaceId(Arc::from(uuid::Uuid::new_v4().simple().to_string()))
    }

    /// The id spelled by these 128 bits.
    pub fn from_bits(bits: u128) -> Self {
        NamespaceId(Arc::from(format!("{bits:032x}")))
    }

    /// Parses an id from a path: exactly 32 hex digits (either case; stored lowercase).
    pub fn parse(raw: &str) -> Option<Self> {
        (raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| NamespaceId(Arc::from(raw.to_ascii_lowercase())))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NamespaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A namespace's replicated state. Create, rename and delete each produce a new record with a
/// new version, merged by LWW like any entry; a deleted namespace stays as a tombstone record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceRecord {
    /// The owning account.
    pub account: AccountId,
    /// The namespace id.
    pub id: NamespaceId,
    /// The human-readable title, unique among the account's live namespaces.
    pub title: String,
    /// Whether the namespace was deleted.
    pub deleted: bool,
    /// The version of the write that produced this record.
    pub version: Version,
}

impl Versioned for NamespaceRecord {
    fn version(&self) -> Version {
        self.version
    }
}

/// The sort key of a namespace listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NamespaceOrder {
    /// By id.
    #[default]
    Id,
    /// By title, then id.
    Title,
}

/// Where a store's new namespace ids come from. Random, normally; a simulation draws them from
/// its seed instead, because a run that read the OS's randomness would not replay.
#[derive(Debug, Default)]
pub enum NamespaceIds {
    /// Fresh random ids ([`NamespaceId::random`]).
    #[default]
    Random,
    /// A sequence drawn from a seed: the n-th id is a 128-bit mix of the seed and n, so two
    /// sources with different seeds do not collide in practice.
    Seeded {
        /// The seed.
        seed: u64,
        /// How many ids were drawn.
        drawn: std::sync::atomic::AtomicU64,
    },
}

impl NamespaceIds {
    /// A seeded source.
    pub fn seeded(seed: u64) -> Self {
        NamespaceIds::Seeded { seed, drawn: std::sync::atomic::AtomicU64::new(0) }
    }

    /// The next id.
    pub fn next(&self) -> NamespaceId {
        match self {
            NamespaceIds::Random => NamespaceId::random(),
            NamespaceIds::Seeded { seed, drawn } => {
                let n = drawn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let high = splitmix64(seed ^ n.rotate_left(32));
                let low = splitmix64(high ^ n);
                NamespaceId::from_bits((u128::from(high) << 64) | u128::from(low))
            }
        }
    }
}

/// SplitMix64's output function: a well-mixed 64-bit value from any input.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_replay_and_parse() {
        let draw = |seed| {
            let ids = NamespaceIds::seeded(seed);
            (0..100).map(|_| ids.next()).collect::<Vec<_>>()
        };
        let first = draw(7);
        assert_eq!(first, draw(7), "the same seed draws the same ids");
        assert_ne!(first, draw(8));
        let distinct: std::collections::BTreeSet<_> = first.iter().collect();
        assert_eq!(distinct.len(), first.len());
        for id in &first {
            assert_eq!(NamespaceId::parse(id.as_str()).as_ref(), Some(id));
        }
    }
}
