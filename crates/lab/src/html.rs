//! The report for people: one self-contained HTML file drawn from a [`Summary`].
//!
//! Self-contained because a report is attached to tickets, archived with CI artefacts and opened
//! offline: inline CSS, inline SVG from [`crate::svg`], no script, nothing fetched. It is drawn
//! from the summary alone (not the history), so `summary.json` is enough to redraw it.
//!
//! The order follows EXPERIMENTS.md's plot checklist, after what a reader needs first: what ran
//! and how to rerun it, then whether the checker found anything, with a drill-down per anomaly.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::summary::{KeyTrace, OpRow, RateWithInterval, Summary, VisibilityStats};
use crate::svg::{escape, Band, Bars, BoxPlot, Chart, Heatmap, Marker, Series, SpaceTime, Style};

/// Section titles, in order; the test checks each is present.
pub const SECTIONS: [&str; 12] = [
    "Run",
    "Checker verdict",
    "1. t-visibility",
    "2. Stale reads",
    "3. Latency and throughput",
    "4. Process timeline",
    "5. Space-time diagram of the most-written key",
    "6. Divergence and convergence",
    "7. Replication lag heatmap",
    "8. Conflicts",
    "9. Clock offsets",
    "Availability",
];

const STYLE: &str = "\
body{font-family:system-ui,sans-serif;color:#222;max-width:1100px;margin:0 auto;padding:1em 2em;line-height:1.4}\
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}\
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}\
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.badge{display:inline-block;padding:.15em .7em;border-radius:1em;color:#fff;font-weight:bold}\
.valid{background:#1b7f3b}.invalid{background:#b3261e}.unknown{background:#8a6d00}\
.how{color:#555;font-size:.9em;margin-top:.2em}.note{background:#fff6d6;border-left:4px solid #e0b400;padding:.4em .8em}\
pre,code{background:#f6f6f6;font-size:.9em}pre{padding:.6em;overflow:auto}\
tr.focus td{font-weight:bold;background:#fff0ef}figure{margin:1em 0}\
details{margin:.5em 0}";

/// The whole report.
pub fn render(summary: &Summary) -> String {
    let mut out = String::with_capacity(256 * 1024);
    let run = &summary.run;
    let scenario = if run.scenario.is_empty() { "unnamed scenario" } else { &run.scenario };
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>EdgeKV lab report: {} (seed {})</title><style>{STYLE}</style></head><body>",
        escape(scenario),
        run.seed
    );
    header(&mut out, summary);
    verdict(&mut out, summary);
    visibility(&mut out, summary);
    stale(&mut out, summary);
    latency(&mut out, summary);
    timeline(&mut out, summary);
    hot_key(&mut out, summary);
    divergence(&mut out, summary);
    heatmap(&mut out, summary);
    conflicts(&mut out, summary);
    clocks(&mut out, summary);
    availability(&mut out, summary);
    out.push_str("</body></html>\n");
    out
}

// ---------------------------------------------------------------------------------------------
// Formatting.

/// Milliseconds with precision that suits their size.
fn fmt_ms(v: Option<f64>) -> String {
    match v {
        Some(0.0) => "0".to_owned(),
        Some(v) if v.is_finite() && v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.is_finite() && v.abs() >= 1.0 => format!("{v:.1}"),
        Some(v) if v.is_finite() => format!("{v:.2}"),
        _ => "–".to_owned(),
    }
}

/// A fraction as a percentage.
fn fmt_pct(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{:.2} %", v * 100.0),
        _ => "–".to_owned(),
    }
}

fn fmt_num(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "–".to_owned(),
    }
}

fn rate_ci(r: &RateWithInterval) -> String {
    match (r.rate, r.low, r.high) {
        (Some(rate), Some(low), Some(high)) => format!(
            "{} ({} – {}), {} of {}",
            fmt_pct(Some(rate)),
            fmt_pct(Some(low)),
            fmt_pct(Some(high)),
            r.hits,
            r.n
        ),
        _ => "no data".to_owned(),
    }
}

fn section(out: &mut String, id: &str, title: &str) {
    let _ = writeln!(out, "<section id=\"{id}\"><h2>{}</h2>", escape(title));
}

fn end_section(out: &mut String) {
    out.push_str("</section>\n");
}

/// A figure with the sentence that says how to read it.
fn figure(out: &mut String, svg: &str, how: &str) {
    let _ = writeln!(out, "<figure>{svg}<p class=\"how\">{}</p></figure>", escape(how));
}

fn no_data(out: &mut String, why: &str) {
    let _ = writeln!(out, "<p class=\"note\">No data: {}</p>", escape(why));
}

fn table(out: &mut String, head: &[&str], rows: &[Vec<String>]) {
    out.push_str("<table><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let numeric = cell.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '–')
                && cell.len() < 24;
            let class = if numeric { " class=\"n\"" } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", escape(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>\n");
}

