//! The matrix: a value per row and column (p99 lag by origin and destination), shaded on a
//! sequential ramp, with "–" where nothing was measured.

use super::scale::{fmt_num, ramp};
use super::{open_svg, rect, text, text_width, END, MIDDLE, MIDDLE_MUTED, MUTED, NO_DATA};

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
        let values: Vec<f64> = self.positions().filter_map(|(r, c)| self.value(r, c)).collect();
        // Shades start at zero (or at the least value, if negative), so that a shade reads as a
        // fraction of the worst pair.
        let lo = values.iter().copied().fold(0.0, f64::min);
        let hi = values.iter().copied().fold(lo, f64::max);
        let grid = self.layout(&values);
        if self.rows.is_empty() || self.cols.is_empty() {
            let mut out = open_svg(grid.width, 120.0, &self.title);
            text(&mut out, (grid.width / 2.0, 70.0), NO_DATA, "no data");
            out.push_str("</svg>");
            return out;
        }
        let h = (grid.top + grid.cell_h * self.rows.len() as f64 + 50.0).ceil();
        let mut out = open_svg(grid.width, h, &self.title);
        self.draw_labels(&mut out, &grid);
        let shade = |v: f64| if hi > lo { (v - lo) / (hi - lo) } else { 0.0 };
        for (r, c) in self.positions() {
            self.draw_cell(&mut out, &grid, (r, c), self.value(r, c).map(|v| (v, shade(v))));
        }
        if !values.is_empty() {
            self.draw_ramp(&mut out, &grid, (lo, hi));
        }
        out.push_str("</svg>");
        out
    }

    /// Cell `(r, c)`'s value, if finite.
    fn value(&self, r: usize, c: usize) -> Option<f64> {
        self.cells.get(r).and_then(|row| row.get(c)).copied().flatten().filter(|v| v.is_finite())
    }

    /// Every `(row, column)`, row by row.
    fn positions(&self) -> impl Iterator<Item = (usize, usize)> {
        let (nr, nc) = (self.rows.len(), self.cols.len());
        (0..nr).flat_map(move |r| (0..nc).map(move |c| (r, c)))
    }

    fn label(&self, v: f64) -> String {
        format!("{}{}", fmt_num(v, 3), self.unit)
    }

    /// Cells wide enough for the widest column name or value, rows labelled on the left.
    fn layout(&self, values: &[f64]) -> Grid {
        let widest = |it: &mut dyn Iterator<Item = f64>| it.fold(0.0, f64::max);
        let cell_w = widest(&mut self.cols.iter().map(|s| text_width(s, 12.0)))
            .max(widest(&mut values.iter().map(|&v| text_width(&self.label(v), 12.0))))
            .max(44.0)
            + 12.0;
        let left = 40.0 + widest(&mut self.rows.iter().map(|s| text_width(s, 12.0)));
        let grid_w = cell_w * self.cols.len() as f64;
        let width =
            (left + grid_w + 20.0).max(text_width(&self.title, 14.0) + 40.0).max(240.0).ceil();
        Grid { cell_w, cell_h: 28.0, left, top: 72.0, width }
    }

    /// The axis labels and the row and column names.
    fn draw_labels(&self, out: &mut String, g: &Grid) {
        let (grid_w, grid_h) =
            (g.cell_w * self.cols.len() as f64, g.cell_h * self.rows.len() as f64);
        text(out, (g.left + grid_w / 2.0, 42.0), MIDDLE_MUTED, &self.col_label);
        let (lx, ly) = (16.0, g.top + grid_h / 2.0);
        let rotated =
            format!(r#" text-anchor="middle" fill="{MUTED}" transform="rotate(-90 {lx} {ly:.1})""#);
        text(out, (lx, ly), &rotated, &self.row_label);
        for (c, name) in self.cols.iter().enumerate() {
            text(out, (g.left + g.cell_w * (c as f64 + 0.5), g.top - 8.0), MIDDLE, name);
        }
        for (r, name) in self.rows.iter().enumerate() {
            text(out, (g.left - 6.0, g.top + g.cell_h * (r as f64 + 0.5) + 4.0), END, name);
        }
    }

    /// One cell: its value and shade (0 to 1), or grey with "–" when there is none.
    fn draw_cell(
        &self,
        out: &mut String,
        g: &Grid,
        (r, c): (usize, usize),
        value: Option<(f64, f64)>,
    ) {
        let (x, y) = (g.left + g.cell_w * c as f64, g.top + g.cell_h * r as f64);
        let names = format!(
            "{} → {}",
            self.rows.get(r).map_or("", String::as_str),
            self.cols.get(c).map_or("", String::as_str)
        );
        let (fill, ink, shown) = match value {
            Some((v, t)) => (ramp(t), if t > 0.6 { "#ffffff" } else { "#222222" }, self.label(v)),
            None => ("#e0e0e0".to_string(), MUTED, "–".to_string()),
        };
        rect(
            out,
            (x, y, g.cell_w, g.cell_h),
            &format!(r##" fill="{fill}" stroke="#ffffff""##),
            &format!("{names}: {shown}"),
        );
        text(
            out,
            (x + g.cell_w / 2.0, y + g.cell_h / 2.0 + 4.0),
            &format!(r#" text-anchor="middle" fill="{ink}""#),
            &shown,
        );
    }

    /// The ramp from the least to the greatest value, under the matrix.
    fn draw_ramp(&self, out: &mut String, g: &Grid, (lo, hi): (f64, f64)) {
        let y = g.top + g.cell_h * self.rows.len() as f64 + 18.0;
        let low = self.label(lo);
        text(out, (g.left, y + 10.0), "", &low);
        let x0 = g.left + text_width(&low, 12.0) + 6.0;
        for k in 0..8 {
            let fill = ramp(f64::from(k) / 7.0);
            rect(out, (x0 + 14.0 * f64::from(k), y, 14.0, 12.0), &format!(r#" fill="{fill}""#), "");
        }
        text(out, (x0 + 118.0, y + 10.0), "", &self.label(hi));
    }
}

/// Where the matrix's cells go, in pixels.
struct Grid {
    cell_w: f64,
    cell_h: f64,
    left: f64,
    top: f64,
    /// The picture's width.
    width: f64,
}
