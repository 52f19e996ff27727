//! Minimal Prometheus metrics: labelled counters, gauges and histograms, rendered in the text
//! exposition format.
//!
//! EdgeKV needs a few dozen series and one scrape endpoint per node; a registry of atomics and a
//! renderer is a couple of hundred lines, where an exporter crate would bring its own HTTP
//! server and a dependency tree. Series are created on first use and live as long as the
//! registry; label sets here are small and bounded (status codes, peer regions, fault kinds).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

/// Label values of one series, in the order of the family's label names.
type Labels = Vec<String>;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A distribution over fixed buckets (upper bounds, in the metric's unit).
#[derive(Debug)]
pub struct Histogram {
    bounds: Arc<[f64]>,
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    /// Sum in millionths of the unit, so it can be an atomic integer.
    sum_micro: AtomicU64,
}

impl Histogram {
    fn new(bounds: Arc<[f64]>) -> Self {
        let buckets = (0..bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram { bounds, buckets, count: AtomicU64::new(0), sum_micro: AtomicU64::new(0) }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micro.fetch_add((v * 1e6) as u64, Ordering::Relaxed);
    }

    /// How many observations were recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The `q` quantile (0 to 1), interpolated linearly within its bucket, as Prometheus'
    /// `histogram_quantile` does; `None` with no observation or past the last bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        let mut lower = 0.0;
        for (bound, bucket) in self.bounds.iter().zip(self.buckets.iter()) {
            let n = bucket.load(Ordering::Relaxed);
            if n > 0 && (below + n) as f64 >= rank {
                let within = (rank - below as f64) / n as f64;
                return Some(lower + (bound - lower) * within);
            }
            below += n;
            lower = *bound;
        }
        None
    }
}

/// A named family of series of one type, distinguished by label values.
#[derive(Debug)]
pub struct Family<M> {
    name: &'static str,
    help: &'static str,
    label_names: &'static [&'static str],
    /// Few series per family (label values are bounded), so a vector searched by borrowed
    /// label values beats a map that needs an owned key for every lookup on the hot path.
    series: RwLock<Vec<(Labels, Arc<M>)>>,
    make: fn(&Family<M>) -> M,
    bounds: Arc<[f64]>,
}

impl<M> Family<M> {
    /// The series for `labels` (one value per label name), created on first use.
    pub fn with(&self, labels: &[&str]) -> Arc<M> {
        debug_assert_eq!(labels.len(), self.label_names.len(), "{}: label count", self.name);
        let matches = |key: &Labels| key.iter().map(String::as_str).eq(labels.iter().copied());
        if let Some((_, m)) = self.series.read().iter().find(|(key, _)| matches(key)) {
            return Arc::clone(m);
        }
        let mut series = self.series.write();
        if let Some((_, m)) = series.iter().find(|(key, _)| matches(key)) {
            return Arc::clone(m);
        }
        let made = Arc::new((self.make)(self));
        series.push((labels.iter().map(|l| (*l).to_owned()).collect(), Arc::clone(&made)));
        series.sort_by(|a, b| a.0.cmp(&b.0));
        made
    }

    /// Removes every series (for gauges describing a set that changed, like active faults).
    pub fn clear(&self) {
        self.series.write().clear();
    }
}

/// The metrics of one node, rendered by [`Registry::render`].
#[derive(Debug, Default)]
pub struct Registry {
    counters: RwLock<Vec<Arc<Family<Counter>>>>,
    gauges: RwLock<Vec<Arc<Family<Gauge>>>>,
    histograms: RwLock<Vec<Arc<Family<Histogram>>>>,
}

