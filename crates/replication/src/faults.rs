//! Message-level faults: what chaos experiments do to the links between regions, without root,
//! Docker or a proxy.
//!
//! A fault names links by region (`*` matches any region). Each node enforces the faults on the
//! links it is an end of: its sender consults them before delivering to a peer, and its gRPC
//! service before accepting a peer's message. So a partition set on one node alone already cuts
//! both directions of its links, and `edgekv cluster`, which sets faults on every region, gets
//! the same result from both ends.
//!
//! Random decisions (loss, duplication) are a pure function of the run's seed, the link and
//! the number of the message on it (the transport's fault filter counts a link's deliveries),
//! so a run with the same seed and the same traffic makes the same decisions, however its tasks
//! are scheduled.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edgekv_core::{ActiveFault, DelayModel, Fault, FaultError, OffsetClock, RegionId, ANY};
use parking_lot::RwLock;

/// The faults in force, shared by a node's sender, service and admin API; `edgekv cluster`
/// shares one set between all its regions.
#[derive(Debug)]
pub struct Faults {
    seed: u64,
    active: RwLock<Vec<(ActiveFault, Option<DelayModel>)>>,
    next_id: AtomicU64,
    /// The clock of each region served here, which clock-offset faults adjust.
    clocks: RwLock<Vec<(RegionId, Arc<OffsetClock>)>>,
}

