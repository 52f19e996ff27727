//! The simulated cluster: every region's real parts (store, routers, replication, purging)
//! wired by [`edgekv_node::region`], reached in process ([`Local`] endpoints for the lab's
//! clients, the in-memory transport between regions), on one virtual clock.
//!
//! Process faults act on these parts as they would on a process:
//! - kill and stop end the region's tasks and refuse its connections; its store is kept,
//!   since a store in `fsync` mode loses nothing it acknowledged;
//! - start and restart wire the parts again over the same store;
//! - freeze makes its connections hang and its replication stop until it is unfrozen;
//! - wipe starts it again on an empty store.

use std::sync::Arc;

use edgekv_core::{PhysicalClock, RegionId};
use edgekv_lab::scenario::Scenario;
use edgekv_node::{region, RegionConfig};
use edgekv_replication::{Faults, MemoryTransport, PeerConfig, Transport};
use edgekv_store::Store;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::chaos::Process;
use crate::lab::client::{Endpoint, Local};
use crate::lab::setup;
use crate::lab::{Processes, Region};

/// One simulated region.
struct Node {
    config: RegionConfig,
    store: Arc<Store>,
    /// Stops its tasks; replaced at each start.
    tasks: CancellationToken,
    api: Local,
    binding: Local,
    up: bool,
    /// Seeds the namespace ids of each store it gets (every wipe gives it a new one).
    ids: u64,
}

/// Every region of a simulation.
pub(super) struct SimCluster {
    nodes: Vec<Mutex<Node>>,
    transport: Arc<MemoryTransport>,
    faults: Arc<Faults>,
    root: CancellationToken,
}

impl SimCluster {
    /// Starts every region of the scenario, on `clock`.
    pub(super) fn start(
        scenario: &Scenario,
        seed: u64,
        clock: Arc<dyn PhysicalClock>,
        root: &CancellationToken,
    ) -> anyhow::Result<Arc<SimCluster>> {
        let mut configs = setup::region_configs(scenario, seed, false, std::path::Path::new(""))?;
        let names: Vec<RegionId> = configs.iter().map(|c| c.region).collect();
        for config in &mut configs {
            config.clock = Arc::clone(&clock);
            // The transport finds peers by name; their URLs are never dialled.
            config.replication.peers = names
                .iter()
                .filter(|n| **n != config.region)
                .map(|n| PeerConfig { name: *n, url: format!("sim://{n}") })
                .collect();
        }
        let faults = Arc::new(Faults::new(seed));
        let transport = Arc::new(MemoryTransport::default());
        let mut nodes = Vec::new();
        for (i, config) in (0u64..).zip(configs) {
            let ids = seed ^ (i + 1).wrapping_mul(ID_STREAM);
            let store = open_store(&config, &faults, ids)?;
            let (api, binding) = (Local::down(), Local::down());
            let tasks = root.child_token();
            nodes.push(Mutex::new(Node { config, store, tasks, api, binding, up: false, ids }));
        }
        let cluster = Arc::new(SimCluster { nodes, transport, faults, root: root.clone() });
        for node in &cluster.nodes {
            cluster.boot(&mut node.lock())?;
        }
        Ok(cluster)
    }

    /// The regions as the lab's runner reaches them.
    pub(super) fn regions(&self, scenario: &Scenario) -> Vec<Region> {
        self.nodes
            .iter()
            .zip(&scenario.regions)
            .map(|(node, spec)| {
                let node = node.lock();
                let name = node.config.region.to_string();
                let api = Endpoint::local(&name, "/client/v4", node.api.clone());
                let admin = Endpoint::local(&name, "", node.api.clone());
                let binding = Endpoint::local(&name, "", node.binding.clone());
                setup::region(spec, api, Some(binding), admin)
            })
            .collect()
    }

    /// Wires the region's parts over its store and makes it reachable.
    fn boot(&self, node: &mut Node) -> anyhow::Result<()> {
        node.tasks = self.root.child_token();
        let transport = Arc::clone(&self.transport) as Arc<dyn Transport>;
        let faults = Arc::clone(&self.faults);
        let store = Arc::clone(&node.store);
        let parts = region::assemble(&node.config, store, faults, transport, &node.tasks)?;
        self.transport.register(node.config.region, parts.replication.handler());
        node.api.set(Some(parts.api));
        node.binding.set(Some(parts.binding));
        node.api.set_running(true);
        node.binding.set_running(true);
        node.up = true;
        Ok(())
    }

    /// Ends the region's tasks and takes it off the network; its store stays.
    fn halt(&self, node: &mut Node) {
        node.tasks.cancel();
        self.transport.unregister(node.config.region);
        node.up = false;
    }

    fn act_on(&self, action: Process, region: &str) -> anyhow::Result<()> {
        let Some(node) = self.nodes.iter().find(|n| n.lock().config.region.as_str() == region)
        else {
            anyhow::bail!("no region {region} in the simulation");
        };
        let mut node = node.lock();
        match action {
            Process::Kill | Process::Stop => {
                self.halt(&mut node);
                node.api.set(None);
                node.binding.set(None);
            }
            Process::Start | Process::Restart => {
                if node.up {
                    self.halt(&mut node);
                }
                restart_loses_write(&node.store);
                self.boot(&mut node)?;
            }
            Process::Freeze => {
                self.halt(&mut node);
                node.api.set_running(false);
                node.binding.set_running(false);
            }
            Process::Unfreeze => {
                // What a frozen process held in memory it still holds; its replication state
                // is rebuilt from its store, as after a restart.
                self.boot(&mut node)?;
            }
            Process::Wipe => {
                self.halt(&mut node);
                node.ids = node.ids.wrapping_add(ID_STREAM);
                node.store = open_store(&node.config, &self.faults, node.ids)?;
                self.boot(&mut node)?;
            }
        }
        Ok(())
    }
}

/// Spaces the seeds of the regions' namespace ids (and of each wipe's new store) apart.
const ID_STREAM: u64 = 0x9e37_79b9_7f4a_7c15;

/// A region's store, drawing its namespace ids from `ids`: a run must not read the OS's
/// randomness.
fn open_store(config: &RegionConfig, faults: &Arc<Faults>, ids: u64) -> anyhow::Result<Arc<Store>> {
    let store = region::open_store(config, faults)?;
    store.seed_namespace_ids(ids);
    Ok(store)
}

/// A test build's `restart-loses-write`: the restarted region has forgotten its newest local
/// write. Nothing in a normal build.
fn restart_loses_write(store: &Store) {
    #[cfg(feature = "failpoints")]
    if edgekv_core::failpoint::active(edgekv_core::failpoint::Failpoint::RestartLosesWrite) {
        store.lose_newest_local_write();
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = store;
}

impl Processes for SimCluster {
    fn act<'a>(&'a self, action: Process, region: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { self.act_on(action, region) })
    }
}
