//! The report for people: one self-contained HTML file drawn from a [`Summary`].
//!
//! Self-contained because a report is attached to tickets, archived with CI artefacts and opened
//! offline: inline CSS, inline SVG from [`crate::report::svg`], no script, nothing fetched. It is
//! drawn from the summary alone (not the history), so `summary.json` is enough to redraw it.
//!
//! The order follows EXPERIMENTS.md's plot checklist, after what a reader needs first: what ran
//! and how to rerun it, then whether the checker found anything, with a drill-down per anomaly.
//! One module per group of sections: `run` (the run and the verdict), `keys` (key excerpts and
//! space-time diagrams), `visibility` (t-visibility, stale reads, the lag heatmap), `cache`
//! (staleness split into propagation and the edge cache),
//! `operations` (latency, the process timeline, clocks, availability) and `replication`
//! (divergence and convergence, conflicts); the formatting they share is here.

mod cache;
mod keys;
mod operations;
mod replication;
mod run;
mod visibility;

use std::fmt::Write as _;

use super::svg::{escape, Band};
use crate::summary::{RateWithInterval, Summary};

/// Section titles, in order; the test checks each is present.
pub const SECTIONS: [&str; 13] = [
    "Run",
    "Checker verdict",
    "1. t-visibility",
    "2. Stale reads",
    "3. Edge cache",
    "4. Latency and throughput",
    "5. Process timeline",
    "6. Space-time diagram of the most-written key",
    "7. Divergence and convergence",
    "8. Replication lag heatmap",
    "9. Conflicts",
    "10. Clock offsets",
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
    run::header(&mut out, summary);
    run::verdict(&mut out, summary);
    visibility::visibility(&mut out, summary);
    visibility::stale(&mut out, summary);
    cache::cache(&mut out, summary);
    operations::latency(&mut out, summary);
    operations::timeline(&mut out, summary);
    keys::hot_key(&mut out, summary);
    replication::divergence(&mut out, summary);
    visibility::heatmap(&mut out, summary);
    replication::conflicts(&mut out, summary);
    operations::clocks(&mut out, summary);
    operations::availability(&mut out, summary);
    out.push_str("</body></html>\n");
    out
}

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

#[cfg(test)]
mod tests;
