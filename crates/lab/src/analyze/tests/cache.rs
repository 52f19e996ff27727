//! The edge cache's figures on a hand-made run: enam caches "not found" before wnam's put
//! reaches it, weur has nothing cached when it arrives.

use super::*;
use crate::history::{CacheStatus, Via};

impl Builder {
    /// A binding get with a cacheTtl of 30 s, answered `status`.
    fn binding_get(&mut self, region: &str, read: Option<String>, at_ms: u64, status: CacheStatus) {
        let index = self.get(region, "k", read, at_ms) as usize;
        let op = &mut self.history.ops[index];
        op.via = Some(Via::Binding);
        op.cache_ttl = Some(30);
        op.cache = Some(status);
    }
}

/// wnam puts v1 at 0 ms (acknowledged at 5 ms); enam looks the key up at 10 ms and caches "not
/// found"; v1 reaches enam and weur at 100 ms; enam's hit at 200 ms still finds nothing, its
/// miss at 31 s (the ttl ran out) finds v1; weur's first read, at 300 ms, finds it at once.
fn negative_cache() -> Builder {
    let mut b = Builder::default();
    b.put("wnam", "k", 1, 0);
    let v1 = version(1, "wnam");
    b.binding_get("enam", None, 10, CacheStatus::Miss);
    b.apply("enam", "k", &v1, 100);
    b.apply("weur", "k", &v1, 100);
    b.binding_get("enam", None, 200, CacheStatus::Hit);
    b.binding_get("enam", Some(v1.clone()), 31_000, CacheStatus::Miss);
    b.binding_get("weur", Some(v1.clone()), 300, CacheStatus::Miss);
    b.get("weur", "k", Some(v1), 400);
    b
}

#[test]
fn stale_reads_split_into_propagation_and_the_cache_per_read_path() {
    let s = negative_cache().summarize(&meta("100ms"));
    let c = &s.cache;
    let labels: Vec<&str> = c.paths.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(labels, ["REST", "binding, cacheTtl 30 s"]);
    let (rest, binding) = (&c.paths[0], &c.paths[1]);
    assert_eq!((binding.reads, binding.hits, binding.misses), (4, 1, 3));
    // Stale: enam's miss at 10 ms (v1 had not arrived: propagation) and its hit at 200 ms
    // (v1 had arrived: the cache).
    assert_eq!((binding.judged, binding.stale, binding.stale_hits), (4, 2, 1));
    assert_eq!(binding.behind_store, 1, "only the hit was older than enam's store");
    assert_eq!((rest.reads, rest.stale, rest.behind_store), (1, 0, 0));
    assert_eq!((c.stale_reads, c.stale_hits, c.behind_store), (2, 1, 1));
    close(c.stale_hit_share, 0.5);
    assert_eq!(s.stale.stale, 2, "not found while enam held v1 is stale, not fresh");
    // Black-box visibility per path: enam settled on v1 at 31 s, weur at 300 ms (binding) and
    // 400 ms (REST), each less the ack at 5 ms.
    assert_eq!(binding.visibility.count, 2);
    close(binding.visibility.max_ms, 30_995.0);
    close(binding.visibility.p50_ms, 295.0);
    close(rest.visibility.max_ms, 395.0);
    assert_eq!(s.visibility.overall.blackbox_count, 1, "B1's black-box reads only REST");
}

#[test]
fn an_arrival_stays_hidden_where_the_key_was_cached_and_nowhere_else() {
    let s = negative_cache().summarize(&meta("100ms"));
    let rows: Vec<(&str, Option<u64>, usize, usize, usize)> = s
        .cache
        .arrivals
        .iter()
        .map(|a| (a.cached.as_str(), a.cache_ttl_s, a.arrivals, a.reads, a.stale_reads))
        .collect();
    assert_eq!(rows, [("not found", Some(30), 1, 2, 1), ("nothing", None, 1, 1, 0)]);
    let (negative, cold) = (&s.cache.arrivals[0], &s.cache.arrivals[1]);
    close(negative.hidden_ms.max_ms, 100.0);
    close(negative.seen_ms.max_ms, 30_900.0);
    assert_eq!(cold.hidden_arrivals, 0);
    close(cold.seen_ms.max_ms, 200.0);
    let series: Vec<&str> = s.cache.hidden_samples.iter().map(|h| h.cached.as_str()).collect();
    assert_eq!(series, ["not found"]);
    assert_eq!(s.cache.hidden_samples[0].points, [(0.1, 100.0)]);
    assert_eq!(s.check.validity, "unknown", "no final reads, but no anomaly either");
}
