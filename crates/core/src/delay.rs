//! Emulated propagation delay between regions.
//!
//! Workers KV is eventually consistent: a write is visible at once where it was made and reaches
//! other locations within about 60 seconds. EdgeKV reproduces that by holding each replicated
//! write back on each directed link (origin region → destination region) for a delay drawn from
//! the link's [`DelayModel`]. A [`LatencyMatrix`] holds a default model and per-link overrides,
//! each written as a [`LinkDelay`] such as `wnam->enam=uniform(1s,2s)`.
//!
//! A delay is not drawn from a shared random generator but computed from `(seed, origin region,
//! write sequence number, destination region)`. So a run replays exactly from its seed, a node
//! that restarts computes the same delay for an entry still waiting in its outbox, and the order
//! in which writes or links are processed cannot change any delay. The generator is SplitMix64
//! started from a 64-bit FNV-1a hash of those four inputs: a few lines, no dependency, and an
//! output that no crate upgrade can change (the platform's `ln`, `exp` and `cos` may still differ
//! in the last bit between platforms, i.e. by about a nanosecond).
//!
//! Every sample is truncated to `[0, MAX_DELAY]`, and a model whose parameters exceed
//! [`MAX_DELAY`] is refused when parsed: it would emulate a slower store than the one modelled,
//! and anti-entropy relies on [`DelayModel::max`] to know how long an entry may legitimately wait.
//!
//! # Grammar
//! Whitespace is allowed around every token. A duration is a non-negative decimal number and a
//! unit `ms`, `s` or `m` (`500ms`, `1.5s`, `1m`; resolution 1 ns, finer digits are dropped).
//!
//! | form                   | meaning                                                          |
//! |------------------------|------------------------------------------------------------------|
//! | `5s`, `constant(5s)`   | always 5 s                                                       |
//! | `uniform(MIN,MAX)`     | uniform on `[MIN, MAX]`, `MIN <= MAX`                            |
//! | `normal(MEAN,SD)`      | normal, by Box–Muller                                            |
//! | `lognormal(P50,P99)`   | log-normal with that median and 99th percentile, `0 < P50 <= P99` |
//! | `exponential(MEAN)`    | exponential, by inverse CDF                                      |
//! | `pareto(SCALE,SHAPE)`  | `SCALE / U^(1/SHAPE)`, `SCALE > 0`, `SHAPE` a positive number    |
//! | `mix(W:MODEL,...)`     | one of the models, with probability `W / sum(W)`, each `W > 0`   |
//!
//! A `mix` component may be any form but `mix` (multiply nested weights out instead), which keeps
//! the canonical form flat. `Display` writes the canonical form, which parses back to an equal
//! model: no spaces, a constant as a bare duration, durations as `2m`, `1.5s` or `250ms`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use DelayModel::{Constant, Exponential, LogNormal, Mix, Normal, Pareto, Uniform};

/// The longest delay any model may produce: Workers KV's propagation window.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// Every form of the grammar, for error messages.
const FORMS: &str = "a duration such as 1.5s, or constant(DELAY), uniform(MIN,MAX), \
    normal(MEAN,SD), lognormal(P50,P99), exponential(MEAN), pareto(SCALE,SHAPE) or \
    mix(WEIGHT:MODEL,...) with at least one component";

/// The standard normal quantile of 0.99, which relates a log-normal's p99 to its median.
const Z99: f64 = 2.326_347_874_040_840_8;

/// How long a replicated write is held back on one link. Parse one with [`str::parse`]; a model
/// built directly is not checked, but its samples are still truncated to `[0, MAX_DELAY]`.
#[derive(Debug, Clone, PartialEq)]
pub enum DelayModel {
    /// `Constant(delay)`: always `delay`.
    Constant(Duration),
    /// `Uniform(min, max)`: uniform on `[min, max]`.
    Uniform(Duration, Duration),
    /// `Normal(mean, sd)`: normal, with negative samples truncated to zero.
    Normal(Duration, Duration),
    /// `LogNormal(p50, p99)`: log-normal, given by its median and 99th percentile.
    LogNormal(Duration, Duration),
    /// `Exponential(mean)`: exponential with that mean.
    Exponential(Duration),
    /// `Pareto(scale, shape)`: never below `scale`, median `scale * 2^(1/shape)`; the smaller
    /// the shape, the heavier the tail.
    Pareto(Duration, f64),
    /// `(weight, model)` pairs: each model is picked with probability weight / total weight.
    Mix(Vec<(f64, DelayModel)>),
}

