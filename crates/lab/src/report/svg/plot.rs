//! The parts every picture shares: the title, the legend, the axis labels, ticks and grid, and
//! the frame drawn over the data's edges.

use std::fmt::Write as _;

use super::scale::{fmt_num, ticks, Scale};
use super::{circle, fresh_id, line, open_svg, rect, text, text_width, END, GRID, MIDDLE, NO_DATA};

/// What a legend entry shows.
#[derive(Clone, Copy, Debug)]
pub(super) enum Swatch {
    Line,
    Dashed,
    Dot,
    Block,
}

/// The plot area, in pixels.
#[derive(Clone, Copy, Debug)]
pub(super) struct Area {
    pub(super) left: f64,
    pub(super) top: f64,
    pub(super) right: f64,
    pub(super) bottom: f64,
}

/// The parts Chart, Bars, BoxPlot and SpaceTime share (title, legend, axis labels, ticks, frame),
/// so that they look alike in one report.
pub(super) struct Plot {
    pub(super) out: String,
    pub(super) area: Area,
}

impl Plot {
    /// Opens the picture; `labels` are the x and y axis labels, empty for none.
    pub(super) fn new(
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

    pub(super) fn x_axis(&mut self, s: &Scale) {
        let a = self.area;
        for t in ticks(s.lo, s.hi, s.log) {
            let Some(x) = s.pos(t) else { continue };
            line(&mut self.out, (x, a.top), (x, a.bottom), GRID);
            text(&mut self.out, (x, a.bottom + 16.0), MIDDLE, &fmt_num(t, 6));
        }
    }

    pub(super) fn y_axis(&mut self, s: &Scale) {
        let a = self.area;
        for t in ticks(s.lo, s.hi, s.log) {
            let Some(y) = s.pos(t) else { continue };
            line(&mut self.out, (a.left, y), (a.right, y), GRID);
            text(&mut self.out, (a.left - 6.0, y + 4.0), END, &fmt_num(t, 6));
        }
    }

    /// Labels evenly spaced slots under the plot, slanted when they would overlap; returns the
    /// slot width.
    pub(super) fn categories(&mut self, labels: &[String]) -> f64 {
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
    pub(super) fn begin_clip(&mut self) {
        let Area { left, top, right, bottom } = self.area;
        let (w, h) = ((right - left).max(0.0), (bottom - top).max(0.0));
        let id = fresh_id();
        let _ = write!(
            self.out,
            r#"<defs><clipPath id="{id}-clip"><rect x="{left:.1}" y="{top:.1}" width="{w:.1}" height="{h:.1}"/></clipPath></defs><g clip-path="url(#{id}-clip)">"#
        );
    }

    /// Says so in the middle of an empty frame, and closes the picture.
    pub(super) fn no_data(mut self) -> String {
        let a = self.area;
        let middle = ((a.left + a.right) / 2.0, (a.top + a.bottom) / 2.0);
        text(&mut self.out, middle, NO_DATA, "no data");
        self.finish()
    }

    /// Draws the frame last, over the data's edges, and closes the picture.
    pub(super) fn finish(mut self) -> String {
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
