//! A run's measurements as data (`summary.json`): what the report draws, kept apart from the
//! HTML so that other tools (sweeps, CI thresholds, notebooks) can read the numbers without
//! scraping a page, and so that the report can be redrawn without the history.
//!
//! Conventions: times and durations are milliseconds (`f64`); instants are on the run's clock,
//! from its start. Rates are fractions in `0..=1`. A figure that the history cannot give (no
//! writes, no applies, a division by zero) is `null` rather than a made-up zero, so that "no
//! data" stays distinguishable from "measured zero". Series are bucketed or downsampled: the
//! file stays small whatever the length of the run.

mod cache;

use serde::{Deserialize, Serialize};

pub use self::cache::{ArrivalStats, CacheSummary, HiddenSeries, ReadPathStats};
use crate::meta::{EdgeMeta, RegionMeta};

/// Everything the report shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// What ran, echoed so that the summary stands on its own and a run can be repeated.
    pub run: RunSummary,
    /// The checker's verdict.
    pub check: CheckSummary,
    /// The fault windows, which every time-axis figure shades.
    pub faults: Vec<FaultWindow>,
    /// t-visibility (B1).
    pub visibility: VisibilitySummary,
    /// Stale reads (B2).
    pub stale: StaleSummary,
    /// Staleness split into propagation and the edge cache.
    #[serde(default)]
    pub cache: CacheSummary,
    /// Concurrent writes, LWW losers and real-time inversions (B3).
    pub conflicts: ConflictSummary,
    /// Convergence after each heal (B4), in heal order.
    pub convergence: Vec<ConvergenceAfterHeal>,
    /// Divergent keys over time and divergence windows (B5).
    pub divergence: DivergenceSummary,
    /// Outcome fractions per region (B6), with an `all` row first.
    pub availability: Vec<AvailabilityRow>,
    /// Latency quantiles over time per operation kind (B6).
    pub latency: LatencySummary,
    /// Throughput over time per operation kind and outcome (B6).
    pub throughput: ThroughputSummary,
    /// p99 visibility by origin and destination (B5/B6).
    pub lag_heatmap: LagHeatmap,
    /// Clock offsets per region over time, when any were injected.
    pub clocks: Vec<ClockSeries>,
    /// Small excerpts of the history for the drill-downs and diagrams.
    pub traces: Traces,
    /// What limits the measurements (missing files, missing applies, unparsable models).
    pub notes: Vec<String>,
}

/// The run's description and the history's size.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The seed that reruns the same schedule.
    pub seed: u64,
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file as given.
    pub scenario_text: String,
    /// The edgekv version that ran the lab.
    pub edgekv_version: String,
    /// `in-process` or `external`.
    pub topology: String,
    /// The regions, in the scenario's order, then any other region the history names.
    pub regions: Vec<RegionMeta>,
    /// Each directed link's delay model.
    pub links: Vec<LinkRow>,
    /// Wall clock at the run's time 0, epoch milliseconds.
    pub started_wall_ms: u64,
    /// When the workload started.
    pub workload_start_ms: f64,
    /// When the workload ended.
    pub workload_end_ms: f64,
    /// The quiet period before the final reads.
    pub quiet_ms: u64,
    /// Interval between anti-entropy rounds, when known.
    pub anti_entropy_ms: Option<u64>,
    /// What LWW versions are made of; real-time inversions are judged against it.
    pub timestamp_source: String,
    /// Regions whose apply log dropped events: visibility figures are incomplete for them.
    pub applies_missed: Vec<String>,
    /// The regions' edge cache and write limit, when known.
    #[serde(default)]
    pub edge: Option<EdgeMeta>,
    /// Whether `run.json` was there; if not, every field above is a default.
    pub meta_present: bool,
    /// Whether some measurement is known to be incomplete (see `notes`).
    pub incomplete: bool,
    /// How much the history holds.
    pub history: HistoryCounts,
}

/// Sizes of the history's parts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryCounts {
    /// Client operations.
    pub ops: usize,
    /// Apply events.
    pub applies: usize,
    /// Fault events (starts and stops).
    pub faults: usize,
    /// Final reads.
    pub finals: usize,
    /// Distinct keys (listing prefixes excluded).
    pub keys: usize,
    /// Acknowledged writes that carry a version: the population of most rates.
    pub acked_writes: usize,
}

