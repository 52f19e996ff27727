//! Every renderer on edge cases: empty, non-finite and unplaceable data, escaping, and markup a
//! browser's XML parser accepts.

use super::scale::{bounds, fmt_num, quantile, ramp, ticks, Scale};
use super::*;

/// Checks what a browser's XML parser would reject: unbalanced or crossed elements, unknown
/// entities, raw `<`, `>` or `&` in text, unquoted attribute values, content after the root.
fn assert_well_formed(svg: &str) {
    fn check_entities(s: &str) {
        for (i, _) in s.match_indices('&') {
            let rest = &s[i + 1..];
            let ok = ["amp;", "lt;", "gt;", "quot;", "#39;"].iter().any(|e| rest.starts_with(e));
            assert!(ok, "bad entity at {:?}", &rest[..rest.len().min(10)]);
        }
    }
    let mut stack: Vec<&str> = Vec::new();
    let mut closed_root = false;
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let (content, tail) = rest.split_at(start);
        assert!(!content.contains('>'), "raw '>' in text {content:?}");
        check_entities(content);
        assert!(
            !stack.is_empty() || content.trim().is_empty(),
            "text outside the root: {content:?}"
        );
        let end = tail.find('>').expect("an unterminated tag");
        let tag = &tail[1..end];
        assert!(!tag.contains('<'), "'<' inside a tag: {tag:?}");
        assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes in {tag:?}");
        check_entities(tag);
        assert!(!closed_root, "an element after the root: {tag:?}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop(), Some(name), "crossed or stray close tag");
            closed_root = stack.is_empty();
        } else {
            let name = tag.split([' ', '/']).next().unwrap_or("");
            assert!(!name.is_empty(), "nameless tag {tag:?}");
            if !tag.ends_with('/') {
                stack.push(name);
            } else if stack.is_empty() {
                closed_root = true;
            }
        }
        rest = &tail[end + 1..];
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    assert!(closed_root && rest.trim().is_empty(), "no root, or trailing text {rest:?}");
    assert!(svg.starts_with("<svg "));
    assert!(!svg.contains("NaN") && !svg.contains("inf"), "a non-finite number leaked: {svg}");
}

fn series(name: &str, points: Vec<(f64, f64)>, style: Style) -> Series {
    Series { name: name.to_string(), points, style, errors: None }
}

fn approx(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-9 * y.abs().max(1.0))
}

/// The values of every `name="…"` attribute, in order.
fn attrs<'a>(svg: &'a str, name: &str) -> Vec<&'a str> {
    let key = format!(" {name}=\"");
    svg.match_indices(&key).filter_map(|(i, _)| svg[i + key.len()..].split('"').next()).collect()
}

#[test]
fn escape_covers_markup_quotes_and_control_characters() {
    assert_eq!(
        escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
        "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
    );
    assert_eq!(escape("a\u{1}b\tc"), "a\u{fffd}b\tc");
}

#[test]
fn scales_map_the_bounds_to_the_plot_edges() {
    let s = Scale { lo: -10.0, hi: 30.0, log: false, from: 300.0, to: 20.0 };
    assert_eq!(s.pos(-10.0), Some(300.0));
    assert_eq!(s.pos(30.0), Some(20.0));
    assert_eq!(s.pos(10.0), Some(160.0));
    assert_eq!(s.pos(f64::NAN), None);
    assert_eq!(s.pos(f64::INFINITY), None);
    let l = Scale { lo: 1.0, hi: 1000.0, log: true, from: 0.0, to: 300.0 };
    assert_eq!(l.pos(1.0), Some(0.0));
    assert!((l.pos(1000.0).unwrap_or(0.0) - 300.0).abs() < 1e-9);
    assert!((l.pos(10.0).unwrap_or(0.0) - 100.0).abs() < 1e-9);
    assert_eq!(l.pos(0.0), None);
    assert_eq!(l.pos(-5.0), None);
}

#[test]
fn unit_range_gets_ticks_every_fifth() {
    let (lo, hi) = bounds(false, None, None, [0.0, 0.5, 1.0]);
    assert_eq!(lo, 0.0, "padding must not cross zero");
    assert!(hi > 1.0 && hi < 1.2);
    assert!(approx(&ticks(lo, hi, false), &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]));
    let labels: Vec<String> = ticks(lo, hi, false).into_iter().map(|t| fmt_num(t, 6)).collect();
    assert_eq!(labels, ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
}

