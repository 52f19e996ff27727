//! B3, conflicts: which writes were concurrent with a write of another region, which of them
//! last-writer-wins discarded, which of those no read ever returned, next to what a Poisson
//! model predicts; and real-time inversions.

use super::index::{FastSet, Index, Write};
use super::stats::ratio;
use crate::history::Nanos;
use crate::meta::RunMeta;
use crate::summary::{ConflictRegion, ConflictSummary, InversionExample, VisibilitySummary};

/// Inversions listed as examples.
const INVERSION_EXAMPLES: usize = 10;

/// Conflicts, LWW losers, silent losses and real-time inversions (B3). Concurrency compares a
/// write's invoke with when the other region held the other write, from apply estimates; an
/// estimate is never before its own write's invoke, so a region that holds an older write
/// through its own newer one holds it after that newer write was sent. Inversions compare client
pub(super) fn conflicts(
    ix: &Index<'_>,
    meta: &RunMeta,
    determined: bool,
    vis: &VisibilitySummary,
) -> ConflictSummary {
    let mut flags =
        Flags { concurrent: vec![false; ix.writes.len()], loser: vec![false; ix.writes.len()] };
    let mut inversions = Inversions::default();
    for (key, writes) in ix.writes_by_key.iter().enumerate() {
        if writes.len() < 2 {
            continue;
        }
        if determined {
            flags.mark_key(ix, writes);
        }
        inversions.count_key(ix, key, writes);
    }
    let silent = flags.silent(ix);
    let mut per_region = per_region(ix, &flags, &silent, determined);
    let count = |flags: &[bool]| flags.iter().filter(|&&f| f).count();
    let (n_concurrent, n_losers, n_silent) =
        (count(&flags.concurrent), count(&flags.loser), count(&silent));
    let writes = ix.writes.len();
    let delay = vis.overall.mean_ms.or(vis.overall.predicted_mean_ms);
    let poisson = delay.and_then(|d| poisson_estimate(ix, meta, d));
    if let Some((_, by_region)) = &poisson {
        for row in &mut per_region {
            let origin = ix.region_ix.get(row.region.as_str()).copied();
            row.poisson_estimate = origin.and_then(|o| by_region.get(o).copied().flatten());
        }
    }
    let rate = |n: usize| if determined { ratio(n, writes) } else { None };
    ConflictSummary {
        timestamp_source: meta.timestamp_source.clone(),
        determined,
        writes,
        concurrent: n_concurrent,
        losers: n_losers,
        silent_losses: n_silent,
        conflict_rate: rate(n_concurrent),
        loser_rate: rate(n_losers),
        silent_loss_rate: rate(n_silent),
        inversions: inversions.count,
        tied_inversions: inversions.tied,
        inversion_examples: inversions.examples,
        poisson_estimate: poisson.map(|(overall, _)| overall),
        poisson_delay_ms: delay,
        per_region,
    }
}

/// Per write (an index into the index's writes): whether it was concurrent with a write of
/// another region, and whether one of those had a greater version.
struct Flags {
    concurrent: Vec<bool>,
    loser: Vec<bool>,
}

impl Flags {
    /// Per write: whether it lost and no read anywhere ever returned it.
    fn silent(&self, ix: &Index<'_>) -> Vec<bool> {
        let returned = returned_versions(ix);
        ix.writes
            .iter()
            .zip(&self.loser)
            .map(|(w, &l)| l && !returned.contains(&(w.key, w.version)))
            .collect()
    }

    /// Marks one key's writes (indexes into the index's writes, by invoke time).
    fn mark_key(&mut self, ix: &Index<'_>, writes: &[usize]) {
        // Per origin region: its writes by invoke time.
        let mut by_region: Vec<Vec<usize>> = vec![Vec::new(); ix.regions.len()];
        for &w in writes {
            if let Some(group) = ix.writes.get(w).and_then(|write| by_region.get_mut(write.origin))
            {
                group.push(w);
            }
        }
        let active: Vec<usize> = (0..by_region.len())
            .filter(|&r| by_region.get(r).is_some_and(|g| !g.is_empty()))
            .collect();
        if active.len() >= 2 {
            mark_concurrent(ix, &by_region, &active, &mut self.concurrent, &mut self.loser);
        }
    }
}

/// Real-time inversions: writes invoked after a greater version was acknowledged.
#[derive(Default)]
struct Inversions {
    count: usize,
    /// Those between equal clock readings, ordered by the region tie-break alone.
    tied: usize,
    examples: Vec<InversionExample>,
}

