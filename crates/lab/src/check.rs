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
//! - **lost write**: the final state of a key is older than its newest acknowledged write, or
//!   missing although that write is a put that has not expired;
//! - **wrong value**: a final state whose version no write produced, or whose value is not the
//!   one written with that version;
//! - **resurrection**: a deleted key served again: finally, or by a region that had applied the
//!   delete;
//! - **read-your-writes**: a read in a region returns something older than a write that region
//!   acknowledged before the read began;
//! - **not expired**: a value served after its expiry.
//!
//! Each anomaly names the fewest operations that show it. The verdict is valid, invalid, or
//! unknown when the history cannot decide (a key without a final read in some region, or an
//! indeterminate write that could explain what was seen).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::history::{Apply, FinalRead, Function, History, Op, Outcome};

/// How far the client's and the servers' wall clocks may disagree when judging expiry.
pub const CLOCK_TOLERANCE_MS: u64 = 1000;

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
    /// Regions disagree after the quiet period.
    Divergence,
    /// An acknowledged write is gone without a greater version to explain it.
    LostWrite,
    /// A state no write produced.
    WrongValue,
    /// A deleted key came back.
    Resurrection,
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
}

/// Judges `history`.
pub fn check(history: &History) -> CheckReport {
    let mut checker = Checker::default();
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
        let k = KeyHistory::new(key, ops, applies);
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
        checker.reads(&k);
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
    }
}

/// The operations on one key, indexed so that judging a read costs a logarithm, not a scan:
/// a hot key can have a hundred thousand writes and as many reads.
struct KeyHistory<'a> {
    key: &'a str,
    ops: &'a [&'a Op],
    /// The write (of any outcome) that produced each version.
    by_version: HashMap<&'a str, &'a Op>,
    /// The acknowledged write with the greatest version.
    newest_acked: Option<&'a Op>,
    /// An indeterminate put and delete without a version, if any.
    unknown_put: Option<&'a Op>,
    unknown_delete: Option<&'a Op>,
    /// The greatest version of a delete that may have happened; `Some(None)`: one whose
    /// version is unknown, which may be greater than anything.
    newest_delete: Option<Option<&'a str>>,
    /// Per region, its acknowledged writes by completion time, each with the greatest-version
    /// write acknowledged there up to then.
    own_writes: HashMap<&'a str, Vec<(u64, &'a Op)>>,
    /// Per region, when it applied an acknowledged delete, each with the greatest-version delete
    /// applied there up to then.
    applied_deletes: HashMap<&'a str, Vec<(u64, &'a Op)>>,
}

impl<'a> KeyHistory<'a> {
    fn new(key: &'a str, ops: &'a [&'a Op], applies: &[&'a Apply]) -> Self {
        let acked = |o: &&&'a Op| o.is_write() && o.outcome == Outcome::Ok && o.version.is_some();
        let mut by_version = HashMap::new();
        for op in ops.iter().filter(|o| o.is_write()) {
            if let Some(v) = op.version.as_deref() {
                by_version.entry(v).or_insert(*op);
            }
        }
        let newest_acked = ops.iter().filter(acked).max_by(|a, b| a.version.cmp(&b.version));
        let unknown = |f: Function| {
            ops.iter()
                .copied()
                .find(|o| o.f == f && o.outcome == Outcome::Info && o.version.is_none())
        };
        let newest_delete = ops
            .iter()
            .filter(|d| d.f == Function::Delete && d.outcome != Outcome::Fail)
            .map(|d| d.version.as_deref())
            // `None` (unknown) sorts first; it must win, so compare it as the greatest.
            .max_by(|a, b| match (a, b) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, _) => std::cmp::Ordering::Greater,
                (_, None) => std::cmp::Ordering::Less,
                (a, b) => a.cmp(b),
            });
        let mut own_writes: HashMap<&str, Vec<(u64, &Op)>> = HashMap::new();
        let mut sorted: Vec<&Op> = ops.iter().filter(acked).copied().collect();
        sorted.sort_by_key(|o| o.complete);
        for op in sorted {
            let list = own_writes.entry(op.region.as_str()).or_default();
            let best = match list.last() {
                Some(&(_, prev)) if prev.version >= op.version => prev,
                _ => op,
            };
            list.push((op.complete, best));
        }
        let mut deletes: Vec<(&Apply, &Op)> = applies
            .iter()
            .filter_map(|a| {
                let d = by_version.get(a.version.as_str())?;
                (d.f == Function::Delete && d.outcome == Outcome::Ok).then_some((*a, *d))
            })
            .collect();
        deletes.sort_by_key(|(a, _)| a.at);
        let mut applied_deletes: HashMap<&str, Vec<(u64, &Op)>> = HashMap::new();
        for (apply, delete) in deletes {
            let list = applied_deletes.entry(apply.region.as_str()).or_default();
            let best = match list.last() {
                Some(&(_, prev)) if prev.version >= delete.version => prev,
                _ => delete,
            };
            list.push((apply.at, best));
        }
        KeyHistory {
            key,
            ops,
            by_version,
            newest_acked: newest_acked.copied(),
            unknown_put: unknown(Function::Put),
            unknown_delete: unknown(Function::Delete),
            newest_delete,
            own_writes,
            applied_deletes,
        }
    }

    /// The acknowledged write with the greatest version.
    fn newest_acked(&self) -> Option<&'a Op> {
        self.newest_acked
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

    /// Of the entries of `list` (by time) strictly before `t`, the last one's op.
    fn before(list: Option<&Vec<(u64, &'a Op)>>, t: u64) -> Option<&'a Op> {
        let list = list?;
        let n = list.partition_point(|(at, _)| *at < t);
        n.checked_sub(1).map(|i| list[i].1)
    }

    /// The greatest-version write `region` acknowledged before `t`.
    fn own_newest_before(&self, region: &str, t: u64) -> Option<&'a Op> {
        Self::before(self.own_writes.get(region), t)
    }

    /// The greatest-version acknowledged delete `region` had applied before `t`.
    fn applied_delete_before(&self, region: &str, t: u64) -> Option<&'a Op> {
        Self::before(self.applied_deletes.get(region), t)
    }

    /// Whether a delete that may have happened could be newer than version `v`.
    fn delete_may_follow(&self, v: Option<&str>) -> bool {
        match self.newest_delete {
            None => false,
            Some(None) => true,
            Some(d) => d > v,
        }
    }
}

