//! The namespace catalog: create, rename and delete namespaces, and look them up.

use std::sync::Arc;

use edgekv_core::digest::item_hash;
use edgekv_core::limits::MAX_NAMESPACES_PER_ACCOUNT;
use edgekv_core::Version;

use super::*;
use edgekv_core::{AccountId, NamespaceId, NamespaceOrder, NamespaceRecord, ReplicatedWrite};

impl Store {
    /// How many keys the region holds in all namespaces, tombstones included (what the
    /// dashboard shows; it reads each namespace's map length, not the keys).
    pub fn key_count(&self) -> usize {
        self.namespaces.iter().map(|ns| ns.keys.read().len()).sum()
    }

    /// Creates a namespace with a fresh random id.
    pub fn create_namespace(
        &self,
        account: &AccountId,
        title: &str,
    ) -> Result<NamespaceRecord, StoreError> {
        let _disk = self.disk();
        let _catalog = self.catalog.lock();
        // Unshown records count too: a create still in its group commit holds its title.
        let live = self.live_records(account, false)?;
        if live.len() >= MAX_NAMESPACES_PER_ACCOUNT {
            return Err(StoreError::TooManyNamespaces);
        }
        if live.iter().any(|r| r.title == title) {
            return Err(StoreError::DuplicateTitle);
        }
        let id = self.namespace_ids.get().map_or_else(NamespaceId::random, |ids| ids.next());
        let write = self.stamp_one(|version| {
            ReplicatedWrite::Namespace(NamespaceRecord {
                account: account.clone(),
                id: id.clone(),
                title: title.to_owned(),
                deleted: false,
                version,
            })
        })?;
        let ReplicatedWrite::Namespace(record) = write else { unreachable!("built above") };
        let mut effects = Effects::default();
        let ns = Arc::new(Namespace::new(record.clone()));
        self.track_record(&ns, &record, &mut effects);
        self.namespaces.insert(id, ns);
        self.finish(effects);
        self.notify();
        Ok(record)
    }

    /// The live namespace `id` of `account`.
    pub fn get_namespace(
        &self,
        account: &AccountId,
        id: &NamespaceId,
    ) -> Result<NamespaceRecord, StoreError> {
        let disk = self.disk();
        let namespace = self.namespace(account, id)?;
        self.visible_record(disk.as_ref(), &namespace)?.ok_or(StoreError::NamespaceNotFound)
    }

    /// Renames a namespace. Renaming to its current title is allowed and bumps the version.
    pub fn rename_namespace(
        &self,
        account: &AccountId,
        id: &NamespaceId,
        title: &str,
    ) -> Result<NamespaceRecord, StoreError> {
        let _disk = self.disk();
        let _catalog = self.catalog.lock();
        let namespace = self.namespace_for_write(account, id)?;
        if self.live_records(account, false)?.iter().any(|r| r.title == title && r.id != *id) {
            return Err(StoreError::DuplicateTitle);
        }
        let mut effects = Effects::default();
        let record = self.rewrite_record(&namespace, &mut effects, |current, version| {
            NamespaceRecord { title: title.to_owned(), version, ..current.clone() }
        })?;
        self.finish(effects);
        self.notify();
        Ok(record)
    }

    /// Deletes a namespace and all of its keys. The record stays behind as a tombstone. The
    /// keys go once the delete is durable (see `pending_drops`); until then readers see the
    /// namespace as it was, and writers find it deleted.
    pub fn delete_namespace(
        &self,
        account: &AccountId,
        id: &NamespaceId,
    ) -> Result<(), StoreError> {
        let disk = self.disk();
        let _catalog = self.catalog.lock();
        let namespace = self.namespace_for_write(account, id)?;
        let mut effects = Effects::default();
        let record = self.rewrite_record(&namespace, &mut effects, |current, version| {
            NamespaceRecord { deleted: true, version, ..current.clone() }
        })?;
        if self.hidden(disk.as_ref(), record.version) {
            self.pending_drops.lock().push(record.id);
        } else {
            self.drop_keys(&namespace)?;
        }
        self.finish(effects);
        self.notify();
        Ok(())
    }

    /// Replaces a namespace's record with `change` of it at a fresh version, logged for the
    /// peers, and moves the digest from the old version to the new one.
    pub(super) fn rewrite_record(
        &self,
        namespace: &Namespace,
        effects: &mut Effects,
        change: impl FnOnce(&NamespaceRecord, Version) -> NamespaceRecord,
    ) -> Result<NamespaceRecord, StoreError> {
        let mut record = namespace.record.write();
        let write =
            self.stamp_one(|version| ReplicatedWrite::Namespace(change(&record, version)))?;
        let ReplicatedWrite::Namespace(new) = write else { unreachable!("built above") };
        self.untrack_record(namespace, &record);
        *record = new.clone();
        self.track_record(namespace, &new, effects);
        Ok(new)
    }

