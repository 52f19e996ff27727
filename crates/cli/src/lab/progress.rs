//! What a run shows while it runs (elapsed time, phase, operations, errors, faults in force),
//! and what it must undo if it fails: every fault it set and did not remove.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;

use super::client::{Client, Endpoint};
use super::Clock;
use super::Processes;
use crate::chaos::Process;

/// A process fault in force and what ends it: who acts, the action, the region.
pub(super) type Undo = (Arc<dyn Processes>, Process, String);

/// Counters the progress line shows.
#[derive(Default)]
pub(crate) struct Progress {
    pub(super) ops: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) phase: parking_lot::Mutex<String>,
    pub(super) faults: parking_lot::Mutex<BTreeSet<String>>,
    /// Faults set and not yet removed: (admin endpoint, admin token, fault id), so that a run
    /// that fails or is interrupted does not leave a cluster partitioned.
    pub(super) applied: parking_lot::Mutex<Vec<(Endpoint, String, u64)>>,
    /// Process faults in force, with what ends them: a failed run must not leave a region
    /// killed or frozen.
    pub(super) undo: parking_lot::Mutex<Vec<Undo>>,
}

impl Progress {
    /// Removes every fault this run set and did not remove (best effort: the run is failing).
    pub(super) async fn remove_leftover_faults(&self) {
        let undo = std::mem::take(&mut *self.undo.lock());
        for (processes, action, region) in undo {
            if processes.act(action, &region).await.is_err() {
                eprintln!(
                    "lab: could not undo a process fault; check the containers with docker ps"
                );
            }
        }
        let leftovers = std::mem::take(&mut *self.applied.lock());
        for (endpoint, token, id) in leftovers {
            let Ok(mut admin) = Client::new(endpoint, &token) else { continue };
            if admin.call(Method::DELETE, &format!("/admin/faults/{id}"), None).await.is_err() {
                eprintln!(
                    "lab: could not remove fault {id}; remove it with DELETE /admin/faults/{id}"
                );
            }
        }
    }
}

/// Shows elapsed time, operations, errors and active faults: rewritten in place on a terminal,
/// a line every ten seconds otherwise (CI logs).
pub(super) async fn show(progress: Arc<Progress>, clock: Clock, duration: Duration) {
    let terminal = std::io::stderr().is_terminal();
    let every = if terminal { Duration::from_secs(1) } else { Duration::from_secs(10) };
    loop {
        tokio::time::sleep(every).await;
        let faults = progress.faults.lock().iter().cloned().collect::<Vec<_>>().join(", ");
        let line = format!(
            "[{:>6.1}s] {} (workload {:?}): {} ops, {} errors, faults: {}",
            clock.start.elapsed().as_secs_f64(),
            progress.phase.lock(),
            duration,
            progress.ops.load(Ordering::Relaxed),
            progress.errors.load(Ordering::Relaxed),
            if faults.is_empty() { "none".to_owned() } else { faults },
        );
        if terminal {
            eprint!("\r{line:<100}");
        } else {
            eprintln!("{line}");
        }
    }
}
