//! EdgeKV's replication protocol: the code generated from `proto/edgekv/replication/v1`, and
//! conversions between its messages and the store's types.
//!
//! Conversions from the wire validate everything a peer sends against the same rules a client's
//! request meets (ids, key names, sizes, region names), so a malformed or hostile message is
//! refused with a [`WireError`] before it reaches the store. A request that is not a protobuf
//! message at all is refused by the service's [`codec`] with INVALID_ARGUMENT.

use bytes::Bytes;
use edgekv_core::limits::{
    MAX_EXPIRATION_SECS, MAX_METADATA_BYTES, MAX_TITLE_CHARS, MAX_VALUE_BYTES,
};
use edgekv_core::{validate_key, Entry, Timestamp, Version};
use edgekv_core::{AccountId, ItemId, NamespaceId, NamespaceRecord, ReplicatedWrite};

pub mod codec;

/// The generated messages, client and server.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod pb {
    tonic::include_proto!("edgekv.replication.v1");
}

/// A message from a peer that breaks the protocol's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A required field is missing.
    #[error("missing field {0}")]
    Missing(&'static str),
    /// A field holds a value outside its rules.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> WireError {
    WireError::Invalid { field, reason: reason.into() }
}

impl From<Version> for pb::Version {
    fn from(v: Version) -> Self {
        pb::Version { timestamp: v.ts.0, origin: v.origin.as_str().to_owned() }
    }
}

/// The version of a write from the wire. Zero is refused: it marks placeholders locally.
pub fn version_from_wire(v: Option<pb::Version>) -> Result<Version, WireError> {
    let v = v.ok_or(WireError::Missing("version"))?;
    let origin = v.origin.parse().map_err(|e| invalid("version.origin", format!("{e}")))?;
    if v.timestamp == 0 {
        return Err(invalid("version.timestamp", "must not be zero"));
    }
    Ok(Version::new(Timestamp(v.timestamp), origin))
}

fn account(raw: &str) -> Result<AccountId, WireError> {
    AccountId::parse(raw).ok_or_else(|| invalid("account", format!("{raw:?}")))
}

fn namespace(raw: &str) -> Result<NamespaceId, WireError> {
    NamespaceId::parse(raw).ok_or_else(|| invalid("namespace", format!("{raw:?}")))
}

impl From<&ReplicatedWrite> for pb::Write {
    fn from(write: &ReplicatedWrite) -> Self {
        let kind = match write {
            ReplicatedWrite::Key { account, namespace, key, entry } => {
                pb::write::Kind::Key(pb::KeyWrite {
                    account: account.as_str().to_owned(),
                    namespace: namespace.as_str().to_owned(),
                    key: key.clone(),
                    value: entry.value.clone(),
                    metadata: entry
                        .metadata
                        .as_ref()
                        .map(|m| String::from_utf8_lossy(m).into_owned()),
                    expiration: entry.expiration,
                    version: Some(entry.version.into()),
                })
            }
            ReplicatedWrite::Namespace(r) => pb::write::Kind::Namespace(pb::NamespaceWrite {
                account: r.account.as_str().to_owned(),
                namespace: r.id.as_str().to_owned(),
                title: r.title.clone(),
                deleted: r.deleted,
                version: Some(r.version.into()),
            }),
        };
        pb::Write { kind: Some(kind) }
    }
}

/// The limits a client's write of a key meets: the key name, the value and metadata sizes, and
/// the latest expiry.
fn check_key_write(k: &pb::KeyWrite) -> Result<(), WireError> {
    validate_key(&k.key).map_err(|e| invalid("key", e.to_string()))?;
    if let Some(len) = k.value.as_ref().map(Bytes::len).filter(|l| *l > MAX_VALUE_BYTES) {
        return Err(invalid("value", format!("{len} bytes, limit {MAX_VALUE_BYTES}")));
    }
    if let Some(len) = k.metadata.as_ref().map(String::len).filter(|l| *l > MAX_METADATA_BYTES) {
        return Err(invalid("metadata", format!("{len} bytes, limit {MAX_METADATA_BYTES}")));
    }
    // A client cannot set a later expiry, and one from a peer would be listed as a number that
    // JSON clients cannot read back exactly.
    if let Some(at) = k.expiration.filter(|at| *at > MAX_EXPIRATION_SECS) {
        return Err(invalid("expiration", format!("{at}, limit {MAX_EXPIRATION_SECS}")));
    }
    Ok(())
}

impl TryFrom<pb::Write> for ReplicatedWrite {
    type Error = WireError;