/// Fault windows as bands on an axis in seconds.
fn bands(summary: &Summary) -> Vec<Band> {
    summary
        .faults
        .iter()
        .map(|f| Band {
            from: f.start_ms / 1000.0,
            to: f.end_ms / 1000.0,
            label: match f.id {
                Some(id) => format!("{} #{id}", f.kind),
                None => f.kind.clone(),
            },
        })
        .collect()
}

const RUN_AXIS: &str = "time since the run started (s)";

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

// ---------------------------------------------------------------------------------------------
// Header and verdict.

fn header(out: &mut String, s: &Summary) {
    let run = &s.run;
    let scenario = if run.scenario.is_empty() { "SCENARIO" } else { &run.scenario };
    let _ = writeln!(
        out,
        "<header><h1>EdgeKV consistency report</h1><p>Scenario <b>{}</b>, seed <b>{}</b> \
         <span class=\"badge {}\">{}</span></p></header>",
        escape(scenario),
        run.seed,
        badge_class(&s.check.validity),
        escape(&s.check.validity)
    );
    section(out, "run", SECTIONS[0]);
    if !run.meta_present {
        out.push_str(
            "<p class=\"note\">run.json was not found or could not be read: the run's metadata below are defaults \
             (seed 0, no topology, no link models), so no prediction is drawn.</p>\n",
        );
    }
    if run.incomplete {
        out.push_str(
            "<p class=\"note\">Some measurements are incomplete; see the notes below.</p>\n",
        );
    }
    let h = &run.history;
    let rows = vec![
        vec!["Scenario".into(), run.scenario.clone()],
        vec!["Seed".into(), run.seed.to_string()],
        vec!["Topology".into(), run.topology.clone()],
        vec!["edgekv version".into(), run.edgekv_version.clone()],
        vec!["Timestamp source".into(), run.timestamp_source.clone()],
        vec![
            "Workload".into(),
            format!("{} ms – {} ms", fmt_ms(Some(run.workload_start_ms)), fmt_ms(Some(run.workload_end_ms))),
        ],
        vec!["Quiet period".into(), format!("{} ms", run.quiet_ms)],
        vec![
            "Anti-entropy interval".into(),
            run.anti_entropy_ms.map_or("unknown".into(), |v| format!("{v} ms")),
        ],
        vec!["Started (wall clock, epoch ms)".into(), run.started_wall_ms.to_string()],
        vec![
            "History".into(),
            format!(
                "{} operations ({} acknowledged writes), {} applies, {} fault events, {} final reads, {} keys",
                h.ops, h.acked_writes, h.applies, h.faults, h.finals, h.keys
            ),
        ],
        vec![
            "Apply logs that dropped events".into(),
            if run.applies_missed.is_empty() { "none".into() } else { run.applies_missed.join(", ") },
        ],
    ];
    table(out, &["", ""], &rows);
    let regions: Vec<Vec<String>> = run
        .regions
        .iter()
        .map(|r| vec![r.name.clone(), r.url.clone(), r.writers.to_string(), r.readers.to_string()])
        .collect();
    if regions.is_empty() {
        no_data(out, "no regions are known");
    } else {
        table(out, &["Region", "Endpoint", "Writers", "Readers"], &regions);
    }
    let links: Vec<Vec<String>> = run
        .links
        .iter()
        .map(|l| vec![l.from.clone(), l.to.clone(), l.model.clone(), fmt_ms(l.max_ms)])
        .collect();
    if links.is_empty() {
        no_data(out, "no link delay models are recorded");
    } else {
        table(out, &["From", "To", "Delay model", "Max (ms)"], &links);
    }
    let _ = writeln!(
        out,
        "<p>Rerun this schedule: <code>edgekv lab run {} --seed {}</code></p>",
        escape(scenario),
        run.seed
    );
    if !run.scenario_text.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>Scenario file</summary><pre>{}</pre></details>",
            escape(&run.scenario_text)
        );
    }
    if !s.notes.is_empty() {
        out.push_str("<ul class=\"note\">");
        for note in &s.notes {
            let _ = write!(out, "<li>{}</li>", escape(note));
        }
        out.push_str("</ul>\n");
    }
    end_section(out);
}

fn badge_class(validity: &str) -> &'static str {
    match validity {
        "valid" => "valid",
        "invalid" => "invalid",
        _ => "unknown",
    }
}

