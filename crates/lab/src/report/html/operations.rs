//! What the clients saw: latency and throughput over time, the per-client timeline, the
//! regions' clock offsets and availability.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{
    bands, end_section, figure, fmt_ms, fmt_pct, no_data, section, table, RUN_AXIS, SECTIONS,
};
use crate::report::svg::{escape, Chart, Series, Style};
use crate::summary::{OpRow, Summary};

/// Latency and throughput over time, and each operation's quantiles.
pub(super) fn latency(out: &mut String, s: &Summary) {
    section(out, "latency", SECTIONS[5]);
    if s.latency.series.is_empty() && s.throughput.series.is_empty() {
        no_data(out, "no operations");
        end_section(out);
        return;
    }
    figure(
        out,
        &latency_chart(s),
        &format!(
            "Per {} ms bucket of invocation time, the median (solid) and 99th percentile (dashed) \
             latency of each operation kind; shaded bands are fault windows.",
            fmt_ms(Some(s.latency.bucket_ms))
        ),
    );
    figure(
        out,
        &throughput_chart(s),
        "Completions per second per operation kind and outcome (dashed: fail or info); a drop \
         inside a shaded fault window is unavailability.",
    );
    let rows: Vec<Vec<String>> = s
        .latency
        .series
        .iter()
        .map(|l| vec![l.f.clone(), l.count.to_string(), fmt_ms(l.p50_ms), fmt_ms(l.p99_ms)])
        .collect();
    table(out, &["Operation", "Acknowledged", "p50 ms", "p99 ms"], &rows);
    end_section(out);
}

fn latency_chart(s: &Summary) -> String {
    let mut chart = Chart::new(
        "Latency over time (acknowledged operations)",
        RUN_AXIS,
        "latency (ms, log scale)",
    );
    chart.y.log = true;
    chart.bands = bands(s);
    for l in &s.latency.series {
        let at = |b: &crate::summary::LatencyBucket| b.at_ms / 1000.0;
        chart.series.push(Series {
            name: format!("{} p50", l.f),
            points: l.buckets.iter().map(|b| (at(b), b.p50_ms)).collect(),
            style: Style::Line,
            errors: None,
        });
        chart.series.push(Series {
            name: format!("{} p99", l.f),
            points: l.buckets.iter().map(|b| (at(b), b.p99_ms)).collect(),
            style: Style::Dashed,
            errors: None,
        });
    }
    chart.render()
}

fn throughput_chart(s: &Summary) -> String {
    let mut chart = Chart::new("Throughput over time", RUN_AXIS, "completions per second");
    chart.y.min = Some(0.0);
    chart.bands = bands(s);
    for t in &s.throughput.series {
        chart.series.push(Series {
            name: format!("{} {}", t.f, t.outcome),
            points: t.points.iter().map(|&(at, rate)| (at / 1000.0, rate)).collect(),
            style: if t.outcome == "ok" { Style::Line } else { Style::Dashed },
            errors: None,
        });
    }
    chart.render()
}

/// A per-process timeline: one row per client, one bar per operation from invoke to completion.
pub(super) fn timeline(out: &mut String, s: &Summary) {
    section(out, "timeline", SECTIONS[6]);
    let ops = &s.traces.timeline;
    if ops.is_empty() {
        no_data(out, "no operations");
        end_section(out);
        return;
    }
    let processes: Vec<u32> =
        ops.iter().map(|o| o.process).collect::<BTreeSet<_>>().into_iter().collect();
    let (lo, hi) =
        ops.iter().fold((u64::MAX, 0), |(lo, hi), o| (lo.min(o.invoke_ms), hi.max(o.complete_ms)));
    let rows = Rows { lo, hi, count: processes.len() };
    let height = TOP + ROW * rows.count as f64 + 40.0;
    let mut svg = format!(
        "<svg width=\"720\" height=\"{height:.0}\" viewBox=\"0 0 720 {height:.0}\" role=\"img\" \
         style=\"max-width:100%;height:auto\" font-family=\"sans-serif\" font-size=\"11\">\
         <title>Operations per client, {lo} – {hi} ms</title>\
         <text x=\"360\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">Operations per client, {lo} – {hi} ms</text>"
    );
    rows.shade_faults(&mut svg, s);
    for (i, p) in processes.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let _ = write!(
            svg,
            "<text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">client {p}</text>",
            LEFT - 6.0,
            y + 11.0
        );
    }
    for o in ops {
        let Some(i) = processes.iter().position(|&p| p == o.process) else { continue };
        rows.bar(&mut svg, i, o);
    }
    let base = TOP + ROW * rows.count as f64 + 16.0;
    let _ = write!(
        svg,
        "<text x=\"{LEFT}\" y=\"{base:.0}\">{lo} ms</text><text x=\"{RIGHT}\" y=\"{base:.0}\" text-anchor=\"end\">{hi} ms</text>\
         <text x=\"360\" y=\"{:.0}\" text-anchor=\"middle\" fill=\"#777777\">time since the run started (ms)</text></svg>",
        base + 16.0
    );
    figure(
        out,
        &svg,
        "One row per client; each bar spans an operation from invocation to completion, green ok, \
         red fail, orange info (hover for details); the window starts a second before the first \
         fault, shaded.",
    );
    end_section(out);
}