/// No delay at all.
impl Default for DelayModel {
    fn default() -> Self {
        Constant(Duration::ZERO)
    }
}

/// A delay model or link override that was refused: the text at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid delay {text:?}: {reason}")]
pub struct ParseDelayError {
    /// The offending text: the whole input, or the part of it that is wrong.
    pub text: String,
    /// What is wrong with it, and what was expected instead.
    pub reason: String,
}

fn error(text: &str, reason: impl Into<String>) -> ParseDelayError {
    ParseDelayError { text: text.trim().to_owned(), reason: reason.into() }
}

impl DelayModel {
    /// The delay of write `seq` from `origin` on its way to `destination`, in a run seeded with
    /// `seed`: the same inputs always give the same delay, within `[0, MAX_DELAY]`.
    pub fn sample(&self, seed: u64, origin: &str, seq: u64, destination: &str) -> Duration {
        self.sample_with(&mut SplitMix64::for_write(seed, origin, seq, destination))
    }

    fn sample_with(&self, rng: &mut SplitMix64) -> Duration {
        let secs = |d: &Duration| d.as_secs_f64();
        match self {
            Constant(delay) => (*delay).min(MAX_DELAY),
            Uniform(min, max) => {
                let span = max.saturating_sub(*min).as_nanos() as f64;
                min.saturating_add(Duration::from_nanos((span * rng.unit()) as u64)).min(MAX_DELAY)
            }
            // Degenerate spreads are exact, so that no sample exceeds `max()` by a rounding.
            Normal(mean, sd) if sd.is_zero() => (*mean).min(MAX_DELAY),
            LogNormal(p50, p99) if p99 <= p50 => (*p50).min(MAX_DELAY),
            Normal(mean, sd) => truncated(secs(mean) + secs(sd) * rng.standard_normal()),
            LogNormal(p50, p99) => {
                let (mu, sigma) = (secs(p50).ln(), (secs(p99).ln() - secs(p50).ln()) / Z99);
                truncated((mu + sigma * rng.standard_normal()).exp())
            }
            Exponential(mean) => truncated(-secs(mean) * rng.open_unit().ln()),
            Pareto(scale, shape) => truncated(secs(scale) / rng.open_unit().powf(shape.recip())),
            Mix(components) => {
                // One draw picks the component, which samples with the draws that follow.
                // Weights that are not positive (only in hand-built models) are never picked.
                let total: f64 = components.iter().map(|(w, _)| w.max(0.0)).sum();
                let mut pick = rng.unit() * total;
                let mut chosen = None;
                for (weight, model) in components.iter().filter(|(w, _)| *w > 0.0) {
                    chosen = Some(model);
                    if pick < *weight {
                        break;
                    }
                    pick -= weight;
                }
                chosen.map_or(Duration::ZERO, |model| model.sample_with(rng))
            }
        }
    }

    /// The longest delay this model can produce: exact for bounded models, [`MAX_DELAY`] for
    /// those with an unbounded tail, which truncation cuts there.
    pub fn max(&self) -> Duration {
        let max = match self {
            Constant(delay) => *delay,
            Uniform(min, max) => (*min).max(*max),
            Normal(mean, sd) if sd.is_zero() => *mean,
            LogNormal(p50, p99) if p99 <= p50 => *p50,
            Exponential(mean) if mean.is_zero() => Duration::ZERO,
            Mix(components) => components
                .iter()
                .filter(|(w, _)| *w > 0.0)
                .map(|(_, model)| model.max())
                .max()
                .unwrap_or(Duration::ZERO),
            _ => MAX_DELAY,
        };
        max.min(MAX_DELAY)
    }
}

/// Seconds as a delay within `[0, MAX_DELAY]`; NaN (e.g. `0/0` from a hand-built model) is zero.
fn truncated(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.clamp(0.0, MAX_DELAY.as_secs_f64())).unwrap_or_default()
}

