//! Charts as inline SVG strings, because the report must be one self-contained HTML file: no
//! JavaScript, no network, no web fonts, nothing to install for whoever opens it.
//!
//! The data are whatever a run produced, so every renderer takes NaN, infinities, empty inputs
//! and log axes over zeros in its stride and still returns a well-formed `<svg>` element, at
//! worst one that says "no data". Ids inside the SVG (clip paths, arrowheads) come from a
//! process-wide counter, because SVG ids are global to the page that holds several charts.
//!
//! One module per kind of picture: [`Chart`] (x/y series), [`Heatmap`], [`Bars`] and
//! [`BoxPlot`], [`SpaceTime`]; beneath them `plot` (the frame, legend and axes they share),
//! `scale` (bounds, ticks, number formatting) and the drawing primitives here.

mod bars;
mod chart;
mod heatmap;
mod plot;
mod scale;
mod spacetime;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

pub use self::bars::{Bars, BoxPlot};
pub use self::chart::{Axis, Band, Chart, Marker, Series, Style};
pub use self::heatmap::Heatmap;
pub use self::spacetime::SpaceTime;

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

#[cfg(test)]
mod tests;
