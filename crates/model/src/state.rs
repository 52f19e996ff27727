//! The state of the modelled cluster: three regions holding one key, and the messages between
//! them. Real types where the rules need them (the sender machines, the watermarks, versions);
//! small copies elsewhere, so a state is cheap to clone and to fingerprint.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::Duration;

use edgekv_core::{
    AccountId, Entry, ItemId, NamespaceId, RegionId, ReplicatedWrite, Timestamp, Version,
    Watermarks,
};
use edgekv_replication::sans_io::{SenderMachine, FIRST_BACKOFF};

/// How many regions.
pub const REGIONS: usize = 3;
/// Their names, in version order (the tie-break of equal timestamps).
pub const NAMES: [&str; REGIONS] = ["apac", "enam", "weur"];

/// The identities every write of the model shares.
pub(crate) struct Ids {
    pub(crate) regions: [RegionId; REGIONS],
    pub(crate) account: AccountId,
    pub(crate) namespace: NamespaceId,
    pub(crate) item: ItemId,
}

/// The one key's identities, built once.
pub(crate) fn ids() -> &'static Ids {
    static IDS: OnceLock<Ids> = OnceLock::new();
    IDS.get_or_init(|| {
        let regions = NAMES.map(|n| n.parse().unwrap_or_else(|_| unreachable!("valid names")));
        let account = AccountId::parse("model").unwrap_or_else(|| unreachable!("valid account"));
        let namespace = NamespaceId::from_bits(1);
        let item = ItemId {
            account: account.clone(),
            namespace: namespace.clone(),
            key: Some("k".to_owned()),
        };
        Ids { regions, account, namespace, item }
    })
}

/// One write of the key: a value or a tombstone. A version names exactly one write, so the
/// value's bytes are left out. Ordered as versions are (timestamp, then origin by name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct W {
    /// Its timestamp.
    pub ts: u64,
    /// The index of the region that issued it.
    pub origin: u8,
    /// Whether it is a delete.
    pub tomb: bool,
}

impl W {
    /// Its LWW version.
    pub fn version(self) -> Version {
        Version::new(Timestamp(self.ts), ids().regions[self.origin as usize])
    }

    /// As the store and the sender hold it.
    pub(crate) fn to_write(self) -> ReplicatedWrite {
        let ids = ids();
        let version = self.version();
        let entry = if self.tomb {
            Entry::tombstone(version)
        } else {
            Entry { value: Some("v".into()), metadata: None, expiration: None, version }
        };
        ReplicatedWrite::Key {
            account: ids.account.clone(),
            namespace: ids.namespace.clone(),
            key: "k".to_owned(),
            entry,
        }
    }

    /// Back from a real write (one the model made with [`W::to_write`]).
    pub(crate) fn from_write(write: &ReplicatedWrite) -> W {
        let version = write.version();
        let origin = ids().regions.iter().position(|r| *r == version.origin).unwrap_or(0) as u8;
        let tomb = matches!(write, ReplicatedWrite::Key { entry, .. } if entry.is_tombstone());
        W { ts: version.ts.0, origin, tomb }
    }
}

impl std::fmt::Display for W {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.tomb { "del" } else { "put" };
        write!(f, "{kind} v{}@{}", self.ts, NAMES[self.origin as usize])
    }
}

/// The slot of peer `p` in region `r`'s per-peer arrays.
pub(crate) fn slot(r: usize, p: usize) -> usize {
    if p < r {
        p
    } else {
        p - 1
    }
}

/// The peer in region `r`'s slot `s`.
pub(crate) fn peer(r: usize, s: usize) -> usize {
    if s < r {
        s
    } else {
        s + 1
    }
}

/// A fresh sender machine resuming after `position`. The backoff cap is the first backoff, so
/// retries are not told apart by how long they waited (time is not what is checked).
pub(crate) fn machine(position: Timestamp) -> SenderMachine {
    SenderMachine::new(position, FIRST_BACKOFF.max(Duration::from_millis(1)), 1_000_000)
}

/// One region.
#[derive(Clone, Debug)]
pub struct Region {
    /// Its logical clock: the newest timestamp it issued or saw.
    pub clock: u64,
    /// The key's current state, `None` before any write or once its tombstone is collected.
    pub entry: Option<W>,
    /// Its own writes not yet compacted, by timestamp.
    pub outbox: BTreeMap<u64, W>,
    /// One sender machine per peer, by slot (shared between states until one changes it).
    pub senders: [Rc<SenderMachine>; REGIONS - 1],
    /// What its hub last published.
    pub replicated_through: u64,
    /// What it knows of every origin's progress.
    pub watermarks: Watermarks,
    /// Bumped by a restart: replies meant for an earlier run are dropped.
    pub incarnation: u8,
    /// Ghost, not part of the protocol: the greatest write this region ever held.
    pub floor: Option<W>,
    /// The region's fingerprint once computed (zero: not yet), reset by every change: most
    /// steps change one region, and the others' are shared with the state before.
    fingerprint: Cell<u128>,
}

