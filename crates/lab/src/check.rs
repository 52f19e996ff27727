//! The checker: what an eventually consistent last-writer-wins store must never do, judged on a
//! history.
//!
//! Versions are compared as text. EdgeKV renders a version as 16 hex digits of the hybrid
//! logical clock, a dash and the origin region, so text order is version order.
//!
//! Losing a concurrent write to a greater version is LWW's documented behaviour and is not an
//! anomaly here (the report measures it as a rate). What is:
//!
//! - **divergence**: after the quiet period, regions serve different states of a key;
//! - **lost write**: the final state of a key is older than the newest write acknowledged
//!   before the final read, or missing although that write is a put that has not expired;
//! - **wrong value**: a final state whose version no write produced, or whose value is not the
//!   one written with that version;
//! - **resurrection**: a deleted key served again: finally, or by a region that had certainly
//!   applied the delete before the read (for a cached read: before the read less its
//!   cacheTtl);
//! - **stale read**: a read returns something older than a put its region had certainly
//!   applied before the read began (a region's store never goes back), or, for a read that may
//!   have come from the region's edge cache, before the read began less its cacheTtl (a cache
//!   hit shows the state the cache was filled with: see `check/fresh.rs`);
//! - **read-your-writes**: a read in a region returns something older than a write that region
//!   acknowledged before the read began (a region's own writes replace its cached copy, so this
//!   holds for cached reads too);
//! - **not expired**: a value served after its expiry (an expiration wins over the cache).
//!
//! Each anomaly names the fewest operations that show it. The verdict is valid, invalid, or
//! unknown when the history cannot decide (a key without a final read in some region, or an
//! indeterminate write that could explain what was seen).
//!
//! Every rule that depends on an order proves it from bounds ([`crate::bounds`]), never from a
//! point reading: an apply counts as before a read only if its window ends before the read was
//! invoked, a write as acknowledged before a read only if its completion precedes the read's
//! invoke on the run's clock, an expiry as passed only if its latest possible moment plus the
//! clock tolerance precedes the read. A read that the evidence cannot order against such an
//! event is not an anomaly: there is an order of those events, consistent with everything
//! recorded, in which the store behaved, and the events were simply concurrent. Nor is it an
//! unknown, which is kept for what the history lacks (a final read, the version of an
//! indeterminate write); calling every close race unknown would leave no busy run decidable.
//! Such reads are counted in [`CheckReport::unordered`], so a run shows how many it had.

mod fresh;
mod stale;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use self::fresh::{Applied, Cached, RegionFacts};

pub use crate::bounds::CLOCK_TOLERANCE_MS;
use crate::bounds::{
    completed_wall_ms, expired, expiry_ms, final_answered_wall_ms, may_have_expired,
};
use crate::history::{Apply, FinalRead, Function, History, Nanos, Op, Outcome};

/// The verdict, with Jepsen's exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validity {
    /// No anomaly, and every question could be decided.
    Valid,
    /// At least one anomaly.
    Invalid,
    /// No anomaly, but the history could not decide everything.
    Unknown,
}

impl Validity {
    /// 0 valid, 1 invalid, 2 unknown.
    pub fn exit_code(self) -> i32 {
        match self {
            Validity::Valid => 0,
            Validity::Invalid => 1,
            Validity::Unknown => 2,
        }
    }
}

/// Which invariant an anomaly breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// RegionFacts disagree after the quiet period.
    Divergence,
    /// An acknowledged write is gone without a greater version to explain it.
    LostWrite,
    /// A state no write produced.
    WrongValue,
    /// A deleted key came back.
    Resurrection,
    /// A read older than what its region had certainly applied (less a cache's ttl).
    StaleRead,
    /// A region did not show a client its own acknowledged write.
    ReadYourWrites,
    /// A value was served after its expiry.
    NotExpired,
}

/// One violation, with the operations that show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    /// The invariant broken.
    pub kind: AnomalyKind,
    /// The key.
    pub key: String,
    /// The indexes of the operations that show it (final reads are named in `explanation`).
    pub ops: Vec<u64>,
    /// What happened, for a person.
    pub explanation: String,
}

/// The checker's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The verdict.
    pub validity: Validity,
    /// Every anomaly found.
    pub anomalies: Vec<Anomaly>,
    /// What could not be decided, and why.
    pub unknowns: Vec<String>,
    /// Keys examined.
    pub keys: usize,
    /// Operations examined.
    pub ops: usize,
    /// Reads that would have resurrected a key had a delete's apply, whose window overlaps
    /// them, come first: not proven, so neither anomalies nor unknowns (see the module doc).
    /// Only reads that cannot have been cached count: a cached read's answer is older anyway.
    pub unordered: usize,
    /// Acknowledged gets that may have come from an edge cache, judged against their region's
    /// state up to their cacheTtl before them.
    pub cached: usize,
}

