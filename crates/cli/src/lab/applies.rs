//! Collecting the regions' apply events and placing them on the run's clock.
//!
//! A node reports when it applied a version on its own clocks, never on the lab's, so what the
//! lab can say is a window the apply lies in, from bounds it can defend:
//!
//! - the node's system clock in microseconds (`system_us`), which carries none of the offsets
//!   experiments set: the event lies in `[U, U + 1 µs)` of that clock;
//! - the lab's pairing of its monotonic clock with the same system clock at the start, known to
//!   within the time the two readings took ([`Clock::pairing_ns`]). Linux slews both clocks
//!   alike, so the pairing holds for the run unless the system clock is stepped;
//! - for an external cluster, the scenario's `clock_error`: how far the nodes' clocks may be
//!   from the lab's machine;
//! - the poll: the node logged the event before the lab's request that returned it, so the
//!   lab's clock when the answer came is a hard upper bound whatever the clocks say.
//!
//! A node that reports only `at_ms` (its offset wall clock, in milliseconds) gets the window of
//! every clock offset the region had that its reading is consistent with. The checker adds one
//! more bound it alone knows: no region applies a write before the client sent it.

use std::time::Duration;

use anyhow::Context;
use axum::http::{Method, StatusCode};
use edgekv_lab::history::{Apply, Nanos};
use edgekv_lab::meta::ClockStep;
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::client::Client;
use super::{Clock, Region};

/// How often the pollers ask each region for its apply events.
pub(super) const APPLY_POLL: Duration = Duration::from_millis(200);
/// Events asked for per request.
const PAGE: usize = 10_000;

/// Starts one poller per region, each collecting the run's apply events until `stop`.
pub(super) fn spawn_pollers(
    regions: &[Region],
    namespace: &str,
    clock: Clock,
    stop: &CancellationToken,
) -> anyhow::Result<JoinSet<Polled>> {
    let mut pollers = JoinSet::new();
    for (i, region) in regions.iter().enumerate() {
        let poller = Poller {
            index: i,
            admin: Client::new(region.admin.clone(), &region.admin_token)?,
            namespace: namespace.to_owned(),
            clock,
        };
        pollers.spawn(poller.run(stop.clone()));
    }
    Ok(pollers)
}

/// What every region's poller collected, once stopped.
pub(super) struct Collected {
    /// (the region's index, its event), in no order.
    events: Vec<(usize, RawApply)>,
    /// The regions whose events are incomplete.
    pub(super) missed: Vec<String>,
}

/// Waits for the stopped pollers.
pub(super) async fn join_pollers(
    mut pollers: JoinSet<Polled>,
    regions: &[Region],
) -> anyhow::Result<Collected> {
    let mut collected = Collected { events: Vec::new(), missed: Vec::new() };
    while let Some(result) = pollers.join_next().await {
        let polled = result.context("an apply poller panicked")?;
        if polled.missed {
            let name = regions.get(polled.index).map(|r| r.name.clone());
            collected.missed.extend(name);
        }
        collected.events.extend(polled.events.into_iter().map(|e| (polled.index, e)));
    }
    Ok(collected)
}

impl Collected {
    /// The events on the run's clock (see [`apply_on_run_clock`]), by their best estimate.
    pub(super) fn on_run_clock(
        self,
        regions: &[Region],
        steps: &[ClockStep],
        clock: &Clock,
        clock_error: Duration,
    ) -> Vec<Apply> {
        let mut applies: Vec<Apply> = self
            .events
            .into_iter()
            .filter_map(|(i, e)| {
                let region = regions.get(i)?;
                Some(apply_on_run_clock(&region.name, e, steps, clock, clock_error))
            })
            .collect();
        applies.sort_by_key(|a| a.at);
        applies
    }
}

/// An apply event as a node reports it.
struct RawApply {
    key: String,
    version: String,
    /// The node's wall clock with its offset, epoch ms.
    at_ms: u64,
    /// The node's system clock without offsets, epoch µs (absent from older nodes).
    system_us: Option<u64>,
    /// When the lab read it, on the run's clock: it happened before then.
    polled: Nanos,
}