/// SplitMix64 (Steele, Lea and Flood, 2014), started from an FNV-1a hash of a write's identity.
struct SplitMix64(u64);

impl SplitMix64 {
    fn for_write(seed: u64, origin: &str, seq: u64, destination: &str) -> Self {
        // Lengths are hashed too, so that ("ab", "c") and ("a", "bc") differ.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let (origin_len, destination_len) = (origin.len() as u64, destination.len() as u64);
        for bytes in [
            &seed.to_le_bytes()[..],
            &origin_len.to_le_bytes(),
            origin.as_bytes(),
            &seq.to_le_bytes(),
            &destination_len.to_le_bytes(),
            destination.as_bytes(),
        ] {
            for byte in bytes {
                hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        SplitMix64(hash)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform on `[0, 1)`, with 53 random bits.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform on `(0, 1]`, safe to take the logarithm of.
    fn open_unit(&mut self) -> f64 {
        1.0 - self.unit()
    }

    /// A standard normal draw by Box–Muller. The second variate is discarded: a sample is a
    /// pure function of its inputs, so there is no state to keep it in.
    fn standard_normal(&mut self) -> f64 {
        let radius = (-2.0 * self.open_unit().ln()).sqrt();
        radius * (std::f64::consts::TAU * self.unit()).cos()
    }
}

impl FromStr for DelayModel {
    type Err = ParseDelayError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_model(s, false)
    }
}

fn parse_model(text: &str, in_mix: bool) -> Result<DelayModel, ParseDelayError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(error(s, format!("empty: expected {FORMS}")));
    }
    let Some(open) = s.find('(') else {
        if s.contains(')') {
            return Err(error(s, "unbalanced parentheses"));
        }
        return Ok(Constant(bounded(s, "delay")?));
    };
    if !s.ends_with(')') {
        return Err(error(s, "expected nothing after the closing parenthesis"));
    }
    let name = s[..open].trim();
    let args = split_args(s, &s[open + 1..s.len() - 1])?;
    let model = match (name, args.as_slice()) {
        ("constant", [delay]) => Constant(bounded(delay, "delay")?),
        ("uniform", [min, max]) => Uniform(bounded(min, "min")?, bounded(max, "max")?),
        ("normal", [mean, sd]) => Normal(bounded(mean, "mean")?, bounded(sd, "sd")?),
        ("lognormal", [p50, p99]) => LogNormal(bounded(p50, "p50")?, bounded(p99, "p99")?),
        ("exponential", [mean]) => Exponential(bounded(mean, "mean")?),
        ("pareto", [scale, shape]) => Pareto(bounded(scale, "scale")?, positive(shape)?),
        ("mix", _) if in_mix => {
            return Err(error(s, "a mix component cannot be a mix; multiply the weights out"));
        }
        ("mix", [_, ..]) => Mix(args
            .iter()
            .map(|component| {
                let (weight, model) = component.split_once(':').ok_or_else(|| {
                    error(component, "expected WEIGHT:MODEL, such as 0.9:uniform(1s,2s)")
                })?;
                Ok((positive(weight)?, parse_model(model, true)?))
            })
            .collect::<Result<_, ParseDelayError>>()?),
        _ => {
            let known =
                ["constant", "uniform", "normal", "lognormal", "exponential", "pareto", "mix"];
            let what = if known.contains(&name) { "wrong arguments" } else { "unknown model" };
            return Err(error(s, format!("{what}: expected {FORMS}")));
        }
    };
    let problem = match &model {
        Uniform(min, max) if min > max => "min is greater than max",
        LogNormal(p50, _) if p50.is_zero() => "p50 must be greater than zero",
        LogNormal(p50, p99) if p99 < p50 => "p99 is less than p50",
        Pareto(scale, _) if scale.is_zero() => "scale must be greater than zero",
        Mix(components) if !components.iter().map(|(w, _)| w).sum::<f64>().is_finite() => {
            "the weights add up to more than a float can hold"
        }
        _ => return Ok(model),
    };
    Err(error(s, problem))
}

