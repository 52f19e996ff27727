//! Stored entries and the last-writer-wins merge.

use bytes::Bytes;

use crate::Version;

/// Anything replicated by last-writer-wins: it has exactly one version.
pub trait Versioned {
    /// The version of the write that produced this item.
    fn version(&self) -> Version;
}

/// Keeps whichever of two versions of one item is greater.
///
/// This is the whole conflict-resolution rule. Because [`Version`] is a total order on distinct
/// writes, `merge` is commutative, associative and idempotent (the property tests below check
/// it), so replicas that have seen the same set of writes hold the same item, in any delivery
/// order and with any duplication. There is deliberately no "equal versions, compare values"
/// case: equal versions are the same write.
pub fn merge<T: Versioned>(current: T, incoming: T) -> T {
    if incoming.version() > current.version() {
        incoming
    } else {
        current
    }
}

/// Whether a replicated write of version `incoming` replaces an item's `current` one.
///
/// The apply-side form of [`merge`], for stores that compare versions before loading the
/// incoming write: only a greater version wins. It lives here, not in the store, so that the
/// model checker (`edgekv-model`) explores the very rule the store applies; a test build may
/// break it through [`Failpoint::ApplyOlder`](crate::failpoint::Failpoint::ApplyOlder).
pub fn replaces(current: Version, incoming: Version) -> bool {
    use crate::failpoint::{active, Failpoint};
    incoming > current || (incoming != current && active(Failpoint::ApplyOlder))
}

/// One key's state in a namespace: a value, or a tombstone left by a delete.
///
/// A tombstone is kept (without its value) so that an older write of the same key arriving late
/// from another region loses to the delete instead of resurrecting the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The value bytes, or `None` for a tombstone.
    pub value: Option<Bytes>,
    /// Metadata as compact JSON text; `None` when the writer gave none.
    pub metadata: Option<Bytes>,
    /// Absolute expiry in seconds since the Unix epoch; `None` for keys that never expire.
    pub expiration: Option<u64>,
    /// The version of the write that produced this state.
    pub version: Version,
}

impl Entry {
    /// A tombstone at `version`.
    pub fn tombstone(version: Version) -> Self {
        Entry { value: None, metadata: None, expiration: None, version }
    }

    /// Whether the entry is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// Whether the entry has expired at physical time `now_ms`. A key expiring at second `s` is
    /// gone from the first millisecond of `s` on.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expiration.is_some_and(|secs| now_ms >= secs.saturating_mul(1000))
    }

    /// Whether a reader at `now_ms` sees this entry: neither a tombstone nor expired.
    pub fn is_live(&self, now_ms: u64) -> bool {
        !self.is_tombstone() && !self.is_expired(now_ms)
    }
}

impl Versioned for Entry {
    fn version(&self) -> Version {
        self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RegionId, Timestamp};
    use proptest::prelude::*;

    const REGIONS: [&str; 4] = ["apac", "enam", "weur", "wnam"];

    /// An arbitrary write. A version names exactly one write, so the entry's content is a
    /// function of its version, as it is for real writes.
    fn arb_entry() -> impl Strategy<Value = Entry> {
        (0u64..6, 0usize..REGIONS.len()).prop_map(|(ts, region)| {
            let version = Version::new(Timestamp(ts), REGIONS[region].parse::<RegionId>().unwrap());
            if (ts as usize + region).is_multiple_of(3) {
                Entry::tombstone(version)
            } else {
                Entry {
                    value: Some(Bytes::from(version.to_string())),
                    metadata: None,
                    expiration: ts.is_multiple_of(2).then_some(ts),
                    version,
                }
            }
        })
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in arb_entry(), b in arb_entry()) {
                        prop_assert_eq!(merge(a.clone(), b.clone()), merge(b, a));
        }

        #[test]
        fn merge_is_associative(a in arb_entry(), b in arb_entry(), c in arb_entry()) {
                        prop_assert_eq!(
                merge(merge(a.clone(), b.clone()), c.clone()),
                merge(a, merge(b, c))
            );
        }

        #[test]
        fn merge_is_idempotent(a in arb_entry(), b in arb_entry()) {
            prop_assert_eq!(&merge(a.clone(), a.clone()), &a);
            let once = merge(a, b.clone());
            prop_assert_eq!(merge(once.clone(), b), once);
        }

        /// Delivering the same writes in any order, with duplicates, ends in the same state,
        /// the one with the greatest version.
        #[test]
        fn any_delivery_order_converges(writes in proptest::collection::vec(arb_entry(), 1..12), seed in any::<u64>()) {
                        let mut shuffled = writes.clone();
            shuffled.extend(writes.iter().take(3).cloned());
            let mut rng = seed;
            for i in (1..shuffled.len()).rev() {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (rng >> 33) as usize % (i + 1));
            }
            let fold = |list: &[Entry]| list.iter().cloned().reduce(merge).unwrap();
            let max = writes.iter().max_by_key(|e| e.version).unwrap();
            prop_assert_eq!(&fold(&writes), max);
            prop_assert_eq!(&fold(&shuffled), max);
        }
    }

    #[test]
    fn expiry_is_inclusive_of_the_expiry_second() {
        let v = Version::new(Timestamp(1), "wnam".parse().unwrap());
        let e = Entry {
            value: Some(Bytes::from_static(b"x")),
            metadata: None,
            expiration: Some(100),
            version: v,
        };
        assert!(e.is_live(99_999));
        assert!(e.is_expired(100_000));
        assert!(!Entry::tombstone(v).is_live(0));
    }
}