/// Whether `put` has expired by `wall_ms`, beyond any doubt from clock differences.
fn expired(put: &Op, wall_ms: u64) -> bool {
    put.f == Function::Put
        && put.expiration.is_some_and(|secs| {
            secs.saturating_mul(1000).saturating_add(CLOCK_TOLERANCE_MS) <= wall_ms
        })
}

/// Whether `put` may have expired by `wall_ms`.
fn may_have_expired(put: &Op, wall_ms: u64) -> bool {
    put.f == Function::Put
        && put.expiration.is_some_and(|secs| {
            secs.saturating_mul(1000) <= wall_ms.saturating_add(CLOCK_TOLERANCE_MS)
        })
}

#[derive(Default)]
struct Checker {
    anomalies: Vec<Anomaly>,
    unknowns: Vec<String>,
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

    /// A region's final state is the newest acknowledged write (or something newer that a
    /// write produced).
    fn final_state(&mut self, k: &KeyHistory<'_>, read: &FinalRead) {
        let newest = k.newest_acked();
        let at = format!("the final read in {}", read.region);
        match (read.version.as_deref(), newest) {
            (None, None) => {}
            (None, Some(w)) => {
                if w.f == Function::Delete || may_have_expired(w, read.wall_ms) {
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
                    // Older than a delete: the deleted key is back.
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
                            "{at} serves version {v}, older than acknowledged write {} (version \
                             {})",
                            w.index,
                            w.version.as_deref().unwrap_or("?")
                        ),
                    );
                    return;
                }
                self.served(k, v, read.value.as_deref(), read.wall_ms, None, &at);
            }
        }
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

    /// Every acknowledged read: read-your-writes, no resurrection after an applied delete, and
    /// what it served is something a write produced.
    fn reads(&mut self, k: &KeyHistory<'_>) {
        let reads =
            k.ops.iter().copied().filter(|o| o.f == Function::Get && o.outcome == Outcome::Ok);
        for read in reads {
            let at = format!("get {} in {}", read.index, read.region);
            // Read-your-writes: the newest write this region acknowledged before the read.
            if let Some(w) = k.own_newest_before(&read.region, read.invoke) {
                let older = match read.version.as_deref() {
                    Some(v) => Some(v) < w.version.as_deref(),
                    // Not found: fine after a delete or an expiry, or if some delete may be
                    // newer than the write.
                    None => {
                        w.f == Function::Put
                            && !may_have_expired(w, read.wall_ms)
                            && !k.delete_may_follow(w.version.as_deref())
                    }
                };
                if older {
                    self.anomaly(
                        AnomalyKind::ReadYourWrites,
                        k.key,
                        vec![w.index, read.index],
                        format!(
                            "{at} returns {}, older than write {} (version {}) that {} \
                             acknowledged before the read began",
                            read.version.as_deref().unwrap_or("nothing"),
                            w.index,
                            w.version.as_deref().unwrap_or("?"),
                            read.region
                        ),
                    );
                    continue;
                }
            }
            let Some(v) = read.version.as_deref() else { continue };
            // Resurrection: a delete newer than what was read, already applied in this region.
            let applied_delete = k
                .applied_delete_before(&read.region, read.invoke)
                .filter(|d| d.version.as_deref() > Some(v));
            if let Some(d) = applied_delete {
                self.anomaly(
                    AnomalyKind::Resurrection,
                    k.key,
                    vec![d.index, read.index],
                    format!(
                        "{at} serves version {v} after {} had applied delete {} (version {})",
                        read.region,
                        d.index,
                        d.version.as_deref().unwrap_or("?")
                    ),
                );
                continue;
            }
            self.served(k, v, read.value.as_deref(), read.wall_ms, Some(read), &at);
        }
    }
}

#[cfg(test)]
mod tests;