/// Splits a call's arguments at the commas outside parentheses, trimming each.
fn split_args<'a>(call: &str, args: &'a str) -> Result<Vec<&'a str>, ParseDelayError> {
    let unbalanced = || error(call, "unbalanced parentheses");
    if args.trim().is_empty() {
        return Ok(Vec::new());
    }
    let (mut depth, mut start, mut out) = (0usize, 0, Vec::new());
    for (i, c) in args.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or_else(unbalanced)?,
            ',' if depth == 0 => {
                out.push(args[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(unbalanced());
    }
    out.push(args[start..].trim());
    Ok(out)
}

/// A duration no longer than [`MAX_DELAY`]; `param` names it in the error.
fn bounded(text: &str, param: &str) -> Result<Duration, ParseDelayError> {
    let delay = parse_duration(text)?;
    if delay > MAX_DELAY {
        let why = "the longest delay allowed (Workers KV's propagation window)";
        return Err(error(text, format!("{param} is over 60 s, {why}")));
    }
    Ok(delay)
}

/// Parses a duration of the grammar above (`500ms`, `1.5s`, `2m`, `24h`, `7d`), with no upper
/// bound: the lab's scenario files use it for run lengths and fault times, and the node's
/// settings for timeouts and grace periods, so they all read like delays.
pub fn parse_duration(text: &str) -> Result<Duration, ParseDelayError> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(error(t, "a delay cannot be negative"));
    }
    let bad =
        || error(t, "expected a number and a unit ms, s, m, h or d, such as 500ms, 1.5s or 24h");
    let (number, unit) =
        t.split_at(t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len()));
    let unit_ns: u128 = match unit.trim() {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => return Err(bad()),
    };
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(bad());
    }
    let int = int.trim_start_matches('0');
    if int.len() > 15 {
        return Ok(Duration::MAX); // far over the limit in any unit; `bounded` refuses it
    }
    // Only ASCII digits are left, at most 15 and 18 of them, so the parses cannot fail.
    let int: u128 = if int.is_empty() { 0 } else { int.parse().map_err(|_| bad())? };
    let frac = &frac[..frac.len().min(18)];
    let frac_ns = if frac.is_empty() {
        0
    } else {
        frac.parse::<u128>().map_err(|_| bad())? * unit_ns / 10u128.pow(frac.len() as u32)
    };
    let ns = int * unit_ns + frac_ns;
    Ok(Duration::new((ns / 1_000_000_000) as u64, (ns % 1_000_000_000) as u32))
}

fn positive(text: &str) -> Result<f64, ParseDelayError> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(error(text, "expected a finite number greater than zero")),
    }
}

/// A duration in canonical form: whole minutes as `2m`, from a second up in seconds (`1.5s`),
/// below a second in milliseconds (`250ms`, `0.5ms`).
struct Canonical(Duration);

impl fmt::Display for Canonical {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        let (unit_ns, digits, unit) = match ns {
            0 => return f.write_str("0s"),
            _ if ns.is_multiple_of(60_000_000_000) => (60_000_000_000, 0, "m"),
            1_000_000_000.. => (1_000_000_000, 9, "s"),
            _ => (1_000_000, 6, "ms"),
        };
        let (int, frac) = (ns / unit_ns, ns % unit_ns);
        if frac == 0 {
            return write!(f, "{int}{unit}");
        }
        let frac = format!("{frac:0digits$}");
        write!(f, "{int}.{}{unit}", frac.trim_end_matches('0'))
    }
}

/// The canonical form (see the module documentation).
impl fmt::Display for DelayModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = Canonical;
        match self {
            Constant(delay) => write!(f, "{}", c(*delay)),
            Uniform(min, max) => write!(f, "uniform({},{})", c(*min), c(*max)),
            Normal(mean, sd) => write!(f, "normal({},{})", c(*mean), c(*sd)),
            LogNormal(p50, p99) => write!(f, "lognormal({},{})", c(*p50), c(*p99)),
            Exponential(mean) => write!(f, "exponential({})", c(*mean)),
            Pareto(scale, shape) => write!(f, "pareto({},{shape})", c(*scale)),
            Mix(components) => {
                f.write_str("mix(")?;
                for (i, (weight, model)) in components.iter().enumerate() {
                    write!(f, "{}{weight}:{model}", if i == 0 { "" } else { "," })?;
                }
                f.write_str(")")
            }
        }
    }
}

