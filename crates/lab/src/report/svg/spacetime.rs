//! The space-time (Lamport) diagram: a lane per region, time flowing downwards, a key's writes
//! as arrows from the writing region to each region that applied them.

use std::fmt::Write as _;

use super::plot::{Area, Plot};
use super::scale::{bounds, Scale};
use super::{circle, colour, fresh_id, line, text, HALO, PALETTE};

/// `(from lane, send time, to lane, arrive time, label)`, as in [`SpaceTime::messages`].
type Message = (usize, f64, usize, f64, String);

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
        let lanes = Lanes { area: a, width: (a.right - a.left) / n.max(1) as f64, count: n };
        let id = fresh_id();
        let out = &mut plot.out;
        arrowheads(out, &id, n);
        for (i, name) in self.lanes.iter().enumerate() {
            let x = lanes.x(i);
            line(out, (x, a.top), (x, a.bottom), r##" stroke="#999999" stroke-width="1.5""##);
            text(out, (x, a.top - 8.0), r#" text-anchor="middle" font-weight="bold""#, name);
        }
        for &message in &messages {
            draw_message(out, message, &lanes, &ts, &id);
        }
        for &&(lane, t, ref label) in &events {
            let Some(y) = ts.pos(t) else { continue };
            lanes.event(out, (lane, y), label);
        }
        plot.finish()
    }
}

/// The lanes across the plot area.
struct Lanes {
    area: Area,
    width: f64,
    count: usize,
}

impl Lanes {
    fn x(&self, lane: usize) -> f64 {
        self.area.left + self.width * (lane as f64 + 0.5)
    }

    /// A dot on `lane` at `y`, its label running away from the nearer edge, so that the last
    /// lane's stay inside the frame.
    fn event(&self, out: &mut String, (lane, y): (usize, f64), label: &str) {
        let x = self.x(lane);
        circle(out, (x, y), 4.0, &format!(r#" fill="{}""#, colour(lane)));
        let (dx, anchor) = if lane + 1 == self.count && self.count > 1 {
            (-7.0, r#" text-anchor="end""#)
        } else {
            (7.0, "")
        };
        text(out, (x + dx, y + 4.0), &format!(r#" font-size="11"{anchor}{HALO}"#), label);
    }
}

/// One arrowhead marker per lane colour, ids prefixed with `id`.
fn arrowheads(out: &mut String, id: &str, lanes: usize) {
    out.push_str("<defs>");
    for (k, c) in PALETTE.iter().enumerate().take(lanes) {
        let _ = write!(
            out,
            r#"<marker id="{id}-arrow{k}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0 0L10 5L0 10z" fill="{c}"/></marker>"#
        );
    }
    out.push_str("</defs>");
}

/// A message as an arrow in its sender's colour, labelled near the sender: midway, a message
/// that skips a lane would be labelled on it.
fn draw_message(out: &mut String, message: &Message, lanes: &Lanes, ts: &Scale, id: &str) {
    let &(from, sent, to, arrived, ref label) = message;
    let (Some(y1), Some(y2)) = (ts.pos(sent), ts.pos(arrived)) else { return };
    let (x1, x2) = (lanes.x(from), lanes.x(to));
    let (c, k) = (colour(from), from % PALETTE.len());
    let attrs = format!(r#" stroke="{c}" stroke-width="1.5" marker-end="url(#{id}-arrow{k})""#);
    line(out, (x1, y1), (x2, y2), &attrs);
    let at = (x1 + (x2 - x1) * 0.3, y1 + (y2 - y1) * 0.3 - 3.0);
    text(out, at, &format!(r#" font-size="10" text-anchor="middle"{HALO}"#), label);
}
