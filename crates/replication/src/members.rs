//! Who is in the cluster, as one region knows it: the rules without I/O.
//!
//! Each region keeps its own list of peers. The list starts from the configuration and changes
//! at runtime (the admin API, DNS discovery); the changes are saved in the store, so a restart
//! keeps them. A region replicates with, and answers, only the regions that are members.
//!
//! Removing a region fences it: peers that forget tombstones without waiting for a region that
//! left could take a deleted key's old value back from it if it returned with its data. So a
//! region that was removed is answered again only with a store born after its removal (a
//! wiped data directory, or a new in-memory store), which bootstraps by anti-entropy. This is
//! the rule Cassandra leaves to operators (a node down past `gc_grace` must be rebuilt), here
//! enforced by every peer.

use std::collections::BTreeMap;
use std::fmt;

use edgekv_core::{RegionId, Timestamp};

use crate::PeerConfig;

/// The first line of a saved record: its format.
const FORMAT: &str = "edgekv-membership 1";

/// What this region knows of one other region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its gRPC endpoint.
    pub url: String,
    /// Whether it is in the cluster now.
    pub member: bool,
    /// Stores of this region born before this were in the cluster when it was removed: they
    /// are refused. Zero if it never was removed.
    pub fence: Timestamp,
}

/// One region's view of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    me: RegionId,
    peers: BTreeMap<RegionId, Peer>,
}

/// What a membership change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A region that was not known, or had been removed, is a member now.
    Joined,
    /// A member's endpoint changed.
    Moved,
    /// Nothing: it was a member at that endpoint already.
    Unchanged,
}

/// Why a change or a peer's message is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A region cannot be its own peer.
    #[error("region {0} is this region")]
    Myself(RegionId),
    /// The region is not in the cluster (never added, or removed).
    #[error("region {0} is not a member of the cluster")]
    NotMember(RegionId),
    /// The region's store was in the cluster when the region was removed.
    #[error(
        "region {region} was removed from the cluster (at {} ms since the epoch) and came back \
         with the store it had then (born at {} ms): wipe its data to rejoin, or it could bring \
         back deleted keys",
        .fence.physical_ms(),
        .born.physical_ms()
    )]
    Fenced {
        /// The region.
        region: RegionId,
        /// When it was removed.
        fence: Timestamp,
        /// When the store it came back with was born.
        born: Timestamp,
    },
}

/// A saved record that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the saved membership is damaged (line {line}): {why}")]
pub struct Damaged {
    line: usize,
    why: String,
}

impl Membership {
    /// The membership of region `me`: the configured peers, with the changes of `saved` (the
    /// record this region saved last) on top. A saved removal holds even if the configuration
    /// still lists the region; a configured endpoint wins over a saved one.
    pub fn new(
        me: RegionId,
        configured: &[PeerConfig],
        saved: Option<&str>,
    ) -> Result<Self, Damaged> {
        let mut membership = match saved {
            Some(record) => Self::decode(me, record)?,
            None => Membership { me, peers: BTreeMap::new() },
        };
        for peer in configured.iter().filter(|p| p.name != me) {
            let entry = membership.peers.entry(peer.name).or_insert_with(|| Peer {
                url: peer.url.clone(),
                member: true,
                fence: Timestamp(0),
            });
            entry.url.clone_from(&peer.url);
        }
        Ok(membership)
    }

    /// This region.
    pub fn me(&self) -> RegionId {
        self.me
    }

    /// The members other than this region, with their endpoints.
    pub fn members(&self) -> Vec<PeerConfig> {
        self.peers
            .iter()
            .filter(|(_, p)| p.member)
            .map(|(name, p)| PeerConfig { name: *name, url: p.url.clone() })
            .collect()
    }

    /// Every member, this region included: the regions tombstone collection waits for.
    pub fn regions(&self) -> Vec<RegionId> {
        let mut regions: Vec<RegionId> = self.members().into_iter().map(|p| p.name).collect();
        regions.push(self.me);
        regions.sort();
        regions
    }

    /// What is known of `region`.
    pub fn get(&self, region: RegionId) -> Option<&Peer> {
        self.peers.get(&region)
    }

    /// Every region known, members or not.
    pub fn known(&self) -> impl Iterator<Item = (RegionId, &Peer)> {
        self.peers.iter().map(|(name, p)| (*name, p))
    }

    /// Makes `peer` a member at its endpoint. A region that was removed keeps its fence.
    pub fn add(&mut self, peer: &PeerConfig) -> Result<Change, Refusal> {
        if peer.name == self.me {
            return Err(Refusal::Myself(peer.name));
        }
        let entry = self.peers.entry(peer.name).or_insert_with(|| Peer {
            url: peer.url.clone(),
            member: false,
            fence: Timestamp(0),
        });
        let change = if !entry.member {
            Change::Joined
        } else if entry.url != peer.url {
            Change::Moved
        } else {
            Change::Unchanged
        };
        entry.member = true;
        entry.url.clone_from(&peer.url);
        Ok(change)
    }

    /// Takes `region` out of the cluster at `now`, fencing the stores it had until then.
    pub fn remove(&mut self, region: RegionId, now: Timestamp) -> Result<(), Refusal> {
        match self.peers.get_mut(&region) {
            Some(peer) if peer.member => {
                peer.member = false;
                peer.fence = peer.fence.max(now);
                Ok(())
            }
            _ if region == self.me => Err(Refusal::Myself(region)),
            _ => Err(Refusal::NotMember(region)),
        }
    }