/// What one region's poller collected.
pub(super) struct Polled {
    index: usize,
    events: Vec<RawApply>,
    missed: bool,
}

/// Reads one region's apply events for the run's namespace until stopped.
struct Poller {
    index: usize,
    admin: Client,
    namespace: String,
    clock: Clock,
}

/// One answer of `/admin/applies`.
enum Page {
    /// The node keeps no apply log.
    Off,
    /// The page, and the run's clock when it came.
    Events(Value, Nanos),
}

impl Poller {
    async fn run(mut self, stop: CancellationToken) -> Polled {
        let mut polled = Polled { index: self.index, events: Vec::new(), missed: false };
        let mut after = 0u64;
        let mut boot: Option<String> = None;
        loop {
            // Drain everything there is, then wait.
            while let Some(page) = self.page(after).await {
                let Page::Events(page, polled_at) = page else {
                    // The node runs without --apply-log: nothing to collect, ever.
                    polled.missed = true;
                    return polled;
                };
                // A restarted node numbers its log from 1 again.
                let this_boot = page["boot"].as_str().map(str::to_owned);
                if boot.is_some() && this_boot != boot {
                    // What it applied between the last poll and its end is gone with it.
                    polled.missed = true;
                    after = 0;
                    boot = this_boot;
                    continue;
                }
                boot = this_boot;
                // Events before the first poll belong to earlier runs; a gap later is a loss.
                polled.missed |= after > 0 && page["missed"].as_bool() == Some(true);
                let count = self.collect(&page, polled_at, &mut polled.events);
                after = page["next"].as_u64().unwrap_or(after);
                if count < PAGE {
                    break;
                }
            }
            tokio::select! {
                // In order, not at random: a simulation must replay the same choice.
                biased;
                _ = stop.cancelled() => return polled,
                _ = tokio::time::sleep(APPLY_POLL) => {}
            }
        }
    }

    /// One page of events after `after`; `None` if the request failed.
    async fn page(&mut self, after: u64) -> Option<Page> {
        let path = format!("/admin/applies?after={after}&limit={PAGE}");
        let reply = self.admin.call(Method::GET, &path, None).await.ok()?;
        if reply.status == StatusCode::CONFLICT {
            return Some(Page::Off);
        }
        // Read once the answer is in: every event in it was logged before.
        let polled_at = self.clock.now();
        let page = serde_json::from_slice::<Value>(&reply.body).ok()?;
        Some(Page::Events(page, polled_at))
    }

    /// Keeps the page's events of the run's namespace; returns how many events it had.
    fn collect(&self, page: &Value, polled: Nanos, into: &mut Vec<RawApply>) -> usize {
        let events = page["events"].as_array().map_or(&[][..], Vec::as_slice);
        for e in events.iter().filter(|e| e["namespace"] == self.namespace.as_str()) {
            if let (Some(key), Some(version), Some(at_ms)) =
                (e["key"].as_str(), e["version"].as_str(), e["at_ms"].as_u64())
            {
                into.push(RawApply {
                    key: key.to_owned(),
                    version: version.to_owned(),
                    at_ms,
                    system_us: e["system_us"].as_u64(),
                    polled,
                });
            }
        }
        events.len()
    }
}