/// One directed link.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkRow {
    /// Origin region.
    pub from: String,
    /// Destination region.
    pub to: String,
    /// The model as written in `run.json`.
    pub model: String,
    /// The longest delay the model can produce, when it parses.
    pub max_ms: Option<f64>,
}

/// The checker's verdict, read from `check.json` or computed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSummary {
    /// `valid`, `invalid` or `unknown`.
    pub validity: String,
    /// Every anomaly, with the operations that show it.
    #[serde(default)]
    pub anomalies: Vec<AnomalyRow>,
    /// What the checker could not decide (at most [`MAX_UNKNOWNS`], then a count of the rest).
    #[serde(default)]
    pub unknowns: Vec<String>,
    /// Keys examined.
    #[serde(default)]
    pub keys: usize,
    /// Operations examined.
    #[serde(default)]
    pub ops: usize,
    /// `check.json`, or `computed` when the checker ran for the report.
    #[serde(default)]
    pub source: String,
}

/// How many of the checker's unknowns the summary keeps: a run without final reads can have
/// one per key, and the report only needs enough to show the pattern.
pub const MAX_UNKNOWNS: usize = 50;

impl CheckSummary {
    /// The checker's report as the summary keeps it.
    pub fn from_report(report: &crate::check::CheckReport, source: &str) -> Self {
        let mut unknowns: Vec<String> =
            report.unknowns.iter().take(MAX_UNKNOWNS).cloned().collect();
        if report.unknowns.len() > MAX_UNKNOWNS {
            unknowns.push(format!("… and {} more", report.unknowns.len() - MAX_UNKNOWNS));
        }
        CheckSummary {
            validity: wire_name(&report.validity),
            anomalies: report
                .anomalies
                .iter()
                .map(|a| AnomalyRow {
                    kind: wire_name(&a.kind),
                    key: a.key.clone(),
                    ops: a.ops.clone(),
                    explanation: a.explanation.clone(),
                })
                .collect(),
            unknowns,
            keys: report.keys,
            ops: report.ops,
            source: source.to_owned(),
        }
    }

    /// Caps the unknowns as [`CheckSummary::from_report`] does, for a verdict read from a file.
    pub fn capped(mut self) -> Self {
        if self.unknowns.len() > MAX_UNKNOWNS {
            let more = self.unknowns.len() - MAX_UNKNOWNS;
            self.unknowns.truncate(MAX_UNKNOWNS);
            self.unknowns.push(format!("… and {more} more"));
        }
        self
    }
}

/// An enum's name as serde writes it: the checker's enums serialize to the strings check.json
/// holds, so going through JSON keeps one spelling for both.
fn wire_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "unknown".to_owned(),
    }
}

/// One anomaly.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnomalyRow {
    /// The invariant broken (`divergence`, `lost_write`, …).
    pub kind: String,
    /// The key.
    pub key: String,
    /// Indexes of the operations that show it.
    pub ops: Vec<u64>,
    /// What happened.
    pub explanation: String,
}

/// A fault's window: from its start to its stop (or to the end of the workload).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultWindow {
    /// The fault's position in the schedule, when recorded.
    pub id: Option<u64>,
    /// `partition`, `clock_offset`, …
    pub kind: String,
    /// The fault as recorded, shortened.
    pub description: String,
    /// When it started.
    pub start_ms: f64,
    /// When it stopped.
    pub end_ms: f64,
    /// Whether a stop was recorded (if not, the window runs to the end of the workload).
    pub stopped: bool,
}

/// t-visibility per directed pair and overall.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VisibilitySummary {
    /// Every (write, destination) pair pooled; the prediction pools the links' models in the
    /// same proportions.
    pub overall: VisibilityStats,
    /// max over destinations, for writes that reached every region: time until everyone sees
    /// a write. Predicted by the max of the origin's link samples.
    pub global: VisibilityStats,
    /// One entry per directed pair with writes, origin-major in region order.
    pub pairs: Vec<PairVisibility>,
}

/// t-visibility on one directed link.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PairVisibility {
    /// Origin region.
    pub from: String,
    /// Destination region.
    pub to: String,
    /// The link's delay model, when known.
    pub model: Option<String>,
    /// The measurements.
    #[serde(flatten)]
    pub stats: VisibilityStats,
}

