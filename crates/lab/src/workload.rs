//! What each client does, decided from the seed alone, so a rerun with the same seed issues the
//! same operations at the same offsets (what the servers answer may still differ, since real
//! networks and schedulers are not replayed).
//!
//! Each client has its own generator, seeded from the run's seed and its process number, so
//! adding a client does not change what the others do. The fault schedule's jitter has its own
//! stream for the same reason.

use std::time::Duration;

use edgekv_core::Fault;

use crate::scenario::{FaultSpec, Mix, ReadPath, Reads, Scenario, Workload};

/// SplitMix64: a few lines, no dependency, and output no crate upgrade can change.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for one stream of a run: `stream` separates clients, the fault schedule, ...
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut rng = Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next_u64();
        rng
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform on `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform on `[0, n)`; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: unbiased enough for picking keys, and never a division by zero.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// The stream of the fault schedule's jitter; clients use their process number.
const FAULT_STREAM: u64 = u64::MAX;

/// The role of a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Writes and reads, by the scenario's `mix`.
    Writer,
    /// Only reads, by `read_mix`.
    Reader,
}

/// One client of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// Its process number in the history.
    pub process: u32,
    /// The region it talks to (an index into the scenario's regions).
    pub region: usize,
    /// What it does.
    pub role: Role,
    /// How its gets are sent: its region's read paths.
    pub reads: Reads,
}

/// Every client of a scenario: per region, its writers then its readers.
pub fn clients(scenario: &Scenario) -> Vec<Client> {
    let mut clients = Vec::new();
    for (region, spec) in scenario.regions.iter().enumerate() {
        let roles = std::iter::repeat_n(Role::Writer, spec.writers as usize)
            .chain(std::iter::repeat_n(Role::Reader, spec.readers as usize));
        for role in roles {
            let reads = spec.reads.clone();
            clients.push(Client { process: clients.len() as u32, region, role, reads });
        }
    }
    clients
}

/// One operation a client is to issue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Planned {
    /// Write `value` to `key`, expiring after `ttl` if given.
    Put {
        /// The key.
        key: String,
        /// A value unique in the run.
        value: String,
        /// Expiration TTL, seconds.
        ttl: Option<u64>,
    },
    /// Delete `key`.
    Delete {
        /// The key.
        key: String,
    },
    /// Read `key`.
    Get {
        /// The key.
        key: String,
        /// Through which API, with what cacheTtl.
        path: ReadPath,
    },
    /// List keys starting with `prefix`.
    List {
        /// The prefix.
        prefix: String,
        /// Most keys returned.
        limit: u32,
    },
}

/// The name of key number `i`: fixed width, so listings by prefix select ranges.
pub fn key_name(i: u32) -> String {
    format!("k{i:06}")
}

/// A client's operations and the pauses between them.
#[derive(Clone, Debug)]
pub struct Generator {
    rng: Rng,
    process: u32,
    issued: u64,
    mix: Mix,
    reads: Reads,
    workload: Workload,
}

impl Generator {
    /// The generator of `client` in a run seeded with `seed`.
    pub fn new(seed: u64, client: &Client, workload: &Workload) -> Self {
        let mix = match client.role {
            Role::Writer => workload.mix,
            Role::Reader => workload.read_mix,
        };
        Generator {
            rng: Rng::new(seed, u64::from(client.process)),
            process: client.process,
            issued: 0,
            mix,
            reads: client.reads.clone(),
            workload: workload.clone(),
        }
    }

    /// The pause before the next operation: exponential with mean `1 / rate`, so each client's
    /// operations are a Poisson process (capped at ten means, so a run's end is not overshot).
    pub fn gap(&mut self) -> Duration {
        let mean = 1.0 / self.workload.rate;
        let u = self.rng.unit();
        Duration::from_secs_f64((-(1.0 - u).ln() * mean).min(10.0 * mean))
    }

    /// The next operation.
    pub fn next_op(&mut self) -> Planned {
        self.issued += 1;
        let mut pick = self.rng.below(u64::from(self.mix.total())) as u32;
        let key = self.key();
        let mut choose = |weight: u32| {
            if pick < weight {
                true
            } else {
                pick -= weight;
                false
            }
        };
        if choose(self.mix.put) {
            Planned::Put { value: self.value(), key, ttl: None }
        } else if choose(self.mix.put_ttl) {
            Planned::Put { value: self.value(), key, ttl: Some(self.workload.ttl.as_secs()) }
        } else if choose(self.mix.delete) {
            Planned::Delete { key }
        } else if choose(self.mix.get) {
            Planned::Get { key, path: self.reads.pick(&mut self.rng) }
        } else {
            // The key minus its last digit: the ten neighbouring keys, so a listing sees a
            // few keys that are being written.
            let prefix = key[..key.len() - 1].to_owned();
            Planned::List { prefix, limit: self.workload.list_limit }
        }
    }

    fn key(&mut self) -> String {
        let w = &self.workload;
        let hot = w.hot_keys > 0 && self.rng.unit() < w.hot_fraction;
        let i = if hot {
            self.rng.below(u64::from(w.hot_keys))
        } else {
            self.rng.below(u64::from(w.keys))
        };
        key_name(i as u32)
    }

    /// A value no other write of the run has: the process and its operation count, padded to a
    /// size drawn from the scenario's range.
    fn value(&mut self) -> String {
        let (min, max) = self.workload.value_size;
        let size = min as u64 + self.rng.below(u64::from(max - min) + 1);
        let mut value = format!("p{}-{}", self.process, self.issued);
        let pad = b"abcdefghijklmnopqrstuvwxyz";
        while (value.len() as u64) < size {
            value.push(pad[self.rng.below(pad.len() as u64) as usize] as char);
        }
        value
    }
}

/// A fault of the schedule with its start fixed.
#[derive(Clone, Debug, PartialEq)]
pub struct Scheduled {
    /// Its position in the scenario's schedule.
    pub id: u64,
    /// When it starts, from the start of the workload.
    pub start: Duration,
    /// When it stops; `None`: at the end of the workload.
    pub stop: Option<Duration>,
    /// The fault.
    pub fault: Fault,
}

/// The fault schedule of a run: each start moved by its seeded jitter, each stop its duration
/// later, and every stop no later than the end of the workload (the quiet period is fault-free,
/// or the final reads could not judge convergence).
pub fn schedule(seed: u64, faults: &[FaultSpec], workload: Duration) -> Vec<Scheduled> {
    let mut rng = Rng::new(seed, FAULT_STREAM);
    faults
        .iter()
        .enumerate()
        .map(|(id, f)| {
            let jitter = f.jitter.mul_f64(rng.unit());
            let start = (f.at + jitter).min(workload);
            let stop = f.lasts.map(|d| (start + d).min(workload)).filter(|s| *s < workload);
            Scheduled { id: id as u64, start, stop, fault: f.fault.clone() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        Scenario::parse(
            r#"
name = "t"
duration = "20s"
[[regions]]
name = "wnam"
writers = 2
readers = 1
[[regions]]
name = "enam"
writers = 1
readers = 0
[workload]
rate = 50
keys = 1000
hot_keys = 2
hot_fraction = 0.5
value_size = [20, 30]
mix = { put = 1, put_ttl = 1, delete = 1, get = 1, list = 1 }
[[faults]]
at = "5s"
for = "30s"
jitter = "1s"
fault = { kind = "pause", from = "*", to = "*" }
"#,
        )
        .unwrap()
    }

    #[test]
    fn clients_are_numbered_per_region_writers_first() {
        let c = clients(&scenario());
        let shape: Vec<(u32, usize, Role)> =
            c.iter().map(|c| (c.process, c.region, c.role)).collect();
        assert_eq!(
            shape,
            [
                (0, 0, Role::Writer),
                (1, 0, Role::Writer),
                (2, 0, Role::Reader),
                (3, 1, Role::Writer)
            ]
        );
        assert!(c.iter().all(|c| c.reads == Reads::default()), "REST unless the scenario says");
    }

    #[test]
    fn gets_pick_their_path_by_weight_and_a_single_path_draws_nothing() {
        let text = "name = \"t\"\nduration = \"5s\"\n[[regions]]\nname = \"wnam\"\n\
                    [workload]\nread_mix = { get = 1 }\n";
        let plain = Scenario::parse(text).unwrap();
        let cached = Scenario::parse(&text.replace(
            "[workload]\n",
            "[workload]\nreads = { via = \"binding\", cache_ttl = 45 }\n",
        ))
        .unwrap();
        let reader = |s: &Scenario| clients(s)[1].clone();
        let run = |s: &Scenario| {
            let mut g = Generator::new(3, &reader(s), &s.workload);
            (0..200).map(|_| (g.next_op(), g.gap())).collect::<Vec<_>>()
        };
        let keys = |ops: Vec<(Planned, Duration)>| {
            ops.into_iter()
                .map(|(op, gap)| match op {
                    Planned::Get { key, path } => (key, gap, path.via),
                    other => panic!("a reader only reads: {other:?}"),
                })
                .collect::<Vec<_>>()
        };
        let (a, b) = (keys(run(&plain)), keys(run(&cached)));
        assert!(a.iter().zip(&b).all(|(x, y)| x.0 == y.0 && x.1 == y.1), "same keys, same gaps");
        assert!(b.iter().all(|x| x.2 == crate::history::Via::Binding));

        let mixed = Scenario::parse(&text.replace(
            "[workload]\n",
            "[workload]\nreads = [{ via = \"binding\", weight = 3 }, { via = \"rest\" }]\n",
        ))
        .unwrap();
        let binding =
            keys(run(&mixed)).iter().filter(|x| x.2 == crate::history::Via::Binding).count();
        assert!((120..180).contains(&binding), "three in four through the binding: {binding}");
    }

    #[test]
    fn a_generator_replays_from_its_seed_and_values_are_unique() {
        let s = scenario();
        let client = clients(&s)[0].clone();
        let run = |seed| {
            let mut g = Generator::new(seed, &client, &s.workload);
            (0..2000).map(|_| (g.next_op(), g.gap())).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let ops = run(7);
        let values: Vec<&String> = ops
            .iter()
            .filter_map(|(op, _)| match op {
                Planned::Put { value, .. } => Some(value),
                _ => None,
            })
            .collect();
        let unique: std::collections::BTreeSet<_> = values.iter().collect();
        assert_eq!(unique.len(), values.len());
        assert!(values.iter().all(|v| (20..=30).contains(&v.len())), "sizes within range");
        // Each operation kind has weight 1 of 5; each should be near 400 of 2000.
        let count = |f: fn(&Planned) -> bool| ops.iter().filter(|(op, _)| f(op)).count();
        for n in [
            count(|o| matches!(o, Planned::Put { ttl: None, .. })),
            count(|o| matches!(o, Planned::Put { ttl: Some(60), .. })),
            count(|o| matches!(o, Planned::Delete { .. })),
            count(|o| matches!(o, Planned::Get { .. })),
            count(|o| matches!(o, Planned::List { limit: 100, .. })),
        ] {
            assert!((300..500).contains(&n), "{n}");
        }
        // Half the operations go to the two hot keys (plus their share of the rest).
        let hot = ops
            .iter()
            .filter(|(op, _)| match op {
                Planned::Put { key, .. } | Planned::Delete { key } | Planned::Get { key, .. } => {
                    key == "k000000" || key == "k000001"
                }
                Planned::List { .. } => false,
            })
            .count();
        assert!((650..950).contains(&hot), "{hot}");
        // Poisson arrivals at 50/s: the mean gap is near 20 ms.
        let mean = ops.iter().map(|(_, g)| g.as_secs_f64()).sum::<f64>() / ops.len() as f64;
        assert!((0.018..0.022).contains(&mean), "{mean}");
    }

    #[test]
    fn a_reader_only_reads() {
        let s = scenario();
        let reader = clients(&s)[2].clone();
        let mut g = Generator::new(1, &reader, &s.workload);
        assert!((0..500).all(|_| matches!(g.next_op(), Planned::Get { .. })));
    }

    #[test]
    fn the_schedule_jitters_from_the_seed_and_ends_with_the_workload() {
        let s = scenario();
        let a = schedule(3, &s.faults, s.duration);
        assert_eq!(a, schedule(3, &s.faults, s.duration));
        assert!(a[0].start >= Duration::from_secs(5) && a[0].start <= Duration::from_secs(6));
        assert_eq!(a[0].stop, None, "a stop past the workload's end is the end itself");
        let seeds: std::collections::BTreeSet<_> =
            (0..20).map(|seed| schedule(seed, &s.faults, s.duration)[0].start).collect();
        assert!(seeds.len() > 10, "the jitter depends on the seed");
    }
}
