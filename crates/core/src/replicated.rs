//! What crosses between regions: a replicated write (a key's new entry or a namespace's new
//! record), and the identity of the item it writes.

use crate::{AccountId, Entry, NamespaceId, NamespaceRecord, Version};

/// One write as it travels between regions: a key's new state, or a namespace's new record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicatedWrite {
    /// A key's new entry (a value or a tombstone).
    Key {
        /// Owning account.
        account: AccountId,
        /// Namespace id.
        namespace: NamespaceId,
        /// Key name.
        key: String,
        /// The entry, with its version.
        entry: Entry,
    },
    /// A namespace's new record (created, renamed or deleted).
    Namespace(NamespaceRecord),
}

impl ReplicatedWrite {
    /// The version of the write.
    pub fn version(&self) -> Version {
        match self {
            ReplicatedWrite::Key { entry, .. } => entry.version,
            ReplicatedWrite::Namespace(record) => record.version,
        }
    }

    /// Its identity: which item it writes.
    pub fn item(&self) -> ItemId {
        match self {
            ReplicatedWrite::Key { account, namespace, key, .. } => ItemId {
                account: account.clone(),
                namespace: namespace.clone(),
                key: Some(key.clone()),
            },
            ReplicatedWrite::Namespace(r) => {
                ItemId { account: r.account.clone(), namespace: r.id.clone(), key: None }
            }
        }
    }

    /// Approximate bytes on the wire, for batching.
    pub fn size_hint(&self) -> usize {
        match self {
            ReplicatedWrite::Key { key, entry, .. } => {
                128 + key.len()
                    + entry.value.as_ref().map_or(0, |v| v.len())
                    + entry.metadata.as_ref().map_or(0, |m| m.len())
            }
            ReplicatedWrite::Namespace(r) => 128 + r.title.len(),
        }
    }
}

/// The identity of a replicated item: a key of a namespace, or (with `key: None`) the namespace
/// record itself.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemId {
    /// Owning account.
    pub account: AccountId,
    /// Namespace id.
    pub namespace: NamespaceId,
    /// The key, or `None` for the namespace record.
    pub key: Option<String>,
}