/// A per-link override: the model for writes travelling from `origin` to `destination`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkDelay {
    /// The region that accepted the write.
    pub origin: String,
    /// The region the write is travelling to.
    pub destination: String,
    /// The delay on that link.
    pub model: DelayModel,
}

/// Parses `ORIGIN->DESTINATION=MODEL`, e.g. `wnam->enam=uniform(1s,2s)`. Region names are only
/// checked to be non-empty; whoever builds the matrix validates them against the cluster.
impl FromStr for LinkDelay {
    type Err = ParseDelayError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || error(s, "expected ORIGIN->DESTINATION=MODEL, e.g. wnam->enam=uniform(1s,2s)");
        let (link, model) = s.split_once('=').ok_or_else(bad)?;
        let (origin, destination) = link.split_once("->").ok_or_else(bad)?;
        let (origin, destination) = (origin.trim(), destination.trim());
        if origin.is_empty() || destination.is_empty() || destination.contains("->") {
            return Err(bad());
        }
        let model = model.parse()?;
        Ok(LinkDelay { origin: origin.to_owned(), destination: destination.to_owned(), model })
    }
}

impl fmt::Display for LinkDelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{}={}", self.origin, self.destination, self.model)
    }
}

/// The delay model of every directed link: a default and per-link overrides.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LatencyMatrix {
    default: DelayModel,
    /// Overrides by origin, then destination, so that lookups by `&str` allocate nothing.
    links: BTreeMap<String, BTreeMap<String, DelayModel>>,
}

impl LatencyMatrix {
    /// A matrix where every link uses `default`.
    pub fn new(default: DelayModel) -> Self {
        LatencyMatrix { default, links: BTreeMap::new() }
    }

    /// Overrides one link, returning the override it replaces.
    pub fn set(&mut self, link: LinkDelay) -> Option<DelayModel> {
        self.links.entry(link.origin).or_default().insert(link.destination, link.model)
    }

    /// The model of links without an override.
    pub fn default_model(&self) -> &DelayModel {
        &self.default
    }

    /// The model for writes from `origin` to `destination`.
    pub fn model(&self, origin: &str, destination: &str) -> &DelayModel {
        self.links.get(origin).and_then(|to| to.get(destination)).unwrap_or(&self.default)
    }

    /// The overrides as `(origin, destination, model)`, sorted by origin then destination.
    pub fn links(&self) -> impl Iterator<Item = (&str, &str, &DelayModel)> {
        self.links.iter().flat_map(|(origin, to)| {
            to.iter()
                .map(move |(destination, model)| (origin.as_str(), destination.as_str(), model))
        })
    }

    /// The delay of write `seq` from `origin` to `destination`; see [`DelayModel::sample`].
    pub fn sample(&self, seed: u64, origin: &str, seq: u64, destination: &str) -> Duration {
        self.model(origin, destination).sample(seed, origin, seq, destination)
    }

