//! How a scenario's gets are sent, and the edge settings of the regions they reach.
//!
//! A get goes through the REST API (the region's store) or through the Workers binding protocol,
//! whose reads pass the region's edge cache with a cacheTtl, as a Worker's `KV.get(key,
//! { cacheTtl })` does. A region's gets can mix paths, each picked per get by weight:
//!
//! ```toml
//! [workload]
//! reads = { via = "binding", cache_ttl = 30 }
//!
//! [[regions]]
//! name = "weur"
//! reads = [{ via = "binding", cache_ttl = 30, weight = 3 }, { via = "rest" }]
//! ```

use serde::Deserialize;

use super::{err, ScenarioError, Target};
use crate::history::Via;
use crate::workload::Rng;

/// Workers KV's default cacheTtl, seconds: a binding read that names none gets it.
pub const DEFAULT_CACHE_TTL: u64 = 60;
/// The shortest cacheTtl Workers KV accepts, seconds.
pub const MIN_CACHE_TTL: u64 = 30;
/// The longest cacheTtl a scenario may ask, seconds: a year, far past any run, and small enough
/// that no bound computed from it overflows the history's nanoseconds.
pub const MAX_CACHE_TTL: u64 = 365 * 24 * 3600;
/// How long a region that caches REST reads keeps what one found, seconds (the REST API names
/// no cacheTtl; a region uses Workers KV's default).
pub const REST_CACHE_TTL: u64 = DEFAULT_CACHE_TTL;

/// The path of one get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReadPath {
    /// The API.
    pub via: Via,
    /// The cacheTtl a binding read asks, seconds; `None` for REST.
    pub cache_ttl: Option<u64>,
}

impl ReadPath {
    /// A REST read.
    pub const REST: ReadPath = ReadPath { via: Via::Rest, cache_ttl: None };

    /// For people: `rest`, `binding (cacheTtl 30 s)`.
    pub fn describe(&self) -> String {
        match (self.via, self.cache_ttl) {
            (Via::Binding, Some(ttl)) => format!("binding (cacheTtl {ttl} s)"),
            (via, _) => via.as_str().to_owned(),
        }
    }
}

/// The paths a region's gets pick from, each with its weight (at least one path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reads(Vec<(ReadPath, u32)>);

impl Default for Reads {
    /// Every get through REST, as before the binding existed.
    fn default() -> Self {
        Reads(vec![(ReadPath::REST, 1)])
    }
}

impl Reads {
    /// The paths and their weights, as written.
    pub fn paths(&self) -> &[(ReadPath, u32)] {
        &self.0
    }

    /// Whether any get goes through the binding.
    pub fn uses_binding(&self) -> bool {
        self.0.iter().any(|(p, _)| p.via == Via::Binding)
    }

    /// The path of the next get. A single path draws nothing from `rng`, so a scenario without
    /// a mix issues the operations it issued before read paths existed.
    pub fn pick(&self, rng: &mut Rng) -> ReadPath {
        if let [(only, _)] = self.0.as_slice() {
            return *only;
        }
        let total: u64 = self.0.iter().map(|&(_, w)| u64::from(w)).sum();
        let mut pick = rng.below(total);
        for &(path, weight) in &self.0 {
            if pick < u64::from(weight) {
                return path;
            }
            pick -= u64::from(weight);
        }
        ReadPath::REST
    }

