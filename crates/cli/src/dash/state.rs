//! What the dashboard knows about the cluster, and the snapshot the page is sent each second.
//! No I/O here: the collector feeds each region's answers in, the snapshot comes out as JSON.
//!
//! Memory is bounded however long the dashboard runs: each region keeps a fixed ring of
//! readings ([`Readings`]), and the timeline a fixed ring of points.

use std::collections::VecDeque;

use edgekv_core::{ActiveFault, Fault};
use serde_json::{json, Value};

use super::prom::Sample;
use super::window::Readings;

/// How many readings each region keeps: five minutes at one a second.
pub(crate) const READINGS: usize = 300;
/// How many timeline points are kept (and sent to a page that connects).
pub(crate) const TIMELINE: usize = 300;
/// The window of the lag quantiles.
const LAG_WINDOW_MS: u64 = 60_000;
/// The window of the request rates.
const RATE_WINDOW_MS: u64 = 5_000;
/// The lag histogram a region keeps per origin.
const LAG_HISTOGRAM: &str = "edgekv_replication_lag_seconds";

/// Operations that change data, as the API's request counter names them.
const WRITE_OPS: &[&str] =
    &["put_value", "delete_value", "bulk_write", "bulk_delete", "binding_put", "binding_delete"];
/// Operations that read.
const READ_OPS: &[&str] = &[
    "get_value",
    "get_metadata",
    "list_keys",
    "bulk_get",
    "binding_get",
    "binding_list",
    "binding_bulk_get",
];

/// What one poll of a region brought back.
#[derive(Debug)]
pub(crate) enum Poll {
    /// Its status, faults and metrics.
    Up { status: Value, faults: Vec<ActiveFault>, metrics: Vec<Sample> },
    /// Why it could not be read.
    Down(String),
}

/// One region as the dashboard tracks it.
#[derive(Debug)]
pub(crate) struct Region {
    pub(crate) name: String,
    up: bool,
    error: Option<String>,
    /// When it last changed between up and down.
    since_ms: u64,
    status: Value,
    faults: Vec<ActiveFault>,
    readings: Readings,
}

/// The whole cluster.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) regions: Vec<Region>,
    timeline: VecDeque<Value>,
    /// Since when every region's digest has matched every other's (`None`: they differ now).
    converged_since_ms: Option<u64>,
}

impl Cluster {
    pub(crate) fn new(names: &[String]) -> Self {
        let regions = names
            .iter()
            .map(|name| Region {
                name: name.clone(),
                up: false,
                error: Some("not polled yet".to_owned()),
                since_ms: 0,
                status: Value::Null,
                faults: Vec::new(),
                readings: Readings::new(READINGS),
            })
            .collect();
        Cluster { regions, timeline: VecDeque::with_capacity(TIMELINE), converged_since_ms: None }
    }

    /// Takes one round of polls (in the regions' order) taken at `now_ms`.
    pub(crate) fn record(&mut self, now_ms: u64, polls: Vec<Poll>) {
        for (region, poll) in self.regions.iter_mut().zip(polls) {
            let was_up = region.up;
            match poll {
                Poll::Up { status, faults, metrics } => {
                    region.up = true;
                    region.error = None;
                    region.status = status;
                    region.faults = faults;
                    region.readings.push(now_ms, metrics);
                }
                Poll::Down(error) => {
                    region.up = false;
                    region.error = Some(error);
                    // Its counters start over when it comes back.
                    region.readings.clear();
                }
            }
            if region.up != was_up {
                region.since_ms = now_ms;
            }
        }
        // The digest holds only versions older than the horizon, so equal digests alone would
        // call a cluster converged while young writes are still queued: nothing may wait on
        // any link either.
        let roots: Vec<Option<&str>> = self.regions.iter().map(|r| r.digest_root()).collect();
        let queued: f64 = self.regions.iter().map(Region::queued).sum();
        let converged = queued == 0.0 && roots.iter().all(|r| r.is_some() && *r == roots[0]);
        self.converged_since_ms = match (converged, self.converged_since_ms) {
            (true, Some(since)) => Some(since),
            (true, None) => Some(now_ms),
            (false, _) => None,
        };
        let point = self.timeline_point(now_ms);
        if self.timeline.len() == TIMELINE {
            self.timeline.pop_front();
        }
        self.timeline.push_back(point);
    }

    /// `region`'s configured delay model towards each other region, and the cluster's seed
    /// (`None` for a region the dashboard does not watch).
    pub(crate) fn links_of(&self, region: &str) -> Option<(Vec<(String, String)>, u64)> {
        let origin = self.regions.iter().find(|r| r.name == region)?;
        let models = self
            .regions
            .iter()
            .filter(|r| r.name != region)
            .map(|r| {
                let model = origin.link_model(&r.name);
                (r.name.clone(), model.as_str().unwrap_or_default().to_owned())
            })
            .collect();
        Some((models, origin.status["seed"].as_u64().unwrap_or(0)))
    }

    /// The timeline so far, oldest first.
    pub(crate) fn timeline(&self) -> Vec<Value> {
        self.timeline.iter().cloned().collect()
    }

