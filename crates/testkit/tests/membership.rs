//! Regions that join and leave a running cluster: a new region fills up by anti-entropy and
//! erases nothing, a region is answered only once it is a member, a leaving region drains or
//! says what it could not deliver, tombstone collection waits for the members and only them,
//! and a removed region that returns with its old data cannot bring deleted keys back.

use std::time::Duration;

use bytes::Bytes;
use edgekv_node::{RegionConfig, RunningRegion, Storage};
use edgekv_replication::PeerConfig;
use edgekv_store::Durability;
use edgekv_testkit::TestCluster;

const LONG: Duration = Duration::from_secs(20);

fn value(region: &RunningRegion, cluster: &TestCluster, key: &str) -> Option<Bytes> {
    let found = region.store.get(&cluster.account, &cluster.namespace, key);
    found.ok().flatten().and_then(|e| e.value)
}

fn refused_as_non_member(region: &RunningRegion) -> u64 {
    region.replication_metrics.rejected.with(&["membership"]).get()
}

/// A region added to a running cluster starts empty, takes every key and tombstone by
/// anti-entropy, changes nothing in the regions it joined, and replicates its own writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_region_bootstraps_by_anti_entropy_and_erases_nothing() {
    let cluster = TestCluster::builder().start().await;
    let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    for key in &keys {
        cluster.must_put("wnam", key, &format!("v-{key}"));
    }
    // Deleted where the value has arrived: a delete racing the write could lose to it by LWW.
    cluster.wait_for_value("enam", "k0", Some("v-k0"), LONG).await;
    cluster.must_delete("enam", "k0");
    cluster.wait_for_convergence(&keys, LONG).await;
    let before: Vec<_> = keys.iter().map(|k| cluster.entry("weur", k)).collect();

    let apac = cluster.start_outsider(cluster.config_for("apac")).await;
    cluster.must_add_everywhere(&apac);
    cluster
        .wait_for(LONG, "apac to hold every key", || {
            keys[1..].iter().all(|k| value(&apac, &cluster, k).is_some())
        })
        .await;
    assert_eq!(value(&apac, &cluster, "k0"), None, "the delete came with the data");
    for name in cluster.names() {
        let now: Vec<_> = keys.iter().map(|k| cluster.entry(&name, k)).collect();
        assert_eq!(now, before, "{name} changed when apac joined");
    }
    apac.store.write(&cluster.account, &cluster.namespace, vec![put("from-apac", "hi")]).unwrap();
    for name in cluster.names() {
        cluster.wait_for_value(&name, "from-apac", Some("hi"), LONG).await;
    }
    let status = cluster.region("wnam").replication.members().regions();
    assert_eq!(status.len(), 4, "{status:?}");
}

fn put(key: &str, value: &str) -> edgekv_store::WriteOp {
    edgekv_store::WriteOp {
        key: key.into(),
        value: Some(Bytes::from(value.to_owned())),
        metadata: None,
        expiration: None,
    }
}

/// A region no member has added is refused (and counted): its anti-entropy rounds take
/// nothing from the members. Once added, it is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_is_answered_only_once_it_is_a_member() {
    let cluster = TestCluster::builder().regions(&["wnam", "enam"]).start().await;
    cluster.must_put("wnam", "k", "v");
    let apac = cluster.start_outsider(cluster.config_for("apac")).await;
    let wnam = cluster.region("wnam");
    cluster.wait_for(LONG, "wnam to refuse apac", || refused_as_non_member(wnam) >= 2).await;
    assert_eq!(value(&apac, &cluster, "k"), None, "a non-member was answered");
    cluster.must_add_everywhere(&apac);
    cluster.wait_for(LONG, "apac to get k", || value(&apac, &cluster, "k").is_some()).await;
}

/// A region that leaves first drains its outbox: while a link is slower than the drain's
/// timeout the drain reports what is pending; given time, it completes. Removed, the region's
/// later writes reach no one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_region_drains_first_or_reports_what_is_pending() {
    let cluster = TestCluster::builder().link("weur->enam=1500ms").start().await;
    cluster.must_put("weur", "last", "words");
    let weur = cluster.region("weur");
    let hurried = weur.replication.members().drain(Duration::from_millis(100)).await;
    let pending: Vec<String> = hurried.pending.iter().map(|(r, _)| r.to_string()).collect();
    assert_eq!(pending, vec!["enam".to_owned()], "{hurried:?}");
    assert!(hurried.pending[0].1 >= 1, "{hurried:?}");

    let patient = weur.replication.members().drain(Duration::from_secs(10)).await;
    assert!(patient.pending.is_empty(), "{patient:?}");
    assert_eq!(cluster.get("enam", "last").as_deref(), Some(&b"words"[..]));

    cluster.must_remove_everywhere("weur");
    for peer in ["wnam", "enam"] {
        let removed = weur.replication.members().remove(peer.parse().unwrap()).unwrap();
        assert_eq!(removed.undelivered, 0, "drained before it left");
    }
    assert!(weur.replication.members().list().iter().all(|p| !p.member));
    cluster.must_put("weur", "after", "alone");
    cluster.must_put("wnam", "marker", "m");
    cluster.wait_for_value("enam", "marker", Some("m"), LONG).await;
    assert_eq!(cluster.get("enam", "after"), None);
    assert_eq!(cluster.get("wnam", "after"), None);
}