impl Registry {
    /// Registers a counter family.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Arc<Family<Counter>> {
        let family = Arc::new(family(name, help, labels, Arc::from([]), |_| Counter::default()));
        self.counters.write().push(Arc::clone(&family));
        family
    }

    /// Registers a gauge family.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Arc<Family<Gauge>> {
        let family = Arc::new(family(name, help, labels, Arc::from([]), |_| Gauge::default()));
        self.gauges.write().push(Arc::clone(&family));
        family
    }

    /// Registers a histogram family with bucket upper bounds `bounds` (ascending).
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &[f64],
    ) -> Arc<Family<Histogram>> {
        let family = Arc::new(family(name, help, labels, Arc::from(bounds), |f| {
            Histogram::new(Arc::clone(&f.bounds))
        }));
        self.histograms.write().push(Arc::clone(&family));
        family
    }

    /// Every series in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in self.counters.read().iter() {
            header(&mut out, f.name, f.help, "counter");
            for (labels, c) in f.series.read().iter() {
                let _ = writeln!(
                    out,
                    "{}{} {}",
                    f.name,
                    label_text(f.label_names, labels, None),
                    c.get()
                );
            }
        }
        for f in self.gauges.read().iter() {
            header(&mut out, f.name, f.help, "gauge");
            for (labels, g) in f.series.read().iter() {
                let _ = writeln!(
                    out,
                    "{}{} {}",
                    f.name,
                    label_text(f.label_names, labels, None),
                    g.get()
                );
            }
        }
        for f in self.histograms.read().iter() {
            header(&mut out, f.name, f.help, "histogram");
            for (labels, h) in f.series.read().iter() {
                let mut cumulative = 0;
                for (bound, bucket) in h.bounds.iter().zip(h.buckets.iter()) {
                    cumulative += bucket.load(Ordering::Relaxed);
                    let le = label_text(f.label_names, labels, Some(&bound.to_string()));
                    let _ = writeln!(out, "{}_bucket{le} {cumulative}", f.name);
                }
                let inf = label_text(f.label_names, labels, Some("+Inf"));
                let plain = label_text(f.label_names, labels, None);
                let _ = writeln!(out, "{}_bucket{inf} {}", f.name, h.count());
                let sum = h.sum_micro.load(Ordering::Relaxed) as f64 / 1e6;
                let _ = writeln!(out, "{}_sum{plain} {sum}", f.name);
                let _ = writeln!(out, "{}_count{plain} {}", f.name, h.count());
            }
        }
        out
    }
}

fn family<M>(
    name: &'static str,
    help: &'static str,
    label_names: &'static [&'static str],
    bounds: Arc<[f64]>,
    make: fn(&Family<M>) -> M,
) -> Family<M> {
    Family { name, help, label_names, series: RwLock::new(Vec::new()), make, bounds }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn label_text(names: &[&str], values: &[String], le: Option<&str>) -> String {
    let mut pairs: Vec<String> =
        names.iter().zip(values).map(|(n, v)| format!("{n}=\"{}\"", escape(v))).collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{le}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let h = Histogram::new(Arc::from(&[1.0, 2.0, 4.0][..]));
        assert_eq!(h.quantile(0.5), None);
        for v in [0.5, 1.5, 1.5, 3.0] {
            h.observe(v);
        }
        assert_eq!(h.quantile(0.25), Some(1.0));
        assert_eq!(h.quantile(0.5), Some(1.5));
        assert_eq!(h.quantile(1.0), Some(4.0));
        h.observe(10.0);
        assert_eq!(h.quantile(1.0), None, "past the last bound");
    }

    #[test]
    fn renders_the_text_exposition_format() {
        let registry = Registry::default();
        let puts = registry.counter("edgekv_puts_total", "Puts.", &["status"]);
        puts.with(&["200"]).add(3);
        puts.with(&["413"]).inc();
        registry.gauge("edgekv_depth", "Depth.", &[]).with(&[]).set(-2);
        let lag = registry.histogram("edgekv_lag_seconds", "Lag.", &["peer"], &[0.1, 1.0]);
        lag.with(&["we\"ur"]).observe(0.05);
        lag.with(&["we\"ur"]).observe(0.5);
        lag.with(&["we\"ur"]).observe(7.0);
        let text = registry.render();
        for line in [
            "# TYPE edgekv_puts_total counter",
            "edgekv_puts_total{status=\"200\"} 3",
            "edgekv_puts_total{status=\"413\"} 1",
            "edgekv_depth -2",
            "edgekv_lag_seconds_bucket{peer=\"we\\\"ur\",le=\"0.1\"} 1",
            "edgekv_lag_seconds_bucket{peer=\"we\\\"ur\",le=\"1\"} 2",
            "edgekv_lag_seconds_bucket{peer=\"we\\\"ur\",le=\"+Inf\"} 3",
            "edgekv_lag_seconds_sum{peer=\"we\\\"ur\"} 7.55",
            "edgekv_lag_seconds_count{peer=\"we\\\"ur\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}
