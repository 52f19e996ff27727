//! The history, interned and indexed once for the questions every measurement asks: which
//! writes were acknowledged, which reads returned what, and when each region first held each
//! version or a newer one.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use crate::bounds::apply_estimate;
use crate::history::{Function, History, Nanos, Op, Outcome};
use crate::meta::RunMeta;

/// An acknowledged write with a version.
pub(super) struct Write<'a> {
    pub(super) op: &'a Op,
    pub(super) key: usize,
    pub(super) origin: usize,
    pub(super) version: &'a str,
}

impl Write<'_> {
    pub(super) fn ack(&self) -> Nanos {
        self.op.complete
    }
    pub(super) fn invoke(&self) -> Nanos {
        self.op.invoke
    }
}

/// The multiply-rotate hash of rustc (FxHash): the index's maps are keyed by small integers and
/// short names from the run's own history, where SipHash's flooding resistance buys nothing and
/// costs a third of the analysis time on a million operations.
#[derive(Clone, Copy, Default)]
pub(super) struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            for (slot, &byte) in word.iter_mut().zip(chunk) {
                *slot = byte;
            }
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

pub(super) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
pub(super) type FastSet<K> = HashSet<K, BuildHasherDefault<FxHasher>>;

/// The history, interned and indexed for the questions the measurements ask.
pub(super) struct Index<'a> {
    pub(super) history: &'a History,
    pub(super) regions: Vec<&'a str>,
    pub(super) region_ix: FastMap<&'a str, usize>,
    pub(super) keys: Vec<&'a str>,
    pub(super) key_ix: FastMap<&'a str, usize>,
    /// Per (key, region): the steps where the region's greatest version grew, by time.
    pub(super) held: Held<'a>,
    pub(super) writes: Vec<Write<'a>>,
    /// When each region first held each write (or newer): `holds[write × regions + region]`.
    pub(super) holds: Vec<Option<Nanos>>,
    /// Each write's version rank among its key's writes, from 1 (equal versions, equal ranks).
    pub(super) ranks: Vec<usize>,
    /// Per key: its writes (indexes into `writes`) by invoke time.
    pub(super) writes_by_key: Vec<Vec<usize>>,
    /// Per key: its acknowledged gets, with their region's index, by invoke time.
    pub(super) gets_by_key: Vec<Vec<(usize, &'a Op)>>,
    /// Per key: all its operations (listings excluded) in history order.
    pub(super) ops_by_key: Vec<Vec<&'a Op>>,
}

fn intern<'a>(map: &mut FastMap<&'a str, usize>, names: &mut Vec<&'a str>, name: &'a str) -> usize {
    if let Some(&i) = map.get(name) {
        return i;
    }
    map.insert(name, names.len());
    names.push(name);
    names.len() - 1
}
/// Per (key, region): the steps where the region's greatest version grew, by time.
pub(super) type Held<'a> = FastMap<(usize, usize), Vec<(Nanos, &'a str)>>;

/// Names in the order they were first met, and each name's position.
type Interned<'a> = (Vec<&'a str>, FastMap<&'a str, usize>);

/// The acknowledged writes that carry a version; per key, its writes and its acknowledged gets.
struct Acknowledged<'a> {
    writes: Vec<Write<'a>>,
    writes_by_key: Vec<Vec<usize>>,
    gets_by_key: Vec<Vec<(usize, &'a Op)>>,
}

impl<'a> Index<'a> {
    pub(super) fn new(history: &'a History, meta: &'a RunMeta) -> Self {
        let (regions, region_ix) = intern_regions(history, meta);
        let (keys, key_ix, ops_by_key) = intern_keys(history);
        let held = held_steps(history, &key_ix, &region_ix, &ops_by_key);
        let acked = acknowledged(&ops_by_key, &region_ix);
        let (ranks, holds) =
            ranks_and_holds(&acked.writes, &acked.writes_by_key, &held, regions.len());
        Index {
            history,
            regions,
            region_ix,
            keys,
            key_ix,
            held,
            writes: acked.writes,
            holds,
            ranks,
            writes_by_key: acked.writes_by_key,
            gets_by_key: acked.gets_by_key,
            ops_by_key,
        }
    }