#[test]
fn thousands_get_round_ticks() {
    let (lo, hi) = bounds(false, None, None, [0.0, 7300.0]);
    assert_eq!(lo, 0.0);
    let expected: Vec<f64> = (0..=7).map(|k| f64::from(k) * 1000.0).collect();
    assert!(approx(&ticks(lo, hi, false), &expected), "{:?}", ticks(lo, hi, false));
}

#[test]
fn a_zero_range_is_widened_around_the_value() {
    let (lo, hi) = bounds(false, None, None, [3.0, 3.0]);
    assert!(lo < 3.0 && hi > 3.0);
    let t = ticks(lo, hi, false);
    assert!(t.len() >= 3 && t.iter().any(|v| (v - 3.0).abs() < 1e-9), "{t:?}");
    let (lo, hi) = bounds(false, None, None, [0.0]);
    assert!(lo < 0.0 && hi > 0.0);
    let (lo, hi) = bounds(false, Some(5.0), Some(5.0), []);
    assert!(lo < hi);
}

#[test]
fn log_ticks_are_powers_of_ten() {
    let (lo, hi) = bounds(true, None, None, [1.0, 20.0, 1e5, 0.0, -3.0]);
    assert!(lo < 1.0 && lo > 0.0 && hi > 1e5);
    assert!(approx(&ticks(lo, hi, true), &[1.0, 10.0, 100.0, 1e3, 1e4, 1e5]));
    // Less than a decade of data still gets two powers of ten to read it by.
    let (lo, hi) = bounds(true, None, None, [20.0, 50.0]);
    assert!(approx(&[lo, hi], &[10.0, 100.0]));
    // Nothing positive: a default decade rather than a panic or NaN.
    assert_eq!(bounds(true, None, None, [0.0, -1.0]), (1.0, 10.0));
    assert_eq!(ticks(1.0, 10.0, true).len(), 2);
}

#[test]
fn fixed_bounds_are_kept_even_when_swapped() {
    assert_eq!(bounds(false, Some(0.0), Some(50.0), [-20.0, 80.0]), (0.0, 50.0));
    assert_eq!(bounds(false, Some(50.0), Some(0.0), []), (0.0, 50.0));
    let (lo, hi) = bounds(false, Some(10.0), None, [1.0, 5.0]);
    assert!(lo == 10.0 && hi > 10.0);
}

#[test]
fn numbers_print_without_float_noise() {
    assert_eq!(fmt_num(0.1 + 0.2, 6), "0.3");
    assert_eq!(fmt_num(0.25, 6), "0.25");
    assert_eq!(fmt_num(1500.0, 6), "1500");
    assert_eq!(fmt_num(1.2e6, 6), "1.2e6");
    assert_eq!(fmt_num(3.0e-5, 6), "3e-5");
    assert_eq!(fmt_num(-0.0, 6), "0");
    assert_eq!(fmt_num(-2.5, 6), "-2.5");
    assert_eq!(fmt_num(123.456, 3), "123");
    assert_eq!(fmt_num(f64::NAN, 3), "–");
}

