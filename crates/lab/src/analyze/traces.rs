//! The excerpts the report draws: a drill-down per anomalous key, the most-written key's writes
//! travelling between regions, and a window of operations per client around the first fault.

use std::collections::HashSet;

use super::faults::FaultWin;
use super::index::{Index, Write};
use super::operations::{function_name, outcome_name};
use super::whole_ms;
use crate::history::{History, Nanos, Op};
use crate::summary::{ApplyRow, CheckSummary, FinalRow, KeyTrace, OpRow, Traces};

/// Anomalous keys given a drill-down.
const MAX_DRILLDOWNS: usize = 8;
/// Operations kept per key excerpt.
const TRACE_OPS: usize = 60;
/// Applies kept per key excerpt.
const TRACE_APPLIES: usize = 200;
/// Writes of the most-written key shown in its diagram.
const HOT_KEY_WRITES: usize = 12;
/// Operations in the per-process timeline.
const TIMELINE_OPS: usize = 150;

pub(super) fn traces(
    ix: &Index<'_>,
    history: &History,
    check: &CheckSummary,
    windows: &[FaultWin<'_>],
) -> Traces {
    let first_fault = windows.iter().map(|w| w.start).min();
    Traces {
        timeline: timeline(history, first_fault),
        hot_key: hot_key(ix, first_fault),
        drilldowns: drilldowns(ix, check),
    }
}

/// One excerpt per anomalous key, focused on the operations its anomalies name.
fn drilldowns(ix: &Index<'_>, check: &CheckSummary) -> Vec<KeyTrace> {
    let mut drilldowns: Vec<KeyTrace> = Vec::new();
    for anomaly in &check.anomalies {
        if drilldowns.len() >= MAX_DRILLDOWNS {
            break;
        }
        if drilldowns.iter().any(|d| d.key == anomaly.key) {
            continue;
        }
        let Some(&key) = ix.key_ix.get(anomaly.key.as_str()) else { continue };
        let focus: Vec<u64> = check
            .anomalies
            .iter()
            .filter(|a| a.key == anomaly.key)
            .flat_map(|a| a.ops.iter().copied())
            .collect();
        let reason = format!("{} on {:?}", anomaly.kind, anomaly.key);
        drilldowns.push(key_trace(ix, key, reason, &focus));
    }
    drilldowns
}

/// The most-written key, its writes from the first fault on (or from the start).
fn hot_key(ix: &Index<'_>, first_fault: Option<Nanos>) -> Option<KeyTrace> {
    let key = (0..ix.keys.len())
        .filter(|&k| ix.writes_by_key.get(k).is_some_and(|w| !w.is_empty()))
        .max_by_key(|&k| (ix.writes_by_key.get(k).map_or(0, Vec::len), std::cmp::Reverse(k)))?;
    let writes: Vec<&Write<'_>> = ix.key_writes(key).collect();
    let from = first_fault.map_or(0, |t| writes.partition_point(|w| w.invoke() < t));
    let from = from.min(writes.len().saturating_sub(HOT_KEY_WRITES));
    let focus: Vec<u64> =
        writes.iter().skip(from).take(HOT_KEY_WRITES).map(|w| w.op.index).collect();
    let mut trace = key_trace(ix, key, "the most-written key".to_owned(), &focus);
    // Only the chosen writes and the reads among them in time.
    let (lo, hi) = trace
        .ops
        .iter()
        .filter(|o| focus.contains(&o.index))
        .fold((u64::MAX, 0), |(lo, hi), o| (lo.min(o.invoke_ms), hi.max(o.complete_ms)));
    trace.ops.retain(|o| {
        focus.contains(&o.index) || (o.f == "get" && o.invoke_ms >= lo && o.invoke_ms <= hi)
    });
    trace.truncated |= writes.len() > focus.len();
    Some(trace)
}

/// The operations from a second before the first fault (or from the start), in invoke order.
fn timeline(history: &History, first_fault: Option<Nanos>) -> Vec<OpRow> {
    let window_start = first_fault.map_or(0, |t| t.saturating_sub(1_000_000_000));
    let mut timeline: Vec<&Op> = history.ops.iter().filter(|o| o.invoke >= window_start).collect();
    timeline.sort_by_key(|o| (o.invoke, o.index));
    timeline.truncate(TIMELINE_OPS);
    timeline.into_iter().map(op_row).collect()
}

fn op_row(op: &Op) -> OpRow {
    OpRow {
        index: op.index,
        process: op.process,
        region: op.region.clone(),
        f: function_name(op.f).to_owned(),
        key: op.key.clone(),
        value: op.value.clone(),
        version: op.version.clone(),
        invoke_ms: whole_ms(op.invoke),
        complete_ms: whole_ms(op.complete),
        outcome: outcome_name(op.outcome).to_owned(),
    }
}

/// An excerpt of one key: the operations named in `focus`, then those nearest to them in time,
/// up to [`TRACE_OPS`]; the applies of the versions those wrote; the final reads.
fn key_trace(ix: &Index<'_>, key: usize, reason: String, focus: &[u64]) -> KeyTrace {
    let ops = ix.ops_by_key.get(key).map_or(&[][..], Vec::as_slice);
    let name = ix.keys.get(key).copied().unwrap_or("");
    let chosen = excerpt(ops, focus);
    let versions: HashSet<&str> =
        chosen.iter().filter(|o| o.is_write()).filter_map(|o| o.version.as_deref()).collect();
    let mut applies: Vec<ApplyRow> = ix
        .history
        .applies
        .iter()
        .filter(|a| a.key == name && versions.contains(a.version.as_str()))
        .map(|a| ApplyRow {
            region: a.region.clone(),
            version: a.version.clone(),
            at_ms: whole_ms(a.at),
        })
        .collect();
    applies.sort_by_key(|a| a.at_ms);
    let truncated = ops.len() > TRACE_OPS || applies.len() > TRACE_APPLIES;
    applies.truncate(TRACE_APPLIES);
    let finals = ix
        .history
        .finals
        .iter()
        .filter(|f| f.key == name)
        .map(|f| FinalRow {
            region: f.region.clone(),
            value: f.value.clone(),
            version: f.version.clone(),
            at_ms: whole_ms(f.at),
        })
        .collect();
    let ops = chosen.iter().map(|o| op_row(o)).collect();
    KeyTrace { key: name.to_owned(), reason, ops, applies, finals, truncated }
}

/// All of a key's operations if few, else those in `focus` and the nearest to them in time, up
/// to [`TRACE_OPS`]; in invoke order.
fn excerpt<'a>(ops: &[&'a Op], focus: &[u64]) -> Vec<&'a Op> {
    let mut chosen: Vec<&Op> = if ops.len() > TRACE_OPS {
        let mut chosen: Vec<&Op> =
            ops.iter().copied().filter(|o| focus.contains(&o.index)).collect();
        let center = if chosen.is_empty() {
            ops.first().map_or(0, |o| o.invoke)
        } else {
            chosen.iter().map(|o| o.invoke).min().unwrap_or(0)
        };
        let mut rest: Vec<&Op> =
            ops.iter().copied().filter(|o| !focus.contains(&o.index)).collect();
        rest.sort_by_key(|o| o.invoke.abs_diff(center));
        let room = TRACE_OPS.saturating_sub(chosen.len());
        chosen.extend(rest.into_iter().take(room));
        chosen
    } else {
        ops.to_vec()
    };
    chosen.sort_by_key(|o| (o.invoke, o.index));
    chosen
}