    fn try_from(write: pb::Write) -> Result<Self, WireError> {
        match write.kind.ok_or(WireError::Missing("write.kind"))? {
            pb::write::Kind::Key(k) => {
                check_key_write(&k)?;
                let entry = Entry {
                    value: k.value,
                    metadata: k.metadata.map(Bytes::from),
                    expiration: k.expiration,
                    version: version_from_wire(k.version)?,
                };
                Ok(ReplicatedWrite::Key {
                    account: account(&k.account)?,
                    namespace: namespace(&k.namespace)?,
                    key: k.key,
                    entry,
                })
            }
            pb::write::Kind::Namespace(n) => {
                if n.title.chars().count() > MAX_TITLE_CHARS {
                    return Err(invalid("title", format!("over {MAX_TITLE_CHARS} characters")));
                }
                Ok(ReplicatedWrite::Namespace(NamespaceRecord {
                    account: account(&n.account)?,
                    id: namespace(&n.namespace)?,
                    title: n.title,
                    deleted: n.deleted,
                    version: version_from_wire(n.version)?,
                }))
            }
        }
    }
}

impl From<(&ItemId, Version)> for pb::ItemVersion {
    fn from((item, version): (&ItemId, Version)) -> Self {
        pb::ItemVersion {
            account: item.account.as_str().to_owned(),
            namespace: item.namespace.as_str().to_owned(),
            key: item.key.clone(),
            version: Some(version.into()),
        }
    }
}

impl TryFrom<pb::ItemVersion> for (ItemId, Version) {
    type Error = WireError;

    fn try_from(item: pb::ItemVersion) -> Result<Self, WireError> {
        if let Some(key) = &item.key {
            validate_key(key).map_err(|e| invalid("key", e.to_string()))?;
        }
        let id = ItemId {
            account: account(&item.account)?,
            namespace: namespace(&item.namespace)?,
            key: item.key,
        };
        Ok((id, version_from_wire(item.version)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_write() -> ReplicatedWrite {
        ReplicatedWrite::Key {
            account: AccountId::parse("acct").unwrap(),
            namespace: NamespaceId::parse("0f2ac74b498b48028cb68387c421e279").unwrap(),
            key: "a/b ✓".into(),
            entry: Entry {
                value: Some(Bytes::from_static(b"\x00v")),
                metadata: Some(Bytes::from_static(b"{\"m\":1}")),
                expiration: Some(1_900_000_000),
                version: Version::new(Timestamp(77), "wnam".parse().unwrap()),
            },
        }
    }

    #[test]
    fn writes_round_trip() {
        let write = key_write();
        assert_eq!(ReplicatedWrite::try_from(pb::Write::from(&write)).unwrap(), write);
        let record = ReplicatedWrite::Namespace(NamespaceRecord {
            account: AccountId::parse("acct").unwrap(),
            id: NamespaceId::parse("0f2ac74b498b48028cb68387c421e279").unwrap(),
            title: "t".into(),
            deleted: true,
            version: Version::new(Timestamp(9), "enam".parse().unwrap()),
        });
        assert_eq!(ReplicatedWrite::try_from(pb::Write::from(&record)).unwrap(), record);
    }

    #[test]
    fn expiration_from_a_peer_may_reach_2_pow_53_minus_1() {
        let mut write = pb::Write::from(&key_write());
        if let Some(pb::write::Kind::Key(k)) = &mut write.kind {
            k.expiration = Some(MAX_EXPIRATION_SECS);
        }
        let Ok(ReplicatedWrite::Key { entry, .. }) = ReplicatedWrite::try_from(write) else {
            panic!("a write expiring at the bound is refused");
        };
        assert_eq!(entry.expiration, Some(MAX_EXPIRATION_SECS));
    }

    #[test]
    fn malformed_writes_are_refused() {
        let good = pb::Write::from(&key_write());
        let with = |f: fn(&mut pb::KeyWrite)| {
            let mut w = good.clone();
            if let Some(pb::write::Kind::Key(k)) = &mut w.kind {
                f(k);
            }
            ReplicatedWrite::try_from(w)
        };
        assert!(with(|k| k.key = String::new()).is_err());
        assert!(with(|k| k.key = "k".repeat(513)).is_err());
        assert!(with(|k| k.account = "bad account".into()).is_err());
        assert!(with(|k| k.namespace = "xyz".into()).is_err());
        assert!(with(|k| k.version = None).is_err());
        assert!(with(|k| k.version.as_mut().unwrap().origin = "BAD".into()).is_err());
        assert!(with(|k| k.version.as_mut().unwrap().timestamp = 0).is_err());
        assert!(with(|k| k.metadata = Some("m".repeat(1025))).is_err());
        assert!(with(|k| k.value = Some(Bytes::from(vec![0; MAX_VALUE_BYTES + 1]))).is_err());
        assert!(with(|k| k.expiration = Some(MAX_EXPIRATION_SECS + 1)).is_err());
        assert!(with(|k| k.expiration = Some(u64::MAX)).is_err());
        assert!(ReplicatedWrite::try_from(pb::Write { kind: None }).is_err());
    }
}