/// Judges `history`.
pub fn check(history: &History) -> CheckReport {
    let mut checker = Checker::default();
    let facts = RegionFacts::new(history);
    let regions: BTreeSet<&str> = history
        .ops
        .iter()
        .map(|o| o.region.as_str())
        .chain(history.finals.iter().map(|f| f.region.as_str()))
        .collect();
    let mut ops_by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    // A listing's key is a prefix, not a key: no invariant here judges it.
    for op in history.ops.iter().filter(|o| o.f != Function::List) {
        ops_by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut finals_by_key: BTreeMap<&str, Vec<&FinalRead>> = BTreeMap::new();
    for read in &history.finals {
        finals_by_key.entry(read.key.as_str()).or_default().push(read);
    }
    let mut applies_by_key: HashMap<&str, Vec<&Apply>> = HashMap::new();
    for apply in &history.applies {
        applies_by_key.entry(apply.key.as_str()).or_default().push(apply);
    }
    if history.finals.is_empty() {
        checker.unknowns.push("the history has no final reads".into());
    }
    let keys: BTreeSet<&str> = ops_by_key.keys().chain(finals_by_key.keys()).copied().collect();
    for key in &keys {
        let ops = ops_by_key.get(key).map_or(&[][..], Vec::as_slice);
        let finals = finals_by_key.get(key).map_or(&[][..], Vec::as_slice);
        let applies = applies_by_key.get(key).map_or(&[][..], Vec::as_slice);
        let k = KeyHistory::new(key, ops, applies, &facts);
        if !history.finals.is_empty() {
            for region in &regions {
                if !finals.iter().any(|f| f.region == *region) {
                    checker.unknowns.push(format!("key {key:?} has no final read in {region}"));
                }
            }
        }
        checker.convergence(&k, finals);
        for read in finals {
            checker.final_state(&k, read);
        }
        checker.reads(&k, &facts);
    }
    checker.anomalies.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
    let validity = if !checker.anomalies.is_empty() {
        Validity::Invalid
    } else if !checker.unknowns.is_empty() {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    CheckReport {
        validity,
        anomalies: checker.anomalies,
        unknowns: checker.unknowns,
        keys: keys.len(),
        ops: history.ops.len(),
        unordered: checker.unordered,
        cached: checker.cached,
    }
}

/// The operations on one key, indexed so that judging a read costs a logarithm, not a scan:
/// a hot key can have a hundred thousand writes and as many reads.
struct KeyHistory<'a> {
    key: &'a str,
    ops: &'a [&'a Op],
    /// The write (of any outcome) that produced each version.
    by_version: HashMap<&'a str, &'a Op>,
    /// Acknowledged writes by completion time, each with the greatest-version write
    /// acknowledged up to then.
    acked: Timeline<'a>,
    /// An indeterminate put and delete without a version, if any.
    unknown_put: Option<&'a Op>,
    unknown_delete: Option<&'a Op>,
    /// The greatest version of a delete that may have happened; `Some(None)`: one whose
    /// version is unknown, which may be greater than anything.
    newest_delete: Option<Option<&'a str>>,
    /// Puts that may have happened and expire, for "a newer put may have expired".
    expiring: Expiring<'a>,
    /// Per region, its acknowledged writes by completion time.
    own_writes: HashMap<&'a str, Timeline<'a>>,
    /// Per region and epoch, the acknowledged writes it certainly (or maybe) held by an instant.
    applied: Applied<'a>,
    /// Per region, what its edge cache may hold of the key.
    cached: Cached<'a>,
}

/// Writes by an instant each is tied to, each entry carrying the greatest-version write up to
/// it, so that "the newest write before `t`" is a binary search.
#[derive(Default)]
struct Timeline<'a>(Vec<(Nanos, &'a Op)>);

