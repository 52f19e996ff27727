//! Replication over the in-memory transport: the real senders, handlers and anti-entropy of
//! three regions in one process, with no sockets, and faults applied at the transport seam.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edgekv_core::{AccountId, Fault, Hlc, LatencyMatrix, NamespaceId, RegionId, SystemClock};
use edgekv_replication::{
    spawn_replication, Faults, MemoryTransport, PeerConfig, ReplicationConfig, ReplicationHandle,
    ReplicationMetrics, TokioTimers,
};
use edgekv_store::{Store, StoreConfig, WriteOp};
use tokio_util::sync::CancellationToken;

struct Region {
    name: RegionId,
    store: Arc<Store>,
    replication: ReplicationHandle,
}

struct Cluster {
    regions: Vec<Region>,
    faults: Arc<Faults>,
    account: AccountId,
    ns: NamespaceId,
    _shutdown: tokio_util::sync::DropGuard,
}

const REGIONS: [&str; 3] = ["wnam", "enam", "weur"];

async fn cluster(delay: &str) -> Cluster {
    let names: Vec<RegionId> = REGIONS.iter().map(|r| r.parse().unwrap()).collect();
    let delays = LatencyMatrix::new(delay.parse().unwrap());
    let faults = Arc::new(Faults::new(7));
    let transport = Arc::new(MemoryTransport::default());
    let shutdown = CancellationToken::new();
    let mut regions = Vec::new();
    for &name in &names {
        let hlc = Arc::new(Hlc::new(Arc::new(SystemClock), Hlc::DEFAULT_MAX_DELTA));
        let config = StoreConfig {
            region: name,
            tombstone_grace: Duration::from_secs(60),
            digest_horizon: edgekv_replication::digest_horizon(&delays),
            reserve: Default::default(),
            engine_memory: edgekv_store::DEFAULT_ENGINE_MEMORY,
        };
        let store = Arc::new(Store::new(config, hlc));
        let peers = names
            .iter()
            .filter(|p| **p != name)
            .map(|p| PeerConfig { name: *p, url: String::new() })
            .collect();
        let mut config = ReplicationConfig::new(name, peers, "secret".into());
        config.delays = delays.clone();
        config.anti_entropy_interval = Duration::from_secs(3600); // rounds are run by hand
        config.max_backoff = Duration::from_millis(200);
        let metrics = Arc::new(ReplicationMetrics::register(&Default::default()));
        let replication = spawn_replication(
            config,
            Arc::clone(&store) as Arc<dyn edgekv_store::Replica>,
            Arc::clone(&faults),
            metrics,
            Arc::clone(&transport) as Arc<dyn edgekv_replication::Transport>,
            Arc::new(TokioTimers),
            shutdown.clone(),
        )
        .expect("replication starts");
        transport.register(name, replication.handler());
        regions.push(Region { name, store, replication });
    }
    let account = AccountId::parse("acct").unwrap();
    let ns = regions[0].store.create_namespace(&account, "ns").unwrap().id;
    let cluster = Cluster { regions, faults, account, ns, _shutdown: shutdown.drop_guard() };
    for region in &cluster.regions {
        cluster
            .wait(Duration::from_secs(10), "the namespace everywhere", || {
                region.store.get_namespace(&cluster.account, &cluster.ns).is_ok()
            })
            .await;
    }
    cluster
}

impl Cluster {
    fn region(&self, name: &str) -> &Region {
        self.regions.iter().find(|r| r.name.as_str() == name).unwrap()
    }

    fn put(&self, region: &str, key: &str, value: &str) -> edgekv_core::Version {
        let op = WriteOp {
            key: key.into(),
            value: Some(Bytes::from(value.to_owned())),
            metadata: None,
            expiration: None,
        };
        self.region(region).store.write(&self.account, &self.ns, vec![op]).unwrap()[0].version
    }

    fn get(&self, region: &str, key: &str) -> Option<String> {
        let entry = self.region(region).store.get(&self.account, &self.ns, key).unwrap()?;
        Some(String::from_utf8(entry.value.unwrap().to_vec()).unwrap())
    }

    async fn wait(&self, timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn wait_for(&self, region: &str, key: &str, value: &str) {
        let what = format!("{key}={value} in {region}");
        self.wait(Duration::from_secs(15), &what, || {
            self.get(region, key).as_deref() == Some(value)
        })
        .await;
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_arrives_no_earlier_than_its_delay_and_the_position_advances() {
    let cluster = cluster("1500ms").await;
    let version = cluster.put("wnam", "k", "v");
    assert_eq!(cluster.get("enam", "k"), None, "not before the link's delay");
    cluster.wait_for("enam", "k", "v").await;
    cluster.wait_for("weur", "k", "v").await;
    assert!(now_ms() >= version.ts.physical_ms() + 1500, "delivered before it was due");
    let origin = &cluster.region("wnam").replication;
    cluster
        .wait(Duration::from_secs(5), "the watermark past the write", || {
            origin.replicated_through() >= version.ts
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_holds_writes_until_the_heal() {
    let cluster = cluster("0s").await;
    let cut = Fault::Partition { a: vec!["wnam".into()], b: vec!["enam".into(), "weur".into()] };
    let id = cluster.faults.add(cut).unwrap();
    let version = cluster.put("wnam", "k", "during");
    // The other regions still talk to each other.
    cluster.put("enam", "other", "x");
    cluster.wait_for("weur", "other", "x").await;
    assert_eq!(cluster.get("enam", "k"), None);
    assert!(cluster.region("wnam").replication.replicated_through() < version.ts);
    cluster.faults.remove(id);
    cluster.wait_for("enam", "k", "during").await;
    cluster.wait_for("weur", "k", "during").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_deliveries_are_harmless() {
    let cluster = cluster("0s").await;
    let dup = Fault::Duplicate { from: "*".into(), to: "*".into(), rate: 1.0 };
    cluster.faults.add(dup).unwrap();
    for i in 0..20 {
        cluster.put("wnam", "k", &format!("v{i}"));
    }
    cluster.wait_for("enam", "k", "v19").await;
    cluster.wait_for("weur", "k", "v19").await;
    let count = |region: &str| {
        cluster
            .region(region)
            .store
            .list_keys(&cluster.account, &cluster.ns, "", None, 100)
            .unwrap()
            .keys
            .len()
    };
    assert_eq!((count("enam"), count("weur")), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_delivery_is_repaired_by_anti_entropy() {
    let cluster = cluster("0s").await;
    let loss = Fault::Loss { from: "wnam".into(), to: "enam".into(), rate: 1.0 };
    let id = cluster.faults.add(loss).unwrap();
    let version = cluster.put("wnam", "k", "lost");
    cluster.wait_for("weur", "k", "lost").await;
    assert_eq!(cluster.get("enam", "k"), None, "every delivery to enam is lost");
    cluster.faults.remove(id);
    // Lost, not failed: the sender does not send it again; it holds the watermark back.
    let origin = &cluster.region("wnam");
    assert!(origin.replication.replicated_through() < version.ts);
    // Anti-entropy sends only what is older than the digest horizon (the delay, 0 s, plus
    // the margin): the write enters the origin's digest then, next to the namespace record.
    let horizon = edgekv_replication::HORIZON_MARGIN;
    cluster.wait(horizon * 3, "the write in the digest", || origin.store.digest_len() >= 2).await;
    let enam: RegionId = "enam".parse().unwrap();
    let report = origin.replication.anti_entropy_round(enam).await.unwrap();
    assert_eq!(report.pushed, 1, "{report:?}");
    assert_eq!(cluster.get("enam", "k").as_deref(), Some("lost"));
}