impl Region {
    fn new() -> Region {
        Region {
            clock: 0,
            entry: None,
            outbox: BTreeMap::new(),
            senders: [Rc::new(machine(Timestamp(0))), Rc::new(machine(Timestamp(0)))],
            replicated_through: 0,
            watermarks: Watermarks::with_members(ids().regions),
            incarnation: 0,
            floor: None,
            fingerprint: Cell::new(0),
        }
    }

    /// The sender machine in slot `s`, copied first if another state shares it.
    pub(crate) fn sender_mut(&mut self, s: usize) -> &mut SenderMachine {
        Rc::make_mut(&mut self.senders[s])
    }

    /// Takes a write from a peer as `Shared::apply_remote` does: the clock observes its
    /// timestamp, then the store's LWW rule decides. Whether it changed the entry.
    pub(crate) fn receive(&mut self, w: W) -> bool {
        self.clock = self.clock.max(w.ts);
        let takes = match self.entry {
            None => true,
            Some(current) => edgekv_core::replaces(current.version(), w.version()),
        };
        if takes {
            self.entry = Some(w);
            self.floor = self.floor.max(Some(w));
        }
        takes
    }

    fn fingerprint(&self) -> u128 {
        let cached = self.fingerprint.get();
        if cached != 0 {
            return cached;
        }
        let mut h = Fingerprint::default();
        self.hash_into(&mut h);
        let fp = h.finish128().max(1);
        self.fingerprint.set(fp);
        fp
    }

    fn hash_into<H: Hasher>(&self, h: &mut H) {
        (self.clock, self.entry, &self.outbox, self.replicated_through).hash(h);
        self.watermarks.hash(h);
        (self.incarnation, self.floor).hash(h);
        for m in &self.senders {
            m.fingerprint(h);
        }
    }
}

/// A message in flight.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Msg {
    /// Writes pushed: by the outbox (`repair: None`) or by anti-entropy, which confirms the
    /// round started at `repair` once the push is answered.
    Push {
        /// Sender.
        from: u8,
        /// Receiver.
        to: u8,
        /// The writes.
        writes: Vec<W>,
        /// The sender's published watermark when it sent them.
        rt: u64,
        /// For a repair push, the initiator's clock at the start of its round.
        repair: Option<u64>,
        /// The sender's incarnation.
        inc: u8,
    },
    /// An anti-entropy round's question: the initiator's digest of the key.
    Query {
        /// The initiator.
        from: u8,
        /// The responder.
        to: u8,
        /// The initiator's current write, if any.
        item: Option<W>,
        /// The initiator's published watermark.
        rt: u64,
        /// The initiator's clock at the start of the round.
        started: u64,
        /// The initiator's incarnation.
        inc: u8,
    },
    /// The responder's answer.
    Reply {
        /// The responder.
        from: u8,
        /// The initiator.
        to: u8,
        /// Writes the initiator should take.
        newer: Vec<W>,
        /// Whether the responder wants the initiator's write.
        wanted: bool,
        /// As in the query.
        started: u64,
        /// As in the query.
        inc: u8,
    },
}

impl Msg {
    /// (sender, receiver).
    pub fn link(&self) -> (usize, usize) {
        match self {
            Msg::Push { from, to, .. }
            | Msg::Query { from, to, .. }
            | Msg::Reply { from, to, .. } => (*from as usize, *to as usize),
        }
    }

    /// The writes it carries.
    pub fn writes(&self) -> &[W] {
        match self {
            Msg::Push { writes, .. } => writes,
            Msg::Reply { newer, .. } => newer,
            Msg::Query { .. } => &[],
        }
    }
}

impl std::fmt::Display for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b) = self.link();
        let list = |ws: &[W]| ws.iter().map(W::to_string).collect::<Vec<_>>().join(", ");
        match self {
            Msg::Push { writes, rt, repair: None, .. } => {
                write!(f, "{} -> {} push [{}] rt={rt}", NAMES[a], NAMES[b], list(writes))
            }
            Msg::Push { writes, rt, repair: Some(_), .. } => {
                write!(f, "{} -> {} repair push [{}] rt={rt}", NAMES[a], NAMES[b], list(writes))
            }
            Msg::Query { item, rt, .. } => {
                let item = item.map_or("nothing".to_owned(), |w| w.to_string());
                write!(f, "{} -> {} ae query [{item}] rt={rt}", NAMES[a], NAMES[b])
            }
            Msg::Reply { newer, wanted, .. } => {
                let wanted = if *wanted { " wants it" } else { "" };
                write!(f, "{} -> {} ae reply [{}]{wanted}", NAMES[a], NAMES[b], list(newer))
            }
        }
    }
}

/// How much of each bounded action has been used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Used {
    /// Local puts.
    pub puts: u8,
    /// Local deletes.
    pub deletes: u8,
    /// Messages lost.
    pub losses: u8,
    /// Deliveries failed (no answer).
    pub fails: u8,
    /// Partitions made.
    pub partitions: u8,
    /// Restarts.
    pub restarts: u8,
    /// Anti-entropy rounds started.
    pub rounds: u8,
}

