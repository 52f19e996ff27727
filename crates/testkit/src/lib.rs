//! In-process EdgeKV clusters for tests.
//!
//! [`TestCluster`] starts N regions in the test's process, each with its real HTTP and gRPC
//! listeners on loopback port 0, replicating over real gRPC exactly as `edgekv cluster` does.
//! Tests drive the regions' stores directly (the HTTP layer has its own tests), inject faults
//! through the shared [`Faults`], and wait on conditions with `wait_for_*` helpers that always
//! take a timeout. Helpers that panic on failure are named `must_*`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edgekv_core::{AccountId, ItemId, NamespaceId, ReplicatedWrite};
use edgekv_core::{Entry, Version};
use edgekv_node::{start_cluster, RegionConfig, RunningRegion};
use edgekv_replication::{Fault, Faults};
use edgekv_store::{Store, WriteOp};
use tokio_util::sync::CancellationToken;

/// How often `wait_for_*` helpers re-check their condition.
pub const POLL: Duration = Duration::from_millis(2);

/// Builds a [`TestCluster`].
#[derive(Debug, Clone)]
pub struct Builder {
    regions: Vec<String>,
    delay: String,
    links: Vec<String>,
    seed: u64,
    ae_interval: Duration,
    tombstone_grace: Duration,
    edge: edgekv_api::EdgeConfig,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            regions: vec!["wnam".into(), "enam".into(), "weur".into()],
            delay: "0s".into(),
            links: Vec::new(),
            seed: 1,
            ae_interval: Duration::from_millis(500),
            tombstone_grace: Duration::from_secs(60),
            edge: edgekv_api::EdgeConfig::WORKERS_KV,
        }
    }
}

impl Builder {
    fn matrix(&self) -> edgekv_core::LatencyMatrix {
        edgekv_node::config::parse_latency_matrix(&self.delay, &self.links)
            .expect("a valid test delay model")
    }

    /// The configuration of region `name` with this builder's settings and no peers.
    fn config(&self, name: &str) -> RegionConfig {
        let mut config = RegionConfig::for_test(name);
        config.tombstone_grace = self.tombstone_grace;
        config.replication.delays = self.matrix();
        config.replication.seed = self.seed;
        config.replication.anti_entropy_interval = self.ae_interval;
        config.edge = self.edge;
        config
    }

    /// The regions, in order.
    pub fn regions(mut self, regions: &[&str]) -> Self {
        self.regions = regions.iter().map(|r| (*r).to_owned()).collect();
        self
    }

    /// The delay model of every link.
    pub fn delay(mut self, model: &str) -> Self {
        self.delay = model.to_owned();
        self
    }

    /// Overrides one link: `ORIGIN->DESTINATION=MODEL`.
    pub fn link(mut self, link: &str) -> Self {
        self.links.push(link.to_owned());
        self
    }

    /// The seed of delays and fault decisions.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The mean anti-entropy interval.
    pub fn anti_entropy_interval(mut self, interval: Duration) -> Self {
        self.ae_interval = interval;
        self
    }

    /// How long tombstones are kept.
    pub fn tombstone_grace(mut self, grace: Duration) -> Self {
        self.tombstone_grace = grace;
        self
    }

    /// The edge cache and write rate of every region's APIs [default: Workers KV's].
    pub fn edge(mut self, edge: edgekv_api::EdgeConfig) -> Self {
        self.edge = edge;
        self
    }

    /// Starts the regions and creates one namespace, `ns`, in account `acct` from the first
    /// region, waiting until every region has it.
    pub async fn start(self) -> TestCluster {
        let matrix = self.matrix();
        let configs = self.regions.iter().map(|r| self.config(r)).collect();
        let faults = Arc::new(Faults::new(self.seed));
        let shutdown = CancellationToken::new();
        let regions = start_cluster(configs, Arc::clone(&faults), shutdown.clone())
            .await
            .expect("start the test cluster");
        let account = AccountId::parse("acct").expect("a valid account");
        let namespace = regions[0].store.create_namespace(&account, "ns").expect("create ns").id;
        let cluster = TestCluster { regions, faults, shutdown, account, namespace, builder: self };
        let timeout = matrix.max() + Duration::from_secs(10);
        for region in &cluster.regions {
            let name = region.config.region.to_string();
            cluster
                .wait_for(timeout, &format!("namespace in {name}"), || {
                    region.store.get_namespace(&cluster.account, &cluster.namespace).is_ok()
                })
                .await;
        }
        cluster
    }
}

