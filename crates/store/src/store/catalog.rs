//! The namespace catalog: create, rename and delete namespaces, and look them up.

use std::sync::Arc;

use edgekv_core::digest::item_hash;
use edgekv_core::limits::MAX_NAMESPACES_PER_ACCOUNT;
use edgekv_core::Version;

use super::*;
use crate::{AccountId, NamespaceId, NamespaceOrder, NamespaceRecord, ReplicatedWrite};

impl Store {
    /// Creates a namespace with a fresh random id.
    pub fn create_namespace(
        &self,
        account: &AccountId,
        title: &str,
    ) -> Result<NamespaceRecord, StoreError> {
        let _catalog = self.catalog.lock();
        let live = self.live_records(account);
        if live.len() >= MAX_NAMESPACES_PER_ACCOUNT {
            return Err(StoreError::TooManyNamespaces);
        }
        if live.iter().any(|r| r.title == title) {
            return Err(StoreError::DuplicateTitle);
        }
        let id = NamespaceId::random();
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
        Ok(self.namespace(account, id)?.record.read().clone())
    }

    /// Renames a namespace. Renaming to its current title is allowed and bumps the version.
    pub fn rename_namespace(
        &self,
        account: &AccountId,
        id: &NamespaceId,
        title: &str,
    ) -> Result<NamespaceRecord, StoreError> {
        let _catalog = self.catalog.lock();
        let namespace = self.namespace(account, id)?;
        if self.live_records(account).iter().any(|r| r.title == title && r.id != *id) {
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

    /// Deletes a namespace and all of its keys. The record stays behind as a tombstone.
    pub fn delete_namespace(
        &self,
        account: &AccountId,
        id: &NamespaceId,
    ) -> Result<(), StoreError> {
        let _catalog = self.catalog.lock();
        let namespace = self.namespace(account, id)?;
        let mut effects = Effects::default();
        self.rewrite_record(&namespace, &mut effects, |current, version| NamespaceRecord {
            deleted: true,
            version,
            ..current.clone()
        })?;
        self.drop_keys(&namespace)?;
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
        self.commit_with(|disk, batch| {
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
    ) -> Vec<NamespaceRecord> {
        let mut records = self.live_records(account);
        match order {
            NamespaceOrder::Id => records.sort_by(|a, b| a.id.cmp(&b.id)),
            NamespaceOrder::Title => {
                records.sort_by(|a, b| a.title.cmp(&b.title).then_with(|| a.id.cmp(&b.id)))
            }
        }
        if descending {
            records.reverse();
        }
        records
    }

    pub(super) fn live_records(&self, account: &AccountId) -> Vec<NamespaceRecord> {
        self.namespaces
            .iter()
            .map(|ns| ns.record.read().clone())
            .filter(|r| is_live(r) && r.account == *account)
            .collect()
    }

    pub(super) fn namespace(
        &self,
        account: &AccountId,
        id: &NamespaceId,
    ) -> Result<Arc<Namespace>, StoreError> {
        let namespace = self.namespaces.get(id).map(|ns| Arc::clone(&ns));
        let visible = |ns: &Namespace| {
            let record = ns.record.read();
            record.account == *account && is_live(&record)
        };
        namespace.filter(|ns| visible(ns)).ok_or(StoreError::NamespaceNotFound)
    }
}
