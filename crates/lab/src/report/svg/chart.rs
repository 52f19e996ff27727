//! The x/y chart: series as lines, steps or dots, with error bars, over shaded fault windows
//! and event markers.

use std::fmt::Write as _;

use super::plot::{Area, Plot, Swatch};
use super::scale::{bounds, Scale};
use super::{circle, colour, line, rect, text, usable, HALO, MUTED};

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
        let legend = self.legend();
        let mut plot = Plot::new(
            (self.width, self.height),
            &self.title,
            (&self.x.label, &self.y.label),
            &legend,
        );
        let a = plot.area;
        let (xs, ys) = self.scales(a);
        let at = |&(x, y): &(f64, f64)| xs.pos(x).zip(ys.pos(y));
        if !self.series.iter().flat_map(|s| &s.points).any(|p| at(p).is_some()) {
            return plot.no_data();
        }
        plot.x_axis(&xs);
        plot.y_axis(&ys);
        plot.begin_clip();
        let out = &mut plot.out;
        self.draw_bands(out, a, &xs);
        self.draw_markers(out, a, &xs);
        for (i, s) in self.series.iter().enumerate() {
            draw_series(out, s, colour(i), &xs, &ys);
        }
        plot.out.push_str("</g>");
        plot.finish()
    }

    /// A legend entry per series when there are two or more, or one with a name.
    fn legend(&self) -> Vec<(&str, &'static str, Swatch)> {
        let named = self.series.len() >= 2 || self.series.iter().any(|s| !s.name.is_empty());
        if !named {
            return Vec::new();
        }
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
    }

    /// Both axes' scales over the plot area, from the placeable points and error bars.
    fn scales(&self, a: Area) -> (Scale, Scale) {
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
        let (xlo, xhi) = bounds(xl, self.x.min, self.x.max, xs_data);
        let (ylo, yhi) = bounds(yl, self.y.min, self.y.max, ys_data);
        (
            Scale { lo: xlo, hi: xhi, log: xl, from: a.left, to: a.right },
            Scale { lo: ylo, hi: yhi, log: yl, from: a.bottom, to: a.top },
        )
    }

    fn draw_bands(&self, out: &mut String, a: Area, xs: &Scale) {
        for band in &self.bands {
            // A log axis has no zero: a band from zero starts at the left edge.
            let from = if xs.log && band.from <= 0.0 { xs.lo } else { band.from };
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
    }

    fn draw_markers(&self, out: &mut String, a: Area, xs: &Scale) {
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
    }
}

/// One series in colour `c`: its dots or its line (broken where a point cannot be placed), then
/// its error bars.
fn draw_series(out: &mut String, s: &Series, c: &str, xs: &Scale, ys: &Scale) {
    let mapped: Vec<_> = s.points.iter().map(|&(x, y)| xs.pos(x).zip(ys.pos(y))).collect();
    if s.style == Style::Points {
        for &p in mapped.iter().flatten() {
            circle(out, p, 3.0, &format!(r#" fill="{c}""#));
        }
    } else {
        draw_line(out, s.style, &mapped, c);
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

/// A line through the placed points, one path per run between unplaceable ones.
fn draw_line(out: &mut String, style: Style, mapped: &[Option<(f64, f64)>], c: &str) {
    let dash = if style == Style::Dashed { r#" stroke-dasharray="6 4""# } else { "" };
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
            let _ = match style {
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