/// A running in-process cluster. Dropping it stops every region.
pub struct TestCluster {
    /// The regions, in the builder's order.
    pub regions: Vec<RunningRegion>,
    /// The faults shared by every region.
    pub faults: Arc<Faults>,
    shutdown: CancellationToken,
    /// The account of the test namespace.
    pub account: AccountId,
    /// The test namespace, created in the first region.
    pub namespace: NamespaceId,
    builder: Builder,
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestCluster {
    /// The configuration a region `name` joining this cluster would have: the cluster's
    /// settings, loopback port 0, and the cluster's regions as its peers.
    pub fn config_for(&self, name: &str) -> RegionConfig {
        let mut config = self.builder.config(name);
        config.replication.peers = self.peers();
        config
    }

    /// Every region of the cluster as a peer to reach.
    pub fn peers(&self) -> Vec<edgekv_replication::PeerConfig> {
        self.regions
            .iter()
            .map(|r| edgekv_replication::PeerConfig {
                name: r.config.region,
                url: edgekv_replication::grpc_url(r.grpc_addr),
            })
            .collect()
    }

    /// Starts a region outside the cluster, stopped with it: it knows the regions its config
    /// names, and no region knows it until told ([`TestCluster::must_add_everywhere`]).
    pub async fn start_outsider(&self, config: RegionConfig) -> RunningRegion {
        let bound = edgekv_node::bind(config).await.expect("bind the outsider");
        edgekv_node::start(bound, Arc::clone(&self.faults), self.shutdown.child_token())
            .unwrap_or_else(|err| panic!("start the outsider: {err:#}"))
    }

    /// Makes `region` a member at every region of the cluster.
    pub fn must_add_everywhere(&self, region: &RunningRegion) {
        let peer = edgekv_replication::PeerConfig {
            name: region.config.region,
            url: edgekv_replication::grpc_url(region.grpc_addr),
        };
        for member in &self.regions {
            member.replication.members().add(&peer).expect("add the region");
        }
    }

    /// Takes `region` out of the membership of every region of the cluster.
    pub fn must_remove_everywhere(&self, region: &str) {
        let name = region.parse().expect("a valid region name");
        for member in self.regions.iter().filter(|r| r.config.region != name) {
            member.replication.members().remove(name).expect("remove the region");
        }
    }

    /// A builder with three regions (wnam, enam, weur), no delay, seed 1.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The region called `name`.
    pub fn region(&self, name: &str) -> &RunningRegion {
        self.regions
            .iter()
            .find(|r| r.config.region.as_str() == name)
            .unwrap_or_else(|| panic!("no region {name}"))
    }

    /// The store of region `name`.
    pub fn store(&self, name: &str) -> &Arc<Store> {
        &self.region(name).store
    }

    /// Region names, in order.
    pub fn names(&self) -> Vec<String> {
        self.regions.iter().map(|r| r.config.region.to_string()).collect()
    }

    /// Writes `key = value` in region `name` and returns the version it was acknowledged with.
    pub fn must_put(&self, name: &str, key: &str, value: &str) -> Version {
        let op = WriteOp {
            key: key.into(),
            value: Some(Bytes::from(value.to_owned())),
            metadata: None,
            expiration: None,
        };
        self.must_write(name, op)
    }

    /// Deletes `key` in region `name` and returns the version of the tombstone.
    pub fn must_delete(&self, name: &str, key: &str) -> Version {
        self.must_write(
            name,
            WriteOp { key: key.into(), value: None, metadata: None, expiration: None },
        )
    }

    fn must_write(&self, name: &str, op: WriteOp) -> Version {
        self.store(name).write(&self.account, &self.namespace, vec![op]).expect("write")[0].version
    }

    /// The live value of `key` in region `name`.
    pub fn get(&self, name: &str, key: &str) -> Option<Bytes> {
        self.store(name)
            .get(&self.account, &self.namespace, key)
            .ok()
            .flatten()
            .and_then(|e| e.value)
    }

    /// The entry region `name` holds for `key`, tombstones included.
    pub fn entry(&self, name: &str, key: &str) -> Option<Entry> {
        let item = ItemId {
            account: self.account.clone(),
            namespace: self.namespace.clone(),
            key: Some(key.into()),
        };
        match self.store(name).current(&item)? {
            ReplicatedWrite::Key { entry, .. } => Some(entry),
            ReplicatedWrite::Namespace(_) => None,
        }
    }

    /// Adds a fault to every region.
    pub fn must_fault(&self, fault: Fault) -> u64 {
        self.faults.add(fault).expect("a valid fault")
    }

    /// Removes every fault.
    pub fn heal(&self) {
        self.faults.clear();
    }

    /// Waits until `condition` holds, or panics after `timeout` naming `what`. Returns how long
    /// it took.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        mut condition: impl FnMut() -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            if condition() {
                return start.elapsed();
            }
            assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until region `name` serves `value` for `key` (`None`: absent).
    pub async fn wait_for_value(
        &self,
        name: &str,
        key: &str,
        value: Option<&str>,
        timeout: Duration,
    ) -> Duration {
        let want = value.map(|v| Bytes::from(v.to_owned()));
        self.wait_for(timeout, &format!("{key}={value:?} in {name}"), || {
            self.get(name, key) == want
        })
        .await
    }

    /// Waits until every region holds the same version of each of `keys`, and returns it.
    pub async fn wait_for_convergence(
        &self,
        keys: &[String],
        timeout: Duration,
    ) -> Vec<Option<Version>> {
        let names = self.names();
        let versions = |name: &str| -> Vec<Option<Version>> {
            keys.iter().map(|k| self.entry(name, k).map(|e| e.version)).collect()
        };
        self.wait_for(timeout, "all regions to converge", || {
            let first = versions(&names[0]);
            names.iter().all(|n| versions(n) == first)
        })
        .await;
        versions(&names[0])
    }
}