/// A visibility distribution, measured and predicted.
///
/// Quantiles are nearest-rank over the writes that did reach the destination; `t_999_ms` also
/// counts the `missing` ones, so it is absent when more than 0.1 % never arrived.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VisibilityStats {
    /// Visibility samples (acknowledged writes that reached the destination).
    pub count: usize,
    /// Acknowledged writes the destination never held (nor anything newer).
    pub missing: usize,
    /// Smallest sample; slightly negative when a region applied before the client saw the ack.
    pub min_ms: Option<f64>,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile.
    pub p999_ms: Option<f64>,
    /// Largest sample.
    pub max_ms: Option<f64>,
    /// Mean.
    pub mean_ms: Option<f64>,
    /// PBS's headline: the time after which P(visible) >= 99.9 %, missing writes included.
    pub t_999_ms: Option<f64>,
    /// The model's median.
    pub predicted_p50_ms: Option<f64>,
    /// The model's 90th percentile.
    pub predicted_p90_ms: Option<f64>,
    /// The model's 99th percentile.
    pub predicted_p99_ms: Option<f64>,
    /// The model's 99.9th percentile.
    pub predicted_p999_ms: Option<f64>,
    /// The model's mean.
    pub predicted_mean_ms: Option<f64>,
    /// Kolmogorov–Smirnov distance: max |F_measured − F_predicted|.
    pub ks_distance: Option<f64>,
    /// Root mean square of measured − predicted quantiles at p1..p99.
    pub rmse_ms: Option<f64>,
    /// Measured − predicted median: the part of visibility the link model does not explain
    /// (gossip batching, apply time, the client's ack latency).
    pub mean_offset_ms: Option<f64>,
    /// Writes the black-box method found a stable read for.
    pub blackbox_count: usize,
    /// Median of the black-box visibility (first stable read's invoke − ack).
    pub blackbox_p50_ms: Option<f64>,
    /// Black-box − white-box median: the sampling error of reading instead of watching.
    pub blackbox_gap_ms: Option<f64>,
    /// The measured CDF as `(ms, P)` points, downsampled.
    pub cdf: Vec<(f64, f64)>,
    /// The predicted CDF as `(ms, P)` points, downsampled.
    pub predicted_cdf: Vec<(f64, f64)>,
}

/// Stale reads (B2).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StaleSummary {
    /// Reads judged: ok gets with some write acknowledged before them.
    pub reads: usize,
    /// Of those, stale.
    pub stale: usize,
    /// stale / reads.
    pub overall_rate: Option<f64>,
    /// Ok gets not judged: nothing acknowledged before them, or a not-found that expiry
    /// may explain.
    pub unjudged: usize,
    /// Reads invoked inside a fault window.
    pub during_faults: RateWithInterval,
    /// Reads invoked outside every fault window.
    pub outside_faults: RateWithInterval,
    /// Reads in the region where the newest acknowledged write was made.
    pub local: RateWithInterval,
    /// Reads elsewhere.
    pub remote: RateWithInterval,
    /// Width of the Δ buckets.
    pub bucket_ms: f64,
    /// Stale fraction by Δ = read invoke − ack of the newest acknowledged write; the last
    /// bucket takes everything beyond.
    pub buckets: Vec<StaleBucket>,
    /// How many acknowledged versions behind each judged read was; the last bin is "or more".
    pub k_histogram: Vec<KBin>,
}

/// A fraction with its Wilson 95 % interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RateWithInterval {
    /// Trials.
    pub n: usize,
    /// Successes (here: stale reads).
    pub hits: usize,
    /// hits / n.
    pub rate: Option<f64>,
    /// Lower end of the Wilson score interval.
    pub low: Option<f64>,
    /// Upper end of the Wilson score interval.
    pub high: Option<f64>,
}

/// One Δ bucket of stale reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StaleBucket {
    /// Δ from (inclusive).
    pub from_ms: f64,
    /// Δ to (exclusive); `None` for the open last bucket.
    pub to_ms: Option<f64>,
    /// Reads in the write's own region.
    pub local: RateWithInterval,
    /// Reads in other regions.
    pub remote: RateWithInterval,
}

/// One bar of the k-staleness histogram.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KBin {
    /// Versions behind.
    pub k: usize,
    /// Whether this bin also counts everything further behind.
    pub or_more: bool,
    /// Reads.
    pub reads: usize,
}

