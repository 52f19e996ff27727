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