/// A member that never reports (down since it was added) holds tombstones back past their
/// grace; once it is removed, collection waits only for the members that remain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstone_collection_waits_for_the_members_and_only_them() {
    let cluster = TestCluster::builder()
        .regions(&["wnam", "enam"])
        .tombstone_grace(Duration::from_millis(200))
        .start()
        .await;
    // A member at an address where nothing listens.
    let ghost = PeerConfig { name: "apac".parse().unwrap(), url: "http://127.0.0.1:1".into() };
    for region in &cluster.regions {
        region.replication.members().add(&ghost).unwrap();
    }
    cluster.must_put("wnam", "k", "v");
    cluster.wait_for_value("enam", "k", Some("v"), LONG).await;
    cluster.must_delete("wnam", "k");
    cluster.wait_for_value("enam", "k", None, LONG).await;
    // apac never acknowledges anything, so no watermark passes the delete. Well past the
    // grace period, after several purges (one a second), the tombstone is still there.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for name in cluster.names() {
        assert!(cluster.entry(&name, "k").is_some_and(|e| e.is_tombstone()), "{name} forgot it");
    }
    cluster.must_remove_everywhere("apac");
    cluster
        .wait_for(LONG, "the tombstone to be collected", || {
            cluster.names().iter().all(|n| cluster.entry(n, "k").is_none())
        })
        .await;
}

/// The failure membership must not allow: a region is removed, a key it holds is deleted and
/// the tombstone forgotten without it, and the region comes back with its old data. Its peers
/// refuse that store (and so the old value), until it returns wiped, when it bootstraps
/// without the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_region_that_returns_with_its_data_does_not_resurrect_deleted_keys() {
    let cluster = TestCluster::builder()
        .regions(&["wnam", "enam"])
        .tombstone_grace(Duration::from_millis(200))
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let durable = |config: &mut RegionConfig, path: &std::path::Path| {
        config.storage = Storage::Disk { dir: path.to_path_buf(), durability: Durability::Fsync };
    };
    let mut config = cluster.config_for("apac");
    durable(&mut config, dir.path());
    let apac = cluster.start_outsider(config.clone()).await;
    cluster.must_add_everywhere(&apac);
    cluster.must_put("wnam", "doomed", "old");
    cluster.must_put("wnam", "kept", "yes");
    cluster
        .wait_for(LONG, "apac to have both keys", || {
            value(&apac, &cluster, "doomed").is_some() && value(&apac, &cluster, "kept").is_some()
        })
        .await;

    // apac goes down and is removed; the key is deleted and forgotten without it.
    apac.shutdown.cancel();
    apac.stopped().await.unwrap();
    cluster.must_remove_everywhere("apac");
    cluster.must_delete("wnam", "doomed");
    cluster
        .wait_for(LONG, "the tombstone to be forgotten", || {
            cluster.names().iter().all(|n| cluster.entry(n, "doomed").is_none())
        })
        .await;

    // It comes back with the store it had, and is even added again by mistake.
    let stale = cluster.start_outsider(config.clone()).await;
    assert_eq!(value(&stale, &cluster, "doomed").as_deref(), Some(&b"old"[..]));
    cluster.must_add_everywhere(&stale);
    let wnam = cluster.region("wnam");
    let before = refused_as_non_member(wnam);
    // Anti-entropy from apac tries again and again (every 0.5 s) and is refused each time.
    cluster
        .wait_for(LONG, "wnam to refuse apac's old store", || {
            refused_as_non_member(wnam) >= before + 4
        })
        .await;
    for name in cluster.names() {
        assert_eq!(cluster.get(&name, "doomed"), None, "{name} took the deleted key back");
    }
    let listed = wnam.replication.members().list();
    let entry = listed.iter().find(|p| p.name.as_str() == "apac").unwrap();
    assert!(entry.member && entry.fence.0 > 0, "{entry:?}");
    stale.shutdown.cancel();
    stale.stopped().await.unwrap();

    // Wiped, it is a new store: answered, it fills up without the deleted key.
    let wiped_dir = tempfile::tempdir().unwrap();
    durable(&mut config, wiped_dir.path());
    let fresh = cluster.start_outsider(config).await;
    cluster
        .wait_for(LONG, "the wiped apac to bootstrap", || value(&fresh, &cluster, "kept").is_some())
        .await;
    assert_eq!(value(&fresh, &cluster, "doomed"), None);
    for name in cluster.names() {
        assert_eq!(cluster.get(&name, "doomed"), None, "{name}");
    }
}

/// Membership changes are saved in the store: a durable region restarted after a peer was
/// removed and another added keeps both changes, whatever its configuration says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_outlive_a_restart() {
    let cluster = TestCluster::builder().regions(&["wnam", "enam"]).start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = cluster.config_for("apac");
    config.storage = Storage::Disk { dir: dir.path().to_path_buf(), durability: Durability::Fsync };
    let apac = cluster.start_outsider(config.clone()).await;
    let members = apac.replication.members();
    members.remove("enam".parse().unwrap()).unwrap();
    let oc = PeerConfig { name: "oc".parse().unwrap(), url: "http://127.0.0.1:1".into() };
    members.add(&oc).unwrap();
    // The handle shares the region's store: let go of it, as a process that stops does.
    drop(members);
    apac.shutdown.cancel();
    apac.stopped().await.unwrap();

    let again = cluster.start_outsider(config).await;
    let names: Vec<String> =
        again.replication.members().regions().iter().map(|r| r.to_string()).collect();
    assert_eq!(names, ["apac", "oc", "wnam"]);
}
