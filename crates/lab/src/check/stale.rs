//! The rules that compare a read with what its region had applied: a region never serves
//! something older than a version it had certainly applied by the earliest instant the read's
//! answer can show ([`super::fresh`]): before the read was sent, or for a read that may have
//! come from the edge cache, its cacheTtl earlier. Older than a delete is a resurrection, older
//! than a put a stale read, and "not found" after a put that no delete or expiry explains is a
//! stale read too.

use super::fresh::RegionFacts;
use super::{AnomalyKind, Checker, KeyHistory};
use crate::bounds::completed_wall_ms;
use crate::history::{Function, Nanos, Op};

/// Where and from when a read must show its region's state: its region, the epoch it was sent
/// in, and the earliest instant its answer can show.
struct Due<'a> {
    region: &'a str,
    epoch: usize,
    from: Nanos,
}

impl Checker {
    /// Whether `read` shows something older than its region had certainly applied by the
    /// earliest instant its answer can show; records the anomaly if so.
    pub(super) fn behind_applied(
        &mut self,
        k: &KeyHistory<'_>,
        read: &Op,
        facts: &RegionFacts,
        at: &str,
    ) -> bool {
        let own = read
            .version
            .as_deref()
            .and_then(|v| k.write_with(v))
            .filter(|w| w.region == read.region);
        let due = Due {
            region: &read.region,
            epoch: facts.epoch(&read.region, read.invoke),
            from: k.cached.served_from(read, own, facts),
        };
        match read.version.as_deref() {
            Some(v) => {
                self.resurrected(k, read, v, &due, at) || self.stale_value(k, read, v, &due, at)
            }
            None => self.stale_absence(k, read, &due, at),
        }
    }

    /// Resurrection: `read` serves version `v` although its region had certainly applied a
    /// newer delete by `due.from` (the apply's window ends before it; the node logs an apply
    /// once the new state is readable). A delete whose window reaches into an uncached read is
    /// concurrent with it: counted as unordered, not judged.
    fn resurrected(&mut self, k: &KeyHistory<'_>, read: &Op, v: &str, due: &Due, at: &str) -> bool {
        let newer = |d: &&Op| d.version.as_deref() > Some(v);
        let place = (due.region, due.epoch);
        let Some(d) = k.applied.certain_before(Function::Delete, place, due.from).filter(newer)
        else {
            let overlaps = || k.applied.maybe_delete_before(place, read.complete).filter(newer);
            if !read.may_be_cached() && overlaps().is_some() {
                self.unordered += 1;
            }
            return false;
        };
        self.anomaly(
            AnomalyKind::Resurrection,
            k.key,
            vec![d.index, read.index],
            format!(
                "{at} serves version {v} after {} had applied delete {} (version {}){}",
                read.region,
                d.index,
                d.version.as_deref().unwrap_or("?"),
                by(read, due.from)
            ),
        );
        true
    }

    /// Stale read: `read` serves version `v` although its region had certainly applied a newer
    /// put by `due.from`.
    fn stale_value(&mut self, k: &KeyHistory<'_>, read: &Op, v: &str, due: &Due, at: &str) -> bool {
        let newer = |p: &&Op| p.version.as_deref() > Some(v);
        let place = (due.region, due.epoch);
        let Some(p) = k.applied.certain_before(Function::Put, place, due.from).filter(newer) else {
            return false;
        };
        self.anomaly(
            AnomalyKind::StaleRead,
            k.key,
            vec![p.index, read.index],
            format!(
                "{at} serves version {v}, older than put {} (version {}) that {} had applied{}",
                p.index,
                p.version.as_deref().unwrap_or("?"),
                read.region,
                by(read, due.from)
            ),
        );
        true
    }

    /// Stale read: `read` finds nothing although the newest write its region had certainly
    /// applied by `due.from` is a put that no delete that may have happened and no expiry
    /// explains (judged at the latest the server can have answered).
    fn stale_absence(&mut self, k: &KeyHistory<'_>, read: &Op, due: &Due, at: &str) -> bool {
        let place = (due.region, due.epoch);
        let Some(p) = k.applied.newest_before(place, due.from) else { return false };
        let explained = p.f == Function::Delete
            || k.absence_explained(p, completed_wall_ms(read))
            || k.delete_may_follow(p.version.as_deref());
        if explained {
            return false;
        }
        self.anomaly(
            AnomalyKind::StaleRead,
            k.key,
            vec![p.index, read.index],
            format!(
                "{at} finds nothing, but {} had applied put {} (version {}){}, and no delete or \
                 expiry explains its absence",
                read.region,
                p.index,
                p.version.as_deref().unwrap_or("?"),
                by(read, due.from)
            ),
        );
        true
    }
}

/// When the region had applied it, for an explanation: before the read began, or before the
/// earliest instant a cached answer can show.
fn by(read: &Op, from: Nanos) -> String {
    if from >= read.invoke {
        return " before the read began".to_owned();
    }
    format!(
        " by {:.3} s, {:.3} s before the read began (the longest its answer can have been \
         cached)",
        from as f64 / 1e9,
        (read.invoke - from) as f64 / 1e9
    )
}