impl<'a> Timeline<'a> {
    fn new(mut entries: Vec<(Nanos, &'a Op)>) -> Self {
        entries.sort_by_key(|&(t, o)| (t, o.index));
        let mut best: Option<&'a Op> = None;
        for entry in &mut entries {
            let newest = match best {
                Some(prev) if prev.version >= entry.1.version => prev,
                _ => entry.1,
            };
            best = Some(newest);
            entry.1 = newest;
        }
        Timeline(entries)
    }

    /// The greatest-version write of the entries strictly before `t`.
    fn before(&self, t: Nanos) -> Option<&'a Op> {
        let n = self.0.partition_point(|&(at, _)| at < t);
        n.checked_sub(1).and_then(|i| self.0.get(i)).map(|&(_, op)| op)
    }
}

/// Groups `entries` by region into timelines.
fn timelines<'a>(entries: Vec<(&'a str, Nanos, &'a Op)>) -> HashMap<&'a str, Timeline<'a>> {
    let mut by_region: HashMap<&str, Vec<(Nanos, &Op)>> = HashMap::new();
    for (region, t, op) in entries {
        by_region.entry(region).or_default().push((t, op));
    }
    by_region.into_iter().map(|(r, list)| (r, Timeline::new(list))).collect()
}

/// The puts of one key that may have happened and expire: by version, with the earliest expiry
/// among those at or after each position, and the earliest of those without a version.
#[derive(Default)]
struct Expiring<'a> {
    versions: Vec<&'a str>,
    suffix_earliest: Vec<u64>,
    unversioned: Option<u64>,
}

impl<'a> Expiring<'a> {
    fn new(ops: &[&'a Op]) -> Self {
        let mut out = Expiring::default();
        let mut list: Vec<(&str, u64)> = Vec::new();
        for op in ops.iter().filter(|o| o.outcome != Outcome::Fail) {
            let Some((earliest, _)) = expiry_ms(op) else { continue };
            match op.version.as_deref() {
                Some(v) => list.push((v, earliest)),
                None => {
                    out.unversioned = Some(out.unversioned.map_or(earliest, |e| e.min(earliest)))
                }
            }
        }
        list.sort_unstable();
        let mut min = u64::MAX;
        out.suffix_earliest = list
            .iter()
            .rev()
            .map(|&(_, e)| {
                min = min.min(e);
                min
            })
            .collect();
        out.suffix_earliest.reverse();
        out.versions = list.into_iter().map(|(v, _)| v).collect();
        out
    }

    /// Whether a put with a version greater than `v` may have expired by `wall_ms`.
    fn newer_may_have_expired(&self, v: Option<&str>, wall_ms: u64) -> bool {
        let by = wall_ms.saturating_add(CLOCK_TOLERANCE_MS);
        let i = self.versions.partition_point(|&x| Some(x) <= v);
        self.unversioned.is_some_and(|e| e <= by)
            || self.suffix_earliest.get(i).is_some_and(|&e| e <= by)
    }
}

impl<'a> KeyHistory<'a> {
    fn new(key: &'a str, ops: &'a [&'a Op], applies: &[&'a Apply], facts: &RegionFacts) -> Self {
        let mut by_version = HashMap::new();
        for op in ops.iter().filter(|o| o.is_write()) {
            if let Some(v) = op.version.as_deref() {
                by_version.entry(v).or_insert(*op);
            }
        }
        let acked: Vec<&Op> = ops
            .iter()
            .copied()
            .filter(|o| o.is_write() && o.outcome == Outcome::Ok && o.version.is_some())
            .collect();
        let unknown = |f: Function| {
            ops.iter()
                .copied()
                .find(|o| o.f == f && o.outcome == Outcome::Info && o.version.is_none())
        };
        KeyHistory {
            key,
            ops,
            acked: Timeline::new(acked.iter().map(|o| (o.complete, *o)).collect()),
            unknown_put: unknown(Function::Put),
            unknown_delete: unknown(Function::Delete),
            newest_delete: newest_delete(ops),
            expiring: Expiring::new(ops),
            own_writes: timelines(
                acked.iter().map(|o| (o.region.as_str(), o.complete, *o)).collect(),
            ),
            applied: Applied::new(&by_version, applies, facts),
            cached: Cached::new(ops),
            by_version,
        }
    }

    /// The acknowledged write with the greatest version among those acknowledged before `t`.
    fn newest_acked_before(&self, t: Nanos) -> Option<&'a Op> {
        self.acked.before(t)
    }