    /// For people: the paths with their weights when there are several.
    pub fn describe(&self) -> String {
        match self.0.as_slice() {
            [(only, _)] => only.describe(),
            many => many
                .iter()
                .map(|(p, w)| format!("{} ×{w}", p.describe()))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// One read path as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PathFile {
    via: Option<String>,
    cache_ttl: Option<i64>,
    weight: Option<i64>,
}

/// `reads` at `field`: one table, or an array of them for a mix.
pub(super) fn reads(field: &str, value: &toml::Value) -> Result<Reads, ScenarioError> {
    let entries: Vec<(String, &toml::Value)> = match value {
        toml::Value::Array(list) if list.is_empty() => {
            return Err(err(format!("{field}: at least one read path")))
        }
        toml::Value::Array(list) => {
            list.iter().enumerate().map(|(i, v)| (format!("{field}[{i}]"), v)).collect()
        }
        other => vec![(field.to_owned(), other)],
    };
    let mut paths = Vec::new();
    for (field, value) in entries {
        paths.push(path(&field, value)?);
    }
    Ok(Reads(paths))
}

fn path(field: &str, value: &toml::Value) -> Result<(ReadPath, u32), ScenarioError> {
    if !value.is_table() {
        return Err(err(format!(
            "{field}: a table such as {{ via = \"binding\", cache_ttl = 30 }}"
        )));
    }
    let file: PathFile =
        value.clone().try_into().map_err(|e| err(format!("{field}: {}", e.to_string().trim())))?;
    let via = match file.via.as_deref() {
        None | Some("rest") => Via::Rest,
        Some("binding") => Via::Binding,
        Some(other) => {
            return Err(err(format!("{field}.via: {other:?}: use \"rest\" or \"binding\"")))
        }
    };
    let cache_ttl = match (via, file.cache_ttl) {
        (Via::Rest, None) => None,
        (Via::Rest, Some(_)) => {
            return Err(err(format!(
                "{field}.cache_ttl: only binding reads ask a cacheTtl (via = \"binding\"); REST \
                 reads are uncached unless [cluster] rest_cache = true"
            )))
        }
        (Via::Binding, None) => Some(DEFAULT_CACHE_TTL),
        (Via::Binding, Some(ttl)) => Some(cache_ttl(&format!("{field}.cache_ttl"), ttl)?),
    };
    let weight = match file.weight {
        None => 1,
        Some(w) if (1..=i64::from(u32::MAX)).contains(&w) => w as u32,
        Some(w) => {
            return Err(err(format!(
                "{field}.weight: {w} is not a weight; at least 1 (leave a path out instead of 0)"
            )))
        }
    };
    Ok((ReadPath { via, cache_ttl }, weight))
}

fn cache_ttl(field: &str, ttl: i64) -> Result<u64, ScenarioError> {
    match u64::try_from(ttl) {
        Ok(ttl) if ttl < MIN_CACHE_TTL => Err(err(format!(
            "{field}: {ttl} s; Workers KV refuses a cacheTtl under {MIN_CACHE_TTL} s"
        ))),
        Ok(ttl) if ttl <= MAX_CACHE_TTL => Ok(ttl),
        _ => Err(err(format!("{field}: seconds from {MIN_CACHE_TTL} to {MAX_CACHE_TTL}"))),
    }
}

/// The regions' edge settings: what an in-process cluster is started with, and what an
/// external one is declared to run with (the lab cannot change an external cluster: start its
/// nodes with `--edge-cache`, `--rest-cache` and `--write-rate-limit`, or the compose file's
/// `EDGEKV_EDGE_CACHE`, `EDGEKV_REST_CACHE` and `EDGEKV_WRITE_RATE_LIMIT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdgeSettings {
    /// Workers KV's edge read cache in every region.
    pub cache: bool,
    /// REST reads through the cache too.
    pub rest_cache: bool,
    /// At most one write per second per key and region.
    pub write_rate_limit: bool,
}

impl EdgeSettings {
    /// Workers KV's, and every node's default: the cache on for the binding, REST uncached, the
    /// write limit on.
    pub const WORKERS_KV: EdgeSettings =
        EdgeSettings { cache: true, rest_cache: false, write_rate_limit: true };

    /// How long a REST read's answer may have been cached, seconds, when the regions cache
    /// REST reads.
    pub fn rest_cache_ttl(&self) -> Option<u64> {
        (self.cache && self.rest_cache).then_some(REST_CACHE_TTL)
    }
}

impl Default for EdgeSettings {
    fn default() -> Self {
        EdgeSettings::WORKERS_KV
    }
}

/// The `[cluster]` edge fields as written, over Workers KV's defaults.
pub(super) fn edge(
    cache: Option<bool>,
    rest_cache: Option<bool>,
    write_rate_limit: Option<bool>,
) -> Result<EdgeSettings, ScenarioError> {
    let d = EdgeSettings::WORKERS_KV;
    let edge = EdgeSettings {
        cache: cache.unwrap_or(d.cache),
        rest_cache: rest_cache.unwrap_or(d.rest_cache),
        write_rate_limit: write_rate_limit.unwrap_or(d.write_rate_limit),
    };
    if edge.rest_cache && !edge.cache {
        return Err(err(
            "cluster.rest_cache: REST reads can only be cached with edge_cache = true",
        ));
    }
    Ok(edge)
}

/// A region's binding URL: required of an external region whose gets use the binding, refused
/// for an in-process one (the lab knows where its own regions listen).
pub(super) fn binding_url(
    field: &str,
    url: Option<&str>,
    reads: &Reads,
    target: &Target,
) -> Result<Option<String>, ScenarioError> {
    match (url, target) {
        (Some(_), Target::InProcess { .. }) => Err(err(format!(
            "{field}.binding_url: only for an external cluster (a region with a url); the lab \
             knows where an in-process region's binding listens"
        ))),
        (Some(u), Target::External) if !u.starts_with("http://") => {
            Err(err(format!("{field}.binding_url: {u:?} must start with http://")))
        }
        (Some(u), Target::External) => Ok(Some(u.trim_end_matches('/').to_owned())),
        (None, Target::External) if reads.uses_binding() => Err(err(format!(
            "{field}.binding_url: the region's gets use the binding; give its binding listener's \
             URL (the BINDING column of `edgekv cluster`, e.g. http://127.0.0.1:10787)"
        ))),
        // A simulation knows where its regions are; a URL written for a real cluster is moot.
        (_, Target::Simulated) | (None, _) => Ok(None),
    }
}
