//! B5, divergence: how many keys the regions disagreed on over the run, how long each write
//! left them disagreeing, and whether they agreed before the final reads.

use super::index::Index;
use super::stats::quantiles;
use super::{ms, DIVERGENCE_SAMPLES};
use crate::history::{History, Nanos};
use crate::summary::{DivergenceSample, DivergenceSummary};

/// Divergent keys over time (B5), from apply estimates: a key diverges while some region's
/// greatest version differs from another's, to the estimates' precision.
pub(super) fn divergence(
    ix: &Index<'_>,
    history: &History,
    end: Nanos,
    windows: Vec<f64>,
    has_applies: bool,
) -> DivergenceSummary {
    let window = quantiles(windows);
    if !has_applies {
        return DivergenceSummary { window, ..DivergenceSummary::default() };
    }
    // Every time a region's greatest version of a key grew, by time.
    let mut events: Vec<(Nanos, usize, &str)> = ix
        .held
        .iter()
        .flat_map(|(&(key, _), steps)| steps.iter().map(move |&(at, v)| (at, key, v)))
        .collect();
    events.sort_unstable();
    let sample_times: Vec<Nanos> = (0..DIVERGENCE_SAMPLES)
        .map(|i| (end as f64 * i as f64 / (DIVERGENCE_SAMPLES - 1) as f64) as Nanos)
        .collect();
    let mut sweep = Sweep::new(ix.regions.len(), ix.keys.len());
    let (mut i, mut next_sample) = (0, 0);
    while i < events.len() || next_sample < sample_times.len() {
        let t_event = events.get(i).map(|e| e.0);
        let t_sample = sample_times.get(next_sample).copied();
        // Samples at an instant see the events of that instant.
        if let Some(ts) = t_sample.filter(|&ts| t_event.is_none_or(|te| ts < te)) {
            sweep.sample(ts);
            next_sample += 1;
            continue;
        }
        let Some(t) = t_event else { break };
        sweep.advance(t);
        while let Some(&(_, key, version)) = events.get(i).filter(|e| e.0 == t) {
            sweep.step(key, version);
            i += 1;
        }
        sweep.record_max(t);
    }
    sweep.advance(end);
    let first_final = history.finals.iter().map(|f| f.at).min();
    let unconverged_at_finals = first_final.map_or(0, |t| unconverged_at(ix, t));
    DivergenceSummary {
        samples: sweep.samples,
        max_divergent: sweep.max_divergent,
        max_at_ms: sweep.max_at,
        time_weighted_fraction: (sweep.covered > 0.0).then(|| sweep.weighted / sweep.covered),
        window,
        converged_within_quiet: first_final.map(|_| unconverged_at_finals == 0),
        unconverged_at_finals,
    }
}

/// The sweep over the regions' version steps in time order.
struct Sweep<'a> {
    regions: usize,
    /// Per key: the greatest version any region holds, and how many regions hold it. A region
    /// only ever moves up, so one that reaches the greatest version either ties it or replaces
    /// it.
    top: Vec<Option<(&'a str, usize)>>,
    /// Keys some region holds in a version another does not.
    divergent: usize,
    /// Keys some region holds.
    seen: usize,
    samples: Vec<DivergenceSample>,
    max_divergent: usize,
    max_at: Option<f64>,
    /// The divergent fraction integrated over time, and the time it covers.
    weighted: f64,
    covered: f64,
    last_t: Nanos,
}

impl<'a> Sweep<'a> {
    fn new(regions: usize, keys: usize) -> Self {
        Sweep {
            regions,
            top: vec![None; keys],
            divergent: 0,
            seen: 0,
            samples: Vec::with_capacity(DIVERGENCE_SAMPLES),
            max_divergent: 0,
            max_at: None,
            weighted: 0.0,
            covered: 0.0,
            last_t: 0,
        }
    }

    fn sample(&mut self, t: Nanos) {
        self.samples.push(DivergenceSample {
            at_ms: ms(t),
            divergent: self.divergent,
            keys: self.seen,
        });
    }

    /// Time passes to `t` (never backwards): the divergent fraction so far counts for it.
    fn advance(&mut self, t: Nanos) {
        if self.seen > 0 && t > self.last_t {
            let dt = (t - self.last_t) as f64;
            self.weighted += dt * self.divergent as f64 / self.seen as f64;
            self.covered += dt;
        }
        self.last_t = self.last_t.max(t);
    }

    /// One region's greatest version of `key` grew to `version`.
    fn step(&mut self, key: usize, version: &'a str) {
        let Some(slot) = self.top.get_mut(key) else { return };
        let was = match *slot {
            None => {
                self.seen += 1;
                false
            }
            Some((_, holders)) => holders < self.regions,
        };
        *slot = match *slot {
            Some((v, holders)) if version == v => Some((v, holders + 1)),
            Some((v, holders)) if version < v => Some((v, holders)),
            _ => Some((version, 1)),
        };
        let now = slot.is_some_and(|(_, holders)| holders < self.regions);
        match (was, now) {
            (false, true) => self.divergent += 1,
            (true, false) => self.divergent -= 1,
            _ => {}
        }
    }

    fn record_max(&mut self, t: Nanos) {
        if self.divergent > self.max_divergent {
            self.max_divergent = self.divergent;
            self.max_at = Some(ms(t));
        }
    }
}

/// The (key, region) pairs that did not yet hold their key's greatest acknowledged version at
/// `t`: before the final reads there should be none.
fn unconverged_at(ix: &Index<'_>, t: Nanos) -> usize {
    let mut unconverged = 0;
    for key in 0..ix.writes_by_key.len() {
        let Some(target) = ix.key_writes(key).map(|w| w.version).max() else { continue };
        for r in 0..ix.regions.len() {
            if ix.first_hold(key, r, target).is_none_or(|at| at > t) {
                unconverged += 1;
            }
        }
    }
    unconverged
}