fn verdict(out: &mut String, s: &Summary) {
    let check = &s.check;
    section(out, "verdict", SECTIONS[1]);
    let _ = writeln!(
        out,
        "<p><span class=\"badge {}\">{}</span> {} anomalies over {} keys and {} operations \
         ({}).</p>",
        badge_class(&check.validity),
        escape(&check.validity),
        check.anomalies.len(),
        check.keys,
        check.ops,
        if check.source == "computed" {
            "checked for this report".to_owned()
        } else {
            format!(
                "read from {}",
                escape(if check.source.is_empty() { "check.json" } else { &check.source })
            )
        }
    );
    if !check.anomalies.is_empty() {
        out.push_str("<ol>");
        for a in &check.anomalies {
            let ops: Vec<String> = a.ops.iter().map(u64::to_string).collect();
            let drill = s.traces.drilldowns.iter().position(|d| d.key == a.key);
            let link =
                drill.map_or(String::new(), |i| format!(" <a href=\"#drill-{i}\">drill-down</a>"));
            let _ = write!(
                out,
                "<li><b>{}</b> on key <code>{}</code>, operations [{}]: {}{link}</li>",
                escape(&a.kind),
                escape(&a.key),
                escape(&ops.join(", ")),
                escape(&a.explanation)
            );
        }
        out.push_str("</ol>\n");
    }
    if !check.unknowns.is_empty() {
        out.push_str("<details><summary>What the checker could not decide</summary><ul>");
        for u in &check.unknowns {
            let _ = write!(out, "<li>{}</li>", escape(u));
        }
        out.push_str("</ul></details>\n");
    }
    for (i, trace) in s.traces.drilldowns.iter().enumerate() {
        let focus: BTreeSet<u64> = check
            .anomalies
            .iter()
            .filter(|a| a.key == trace.key)
            .flat_map(|a| a.ops.iter().copied())
            .collect();
        let _ = writeln!(
            out,
            "<h3 id=\"drill-{i}\">Drill-down: key <code>{}</code></h3>",
            escape(&trace.key)
        );
        key_tables(out, trace, &focus);
        let svg =
            space_time(s, trace, &focus, &format!("Operations and applies of key {}", trace.key));
        figure(
            out,
            &svg,
            "Time flows downwards; each lane is a region; dots are writes at their completion and \
             reads at their invocation (only the anomaly's reads when there are many), arrows run from a write's ack to each region's apply \
             of its version. The anomaly's operations are bold in the table above.",
        );
    }
    end_section(out);
}

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
fn key_tables(out: &mut String, trace: &KeyTrace, focus: &BTreeSet<u64>) {
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

/// A key's writes travelling between regions; reads too when there are few operations or they
/// are in `focus`.
fn space_time(s: &Summary, trace: &KeyTrace, focus: &BTreeSet<u64>, title: &str) -> String {
    let mut lanes: Vec<String> = s.run.regions.iter().map(|r| r.name.clone()).collect();
    let extra = trace.ops.iter().map(|o| &o.region).chain(trace.applies.iter().map(|a| &a.region));
    for region in extra {
        if !lanes.contains(region) {
            lanes.push(region.clone());
        }
    }
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
    // Faults that start or stop within the diagram's span, on the lane of the region they name.
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

// ---------------------------------------------------------------------------------------------
// Figures.

/// A CDF's points, starting from probability 0 so the step rises from the axis.
fn cdf_series(name: String, points: &[(f64, f64)], style: Style) -> Series {
    let mut pts = Vec::with_capacity(points.len() + 1);
    if let Some(&(x, _)) = points.first() {
        pts.push((x.min(0.0), 0.0));
    }
    pts.extend_from_slice(points);
    Series { name, points: pts, style, errors: None }
}

fn cdf_chart(title: &str) -> Chart {
    let mut chart = Chart::new(title, "time after the write was acknowledged (ms)", "P(visible)");
    chart.x.min = Some(0.0);
    chart.y.min = Some(0.0);
    chart.y.max = Some(1.0);
    chart
}

fn stats_row(name: String, v: &VisibilityStats) -> Vec<String> {
    vec![
        name,
        v.count.to_string(),
        v.missing.to_string(),
        fmt_ms(v.p50_ms),
        fmt_ms(v.p90_ms),
        fmt_ms(v.p99_ms),
        fmt_ms(v.p999_ms),
        fmt_ms(v.max_ms),
        fmt_ms(v.t_999_ms),
        fmt_ms(v.predicted_p50_ms),
        fmt_ms(v.predicted_p99_ms),
        fmt_num(v.ks_distance, 3),
        fmt_ms(v.rmse_ms),
        fmt_ms(v.mean_offset_ms),
        fmt_ms(v.blackbox_p50_ms),
        fmt_ms(v.blackbox_gap_ms),
    ]
}

fn visibility(out: &mut String, s: &Summary) {
    section(out, "visibility", SECTIONS[2]);
    let vis = &s.visibility;
    if vis.overall.count == 0 && vis.overall.missing == 0 {
        no_data(out, "no acknowledged write with apply events in another region");
        end_section(out);
        return;
    }
    let mut chart = cdf_chart("t-visibility CDF, all pairs pooled and global");
    chart.series.push(cdf_series("all pairs, measured".into(), &vis.overall.cdf, Style::Step));
    chart.series.push(cdf_series(
        "all pairs, model".into(),
        &vis.overall.predicted_cdf,
        Style::Dashed,
    ));
    chart.series.push(cdf_series(
        "every region (global), measured".into(),
        &vis.global.cdf,
        Style::Step,
    ));
    chart.series.push(cdf_series(
        "every region (global), model".into(),
        &vis.global.predicted_cdf,
        Style::Dashed,
    ));
    chart.series.retain(|series| !series.points.is_empty());
    figure(
        out,
        &chart.render(),
        "Each curve gives the probability that a region holds a write (or a newer version) that \
         many ms after its ack; solid is measured from apply events, dashed is the configured \
         delay model; the gap between them is what gossip and apply add to the link delay.",
    );
    let origins: Vec<&str> = {
        let mut seen: Vec<&str> = Vec::new();
        for p in &vis.pairs {
            if !seen.contains(&p.from.as_str()) {
                seen.push(&p.from);
            }
        }
        seen
    };
    for origin in origins {
        let mut chart = cdf_chart(&format!("t-visibility CDF of writes made in {origin}"));
        for p in vis.pairs.iter().filter(|p| p.from == origin) {
            chart.series.push(cdf_series(
                format!("→ {} measured", p.to),
                &p.stats.cdf,
                Style::Step,
            ));
            if !p.stats.predicted_cdf.is_empty() {
                chart.series.push(cdf_series(
                    format!("→ {} model", p.to),
                    &p.stats.predicted_cdf,
                    Style::Dashed,
                ));
            }
        }
        figure(
            out,
            &chart.render(),
            "One solid step curve per destination (measured) and a dashed one for its link's model: \
             read off the time at which a destination sees a given fraction of this region's writes.",
        );
    }
    if !s.faults.is_empty() {
        out.push_str(
            "<p class=\"how\">Fault windows are not separated here: writes made during a partition \
             pull the tail of their pairs' curves to the right.</p>\n",
        );
    }
    let mut rows = vec![
        stats_row("all pairs".into(), &vis.overall),
        stats_row("global (every region)".into(), &vis.global),
    ];
    rows.extend(vis.pairs.iter().map(|p| stats_row(format!("{} → {}", p.from, p.to), &p.stats)));
    table(
        out,
        &[
            "Pair",
            "n",
            "missing",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "t(99.9 %) ms",
            "model p50",
            "model p99",
            "KS",
            "RMSE ms",
            "p50 offset ms",
            "black-box p50",
            "black-box gap",
        ],
        &rows,
    );
    out.push_str(
        "<p class=\"how\">Quantiles are nearest-rank over writes that arrived; t(99.9 %) also \
         counts missing writes (– when more than 0.1 % never arrived). KS is the largest vertical \
         distance between measured and model CDFs, RMSE compares their quantiles at p1…p99, the \
         offset is measured − model median. The black-box p50 is measured from reads (first read \
         after which no older version is returned); its gap to the white-box p50 is the error of \
         measuring by reading.</p>\n",
    );
    end_section(out);
}

fn stale(out: &mut String, s: &Summary) {
    section(out, "stale", SECTIONS[3]);
    let st = &s.stale;
    if st.reads == 0 {
        no_data(out, "no acknowledged read followed an acknowledged write of its key");
        end_section(out);
        return;
    }
    let mut chart = Chart::new(
        "Stale-read fraction vs time since the newest write",
        "time since the newest write was acknowledged, Δ (ms)",
        "stale fraction of reads",
    );
    chart.y.min = Some(0.0);
    chart.y.max = Some(1.0);
    chart.x.min = Some(0.0);
    for (name, pick) in [("local (write's region)", true), ("remote", false)] {
        let mut points = Vec::new();
        let mut errors = Vec::new();
        for b in st.buckets.iter().filter(|b| b.to_ms.is_some()) {
            let r = if pick { &b.local } else { &b.remote };
            if let (Some(rate), Some(low), Some(high)) = (r.rate, r.low, r.high) {
                points.push((b.from_ms + st.bucket_ms / 2.0, rate));
                errors.push((low, high));
            }
        }
        if !points.is_empty() {
            chart.series.push(Series {
                name: name.into(),
                points,
                style: Style::Line,
                errors: Some(errors),
            });
        }
    }
    figure(
        out,
        &chart.render(),
        "Each point is the fraction of reads, in a Δ bucket, that returned something older than the \
         newest write acknowledged before they began, with its Wilson 95 % interval: the remote \
         line is 1 − t-visibility seen by readers, the local one should stay at 0.",
    );
    let mut categories: Vec<String> = st
        .k_histogram
        .iter()
        .map(|b| if b.or_more { format!("≥{}", b.k) } else { b.k.to_string() })
        .collect();
    if categories.is_empty() {
        categories.push("0".into());
    }
    let bars = Bars {
        title: "k-staleness: acknowledged versions behind".into(),
        y_label: "reads".into(),
        categories,
        sets: vec![("reads".into(), st.k_histogram.iter().map(|b| b.reads as f64).collect())],
    };
    figure(
        out,
        &bars.render(),
        "Bar k counts the reads that returned a version k acknowledged writes behind the newest \
         (0: fresh); PBS's k-staleness.",
    );
    let last = st.buckets.last();
    table(
        out,
        &["Reads", "Stale fraction (95 % interval)"],
        &[
            vec![
                "all".into(),
                format!("{}, {} of {}", fmt_pct(st.overall_rate), st.stale, st.reads),
            ],
            vec!["local".into(), rate_ci(&st.local)],
            vec!["remote".into(), rate_ci(&st.remote)],
            vec!["during faults".into(), rate_ci(&st.during_faults)],
            vec!["outside faults".into(), rate_ci(&st.outside_faults)],
            vec![
                format!("remote, Δ ≥ {} ms", fmt_ms(last.map(|b| b.from_ms))),
                last.map_or("no data".into(), |b| rate_ci(&b.remote)),
            ],
        ],
    );
    let _ = writeln!(
        out,
        "<p class=\"how\">Overall stale rate {} over {} judged reads ({} not judged: nothing \
         acknowledged before them, or a not-found an expiry may explain).</p>",
        fmt_pct(st.overall_rate),
        st.reads,
        st.unjudged
    );
    end_section(out);
}

fn latency(out: &mut String, s: &Summary) {
    section(out, "latency", SECTIONS[4]);
    if s.latency.series.is_empty() && s.throughput.series.is_empty() {
        no_data(out, "no operations");
        end_section(out);
        return;
    }
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
    figure(
        out,
        &chart.render(),
        &format!(
            "Per {} ms bucket of invocation time, the median (solid) and 99th percentile (dashed) \
             latency of each operation kind; shaded bands are fault windows.",
            fmt_ms(Some(s.latency.bucket_ms))
        ),
    );
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
    figure(
        out,
        &chart.render(),
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

/// A per-process timeline: one row per client, one bar per operation from invoke to completion.
fn timeline(out: &mut String, s: &Summary) {
    section(out, "timeline", SECTIONS[5]);
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
    let span = (hi.saturating_sub(lo)).max(1) as f64;
    let (left, right, top, row) = (90.0, 700.0, 40.0, 16.0);
    let height = top + row * processes.len() as f64 + 40.0;
    let x = |t: u64| left + (t.saturating_sub(lo)) as f64 / span * (right - left);
    let mut svg = format!(
        "<svg width=\"720\" height=\"{height:.0}\" viewBox=\"0 0 720 {height:.0}\" role=\"img\" \
         style=\"max-width:100%;height:auto\" font-family=\"sans-serif\" font-size=\"11\">\
         <title>Operations per client, {lo} – {hi} ms</title>\
         <text x=\"360\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">Operations per client, {lo} – {hi} ms</text>"
    );
    for f in &s.faults {
        let (from, to) = (f.start_ms.max(lo as f64), f.end_ms.min(hi as f64));
        if to > from {
            let (a, b) = (x(from as u64), x(to as u64));
            let _ = write!(
                svg,
                "<rect x=\"{a:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#9e9e9e\" fill-opacity=\"0.2\"/>",
                b - a,
                row * processes.len() as f64
            );
        }
    }
    for (i, p) in processes.iter().enumerate() {
        let y = top + row * i as f64;
        let _ = write!(
            svg,
            "<text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">client {p}</text>",
            left - 6.0,
            y + 11.0
        );
    }
    for o in ops {
        let Some(i) = processes.iter().position(|&p| p == o.process) else { continue };
        let y = top + row * i as f64 + 2.0;
        let (a, b) = (x(o.invoke_ms), x(o.complete_ms.max(o.invoke_ms)));
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
            row - 4.0,
            escape(&tip)
        );
    }
    let base = top + row * processes.len() as f64 + 16.0;
    let _ = write!(
        svg,
        "<text x=\"{left}\" y=\"{base:.0}\">{lo} ms</text><text x=\"{right}\" y=\"{base:.0}\" text-anchor=\"end\">{hi} ms</text>\
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

fn hot_key(out: &mut String, s: &Summary) {
    section(out, "spacetime", SECTIONS[6]);
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

fn divergence(out: &mut String, s: &Summary) {
    section(out, "divergence", SECTIONS[7]);
    let d = &s.divergence;
    if d.samples.is_empty() {
        no_data(out, "no apply events");
    } else {
        let mut chart =
            Chart::new("Divergent keys over time", RUN_AXIS, "keys whose regions disagree");
        chart.y.min = Some(0.0);
        chart.bands = bands(s);
        chart.markers = s
            .convergence
            .iter()
            .map(|c| Marker { at: c.heal_at_ms / 1000.0, label: format!("heal ({})", c.fault) })
            .collect();
        chart.series.push(Series {
            name: "divergent keys".into(),
            points: d.samples.iter().map(|p| (p.at_ms / 1000.0, p.divergent as f64)).collect(),
            style: Style::Step,
            errors: None,
        });
        figure(
            out,
            &chart.render(),
            "The number of keys whose latest applied versions differ between regions (a region \
             without the key counts as differing), sampled over the run; dashed lines are heals, \
             shaded bands fault windows.",
        );
        let _ = writeln!(
            out,
            "<p>At most {} keys divergent at once (first at {} ms); time-weighted divergent \
             fraction {}. Divergence window per write: p50 {} ms, p99 {} ms, max {} ms over {} \
             writes.</p>",
            d.max_divergent,
            fmt_ms(d.max_at_ms),
            fmt_pct(d.time_weighted_fraction),
            fmt_ms(d.window.p50_ms),
            fmt_ms(d.window.p99_ms),
            fmt_ms(d.window.max_ms),
            d.window.count
        );
    }
    let converged = match d.converged_within_quiet {
        Some(true) => "yes".to_owned(),
        Some(false) => format!(
            "no: {} (key, region) pairs still lacked their newest version",
            d.unconverged_at_finals
        ),
        None => "unknown (no final reads)".to_owned(),
    };
    let _ = writeln!(
        out,
        "<p>Every region converged before the final reads: {}.</p>",
        escape(&converged)
    );
    if s.convergence.is_empty() {
        no_data(out, "no fault stopped during the run, so there is no heal to converge after");
    } else {
        if s.convergence.len() > 1 {
            let boxes = BoxPlot {
                title: "Convergence time after heal".into(),
                y_label: "convergence time (ms)".into(),
                boxes: {
                    let mut boxes: Vec<(String, Vec<f64>)> = Vec::new();
                    for c in &s.convergence {
                        let Some(ms) = c.convergence_ms else { continue };
                        match boxes.iter_mut().find(|(kind, _)| *kind == c.fault) {
                            Some((_, values)) => values.push(ms),
                            None => boxes.push((c.fault.clone(), vec![ms])),
                        }
                    }
                    boxes
                },
            };
            figure(
                out,
                &boxes.render(),
                "Convergence times after this run's heals, one box per fault kind: box from p25 to \
                 p75, median line, whiskers to min and max, one dot per heal.",
            );
        }
        let rows: Vec<Vec<String>> = s
            .convergence
            .iter()
            .map(|c| {
                vec![
                    c.fault_id.map_or("–".into(), |id| id.to_string()),
                    c.fault.clone(),
                    fmt_ms(Some(c.heal_at_ms)),
                    c.convergence_ms.map_or("never (or no data)".into(), |v| fmt_ms(Some(v))),
                    c.backlog.to_string(),
                    c.keys.to_string(),
                    c.unconverged.to_string(),
                ]
            })
            .collect();
        table(
            out,
            &[
                "Fault",
                "Kind",
                "Healed at (ms)",
                "Convergence (ms)",
                "Backlog at heal",
                "Keys written before",
                "Never converged",
            ],
            &rows,
        );
        out.push_str(
            "<p class=\"how\">Convergence: until every region held, for every key written before \
             the heal, the greatest acknowledged version invoked before it (or newer). Backlog: \
             (key, region) pairs lacking it at the heal.</p>\n",
        );
    }
    end_section(out);
}

fn heatmap(out: &mut String, s: &Summary) {
    section(out, "heatmap", SECTIONS[8]);
    let h = &s.lag_heatmap;
    if h.p99_ms.iter().flatten().all(Option::is_none) {
        no_data(out, "no visibility was measured");
        end_section(out);
        return;
    }
    let map = Heatmap {
        title: "p99 replication lag by origin and destination".into(),
        row_label: "origin region".into(),
        col_label: "destination region".into(),
        rows: h.origins.clone(),
        cols: h.destinations.clone(),
        cells: h.p99_ms.clone(),
        unit: "ms".into(),
    };
    figure(
        out,
        &map.render(),
        "Each cell is the 99th percentile of t-visibility from the row's region to the column's, \
         in ms after the ack (as DynamoDB's ReplicationLatency); grey cells were not measured.",
    );
    end_section(out);
}

fn conflicts(out: &mut String, s: &Summary) {
    section(out, "conflicts", SECTIONS[9]);
    let c = &s.conflicts;
    if c.writes == 0 {
        no_data(out, "no acknowledged writes");
        end_section(out);
        return;
    }
    if !c.determined {
        no_data(out, "concurrency needs apply events; only real-time inversions are counted");
    } else {
        let bars = Bars {
            title: "Conflict, LWW-loser and silent-loss rates by origin region".into(),
            y_label: "fraction of acknowledged writes".into(),
            categories: c.per_region.iter().map(|r| r.region.clone()).collect(),
            sets: vec![
                (
                    "conflict".into(),
                    c.per_region.iter().map(|r| r.conflict_rate.unwrap_or(f64::NAN)).collect(),
                ),
                (
                    "LWW loser".into(),
                    c.per_region.iter().map(|r| r.loser_rate.unwrap_or(f64::NAN)).collect(),
                ),
                (
                    "silent loss".into(),
                    c.per_region.iter().map(|r| r.silent_loss_rate.unwrap_or(f64::NAN)).collect(),
                ),
                (
                    "conflict, Poisson estimate".into(),
                    c.per_region.iter().map(|r| r.poisson_estimate.unwrap_or(f64::NAN)).collect(),
                ),
            ],
        };
        figure(
            out,
            &bars.render(),
            "For the writes made in each region: the fraction concurrent with a write from another \
             region, the fraction LWW discarded for a concurrent greater version, the fraction of \
             those no read ever returned, and the conflict rate a Poisson model predicts from the \
             keys' write rates and the mean visibility delay.",
        );
    }
    table(
        out,
        &["Measure", "Value"],
        &[
            vec!["Acknowledged writes".into(), c.writes.to_string()],
            vec![
                "Conflict rate".into(),
                format!("{} ({} writes)", fmt_pct(c.conflict_rate), c.concurrent),
            ],
            vec![
                "Poisson estimate of the conflict rate".into(),
                format!(
                    "{} (mean delay {} ms)",
                    fmt_pct(c.poisson_estimate),
                    fmt_ms(c.poisson_delay_ms)
                ),
            ],
            vec![
                "LWW-loser rate".into(),
                format!("{} ({} writes)", fmt_pct(c.loser_rate), c.losers),
            ],
            vec![
                "Silent-loss rate".into(),
                format!("{} ({} writes)", fmt_pct(c.silent_loss_rate), c.silent_losses),
            ],
            vec![
                "Real-time inversions".into(),
                format!(
                    "{} ({} of them between equal clock readings, ordered by the region tie-break)",
                    c.inversions, c.tied_inversions
                ),
            ],
            vec![
                "Timestamp source".into(),
                if c.timestamp_source.is_empty() {
                    "unknown".into()
                } else {
                    c.timestamp_source.clone()
                },
            ],
        ],
    );
    out.push_str(
        "<p class=\"how\">Losing a concurrent write is LWW's documented behaviour and is reported as \
         a rate. A real-time inversion (a write invoked after another's ack, yet with a smaller \
         version) is a bug with synchronized physical-time versions, and expected under injected \
         clock skew or with counters that lag real time: read it against the timestamp source.</p>\n",
    );
    if !c.inversion_examples.is_empty() {
        let rows: Vec<Vec<String>> = c
            .inversion_examples
            .iter()
            .map(|e| vec![e.key.clone(), e.earlier.to_string(), e.later.to_string()])
            .collect();
        table(out, &["Key", "Acknowledged first (op)", "Invoked after, lost (op)"], &rows);
    }
    end_section(out);
}

fn clocks(out: &mut String, s: &Summary) {
    section(out, "clocks", SECTIONS[10]);
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

fn availability(out: &mut String, s: &Summary) {
    section(out, "availability", SECTIONS[11]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::summarize;
    use crate::history::{Apply, FaultEvent, FinalRead, Function, History, Op, Outcome};
    use crate::meta::{LinkMeta, RegionMeta, RunMeta};

    fn small_run() -> (History, RunMeta) {
        let mut h = History::default();
        let ms = 1_000_000;
        let op = |index: u64, region: &str, f: Function, version: &str, at: u64| Op {
            index,
            process: index as u32 % 3,
            region: region.into(),
            f,
            key: "k<&>".into(),
            value: Some(format!("v{index}")),
            expiration: None,
            version: Some(version.into()),
            invoke: at * ms,
            complete: (at + 5) * ms,
            outcome: Outcome::Ok,
            wall_ms: 0,
        };
        h.ops.push(op(0, "wnam", Function::Put, "0000000000000001-wnam", 10));
        h.ops.push(op(1, "enam", Function::Put, "0000000000000002-enam", 12));
        h.ops.push(op(2, "enam", Function::Get, "0000000000000001-wnam", 400));
        h.ops[2].value = Some("v0".into());
        for (region, version, at) in [
            ("wnam", "0000000000000001-wnam", 15),
            ("enam", "0000000000000002-enam", 17),
            ("wnam", "0000000000000002-enam", 300),
        ] {
            h.applies.push(Apply::exact(region, "k<&>", version, at * ms));
        }
        let fault = serde_json::json!({"kind": "partition", "a": ["wnam"], "b": ["enam"]});
        h.faults.push(FaultEvent {
            id: Some(0),
            at: 100 * ms,
            action: "start".into(),
            fault: fault.clone(),
        });
        h.faults.push(FaultEvent { id: Some(0), at: 250 * ms, action: "stop".into(), fault });
        let clock = serde_json::json!({"kind": "clock_offset", "region": "enam", "offset_ms": 200});
        h.faults.push(FaultEvent {
            id: Some(1),
            at: 50 * ms,
            action: "start".into(),
            fault: clock.clone(),
        });
        h.faults.push(FaultEvent {
            id: Some(1),
            at: 350 * ms,
            action: "stop".into(),
            fault: clock,
        });
        // wnam ends on the loser: an anomaly to drill into.
        for (region, version, value) in
            [("wnam", "0000000000000001-wnam", "v0"), ("enam", "0000000000000002-enam", "v1")]
        {
            h.finals.push(FinalRead {
                region: region.into(),
                key: "k<&>".into(),
                value: Some(value.into()),
                version: Some(version.into()),
                at: 2000 * ms,
                complete: None,
                wall_ms: 0,
            });
        }
        let region = |name: &str| RegionMeta {
            name: name.into(),
            url: format!("http://127.0.0.1:{}/client/v4", if name == "wnam" { 8787 } else { 8788 }),
            writers: 1,
            readers: 1,
        };
        let link = |from: &str, to: &str| LinkMeta {
            from: from.into(),
            to: to.into(),
            model: "uniform(50ms,300ms)".into(),
        };
        let meta = RunMeta {
            seed: 42,
            scenario: "partition-<heal>".into(),
            scenario_text: "name: partition-<heal>\n".into(),
            edgekv_version: "0.1.0".into(),
            topology: "in-process".into(),
            regions: vec![region("wnam"), region("enam")],
            links: vec![link("wnam", "enam"), link("enam", "wnam")],
            workload: (0, 500 * ms),
            quiet_ms: 1000,
            timestamp_source: "hlc".into(),
            ..RunMeta::default()
        };
        (h, meta)
    }

    #[test]
    fn the_report_has_every_section_in_order_and_nothing_external() {
        let (history, meta) = small_run();
        let summary = summarize(&history, Some(&meta), None);
        assert_eq!(summary.check.validity, "invalid");
        let html = render(&summary);
        let mut from = 0;
        for title in SECTIONS {
            let heading = format!("<h2>{}</h2>", escape(title));
            let at = html[from..]
                .find(&heading)
                .unwrap_or_else(|| panic!("{title} missing or out of order"));
            from += at + heading.len();
        }
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("edgekv lab run partition-&lt;heal&gt; --seed 42"));
        assert!(html.contains("id=\"drill-0\""), "a drill-down for the anomaly");
        assert!(html.contains("<span class=\"badge invalid\">invalid</span>"));
        assert!(html.contains("uniform(50ms,300ms)"));
        assert!(html.contains("t-visibility CDF of writes made in wnam"));
        assert!(html.contains("Clock offset per region"));
        assert!(!html.contains("No clock offsets"));
        // The key's markup characters are escaped everywhere.
        assert!(!html.contains("k<&>"));
        assert!(html.contains("k&lt;&amp;&gt;"));
        assert!(!html.contains("NaN"));
        // Self-contained: no script, no external resource. The only URLs are the SVG namespace
        // (an identifier, never fetched) and the regions' endpoints printed as text.
        let lower = html.to_lowercase();
        assert!(!lower.contains("<script"));
        assert!(!lower.contains("src="));
        assert!(!lower.contains("href=\"http") && !lower.contains("url(http"));
        assert!(!lower.contains("https://"));
        let namespace = lower.matches("xmlns=\"http://www.w3.org/2000/svg\"").count();
        let endpoints = lower.matches("<td>http://127.0.0.1:").count();
        assert_eq!(endpoints, 2);
        assert_eq!(lower.matches("http://").count(), namespace + endpoints);
    }

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

    #[test]
    fn an_empty_summary_renders_with_no_data_notes() {
        let summary = summarize(&History::default(), None, None);
        let html = render(&summary);
        for title in SECTIONS {
            assert!(html.contains(&format!("<h2>{}</h2>", escape(title))), "{title}");
        }
        assert!(html.contains("run.json was not found"));
        assert!(html.contains("No data: no acknowledged write"));
        assert!(html.contains("edgekv lab run SCENARIO --seed 0"));
        assert!(html.contains("No clock offsets were injected."));
        assert!(!html.contains("NaN"));
    }
}
