//! The anti-entropy digest: an XOR hash tree over everything a region stores.
//!
//! Every stored item (a live key version, a namespace record) hashes to a 64-bit value and falls
//! into one of 65,536 leaves by a hash of its identity (account, namespace, key). A leaf is the
//! XOR of its items, a branch the XOR of its 256 leaves, the root the XOR of the 256 branches.
//! XOR makes the tree incremental: replacing an item is `leaf ^= old ^ new` and the same on its
//! branch and the root, O(1) per write with no rescan, because last-writer-wins always tells us
//! the old version. It also makes the tree independent of insertion order, so two regions holding
//! the same items have the same root whatever order they received them in.
//!
//! Comparing two regions then costs one 8-byte root when nothing differs; when a few items
//! differ, the 256 branch hashes, then the leaves of the differing branches, then only the items
//! of the differing leaves: O(differences), in a bounded number of round trips.
//!
//! Item hashes are computed from the item's identity and version only. A version names exactly
//! one write, so its content need not be hashed, and an entry that expires (and becomes a
//! tombstone with the same version) does not change its hash until it leaves the tree.

use crate::Version;

/// Leaves per branch, and branches under the root.
pub const FANOUT: usize = 256;
/// Leaves in the tree.
pub const LEAVES: usize = FANOUT * FANOUT;

/// Index of a leaf: the high byte is its branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeafId(pub u16);

impl LeafId {
    /// The branch this leaf hangs under.
    pub fn branch(self) -> usize {
        usize::from(self.0 >> 8)
    }
}

/// The XOR hash tree. Cloning it (for a consistent snapshot to compare) copies 512 KiB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestTree {
    leaves: Box<[u64]>,
    branches: Box<[u64]>,
    root: u64,
    items: u64,
}

impl Default for DigestTree {
    fn default() -> Self {
        DigestTree {
            leaves: vec![0; LEAVES].into_boxed_slice(),
            branches: vec![0; FANOUT].into_boxed_slice(),
            root: 0,
            items: 0,
        }
    }
}

impl DigestTree {
    /// Adds an item with hash `item` to `leaf`.
    pub fn insert(&mut self, leaf: LeafId, item: u64) {
        self.toggle(leaf, item);
        self.items += 1;
    }

    /// Removes an item previously inserted with the same `leaf` and `item`.
    pub fn remove(&mut self, leaf: LeafId, item: u64) {
        self.toggle(leaf, item);
        self.items = self.items.saturating_sub(1);
    }

    fn toggle(&mut self, leaf: LeafId, item: u64) {
        self.leaves[usize::from(leaf.0)] ^= item;
        self.branches[leaf.branch()] ^= item;
        self.root ^= item;
    }

    /// The root hash: equal roots mean (with overwhelming probability) equal contents.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// How many items the tree holds.
    pub fn len(&self) -> u64 {
        self.items
    }

    /// Whether the tree holds no item.
    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// The 256 branch hashes.
    pub fn branches(&self) -> &[u64] {
        &self.branches
    }

    /// The 256 leaf hashes under `branch`.
    pub fn leaves_of(&self, branch: usize) -> &[u64] {
        let start = branch.min(FANOUT - 1) * FANOUT;
        &self.leaves[start..start + FANOUT]
    }
}

/// Branches whose hashes differ between two lists of branch hashes (missing entries count as
/// differing), in ascending order.
pub fn differing(ours: &[u64], theirs: &[u64]) -> Vec<usize> {
    (0..ours.len().max(theirs.len())).filter(|i| ours.get(*i) != theirs.get(*i)).collect()
}

/// The leaf an item belongs to, from its identity. `key` is `None` for a namespace record.
pub fn leaf_of(account: &str, namespace: &str, key: Option<&str>) -> LeafId {
    LeafId((identity_hash(account, namespace, key) >> 48) as u16)
}

/// The hash of one version of an item.
pub fn item_hash(account: &str, namespace: &str, key: Option<&str>, version: Version) -> u64 {
    let mut h = Fnv::new(identity_hash(account, namespace, key));
    h.write(&version.ts.0.to_le_bytes());
    h.write(version.origin.as_str().as_bytes());
    mix(h.finish())
}

