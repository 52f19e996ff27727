//! The edge cache's share of staleness: figures per read path, and what each region's reads
//! showed after a newer version arrived in its store.

use serde::{Deserialize, Serialize};

use super::Quantiles;

/// How the edge cache shaped what reads returned.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheSummary {
    /// One row per read path (REST, binding with each cacheTtl), in that order.
    pub paths: Vec<ReadPathStats>,
    /// Stale reads (as in B2) of every path.
    pub stale_reads: usize,
    /// Of those, the ones answered `CF-Cache-Status: HIT`.
    pub stale_hits: usize,
    /// stale_hits / stale_reads.
    pub stale_hit_share: Option<f64>,
    /// Reads older than what their region's store had certainly applied when they began: stale
    /// by the cache, not by propagation.
    pub behind_store: usize,
    /// What a region's cached reads showed after a newer version arrived in its store, by what
    /// its cache held at the arrival.
    pub arrivals: Vec<ArrivalStats>,
    /// A few arrivals whose older state was still served, for the figure: `(arrival s, the last
    /// read that served the older state, ms after the arrival)` per cache state, downsampled.
    pub hidden_samples: Vec<HiddenSeries>,
}

/// The reads of one path.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadPathStats {
    /// `rest` or `binding`.
    pub via: String,
    /// The cacheTtl asked (binding), or the REST cache's when REST reads were cached, seconds.
    pub cache_ttl_s: Option<u64>,
    /// For people: `REST`, `binding, cacheTtl 30 s`.
    pub label: String,
    /// Acknowledged gets.
    pub reads: usize,
    /// Answered `HIT`.
    pub hits: usize,
    /// Answered `MISS`.
    pub misses: usize,
    /// Judged as in B2: with a write acknowledged before them.
    pub judged: usize,
    /// Of those, older than the newest write acknowledged before them.
    pub stale: usize,
    /// stale / judged.
    pub stale_rate: Option<f64>,
    /// Stale reads answered `HIT`.
    pub stale_hits: usize,
    /// Reads older than what their region's store had certainly applied when they began.
    pub behind_store: usize,
    /// Black-box t-visibility of puts in other regions, reading through this path only: the
    /// first read after which no read of this path returned anything older, ms after the ack.
    pub visibility: Quantiles,
    /// Its CDF as `(ms, P)` points, downsampled.
    pub visibility_cdf: Vec<(f64, f64)>,
}

/// Arrivals of a newer version in a region's store, with cached reads after them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArrivalStats {
    /// What the region's cache held of the key at the arrival: `value` (an older value),
    /// `not found` (negative caching), or `nothing`.
    pub cached: String,
    /// The largest cacheTtl of the reads that may have filled it, seconds (`nothing`: none).
    pub cache_ttl_s: Option<u64>,
    /// Arrivals with at least one cached-path read in the region before the next arrival.
    pub arrivals: usize,
    /// Those reads.
    pub reads: usize,
    /// Of those, the ones that returned the older state.
    pub stale_reads: usize,
    /// Arrivals with such a read.
    pub hidden_arrivals: usize,
    /// Per arrival with a stale read: from the arrival to the last read that returned the older
    /// state, the least time the cache hid the new version.
    pub hidden_ms: Quantiles,
    /// Per arrival: from the arrival to the first read that returned it, at most the time the
    /// cache hid it (and at least the wait for the region's next read).
    pub seen_ms: Quantiles,
}

/// The figure's points of one cache state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HiddenSeries {
    /// As [`ArrivalStats::cached`].
    pub cached: String,
    /// `(arrival, s since the run started; hidden for at least, ms)`.
    pub points: Vec<(f64, f64)>,
}