/// A node's apply event on the run's clock: the window it lies in (see the module doc) and the
/// best estimate inside it. `clock_error` is how far the node's clocks may be from the lab's.
/// A window wholly before the run's start (when the run's namespace did not exist yet) or after
/// the poll means the clocks are wrong: then only the poll bounds it.
fn apply_on_run_clock(
    region: &str,
    raw: RawApply,
    steps: &[ClockStep],
    clock: &Clock,
    clock_error: Duration,
) -> Apply {
    let window = match raw.system_us {
        Some(us) => Some(system_window(us, clock)),
        None => offset_window(region, raw.at_ms, raw.polled, steps, clock),
    };
    let error = i128::try_from(clock_error.as_nanos()).unwrap_or(i128::MAX / 4);
    let polled = i128::from(raw.polled);
    let window = window
        .map(|(estimate, earliest, latest)| (estimate, earliest - error, latest + error))
        .filter(|&(_, earliest, latest)| latest >= 0 && earliest <= polled);
    let (estimate, earliest, latest) = match window {
        Some((estimate, earliest, latest)) => {
            (run_ns(estimate), run_ns(earliest), run_ns(latest).min(raw.polled))
        }
        None => (raw.polled, 0, raw.polled),
    };
    Apply {
        region: region.to_owned(),
        key: raw.key,
        version: raw.version,
        at: estimate.clamp(earliest, latest),
        earliest: Some(earliest),
        latest: Some(latest),
    }
}

/// The window of a system-clock reading of `us` µs: `[U, U + 1 µs)` of the node's clock,
/// shifted by the lab's pairing of that clock with its own (the run's clock read somewhere in
/// `[0, pairing]` as the system clock read the start). Returns (estimate, earliest, latest)
/// relative to the run's start.
fn system_window(us: u64, clock: &Clock) -> (i128, i128, i128) {
    let earliest = i128::from(us) * 1000 - i128::from(clock.wall_ns);
    let latest = earliest + 1000 + i128::from(clock.pairing_ns);
    (earliest + (latest - earliest) / 2, earliest, latest)
}

/// An instant relative to the run's start, cut at its start.
fn run_ns(ns: i128) -> Nanos {
    u64::try_from(ns.max(0)).unwrap_or(Nanos::MAX)
}

