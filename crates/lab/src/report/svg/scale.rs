//! Where values land on an axis: the scale, the bounds and ticks taken from the data, and the
//! numbers printed beside them; the colour ramp and quantiles the matrix and box plots use.

use super::usable;

/// Maps values on one axis to pixels; `from` is where `lo` lands, so a y axis runs upwards.
#[derive(Clone, Copy, Debug)]
pub(super) struct Scale {
    pub(super) lo: f64,
    pub(super) hi: f64,
    pub(super) log: bool,
    pub(super) from: f64,
    pub(super) to: f64,
}

impl Scale {
    pub(super) fn pos(&self, v: f64) -> Option<f64> {
        if !usable(v, self.log) {
            return None;
        }
        let f = |v: f64| if self.log { v.log10() } else { v };
        let (a, b) = (f(self.lo), f(self.hi));
        let t = if b > a { (f(v) - a) / (b - a) } else { 0.5 };
        let p = self.from + t * (self.to - self.from);
        // Far-off points only need to leave the plot in the right direction; bounding them
        // keeps coordinates short.
        p.is_finite().then(|| p.clamp(-1e5, 1e5))
    }
}

/// Axis bounds: the caller's where given, else the data's widened by 5% so that extreme points
/// clear the frame, without crossing zero (lags and counts are never negative). A zero range is
/// widened to have a middle, and a log axis spans at least two powers of ten, so that both have
/// ticks.
pub(super) fn bounds(
    log: bool,
    min: Option<f64>,
    max: Option<f64>,
    data: impl IntoIterator<Item = f64>,
) -> (f64, f64) {
    let fallback = if log { (1.0, 10.0) } else { (0.0, 1.0) };
    let to = |v: f64| if log { v.log10() } else { v };
    let back = |v: f64| if log { 10f64.powf(v) } else { v };
    let (fmin, fmax) = match (min.filter(|v| usable(*v, log)), max.filter(|v| usable(*v, log))) {
        (Some(a), Some(b)) if a > b => (Some(b), Some(a)),
        fixed => fixed,
    };
    let (dlo, dhi) = data
        .into_iter()
        .filter(|v| usable(*v, log))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if dlo > dhi && fmin.is_none() && fmax.is_none() {
        return fallback;
    }
    let (mut lo, mut hi) =
        if dlo <= dhi { (to(dlo), to(dhi)) } else { (to(fallback.0), to(fallback.1)) };
    if let Some(v) = fmin {
        lo = to(v);
        hi = hi.max(lo);
    }
    if let Some(v) = fmax {
        hi = to(v);
        lo = lo.min(hi);
    }
    let (lo, hi) = widen((lo, hi), log, (fmin.is_some(), fmax.is_some()));
    // Padding can overflow at the edge of f64; the largest finite bounds still place the rest.
    let (lo, hi) = (back(lo).max(-f64::MAX), back(hi).min(f64::MAX));
    if lo.is_finite() && hi.is_finite() && hi > lo && (!log || lo > 0.0) {
        (lo, hi)
    } else {
        fallback
    }
}

/// Widens bounds (on the axis's own scale: log10 for a log axis) that are not fixed
/// (`fixed`: whether the lower and the upper are): a zero range to have a middle, then by 5 %
/// without crossing zero, and a log axis to span at least two powers of ten.
fn widen((mut lo, mut hi): (f64, f64), log: bool, fixed: (bool, bool)) -> (f64, f64) {
    if hi <= lo {
        let d = if log || lo == 0.0 { 0.5 } else { lo.abs() * 0.1 };
        match fixed {
            (true, false) => hi = lo + 2.0 * d,
            (false, true) => lo = hi - 2.0 * d,
            _ => (lo, hi) = (lo - d, hi + d),
        }
    }
    let pad = (hi - lo) * 0.05;
    if !fixed.0 {
        lo = if !log && lo >= 0.0 { (lo - pad).max(0.0) } else { lo - pad };
    }
    if !fixed.1 {
        hi = if !log && hi <= 0.0 { (hi + pad).min(0.0) } else { hi + pad };
    }
    if log && hi.floor() - lo.ceil() < 1.0 {
        if !fixed.0 {
            lo = lo.floor();
        }
        if !fixed.1 {
            hi = hi.ceil();
        }
    }
    (lo, hi)
}

