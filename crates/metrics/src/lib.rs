//! Metrics of a node on the Prometheus project's own client library, `prometheus-client`:
//! its registry, families, counters and gauges, and its OpenMetrics text encoding, which
//! Prometheus scrapes. What this crate adds is the shape the rest of EdgeKV uses and a cheap hot
//! path.
//!
//! - **One registry per region.** `edgekv cluster` runs several regions in one process, each
//!   with its own `/metrics`, so a process-global recorder would not do.
//! - **No allocation per update.** A library family looks a series up by an owned label set;
//!   [`Family::with`] keeps the handles it has made in a small list searched by the borrowed
//!   label values, so counting a request allocates nothing once its series exists (label sets
//!   here are small and bounded: status codes, peer regions, fault kinds).
//! - **Histograms that can answer quantiles.** The library's histogram keeps its buckets to
//!   itself; [`Histogram`] is our own atomics behind the library's encoding trait, so benchmarks
//!   and dashboards can read a quantile from the same series Prometheus scrapes.
//!
//! Names are given as they appear in the exposition: a counter registered as
//! `edgekv_http_requests_total` is that series (the library adds the `_total` suffix itself, so
//! it is taken off the registered name).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::family::MetricConstructor;
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Label values of one series, as name/value pairs (the library's label set).
type LabelSet = Vec<(String, String)>;

/// A monotonically increasing count.
#[derive(Clone, Debug, Default)]
pub struct Counter(prometheus_client::metrics::counter::Counter<u64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.inc();
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.inc_by(n);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

impl TypedMetric for Counter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for Counter {
    fn encode(&self, encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// A value that goes up and down.
#[derive(Clone, Debug, Default)]
pub struct Gauge(prometheus_client::metrics::gauge::Gauge<i64>);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.set(v);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.get()
    }
}

impl TypedMetric for Gauge {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for Gauge {
    fn encode(&self, encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// A distribution over fixed buckets (upper bounds, in the metric's unit).
#[derive(Clone, Debug)]
pub struct Histogram(Arc<HistogramInner>);

#[derive(Debug)]
struct HistogramInner {
    bounds: Arc<[f64]>,
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    /// Sum in millionths of the unit, so it can be an atomic integer.
    sum_micro: AtomicU64,
}

impl Histogram {
    fn new(bounds: Arc<[f64]>) -> Self {
        let buckets = (0..bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram(Arc::new(HistogramInner {
            bounds,
            buckets,
            count: AtomicU64::new(0),
            sum_micro: AtomicU64::new(0),
        }))
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let h = &self.0;
        let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
        if let Some(i) = h.bounds.iter().position(|b| v <= *b) {
            h.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        h.count.fetch_add(1, Ordering::Relaxed);
        h.sum_micro.fetch_add((v * 1e6) as u64, Ordering::Relaxed);
    }

    /// How many observations were recorded.
    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
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
        for (bound, bucket) in self.0.bounds.iter().zip(self.0.buckets.iter()) {
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

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let h = &self.0;
        let mut cumulative = 0;
        let mut buckets: Vec<(f64, u64)> = Vec::with_capacity(h.bounds.len() + 1);
        for (bound, bucket) in h.bounds.iter().zip(h.buckets.iter()) {
            cumulative += bucket.load(Ordering::Relaxed);
            buckets.push((*bound, bucket.load(Ordering::Relaxed)));
        }
        // The library expects per-bucket counts and adds them up; the +Inf bucket (its upper
        // bound is `f64::MAX`) holds what is past the last bound.
        let count = self.count();
        buckets.push((f64::MAX, count.saturating_sub(cumulative)));
        let sum = h.sum_micro.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Makes a family's series: a function that may capture (a histogram's bounds).
#[derive(Clone)]
struct Make<M>(Arc<dyn Fn() -> M + Send + Sync>);

impl<M> MetricConstructor<M> for Make<M> {
    fn new_metric(&self) -> M {
        (self.0)()
    }
}

/// A named family of series of one type, distinguished by label values.
pub struct Family<M: EncodeMetric + Clone> {
    name: &'static str,
    label_names: &'static [&'static str],
    inner: Series<M>,
    /// The handles made so far, searched by borrowed label values; see the crate docs.
    made: RwLock<Vec<(Vec<String>, M)>>,
}

/// A family's series in the library: a family of labelled series, or the one series of a
/// family without labels (registered as a plain metric, so it renders without `{}`).
enum Series<M> {
    Labelled(prometheus_client::metrics::family::Family<LabelSet, M, Make<M>>),
    Single(M),
}

impl<M: EncodeMetric + Clone> std::fmt::Debug for Family<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family").field("name", &self.name).finish_non_exhaustive()
    }
}

impl<M: EncodeMetric + Clone + 'static> Family<M> {
    /// The series for `labels` (one value per label name), created on first use.
    pub fn with(&self, labels: &[&str]) -> M {
        debug_assert_eq!(labels.len(), self.label_names.len(), "{}: label count", self.name);
        let family = match &self.inner {
            Series::Single(metric) => return metric.clone(),
            Series::Labelled(family) => family,
        };
        let matches = |key: &Vec<String>| key.iter().map(String::as_str).eq(labels.iter().copied());
        if let Some((_, m)) = self.made.read().iter().find(|(key, _)| matches(key)) {
            return m.clone();
        }
        let mut made = self.made.write();
        if let Some((_, m)) = made.iter().find(|(key, _)| matches(key)) {
            return m.clone();
        }
        let set: LabelSet = self
            .label_names
            .iter()
            .zip(labels)
            .map(|(n, v)| ((*n).to_owned(), escape(v)))
            .collect();
        let metric = family.get_or_create_owned(&set);
        made.push((labels.iter().map(|l| (*l).to_owned()).collect(), metric.clone()));
        metric
    }

    /// Removes every series (for gauges describing a set that changed, like active faults).
    pub fn clear(&self) {
        let mut made = self.made.write();
        if let Series::Labelled(family) = &self.inner {
            family.clear();
        }
        made.clear();
    }
}

/// A label value as the text format wants it: the library writes values as given, so a quote,
/// a backslash or a newline in one would break the exposition.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The metrics of one node, rendered by [`Registry::render`].
#[derive(Default)]
pub struct Registry(Mutex<prometheus_client::registry::Registry>);

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry")
    }
}

/// The content type of [`Registry::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Registry {
    fn register<M>(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        make: impl Fn() -> M + Send + Sync + 'static,
    ) -> Arc<Family<M>>
    where
        M: EncodeMetric + TypedMetric + Clone + std::fmt::Debug + Send + Sync + 'static,
    {
        // The library names a counter's series NAME_total itself, and ends the help with a
        // full stop of its own.
        let registered = name.strip_suffix("_total").unwrap_or(name);
        let help = help.strip_suffix('.').unwrap_or(help);
        let mut registry = self.0.lock();
        let inner = if labels.is_empty() {
            let metric = make();
            registry.register(registered, help, metric.clone());
            Series::Single(metric)
        } else {
            let make = Make(Arc::new(make) as Arc<dyn Fn() -> M + Send + Sync>);
            let family = prometheus_client::metrics::family::Family::new_with_constructor(make);
            registry.register(registered, help, family.clone());
            Series::Labelled(family)
        };
        Arc::new(Family { name, label_names: labels, inner, made: RwLock::new(Vec::new()) })
    }

    /// Registers a counter family.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Arc<Family<Counter>> {
        self.register(name, help, labels, Counter::default)
    }

    /// Registers a gauge family.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Arc<Family<Gauge>> {
        self.register(name, help, labels, Gauge::default)
    }

    /// Registers a histogram family with bucket upper bounds `bounds` (ascending).
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &[f64],
    ) -> Arc<Family<Histogram>> {
        let bounds: Arc<[f64]> = Arc::from(bounds);
        self.register(name, help, labels, move || Histogram::new(Arc::clone(&bounds)))
    }

    /// Every series in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.0.lock());
        out
    }
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

    /// The series keep their names and values; the descriptors are OpenMetrics' (a counter's
    /// TYPE line names the family without `_total`, and the text ends with `# EOF`).
    #[test]
    fn renders_the_openmetrics_text_format() {
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
            "# TYPE edgekv_puts counter",
            "edgekv_puts_total{status=\"200\"} 3",
            "edgekv_puts_total{status=\"413\"} 1",
            "edgekv_depth -2",
            "edgekv_lag_seconds_bucket{le=\"0.1\",peer=\"we\\\"ur\"} 1",
            "edgekv_lag_seconds_bucket{le=\"1.0\",peer=\"we\\\"ur\"} 2",
            "edgekv_lag_seconds_bucket{le=\"+Inf\",peer=\"we\\\"ur\"} 3",
            "edgekv_lag_seconds_sum{peer=\"we\\\"ur\"} 7.55",
            "edgekv_lag_seconds_count{peer=\"we\\\"ur\"} 3",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn a_series_is_made_once_and_cleared_on_demand() {
        let registry = Registry::default();
        let faults = registry.gauge("edgekv_faults", "Faults.", &["kind"]);
        faults.with(&["loss"]).set(2);
        assert_eq!(faults.with(&["loss"]).get(), 2, "the same series");
        faults.clear();
        assert_eq!(faults.with(&["loss"]).get(), 0);
        assert!(!registry.render().contains("kind=\"partition\""));
    }
}