/// The window of an offset wall-clock reading of `at_ms`: under each offset the region had, the
/// reading means a different moment; those after the offset took effect and before the poll
/// are all possible, so the window spans them. The estimate is the latest such moment's middle
/// (a clock set back is read as after the step when the poll allows it). `None`: no offset is
/// consistent with the reading. Returns (estimate, earliest, latest) relative to the run's start.
fn offset_window(
    region: &str,
    at_ms: u64,
    polled: Nanos,
    steps: &[ClockStep],
    clock: &Clock,
) -> Option<(i128, i128, i128)> {
    let mine: Vec<(Nanos, i64)> =
        steps.iter().filter(|s| s.region == region).map(|s| (s.at, s.offset_ms)).collect();
    let initial = (!mine.iter().any(|&(at, _)| at == 0)).then_some((0, 0));
    let mut window: Option<(i128, i128, i128)> = None;
    for (from, offset_ms) in initial.into_iter().chain(mine) {
        let start = (i128::from(at_ms) - i128::from(offset_ms)) * 1_000_000;
        let earliest = start - i128::from(clock.wall_ns);
        let latest = earliest + 1_000_000 + i128::from(clock.pairing_ns);
        if latest < i128::from(from) || earliest > i128::from(polled) {
            continue;
        }
        let middle = earliest + (latest - earliest) / 2;
        window = Some(match window {
            None => (middle, earliest, latest),
            Some((_, e, l)) => (middle, e.min(earliest), l.max(latest)),
        });
    }
    window
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;

    const MS: Nanos = 1_000_000;

    /// A run that started at wall clock `start_ms`, its two clocks paired within `pairing_ns`.
    fn clock(start_ms: u64, pairing_ns: u64) -> Clock {
        Clock { start: Instant::now(), wall_ms: start_ms, wall_ns: start_ms * MS, pairing_ns }
    }

    fn raw(at_ms: u64, system_us: Option<u64>, polled_ms: u64) -> RawApply {
        RawApply { key: "k".into(), version: "v".into(), at_ms, system_us, polled: polled_ms * MS }
    }

    fn window(a: &Apply) -> (Nanos, Nanos, Nanos) {
        (a.at, a.earliest.unwrap_or(0), a.latest.unwrap_or(0))
    }

    #[test]
    fn a_microsecond_reading_is_a_window_of_a_microsecond_and_the_pairing() {
        let start = 1_700_000_000_000;
        let c = clock(start, 400);
        let us = (start + 15_123) * 1000 + 529;
        let a = apply_on_run_clock("enam", raw(0, Some(us), 15_400), &[], &c, Duration::ZERO);
        // 15.123529 s after the start, to 1 µs + 400 ns; offsets do not apply to it.
        assert_eq!(window(&a), (15_123_529_700, 15_123_529_000, 15_123_530_400));
        let steps = vec![ClockStep { region: "enam".into(), at: 0, offset_ms: 400 }];
        let same = apply_on_run_clock("enam", raw(0, Some(us), 15_400), &steps, &c, Duration::ZERO);
        assert_eq!(window(&same), window(&a));
        // A declared clock error widens it both ways.
        let wide = apply_on_run_clock(
            "enam",
            raw(0, Some(us), 15_400),
            &[],
            &c,
            5 * Duration::from_millis(1),
        );
        assert_eq!((wide.earliest, wide.latest), (Some(15_118_529_000), Some(15_128_530_400)));
    }

    #[test]
    fn the_poll_bounds_every_window_from_above() {
        let start = 1_700_000_000_000;
        let c = clock(start, 0);
        let us = (start + 5_000) * 1000;
        // Polled half a microsecond into the window: its end is cut there.
        let polled = RawApply { polled: 5_000 * MS + 500, ..raw(0, Some(us), 0) };
        let a = apply_on_run_clock("r", polled, &[], &c, Duration::ZERO);
        assert_eq!(window(&a), (5_000 * MS + 500, 5_000 * MS, 5_000 * MS + 500));
        // Clocks that put it after the poll are wrong: only the poll is left.
        let late = RawApply { polled: 4_000 * MS, ..raw(0, Some(us), 0) };
        let a = apply_on_run_clock("r", late, &[], &c, Duration::ZERO);
        assert_eq!(window(&a), (4_000 * MS, 0, 4_000 * MS));
    }

    #[test]
    fn a_millisecond_reading_spans_every_offset_it_is_consistent_with() {
        let start = 1_000_000;
        let c = clock(start, 0);
        // weur runs 400 ms ahead from the start, then a fault sets it 2 s behind at 10 s.
        let steps = vec![
            ClockStep { region: "weur".into(), at: 0, offset_ms: 400 },
            ClockStep { region: "weur".into(), at: 10_000 * MS, offset_ms: -2000 },
        ];
        let at = |region: &str, at_ms, polled_ms| {
            window(&apply_on_run_clock(
                region,
                raw(at_ms, None, polled_ms),
                &steps,
                &c,
                Duration::ZERO,
            ))
        };
        let ms_window = |from_ms: u64| (from_ms * MS + MS / 2, from_ms * MS, from_ms * MS + MS);
        assert_eq!(at("wnam", start + 5_000, 5_100), ms_window(5_000), "no offset");
        assert_eq!(at("weur", start + 5_400, 5_100), ms_window(5_000));
        // 12 s on the run clock shows as 10 s on weur's clock once it is 2 s behind; so does
        // 9.6 s before the step, which the poll at 12.1 s cannot rule out.
        assert_eq!(
            at("weur", start + 10_000, 12_100),
            (12_000 * MS + MS / 2, 9_600 * MS, 12_001 * MS)
        );
        // A reading of 9 s is 8.6 s before the step or 11 s after it: the poll decides, and
        // when it cannot, the window spans both.
        assert_eq!(at("weur", start + 9_000, 8_700), ms_window(8_600), "polled before the step");
        assert_eq!(
            at("weur", start + 9_000, 11_100),
            (11_000 * MS + MS / 2, 8_600 * MS, 11_001 * MS)
        );
        // Before the run's start the namespace did not exist: the clocks are wrong.
        assert_eq!(at("wnam", start - 5, 100), (100 * MS, 0, 100 * MS));
    }
}
