//! Charts as inline SVG strings, because the report must be one self-contained HTML file: no
//! JavaScript, no network, no web fonts, nothing to install for whoever opens it.
//!
//! The data are whatever a run produced, so every renderer takes NaN, infinities, empty inputs
//! and log axes over zeros in its stride and still returns a well-formed `<svg>` element, at
//! worst one that says "no data". Ids inside the SVG (clip paths, arrowheads) come from a
//! process-wide counter, because SVG ids are global to the page that holds several charts.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Okabe–Ito colours without the yellow (too faint on white): they stay apart under the common
/// colour-vision deficiencies, so series need no second cue to be told apart.
const PALETTE: [&str; 7] =
    ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000"];
const GRID: &str = r##" stroke="#e6e6e6""##;
const MUTED: &str = "#777777";
const MIDDLE: &str = r#" text-anchor="middle""#;
const END: &str = r#" text-anchor="end""#;
const MIDDLE_MUTED: &str = r##" text-anchor="middle" fill="#777777""##;
const NO_DATA: &str = r##" text-anchor="middle" font-size="14" fill="#777777""##;
const HALO: &str = r##" paint-order="stroke" stroke="#ffffff" stroke-width="3""##;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Straight segments between consecutive points.
    Line,
    /// As `Line`, dashed, to set a model or a bound apart from what was measured.
    Dashed,
    /// Horizontal then vertical: a value holds until the next point, as in a CDF.
    Step,
    /// Unconnected dots, for samples whose order means nothing.
    Points,
}

/// One named series of a [`Chart`].
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Shown in the legend.
    pub name: String,
    /// `(x, y)`, drawn in the given order; a non-finite point breaks the line rather than
    /// bridging the gap.
    pub points: Vec<(f64, f64)>,
    /// How it is drawn.
    pub style: Style,
    /// Optional error bars: `(low, high)` y per point; ignored unless as long as `points`, since
    /// a shorter list cannot say which point each bar belongs to.
    pub errors: Option<Vec<(f64, f64)>>,
}

/// One axis of a [`Chart`].
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// What is measured, with its unit, e.g. "ms after the write was acknowledged".
    pub label: String,
    /// Log10 scale, for latencies spanning decades; non-positive values cannot be placed on it and
    /// are left out.
    pub log: bool,
    /// Fixed lower bound, to compare charts side by side; else taken from the data, padded a little.
    pub min: Option<f64>,
    /// Fixed upper bound; data beyond the bounds are clipped to the plot area.
    pub max: Option<f64>,
}

/// A shaded x-range, e.g. a fault window, labelled at its top.
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    /// Where it starts, in x units.
    pub from: f64,
    /// Where it ends.
    pub to: f64,
    /// Printed at its top left.
    pub label: String,
}

/// A vertical line at x, labelled, e.g. "heal".
#[derive(Clone, Debug, PartialEq)]
pub struct Marker {
    /// Where, in x units.
    pub at: f64,
    /// Printed beside its top.
    pub label: String,
}

/// An x/y chart of series, with fault windows and events behind them.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// Printed above the plot.
    pub title: String,
    /// The horizontal axis.
    pub x: Axis,
    /// The vertical axis.
    pub y: Axis,
    /// Drawn in order, each in the next palette colour; a legend appears for two or more, or for
    /// one with a name.
    pub series: Vec<Series>,
    /// Drawn behind everything else.
    pub bands: Vec<Band>,
    /// Drawn behind the series.
    pub markers: Vec<Marker>,
    /// Pixels; the SVG scales down to its container, this sets its proportions and text size.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