    /// The longest delay on any link (the default counts even if every link is overridden).
    pub fn max(&self) -> Duration {
        self.links().map(|(_, _, model)| model.max()).fold(self.default.max(), Duration::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn model(s: &str) -> DelayModel {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// 20,000 samples in seconds, sorted, from a fixed seed so that statistics never flake.
    fn samples(m: &str) -> Vec<f64> {
        let m = model(m);
        let mut out: Vec<f64> =
            (0..20_000).map(|seq| m.sample(7, "wnam", seq, "enam").as_secs_f64()).collect();
        out.sort_by(f64::total_cmp);
        out
    }

    fn mean(xs: &[f64]) -> f64 {
        xs.iter().sum::<f64>() / xs.len() as f64
    }

    fn quantile(sorted: &[f64], q: f64) -> f64 {
        sorted[(sorted.len() as f64 * q) as usize]
    }

    fn assert_near(actual: f64, expected: f64, tolerance: f64) {
        assert!((actual - expected).abs() <= tolerance, "{actual} is not {expected}±{tolerance}");
    }

    #[test]
    fn parses_every_form_and_writes_it_back_canonically() {
        for (input, canonical) in [
            ("5s", "5s"),
            (" constant( 1.5s ) ", "1.5s"),
            ("0.25 s", "250ms"),
            ("0.0005s", "0.5ms"),
            ("60s", "1m"),
            ("0m", "0s"),
            ("uniform(1s, 10s)", "uniform(1s,10s)"),
            ("normal(500ms,0.1s)", "normal(500ms,100ms)"),
            ("lognormal(1s,10s)", "lognormal(1s,10s)"),
            ("exponential(2000ms)", "exponential(2s)"),
            ("pareto(1s, 2.50)", "pareto(1s,2.5)"),
            ("mix(0.9:uniform(1s,2s), 0.1 : 30s)", "mix(0.9:uniform(1s,2s),0.1:30s)"),
        ] {
            let parsed = model(input);
            assert_eq!(parsed.to_string(), canonical, "{input}");
            assert_eq!(model(canonical), parsed, "{canonical}");
        }
        assert_eq!(model("pareto(1.5s,2)"), Pareto(secs(1.5), 2.0));
        assert_eq!(
            model("mix(3:uniform(1s,2s),1:normal(1s,0s))"),
            Mix(vec![
                (3.0, Uniform(secs(1.0), secs(2.0))),
                (1.0, Normal(secs(1.0), Duration::ZERO))
            ])
        );
    }

    #[test]
    fn refuses_bad_input_with_an_error_naming_it() {
        for (input, message) in [
            ("", r#""": empty: expected a duration such as 1.5s, or constant(DELAY)"#),
            ("90s", r#""90s": delay is over 60 s, the longest delay allowed (Workers KV's"#),
            ("uniform(1s,61s)", r#""61s": max is over 60 s"#),
            ("normal(61s,1s)", r#""61s": mean is over 60 s"#),
            ("lognormal(1s,2m)", r#""2m": p99 is over 60 s"#),
            ("lognormal(1.5m,2m)", r#""1.5m": p50 is over 60 s"#),
            ("exponential(99999999999999999999999s)", "mean is over 60 s"),
            ("pareto(61s,2)", "scale is over 60 s"),
            ("mix(1:61s)", "delay is over 60 s"),
            ("-1s", r#""-1s": a delay cannot be negative"#),
            ("uniform(-1s,2s)", r#""-1s": a delay cannot be negative"#),
            ("5", r#""5": expected a number and a unit ms, s, m, h or d"#),
            ("5h", r#""5h": delay is over 60 s"#),
            ("5x", r#""5x": expected a number"#),
            ("1..5s", r#""1..5s": expected a number"#),
            ("uniform(2s,1s)", r#""uniform(2s,1s)": min is greater than max"#),
            ("lognormal(0s,1s)", "p50 must be greater than zero"),
            ("lognormal(2s,1s)", "p99 is less than p50"),
            ("pareto(0s,2)", "scale must be greater than zero"),
            ("pareto(1s,-2)", r#""-2": expected a finite number greater than zero"#),
            ("pareto(1s,NaN)", r#""NaN": expected a finite number"#),
            ("mix(0:1s)", r#""0": expected a finite number"#),
            ("mix(1s)", r#""1s": expected WEIGHT:MODEL"#),
            ("mix()", r#""mix()": wrong arguments: expected a duration"#),
            ("mix(1:mix(1:1s))", "a mix component cannot be a mix"),
            ("mix(1e308:1s,1e308:2s)", "the weights add up to more than a float can hold"),
            ("gamma(1s,2s)", r#""gamma(1s,2s)": unknown model: expected a duration"#),
            ("uniform(1s)", r#""uniform(1s)": wrong arguments: expected a duration"#),
            ("uniform(1s,2s) x", "expected nothing after the closing parenthesis"),
            ("uniform(1s,2s))", "unbalanced parentheses"),
            ("5s)", "unbalanced parentheses"),
        ] {
            let err = input.parse::<DelayModel>().expect_err(input).to_string();
            assert!(err.contains(message), "{input:?} gave {err:?}, expected {message:?}");
        }
        let err = "mix(1:pareto(1s))".parse::<DelayModel>().unwrap_err().to_string();
        assert_eq!(
            err,
            format!(r#"invalid delay "pareto(1s)": wrong arguments: expected {FORMS}"#)
        );
    }

    #[test]
    fn samples_are_a_pure_function_of_seed_origin_seq_and_destination() {
        let m = model("uniform(0s,60s)");
        let base = m.sample(1, "wnam", 42, "enam");
        assert_eq!(base, m.sample(1, "wnam", 42, "enam"));
        // Pinned: if this changes, recorded runs no longer replay from their seeds.
        assert_eq!(base, Duration::from_nanos(37_985_165_756));
        for other in [
            m.sample(2, "wnam", 42, "enam"),
            m.sample(1, "weur", 42, "enam"),
            m.sample(1, "wnam", 43, "enam"),
            m.sample(1, "wnam", 42, "apac"),
            m.sample(1, "enam", 42, "wnam"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn samples_are_truncated_to_zero_and_sixty_seconds() {
        let low = samples("normal(1s,5s)");
        assert!(low[0] == 0.0 && quantile(&low, 0.3) == 0.0);
        let high = samples("normal(59s,5s)");
        assert!(high[high.len() - 1] == 60.0 && quantile(&high, 0.7) == 60.0);
        assert_eq!(quantile(&samples("pareto(1s,0.1)"), 0.5), 60.0);
        // Hand-built models are not checked, but they still sample within bounds.
        assert_eq!(Constant(secs(90.0)).sample(0, "a", 0, "b"), MAX_DELAY);
        assert_eq!(Constant(secs(90.0)).max(), MAX_DELAY);
    }

    #[test]
    fn max_is_exact_for_bounded_models_and_the_limit_otherwise() {
        for (m, max) in [
            ("5s", secs(5.0)),
            ("uniform(1s,2s)", secs(2.0)),
            ("mix(1:uniform(1s,2s),3:30s)", secs(30.0)),
            ("normal(1s,0s)", secs(1.0)),
            ("lognormal(1s,1s)", secs(1.0)),
            ("normal(1s,1ms)", MAX_DELAY),
            ("exponential(1ms)", MAX_DELAY),
            ("pareto(1ms,9)", MAX_DELAY),
        ] {
            assert_eq!(model(m).max(), max, "{m}");
        }
    }

    #[test]
    fn constant_and_uniform_have_the_right_values() {
        assert!(samples("1.5s").iter().all(|s| *s == 1.5));
        let s = samples("uniform(1s,10s)");
        assert!(s[0] >= 1.0 && s[0] < 1.01 && s[s.len() - 1] <= 10.0 && s[s.len() - 1] > 9.99);
        assert_near(mean(&s), 5.5, 0.1);
    }

    #[test]
    fn normal_has_the_right_mean_and_sd() {
        let s = samples("normal(10s,2s)");
        let m = mean(&s);
        let sd = (s.iter().map(|x| (x - m).powi(2)).sum::<f64>() / s.len() as f64).sqrt();
        assert_near(m, 10.0, 0.05);
        assert_near(sd, 2.0, 0.05);
    }

    #[test]
    fn lognormal_has_the_right_median_and_p99() {
        let s = samples("lognormal(1s,10s)");
        assert_near(quantile(&s, 0.5), 1.0, 0.05);
        assert_near(quantile(&s, 0.99), 10.0, 1.0);
    }

    #[test]
    fn exponential_and_pareto_have_the_right_mean_and_median() {
        assert_near(mean(&samples("exponential(2s)")), 2.0, 0.05);
        let s = samples("pareto(1s,2.5)");
        assert!(s[0] >= 1.0);
        assert_near(quantile(&s, 0.5), 2f64.powf(1.0 / 2.5), 0.03);
    }

    #[test]
    fn mixture_picks_components_in_proportion_to_their_weights() {
        let share = |m: &str, value: f64| {
            samples(m).iter().filter(|s| **s == value).count() as f64 / 20_000.0
        };
        assert_near(share("mix(0.9:uniform(1s,2s),0.1:30s)", 30.0), 0.1, 0.01);
        assert_near(share("mix(3:1s,1:2s)", 1.0), 0.75, 0.01);
    }

    #[test]
    fn link_delays_parse_and_override_the_default() {
        let link: LinkDelay = " wnam -> enam = uniform(1s,2s)".parse().unwrap();
        assert_eq!((link.origin.as_str(), link.destination.as_str()), ("wnam", "enam"));
        assert_eq!(link.to_string(), "wnam->enam=uniform(1s,2s)");
        for bad in ["wnam->enam", "wnam=1s", "->enam=1s", "wnam-> =1s", "a->b->c=1s"] {
            let err = bad.parse::<LinkDelay>().unwrap_err();
            assert_eq!(err.text, bad);
            assert!(err.reason.contains("ORIGIN->DESTINATION=MODEL"), "{bad}");
        }
        assert!("a->b=90s".parse::<LinkDelay>().unwrap_err().reason.contains("over 60 s"));

        let mut matrix = LatencyMatrix::new(model("100ms"));
        assert_eq!(matrix.max(), secs(0.1));
        assert_eq!(matrix.set(link.clone()), None);
        assert_eq!(matrix.set("weur->apac=exponential(1s)".parse().unwrap()), None);
        assert_eq!(matrix.model("wnam", "enam"), &link.model);
        assert_eq!(matrix.model("enam", "wnam"), matrix.default_model());
        assert_eq!(matrix.links().count(), 2);
        assert_eq!(matrix.max(), MAX_DELAY);
        assert_eq!(matrix.sample(3, "wnam", 9, "enam"), link.model.sample(3, "wnam", 9, "enam"));
        assert_eq!(matrix.set("wnam->enam=1s".parse().unwrap()), Some(link.model));
    }

    /// Pieces of the grammar, so that generated text gets deep into the parser.
    fn fragments() -> impl Strategy<Value = String> {
        let pieces =
            "uniform(|normal(|lognormal(|exponential(|pareto(|mix(|constant(|)|,|:| |-|.|0|\
                      1s|1.5s|500ms|61s|1m|2.5|0.1|9999999999m|NaN|ms|s|->|=|é";
        let pieces: Vec<&str> = pieces.split('|').collect();
        prop::collection::vec(prop::sample::select(pieces), 0..16).prop_map(|p| p.concat())
    }

    /// Valid models with arbitrary nanosecond durations and weights.
    fn models() -> impl Strategy<Value = DelayModel> {
        let d = || (0..=MAX_DELAY.as_nanos() as u64).prop_map(Duration::from_nanos);
        let pos = || (1..=MAX_DELAY.as_nanos() as u64).prop_map(Duration::from_nanos);
        let leaf = prop_oneof![
            d().prop_map(Constant),
            (d(), d()).prop_map(|(a, b)| Uniform(a.min(b), a.max(b))),
            (d(), d()).prop_map(|(mean, sd)| Normal(mean, sd)),
            (pos(), pos()).prop_map(|(a, b)| LogNormal(a.min(b), a.max(b))),
            d().prop_map(Exponential),
            (pos(), 1e-3..1e3).prop_map(|(scale, shape)| Pareto(scale, shape)),
        ];
        let mix = prop::collection::vec((1e-9..1e9, leaf.clone()), 1..4).prop_map(Mix);
        prop_oneof![leaf, mix]
    }

    proptest! {
        /// Arbitrary text never panics the parsers.
        #[test]
        fn parsers_never_panic(s in any::<String>()) {
            let _ = s.parse::<DelayModel>();
            let _ = s.parse::<LinkDelay>();
        }

        /// Whatever parses round-trips through its canonical form.
        #[test]
        fn accepted_text_round_trips(s in fragments()) {
            let _ = s.parse::<LinkDelay>();
            if let Ok(m) = s.parse::<DelayModel>() {
                prop_assert_eq!(m.to_string().parse::<DelayModel>(), Ok(m));
            }
        }

        /// Every valid model round-trips exactly, and its samples stay within its maximum.
        #[test]
        fn valid_models_round_trip_and_sample_within_max(m in models(), seq in any::<u64>()) {
            prop_assert_eq!(m.to_string().parse::<DelayModel>(), Ok(m.clone()));
            prop_assert!(m.max() <= MAX_DELAY);
            prop_assert!(m.sample(seq, "wnam", seq, "enam") <= m.max());
        }
    }
}