    /// Write `w`'s version rank among its key's writes.
    pub(super) fn rank(&self, w: usize) -> usize {
        self.ranks.get(w).copied().unwrap_or(0)
    }

    /// When `region` first held write `w` (an index into `writes`) or a newer version.
    pub(super) fn hold(&self, w: usize, region: usize) -> Option<Nanos> {
        self.holds.get(w * self.regions.len() + region).copied().flatten()
    }

    /// When `region` first held `version` of `key` or a newer one.
    pub(super) fn first_hold(&self, key: usize, region: usize, version: &str) -> Option<Nanos> {
        let steps = self.held.get(&(key, region))?;
        let i = steps.partition_point(|&(_, v)| v < version);
        steps.get(i).map(|&(at, _)| at)
    }

    /// The writes of one key, by invoke time.
    pub(super) fn key_writes(&self, key: usize) -> impl Iterator<Item = &Write<'a>> + '_ {
        self.writes_by_key.get(key).into_iter().flatten().filter_map(|&w| self.writes.get(w))
    }

    /// The end of the workload: run.json's, else the last completion.
    pub(super) fn workload_end(&self, meta: &RunMeta) -> Nanos {
        if meta.workload.1 > 0 {
            meta.workload.1
        } else {
            self.history.ops.iter().map(|o| o.complete).max().unwrap_or(0)
        }
    }

    /// The last instant the history mentions.
    pub(super) fn end_of_run(&self, meta: &RunMeta) -> Nanos {
        let h = self.history;
        h.ops
            .iter()
            .map(|o| o.complete.max(o.invoke))
            .chain(h.applies.iter().map(|a| a.at))
            .chain(h.faults.iter().map(|f| f.at))
            .chain(h.finals.iter().map(|f| f.at))
            .chain([meta.workload.1])
            .max()
            .unwrap_or(0)
    }
}

/// Per (key, region): the steps where the region's greatest version grew, by time. Each apply is
/// placed at [`apply_estimate`], given the write (of any outcome) that produced its version.
fn held_steps<'a>(
    history: &'a History,
    key_ix: &FastMap<&'a str, usize>,
    region_ix: &FastMap<&'a str, usize>,
    ops_by_key: &[Vec<&'a Op>],
) -> Held<'a> {
    let mut writes: FastMap<(usize, &str), &Op> = FastMap::default();
    for (k, ops) in ops_by_key.iter().enumerate() {
        for op in ops.iter().filter(|o| o.is_write()) {
            if let Some(v) = op.version.as_deref() {
                writes.entry((k, v)).or_insert(op);
            }
        }
    }
    let mut held: Held<'a> = FastMap::default();
    for a in &history.applies {
        if let (Some(&k), Some(&r)) = (key_ix.get(a.key.as_str()), region_ix.get(a.region.as_str()))
        {
            let at = apply_estimate(a, writes.get(&(k, a.version.as_str())).copied());
            held.entry((k, r)).or_default().push((at, a.version.as_str()));
        }
    }
    for list in held.values_mut() {
        list.sort_unstable();
        let mut steps: Vec<(Nanos, &str)> = Vec::new();
        for &(at, version) in list.iter() {
            if steps.last().is_none_or(|&(_, top)| version > top) {
                steps.push((at, version));
            }
        }
        *list = steps;
    }
    held
}

/// The regions run.json lists, in its order, then those only the history names, by name (a
/// stable order whatever the history's).
fn intern_regions<'a>(history: &'a History, meta: &'a RunMeta) -> Interned<'a> {
    let mut regions = Vec::new();
    let mut region_ix = FastMap::default();
    for region in &meta.regions {
        intern(&mut region_ix, &mut regions, region.name.as_str());
    }
    let extra: FastSet<&str> = history
        .ops
        .iter()
        .map(|o| o.region.as_str())
        .chain(history.applies.iter().map(|a| a.region.as_str()))
        .chain(history.finals.iter().map(|f| f.region.as_str()))
        .filter(|r| !region_ix.contains_key(r))
        .collect();
    let extra: BTreeSet<&str> = extra.into_iter().collect();
    for region in extra {
        intern(&mut region_ix, &mut regions, region);
    }
    (regions, region_ix)
}

