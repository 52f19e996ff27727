//! What a run was: seed, scenario, topology, delay models and versions (`run.json`), kept beside
//! the history so that the report can say what it measured and a run can be repeated.

use serde::{Deserialize, Serialize};

use crate::history::Nanos;

/// The run's description, written by `edgekv lab run` as `run.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// The seed that drove the workload, the fault schedule and (in-process) every sampled delay.
    pub seed: u64,
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file as given, for the record and for a rerun.
    #[serde(default)]
    pub scenario_text: String,
    /// The edgekv version that ran the lab.
    pub edgekv_version: String,
    /// `in-process` (the lab started the cluster) or `external`.
    pub topology: String,
    /// The regions, in the scenario's order.
    pub regions: Vec<RegionMeta>,
    /// The propagation delay model of each directed link, when known (in-process always; for
    /// an external cluster, when the scenario declares it).
    #[serde(default)]
    pub links: Vec<LinkMeta>,
    /// Wall clock at the run's time 0, epoch milliseconds.
    pub started_wall_ms: u64,
    /// When the workload started and ended, on the run's clock.
    pub workload: (Nanos, Nanos),
    /// The quiet period waited before the final reads, milliseconds.
    pub quiet_ms: u64,
    /// Interval between anti-entropy rounds, milliseconds, when known.
    #[serde(default)]
    pub anti_entropy_ms: Option<u64>,
    /// What LWW versions are made of, since real-time inversions depend on it.
    pub timestamp_source: String,
    /// Clock offsets in force, per region, as steps over time (static offsets at time 0).
    #[serde(default)]
    pub clock_offsets: Vec<ClockStep>,
    /// Regions whose apply events are incomplete: a log that dropped events before the lab
    /// read them, a node without `--apply-log`, or a node that restarted (what it applied since
    /// the last poll died with it). Their visibility and convergence figures are incomplete.
    #[serde(default)]
    pub applies_missed: Vec<String>,
    /// The regions' edge cache and write limit, when known (absent in runs from before them).
    #[serde(default)]
    pub edge: Option<EdgeMeta>,
}

/// The regions' edge settings: configured on an in-process cluster, declared for an external
/// one (which runs with whatever its nodes were started with).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeMeta {
    /// Workers KV's edge read cache: binding reads are served from it for their cacheTtl.
    pub cache: bool,
    /// REST reads go through the cache too.
    pub rest_cache: bool,
    /// At most one write per second per key and region.
    pub write_rate_limit: bool,
    /// Whether the scenario only declares them (an external cluster).
    pub declared: bool,
}

/// One region of the run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionMeta {
    /// Its name.
    pub name: String,
    /// Its API base URL (`http://host:port/client/v4`).
    pub url: String,
    /// Clients writing in it.
    pub writers: u32,
    /// Clients only reading in it.
    pub readers: u32,
    /// How its clients' gets were sent (`rest`, `binding (cacheTtl 30 s)`, a mix with weights);
    /// empty in runs from before the binding: REST.
    #[serde(default)]
    pub reads: String,
    /// Its Workers binding listener, when its gets used it.
    #[serde(default)]
    pub binding_url: Option<String>,
}

/// The delay model of one directed link.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkMeta {
    /// Origin region.
    pub from: String,
    /// Destination region.
    pub to: String,
    /// The model, in the grammar of `--delay` (e.g. `uniform(1s,5s)`).
    pub model: String,
}

/// From `at` on, `region`'s clock ran `offset_ms` ahead (negative: behind).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockStep {
    /// The region.
    pub region: String,
    /// When, on the run's clock.
    pub at: Nanos,
    /// The offset from then on.
    pub offset_ms: i64,
}