impl Chart {
    /// A chart with these titles, 720x360, no series yet.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Chart {
        let axis = |label: String| Axis { label, log: false, min: None, max: None };
        Chart {
            title: title.into(),
            x: axis(x_label.into()),
            y: axis(y_label.into()),
            series: Vec::new(),
            bands: Vec::new(),
            markers: Vec::new(),
            width: 720,
            height: 360,
        }
    }

    /// A complete `<svg>…</svg>` element.
    pub fn render(&self) -> String {
        let named = self.series.len() >= 2 || self.series.iter().any(|s| !s.name.is_empty());
        let legend: Vec<_> = if named {
            let swatch = |s: Style| match s {
                Style::Line | Style::Step => Swatch::Line,
                Style::Dashed => Swatch::Dashed,
                Style::Points => Swatch::Dot,
            };
            self.series
                .iter()
                .enumerate()
                .map(|(i, s)| (s.name.as_str(), colour(i), swatch(s.style)))
                .collect()
        } else {
            Vec::new()
        };
        let mut plot = Plot::new(
            (self.width, self.height),
            &self.title,
            (&self.x.label, &self.y.label),
            &legend,
        );
        let (xl, yl) = (self.x.log, self.y.log);
        let placeable = |&&(x, y): &&(f64, f64)| usable(x, xl) && usable(y, yl);
        let xs_data =
            self.series.iter().flat_map(|s| s.points.iter().filter(placeable).map(|p| p.0));
        let ys_data = self.series.iter().flat_map(|s| {
            let errors = s.errors.iter().filter(|e| e.len() == s.points.len()).flatten().copied();
            let whiskers = s
                .points
                .iter()
                .zip(errors)
                .filter(|(p, _)| placeable(p))
                .flat_map(|(_, e)| [e.0, e.1]);
            s.points.iter().filter(placeable).map(|p| p.1).chain(whiskers)
        });
        let a = plot.area;
        let (xlo, xhi) = bounds(xl, self.x.min, self.x.max, xs_data);
        let (ylo, yhi) = bounds(yl, self.y.min, self.y.max, ys_data);
        let xs = Scale { lo: xlo, hi: xhi, log: xl, from: a.left, to: a.right };
        let ys = Scale { lo: ylo, hi: yhi, log: yl, from: a.bottom, to: a.top };
        let at = |&(x, y): &(f64, f64)| xs.pos(x).zip(ys.pos(y));
        if !self.series.iter().flat_map(|s| &s.points).any(|p| at(p).is_some()) {
            return plot.no_data();
        }
        plot.x_axis(&xs);
        plot.y_axis(&ys);
        plot.begin_clip();
        let out = &mut plot.out;
        for band in &self.bands {
            // A log axis has no zero: a band from zero starts at the left edge.
            let from = if xl && band.from <= 0.0 { xlo } else { band.from };
            let (Some(p), Some(q)) = (xs.pos(from), xs.pos(band.to)) else { continue };
            let (p, q) = (p.min(q).max(a.left), p.max(q).min(a.right));
            if q < p {
                continue;
            }
            rect(
                out,
                (p, a.top, q - p, a.bottom - a.top),
                r##" fill="#9e9e9e" fill-opacity="0.2""##,
                "",
            );
            text(
                out,
                (p + 4.0, a.top + 14.0),
                &format!(r#" font-size="11" fill="{MUTED}""#),
                &band.label,
            );
        }
        for m in &self.markers {
            let Some(x) = xs.pos(m.at).filter(|x| (a.left..=a.right).contains(x)) else { continue };
            line(out, (x, a.top), (x, a.bottom), r##" stroke="#444444" stroke-dasharray="4 3""##);
            let (lx, anchor) =
                if x > a.right - 80.0 { (x - 4.0, "end") } else { (x + 4.0, "start") };
            text(
                out,
                (lx, a.top + 28.0),
                &format!(r#" font-size="11" text-anchor="{anchor}"{HALO}"#),
                &m.label,
            );
        }
        for (i, s) in self.series.iter().enumerate() {
            let c = colour(i);
            let mapped: Vec<_> = s.points.iter().map(at).collect();
            if s.style == Style::Points {
                for &p in mapped.iter().flatten() {
                    circle(out, p, 3.0, &format!(r#" fill="{c}""#));
                }
            } else {
                let dash = if s.style == Style::Dashed { r#" stroke-dasharray="6 4""# } else { "" };
                for run in mapped.split(Option::is_none) {
                    let run: Vec<(f64, f64)> = run.iter().flatten().copied().collect();
                    let [(x0, y0), rest @ ..] = run.as_slice() else { continue };
                    if rest.is_empty() {
                        // A lone point between gaps would draw nothing as a path.
                        circle(out, (*x0, *y0), 2.5, &format!(r#" fill="{c}""#));
                        continue;
                    }
                    let mut d = format!("M{x0:.1} {y0:.1}");
                    for (x, y) in rest {
                        let _ = match s.style {
                            Style::Step => write!(d, "H{x:.1}V{y:.1}"),
                            _ => write!(d, "L{x:.1} {y:.1}"),
                        };
                    }
                    let _ = write!(
                        out,
                        r#"<path class="series" d="{d}" fill="none" stroke="{c}" stroke-width="2" stroke-linejoin="round"{dash}/>"#
                    );
                }
            }
            let errors = s.errors.iter().filter(|e| e.len() == s.points.len()).flatten();
            let mut d = String::new();
            for (p, &(lo, hi)) in mapped.iter().zip(errors) {
                if let (Some((x, _)), Some(lo), Some(hi)) = (p, ys.pos(lo), ys.pos(hi)) {
                    let l = x - 3.0;
                    let _ = write!(d, "M{x:.1} {lo:.1}V{hi:.1}M{l:.1} {lo:.1}h6M{l:.1} {hi:.1}h6");
                }
            }
            if !d.is_empty() {
                let _ = write!(
                    out,
                    r#"<path class="errors" d="{d}" fill="none" stroke="{c}" stroke-width="1"/>"#
                );
            }
        }
        plot.out.push_str("</g>");
        plot.finish()
    }
}

/// A matrix of values, e.g. p99 replication lag by origin (rows) and destination (columns).
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    /// Printed above the matrix.
    pub title: String,
    /// What the rows are, e.g. "origin region".
    pub row_label: String,
    /// What the columns are, e.g. "destination region".
    pub col_label: String,
    /// Row names, top to bottom.
    pub rows: Vec<String>,
    /// Column names, left to right.
    pub cols: Vec<String>,
    /// `cells[row][col]`; `None` (or a missing or non-finite cell) means no data, drawn grey
    /// with "–", so that a pair never measured does not pass for a zero.
    pub cells: Vec<Vec<Option<f64>>>,
    /// Appended to the value printed in each cell, e.g. "ms".
    pub unit: String,
}

impl Heatmap {
    /// A complete `<svg>…</svg>` element, sized to fit the matrix.
    pub fn render(&self) -> String {
        let value = |r: usize, c: usize| {
            self.cells
                .get(r)
                .and_then(|row| row.get(c))
                .copied()
                .flatten()
                .filter(|v| v.is_finite())
        };
        let (nr, nc) = (self.rows.len(), self.cols.len());
        let cells = || (0..nr).flat_map(move |r| (0..nc).map(move |c| (r, c)));
        let values: Vec<f64> = cells().filter_map(|(r, c)| value(r, c)).collect();
        // Shades start at zero (or at the least value, if negative), so that a shade reads as a
        // fraction of the worst pair.
        let lo = values.iter().copied().fold(0.0, f64::min);
        let hi = values.iter().copied().fold(lo, f64::max);
        let shade = |v: f64| if hi > lo { (v - lo) / (hi - lo) } else { 0.0 };
        let label = |v: f64| format!("{}{}", fmt_num(v, 3), self.unit);
        let widest = |it: &mut dyn Iterator<Item = f64>| it.fold(0.0, f64::max);
        let cell_w = widest(&mut self.cols.iter().map(|s| text_width(s, 12.0)))
            .max(widest(&mut values.iter().map(|&v| text_width(&label(v), 12.0))))
            .max(44.0)
            + 12.0;
        let cell_h = 28.0;
        let left = 40.0 + widest(&mut self.rows.iter().map(|s| text_width(s, 12.0)));
        let top = 72.0;
        let (grid_w, grid_h) = (cell_w * nc as f64, cell_h * nr as f64);
        let w = (left + grid_w + 20.0).max(text_width(&self.title, 14.0) + 40.0).max(240.0).ceil();
        if nr == 0 || nc == 0 {
            let mut out = open_svg(w, 120.0, &self.title);
            text(&mut out, (w / 2.0, 70.0), NO_DATA, "no data");
            out.push_str("</svg>");
            return out;
        }
        let h = (top + grid_h + 50.0).ceil();
        let mut out = open_svg(w, h, &self.title);
        text(&mut out, (left + grid_w / 2.0, 42.0), MIDDLE_MUTED, &self.col_label);
        let (lx, ly) = (16.0, top + grid_h / 2.0);
        let rotated =
            format!(r#" text-anchor="middle" fill="{MUTED}" transform="rotate(-90 {lx} {ly:.1})""#);
        text(&mut out, (lx, ly), &rotated, &self.row_label);
        for (c, name) in self.cols.iter().enumerate() {
            text(&mut out, (left + cell_w * (c as f64 + 0.5), top - 8.0), MIDDLE, name);
        }
        for (r, name) in self.rows.iter().enumerate() {
            text(&mut out, (left - 6.0, top + cell_h * (r as f64 + 0.5) + 4.0), END, name);
        }
        for (r, c) in cells() {
            let (x, y) = (left + cell_w * c as f64, top + cell_h * r as f64);
            let names = format!(
                "{} → {}",
                self.rows.get(r).map_or("", String::as_str),
                self.cols.get(c).map_or("", String::as_str)
            );
            let (fill, ink, shown) = match value(r, c) {
                Some(v) => {
                    let t = shade(v);
                    (ramp(t), if t > 0.6 { "#ffffff" } else { "#222222" }, label(v))
                }
                None => ("#e0e0e0".to_string(), MUTED, "–".to_string()),
            };
            rect(
                &mut out,
                (x, y, cell_w, cell_h),
                &format!(r##" fill="{fill}" stroke="#ffffff""##),
                &format!("{names}: {shown}"),
            );
            text(
                &mut out,
                (x + cell_w / 2.0, y + cell_h / 2.0 + 4.0),
                &format!(r#" text-anchor="middle" fill="{ink}""#),
                &shown,
            );
        }
        if !values.is_empty() {
            let y = top + grid_h + 18.0;
            let low = label(lo);
            text(&mut out, (left, y + 10.0), "", &low);
            let x0 = left + text_width(&low, 12.0) + 6.0;
            for k in 0..8 {
                let fill = ramp(f64::from(k) / 7.0);
                rect(
                    &mut out,
                    (x0 + 14.0 * f64::from(k), y, 14.0, 12.0),
                    &format!(r#" fill="{fill}""#),
                    "",
                );
            }
            text(&mut out, (x0 + 118.0, y + 10.0), "", &label(hi));
        }
        out.push_str("</svg>");
        out
    }
}

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
        let bw = (slot * 0.5).min(48.0);
        let out = &mut plot.out;
        for (i, (vals, label)) in sorted.iter().zip(&labels).enumerate() {
            let q = [0.0, 0.25, 0.5, 0.75, 1.0].map(|p| quantile(vals, p));
            let [Some(min), Some(p25), Some(med), Some(p75), Some(max)] = q.map(|v| ys.pos(v))
            else {
                continue;
            };
            let (c, x) = (colour(i), a.left + slot * (i as f64 + 0.5));
            let stroke = format!(r#" stroke="{c}" stroke-width="1.5""#);
            line(out, (x, min), (x, p25), &stroke);
            line(out, (x, p75), (x, max), &stroke);
            for y in [min, max] {
                line(out, (x - bw / 4.0, y), (x + bw / 4.0, y), &stroke);
            }
            let [q0, q1, q2, q3, q4] = q.map(|v| fmt_num(v, 4));
            let tip = format!(
                "{label}: n={}, min {q0}, p25 {q1}, median {q2}, p75 {q3}, max {q4}",
                vals.len()
            );
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
        plot.finish()
    }
}

/// A space-time (Lamport) diagram: one vertical lane per region, time flowing downwards,
/// messages as arrows between lanes, events as dots with labels. Used to show how one key's
/// writes travelled between regions.
#[derive(Clone, Debug, PartialEq)]
pub struct SpaceTime {
    /// Printed above the diagram.
    pub title: String,
    /// Lane names, left to right.
    pub lanes: Vec<String>,
    /// The time axis's label, e.g. "ms since the run started".
    pub time_label: String,
    /// `(lane index, time, label)`; an unknown lane or a non-finite time is skipped.
    pub events: Vec<(usize, f64, String)>,
    /// `(from lane, send time, to lane, arrive time, label)`, each drawn as one arrow.
    pub messages: Vec<(usize, f64, usize, f64, String)>,
}

impl SpaceTime {
    /// A complete `<svg>…</svg>` element, 720 wide and taller the more there is to show.
    pub fn render(&self) -> String {
        let n = self.lanes.len();
        let events: Vec<_> = self.events.iter().filter(|e| e.0 < n && e.1.is_finite()).collect();
        let messages: Vec<_> = self
            .messages
            .iter()
            .filter(|m| m.0 < n && m.2 < n && m.1.is_finite() && m.3.is_finite())
            .collect();
        let height = u32::try_from((240 + 14 * (events.len() + messages.len())).clamp(360, 800))
            .unwrap_or(800);
        let mut plot = Plot::new((720, height), &self.title, ("", &self.time_label), &[]);
        if events.is_empty() && messages.is_empty() {
            return plot.no_data();
        }
        plot.area.top += 22.0;
        let a = plot.area;
        let times = events.iter().map(|e| e.1).chain(messages.iter().flat_map(|m| [m.1, m.3]));
        let (lo, hi) = bounds(false, None, None, times);
        let ts = Scale { lo, hi, log: false, from: a.top, to: a.bottom };
        plot.y_axis(&ts);
        let id = fresh_id();
        let out = &mut plot.out;
        out.push_str("<defs>");
        for (k, c) in PALETTE.iter().enumerate().take(n) {
            let _ = write!(
                out,
                r#"<marker id="{id}-arrow{k}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0 0L10 5L0 10z" fill="{c}"/></marker>"#
            );
        }
        out.push_str("</defs>");
        let lane_w = (a.right - a.left) / n.max(1) as f64;
        let lane_x = |i: usize| a.left + lane_w * (i as f64 + 0.5);
        for (i, name) in self.lanes.iter().enumerate() {
            let x = lane_x(i);
            line(out, (x, a.top), (x, a.bottom), r##" stroke="#999999" stroke-width="1.5""##);
            text(out, (x, a.top - 8.0), r#" text-anchor="middle" font-weight="bold""#, name);
        }
        for &(from, sent, to, arrived, ref label) in messages {
            let (Some(y1), Some(y2)) = (ts.pos(sent), ts.pos(arrived)) else { continue };
            let (x1, x2) = (lane_x(from), lane_x(to));
            let (c, k) = (colour(from), from % PALETTE.len());
            let attrs =
                format!(r#" stroke="{c}" stroke-width="1.5" marker-end="url(#{id}-arrow{k})""#);
            line(out, (x1, y1), (x2, y2), &attrs);
            // Near the sender, not midway: a message that skips a lane would be labelled on it.
            let at = (x1 + (x2 - x1) * 0.3, y1 + (y2 - y1) * 0.3 - 3.0);
            text(out, at, &format!(r#" font-size="10" text-anchor="middle"{HALO}"#), label);
        }
        for &(lane, t, ref label) in events {
            let Some(y) = ts.pos(t) else { continue };
            let x = lane_x(lane);
            circle(out, (x, y), 4.0, &format!(r#" fill="{}""#, colour(lane)));
            // Labels run away from the nearer edge, so the last lane's stay inside the frame.
            let (dx, anchor) =
                if lane + 1 == n && n > 1 { (-7.0, r#" text-anchor="end""#) } else { (7.0, "") };
            text(out, (x + dx, y + 4.0), &format!(r#" font-size="11"{anchor}{HALO}"#), label);
        }
        plot.finish()
    }
}

/// Escapes text for SVG/HTML text and attribute values (&, <, >, ", '). Control characters that
/// XML forbids become U+FFFD, so that a stray byte in a key cannot break the whole report.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

fn fresh_id() -> String {
    format!("ekv-svg-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

fn usable(v: f64, log: bool) -> bool {
    v.is_finite() && (!log || v > 0.0)
}

/// No font metrics without a font: an average glyph is about 0.6 em wide in sans-serif.
fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.6
}

/// Maps values on one axis to pixels; `from` is where `lo` lands, so a y axis runs upwards.
#[derive(Clone, Copy, Debug)]
struct Scale {
    lo: f64,
    hi: f64,
    log: bool,
    from: f64,
    to: f64,
}

impl Scale {
    fn pos(&self, v: f64) -> Option<f64> {
        if !usable(v, self.log) {
            return None;
        }
        let f = |v: f64| if self.log { v.log10() } else { v };
        let (a, b) = (f(self.lo), f(self.hi));
        let t = if b > a { (f(v) - a) / (b - a) } else { 0.5 };
        let p = self.from + t * (self.to - self.from);
        // Far-off points only need to leave the plot in the right direction; bounding them
        // keeps coordinates short.
        p.is_finite().then(|| p.clamp(-1e5, 1e5))
    }
}

/// Axis bounds: the caller's where given, else the data's widened by 5% so that extreme points
/// clear the frame, without crossing zero (lags and counts are never negative). A zero range is
/// widened to have a middle, and a log axis spans at least two powers of ten, so that both have
/// ticks.
fn bounds(
    log: bool,
    min: Option<f64>,
    max: Option<f64>,
    data: impl IntoIterator<Item = f64>,
) -> (f64, f64) {
    let fallback = if log { (1.0, 10.0) } else { (0.0, 1.0) };
    let to = |v: f64| if log { v.log10() } else { v };
    let back = |v: f64| if log { 10f64.powf(v) } else { v };
    let (fmin, fmax) = match (min.filter(|v| usable(*v, log)), max.filter(|v| usable(*v, log))) {
        (Some(a), Some(b)) if a > b => (Some(b), Some(a)),
        fixed => fixed,
    };
    let (dlo, dhi) = data
        .into_iter()
        .filter(|v| usable(*v, log))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if dlo > dhi && fmin.is_none() && fmax.is_none() {
        return fallback;
    }
    let (mut lo, mut hi) =
        if dlo <= dhi { (to(dlo), to(dhi)) } else { (to(fallback.0), to(fallback.1)) };
    if let Some(v) = fmin {
        lo = to(v);
        hi = hi.max(lo);
    }
    if let Some(v) = fmax {
        hi = to(v);
        lo = lo.min(hi);
    }
    if hi <= lo {
        let d = if log || lo == 0.0 { 0.5 } else { lo.abs() * 0.1 };
        match (fmin.is_some(), fmax.is_some()) {
            (true, false) => hi = lo + 2.0 * d,
            (false, true) => lo = hi - 2.0 * d,
            _ => (lo, hi) = (lo - d, hi + d),
        }
    }
    let pad = (hi - lo) * 0.05;
    if fmin.is_none() {
        lo = if !log && lo >= 0.0 { (lo - pad).max(0.0) } else { lo - pad };
    }
    if fmax.is_none() {
        hi = if !log && hi <= 0.0 { (hi + pad).min(0.0) } else { hi + pad };
    }
    if log && hi.floor() - lo.ceil() < 1.0 {
        if fmin.is_none() {
            lo = lo.floor();
        }
        if fmax.is_none() {
            hi = hi.ceil();
        }
    }
    // Padding can overflow at the edge of f64; the largest finite bounds still place the rest.
    let (lo, hi) = (back(lo).max(-f64::MAX), back(hi).min(f64::MAX));
    if lo.is_finite() && hi.is_finite() && hi > lo && (!log || lo > 0.0) {
        (lo, hi)
    } else {
        fallback
    }
}

/// A step of 1, 2 or 5 × 10^k near `raw`: the steps people count in.
fn nice_step(raw: f64) -> f64 {
    let p = 10f64.powf(raw.log10().floor());
    let f = raw / p;
    p * if f < 1.5 {
        1.0
    } else if f < 3.0 {
        2.0
    } else if f < 7.0 {
        5.0
    } else {
        10.0
    }
}

/// Tick values within `lo..=hi`: four to nine nice steps, or powers of ten on a log axis (every
/// few when there are many); the bounds themselves when nothing nicer fits.
fn ticks(lo: f64, hi: f64, log: bool) -> Vec<f64> {
    let mut out = Vec::new();
    if log {
        let (a, b) = (lo.log10().ceil(), hi.log10().floor());
        let every = ((b - a) / 8.0).ceil().max(1.0);
        let mut e = a;
        while e <= b && out.len() < 64 {
            out.push(10f64.powf(e));
            e += every;
        }
    } else {
        let step = nice_step((hi - lo) / 6.0);
        if step.is_finite() && step > 0.0 {
            let mut k = (lo / step - 1e-9).ceil();
            while k * step <= hi + step * 1e-9 && out.len() < 64 {
                out.push(k * step);
                k += 1.0;
            }
        }
    }
    if out.is_empty() {
        out.extend([lo, hi].into_iter().filter(|v| v.is_finite()));
    }
    out
}

/// At most `sig` significant digits and no trailing zeros, so that 0.1 + 0.2 reads "0.3";
/// exponent notation outside [0.001, 1e6), where more digits stop helping.
fn fmt_num(v: f64, sig: usize) -> String {
    fn trim(s: &str) -> &str {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.')
        } else {
            s
        }
    }
    if !v.is_finite() {
        return "–".to_string();
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let prec = sig.max(1) - 1;
    let mag = v.abs().log10().floor();
    let s = if (-3.0..6.0).contains(&mag) {
        let decimals = (prec as f64 - mag).max(0.0) as usize;
        trim(&format!("{v:.decimals$}")).to_string()
    } else {
        let s = format!("{v:.prec$e}");
        match s.split_once('e') {
            Some((m, e)) => format!("{}e{e}", trim(m)),
            None => s,
        }
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s
    }
}

/// Sequential light-to-dark blue (ColorBrewer "Blues" ends and middle): ordered by lightness, so
/// the order survives greyscale printing and colour-vision deficiencies.
fn ramp(t: f64) -> String {
    const STOPS: [[f64; 3]; 3] = [[247.0, 251.0, 255.0], [107.0, 174.0, 214.0], [8.0, 48.0, 107.0]];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) * 2.0 } else { 0.0 };
    let (a, b, f) = if t <= 1.0 { (STOPS[0], STOPS[1], t) } else { (STOPS[1], STOPS[2], t - 1.0) };
    let [r, g, bl] = [0, 1, 2].map(|i| (a[i] + (b[i] - a[i]) * f).round().clamp(0.0, 255.0) as u8);
    format!("#{r:02x}{g:02x}{bl:02x}")
}

/// Linear interpolation between order statistics; `sorted` must be sorted.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * sorted.len().saturating_sub(1) as f64;
    let i = pos.floor() as usize;
    let a = sorted.get(i).copied().unwrap_or(f64::NAN);
    let b = sorted.get(i + 1).copied().unwrap_or(a);
    a + (b - a) * pos.fract()
}

fn open_svg(w: f64, h: f64, title: &str) -> String {
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" style="max-width:100%;height:auto" font-family="sans-serif" font-size="12" fill="#333333" role="img"><title>{}</title><rect width="{w}" height="{h}" fill="#ffffff"/>"##,
        escape(title)
    );
    text(
        &mut out,
        (w / 2.0, 22.0),
        r#" text-anchor="middle" font-size="14" font-weight="bold""#,
        title,
    );
    out
}

fn text(out: &mut String, (x, y): (f64, f64), attrs: &str, content: &str) {
    let _ = write!(out, r#"<text x="{x:.1}" y="{y:.1}"{attrs}>{}</text>"#, escape(content));
}

fn line(out: &mut String, (x1, y1): (f64, f64), (x2, y2): (f64, f64), attrs: &str) {
    let _ = write!(out, r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}"{attrs}/>"#);
}

/// A rectangle, with a hover tooltip unless `tip` is empty (a native one: no script needed).
fn rect(out: &mut String, (x, y, w, h): (f64, f64, f64, f64), attrs: &str, tip: &str) {
    let (w, h) = (w.max(0.0), h.max(0.0));
    let _ = write!(out, r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}"{attrs}"#);
    if tip.is_empty() {
        out.push_str("/>");
    } else {
        let _ = write!(out, "><title>{}</title></rect>", escape(tip));
    }
}

fn circle(out: &mut String, (cx, cy): (f64, f64), r: f64, attrs: &str) {
    let _ = write!(out, r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="{r}"{attrs}/>"#);
}

/// What a legend entry shows.
#[derive(Clone, Copy, Debug)]
enum Swatch {
    Line,
    Dashed,
    Dot,
    Block,
}

/// The plot area, in pixels.
#[derive(Clone, Copy, Debug)]
struct Area {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

/// The parts Chart, Bars, BoxPlot and SpaceTime share (title, legend, axis labels, ticks, frame),
/// so that they look alike in one report.
struct Plot {
    out: String,
    area: Area,
}

impl Plot {
    /// Opens the picture; `labels` are the x and y axis labels, empty for none.
    fn new(
        size: (u32, u32),
        title: &str,
        labels: (&str, &str),
        legend: &[(&str, &str, Swatch)],
    ) -> Plot {
        let (w, h) = (f64::from(size.0.max(240)), f64::from(size.1.max(160)));
        let mut out = open_svg(w, h, title);
        let (left, right) = (70.0, w - 20.0);
        let (mut x, mut y) = (left, 42.0);
        for &(name, c, swatch) in legend {
            let item_w = 40.0 + text_width(name, 12.0);
            if x > left && x + item_w > right {
                (x, y) = (left, y + 18.0);
            }
            let stroke = format!(r#" stroke="{c}" stroke-width="2""#);
            match swatch {
                Swatch::Line => line(&mut out, (x, y - 4.0), (x + 18.0, y - 4.0), &stroke),
                Swatch::Dashed => line(
                    &mut out,
                    (x, y - 4.0),
                    (x + 18.0, y - 4.0),
                    &format!(r#"{stroke} stroke-dasharray="6 4""#),
                ),
                Swatch::Dot => {
                    circle(&mut out, (x + 9.0, y - 4.0), 3.5, &format!(r#" fill="{c}""#))
                }
                Swatch::Block => {
                    rect(&mut out, (x + 3.0, y - 10.0, 12.0, 12.0), &format!(r#" fill="{c}""#), "")
                }
            }
            text(&mut out, (x + 24.0, y), "", name);
            x += item_w;
        }
        let top = if legend.is_empty() { 34.0 } else { y + 14.0 };
        let area = Area { left, top, right, bottom: (h - 44.0).max(top + 20.0) };
        let (mx, my) = ((left + right) / 2.0, (area.top + area.bottom) / 2.0);
        if !labels.0.is_empty() {
            text(&mut out, (mx, h - 10.0), MIDDLE, labels.0);
        }
        if !labels.1.is_empty() {
            text(
                &mut out,
                (16.0, my),
                &format!(r#" text-anchor="middle" transform="rotate(-90 16 {my:.1})""#),
                labels.1,
            );
        }
        Plot { out, area }
    }

    fn x_axis(&mut self, s: &Scale) {
        let a = self.area;
        for t in ticks(s.lo, s.hi, s.log) {
            let Some(x) = s.pos(t) else { continue };
            line(&mut self.out, (x, a.top), (x, a.bottom), GRID);
            text(&mut self.out, (x, a.bottom + 16.0), MIDDLE, &fmt_num(t, 6));
        }
    }

    fn y_axis(&mut self, s: &Scale) {
        let a = self.area;
        for t in ticks(s.lo, s.hi, s.log) {
            let Some(y) = s.pos(t) else { continue };
            line(&mut self.out, (a.left, y), (a.right, y), GRID);
            text(&mut self.out, (a.left - 6.0, y + 4.0), END, &fmt_num(t, 6));
        }
    }

    /// Labels evenly spaced slots under the plot, slanted when they would overlap; returns the
    /// slot width.
    fn categories(&mut self, labels: &[String]) -> f64 {
        let a = self.area;
        let slot = (a.right - a.left) / labels.len().max(1) as f64;
        let crowded = labels.iter().any(|l| text_width(l, 12.0) > slot - 4.0);
        for (i, l) in labels.iter().enumerate() {
            let (x, y) = (a.left + slot * (i as f64 + 0.5), a.bottom + 16.0);
            let attrs = if crowded {
                format!(r#" text-anchor="end" transform="rotate(-30 {x:.1} {y:.1})""#)
            } else {
                MIDDLE.to_string()
            };
            text(&mut self.out, (x, y), &attrs, l);
        }
        slot
    }

    /// Opens a group clipped to the plot area, for data beyond fixed bounds; the caller closes it
    /// with `</g>`.
    fn begin_clip(&mut self) {
        let Area { left, top, right, bottom } = self.area;
        let (w, h) = ((right - left).max(0.0), (bottom - top).max(0.0));
        let id = fresh_id();
        let _ = write!(
            self.out,
            r#"<defs><clipPath id="{id}-clip"><rect x="{left:.1}" y="{top:.1}" width="{w:.1}" height="{h:.1}"/></clipPath></defs><g clip-path="url(#{id}-clip)">"#
        );
    }

    /// Says so in the middle of an empty frame, and closes the picture.
    fn no_data(mut self) -> String {
        let a = self.area;
        let middle = ((a.left + a.right) / 2.0, (a.top + a.bottom) / 2.0);
        text(&mut self.out, middle, NO_DATA, "no data");
        self.finish()
    }

    /// Draws the frame last, over the data's edges, and closes the picture.
    fn finish(mut self) -> String {
        let a = self.area;
        rect(
            &mut self.out,
            (a.left, a.top, a.right - a.left, a.bottom - a.top),
            r##" fill="none" stroke="#999999""##,
            "",
        );
        self.out.push_str("</svg>");
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks what a browser's XML parser would reject: unbalanced or crossed elements, unknown
    /// entities, raw `<`, `>` or `&` in text, unquoted attribute values, content after the root.
    fn assert_well_formed(svg: &str) {
        fn check_entities(s: &str) {
            for (i, _) in s.match_indices('&') {
                let rest = &s[i + 1..];
                let ok =
                    ["amp;", "lt;", "gt;", "quot;", "#39;"].iter().any(|e| rest.starts_with(e));
                assert!(ok, "bad entity at {:?}", &rest[..rest.len().min(10)]);
            }
        }
        let mut stack: Vec<&str> = Vec::new();
        let mut closed_root = false;
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let (content, tail) = rest.split_at(start);
            assert!(!content.contains('>'), "raw '>' in text {content:?}");
            check_entities(content);
            assert!(
                !stack.is_empty() || content.trim().is_empty(),
                "text outside the root: {content:?}"
            );
            let end = tail.find('>').expect("an unterminated tag");
            let tag = &tail[1..end];
            assert!(!tag.contains('<'), "'<' inside a tag: {tag:?}");
            assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes in {tag:?}");
            check_entities(tag);
            assert!(!closed_root, "an element after the root: {tag:?}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name), "crossed or stray close tag");
                closed_root = stack.is_empty();
            } else {
                let name = tag.split([' ', '/']).next().unwrap_or("");
                assert!(!name.is_empty(), "nameless tag {tag:?}");
                if !tag.ends_with('/') {
                    stack.push(name);
                } else if stack.is_empty() {
                    closed_root = true;
                }
            }
            rest = &tail[end + 1..];
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        assert!(closed_root && rest.trim().is_empty(), "no root, or trailing text {rest:?}");
        assert!(svg.starts_with("<svg "));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "a non-finite number leaked: {svg}");
    }

    fn series(name: &str, points: Vec<(f64, f64)>, style: Style) -> Series {
        Series { name: name.to_string(), points, style, errors: None }
    }

    fn approx(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-9 * y.abs().max(1.0))
    }

    /// The values of every `name="…"` attribute, in order.
    fn attrs<'a>(svg: &'a str, name: &str) -> Vec<&'a str> {
        let key = format!(" {name}=\"");
        svg.match_indices(&key)
            .filter_map(|(i, _)| svg[i + key.len()..].split('"').next())
            .collect()
    }

    #[test]
    fn escape_covers_markup_quotes_and_control_characters() {
        assert_eq!(
            escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("a\u{1}b\tc"), "a\u{fffd}b\tc");
    }

    #[test]
    fn scales_map_the_bounds_to_the_plot_edges() {
        let s = Scale { lo: -10.0, hi: 30.0, log: false, from: 300.0, to: 20.0 };
        assert_eq!(s.pos(-10.0), Some(300.0));
        assert_eq!(s.pos(30.0), Some(20.0));
        assert_eq!(s.pos(10.0), Some(160.0));
        assert_eq!(s.pos(f64::NAN), None);
        assert_eq!(s.pos(f64::INFINITY), None);
        let l = Scale { lo: 1.0, hi: 1000.0, log: true, from: 0.0, to: 300.0 };
        assert_eq!(l.pos(1.0), Some(0.0));
        assert!((l.pos(1000.0).unwrap_or(0.0) - 300.0).abs() < 1e-9);
        assert!((l.pos(10.0).unwrap_or(0.0) - 100.0).abs() < 1e-9);
        assert_eq!(l.pos(0.0), None);
        assert_eq!(l.pos(-5.0), None);
    }

    #[test]
    fn unit_range_gets_ticks_every_fifth() {
        let (lo, hi) = bounds(false, None, None, [0.0, 0.5, 1.0]);
        assert_eq!(lo, 0.0, "padding must not cross zero");
        assert!(hi > 1.0 && hi < 1.2);
        assert!(approx(&ticks(lo, hi, false), &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]));
        let labels: Vec<String> = ticks(lo, hi, false).into_iter().map(|t| fmt_num(t, 6)).collect();
        assert_eq!(labels, ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
    }

    #[test]
    fn thousands_get_round_ticks() {
        let (lo, hi) = bounds(false, None, None, [0.0, 7300.0]);
        assert_eq!(lo, 0.0);
        let expected: Vec<f64> = (0..=7).map(|k| f64::from(k) * 1000.0).collect();
        assert!(approx(&ticks(lo, hi, false), &expected), "{:?}", ticks(lo, hi, false));
    }

    #[test]
    fn a_zero_range_is_widened_around_the_value() {
        let (lo, hi) = bounds(false, None, None, [3.0, 3.0]);
        assert!(lo < 3.0 && hi > 3.0);
        let t = ticks(lo, hi, false);
        assert!(t.len() >= 3 && t.iter().any(|v| (v - 3.0).abs() < 1e-9), "{t:?}");
        let (lo, hi) = bounds(false, None, None, [0.0]);
        assert!(lo < 0.0 && hi > 0.0);
        let (lo, hi) = bounds(false, Some(5.0), Some(5.0), []);
        assert!(lo < hi);
    }

    #[test]
    fn log_ticks_are_powers_of_ten() {
        let (lo, hi) = bounds(true, None, None, [1.0, 20.0, 1e5, 0.0, -3.0]);
        assert!(lo < 1.0 && lo > 0.0 && hi > 1e5);
        assert!(approx(&ticks(lo, hi, true), &[1.0, 10.0, 100.0, 1e3, 1e4, 1e5]));
        // Less than a decade of data still gets two powers of ten to read it by.
        let (lo, hi) = bounds(true, None, None, [20.0, 50.0]);
        assert!(approx(&[lo, hi], &[10.0, 100.0]));
        // Nothing positive: a default decade rather than a panic or NaN.
        assert_eq!(bounds(true, None, None, [0.0, -1.0]), (1.0, 10.0));
        assert_eq!(ticks(1.0, 10.0, true).len(), 2);
    }

    #[test]
    fn fixed_bounds_are_kept_even_when_swapped() {
        assert_eq!(bounds(false, Some(0.0), Some(50.0), [-20.0, 80.0]), (0.0, 50.0));
        assert_eq!(bounds(false, Some(50.0), Some(0.0), []), (0.0, 50.0));
        let (lo, hi) = bounds(false, Some(10.0), None, [1.0, 5.0]);
        assert!(lo == 10.0 && hi > 10.0);
    }

    #[test]
    fn numbers_print_without_float_noise() {
        assert_eq!(fmt_num(0.1 + 0.2, 6), "0.3");
        assert_eq!(fmt_num(0.25, 6), "0.25");
        assert_eq!(fmt_num(1500.0, 6), "1500");
        assert_eq!(fmt_num(1.2e6, 6), "1.2e6");
        assert_eq!(fmt_num(3.0e-5, 6), "3e-5");
        assert_eq!(fmt_num(-0.0, 6), "0");
        assert_eq!(fmt_num(-2.5, 6), "-2.5");
        assert_eq!(fmt_num(123.456, 3), "123");
        assert_eq!(fmt_num(f64::NAN, 3), "–");
    }

    #[test]
    fn step_series_goes_horizontal_then_vertical() {
        let mut c = Chart::new("cdf", "ms", "fraction");
        (c.x.min, c.x.max, c.y.min, c.y.max) = (Some(0.0), Some(4.0), Some(0.0), Some(1.0));
        c.series.push(series(
            "lag",
            vec![(1.0, 1.0 / 3.0), (2.0, 2.0 / 3.0), (3.0, 1.0)],
            Style::Step,
        ));
        let svg = c.render();
        assert_well_formed(&svg);
        let paths: Vec<&str> = svg
            .split(r#"<path class="series" d=""#)
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .collect();
        assert_eq!(paths.len(), 1);
        let d = paths[0];
        assert_eq!(d.chars().filter(char::is_ascii_alphabetic).collect::<String>(), "MHVHV", "{d}");
        let n: Vec<f64> = d
            .split(|c: char| c.is_ascii_alphabetic() || c == ' ')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        let [x0, y0, x1, y1, x2, y2] = n[..] else { panic!("{n:?}") };
        assert!(x0 < x1 && x1 < x2 && (x1 - x0 - (x2 - x1)).abs() < 0.2, "{n:?}");
        assert!(y0 > y1 && y1 > y2 && (y0 - y1 - (y1 - y2)).abs() < 0.2, "{n:?}");
        assert!(svg.contains("clip-path=\"url(#"));
    }

    #[test]
    fn styles_legend_and_error_bars() {
        let mut c = Chart::new("t", "x", "y");
        let pts = vec![(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)];
        c.series.push(series("measured", pts.clone(), Style::Line));
        c.series.push(series("model", pts.clone(), Style::Dashed));
        c.series.push(Series {
            errors: Some(vec![(0.5, 1.5); 3]),
            ..series("samples", pts, Style::Points)
        });
        c.bands.push(Band { from: 0.5, to: 1.5, label: "partition".into() });
        c.bands.push(Band { from: 50.0, to: 60.0, label: "outside".into() });
        c.markers.push(Marker { at: 1.5, label: "heal".into() });
        c.markers.push(Marker { at: -40.0, label: "gone".into() });
        let svg = c.render();
        assert_well_formed(&svg);
        for name in ["measured", "model", "samples", "partition", "heal"] {
            assert!(svg.contains(&format!(">{name}<")), "{name} missing");
        }
        assert!(!svg.contains("outside") && !svg.contains("gone"));
        assert!(svg.contains(r#"stroke-dasharray="6 4""#));
        assert_eq!(svg.matches(r#"class="errors""#).count(), 1);
        assert_eq!(svg.matches(r#"<circle"#).count(), 3 + 1, "three points and a legend dot");
        assert!(svg.contains(PALETTE[0]) && svg.contains(PALETTE[1]) && svg.contains(PALETTE[2]));
        let mut one = Chart::new("t", "x", "y");
        one.series.push(series("", vec![(0.0, 1.0), (1.0, 2.0)], Style::Line));
        let svg = one.render();
        assert_eq!(svg.matches("<line").count(), svg.matches(GRID).count(), "no legend swatch");
    }

    #[test]
    fn titles_and_labels_are_escaped() {
        let mut c = Chart::new("p99 <&> \"lag\"", "x<1", "y & z");
        c.series.push(series("a<b", vec![(1.0, 1.0), (2.0, 4.0)], Style::Line));
        let svg = c.render();
        assert_well_formed(&svg);
        assert!(svg.contains("p99 &lt;&amp;&gt; &quot;lag&quot;"));
        assert!(!svg.contains("<&>") && !svg.contains("a<b"));
    }

    #[test]
    fn non_finite_and_unplaceable_points_are_skipped() {
        let mut c = Chart::new("t", "x", "y");
        c.y.log = true;
        let pts = vec![
            (0.0, 1.0),
            (f64::NAN, 5.0),
            (2.0, f64::INFINITY),
            (3.0, 0.0),
            (4.0, 10.0),
            (5.0, 100.0),
            (f64::MAX, 1e300),
        ];
        c.series.push(Series {
            errors: Some(vec![(f64::NAN, -1.0); 7]),
            ..series("s", pts, Style::Line)
        });
        c.bands.push(Band { from: f64::NEG_INFINITY, to: f64::NAN, label: "bad".into() });
        c.markers.push(Marker { at: f64::NAN, label: "bad".into() });
        let svg = c.render();
        assert_well_formed(&svg);
        assert!(!svg.contains("no data"));
        // The lone first point becomes a dot; the three after the gaps are one segment.
        assert_eq!(svg.matches(r#"class="series""#).count(), 1, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
    }

    #[test]
    fn empty_charts_say_no_data() {
        let svg = Chart::new("nothing", "x", "y").render();
        assert_well_formed(&svg);
        assert!(svg.contains(">no data<") && svg.contains(">x<") && svg.contains(">y<"));
        let mut log = Chart::new("log", "x", "y");
        log.x.log = true;
        log.series.push(series("s", vec![(0.0, 1.0), (-1.0, 2.0)], Style::Line));
        assert!(log.render().contains(">no data<"));
        let tiny = Chart { width: 0, height: 0, ..Chart::new("tiny", "", "") };
        assert_well_formed(&tiny.render());
    }

    #[test]
    fn heatmap_prints_values_and_a_dash_for_missing_cells() {
        let h = Heatmap {
            title: "p99 lag".into(),
            row_label: "origin region".into(),
            col_label: "destination region".into(),
            rows: vec!["wnam".into(), "weur".into()],
            cols: vec!["wnam".into(), "weur".into(), "apac".into()],
            cells: vec![vec![None, Some(120.4), Some(f64::NAN)], vec![Some(80.0)]],
            unit: "ms".into(),
        };
        let svg = h.render();
        assert_well_formed(&svg);
        assert!(svg.contains(">120ms<") && svg.contains(">80ms<"));
        assert_eq!(svg.matches(">–<").count(), 4, "None, NaN and two missing cells");
        assert!(svg.contains(">0ms<"), "the legend starts at zero");
        assert!(svg.contains(&ramp(1.0)) && svg.contains("origin region"));
        let empty = Heatmap { rows: vec![], ..h };
        assert!(empty.render().contains(">no data<"));
        assert_well_formed(&empty.render());
    }

    #[test]
    fn bars_and_boxes_draw_one_shape_per_value() {
        let b = Bars {
            title: "conflicts".into(),
            y_label: "writes".into(),
            categories: vec!["a".into(), "b".into()],
            sets: vec![("lww".into(), vec![3.0, f64::NAN, 9.0]), ("crdt".into(), vec![-1.0, 2.0])],
        };
        let svg = b.render();
        assert_well_formed(&svg);
        assert_eq!(svg.matches(r#"class="bar""#).count(), 3);
        assert!(svg.contains(">lww<") && svg.contains(">crdt<"));
        let none = Bars { sets: vec![], ..b };
        assert!(none.render().contains(">no data<"));

        let p = BoxPlot {
            title: "convergence".into(),
            y_label: "ms".into(),
            boxes: vec![
                ("partition".into(), vec![5.0, 1.0, 3.0, 2.0, 4.0]),
                ("empty".into(), vec![f64::NAN]),
            ],
        };
        let svg = p.render();
        assert_well_formed(&svg);
        assert_eq!(svg.matches(r#"class="box""#).count(), 1);
        assert!(svg.contains("median 3, p75 4, max 5"));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.5);
        assert!(BoxPlot { boxes: vec![], ..p }.render().contains(">no data<"));
    }

    #[test]
    fn space_time_draws_one_arrow_per_message() {
        let st = SpaceTime {
            title: "key k".into(),
            lanes: vec!["wnam".into(), "weur".into(), "apac".into()],
            time_label: "ms since the run started".into(),
            events: vec![
                (0, 10.0, "put v1".into()),
                (1, 95.0, "apply v1".into()),
                (7, 5.0, "unknown lane".into()),
            ],
            messages: vec![
                (0, 10.0, 1, 95.0, "v1".into()),
                (0, 10.0, 2, 180.0, "v1".into()),
                (1, 100.0, 2, f64::NAN, "lost".into()),
                (0, 1.0, 9, 2.0, "no lane".into()),
            ],
        };
        let svg = st.render();
        assert_well_formed(&svg);
        assert_eq!(svg.matches("marker-end=").count(), 2);
        assert!(
            svg.contains(">apply v1<") && !svg.contains("unknown lane") && !svg.contains("no lane")
        );
        let ids = attrs(&svg, "id");
        assert!(svg.contains(&format!("url(#{})", ids[0])));
        assert!(SpaceTime { events: vec![], messages: vec![], ..st }
            .render()
            .contains(">no data<"));
    }

    #[test]
    fn ids_differ_between_charts() {
        let mut c = Chart::new("same", "x", "y");
        c.series.push(series("", vec![(0.0, 0.0), (1.0, 1.0)], Style::Line));
        let (a, b) = (c.render(), c.render());
        let (ia, ib) = (attrs(&a, "id"), attrs(&b, "id"));
        assert_eq!((ia.len(), ib.len()), (1, 1));
        assert_ne!(ia, ib);
    }
}
