//! How fast writes became visible: the t-visibility CDFs and their table, the stale reads,
//! and the replication lag heatmap.

use std::fmt::Write as _;

use super::{
    end_section, figure, fmt_ms, fmt_num, fmt_pct, no_data, rate_ci, section, table, SECTIONS,
};
use crate::report::svg::{Bars, Chart, Heatmap, Series, Style};
use crate::summary::{StaleSummary, Summary, VisibilityStats, VisibilitySummary};

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

/// t-visibility: the pooled and global CDFs, one chart per origin, and the figures' table.
pub(super) fn visibility(out: &mut String, s: &Summary) {
    section(out, "visibility", SECTIONS[2]);
    let vis = &s.visibility;
    if vis.overall.count == 0 && vis.overall.missing == 0 {
        no_data(out, "no acknowledged write with apply events in another region");
        end_section(out);
        return;
    }
    figure(
        out,
        &pooled_chart(vis),
        "Each curve gives the probability that a region holds a write (or a newer version) that \
         many ms after its ack; solid is measured from apply events, dashed is the configured \
         delay model; the gap between them is what gossip and apply add to the link delay.",
    );
    per_origin_charts(out, vis);
    if !s.faults.is_empty() {
        out.push_str(
            "<p class=\"how\">Fault windows are not separated here: writes made during a partition \
             pull the tail of their pairs' curves to the right.</p>\n",
        );
    }
    visibility_table(out, vis);
    end_section(out);
}

/// All pairs pooled and every region at once, measured and modelled.
fn pooled_chart(vis: &VisibilitySummary) -> String {
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
    chart.render()
}

/// One chart per origin region, a measured and a modelled curve per destination.
fn per_origin_charts(out: &mut String, vis: &VisibilitySummary) {
    let mut origins: Vec<&str> = Vec::new();
    for p in &vis.pairs {
        if !origins.contains(&p.from.as_str()) {
            origins.push(&p.from);
        }
    }
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
}

/// The figures of all pairs, of every region at once and of each pair.
fn visibility_table(out: &mut String, vis: &VisibilitySummary) {
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
}

/// Stale reads: by time since the newest write, k-staleness, and the rates' table.
pub(super) fn stale(out: &mut String, s: &Summary) {
    section(out, "stale", SECTIONS[3]);
    let st = &s.stale;
    if st.reads == 0 {
        no_data(out, "no acknowledged read followed an acknowledged write of its key");
        end_section(out);
        return;
    }
    figure(
        out,
        &stale_chart(st),
        "Each point is the fraction of reads, in a Δ bucket, that returned something older than the \
         newest write acknowledged before they began, with its Wilson 95 % interval: the remote \
         line is 1 − t-visibility seen by readers, the local one should stay at 0.",
    );
    figure(
        out,
        &k_staleness(st),
        "Bar k counts the reads that returned a version k acknowledged writes behind the newest \
         (0: fresh); PBS's k-staleness.",
    );
    stale_table(out, st);
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

/// The stale fraction per Δ bucket, local and remote, with their intervals.
fn stale_chart(st: &StaleSummary) -> String {
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
    chart.render()
}

/// The k-staleness histogram.
fn k_staleness(st: &StaleSummary) -> String {
    let mut categories: Vec<String> = st
        .k_histogram
        .iter()
        .map(|b| if b.or_more { format!("≥{}", b.k) } else { b.k.to_string() })
        .collect();
    if categories.is_empty() {
        categories.push("0".into());
    }
    Bars {
        title: "k-staleness: acknowledged versions behind".into(),
        y_label: "reads".into(),
        categories,
        sets: vec![("reads".into(), st.k_histogram.iter().map(|b| b.reads as f64).collect())],
    }
    .render()
}

fn stale_table(out: &mut String, st: &StaleSummary) {
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
}

/// p99 visibility by origin and destination.
pub(super) fn heatmap(out: &mut String, s: &Summary) {
    section(out, "heatmap", SECTIONS[9]);
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