    /// The write (of any outcome) that produced `version`.
    fn write_with(&self, version: &str) -> Option<&'a Op> {
        self.by_version.get(version).copied()
    }

    /// Whether an indeterminate write without a known version could explain `what`.
    fn indeterminate(&self, f: Function) -> Option<&'a Op> {
        match f {
            Function::Put => self.unknown_put,
            Function::Delete => self.unknown_delete,
            Function::Get | Function::List => None,
        }
    }

    /// The greatest-version write `region` acknowledged before `t`.
    fn own_newest_before(&self, region: &str, t: Nanos) -> Option<&'a Op> {
        self.own_writes.get(region)?.before(t)
    }

    /// Whether a delete that may have happened could be newer than version `v`.
    fn delete_may_follow(&self, v: Option<&str>) -> bool {
        match self.newest_delete {
            None => false,
            Some(None) => true,
            Some(d) => d > v,
        }
    }

    /// Whether "not found" at a wall clock of `wall_ms` (at the latest) is explained after
    /// write `w` by what the history records: `w` is a delete, a delete with a greater version
    /// may have happened, or `w` or a newer put may have expired. (A delete of unknown version
    /// is left to the caller: the rules differ on it.)
    fn absence_explained(&self, w: &Op, wall_ms: u64) -> bool {
        let newer_delete =
            matches!(self.newest_delete, Some(Some(d)) if Some(d) > w.version.as_deref());
        w.f == Function::Delete
            || newer_delete
            || may_have_expired(w, wall_ms)
            || self.expiring.newer_may_have_expired(w.version.as_deref(), wall_ms)
    }
}

/// The greatest version of a delete that may have happened (see [`KeyHistory`]).
fn newest_delete<'a>(ops: &[&'a Op]) -> Option<Option<&'a str>> {
    ops.iter()
        .filter(|d| d.f == Function::Delete && d.outcome != Outcome::Fail)
        .map(|d| d.version.as_deref())
        // `None` (unknown) sorts first; it must win, so compare it as the greatest.
        .max_by(|a, b| match (a, b) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, _) => std::cmp::Ordering::Greater,
            (_, None) => std::cmp::Ordering::Less,
            (a, b) => a.cmp(b),
        })
}

#[derive(Default)]
struct Checker {
    anomalies: Vec<Anomaly>,
    unknowns: Vec<String>,
    unordered: usize,
    cached: usize,
}

impl Checker {
    fn anomaly(&mut self, kind: AnomalyKind, key: &str, ops: Vec<u64>, explanation: String) {
        self.anomalies.push(Anomaly { kind, key: key.to_owned(), ops, explanation });
    }

    /// Every region ends in the same state.
    fn convergence(&mut self, k: &KeyHistory<'_>, finals: &[&FinalRead]) {
        let states: BTreeSet<Option<&str>> = finals.iter().map(|f| f.version.as_deref()).collect();
        if states.len() <= 1 {
            return;
        }
        let shown: Vec<String> = finals
            .iter()
            .map(|f| format!("{}: {}", f.region, f.version.as_deref().unwrap_or("not found")))
            .collect();
        let ops = states.iter().flatten().filter_map(|v| k.write_with(v)).map(|o| o.index);
        self.anomaly(
            AnomalyKind::Divergence,
            k.key,
            ops.collect(),
            format!("after the quiet period the regions disagree: {}", shown.join(", ")),
        );
    }

    /// A region's final state is the newest write acknowledged before the final read began (or
    /// something newer that a write produced). A write acknowledged later is not owed to it.
    fn final_state(&mut self, k: &KeyHistory<'_>, read: &FinalRead) {
        let newest = k.newest_acked_before(read.at);
        let at = format!("the final read in {}", read.region);
        match (read.version.as_deref(), newest) {
            (None, None) => {}
            (None, Some(w)) => {
                if k.absence_explained(w, final_answered_wall_ms(read)) {
                    return;
                }
                if k.indeterminate(Function::Delete).is_some() {
                    self.unknowns.push(format!(
                        "key {:?}: {at} finds nothing; an indeterminate delete may explain it",
                        k.key
                    ));
                    return;
                }
                self.anomaly(
                    AnomalyKind::LostWrite,
                    k.key,
                    vec![w.index],
                    format!(
                        "{at} finds nothing, but put {} (version {}) is the newest acknowledged \
                         write and has not expired",
                        w.index,
                        w.version.as_deref().unwrap_or("?")
                    ),
                );
            }
            (Some(v), newest) => {
                if let Some(w) = newest.filter(|w| w.version.as_deref() > Some(v)) {
                    self.older_than_acked(k, w, v, &at);
                    return;
                }
                self.served(k, v, read.value.as_deref(), read.wall_ms, None, &at);
            }
        }
    }