impl Inversions {
    /// Counts one key's: in invoke order, each write against every write acknowledged before.
    fn count_key(&mut self, ix: &Index<'_>, key: usize, writes: &[usize]) {
        let mut by_ack: Vec<&Write<'_>> = writes.iter().filter_map(|&w| ix.writes.get(w)).collect();
        by_ack.sort_by_key(|w| (w.ack(), w.op.index));
        let mut next = 0;
        let mut newest: Option<&Write<'_>> = None;
        for w in writes.iter().filter_map(|&w| ix.writes.get(w)) {
            while let Some(done) = by_ack.get(next).filter(|d| d.ack() < w.invoke()) {
                if newest.is_none_or(|n| done.version > n.version) {
                    newest = Some(done);
                }
                next += 1;
            }
            let Some(n) = newest.filter(|n| n.version > w.version) else { continue };
            self.count += 1;
            if same_timestamp(n.version, w.version) {
                self.tied += 1;
            }
            if self.examples.len() < INVERSION_EXAMPLES {
                self.examples.push(InversionExample {
                    key: ix.keys.get(key).copied().unwrap_or("").to_owned(),
                    earlier: n.op.index,
                    later: w.op.index,
                });
            }
        }
    }
}

/// What any read (or final read) returned: a loser seen once was not lost silently.
fn returned_versions<'a>(ix: &Index<'a>) -> FastSet<(usize, &'a str)> {
    let mut returned: FastSet<(usize, &str)> = FastSet::default();
    for (key, gets) in ix.gets_by_key.iter().enumerate() {
        for v in gets.iter().filter_map(|(_, g)| g.version.as_deref()) {
            returned.insert((key, v));
        }
    }
    for read in &ix.history.finals {
        if let (Some(&k), Some(v)) = (ix.key_ix.get(read.key.as_str()), read.version.as_deref()) {
            returned.insert((k, v));
        }
    }
    returned
}

/// The counts and rates of each region that wrote, as the origin of its writes.
fn per_region(
    ix: &Index<'_>,
    flags: &Flags,
    silent: &[bool],
    determined: bool,
) -> Vec<ConflictRegion> {
    let mut rows: Vec<ConflictRegion> = ix
        .regions
        .iter()
        .map(|r| ConflictRegion { region: (*r).to_owned(), ..ConflictRegion::default() })
        .collect();
    let flag = |list: &[bool], i: usize| usize::from(list.get(i).copied().unwrap_or(false));
    for (i, w) in ix.writes.iter().enumerate() {
        if let Some(row) = rows.get_mut(w.origin) {
            row.writes += 1;
            row.concurrent += flag(&flags.concurrent, i);
            row.losers += flag(&flags.loser, i);
            row.silent_losses += flag(silent, i);
        }
    }
    rows.retain(|r| r.writes > 0);
    for row in rows.iter_mut().filter(|_| determined) {
        row.conflict_rate = ratio(row.concurrent, row.writes);
        row.loser_rate = ratio(row.losers, row.writes);
        row.silent_loss_rate = ratio(row.silent_losses, row.writes);
    }
    rows
}