/// The whole cluster.
#[derive(Clone, Debug)]
pub struct World {
    /// The regions, by index into [`NAMES`] (shared between states until one changes).
    pub regions: [Rc<Region>; REGIONS],
    /// Messages in flight, kept sorted: a multiset.
    pub net: Vec<Msg>,
    /// The link cut, if any (both directions).
    pub partition: Option<(u8, u8)>,
    /// Budgets used.
    pub used: Used,
    /// Ghost: every write issued, in order.
    pub issued: Vec<W>,
}

impl World {
    /// Three empty regions, nothing in flight.
    pub fn new() -> World {
        World {
            regions: [Rc::new(Region::new()), Rc::new(Region::new()), Rc::new(Region::new())],
            net: Vec::new(),
            partition: None,
            used: Used::default(),
            issued: Vec::new(),
        }
    }

    /// Region `r`, copied first if another state shares it.
    pub(crate) fn region_mut(&mut self, r: usize) -> &mut Region {
        let region = Rc::make_mut(&mut self.regions[r]);
        region.fingerprint.set(0);
        region
    }

    /// Whether the link between `a` and `b` is cut.
    pub fn blocked(&self, a: usize, b: usize) -> bool {
        self.partition.is_some_and(|(x, y)| {
            (x as usize, y as usize) == (a, b) || (x as usize, y as usize) == (b, a)
        })
    }

    /// Puts a message in flight.
    pub(crate) fn send(&mut self, msg: Msg) {
        let at = self.net.binary_search(&msg).unwrap_or_else(|i| i);
        self.net.insert(at, msg);
    }

    /// The greatest write issued.
    pub fn greatest(&self) -> Option<W> {
        self.issued.iter().copied().max()
    }

    /// A 128-bit fingerprint of the state, canonical: equal states hash alike whatever
    /// history built their maps and heaps.
    pub fn fingerprint(&self) -> u128 {
        let mut h = Fingerprint::default();
        for r in &self.regions {
            h.write_u128(r.fingerprint());
        }
        (&self.net, self.partition, self.used, &self.issued).hash(&mut h);
        h.finish128()
    }
}

/// A two-lane hasher with a strong mix per word, for 128-bit state fingerprints: faster than
/// two SipHash passes, and with 128 bits a collision among even a billion states is
/// negligible (the visited set would otherwise wrongly prune a state).
#[derive(Default)]
pub(crate) struct Fingerprint {
    a: u64,
    b: u64,
}

fn mix(mut x: u64) -> u64 {
    // The splitmix64 finalizer: every input bit flips about half of the output bits.
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Fingerprint {
    fn word(&mut self, x: u64) {
        self.a = mix(self.a ^ x);
        self.b = mix(self.b.rotate_left(23) ^ x ^ 0x9e37_79b9_7f4a_7c15);
    }

    pub(crate) fn finish128(&self) -> u128 {
        (u128::from(mix(self.a ^ 0x51)) << 64) | u128::from(mix(self.b))
    }
}

impl Hasher for Fingerprint {
    fn finish(&self) -> u64 {
        mix(self.a ^ self.b)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.word(u64::from_le_bytes(word) ^ ((chunk.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, x: u8) {
        self.word(u64::from(x) | 1 << 62);
    }

    fn write_u64(&mut self, x: u64) {
        self.word(x);
    }

    fn write_usize(&mut self, x: usize) {
        self.word(x as u64 ^ 1 << 61);
    }
}

/// The visited set's hasher: its keys are fingerprints already, so they are used as they are.
#[derive(Clone, Copy, Default)]
pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u128(&mut self, x: u128) {
        self.0 = x as u64;
    }
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, r) in self.regions.iter().enumerate() {
            let entry = r.entry.map_or("nothing".to_owned(), |w| w.to_string());
            let outbox: Vec<String> = r.outbox.values().map(W::to_string).collect();
            let acked: Vec<String> = (0..REGIONS - 1)
                .map(|s| format!("{}:{}", NAMES[peer(i, s)], r.senders[s].acked_through().0))
                .collect();
            let marks: Vec<String> = (0..REGIONS)
                .map(|o| format!("{}:{}", NAMES[o], r.watermarks.get(ids().regions[o]).0))
                .collect();
            writeln!(
                f,
                "   {}: {entry}, clock {}, rt {}, acked [{}], watermarks [{}], outbox [{}]",
                NAMES[i],
                r.clock,
                r.replicated_through,
                acked.join(" "),
                marks.join(" "),
                outbox.join(", ")
            )?;
        }
        if let Some((a, b)) = self.partition {
            writeln!(f, "   partition {} | {}", NAMES[a as usize], NAMES[b as usize])?;
        }
        for m in &self.net {
            writeln!(f, "   in flight: {m}")?;
        }
        Ok(())
    }
}