/// The keys in the order they were first met (operations, applies, final reads), and each
/// key's operations, listings excluded, in history order.
fn intern_keys(history: &History) -> (Vec<&str>, FastMap<&str, usize>, Vec<Vec<&Op>>) {
    let mut keys = Vec::new();
    let mut key_ix = FastMap::default();
    let mut ops_by_key: Vec<Vec<&Op>> = Vec::new();
    for op in history.ops.iter().filter(|o| o.f != Function::List) {
        let k = intern(&mut key_ix, &mut keys, op.key.as_str());
        if ops_by_key.len() <= k {
            ops_by_key.push(Vec::new());
        }
        if let Some(list) = ops_by_key.get_mut(k) {
            list.push(op);
        }
    }
    for key in history.applies.iter().map(|a| a.key.as_str()) {
        intern(&mut key_ix, &mut keys, key);
    }
    for key in history.finals.iter().map(|f| f.key.as_str()) {
        intern(&mut key_ix, &mut keys, key);
    }
    ops_by_key.resize_with(keys.len(), Vec::new);
    (keys, key_ix, ops_by_key)
}

/// The acknowledged writes with a version and region, and the acknowledged gets, per key by
/// invoke time.
fn acknowledged<'a>(
    ops_by_key: &[Vec<&'a Op>],
    region_ix: &FastMap<&'a str, usize>,
) -> Acknowledged<'a> {
    let mut writes = Vec::new();
    let mut writes_by_key = vec![Vec::new(); ops_by_key.len()];
    let mut gets_by_key = vec![Vec::new(); ops_by_key.len()];
    for (k, ops) in ops_by_key.iter().enumerate() {
        for &op in ops.iter().filter(|o| o.outcome == Outcome::Ok) {
            let region = region_ix.get(op.region.as_str()).copied();
            if op.is_write() {
                let (Some(version), Some(origin)) = (op.version.as_deref(), region) else {
                    continue;
                };
                if let Some(list) = writes_by_key.get_mut(k) {
                    list.push(writes.len());
                }
                writes.push(Write { op, key: k, origin, version });
            } else if op.f == Function::Get {
                if let (Some(list), Some(r)) = (gets_by_key.get_mut(k), region) {
                    list.push((r, op));
                }
            }
        }
    }
    for list in &mut writes_by_key {
        list.sort_by_key(|&w| writes.get(w).map(|w| (w.invoke(), w.op.index)));
    }
    for list in &mut gets_by_key {
        list.sort_by_key(|(_, o)| (o.invoke, o.index));
    }
    Acknowledged { writes, writes_by_key, gets_by_key }
}

/// Each write's version rank among its key's writes, and when each region first held it (or a
/// newer version). Both walk each key's writes in version order alongside each region's steps
/// (also in version order): linear, where a binary search per write and region would compare
/// strings a few million times more on a long run.
fn ranks_and_holds(
    writes: &[Write<'_>],
    writes_by_key: &[Vec<usize>],
    held: &Held<'_>,
    r_count: usize,
) -> (Vec<usize>, Vec<Option<Nanos>>) {
    let mut holds = vec![None; writes.len() * r_count];
    let mut ranks = vec![0; writes.len()];
    for (k, list) in writes_by_key.iter().enumerate() {
        let mut by_version: Vec<(&str, usize)> =
            list.iter().filter_map(|&w| writes.get(w).map(|x| (x.version, w))).collect();
        by_version.sort_unstable();
        rank_by_version(&by_version, &mut ranks);
        for r in 0..r_count {
            let Some(steps) = held.get(&(k, r)) else { continue };
            let mut p = 0;
            for &(version, w) in &by_version {
                while steps.get(p).is_some_and(|&(_, v)| v < version) {
                    p += 1;
                }
                if let Some(slot) = holds.get_mut(w * r_count + r) {
                    *slot = steps.get(p).map(|&(at, _)| at);
                }
            }
        }
    }
    (ranks, holds)
}

/// Ranks one key's writes, sorted by version, from 1: equal versions get equal ranks.
fn rank_by_version(by_version: &[(&str, usize)], ranks: &mut [usize]) {
    let mut rank = 0;
    let mut previous = None;
    for &(version, w) in by_version {
        if previous != Some(version) {
            rank += 1;
            previous = Some(version);
        }
        if let Some(slot) = ranks.get_mut(w) {
            *slot = rank;
        }
    }
}