/// Marks the concurrent writes and the LWW losers of one key.
///
/// w1 (from A) and w2 (from B) are concurrent when each was invoked before its region held the
/// other: inv(w2) < hold_B(w1) and inv(w1) < hold_A(w2). For w1, the B-writes meeting the first
/// condition are a prefix of B's writes by invoke time. Taking A's writes by decreasing invoke
/// time, the B-writes meeting the second condition only accumulate; kept in a prefix-maximum
/// tree over their positions, with their version ranks as values, one query per write answers
/// both "is some B-write concurrent" (the maximum is not empty) and "does a concurrent one win"
/// (its rank exceeds w1's): O(n log n) per pair of regions, however hot the key.
fn mark_concurrent(
    ix: &Index<'_>,
    by_region: &[Vec<usize>],
    active: &[usize],
    concurrent: &mut [bool],
    loser: &mut [bool],
) {
    let never = Nanos::MAX;
    for &b in active {
        let Some(group_b) = by_region.get(b) else { continue };
        let writes_b: Vec<(usize, &Write<'_>)> =
            group_b.iter().filter_map(|&i| ix.writes.get(i).map(|w| (i, w))).collect();
        let invokes_b: Vec<Nanos> = writes_b.iter().map(|(_, w)| w.invoke()).collect();
        // Ranks start at 1, so that 0 means "no concurrent write".
        let ranks_b: Vec<usize> = writes_b.iter().map(|&(i, _)| ix.rank(i)).collect();
        for &a in active.iter().filter(|&&a| a != b) {
            let Some(group_a) = by_region.get(a) else { continue };
            let hold_a: Vec<Nanos> =
                writes_b.iter().map(|&(i, _)| ix.hold(i, a).unwrap_or(never)).collect();
            let mut by_hold: Vec<usize> = (0..writes_b.len()).collect();
            by_hold.sort_unstable_by_key(|&j| std::cmp::Reverse(hold_a.get(j).copied()));
            let mut tree = PrefixMax::new(writes_b.len());
            let mut next = 0;
            for &i in group_a.iter().rev() {
                let Some(w1) = ix.writes.get(i) else { continue };
                while let Some(&j) =
                    by_hold.get(next).filter(|&&j| hold_a.get(j).is_some_and(|&h| h > w1.invoke()))
                {
                    tree.raise(j, ranks_b.get(j).copied().unwrap_or(0));
                    next += 1;
                }
                let hold_b = ix.hold(i, b).unwrap_or(never);
                let best = tree.max_below(invokes_b.partition_point(|&t| t < hold_b));
                if best == 0 {
                    continue;
                }
                if let Some(flag) = concurrent.get_mut(i) {
                    *flag = true;
                }
                if best > ix.rank(i) {
                    if let Some(flag) = loser.get_mut(i) {
                        *flag = true;
                    }
                }
            }
        }
    }
}

/// Maximum over a prefix of positions whose values only grow (a Fenwick tree for max).
struct PrefixMax(Vec<usize>);

impl PrefixMax {
    fn new(n: usize) -> Self {
        PrefixMax(vec![0; n + 1])
    }

    fn raise(&mut self, position: usize, value: usize) {
        let mut i = position + 1;
        while let Some(slot) = self.0.get_mut(i) {
            *slot = (*slot).max(value);
            i += i & i.wrapping_neg();
        }
    }

    /// The greatest value at positions below `end` (0 if none).
    fn max_below(&self, end: usize) -> usize {
        let mut i = end.min(self.0.len().saturating_sub(1));
        let mut max = 0;
        while i > 0 {
            max = max.max(self.0.get(i).copied().unwrap_or(0));
            i &= i - 1;
        }
        max
    }
}

/// The conflict rate a Poisson process predicts: a write conflicts when another region writes
/// the key within the mean visibility delay d before or after it, so with λ the key's write rate
/// from other regions, P = 1 − exp(−2 d λ), averaged over the writes: overall, and per origin
/// region.
fn poisson_estimate(
    ix: &Index<'_>,
    meta: &RunMeta,
    delay_ms: f64,
) -> Option<(f64, Vec<Option<f64>>)> {
    let span = if meta.workload.1 > meta.workload.0 {
        meta.workload.1 - meta.workload.0
    } else {
        let first = ix.writes.iter().map(Write::invoke).min()?;
        let last = ix.writes.iter().map(Write::ack).max()?;
        last.saturating_sub(first)
    };
    let seconds = span as f64 / 1e9;
    if seconds <= 0.0 || ix.writes.is_empty() {
        return None;
    }
    let d = delay_ms.max(0.0) / 1000.0;
    let r_count = ix.regions.len();
    let (mut sums, mut writes) = (vec![0.0; r_count], vec![0usize; r_count]);
    let mut per_region = vec![0usize; r_count];
    for key_writes in &ix.writes_by_key {
        per_region.iter_mut().for_each(|c| *c = 0);
        for w in key_writes.iter().filter_map(|&w| ix.writes.get(w)) {
            if let Some(c) = per_region.get_mut(w.origin) {
                *c += 1;
            }
        }
        let total: usize = per_region.iter().sum();
        for ((&mine, sum), n) in per_region.iter().zip(&mut sums).zip(&mut writes) {
            let lambda = (total - mine) as f64 / seconds;
            *sum += mine as f64 * (1.0 - (-2.0 * d * lambda).exp());
            *n += mine;
        }
    }
    let overall = sums.iter().sum::<f64>() / ix.writes.len() as f64;
    let by_region =
        sums.iter().zip(&writes).map(|(&s, &n)| (n > 0).then(|| s / n as f64)).collect();
    Some((overall, by_region))
}

/// Whether two versions carry the same clock reading and differ only by their tie-breaking
/// region (`TIMESTAMP-REGION`): their order says nothing about real time.
fn same_timestamp(a: &str, b: &str) -> bool {
    match (a.split_once('-'), b.split_once('-')) {
        (Some((ta, _)), Some((tb, _))) => ta == tb,
        _ => false,
    }
}