/// A step of 1, 2 or 5 × 10^k near `raw`: the steps people count in.
fn nice_step(raw: f64) -> f64 {
    let p = 10f64.powf(raw.log10().floor());
    let f = raw / p;
    p * if f < 1.5 {
        1.0
    } else if f < 3.0 {
        2.0
    } else if f < 7.0 {
        5.0
    } else {
        10.0
    }
}

/// Tick values within `lo..=hi`: four to nine nice steps, or powers of ten on a log axis (every
/// few when there are many); the bounds themselves when nothing nicer fits.
pub(super) fn ticks(lo: f64, hi: f64, log: bool) -> Vec<f64> {
    let mut out = Vec::new();
    if log {
        let (a, b) = (lo.log10().ceil(), hi.log10().floor());
        let every = ((b - a) / 8.0).ceil().max(1.0);
        let mut e = a;
        while e <= b && out.len() < 64 {
            out.push(10f64.powf(e));
            e += every;
        }
    } else {
        let step = nice_step((hi - lo) / 6.0);
        if step.is_finite() && step > 0.0 {
            let mut k = (lo / step - 1e-9).ceil();
            while k * step <= hi + step * 1e-9 && out.len() < 64 {
                out.push(k * step);
                k += 1.0;
            }
        }
    }
    if out.is_empty() {
        out.extend([lo, hi].into_iter().filter(|v| v.is_finite()));
    }
    out
}

/// At most `sig` significant digits and no trailing zeros, so that 0.1 + 0.2 reads "0.3";
/// exponent notation outside [0.001, 1e6), where more digits stop helping.
pub(super) fn fmt_num(v: f64, sig: usize) -> String {
    fn trim(s: &str) -> &str {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.')
        } else {
            s
        }
    }
    if !v.is_finite() {
        return "–".to_string();
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let prec = sig.max(1) - 1;
    let mag = v.abs().log10().floor();
    let s = if (-3.0..6.0).contains(&mag) {
        let decimals = (prec as f64 - mag).max(0.0) as usize;
        trim(&format!("{v:.decimals$}")).to_string()
    } else {
        let s = format!("{v:.prec$e}");
        match s.split_once('e') {
            Some((m, e)) => format!("{}e{e}", trim(m)),
            None => s,
        }
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s
    }
}

/// Sequential light-to-dark blue (ColorBrewer "Blues" ends and middle): ordered by lightness, so
/// the order survives greyscale printing and colour-vision deficiencies.
pub(super) fn ramp(t: f64) -> String {
    const STOPS: [[f64; 3]; 3] = [[247.0, 251.0, 255.0], [107.0, 174.0, 214.0], [8.0, 48.0, 107.0]];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) * 2.0 } else { 0.0 };
    let (a, b, f) = if t <= 1.0 { (STOPS[0], STOPS[1], t) } else { (STOPS[1], STOPS[2], t - 1.0) };
    let [r, g, bl] = [0, 1, 2].map(|i| (a[i] + (b[i] - a[i]) * f).round().clamp(0.0, 255.0) as u8);
    format!("#{r:02x}{g:02x}{bl:02x}")
}

/// Linear interpolation between order statistics; `sorted` must be sorted.
pub(super) fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * sorted.len().saturating_sub(1) as f64;
    let i = pos.floor() as usize;
    let a = sorted.get(i).copied().unwrap_or(f64::NAN);
    let b = sorted.get(i + 1).copied().unwrap_or(a);
    a + (b - a) * pos.fract()
}
