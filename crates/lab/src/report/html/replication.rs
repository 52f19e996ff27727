//! How the regions came back together: divergent keys over time, convergence after each heal,
//! and the conflicts last-writer-wins resolved.

use std::fmt::Write as _;

use super::{
    bands, end_section, figure, fmt_ms, fmt_pct, no_data, section, table, RUN_AXIS, SECTIONS,
};
use crate::report::svg::{escape, Bars, BoxPlot, Chart, Marker, Series, Style};
use crate::summary::{ConflictSummary, Summary};

/// Divergence over time, whether the regions converged before the final reads, and the
/// convergence after each heal.
pub(super) fn divergence(out: &mut String, s: &Summary) {
    section(out, "divergence", SECTIONS[8]);
    let d = &s.divergence;
    if d.samples.is_empty() {
        no_data(out, "no apply events");
    } else {
        divergent_keys(out, s);
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
        after_heals(out, s);
    }
    end_section(out);
}

/// The divergent keys over time, and the divergence figures.
fn divergent_keys(out: &mut String, s: &Summary) {
    let d = &s.divergence;
    let mut chart = Chart::new("Divergent keys over time", RUN_AXIS, "keys whose regions disagree");
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

/// Convergence after each heal: a box per fault kind when there are several heals, and a row
/// per heal.
fn after_heals(out: &mut String, s: &Summary) {
    if s.convergence.len() > 1 {
        figure(
            out,
            &heal_boxes(s).render(),
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

/// Convergence times grouped by fault kind.
fn heal_boxes(s: &Summary) -> BoxPlot {
    let mut boxes: Vec<(String, Vec<f64>)> = Vec::new();
    for c in &s.convergence {
        let Some(ms) = c.convergence_ms else { continue };
        match boxes.iter_mut().find(|(kind, _)| *kind == c.fault) {
            Some((_, values)) => values.push(ms),
            None => boxes.push((c.fault.clone(), vec![ms])),
        }
    }
    BoxPlot {
        title: "Convergence time after heal".into(),
        y_label: "convergence time (ms)".into(),
        boxes,
    }
}

/// Conflict, LWW-loser and silent-loss rates per region, the measures' table and examples of
/// real-time inversions.
pub(super) fn conflicts(out: &mut String, s: &Summary) {
    section(out, "conflicts", SECTIONS[10]);
    let c = &s.conflicts;
    if c.writes == 0 {
        no_data(out, "no acknowledged writes");
        end_section(out);
        return;
    }
    if !c.determined {
        no_data(out, "concurrency needs apply events; only real-time inversions are counted");
    } else {
        figure(
            out,
            &conflict_bars(c).render(),
            "For the writes made in each region: the fraction concurrent with a write from another \
             region, the fraction LWW discarded for a concurrent greater version, the fraction of \
             those no read ever returned, and the conflict rate a Poisson model predicts from the \
             keys' write rates and the mean visibility delay.",
        );
    }
    measures(out, c);
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

fn conflict_bars(c: &ConflictSummary) -> Bars {
    Bars {
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
    }
}

/// Each measure with its count.
fn measures(out: &mut String, c: &ConflictSummary) {
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
}
