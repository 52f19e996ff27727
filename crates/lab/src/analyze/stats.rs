//! The statistics the measurements share: nearest-rank quantiles, Wilson intervals, the
//! Kolmogorov–Smirnov distance, CDF points, round bucket widths. Exact and reproducible, since
//! a report is compared with the one of a rerun.

use crate::summary::{Quantiles, RateWithInterval};

/// Points kept of each CDF for the plot.
const CDF_POINTS: usize = 200;
/// The Wilson interval's z for 95 %.
const Z95: f64 = 1.959_963_984_540_054;

/// Nearest-rank quantile of sorted samples: the smallest sample with at least a fraction `p` of
/// the samples at or below it (exact and reproducible, no interpolation).
pub(super) fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    // The epsilon keeps 0.9 × 10 from ranking as 10.000000000000002 → 11.
    let rank = ((p * n as f64) - 1e-9).ceil().max(1.0) as usize;
    sorted.get(rank.min(n) - 1).copied()
}

pub(super) fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

pub(super) fn ratio(hits: usize, n: usize) -> Option<f64> {
    (n > 0).then(|| hits as f64 / n as f64)
}

/// A fraction with its Wilson score interval at 95 %.
pub(super) fn wilson(hits: usize, n: usize) -> RateWithInterval {
    if n == 0 {
        return RateWithInterval { n, hits, rate: None, low: None, high: None };
    }
    let nf = n as f64;
    let p = hits as f64 / nf;
    let z2 = Z95 * Z95;
    let denominator = 1.0 + z2 / nf;
    let center = (p + z2 / (2.0 * nf)) / denominator;
    let half = Z95 * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt() / denominator;
    RateWithInterval {
        n,
        hits,
        rate: Some(p),
        low: Some((center - half).max(0.0)),
        high: Some((center + half).min(1.0)),
    }
}

/// Kolmogorov–Smirnov distance between two empirical distributions (sorted samples).
pub(super) fn ks_distance(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    while let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) {
        let at = x.min(y);
        while a.get(i).is_some_and(|&v| v <= at) {
            i += 1;
        }
        while b.get(j).is_some_and(|&v| v <= at) {
            j += 1;
        }
        d = d.max((i as f64 / na - j as f64 / nb).abs());
    }
    Some(d)
}

/// Root mean square of the quantile differences at p1..p99.
pub(super) fn quantile_rmse(measured: &[f64], predicted: &[f64]) -> Option<f64> {
    let mut sum = 0.0;
    for p in 1..=99 {
        let p = f64::from(p) / 100.0;
        let d = quantile(measured, p)? - quantile(predicted, p)?;
        sum += d * d;
    }
    Some((sum / 99.0).sqrt())
}

/// The CDF of sorted samples as step points `(value, P(X <= value))`, downsampled to about
/// [`CDF_POINTS`] with the tail kept.
pub(super) fn cdf_points(sorted: &[f64]) -> Vec<(f64, f64)> {
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let mut ranks: Vec<usize> = if n <= CDF_POINTS {
        (1..=n).collect()
    } else {
        let mut ranks: Vec<usize> =
            (1..=CDF_POINTS).map(|j| (j * n).div_ceil(CDF_POINTS)).collect();
        for tail in [0.001, 0.01, 0.99, 0.995, 0.999, 0.9999] {
            ranks.push(((tail * n as f64).ceil() as usize).clamp(1, n));
        }
        ranks.sort_unstable();
        ranks.dedup();
        ranks
    };
    ranks.retain(|&r| r >= 1 && r <= n);
    ranks.iter().filter_map(|&r| sorted.get(r - 1).map(|&v| (v, r as f64 / n as f64))).collect()
}

pub(super) fn sort(values: &mut [f64]) {
    values.sort_unstable_by(f64::total_cmp);
}

/// Rounds up to 1, 2 or 5 × a power of ten, so bucket edges read well on an axis.
pub(super) fn nice(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 || x.is_infinite() {
        return 1.0;
    }
    let base = 10f64.powf(x.log10().floor());
    for m in [1.0, 2.0, 5.0] {
        if m * base >= x * (1.0 - 1e-12) {
            return m * base;
        }
    }
    10.0 * base
}

pub(super) fn quantiles(mut values: Vec<f64>) -> Quantiles {
    sort(&mut values);
    Quantiles {
        count: values.len(),
        p50_ms: quantile(&values, 0.5),
        p90_ms: quantile(&values, 0.9),
        p99_ms: quantile(&values, 0.99),
        max_ms: values.last().copied(),
    }
}