/// Concurrent writes and what LWW did with them (B3).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConflictSummary {
    /// What LWW versions are made of: inversions are a bug with synchronized physical clocks,
    /// legitimate with counters that lag real time.
    pub timestamp_source: String,
    /// Whether concurrency could be judged at all (it needs apply events).
    pub determined: bool,
    /// Acknowledged writes with a version.
    pub writes: usize,
    /// Writes concurrent with at least one write from another region.
    pub concurrent: usize,
    /// Writes superseded by a concurrent write with a greater version.
    pub losers: usize,
    /// Losers no get nor final read ever returned.
    pub silent_losses: usize,
    /// concurrent / writes.
    pub conflict_rate: Option<f64>,
    /// losers / writes.
    pub loser_rate: Option<f64>,
    /// silent_losses / writes.
    pub silent_loss_rate: Option<f64>,
    /// Writes invoked after another write to the key was acknowledged, yet with a smaller
    /// version than it: the later write lost in real time.
    pub inversions: usize,
    /// Of those, the ones whose two versions carry the same clock reading (same millisecond,
    /// same logical count) and were ordered by the region tie-break: concurrent as far as the
    /// clock can tell, so not evidence of skew.
    #[serde(default)]
    pub tied_inversions: usize,
    /// A few inversions to look at.
    pub inversion_examples: Vec<InversionExample>,
    /// Predicted conflict rate: mean over writes of 1 − exp(−2 d λ), with λ the key's write rate
    /// from other regions and d the mean visibility.
    pub poisson_estimate: Option<f64>,
    /// The d used by the estimate.
    pub poisson_delay_ms: Option<f64>,
    /// The same rates per origin region.
    pub per_region: Vec<ConflictRegion>,
}

/// One real-time inversion.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InversionExample {
    /// The key.
    pub key: String,
    /// The write acknowledged first, with the greater version.
    pub earlier: u64,
    /// The write invoked after that ack, with the smaller version.
    pub later: u64,
}

/// Conflict rates of the writes made in one region.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConflictRegion {
    /// The origin region.
    pub region: String,
    /// Acknowledged writes.
    pub writes: usize,
    /// Concurrent ones.
    pub concurrent: usize,
    /// LWW losers.
    pub losers: usize,
    /// Silent losses.
    pub silent_losses: usize,
    /// concurrent / writes.
    pub conflict_rate: Option<f64>,
    /// losers / writes.
    pub loser_rate: Option<f64>,
    /// silent_losses / writes.
    pub silent_loss_rate: Option<f64>,
    /// The Poisson estimate of `conflict_rate` for these writes.
    pub poisson_estimate: Option<f64>,
}

/// Convergence after one heal (a fault's stop) (B4).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConvergenceAfterHeal {
    /// The fault's id, when recorded.
    pub fault_id: Option<u64>,
    /// The fault's kind.
    pub fault: String,
    /// When it stopped.
    pub heal_at_ms: f64,
    /// Until every region held, for every key written before the heal, that key's greatest
    /// acknowledged version (or newer); 0 if they already did; `None` if some never did.
    pub convergence_ms: Option<f64>,
    /// (key, region) pairs lacking their target at the heal.
    pub backlog: usize,
    /// Keys written before the heal.
    pub keys: usize,
    /// (key, region) pairs that never reached their target.
    pub unconverged: usize,
}

/// Divergence between regions (B5).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DivergenceSummary {
    /// Divergent keys sampled evenly over the run.
    pub samples: Vec<DivergenceSample>,
    /// The most keys divergent at once (exact, not sampled).
    pub max_divergent: usize,
    /// When that maximum was first reached.
    pub max_at_ms: Option<f64>,
    /// Time average of divergent keys / keys applied so far.
    pub time_weighted_fraction: Option<f64>,
    /// DW(w) = last − first region to hold w, over writes every region held.
    pub window: Quantiles,
    /// Whether every region held every key's greatest acknowledged version before the final
    /// reads; `None` without final reads.
    pub converged_within_quiet: Option<bool>,
    /// (key, region) pairs still lacking it then.
    pub unconverged_at_finals: usize,
}

/// Divergent keys at one instant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DivergenceSample {
    /// When.
    pub at_ms: f64,
    /// Keys whose latest applied versions differ between regions.
    pub divergent: usize,
    /// Keys some region had applied.
    pub keys: usize,
}

/// A few quantiles of a distribution.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Largest.
    pub max_ms: Option<f64>,
}

/// Outcomes in one region (or `all`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AvailabilityRow {
    /// The region, or `all`.
    pub region: String,
    /// Every operation.
    pub total: OutcomeCounts,
    /// Operations invoked inside a fault window.
    pub during_faults: OutcomeCounts,
    /// Operations invoked outside every fault window.
    pub outside_faults: OutcomeCounts,
}