fn fnv(s: &str) -> u64 {
    s.bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn matches(pattern: &str, region: &str) -> bool {
    pattern == ANY || pattern == region
}

impl Faults {
    /// No faults, with random decisions seeded by `seed`.
    pub fn new(seed: u64) -> Self {
        Faults {
            seed,
            active: RwLock::new(Vec::new()),
            next_id: AtomicU64::new(1),
            clocks: RwLock::new(Vec::new()),
        }
    }

    /// Registers the clock of `region`, for clock-offset faults.
    pub fn register_clock(&self, region: RegionId, clock: Arc<OffsetClock>) {
        self.clocks.write().push((region, clock));
        self.apply_clock();
    }

    /// Adds a fault after validating it; returns its id. A process fault is refused: a node
    /// cannot kill or freeze itself the way a container engine does.
    pub fn add(&self, fault: Fault) -> Result<u64, FaultError> {
        fault.validate()?;
        if fault.is_process() {
            return Err(FaultError(format!(
                "{} acts on a region's container, not on its links: use edgekv chaos (docker)",
                fault.kind()
            )));
        }
        let model = match &fault {
            Fault::Delay { extra, .. } => Some(
                extra
                    .parse()
                    .map_err(|e: edgekv_core::ParseDelayError| FaultError(e.to_string()))?,
            ),
            _ => None,
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        tracing::info!(id, kind = fault.kind(), fault = ?fault, "fault added");
        self.active.write().push((ActiveFault { id, fault }, model));
        self.apply_clock();
        Ok(id)
    }

    /// Removes fault `id`; returns whether it existed.
    pub fn remove(&self, id: u64) -> bool {
        let removed = {
            let mut active = self.active.write();
            let before = active.len();
            active.retain(|(f, _)| f.id != id);
            active.len() != before
        };
        if removed {
            tracing::info!(id, "fault removed");
            self.apply_clock();
        }
        removed
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.active.write().clear();
        tracing::info!("all faults cleared");
        self.apply_clock();
    }

    /// The faults in force.
    pub fn list(&self) -> Vec<ActiveFault> {
        self.active.read().iter().map(|(f, _)| f.clone()).collect()
    }

    /// How far the faults in force move `region`'s clock, in milliseconds (on top of any
    /// offset it was started with).
    pub fn clock_offset_ms(&self, region: &str) -> i64 {
        self.active
            .read()
            .iter()
            .filter_map(|(f, _)| match &f.fault {
                Fault::ClockOffset { region: r, offset_ms } if matches(r, region) => {
                    Some(*offset_ms)
                }
                _ => None,
            })
            .sum()
    }

    fn apply_clock(&self) {
        for (region, clock) in self.clocks.read().iter() {
            clock.set_offset_ms(self.clock_offset_ms(region.as_str()));
        }
    }

    fn any(&self, mut pred: impl FnMut(&Fault) -> bool) -> bool {
        self.active.read().iter().any(|(f, _)| pred(&f.fault))
    }

    /// Whether messages from `from` to `to` are cut (a partition or a one-way fault).
    pub fn blocked(&self, from: &str, to: &str) -> bool {
        self.any(|f| match f {
            Fault::Partition { a, b } => {
                let side = |set: &[String], r: &str| set.iter().any(|p| matches(p, r));
                (side(a, from) && side(b, to)) || (side(b, from) && side(a, to))
            }
            Fault::OneWay { from: f, to: t } => matches(f, from) && matches(t, to),
            _ => false,
        })
    }

    /// Whether deliveries from `from` to `to` are paused.
    pub fn paused(&self, from: &str, to: &str) -> bool {
        self.any(
            |f| matches!(f, Fault::Pause { from: f, to: t } if matches(f, from) && matches(t, to)),
        )
    }

    /// Sums `each(fault id, model)` over the extra-delay faults on the link.
    fn sum_delays(
        &self,
        from: &str,
        to: &str,
        each: impl Fn(u64, &DelayModel) -> Duration,
    ) -> Duration {
        self.active
            .read()
            .iter()
            .filter_map(|(f, model)| match (&f.fault, model) {
                (Fault::Delay { from: a, to: b, .. }, Some(m))
                    if matches(a, from) && matches(b, to) =>
                {
                    Some(each(f.id, m))
                }
                _ => None,
            })
            .sum()
    }

    /// The extra delay on the link for the write with timestamp `seq`.
    pub fn extra_delay(&self, from: &str, to: &str, seq: u64) -> Duration {
        self.sum_delays(from, to, |id, m| m.sample(self.seed ^ id, from, seq, to))
    }

    /// The largest extra delay the link can currently get.
    pub fn max_extra_delay(&self, from: &str, to: &str) -> Duration {
        self.sum_delays(from, to, |_, m| m.max())
    }

    fn rate(&self, from: &str, to: &str, loss: bool) -> f64 {
        self.active
            .read()
            .iter()
            .filter_map(|(f, _)| match &f.fault {
                Fault::Loss { from: a, to: b, rate }
                    if loss && matches(a, from) && matches(b, to) =>
                {
                    Some(*rate)
                }
                Fault::Duplicate { from: a, to: b, rate }
                    if !loss && matches(a, from) && matches(b, to) =>
                {
                    Some(*rate)
                }
                _ => None,
            })
            .fold(0.0, f64::max)
    }

    /// Decides whether delivery number `n` on the link is lost.
    pub fn roll_loss(&self, from: &str, to: &str, n: u64) -> bool {
        self.roll(self.rate(from, to, true), from, to, n)
    }

    /// Decides whether delivery number `n` on the link is duplicated.
    pub fn roll_duplicate(&self, from: &str, to: &str, n: u64) -> bool {
        // Another stream than loss's, so the two decisions are independent.
        self.roll(self.rate(from, to, false), to, from, n)
    }

    fn roll(&self, rate: f64, from: &str, to: &str, n: u64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        let link = fnv(from) ^ fnv(to).rotate_left(17);
        // SplitMix64 of (seed, link, n): uniform in [0, 1).
        let mut z = (self.seed ^ link).wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 11) as f64 / (1u64 << 53) as f64) < rate
    }

    /// How many faults of each kind are in force, for metrics.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for (f, _) in self.active.read().iter() {
            match counts.iter_mut().find(|(k, _)| *k == f.fault.kind()) {
                Some((_, n)) => *n += 1,
                None => counts.push((f.fault.kind(), 1)),
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgekv_core::ManualClock;

    fn faults() -> Faults {
        Faults::new(42)
    }

    fn parse(json: &str) -> Fault {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn partitions_cut_both_ways_between_the_sides_only() {
        let f = faults();
        f.add(parse(r#"{"kind":"partition","a":["wnam"],"b":["enam","weur"]}"#)).unwrap();
        assert!(f.blocked("wnam", "enam") && f.blocked("weur", "wnam"));
        assert!(!f.blocked("enam", "weur"));
        assert!(!f.blocked("wnam", "apac"));
    }

    #[test]
    fn one_way_faults_cut_one_direction_and_wildcards_match_any_region() {
        let f = faults();
        let id = f.add(parse(r#"{"kind":"one_way","from":"wnam","to":"*"}"#)).unwrap();
        assert!(f.blocked("wnam", "enam") && f.blocked("wnam", "apac"));
        assert!(!f.blocked("enam", "wnam"));
        assert!(f.remove(id));
        assert!(!f.blocked("wnam", "enam"));
        assert!(!f.remove(id));
    }

    #[test]
    fn bad_faults_are_refused() {
        let f = faults();
        for bad in [
            r#"{"kind":"loss","from":"wnam","to":"enam","rate":1.5}"#,
            r#"{"kind":"delay","from":"wnam","to":"enam","extra":"90s"}"#,
            r#"{"kind":"partition","a":[],"b":["enam"]}"#,
            r#"{"kind":"one_way","from":"NOT VALID","to":"enam"}"#,
            r#"{"kind":"kill","region":"enam"}"#,
        ] {
            assert!(f.add(parse(bad)).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Fault>(r#"{"kind":"meteor"}"#).is_err());
        assert!(f.list().is_empty());
    }

    #[test]
    fn loss_decisions_follow_the_rate_and_the_seed() {
        let count = |f: &Faults| (0..10_000).filter(|n| f.roll_loss("wnam", "enam", *n)).count();
        let a = faults();
        a.add(parse(r#"{"kind":"loss","from":"*","to":"enam","rate":0.25}"#)).unwrap();
        let lost = count(&a);
        assert!((2_300..2_700).contains(&lost), "{lost}");
        let b = faults();
        b.add(parse(r#"{"kind":"loss","from":"*","to":"enam","rate":0.25}"#)).unwrap();
        assert_eq!(count(&b), lost, "same seed, same decisions");
        assert!(!(0..100).any(|n| a.roll_loss("enam", "wnam", n)), "other links are untouched");
    }

    #[test]
    fn extra_delay_and_clock_offset() {
        let base = ManualClock::new(1_000_000);
        let clock = Arc::new(OffsetClock::new(Arc::new(base)));
        let f = Faults::new(7);
        f.register_clock("wnam".parse().unwrap(), Arc::clone(&clock));
        f.add(parse(r#"{"kind":"delay","from":"wnam","to":"enam","extra":"2s"}"#)).unwrap();
        assert_eq!(f.extra_delay("wnam", "enam", 1), Duration::from_secs(2));
        assert_eq!(f.extra_delay("enam", "wnam", 1), Duration::ZERO);
        assert_eq!(f.max_extra_delay("wnam", "enam"), Duration::from_secs(2));
        let id =
            f.add(parse(r#"{"kind":"clock_offset","region":"wnam","offset_ms":-5000}"#)).unwrap();
        f.add(parse(r#"{"kind":"clock_offset","region":"enam","offset_ms":9000}"#)).unwrap();
        assert_eq!(clock.offset_ms(), -5000, "only this region's offset applies");
        f.remove(id);
        assert_eq!(clock.offset_ms(), 0);
        assert_eq!(f.counts(), vec![("delay", 1), ("clock_offset", 1)]);
    }
}