#[test]
fn step_series_goes_horizontal_then_vertical() {
    let mut c = Chart::new("cdf", "ms", "fraction");
    (c.x.min, c.x.max, c.y.min, c.y.max) = (Some(0.0), Some(4.0), Some(0.0), Some(1.0));
    c.series.push(series("lag", vec![(1.0, 1.0 / 3.0), (2.0, 2.0 / 3.0), (3.0, 1.0)], Style::Step));
    let svg = c.render();
    assert_well_formed(&svg);
    let paths: Vec<&str> = svg
        .split(r#"<path class="series" d=""#)
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    assert_eq!(paths.len(), 1);
    let d = paths[0];
    assert_eq!(d.chars().filter(char::is_ascii_alphabetic).collect::<String>(), "MHVHV", "{d}");
    let n: Vec<f64> = d
        .split(|c: char| c.is_ascii_alphabetic() || c == ' ')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let [x0, y0, x1, y1, x2, y2] = n[..] else { panic!("{n:?}") };
    assert!(x0 < x1 && x1 < x2 && (x1 - x0 - (x2 - x1)).abs() < 0.2, "{n:?}");
    assert!(y0 > y1 && y1 > y2 && (y0 - y1 - (y1 - y2)).abs() < 0.2, "{n:?}");
    assert!(svg.contains("clip-path=\"url(#"));
}

#[test]
fn styles_legend_and_error_bars() {
    let mut c = Chart::new("t", "x", "y");
    let pts = vec![(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)];
    c.series.push(series("measured", pts.clone(), Style::Line));
    c.series.push(series("model", pts.clone(), Style::Dashed));
    c.series.push(Series {
        errors: Some(vec![(0.5, 1.5); 3]),
        ..series("samples", pts, Style::Points)
    });
    c.bands.push(Band { from: 0.5, to: 1.5, label: "partition".into() });
    c.bands.push(Band { from: 50.0, to: 60.0, label: "outside".into() });
    c.markers.push(Marker { at: 1.5, label: "heal".into() });
    c.markers.push(Marker { at: -40.0, label: "gone".into() });
    let svg = c.render();
    assert_well_formed(&svg);
    for name in ["measured", "model", "samples", "partition", "heal"] {
        assert!(svg.contains(&format!(">{name}<")), "{name} missing");
    }
    assert!(!svg.contains("outside") && !svg.contains("gone"));
    assert!(svg.contains(r#"stroke-dasharray="6 4""#));
    assert_eq!(svg.matches(r#"class="errors""#).count(), 1);
    assert_eq!(svg.matches(r#"<circle"#).count(), 3 + 1, "three points and a legend dot");
    assert!(svg.contains(PALETTE[0]) && svg.contains(PALETTE[1]) && svg.contains(PALETTE[2]));
    let mut one = Chart::new("t", "x", "y");
    one.series.push(series("", vec![(0.0, 1.0), (1.0, 2.0)], Style::Line));
    let svg = one.render();
    assert_eq!(svg.matches("<line").count(), svg.matches(GRID).count(), "no legend swatch");
}

#[test]
fn titles_and_labels_are_escaped() {
    let mut c = Chart::new("p99 <&> \"lag\"", "x<1", "y & z");
    c.series.push(series("a<b", vec![(1.0, 1.0), (2.0, 4.0)], Style::Line));
    let svg = c.render();
    assert_well_formed(&svg);
    assert!(svg.contains("p99 &lt;&amp;&gt; &quot;lag&quot;"));
    assert!(!svg.contains("<&>") && !svg.contains("a<b"));
}

#[test]
fn non_finite_and_unplaceable_points_are_skipped() {
    let mut c = Chart::new("t", "x", "y");
    c.y.log = true;
    let pts = vec![
        (0.0, 1.0),
        (f64::NAN, 5.0),
        (2.0, f64::INFINITY),
        (3.0, 0.0),
        (4.0, 10.0),
        (5.0, 100.0),
        (f64::MAX, 1e300),
    ];
    c.series
        .push(Series { errors: Some(vec![(f64::NAN, -1.0); 7]), ..series("s", pts, Style::Line) });
    c.bands.push(Band { from: f64::NEG_INFINITY, to: f64::NAN, label: "bad".into() });
    c.markers.push(Marker { at: f64::NAN, label: "bad".into() });
    let svg = c.render();
    assert_well_formed(&svg);
    assert!(!svg.contains("no data"));
    // The lone first point becomes a dot; the three after the gaps are one segment.
    assert_eq!(svg.matches(r#"class="series""#).count(), 1, "{svg}");
    assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
}

#[test]
fn empty_charts_say_no_data() {
    let svg = Chart::new("nothing", "x", "y").render();
    assert_well_formed(&svg);
    assert!(svg.contains(">no data<") && svg.contains(">x<") && svg.contains(">y<"));
    let mut log = Chart::new("log", "x", "y");
    log.x.log = true;
    log.series.push(series("s", vec![(0.0, 1.0), (-1.0, 2.0)], Style::Line));
    assert!(log.render().contains(">no data<"));
    let tiny = Chart { width: 0, height: 0, ..Chart::new("tiny", "", "") };
    assert_well_formed(&tiny.render());
}

#[test]
fn heatmap_prints_values_and_a_dash_for_missing_cells() {
    let h = Heatmap {
        title: "p99 lag".into(),
        row_label: "origin region".into(),
        col_label: "destination region".into(),
        rows: vec!["wnam".into(), "weur".into()],
        cols: vec!["wnam".into(), "weur".into(), "apac".into()],
        cells: vec![vec![None, Some(120.4), Some(f64::NAN)], vec![Some(80.0)]],
        unit: "ms".into(),
    };
    let svg = h.render();
    assert_well_formed(&svg);
    assert!(svg.contains(">120ms<") && svg.contains(">80ms<"));
    assert_eq!(svg.matches(">–<").count(), 4, "None, NaN and two missing cells");
    assert!(svg.contains(">0ms<"), "the legend starts at zero");
    assert!(svg.contains(&ramp(1.0)) && svg.contains("origin region"));
    let empty = Heatmap { rows: vec![], ..h };
    assert!(empty.render().contains(">no data<"));
    assert_well_formed(&empty.render());
}

#[test]
fn bars_and_boxes_draw_one_shape_per_value() {
    let b = Bars {
        title: "conflicts".into(),
        y_label: "writes".into(),
        categories: vec!["a".into(), "b".into()],
        sets: vec![("lww".into(), vec![3.0, f64::NAN, 9.0]), ("crdt".into(), vec![-1.0, 2.0])],
    };
    let svg = b.render();
    assert_well_formed(&svg);
    assert_eq!(svg.matches(r#"class="bar""#).count(), 3);
    assert!(svg.contains(">lww<") && svg.contains(">crdt<"));
    let none = Bars { sets: vec![], ..b };
    assert!(none.render().contains(">no data<"));

    let p = BoxPlot {
        title: "convergence".into(),
        y_label: "ms".into(),
        boxes: vec![
            ("partition".into(), vec![5.0, 1.0, 3.0, 2.0, 4.0]),
            ("empty".into(), vec![f64::NAN]),
        ],
    };
    let svg = p.render();
    assert_well_formed(&svg);
    assert_eq!(svg.matches(r#"class="box""#).count(), 1);
    assert!(svg.contains("median 3, p75 4, max 5"));
    assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.5);
    assert!(BoxPlot { boxes: vec![], ..p }.render().contains(">no data<"));
}

#[test]
fn space_time_draws_one_arrow_per_message() {
    let st = SpaceTime {
        title: "key k".into(),
        lanes: vec!["wnam".into(), "weur".into(), "apac".into()],
        time_label: "ms since the run started".into(),
        events: vec![
            (0, 10.0, "put v1".into()),
            (1, 95.0, "apply v1".into()),
            (7, 5.0, "unknown lane".into()),
        ],
        messages: vec![
            (0, 10.0, 1, 95.0, "v1".into()),
            (0, 10.0, 2, 180.0, "v1".into()),
            (1, 100.0, 2, f64::NAN, "lost".into()),
            (0, 1.0, 9, 2.0, "no lane".into()),
        ],
    };
    let svg = st.render();
    assert_well_formed(&svg);
    assert_eq!(svg.matches("marker-end=").count(), 2);
    assert!(
        svg.contains(">apply v1<") && !svg.contains("unknown lane") && !svg.contains("no lane")
    );
    let ids = attrs(&svg, "id");
    assert!(svg.contains(&format!("url(#{})", ids[0])));
    assert!(SpaceTime { events: vec![], messages: vec![], ..st }.render().contains(">no data<"));
}

#[test]
fn ids_differ_between_charts() {
    let mut c = Chart::new("same", "x", "y");
    c.series.push(series("", vec![(0.0, 0.0), (1.0, 1.0)], Style::Line));
    let (a, b) = (c.render(), c.render());
    let (ia, ib) = (attrs(&a, "id"), attrs(&b, "id"));
    assert_eq!((ia.len(), ib.len()), (1, 1));
    assert_ne!(ia, ib);
}
