//! Grouped bars (rates per region) and box plots (convergence times per fault kind): values
//! over labelled slots.

use super::plot::{Plot, Swatch};
use super::scale::{bounds, fmt_num, quantile, Scale};
use super::{circle, colour, line, rect};

/// Grouped bars: one group per category, one bar per named set in each group.
#[derive(Clone, Debug, PartialEq)]
pub struct Bars {
    /// Printed above the plot.
    pub title: String,
    /// What the bars measure, with the unit.
    pub y_label: String,
    /// One group of bars each, labelled under the x axis.
    pub categories: Vec<String>,
    /// `(legend name, one value per category)`; values past the last category are ignored and
    /// non-finite ones leave a gap.
    pub sets: Vec<(String, Vec<f64>)>,
}

impl Bars {
    /// A complete `<svg>…</svg>` element, 720x360.
    pub fn render(&self) -> String {
        let named = self.sets.len() >= 2 || self.sets.iter().any(|(n, _)| !n.is_empty());
        let legend: Vec<_> = if named {
            self.sets
                .iter()
                .enumerate()
                .map(|(i, (n, _))| (n.as_str(), colour(i), Swatch::Block))
                .collect()
        } else {
            Vec::new()
        };
        let mut plot = Plot::new((720, 360), &self.title, ("", &self.y_label), &legend);
        let n = self.categories.len();
        let values = || {
            self.sets.iter().flat_map(|(_, v)| v.iter().take(n)).copied().filter(|v| v.is_finite())
        };
        if values().next().is_none() {
            return plot.no_data();
        }
        // Bars grow from zero, so zero is always on the axis.
        let (lo, hi) = bounds(false, None, None, values().chain([0.0]));
        let a = plot.area;
        let ys = Scale { lo, hi, log: false, from: a.bottom, to: a.top };
        plot.y_axis(&ys);
        let slot = plot.categories(&self.categories);
        let bar_w = slot * 0.8 / self.sets.len().max(1) as f64;
        let zero = ys.pos(0.0).unwrap_or(a.bottom);
        for (s, (name, vals)) in self.sets.iter().enumerate() {
            let fill = format!(r#" class="bar" fill="{}""#, colour(s));
            for ((c, &v), cat) in vals.iter().enumerate().zip(&self.categories) {
                let Some(y) = ys.pos(v) else { continue };
                let x = a.left + slot * (c as f64 + 0.1) + bar_w * s as f64;
                let tip = format!("{name} · {cat}: {}", fmt_num(v, 6));
                rect(&mut plot.out, (x, y.min(zero), bar_w, (y - zero).abs()), &fill, &tip);
            }
        }
        plot.finish()
    }
}

/// Box plots, one per label (e.g. convergence time after each heal, per fault).
#[derive(Clone, Debug, PartialEq)]
pub struct BoxPlot {
    /// Printed above the plot.
    pub title: String,
    /// What the values measure, with the unit.
    pub y_label: String,
    /// `(label, raw values)`; each draws min, p25, median, p75, max and the values themselves,
    /// since with a handful of heals the points say more than the box.
    pub boxes: Vec<(String, Vec<f64>)>,
}

impl BoxPlot {
    /// A complete `<svg>…</svg>` element, 720x360.
    pub fn render(&self) -> String {
        let mut plot = Plot::new((720, 360), &self.title, ("", &self.y_label), &[]);
        let sorted: Vec<Vec<f64>> = self
            .boxes
            .iter()
            .map(|(_, v)| {
                let mut v: Vec<f64> = v.iter().copied().filter(|v| v.is_finite()).collect();
                v.sort_by(f64::total_cmp);
                v
            })
            .collect();
        if sorted.iter().all(Vec::is_empty) {
            return plot.no_data();
        }
        let (lo, hi) = bounds(false, None, None, sorted.iter().flatten().copied());
        let a = plot.area;
        let ys = Scale { lo, hi, log: false, from: a.bottom, to: a.top };
        plot.y_axis(&ys);
        let labels: Vec<String> = self.boxes.iter().map(|(l, _)| l.clone()).collect();
        let slot = plot.categories(&labels);
        let width = (slot * 0.5).min(48.0);
        for (i, (vals, label)) in sorted.iter().zip(&labels).enumerate() {
            let x = a.left + slot * (i as f64 + 0.5);
            draw_box(&mut plot.out, (vals, label), colour(i), (x, width), &ys);
        }
        plot.finish()
    }
}

/// One box of sorted values centred on `x`: whiskers, the box, the median and every value.
fn draw_box(
    out: &mut String,
    (vals, label): (&[f64], &str),
    c: &str,
    (x, bw): (f64, f64),
    ys: &Scale,
) {
    let q = [0.0, 0.25, 0.5, 0.75, 1.0].map(|p| quantile(vals, p));
    let [Some(min), Some(p25), Some(med), Some(p75), Some(max)] = q.map(|v| ys.pos(v)) else {
        return;
    };
    let stroke = format!(r#" stroke="{c}" stroke-width="1.5""#);
    line(out, (x, min), (x, p25), &stroke);
    line(out, (x, p75), (x, max), &stroke);
    for y in [min, max] {
        line(out, (x - bw / 4.0, y), (x + bw / 4.0, y), &stroke);
    }
    let [q0, q1, q2, q3, q4] = q.map(|v| fmt_num(v, 4));
    let tip =
        format!("{label}: n={}, min {q0}, p25 {q1}, median {q2}, p75 {q3}, max {q4}", vals.len());
    let body = format!(r#" class="box" fill="{c}" fill-opacity="0.2"{stroke}"#);
    rect(out, (x - bw / 2.0, p75, bw, p25 - p75), &body, &tip);
    line(
        out,
        (x - bw / 2.0, med),
        (x + bw / 2.0, med),
        &format!(r#" stroke="{c}" stroke-width="3""#),
    );
    for (j, &v) in vals.iter().enumerate() {
        // A fixed spread, not a random one, so that the same data draw the same picture.
        let jitter = ((j * 7) % 11) as f64 / 10.0 - 0.5;
        if let Some(y) = ys.pos(v) {
            circle(
                out,
                (x + jitter * bw * 0.6, y),
                2.2,
                &format!(r#" fill="{c}" fill-opacity="0.6""#),
            );
        }
    }
}