    fn timeline_point(&self, now_ms: u64) -> Value {
        let regions: serde_json::Map<String, Value> = self
            .regions
            .iter()
            .map(|r| {
                let lag_p99 = self
                    .regions
                    .iter()
                    .filter(|o| o.name != r.name)
                    .filter_map(|o| r.lag_from(&o.name).1)
                    .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
                (
                    r.name.clone(),
                    json!({
                        "up": r.up,
                        "writes": round(r.rate(WRITE_OPS)),
                        "reads": round(r.rate(READ_OPS)),
                        "lag_p99_ms": lag_p99.map(round),
                    }),
                )
            })
            .collect();
        json!({ "t_ms": now_ms, "regions": regions, "faults": self.faults().len() })
    }

    /// The snapshot the page renders, at `now_ms`.
    pub(crate) fn snapshot(&self, now_ms: u64) -> Value {
        let faults = self.faults();
        let regions: Vec<Value> =
            self.regions.iter().map(|r| self.region_json(r, now_ms)).collect();
        let mut links = Vec::new();
        for from in &self.regions {
            for to in self.regions.iter().filter(|t| t.name != from.name) {
                let (p50, p99, count) = to.lag_from(&from.name);
                let on_link: Vec<String> = faults
                    .iter()
                    .filter(|f| f.fault.affects_link(&from.name, &to.name))
                    .map(|f| describe(&f.fault))
                    .collect();
                links.push(json!({
                    "from": from.name,
                    "to": to.name,
                    "model": from.link_model(&to.name),
                    "lag_p50_ms": p50.map(round),
                    "lag_p99_ms": p99.map(round),
                    "lag_count": count,
                    "backlog": from.backlog(&to.name),
                    "faults": on_link,
                }));
            }
        }
        let seed = self.regions.iter().find_map(|r| r.status["seed"].as_u64());
        json!({
            "t_ms": now_ms,
            "seed": seed,
            "regions": regions,
            "links": links,
            "faults": faults.iter().map(|f| f.to_json()).collect::<Vec<_>>(),
            "converged_for_ms": self.converged_since_ms.map(|s| now_ms.saturating_sub(s)),
            "point": self.timeline.back(),
        })
    }

    fn region_json(&self, r: &Region, now_ms: u64) -> Value {
        let root = r.digest_root();
        let matches = root.is_some()
            && self.regions.iter().all(|o| o.name == r.name || o.digest_root() == root);
        json!({
            "name": r.name,
            "up": r.up,
            "error": r.error,
            "for_ms": now_ms.saturating_sub(r.since_ms),
            "writes_per_s": round(r.rate(WRITE_OPS)),
            "reads_per_s": round(r.rate(READ_OPS)),
            "keys": r.status["keys"],
            "outbox": r.status["outbox"],
            "clock_offset_ms": r.status["clock_offset_ms"],
            "durability": r.status["storage"]["mode"],
            "digest_root": root,
            "digest_items": r.status["digest"]["items"],
            "matches_peers": matches,
        })
    }

    /// The faults in force anywhere, each once, with every region's id for it.
    fn faults(&self) -> Vec<ClusterFault> {
        let mut faults: Vec<ClusterFault> = Vec::new();
        for region in self.regions.iter().filter(|r| r.up) {
            for active in &region.faults {
                let id = (region.name.clone(), active.id);
                match faults.iter_mut().find(|f| f.fault == active.fault) {
                    // Regions of one process share their faults: each lists every copy.
                    Some(known) if known.ids.contains(&id) => {}
                    Some(known) => known.ids.push(id),
                    None => {
                        faults.push(ClusterFault { fault: active.fault.clone(), ids: vec![id] })
                    }
                }
            }
        }
        faults
    }
}

/// A fault as the cluster has it: installed on some regions, under each one's id.
#[derive(Debug)]
struct ClusterFault {
    fault: Fault,
    ids: Vec<(String, u64)>,
}

impl ClusterFault {
    /// How many regions have it.
    fn regions(&self) -> usize {
        let mut names: Vec<&str> = self.ids.iter().map(|(r, _)| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names.len()
    }

    fn to_json(&self) -> Value {
        json!({
            "fault": self.fault,
            "kind": self.fault.kind(),
            "description": describe(&self.fault),
            "ids": self.ids,
            "regions": self.regions(),
        })
    }
}

impl Region {
    fn digest_root(&self) -> Option<&str> {
        self.up.then(|| self.status["digest"]["root"].as_str()).flatten()
    }

    fn rate(&self, ops: &[&str]) -> f64 {
        self.readings.rate(RATE_WINDOW_MS, |s| {
            s.name == "edgekv_http_requests_total"
                && s.label("op").is_some_and(|op| ops.contains(&op))
        })
    }

    /// Lag of writes from `origin` applied here over the last minute: (p50 ms, p99 ms,
    /// observations).
    fn lag_from(&self, origin: &str) -> (Option<f64>, Option<f64>, u64) {
        let histogram = self.readings.histogram(LAG_WINDOW_MS, LAG_HISTOGRAM, origin);
        let ms = |q| histogram.quantile(q).map(|s| s * 1000.0);
        (ms(0.5), ms(0.99), histogram.count() as u64)
    }