/// How operations ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OutcomeCounts {
    /// Operations.
    pub ops: usize,
    /// Acknowledged.
    pub ok: usize,
    /// Failed.
    pub fail: usize,
    /// Indeterminate.
    pub info: usize,
    /// ok / ops.
    pub ok_fraction: Option<f64>,
    /// fail / ops.
    pub fail_fraction: Option<f64>,
    /// info / ops.
    pub info_fraction: Option<f64>,
}

/// Latency quantiles over time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Width of the time buckets (by invoke time).
    pub bucket_ms: f64,
    /// One series per operation kind.
    pub series: Vec<LatencySeries>,
}

/// Latency of one operation kind (acknowledged operations only).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySeries {
    /// `put`, `delete`, `get` or `list`.
    pub f: String,
    /// Acknowledged operations.
    pub count: usize,
    /// Median over the run.
    pub p50_ms: Option<f64>,
    /// 99th percentile over the run.
    pub p99_ms: Option<f64>,
    /// Non-empty buckets.
    pub buckets: Vec<LatencyBucket>,
}

/// Latency in one time bucket.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyBucket {
    /// The bucket's start.
    pub at_ms: f64,
    /// Operations.
    pub count: usize,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
}

/// Throughput over time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ThroughputSummary {
    /// Width of the time buckets (by completion time).
    pub bucket_ms: f64,
    /// One series per (kind, outcome) that occurred.
    pub series: Vec<ThroughputSeries>,
}

/// Completions per second of one kind and outcome.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ThroughputSeries {
    /// The operation kind.
    pub f: String,
    /// `ok`, `fail` or `info`.
    pub outcome: String,
    /// `(bucket start ms, operations per second)`, every bucket of the run.
    pub points: Vec<(f64, f64)>,
}

/// p99 visibility by origin × destination.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LagHeatmap {
    /// Rows.
    pub origins: Vec<String>,
    /// Columns.
    pub destinations: Vec<String>,
    /// `p99_ms[origin][destination]`; `None` on the diagonal and where nothing was measured.
    pub p99_ms: Vec<Vec<Option<f64>>>,
}

/// One region's clock offset as steps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClockSeries {
    /// The region.
    pub region: String,
    /// `(at ms, offset ms from then on)`, in time order.
    pub steps: Vec<(f64, f64)>,
}

/// Excerpts of the history for the diagrams and drill-downs, each bounded in size.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Traces {
    /// Operations of a short window, for the per-process timeline.
    pub timeline: Vec<OpRow>,
    /// The most-written key's writes and applies.
    pub hot_key: Option<KeyTrace>,
    /// One per anomalous key (the first few).
    pub drilldowns: Vec<KeyTrace>,
}

/// What happened to one key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyTrace {
    /// The key.
    pub key: String,
    /// Why it was chosen.
    pub reason: String,
    /// Operations on it, by invoke time.
    pub ops: Vec<OpRow>,
    /// Applies of the versions those operations wrote, by time.
    pub applies: Vec<ApplyRow>,
    /// Its final reads.
    pub finals: Vec<FinalRow>,
    /// Whether operations or applies were left out to keep the excerpt small.
    pub truncated: bool,
}

/// One operation, for a table or a diagram.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpRow {
    /// Its index in the history.
    pub index: u64,
    /// The client.
    pub process: u32,
    /// The region that served it.
    pub region: String,
    /// `put`, `delete`, `get` or `list`.
    pub f: String,
    /// The key.
    pub key: String,
    /// The value written or read.
    pub value: Option<String>,
    /// The version written or read.
    pub version: Option<String>,
    /// When invoked, ms (integer ms keeps `Eq`; sub-ms detail does not matter in a table).
    pub invoke_ms: u64,
    /// When completed, ms.
    pub complete_ms: u64,
    /// `ok`, `fail` or `info`.
    pub outcome: String,
}

/// One apply event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyRow {
    /// The region.
    pub region: String,
    /// The version applied.
    pub version: String,
    /// When, ms.
    pub at_ms: u64,
}

/// One final read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalRow {
    /// The region.
    pub region: String,
    /// The value, if found.
    pub value: Option<String>,
    /// The version, if found.
    pub version: Option<String>,
    /// When, ms.
    pub at_ms: u64,
}
