//! The `meta` keyspace: which region the directory belongs to, when its store was born, the
//! clock's upper bound, each peer's delivery position and the cluster membership the region
//! was last told about. Small records, rewritten in place.

use std::path::Path;

use edgekv_core::{RegionId, Timestamp};
use fjall::{Database, Keyspace, PersistMode};

use super::{opening, Disk, OpenError};
use crate::codec::DecodeError;
use crate::StoreError;

const META_REGION: &[u8] = b"region";
pub(super) const META_HLC: &[u8] = b"hlc";
const META_BORN: &[u8] = b"born";
const META_MEMBERSHIP: &[u8] = b"membership";
const META_PEER: &str = "peer/";

/// What is in the meta keyspace at open.
pub(crate) struct Meta {
    pub(crate) hlc_bound: Timestamp,
    pub(crate) positions: Vec<(String, Timestamp)>,
    /// When this directory's store was created; `None` in a directory from before births were
    /// recorded, which gets one at open.
    pub(crate) born: Option<Timestamp>,
    /// The membership record replication saved, opaque here.
    pub(crate) membership: Option<String>,
}

impl Disk {
    /// Records how far `peer` has every write of this region. Not waited for: a position that
    /// is lost in a crash only makes the sender repeat writes the peer already has.
    pub(crate) fn save_position(&self, peer: &str, through: Timestamp) -> Result<(), StoreError> {
        self.admit(64, true)?;
        let mut batch = self.batch();
        batch.insert(&self.meta, format!("{META_PEER}{peer}"), through.0.to_be_bytes());
        self.commit(batch)
    }

    /// Records the membership, and waits until it is on disk: a region told that a peer left
    /// must not forget it in a crash, or it would take the peer's stale data back.
    pub(crate) fn save_membership(&self, record: &str) -> Result<(), StoreError> {
        self.put_synced(META_MEMBERSHIP, record.as_bytes())
    }

    /// Records the store's birth, durably: it is how peers tell this store from a later one
    /// made in the same directory.
    pub(crate) fn save_born(&self, born: Timestamp) -> Result<(), StoreError> {
        self.put_synced(META_BORN, &born.0.to_be_bytes())
    }

    fn put_synced(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.admit(value.len() as u64 + 64, true)?;
        let mut batch = self.batch();
        batch.insert(&self.meta, key, value);
        self.commit(batch)?;
        self.db
            .persist(PersistMode::SyncAll)
            .map_err(|e| StoreError::storage("persist the meta keyspace", e))
    }
}

/// Makes sure the directory belongs to `region`, recording it in a new one: a region started
/// on another region's data would serve that region's keys as its own.
pub(super) fn claim_for_region(
    db: &Database,
    meta: &Keyspace,
    dir: &Path,
    region: RegionId,
) -> Result<(), OpenError> {
    let engine = opening(dir);
    match meta.get(META_REGION).map_err(|e| engine(&e))? {
        Some(found) if *found != *region.as_str().as_bytes() => Err(OpenError::WrongRegion {
            dir: dir.to_path_buf(),
            expected: region,
            found: String::from_utf8_lossy(&found).into_owned(),
        }),
        Some(_) => Ok(()),
        None => {
            meta.insert(META_REGION, region.as_str()).map_err(|e| engine(&e))?;
            db.persist(PersistMode::SyncAll).map_err(|e| engine(&e))
        }
    }
}

/// Everything the meta keyspace holds, read once at open.
pub(super) fn read_meta(meta: &Keyspace, dir: &Path) -> Result<Meta, OpenError> {
    let mut found =
        Meta { hlc_bound: Timestamp(0), positions: Vec::new(), born: None, membership: None };
    for guard in meta.iter() {
        let (key, value) = guard.into_inner().map_err(|e| opening(dir)(&e))?;
        let corrupt = |what| OpenError::Corrupt {
            keyspace: "meta",
            file: meta.path().to_path_buf(),
            key: String::from_utf8_lossy(&key).into_owned(),
            error: DecodeError(what),
        };
        if *key == *META_HLC {
            found.hlc_bound =
                Timestamp(read_u64(&value).ok_or_else(|| corrupt("bad clock bound"))?);
        } else if *key == *META_BORN {
            found.born = Some(Timestamp(read_u64(&value).ok_or_else(|| corrupt("bad birth"))?));
        } else if *key == *META_MEMBERSHIP {
            let text = std::str::from_utf8(&value).map_err(|_| corrupt("membership not UTF-8"))?;
            found.membership = Some(text.to_owned());
        } else if let Some(peer) = key.strip_prefix(META_PEER.as_bytes()) {
            let ts = read_u64(&value).ok_or_else(|| corrupt("bad delivery position"))?;
            found.positions.push((String::from_utf8_lossy(peer).into_owned(), Timestamp(ts)));
        }
    }
    Ok(found)
}

pub(super) fn read_u64(raw: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(raw.try_into().ok()?))
}