    fn link_model(&self, to: &str) -> Value {
        let links = self.status["links"].as_array().map_or(&[][..], Vec::as_slice);
        links.iter().find(|l| l["to"] == to).map_or(Value::Null, |l| l["model"].clone())
    }

    /// Writes waiting on all of this region's outgoing links.
    fn queued(&self) -> f64 {
        let newest = self.readings.newest().unwrap_or_default();
        newest.iter().filter(|s| s.name == "edgekv_outbox_depth").map(|s| s.value).sum()
    }

    fn backlog(&self, to: &str) -> Option<f64> {
        let newest = self.readings.newest()?;
        newest
            .iter()
            .find(|s| s.name == "edgekv_outbox_depth" && s.label("peer") == Some(to))
            .map(|s| s.value)
    }
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A fault in a few words, for the page.
pub(crate) fn describe(fault: &Fault) -> String {
    match fault {
        Fault::Partition { a, b } => format!("partition {} | {}", a.join(","), b.join(",")),
        Fault::OneWay { from, to } => format!("one-way cut {from} -> {to}"),
        Fault::Delay { from, to, extra } => format!("extra delay {extra} {from} -> {to}"),
        Fault::Loss { from, to, rate } => format!("loss {:.0}% {from} -> {to}", rate * 100.0),
        Fault::Duplicate { from, to, rate } => {
            format!("duplication {:.0}% {from} -> {to}", rate * 100.0)
        }
        Fault::Pause { from, to } => format!("replication paused {from} -> {to}"),
        Fault::ClockOffset { region, offset_ms } => format!("clock {region} {offset_ms:+} ms"),
        Fault::Kill { region }
        | Fault::Stop { region }
        | Fault::Freeze { region }
        | Fault::Wipe { region } => format!("{} {region}", fault.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(root: &str, backlog: f64, faults: Vec<ActiveFault>) -> Poll {
        let status = json!({"digest": {"root": root, "items": 1}, "keys": 3, "outbox": 0,
                            "links": [{"to": "enam", "model": "2s"}], "seed": 7});
        let depth = Sample {
            name: "edgekv_outbox_depth".to_owned(),
            labels: vec![("peer".to_owned(), "enam".to_owned())],
            value: backlog,
        };
        Poll::Up { status, faults, metrics: vec![depth] }
    }

    fn names() -> Vec<String> {
        vec!["wnam".to_owned(), "enam".to_owned()]
    }

    #[test]
    fn converged_needs_equal_digests_and_nothing_queued() {
        let mut cluster = Cluster::new(&names());
        cluster.record(0, vec![up("aa", 0.0, vec![]), up("aa", 0.0, vec![])]);
        cluster.record(1000, vec![up("aa", 0.0, vec![]), up("aa", 0.0, vec![])]);
        assert_eq!(cluster.snapshot(1000)["converged_for_ms"], 1000);
        cluster.record(2000, vec![up("aa", 4.0, vec![]), up("aa", 0.0, vec![])]);
        assert_eq!(cluster.snapshot(2000)["converged_for_ms"], Value::Null, "writes queued");
        cluster.record(3000, vec![up("aa", 0.0, vec![]), up("bb", 0.0, vec![])]);
        assert_eq!(cluster.snapshot(3000)["converged_for_ms"], Value::Null, "digests differ");
        cluster.record(4000, vec![up("aa", 0.0, vec![]), Poll::Down("refused".to_owned())]);
        let snapshot = cluster.snapshot(4000);
        assert_eq!(snapshot["converged_for_ms"], Value::Null, "a region is down");
        assert_eq!(snapshot["regions"][1]["up"], false);
        assert_eq!(snapshot["regions"][1]["error"], "refused");
        assert_eq!(snapshot["seed"], 7);
    }

    #[test]
    fn a_fault_shows_once_with_every_region_s_id_and_on_the_links_it_cuts() {
        let cut: Fault =
            serde_json::from_str(r#"{"kind":"one_way","from":"wnam","to":"enam"}"#).unwrap();
        let active = |id| ActiveFault { id, fault: cut.clone() };
        let mut cluster = Cluster::new(&names());
        cluster.record(0, vec![up("aa", 2.0, vec![active(1)]), up("aa", 0.0, vec![active(5)])]);
        let snapshot = cluster.snapshot(0);
        let faults = snapshot["faults"].as_array().unwrap();
        assert_eq!(faults.len(), 1);
        assert_eq!(faults[0]["ids"], json!([["wnam", 1], ["enam", 5]]));
        assert_eq!(faults[0]["regions"], 2);
        let links = snapshot["links"].as_array().unwrap();
        let link = |from: &str| links.iter().find(|l| l["from"] == from).unwrap();
        assert_eq!(link("wnam")["faults"], json!(["one-way cut wnam -> enam"]));
        assert_eq!(link("wnam")["backlog"], 2.0);
        assert_eq!(link("wnam")["model"], "2s");
        assert_eq!(link("enam")["faults"], json!([]));
        assert_eq!(cluster.timeline().len(), 1);
    }
}
