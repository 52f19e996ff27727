//! Rebuilding the in-memory index from the durable store when it opens.

use std::sync::Arc;

use super::*;
use crate::disk::{Meta, OpenError};
use crate::{AccountId, NamespaceId};

impl Store {
    pub(super) fn recover(&self, meta: Meta) -> Result<Recovered, OpenError> {
        let Some(disk) = &self.disk else { return Ok(Recovered::default()) };
        let mut recovered = Recovered::default();
        let mut floor = meta.hlc_bound;
        // Everything old enough goes straight into the digest; the rest matures as usual.
        self.digest.lock().matured_through_ms = self.now_ms();
        let mut effects = Effects::default();
        for record in disk.records()? {
            floor = floor.max(record.version.ts);
            let ns = Arc::new(Namespace::new(record.clone()));
            if !is_placeholder(&record) {
                self.track_record(&ns, &record, &mut effects);
            }
            self.namespaces.insert(record.id.clone(), ns);
            recovered.namespaces += 1;
        }
        // Keys of a namespace deleted just before a crash (the record committed, the key
        // removal not yet): removed now, as the delete would have.
        let mut orphans = Vec::new();
        // A namespace's keys come in order, so its map is built in one pass (densely packed
        // nodes: less memory, and far faster than a million inserts).
        type Loading = (NamespaceId, Option<(Arc<Namespace>, AccountId)>, Vec<(Arc<str>, Slot)>);
        let mut loading: Option<Loading> = None;
        let finish = |loaded: Option<Loading>| {
            if let Some((_, Some((ns, _)), keys)) = loaded {
                // Sorted input: `collect` builds the tree bottom-up with full nodes.
                *ns.keys.write() = keys.into_iter().collect();
            }
        };
        {
            let mut digest = self.digest.lock();
            disk.scan_entries(|ns_id, key, entry| {
                floor = floor.max(entry.version.ts);
                if loading.as_ref().is_none_or(|(id, _, _)| *id != ns_id) {
                    finish(loading.take());
                    let target = self.namespaces.get(&ns_id).and_then(|ns| {
                        let record = ns.record.read();
                        takes_keys(&record).then(|| (Arc::clone(&ns), record.account.clone()))
                    });
                    loading = Some((ns_id.clone(), target, Vec::new()));
                }
                let Some((id, target, keys)) = loading.as_mut() else { return };
                let Some((_, account)) = target else {
                    orphans.push((ns_id, key.to_owned()));
                    return;
                };
                let key: Arc<str> = Arc::from(key);
                let value = if entry.is_tombstone() { Value::Tombstone } else { Value::Disk };
                let mut slot = self.new_slot(account, id, &key, &entry, value);
                self.enter_digest(&mut digest, account, id, &key, &mut slot, &mut effects);
                effects.purges.extend(self.purge_for(id, &key, &slot));
                keys.push((key, slot));
                recovered.keys += 1;
            })?;
            finish(loading.take());
        }
        if !orphans.is_empty() {
            let mut batch = disk.batch();
            for (ns, key) in &orphans {
                disk.remove_entry(&mut batch, ns, key);
            }
            disk.commit(batch).map_err(|e| OpenError::Engine {
                dir: disk.dir().to_path_buf(),
                message: e.to_string(),
            })?;
        }
        recovered.outbox_last = disk.outbox_last()?;
        if let Some(last) = recovered.outbox_last {
            floor = floor.max(last);
        }
        self.hlc.raise_floor(floor);
        recovered.clock_floor = floor;
        self.positions.lock().extend(meta.positions);
        self.finish(effects);
        Ok(recovered)
    }
}