    /// Whether a message from `sender`, whose store was born at `born`, is answered.
    pub fn admit(&self, sender: RegionId, born: Timestamp) -> Result<(), Refusal> {
        match self.peers.get(&sender) {
            Some(peer) if peer.member && born < peer.fence => {
                Err(Refusal::Fenced { region: sender, fence: peer.fence, born })
            }
            Some(peer) if peer.member => Ok(()),
            _ if sender == self.me => Err(Refusal::Myself(sender)),
            _ => Err(Refusal::NotMember(sender)),
        }
    }

    /// The record to save: what [`Membership::new`] reads back.
    pub fn encode(&self) -> String {
        let mut out = format!("{FORMAT}\n");
        for (name, peer) in &self.peers {
            let state = if peer.member { "member" } else { "removed" };
            out.push_str(&format!("{name} {state} {} {}\n", peer.fence.0, peer.url));
        }
        out
    }

    fn decode(me: RegionId, record: &str) -> Result<Self, Damaged> {
        let mut lines = record.lines().enumerate();
        let damaged = |line: usize, why: &str| Damaged { line: line + 1, why: why.to_owned() };
        match lines.next() {
            Some((_, FORMAT)) => {}
            _ => return Err(damaged(0, "not a membership record of this version")),
        }
        let mut peers = BTreeMap::new();
        for (n, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split(' ').collect();
            let [name, state, fence, url] = fields[..] else {
                return Err(damaged(n, "expected: region state fence url"));
            };
            let name: RegionId = name.parse().map_err(|_| damaged(n, "bad region name"))?;
            let member = match state {
                "member" => true,
                "removed" => false,
                _ => return Err(damaged(n, "state is neither member nor removed")),
            };
            let fence = Timestamp(fence.parse().map_err(|_| damaged(n, "bad fence"))?);
            peers.insert(name, Peer { url: url.to_owned(), member, fence });
        }
        Ok(Membership { me, peers })
    }
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.regions().iter().map(|r| r.to_string()).collect();
        write!(f, "{}", names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(name: &str) -> RegionId {
        name.parse().unwrap()
    }

    fn peer(name: &str, url: &str) -> PeerConfig {
        PeerConfig { name: region(name), url: url.to_owned() }
    }

    fn cluster() -> Membership {
        let configured = [peer("enam", "http://e:1"), peer("weur", "http://w:1")];
        Membership::new(region("apac"), &configured, None).unwrap()
    }

    #[test]
    fn the_configured_peers_are_members_and_answered() {
        let m = cluster();
        assert_eq!(m.regions(), vec![region("apac"), region("enam"), region("weur")]);
        assert_eq!(m.admit(region("enam"), Timestamp(1)), Ok(()));
        assert_eq!(m.admit(region("oc"), Timestamp(1)), Err(Refusal::NotMember(region("oc"))));
        assert_eq!(m.admit(region("apac"), Timestamp(1)), Err(Refusal::Myself(region("apac"))));
    }

    #[test]
    fn adding_joins_moves_or_changes_nothing() {
        let mut m = cluster();
        assert_eq!(m.add(&peer("oc", "http://o:1")), Ok(Change::Joined));
        assert_eq!(m.add(&peer("oc", "http://o:1")), Ok(Change::Unchanged));
        assert_eq!(m.add(&peer("oc", "http://o:2")), Ok(Change::Moved));
        assert_eq!(m.add(&peer("apac", "http://a:1")), Err(Refusal::Myself(region("apac"))));
        assert!(m.regions().contains(&region("oc")));
    }

    #[test]
    fn a_removed_region_is_refused_until_it_returns_with_a_newer_store() {
        let mut m = cluster();
        m.remove(region("enam"), Timestamp(100)).unwrap();
        assert_eq!(m.admit(region("enam"), Timestamp(5)), Err(Refusal::NotMember(region("enam"))));
        assert!(!m.regions().contains(&region("enam")));
        assert_eq!(
            m.remove(region("enam"), Timestamp(101)),
            Err(Refusal::NotMember(region("enam")))
        );

        assert_eq!(m.add(&peer("enam", "http://e:1")), Ok(Change::Joined));
        let stale = m.admit(region("enam"), Timestamp(5));
        assert!(matches!(stale, Err(Refusal::Fenced { fence: Timestamp(100), .. })), "{stale:?}");
        assert_eq!(m.admit(region("enam"), Timestamp(100)), Ok(()));
        assert_eq!(m.admit(region("enam"), Timestamp(250)), Ok(()));
    }

    #[test]
    fn the_saved_record_round_trips_and_its_removals_outlive_the_configuration() {
        let mut m = cluster();
        m.add(&peer("oc", "http://o:1")).unwrap();
        m.remove(region("weur"), Timestamp(42)).unwrap();
        let record = m.encode();
        // The configuration still lists weur, at a new endpoint.
        let configured = [peer("enam", "http://e:1"), peer("weur", "http://w:2")];
        let back = Membership::new(region("apac"), &configured, Some(&record)).unwrap();
        assert_eq!(back.regions(), vec![region("apac"), region("enam"), region("oc")]);
        let weur = back.get(region("weur")).unwrap();
        assert!(!weur.member);
        assert_eq!(weur.fence, Timestamp(42));
        assert_eq!(weur.url, "http://w:2");
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_guess() {
        for record in [
            "",
            "something else\n",
            "edgekv-membership 1\nenam member x http://e\n",
            "edgekv-membership 1\nenam maybe 0 http://e\n",
            "edgekv-membership 1\nenam member 0\n",
        ] {
            assert!(Membership::new(region("apac"), &[], Some(record)).is_err(), "{record:?}");
        }
    }
}
