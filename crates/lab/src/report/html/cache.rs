//! The edge cache's section: staleness split into propagation and the cache, per read path,
//! and how long a cached copy hid a newer version that had reached its region.

use std::fmt::Write as _;

use super::SECTIONS;
use super::{bands, end_section, figure, fmt_ms, fmt_pct, no_data, section, table, RUN_AXIS};
use crate::report::svg::{Chart, Series, Style};
use crate::summary::{ArrivalStats, CacheSummary, ReadPathStats, Summary};

/// Per read path: black-box visibility and stale reads; per arrival: how long the cache hid it.
pub(super) fn cache(out: &mut String, s: &Summary) {
    section(out, "cache", SECTIONS[4]);
    let c = &s.cache;
    let cached = c.paths.iter().any(|p| p.cache_ttl_s.is_some());
    if c.paths.is_empty() {
        no_data(out, "no acknowledged read");
        end_section(out);
        return;
    }
    if !cached {
        out.push_str(
            "<p class=\"how\">Every get went through the REST API, which reads the region's store: \
             no answer could come from an edge cache, so all staleness here is propagation. Give \
             the scenario <code>reads = { via = \"binding\", cache_ttl = 30 }</code> to read as a \
             Worker does.</p>\n",
        );
    }
    figure(
        out,
        &visibility_chart(s),
        "Each solid curve is the black-box t-visibility of one read path: the fraction of puts \
         a region's reads of that path had settled on (no older answer after it) that many ms \
         after the ack; the dashed curve is the white-box visibility from apply events, when the \
         stores had them. The gap between a cached path and the apply curve is the cache's share.",
    );
    paths_table(out, &c.paths);
    let _ = writeln!(
        out,
        "<p class=\"how\">{} of the {} stale reads were cache hits ({}); {} reads returned something \
         older than their region's store had certainly applied when they began: stale by the \
         cache, not by propagation.</p>",
        c.stale_hits,
        c.stale_reads,
        fmt_pct(c.stale_hit_share),
        c.behind_store
    );
    if cached {
        arrivals(out, s);
    }
    end_section(out);
}

fn visibility_chart(s: &Summary) -> String {
    let mut chart = Chart::new(
        "t-visibility per read path",
        "time after the write was acknowledged (ms)",
        "P(visible)",
    );
    chart.x.min = Some(0.0);
    chart.y.min = Some(0.0);
    chart.y.max = Some(1.0);
    for p in s.cache.paths.iter().filter(|p| !p.visibility_cdf.is_empty()) {
        chart.series.push(cdf(format!("{} (black-box)", p.label), &p.visibility_cdf, Style::Step));
    }
    let applied = &s.visibility.overall.cdf;
    if !applied.is_empty() {
        chart.series.push(cdf("apply events (white-box)".into(), applied, Style::Dashed));
    }
    chart.render()
}

fn cdf(name: String, points: &[(f64, f64)], style: Style) -> Series {
    let mut pts = Vec::with_capacity(points.len() + 1);
    if let Some(&(x, _)) = points.first() {
        pts.push((x.min(0.0), 0.0));
    }
    pts.extend_from_slice(points);
    Series { name, points: pts, style, errors: None }
}

fn paths_table(out: &mut String, paths: &[ReadPathStats]) {
    let rows: Vec<Vec<String>> = paths
        .iter()
        .map(|p| {
            vec![
                p.label.clone(),
                p.reads.to_string(),
                p.hits.to_string(),
                p.misses.to_string(),
                format!("{}, {} of {}", fmt_pct(p.stale_rate), p.stale, p.judged),
                p.stale_hits.to_string(),
                p.behind_store.to_string(),
                fmt_ms(p.visibility.p50_ms),
                fmt_ms(p.visibility.p90_ms),
                fmt_ms(p.visibility.max_ms),
            ]
        })
        .collect();
    table(
        out,
        &[
            "Read path",
            "reads",
            "hits",
            "misses",
            "stale (of judged)",
            "stale hits",
            "behind store",
            "visibility p50 ms",
            "p90 ms",
            "max ms",
        ],
        &rows,
    );
}

/// How long reads after an arrival kept returning the older state, by what the cache held.
fn arrivals(out: &mut String, s: &Summary) {
    let c = &s.cache;
    if c.arrivals.is_empty() {
        no_data(out, "no newer version reached a region whose cached reads came after it");
        return;
    }
    figure(
        out,
        &hidden_chart(s),
        "Each point is a newer version arriving in a region's store (x) while the region's cache \
         held the key, and how long after the arrival a read there still returned the older \
         state (y, the least time the cache hid it); dashed lines mark each cacheTtl, which no \
         point should pass. A region that had cached nothing shows no point: its next read saw \
         the arrival.",
    );
    arrivals_table(out, &c.arrivals);
}

fn hidden_chart(s: &Summary) -> String {
    let c: &CacheSummary = &s.cache;
    let mut chart = Chart::new(
        "How long a cached copy hid a version its region held",
        RUN_AXIS,
        "last read of the older state after the arrival (ms)",
    );
    chart.y.min = Some(0.0);
    chart.bands = bands(s);
    for series in c.hidden_samples.iter().filter(|h| !h.points.is_empty()) {
        chart.series.push(Series {
            name: format!("cache held {}", series.cached),
            points: series.points.clone(),
            style: Style::Points,
            errors: None,
        });
    }
    let end = s.run.workload_end_ms.max(1.0) / 1000.0 + s.run.quiet_ms as f64 / 1000.0;
    let mut ttls: Vec<u64> = c.arrivals.iter().filter_map(|a| a.cache_ttl_s).collect();
    ttls.sort_unstable();
    ttls.dedup();
    for ttl in ttls {
        let y = ttl as f64 * 1000.0;
        chart.series.push(Series {
            name: format!("cacheTtl {ttl} s"),
            points: vec![(0.0, y), (end, y)],
            style: Style::Dashed,
            errors: None,
        });
    }
    chart.render()
}

fn arrivals_table(out: &mut String, arrivals: &[ArrivalStats]) {
    let rows: Vec<Vec<String>> = arrivals
        .iter()
        .map(|a| {
            vec![
                a.cached.clone(),
                a.cache_ttl_s.map_or("–".into(), |t| format!("{t} s")),
                a.arrivals.to_string(),
                a.reads.to_string(),
                a.stale_reads.to_string(),
                a.hidden_arrivals.to_string(),
                fmt_ms(a.hidden_ms.p50_ms),
                fmt_ms(a.hidden_ms.max_ms),
                fmt_ms(a.seen_ms.p50_ms),
                fmt_ms(a.seen_ms.max_ms),
            ]
        })
        .collect();
    table(
        out,
        &[
            "Cache held",
            "cacheTtl",
            "arrivals",
            "reads after",
            "returned the older state",
            "arrivals hidden",
            "hidden ≥ p50 ms",
            "hidden ≥ max ms",
            "seen by p50 ms",
            "seen by max ms",
        ],
        &rows,
    );
    out.push_str(
        "<p class=\"how\">An arrival is a newer version reaching a region's store (certainly: the \
         apply's latest possible moment); its reads are the region's cached-path reads sent after \
         it and before the next. \"Hidden ≥\" is the time to the last read that still returned \
         the older state, a lower bound of how long the cache hid the new one; \"seen by\" the \
         time to the first read that returned it, an upper bound. For \"not found\" this is \
         negative caching: how long a new key stayed missing in a region that had looked it \
         up.</p>\n",
    );
}
