//! Workers KV's write rate: at most one write per second to the same key, per location.
//!
//! Applications meet the limit in production as `KV PUT failed: 429 Too Many Requests`, and
//! code that bumps a counter key on every request breaks on it. A local emulator that lets
//! such code pass hides the bug, so every region enforces the limit for the writes it accepts,
//! on the binding and on the REST API alike.
//!
//! The limit is per region, as it is per location on Workers KV. Writes to one key from two
//! regions are never refused for each other: they race and last-writer-wins settles them.
//!
//! A write takes its key's slot for a second before it reaches the store. If the store then
//! refuses the write, the slot is given back, because a write that was refused never happened.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::mapref::entry::Entry as Slot;
use dashmap::DashMap;
use edgekv_core::NamespaceId;

/// How long a key stays taken after a write.
pub const WRITE_INTERVAL_MS: u64 = 1000;

/// The keys written in the last second, and when.
#[derive(Debug, Default)]
pub struct WriteRate {
    last: DashMap<(NamespaceId, Box<str>), u64>,
    /// When the map is next swept of slots older than a second.
    sweep_at_ms: AtomicU64,
}

/// The slots one admitted batch took, to give back if the store refuses it.
#[derive(Debug)]
#[must_use = "a refused write must give its slots back"]
pub struct Taken {
    keys: Vec<(NamespaceId, Box<str>)>,
    at_ms: u64,
}

impl WriteRate {
    /// Takes the slot of every key in `keys` at `now_ms`, or none of them if one was written
    /// less than a second ago. A key given twice counts once.
    pub fn admit<'a>(
        &self,
        namespace: &NamespaceId,
        keys: impl IntoIterator<Item = &'a str>,
        now_ms: u64,
    ) -> Option<Taken> {
        self.sweep(now_ms);
        let mut taken = Taken { keys: Vec::new(), at_ms: now_ms };
        for key in keys {
            let id = (namespace.clone(), Box::<str>::from(key));
            if taken.keys.contains(&id) {
                continue;
            }
            // The entry guard locks the key's shard: it is gone before anything is given back.
            let free = match self.last.entry(id.clone()) {
                Slot::Occupied(mut slot) => {
                    let free = now_ms >= slot.get().saturating_add(WRITE_INTERVAL_MS);
                    if free {
                        slot.insert(now_ms);
                    }
                    free
                }
                Slot::Vacant(slot) => {
                    slot.insert(now_ms);
                    true
                }
            };
            if !free {
                self.give_back(taken);
                return None;
            }
            taken.keys.push(id);
        }
        Some(taken)
    }

    /// Gives back the slots of a batch the store refused, unless a later write took them.
    pub fn give_back(&self, taken: Taken) {
        for id in taken.keys {
            self.last.remove_if(&id, |_, at| *at == taken.at_ms);
        }
    }

    /// Drops slots older than a second, at most once a second: the map holds about one
    /// second's worth of written keys.
    fn sweep(&self, now_ms: u64) {
        let due = self.sweep_at_ms.load(Ordering::Relaxed);
        if now_ms < due {
            return;
        }
        let next = now_ms.saturating_add(WRITE_INTERVAL_MS);
        if self.sweep_at_ms.compare_exchange(due, next, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            self.last.retain(|_, at| now_ms < at.saturating_add(WRITE_INTERVAL_MS));
        }
    }

    /// How many keys are held now (for tests).
    pub fn held(&self) -> usize {
        self.last.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(n: u8) -> NamespaceId {
        NamespaceId::parse(&format!("{n:032x}")).expect("a valid id")
    }

    #[test]
    fn one_write_per_second_per_key() {
        let rate = WriteRate::default();
        assert!(rate.admit(&ns(1), ["k"], 10_000).is_some());
        assert!(rate.admit(&ns(1), ["k"], 10_999).is_none(), "999 ms later");
        assert!(rate.admit(&ns(1), ["other"], 10_999).is_some(), "another key");
        assert!(rate.admit(&ns(2), ["k"], 10_999).is_some(), "another namespace");
        assert!(rate.admit(&ns(1), ["k"], 11_000).is_some(), "a second later");
    }

    #[test]
    fn a_batch_is_admitted_whole_or_not_at_all() {
        let rate = WriteRate::default();
        assert!(rate.admit(&ns(1), ["b"], 0).is_some());
        assert!(rate.admit(&ns(1), ["a", "b", "c"], 500).is_none());
        // Neither a nor c was taken by the refused batch.
        assert!(rate.admit(&ns(1), ["a", "c"], 600).is_some());
        assert!(rate.admit(&ns(1), ["d", "d"], 600).is_some(), "a key given twice counts once");
    }

    #[test]
    fn a_refused_write_gives_its_slot_back() {
        let rate = WriteRate::default();
        let taken = rate.admit(&ns(1), ["k"], 0).expect("free");
        rate.give_back(taken);
        assert!(rate.admit(&ns(1), ["k"], 1).is_some());
        // A later write's slot is not given back by an earlier write's refusal.
        let early = Taken { keys: vec![(ns(1), "k".into())], at_ms: 0 };
        rate.give_back(early);
        assert!(rate.admit(&ns(1), ["k"], 2).is_none());
    }

    #[test]
    fn old_slots_are_swept() {
        let rate = WriteRate::default();
        for i in 0..1000u64 {
            assert!(rate.admit(&ns(1), [format!("k{i}").as_str()], i).is_some());
        }
        assert!(rate.admit(&ns(1), ["late"], 5_000).is_some());
        assert_eq!(rate.held(), 1, "only the newest slot is left");
    }
}
