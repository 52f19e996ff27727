//! One key at a time: its operations and final reads as tables, and its space-time diagram,
//! for the anomalies' drill-downs and the most-written key.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{end_section, figure, no_data, section, table, SECTIONS};
use crate::report::svg::{escape, SpaceTime};
use crate::summary::{KeyTrace, OpRow, Summary};

fn op_cells(o: &OpRow) -> Vec<String> {
    vec![
        o.index.to_string(),
        o.process.to_string(),
        o.region.clone(),
        o.f.clone(),
        o.value.clone().unwrap_or_else(|| "–".into()),
        o.version.clone().unwrap_or_else(|| "–".into()),
        o.invoke_ms.to_string(),
        o.complete_ms.to_string(),
        o.outcome.clone(),
    ]
}

/// The operations of a key (anomaly operations highlighted) and its final reads.
pub(super) fn key_tables(out: &mut String, trace: &KeyTrace, focus: &BTreeSet<u64>) {
    if trace.truncated {
        out.push_str("<p class=\"how\">Excerpt: the operations nearest the anomaly in time.</p>");
    }
    out.push_str(
        "<table><tr><th>Op</th><th>Process</th><th>Region</th><th>f</th><th>Value</th>\
         <th>Version</th><th>Invoked (ms)</th><th>Completed (ms)</th><th>Outcome</th></tr>",
    );
    for o in &trace.ops {
        let class = if focus.contains(&o.index) { " class=\"focus\"" } else { "" };
        let _ = write!(out, "<tr{class}>");
        for cell in op_cells(o) {
            let _ = write!(out, "<td>{}</td>", escape(&cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>\n");
    if !trace.finals.is_empty() {
        let rows: Vec<Vec<String>> = trace
            .finals
            .iter()
            .map(|f| {
                vec![
                    f.region.clone(),
                    f.value.clone().unwrap_or_else(|| "not found".into()),
                    f.version.clone().unwrap_or_else(|| "–".into()),
                    f.at_ms.to_string(),
                ]
            })
            .collect();
        table(out, &["Final read in", "Value", "Version", "At (ms)"], &rows);
    }
}

/// Beyond this many operations a diagram shows only the writes and the focused operations: a
/// read per dot would bury the arrows.
const DIAGRAM_READS_UP_TO: usize = 20;

/// `(lane, time, label)`, as [`SpaceTime::events`] takes them.
type Event = (usize, f64, String);
/// `(from lane, sent, to lane, arrived, label)`, as [`SpaceTime::messages`] takes them.
type Message = (usize, f64, usize, f64, String);

/// A key's writes travelling between regions; reads too when there are few operations or they
/// are in `focus`.
pub(super) fn space_time(
    s: &Summary,
    trace: &KeyTrace,
    focus: &BTreeSet<u64>,
    title: &str,
) -> String {
    let mut lanes: Vec<String> = s.run.regions.iter().map(|r| r.name.clone()).collect();
    let extra = trace.ops.iter().map(|o| &o.region).chain(trace.applies.iter().map(|a| &a.region));
    for region in extra {
        if !lanes.contains(region) {
            lanes.push(region.clone());
        }
    }
    let (mut events, messages) = operations(trace, focus, &lanes);
    let marks = fault_marks(s, &lanes, &events, &messages);
    events.extend(marks);
    SpaceTime {
        title: title.to_owned(),
        lanes,
        time_label: "time since the run started (ms)".into(),
        events,
        messages,
    }
    .render()
}

/// The operations shown as dots, and an arrow from each acknowledged write to every other
/// region's apply of its version.
fn operations(
    trace: &KeyTrace,
    focus: &BTreeSet<u64>,
    lanes: &[String],
) -> (Vec<Event>, Vec<Message>) {
    let lane = |name: &str| lanes.iter().position(|l| l == name);
    let mut events = Vec::new();
    let mut messages = Vec::new();
    let all_reads = trace.ops.len() <= DIAGRAM_READS_UP_TO;
    let short = ShortVersions::new(
        trace
            .ops
            .iter()
            .filter_map(|o| o.version.as_deref())
            .chain(trace.applies.iter().map(|a| a.version.as_str())),
    );
    let shown = trace.ops.iter().filter(|o| o.f != "get" || all_reads || focus.contains(&o.index));
    for o in shown {
        let Some(l) = lane(&o.region) else { continue };
        let version = o.version.as_deref().map_or("nothing".to_owned(), |v| short.show(v));
        let (at, label) = match o.f.as_str() {
            "get" => (o.invoke_ms, format!("#{} get → {version}", o.index)),
            f if o.outcome == "ok" => (o.complete_ms, format!("#{} {f} {version}", o.index)),
            f => (o.complete_ms, format!("#{} {f} {version} ({})", o.index, o.outcome)),
        };
        events.push((l, at as f64, label));
        if o.f == "get" || o.outcome != "ok" {
            continue;
        }
        let Some(v) = o.version.as_deref() else { continue };
        for a in trace.applies.iter().filter(|a| a.version == v && a.region != o.region) {
            if let Some(to) = lane(&a.region) {
                messages.push((l, o.complete_ms as f64, to, a.at_ms as f64, short.show(v)));
            }
        }
    }
    (events, messages)
}

/// Faults that start or stop within the diagram's span, on the lane of the region they name.
fn fault_marks(
    s: &Summary,
    lanes: &[String],
    events: &[Event],
    messages: &[Message],
) -> Vec<Event> {
    let times = || events.iter().map(|e| e.1).chain(messages.iter().flat_map(|m| [m.1, m.3]));
    let (lo, hi) =
        (times().fold(f64::INFINITY, f64::min), times().fold(f64::NEG_INFINITY, f64::max));
    let mut marks = Vec::new();
    for f in &s.faults {
        let named = lanes.iter().position(|l| f.description.contains(&format!("\"{l}\"")));
        let id = f.id.map_or(String::new(), |id| format!(" #{id}"));
        let ends = [(f.start_ms, "starts"), (f.end_ms, if f.stopped { "stops" } else { "" })];
        for (at, what) in ends {
            if !what.is_empty() && at >= lo && at <= hi {
                marks.push((named.unwrap_or(0), at, format!("⚡ {}{id} {what}", f.kind)));
            }
        }
    }
    marks
}

/// Versions shortened for a diagram: the timestamp digits after those every version shown
/// shares (at most 8, the ones that tell them apart), and the origin. The shared prefix is the
/// run's epoch and the tail may be a logical counter, so neither a fixed prefix nor a fixed
/// suffix would do.
struct ShortVersions {
    shared: usize,
}

impl ShortVersions {
    fn new<'a>(versions: impl Iterator<Item = &'a str>) -> Self {
        let mut prefix: Option<&str> = None;
        for version in versions {
            let clock = version.split_once('-').map_or(version, |(clock, _)| clock);
            prefix = Some(match prefix {
                None => clock,
                Some(p) => {
                    let common = p
                        .char_indices()
                        .zip(clock.chars())
                        .take_while(|((_, a), b)| a == b)
                        .count();
                    p.char_indices().nth(common).map_or(p, |(i, _)| p.get(..i).unwrap_or(""))
                }
            });
        }
        ShortVersions { shared: prefix.map_or(0, |p| p.chars().count()) }
    }

    fn show(&self, version: &str) -> String {
        let Some((clock, origin)) = version.split_once('-') else { return version.to_owned() };
        let rest: String = clock.chars().skip(self.shared).take(8).collect();
        if rest.is_empty() || self.shared == 0 {
            // One version alone, or nothing shared: nothing to drop.
            version.to_owned()
        } else {
            format!("…{rest}-{origin}")
        }
    }
}

/// The most-written key's writes travelling between regions.
pub(super) fn hot_key(out: &mut String, s: &Summary) {
    section(out, "spacetime", SECTIONS[7]);
    let Some(trace) = &s.traces.hot_key else {
        no_data(out, "no acknowledged writes");
        end_section(out);
        return;
    };
    let svg = space_time(
        s,
        trace,
        &BTreeSet::new(),
        &format!("Key {}: writes and their arrival in each region", trace.key),
    );
    figure(
        out,
        &svg,
        "Time flows downwards; each lane is a region. A dot is a write at its ack (or, when there \
         are few, a read at its invocation with the version it returned); an arrow runs to the moment another region \
         applied that version, so slanted arrows are propagation delay and missing arrows are \
         versions a region skipped because it already held a newer one; ⚡ marks a fault starting \
         or stopping.",
    );
    end_section(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagrams_label_versions_by_the_digits_that_differ() {
        let versions = ["01a205f675970000-weur", "01a205f6a0a30000-wnam"];
        let short = ShortVersions::new(versions.into_iter());
        assert_eq!(short.show(versions[0]), "…75970000-weur");
        assert_eq!(short.show(versions[1]), "…a0a30000-wnam");
        let one = ShortVersions::new(["0000000000000001-wnam"].into_iter());
        assert_eq!(one.show("0000000000000001-wnam"), "0000000000000001-wnam");
        assert_eq!(ShortVersions::new(std::iter::empty()).show("x"), "x");
    }
}