    /// Forgets every key of a deleted namespace, and takes them out of the digest. On disk the
    /// removal follows the record's commit; recovery finishes it if a crash comes in between.
    pub(super) fn drop_keys(&self, namespace: &Namespace) -> Result<(), StoreError> {
        let (account, id) = {
            let record = namespace.record.read();
            (record.account.clone(), record.id.clone())
        };
        let mut map = namespace.keys.write();
        self.commit_with(None, |disk, batch| {
            for key in map.keys() {
                disk.remove_entry(batch, &id, key);
            }
        })?;
        let keys = std::mem::take(&mut *map);
        let mut digest = self.digest.lock();
        for (key, slot) in keys {
            if slot.digested {
                let hash = item_hash(account.as_str(), id.as_str(), Some(&key), slot.version);
                digest.tree.remove(slot.leaf, hash);
            }
        }
        Ok(())
    }

    /// The live namespaces of `account`, sorted.
    pub fn list_namespaces(
        &self,
        account: &AccountId,
        order: NamespaceOrder,
        descending: bool,
    ) -> Result<Vec<NamespaceRecord>, StoreError> {
        let _disk = self.disk();
        let mut records = self.live_records(account, true)?;
        match order {
            NamespaceOrder::Id => records.sort_by(|a, b| a.id.cmp(&b.id)),
            NamespaceOrder::Title => {
                records.sort_by(|a, b| a.title.cmp(&b.title).then_with(|| a.id.cmp(&b.id)))
            }
        }
        if descending {
            records.reverse();
        }
        Ok(records)
    }

    /// The live namespaces of `account`: as readers see them when `visible`, else with the
    /// records still in their group commit.
    fn live_records(
        &self,
        account: &AccountId,
        visible: bool,
    ) -> Result<Vec<NamespaceRecord>, StoreError> {
        let disk = self.disk();
        let disk = disk.as_ref().filter(|_| visible);
        let namespaces: Vec<Arc<Namespace>> =
            self.namespaces.iter().map(|ns| Arc::clone(&ns)).collect();
        let mut live = Vec::new();
        for ns in namespaces {
            if let Some(record) = self.visible_record(disk, &ns)? {
                if is_live(&record) && record.account == *account {
                    live.push(record);
                }
            }
        }
        Ok(live)
    }

    /// A namespace's record as readers see it: a local change still in its group commit is
    /// not shown, the durable record is (`None`: the namespace is not durable yet).
    pub(super) fn visible_record(
        &self,
        disk: Option<&Disk>,
        ns: &Namespace,
    ) -> Result<Option<NamespaceRecord>, StoreError> {
        let record = ns.record.read().clone();
        match disk {
            Some(disk) if self.hidden(Some(disk), record.version) => {
                disk.durable_record(&record.id)
            }
            _ => Ok(Some(record)),
        }
    }

    /// The account that owns the live namespace `id`, for callers that know a namespace only by
    /// its id (a Worker's binding names its namespace, not its account).
    pub fn namespace_owner(&self, id: &NamespaceId) -> Option<AccountId> {
        let disk = self.disk();
        let namespace = self.namespaces.get(id).map(|ns| Arc::clone(&ns))?;
        let record = self.visible_record(disk.as_ref(), &namespace).ok()??;
        is_live(&record).then_some(record.account)
    }

    /// The namespace `id` of `account` if readers see it live.
    pub(super) fn namespace(
        &self,
        account: &AccountId,
        id: &NamespaceId,
    ) -> Result<Arc<Namespace>, StoreError> {
        let disk = self.disk();
        let Some(namespace) = self.namespaces.get(id).map(|ns| Arc::clone(&ns)) else {
            return Err(StoreError::NamespaceNotFound);
        };
        match self.visible_record(disk.as_ref(), &namespace)? {
            Some(record) if record.account == *account && is_live(&record) => Ok(namespace),
            _ => Err(StoreError::NamespaceNotFound),
        }
    }

    /// The namespace `id` of `account` if it takes local writes: live, counting a change still
    /// in its group commit. A write may follow a create that is not durable yet, because the
    /// write's own group commit makes everything committed before it durable too.
    pub(super) fn namespace_for_write(
        &self,
        account: &AccountId,
        id: &NamespaceId,
    ) -> Result<Arc<Namespace>, StoreError> {
        let namespace = self.namespaces.get(id).map(|ns| Arc::clone(&ns));
        let takes = |ns: &Namespace| {
            let record = ns.record.read();
            record.account == *account && is_live(&record)
        };
        namespace.filter(|ns| takes(ns)).ok_or(StoreError::NamespaceNotFound)
    }
}