fn identity_hash(account: &str, namespace: &str, key: Option<&str>) -> u64 {
    let mut h = Fnv::new(0);
    // Length-prefixed fields, and a tag that keeps a namespace record apart from any key.
    for field in [account, namespace] {
        h.write(&(field.len() as u64).to_le_bytes());
        h.write(field.as_bytes());
    }
    match key {
        Some(key) => {
            h.write(&[1]);
            h.write(&(key.len() as u64).to_le_bytes());
            h.write(key.as_bytes());
        }
        None => h.write(&[0]),
    }
    mix(h.finish())
}

/// 64-bit FNV-1a: fixed and portable, so every region computes the same hashes. Its weak
/// avalanche is fixed up by [`mix`].
struct Fnv(u64);

impl Fnv {
    fn new(seed: u64) -> Self {
        Fnv(0xcbf2_9ce4_8422_2325 ^ seed)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The SplitMix64 finalizer: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;
    use proptest::prelude::*;

    fn v(ts: u64, region: &str) -> Version {
        Version::new(Timestamp(ts), region.parse().unwrap())
    }

    fn add(tree: &mut DigestTree, key: &str, version: Version) {
        tree.insert(leaf_of("a", "n", Some(key)), item_hash("a", "n", Some(key), version));
    }

    #[test]
    fn the_same_items_in_any_order_give_the_same_root() {
        let items = [("x", v(1, "wnam")), ("y", v(2, "enam")), ("z", v(3, "weur"))];
        let mut forward = DigestTree::default();
        let mut backward = DigestTree::default();
        for (k, ver) in items {
            add(&mut forward, k, ver);
        }
        for (k, ver) in items.iter().rev() {
            add(&mut backward, k, *ver);
        }
        assert_eq!(forward, backward);
        assert_ne!(forward.root(), 0);
        assert_eq!(forward.len(), 3);
    }

    #[test]
    fn replacing_a_version_is_incremental_and_reversible() {
        let mut tree = DigestTree::default();
        add(&mut tree, "x", v(1, "wnam"));
        let before = tree.clone();
        let leaf = leaf_of("a", "n", Some("x"));
        tree.remove(leaf, item_hash("a", "n", Some("x"), v(1, "wnam")));
        tree.insert(leaf, item_hash("a", "n", Some("x"), v(2, "wnam")));
        assert_ne!(tree.root(), before.root());
        let changed = differing(tree.branches(), before.branches());
        assert_eq!(changed, [leaf.branch()]);
        let leaves = differing(tree.leaves_of(leaf.branch()), before.leaves_of(leaf.branch()));
        assert_eq!(leaves, [usize::from(leaf.0 & 0xff)]);
        tree.remove(leaf, item_hash("a", "n", Some("x"), v(2, "wnam")));
        assert!(tree.is_empty());
        assert_eq!(tree.root(), 0);
    }

    #[test]
    fn identities_do_not_run_into_each_other() {
        // Length prefixes: ("ab","c") and ("a","bc") are different items.
        assert_ne!(item_hash("ab", "c", None, v(1, "a")), item_hash("a", "bc", None, v(1, "a")));
        assert_ne!(item_hash("a", "n", None, v(1, "a")), item_hash("a", "n", Some(""), v(1, "a")));
        assert_ne!(
            item_hash("a", "n", Some("k"), v(1, "a")),
            item_hash("a", "n", Some("k"), v(1, "b"))
        );
    }

    #[test]
    fn items_spread_over_all_branches() {
        let mut used = [false; FANOUT];
        for i in 0..20_000 {
            used[leaf_of("acct", "ns", Some(&format!("key-{i}"))).branch()] = true;
        }
        assert!(used.iter().all(|u| *u));
    }

    proptest! {
        /// Two trees built from different insertion sequences of the same set agree on every
        /// level, and any single difference shows up at the root.
        #[test]
        fn root_equality_tracks_set_equality(keys in proptest::collection::btree_set("[a-z]{1,6}", 0..50), extra in "[A-Z]{1,6}") {
            let mut a = DigestTree::default();
            let mut b = DigestTree::default();
            for k in &keys {
                add(&mut a, k, v(7, "wnam"));
            }
            for k in keys.iter().rev() {
                add(&mut b, k, v(7, "wnam"));
            }
            prop_assert_eq!(&a, &b);
            add(&mut b, &extra, v(7, "wnam"));
            prop_assert_ne!(a.root(), b.root());
        }
    }
}
