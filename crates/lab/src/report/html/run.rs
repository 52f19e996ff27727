//! The first two sections: what ran and how to rerun it, then the checker's verdict with a
//! drill-down per anomalous key.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::keys::{key_tables, space_time};
use super::{end_section, figure, fmt_ms, no_data, section, table, SECTIONS};
use crate::report::svg::escape;
use crate::summary::{RunSummary, Summary};

/// The title, then the Run section: the run's facts, its regions and links, the command that
/// repeats it, the scenario file and the notes on what limits the figures.
pub(super) fn header(out: &mut String, s: &Summary) {
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
    table(out, &["", ""], &facts(run));
    topology(out, run);
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

/// The run's facts, one row each.
fn facts(run: &RunSummary) -> Vec<Vec<String>> {
    let h = &run.history;
    vec![
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
        vec!["Edge cache and write limit".into(), edge(run)],
    ]
}

/// The regions' edge settings in a phrase, and whether they were set or only declared.
fn edge(run: &RunSummary) -> String {
    let Some(e) = run.edge else { return "unknown (a run from before the edge cache)".into() };
    let on = |b: bool| if b { "on" } else { "off" };
    format!(
        "edge cache {}, REST reads {}, one write per second per key {} ({})",
        on(e.cache),
        if e.cache && e.rest_cache { "cached" } else { "uncached" },
        on(e.write_rate_limit),
        if e.declared {
            "declared: an external cluster runs with what its nodes were started with"
        } else {
            "configured"
        }
    )
}

/// The regions with their endpoints and clients, and each link's delay model.
fn topology(out: &mut String, run: &RunSummary) {
    let regions: Vec<Vec<String>> = run
        .regions
        .iter()
        .map(|r| {
            let reads = if r.reads.is_empty() { "rest" } else { r.reads.as_str() };
            let endpoint = match &r.binding_url {
                Some(binding) => format!("{} (binding {binding})", r.url),
                None => r.url.clone(),
            };
            vec![
                r.name.clone(),
                endpoint,
                r.writers.to_string(),
                r.readers.to_string(),
                reads.into(),
            ]
        })
        .collect();
    if regions.is_empty() {
        no_data(out, "no regions are known");
    } else {
        table(out, &["Region", "Endpoint", "Writers", "Readers", "Gets via"], &regions);
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
}

fn badge_class(validity: &str) -> &'static str {
    match validity {
        "valid" => "valid",
        "invalid" => "invalid",
        _ => "unknown",
    }
}

/// The checker's verdict, its anomalies and undecided points, and a drill-down per anomalous
/// key.
pub(super) fn verdict(out: &mut String, s: &Summary) {
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
    anomalies(out, s);
    if !check.unknowns.is_empty() {
        out.push_str("<details><summary>What the checker could not decide</summary><ul>");
        for u in &check.unknowns {
            let _ = write!(out, "<li>{}</li>", escape(u));
        }
        out.push_str("</ul></details>\n");
    }
    drilldowns(out, s);
    end_section(out);
}

/// Each anomaly with its operations, linked to its key's drill-down.
fn anomalies(out: &mut String, s: &Summary) {
    if s.check.anomalies.is_empty() {
        return;
    }
    out.push_str("<ol>");
    for a in &s.check.anomalies {
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

/// Per anomalous key: its operations and final reads as tables, and its space-time diagram.
fn drilldowns(out: &mut String, s: &Summary) {
    for (i, trace) in s.traces.drilldowns.iter().enumerate() {
        let focus: BTreeSet<u64> = s
            .check
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
}
