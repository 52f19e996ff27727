//! What the dashboard computes from a region's samples over time, without I/O: rates of
//! counters and quantiles of the lag histogram over a trailing window. A region keeps a bounded
//! ring of readings (one a second, a few minutes' worth), so memory does not grow with how
//! long the page stays open.

use std::collections::VecDeque;

use super::prom::Sample;

/// One reading: (milliseconds, the samples).
type Reading = (u64, Vec<Sample>);

/// A region's readings, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Readings {
    ring: VecDeque<Reading>,
    capacity: usize,
}

impl Readings {
    /// At most `capacity` readings.
    pub(crate) fn new(capacity: usize) -> Self {
        Readings { ring: VecDeque::with_capacity(capacity), capacity: capacity.max(2) }
    }

    pub(crate) fn push(&mut self, at_ms: u64, samples: Vec<Sample>) {
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
        }
        self.ring.push_back((at_ms, samples));
    }

    /// The newest reading's samples.
    pub(crate) fn newest(&self) -> Option<&[Sample]> {
        self.ring.back().map(|(_, samples)| samples.as_slice())
    }

    /// Forgets every reading (the region restarted: its counters started over).
    pub(crate) fn clear(&mut self) {
        self.ring.clear();
    }

    /// The newest reading and the oldest one at most `window_ms` before it.
    fn span(&self, window_ms: u64) -> Option<(&Reading, &Reading)> {
        let newest = self.ring.back()?;
        let oldest = self.ring.iter().find(|(at, _)| newest.0.saturating_sub(*at) <= window_ms)?;
        Some((oldest, newest))
    }

    /// Per second, how much the sum of the samples `pick` selects grew over the window.
    pub(crate) fn rate(&self, window_ms: u64, pick: impl Fn(&Sample) -> bool) -> f64 {
        let Some(((t0, old), (t1, new))) = self.span(window_ms) else { return 0.0 };
        if t1 <= t0 {
            return 0.0;
        }
        let sum = |samples: &[Sample]| -> f64 {
            samples.iter().filter(|s| pick(s)).map(|s| s.value).sum()
        };
        let grew: f64 = sum(new) - sum(old);
        // A counter that went down means the node restarted; this window says nothing.
        grew.max(0.0) / ((t1 - t0) as f64 / 1000.0)
    }

    /// The lag histogram `name` of one origin over the window: its quantiles.
    pub(crate) fn histogram(&self, window_ms: u64, name: &str, origin: &str) -> Histogram {
        let bucket = format!("{name}_bucket");
        let buckets = |samples: &[Sample]| -> Vec<(f64, f64)> {
            let mut b: Vec<(f64, f64)> = samples
                .iter()
                .filter(|s| s.name == bucket && s.label("origin") == Some(origin))
                .filter_map(|s| Some((parse_le(s.label("le")?)?, s.value)))
                .collect();
            b.sort_by(|x, y| x.0.total_cmp(&y.0));
            b
        };
        let Some(((_, old), (_, new))) = self.span(window_ms) else { return Histogram::default() };
        let (old, new) = (buckets(old), buckets(new));
        let delta: Vec<(f64, f64)> = new
            .iter()
            .map(|(le, n)| {
                let before = old.iter().find(|(l, _)| l == le).map_or(0.0, |(_, c)| *c);
                (*le, (n - before).max(0.0))
            })
            .collect();
        Histogram { cumulative: delta }
    }
}

fn parse_le(le: &str) -> Option<f64> {
    if le == "+Inf" {
        Some(f64::INFINITY)
    } else {
        le.parse().ok()
    }
}

/// A histogram over a window: cumulative counts by upper bound, ascending.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Histogram {
    cumulative: Vec<(f64, f64)>,
}

impl Histogram {
    /// Observations in the window.
    pub(crate) fn count(&self) -> f64 {
        self.cumulative.last().map_or(0.0, |(_, n)| *n)
    }

    /// The `q` quantile, interpolated linearly inside its bucket as Prometheus does; `None`
    /// with no observations. A quantile in the open last bucket is its lower bound.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total <= 0.0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total;
        let mut lower = (0.0, 0.0);
        for &(le, n) in &self.cumulative {
            if n >= rank {
                if le.is_infinite() {
                    return Some(lower.0);
                }
                let in_bucket = n - lower.1;
                let fraction = if in_bucket > 0.0 { (rank - lower.1) / in_bucket } else { 1.0 };
                return Some(lower.0 + (le - lower.0) * fraction);
            }
            lower = (le, n);
        }
        Some(lower.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            name: name.to_owned(),
            labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            value,
        }
    }

    fn lag(origin: &str, counts: [f64; 4]) -> Vec<Sample> {
        ["1", "2", "4", "+Inf"]
            .iter()
            .zip(counts)
            .map(|(le, n)| sample("lag_bucket", &[("origin", origin), ("le", le)], n))
            .collect()
    }

    #[test]
    fn rates_cover_the_window_and_ignore_restarts() {
        let mut r = Readings::new(10);
        for (t, n) in [(0, 0.0), (1000, 10.0), (2000, 30.0), (3000, 60.0)] {
            r.push(t, vec![sample("reqs", &[("op", "get_value")], n)]);
        }
        assert_eq!(r.rate(1000, |s| s.name == "reqs"), 30.0);
        assert_eq!(r.rate(3000, |s| s.name == "reqs"), 20.0);
        r.push(4000, vec![sample("reqs", &[("op", "get_value")], 2.0)]);
        assert_eq!(r.rate(1000, |s| s.name == "reqs"), 0.0, "the counter started over");
    }

    #[test]
    fn the_ring_is_bounded() {
        let mut r = Readings::new(3);
        for t in 0..100 {
            r.push(t * 1000, vec![]);
        }
        assert_eq!(r.ring.len(), 3);
    }

    #[test]
    fn quantiles_come_from_the_window_not_the_whole_run() {
        let mut r = Readings::new(100);
        // Before the window: 100 slow observations (above 4 s).
        r.push(0, lag("wnam", [0.0, 0.0, 0.0, 100.0]));
        r.push(60_000, lag("wnam", [0.0, 0.0, 0.0, 100.0]));
        // In the window: 10 between 1 and 2 s.
        r.push(120_000, lag("wnam", [0.0, 10.0, 10.0, 110.0]));
        let h = r.histogram(60_000, "lag", "wnam");
        assert_eq!(h.count(), 10.0);
        let p50 = h.quantile(0.5).unwrap();
        assert!((p50 - 1.5).abs() < 1e-9, "{p50}");
        assert_eq!(r.histogram(60_000, "lag", "enam").quantile(0.5), None);
    }

    #[test]
    fn a_quantile_in_the_open_bucket_is_its_lower_bound() {
        let h = Histogram { cumulative: vec![(1.0, 1.0), (2.0, 1.0), (f64::INFINITY, 10.0)] };
        assert_eq!(h.quantile(0.99), Some(2.0));
        assert_eq!(h.quantile(0.05), Some(0.5));
    }
}