    /// A final state with version `v`, older than `w`, acknowledged before the final read:
    /// a resurrection if `w` is a delete, else a lost write.
    fn older_than_acked(&mut self, k: &KeyHistory<'_>, w: &Op, v: &str, at: &str) {
        let kind = if w.f == Function::Delete {
            AnomalyKind::Resurrection
        } else {
            AnomalyKind::LostWrite
        };
        self.anomaly(
            kind,
            k.key,
            vec![w.index],
            format!(
                "{at} serves version {v}, older than acknowledged write {} (version {})",
                w.index,
                w.version.as_deref().unwrap_or("?")
            ),
        );
    }

    /// Something served version `v` with `value` at `wall_ms`: a write produced it, it is not
    /// a delete, and it has not expired. `read` is the operation that served it, if any.
    fn served(
        &mut self,
        k: &KeyHistory<'_>,
        v: &str,
        value: Option<&str>,
        wall_ms: u64,
        read: Option<&Op>,
        at: &str,
    ) {
        let witness = |w: &Op| read.map_or(vec![w.index], |r| vec![w.index, r.index]);
        match k.write_with(v) {
            None if k.indeterminate(Function::Put).is_some() => self.unknowns.push(format!(
                "key {:?}: {at} serves version {v}, which only an indeterminate put may have written",
                k.key
            )),
            None => self.anomaly(
                AnomalyKind::WrongValue,
                k.key,
                read.map(|r| vec![r.index]).unwrap_or_default(),
                format!("{at} serves version {v}, which no write produced"),
            ),
            Some(w) if w.f == Function::Delete => self.anomaly(
                AnomalyKind::Resurrection,
                k.key,
                witness(w),
                format!("{at} serves a value with version {v}, the version of delete {}", w.index),
            ),
            Some(w) if w.value.as_deref() != value => self.anomaly(
                AnomalyKind::WrongValue,
                k.key,
                witness(w),
                format!(
                    "{at} serves {:?} with version {v}, but put {} wrote {:?}",
                    value.unwrap_or(""),
                    w.index,
                    w.value.as_deref().unwrap_or("")
                ),
            ),
            Some(w) if expired(w, wall_ms) => self.anomaly(
                AnomalyKind::NotExpired,
                k.key,
                witness(w),
                format!(
                    "{at} serves put {} after its expiry at {} s",
                    w.index,
                    w.expiration.unwrap_or_default()
                ),
            ),
            Some(_) => {}
        }
    }

    /// Every acknowledged read: read-your-writes, nothing older than what its region had
    /// applied (no resurrection, no stale read), and what it served is something a write
    /// produced.
    fn reads(&mut self, k: &KeyHistory<'_>, facts: &RegionFacts) {
        let reads =
            k.ops.iter().copied().filter(|o| o.f == Function::Get && o.outcome == Outcome::Ok);
        for read in reads {
            self.cached += usize::from(read.may_be_cached());
            let at = format!("get {} in {}", read.index, read.region);
            if self.read_your_writes(k, read, &at) || self.behind_applied(k, read, facts, &at) {
                continue;
            }
            let Some(v) = read.version.as_deref() else { continue };
            self.served(k, v, read.value.as_deref(), read.wall_ms, Some(read), &at);
        }
    }

    /// Read-your-writes: `read` returns nothing older than the newest write its region
    /// acknowledged before the read was invoked. Both instants are the client's, on the run's
    /// one clock, so "before" is exact: the region answered the write before the client saw
    /// the answer, and served the read after the client sent it. Returns whether it is broken.
    fn read_your_writes(&mut self, k: &KeyHistory<'_>, read: &Op, at: &str) -> bool {
        let Some(w) = k.own_newest_before(&read.region, read.invoke) else { return false };
        let older = match read.version.as_deref() {
            Some(v) => Some(v) < w.version.as_deref(),
            // Not found: fine after a delete or an expiry, or if some delete may be newer than
            // the write, judged at the latest the server can have served the read.
            None => {
                !k.absence_explained(w, completed_wall_ms(read))
                    && !k.delete_may_follow(w.version.as_deref())
            }
        };
        if older {
            self.anomaly(
                AnomalyKind::ReadYourWrites,
                k.key,
                vec![w.index, read.index],
                format!(
                    "{at} returns {}, older than write {} (version {}) that {} acknowledged \
                     before the read began",
                    read.version.as_deref().unwrap_or("nothing"),
                    w.index,
                    w.version.as_deref().unwrap_or("?"),
                    read.region
                ),
            );
        }
        older
    }
}

#[cfg(test)]
mod tests;
