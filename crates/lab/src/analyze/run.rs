//! The run's metadata as the report shows it: run.json's, with the regions only the history
//! names, each link's longest delay and the history's size.

use super::index::Index;
use super::ms;
use super::visibility::Models;
use crate::meta::{RegionMeta, RunMeta};
use crate::summary::{HistoryCounts, LinkRow, RunSummary};

pub(super) fn run_summary(
    ix: &Index<'_>,
    meta: &RunMeta,
    meta_present: bool,
    models: &Models,
) -> RunSummary {
    let h = ix.history;
    let mut regions: Vec<RegionMeta> = meta.regions.clone();
    for name in ix.regions.iter().skip(meta.regions.len()) {
        regions.push(RegionMeta { name: (*name).to_owned(), ..RegionMeta::default() });
    }
    RunSummary {
        seed: meta.seed,
        scenario: meta.scenario.clone(),
        scenario_text: meta.scenario_text.clone(),
        edgekv_version: meta.edgekv_version.clone(),
        topology: meta.topology.clone(),
        regions,
        links: meta
            .links
            .iter()
            .map(|l| LinkRow {
                from: l.from.clone(),
                to: l.to.clone(),
                model: l.model.clone(),
                max_ms: models
                    .get(&(l.from.clone(), l.to.clone()))
                    .map(|m| m.max().as_secs_f64() * 1000.0),
            })
            .collect(),
        started_wall_ms: meta.started_wall_ms,
        workload_start_ms: ms(meta.workload.0),
        workload_end_ms: ms(meta.workload.1),
        quiet_ms: meta.quiet_ms,
        anti_entropy_ms: meta.anti_entropy_ms,
        timestamp_source: meta.timestamp_source.clone(),
        applies_missed: meta.applies_missed.clone(),
        edge: meta.edge,
        meta_present,
        incomplete: !meta.applies_missed.is_empty() || h.applies.is_empty(),
        history: HistoryCounts {
            ops: h.ops.len(),
            applies: h.applies.len(),
            faults: h.faults.len(),
            finals: h.finals.len(),
            keys: ix.keys.len(),
            acked_writes: ix.writes.len(),
        },
    }
}