// The timeline's geometry, in pixels.
/// Where the time axis starts (client labels to its left).
const LEFT: f64 = 90.0;
/// Where the time axis ends.
const RIGHT: f64 = 700.0;
/// Where the first row starts.
const TOP: f64 = 40.0;
/// How tall a row is.
const ROW: f64 = 16.0;

/// The timeline's rows over the span `lo..=hi` ms.
struct Rows {
    lo: u64,
    hi: u64,
    count: usize,
}

impl Rows {
    fn x(&self, t: u64) -> f64 {
        let span = (self.hi.saturating_sub(self.lo)).max(1) as f64;
        LEFT + (t.saturating_sub(self.lo)) as f64 / span * (RIGHT - LEFT)
    }

    /// The fault windows within the span, behind every row.
    fn shade_faults(&self, svg: &mut String, s: &Summary) {
        for f in &s.faults {
            let (from, to) = (f.start_ms.max(self.lo as f64), f.end_ms.min(self.hi as f64));
            if to > from {
                let (a, b) = (self.x(from as u64), self.x(to as u64));
                let _ = write!(
                    svg,
                    "<rect x=\"{a:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#9e9e9e\" fill-opacity=\"0.2\"/>",
                    b - a,
                    ROW * self.count as f64
                );
            }
        }
    }

    /// Operation `o` as a bar on row `i`, coloured by its outcome, with its details on hover.
    fn bar(&self, svg: &mut String, i: usize, o: &OpRow) {
        let y = TOP + ROW * i as f64 + 2.0;
        let (a, b) = (self.x(o.invoke_ms), self.x(o.complete_ms.max(o.invoke_ms)));
        let fill = match o.outcome.as_str() {
            "ok" => "#009E73",
            "fail" => "#D55E00",
            _ => "#E69F00",
        };
        let tip = format!(
            "#{} {} {} {} in {}: {} ({} – {} ms)",
            o.index,
            o.f,
            o.key,
            o.version.as_deref().unwrap_or(""),
            o.region,
            o.outcome,
            o.invoke_ms,
            o.complete_ms
        );
        let _ = write!(
            svg,
            "<rect x=\"{a:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\" fill-opacity=\"0.8\"><title>{}</title></rect>",
            (b - a).max(1.5),
            ROW - 4.0,
            escape(&tip)
        );
    }
}

/// Each region's clock offset over the run, when any was injected.
pub(super) fn clocks(out: &mut String, s: &Summary) {
    section(out, "clocks", SECTIONS[11]);
    if s.clocks.is_empty() {
        out.push_str("<p>No clock offsets were injected.</p>\n");
        end_section(out);
        return;
    }
    let end = s
        .faults
        .iter()
        .map(|f| f.end_ms)
        .chain([s.run.workload_end_ms])
        .chain(s.clocks.iter().flat_map(|c| c.steps.iter().map(|p| p.0)))
        .fold(0.0, f64::max);
    let mut chart =
        Chart::new("Clock offset per region", RUN_AXIS, "offset from the run's clock (ms)");
    chart.bands = bands(s);
    for c in &s.clocks {
        let mut points: Vec<(f64, f64)> = Vec::new();
        if c.steps.first().is_some_and(|p| p.0 > 0.0) {
            points.push((0.0, 0.0));
        }
        points.extend(c.steps.iter().map(|&(at, offset)| (at / 1000.0, offset)));
        if let Some(&(_, last)) = points.last() {
            points.push((end / 1000.0, last));
        }
        chart.series.push(Series {
            name: c.region.clone(),
            points,
            style: Style::Step,
            errors: None,
        });
    }
    figure(
        out,
        &chart.render(),
        "Each region's clock offset over the run, as injected: a step up means its versions were \
         stamped that many ms ahead, which is what makes real-time inversions possible.",
    );
    end_section(out);
}

/// Outcome fractions per region, during and outside faults.
pub(super) fn availability(out: &mut String, s: &Summary) {
    section(out, "availability", SECTIONS[12]);
    if s.availability.first().is_none_or(|a| a.total.ops == 0) {
        no_data(out, "no operations");
        end_section(out);
        return;
    }
    let counts = |c: &crate::summary::OutcomeCounts| {
        format!(
            "{} / {} / {} of {}",
            fmt_pct(c.ok_fraction),
            fmt_pct(c.fail_fraction),
            fmt_pct(c.info_fraction),
            c.ops
        )
    };
    let rows: Vec<Vec<String>> = s
        .availability
        .iter()
        .map(|a| {
            vec![
                a.region.clone(),
                counts(&a.total),
                counts(&a.during_faults),
                counts(&a.outside_faults),
            ]
        })
        .collect();
    table(out, &["Region", "ok / fail / info (all)", "during faults", "outside faults"], &rows);
    out.push_str(
        "<p class=\"how\">Fractions of operations by outcome, split by whether they were invoked \
         inside a fault window; info means the outcome is unknown (timeout).</p>\n",
    );
    end_section(out);
}
