//! Replication between in-process regions over real gRPC: visibility and its delay,
//! convergence of concurrent writes, deletes, namespaces, partitions, loss and duplication.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edgekv_core::Version;
use edgekv_replication::Fault;
use edgekv_testkit::TestCluster;

const LONG: Duration = Duration::from_secs(20);

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|k| (*k).to_owned()).collect()
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_visible_at_once_in_its_own_region() {
    let cluster = TestCluster::builder().delay("1s").start().await;
    cluster.must_put("wnam", "k", "v");
    assert_eq!(cluster.get("wnam", "k").as_deref(), Some(&b"v"[..]));
    assert_eq!(cluster.get("enam", "k"), None, "not yet elsewhere");
}

/// A write reaches another region no sooner than the link's delay, and soon after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_visibility_waits_for_the_link_delay_and_not_much_longer() {
    let cluster = TestCluster::builder().delay("400ms").link("wnam->weur=1s").start().await;
    let version = cluster.must_put("wnam", "k", "v");
    let written = version.ts.physical_ms();
    for (region, delay_ms) in [("enam", 400), ("weur", 1000)] {
        cluster.wait_for_value(region, "k", Some("v"), LONG).await;
        let seen = wall_ms();
        assert!(
            seen >= written + delay_ms,
            "{region}: visible {} ms after the write",
            seen - written
        );
        assert!(
            seen <= written + delay_ms + 300,
            "{region}: visible {} ms after the write",
            seen - written
        );
    }
}

/// Every region writes the same key at about the same time; all end with the greatest version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_to_one_key_converge_to_the_greatest_version() {
    let cluster = TestCluster::builder().delay("uniform(50ms,300ms)").start().await;
    let mut written: Vec<Version> = Vec::new();
    for round in 0..5 {
        for name in cluster.names() {
            written.push(cluster.must_put(&name, "hot", &format!("{name}-{round}")));
        }
    }
    let winner = *written.iter().max().unwrap();
    let converged = cluster.wait_for_convergence(&keys(&["hot"]), LONG).await;
    assert_eq!(converged, vec![Some(winner)]);
    let value = format!("{}-4", winner.origin);
    for name in cluster.names() {
        assert_eq!(cluster.get(&name, "hot").as_deref(), Some(value.as_bytes()), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_propagate_as_tombstones() {
    let cluster = TestCluster::builder().delay("100ms").start().await;
    cluster.must_put("wnam", "k", "v");
    cluster.wait_for_value("weur", "k", Some("v"), LONG).await;
    let tombstone = cluster.must_delete("enam", "k");
    for name in cluster.names() {
        cluster.wait_for_value(&name, "k", None, LONG).await;
        assert_eq!(
            cluster.entry(&name, "k").map(|e| (e.version, e.is_tombstone())),
            Some((tombstone, true))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_create_rename_and_delete_replicate() {
    let cluster = TestCluster::builder().delay("100ms").start().await;
    let account = cluster.account.clone();
    let created = cluster.store("enam").create_namespace(&account, "second").unwrap();
    let id = created.id.clone();
    cluster
        .wait_for(LONG, "the namespace in weur", || {
            cluster.store("weur").get_namespace(&account, &id).map(|r| r.title)
                == Ok("second".into())
        })
        .await;
    cluster.store("weur").rename_namespace(&account, &id, "renamed").unwrap();
    cluster
        .wait_for(LONG, "the rename in enam", || {
            cluster.store("enam").get_namespace(&account, &id).map(|r| r.title)
                == Ok("renamed".into())
        })
        .await;
    cluster.store("wnam").delete_namespace(&account, &id).unwrap();
    for name in cluster.names() {
        cluster
            .wait_for(LONG, &format!("the delete in {name}"), || {
                cluster.store(&name).get_namespace(&account, &id).is_err()
            })
            .await;
    }
}

/// A partition with writes on both sides, then a heal: every region converges, and each key
/// holds the greatest acknowledged write: nothing acknowledged is lost except to a greater one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_with_writes_on_both_sides_heals_without_losing_acknowledged_writes() {
    let cluster = TestCluster::builder().delay("50ms").start().await;
    cluster.must_fault(Fault::Partition {
        a: vec!["wnam".into()],
        b: vec!["enam".into(), "weur".into()],
    });
    let mut acked: HashMap<String, Vec<Version>> = HashMap::new();
    for i in 0..20 {
        let key = format!("k{}", i % 7);
        let region = ["wnam", "enam", "weur"][i % 3];
        let version = if i % 5 == 4 {
            cluster.must_delete(region, &key)
        } else {
            cluster.must_put(region, &key, &format!("{region}-{i}"))
        };
        acked.entry(key).or_default().push(version);
    }
    let names: Vec<String> = acked.keys().cloned().collect();
    // The majority side converges among itself; nothing crosses the partition either way.
    let same = |a: &str, b: &str| {
        names.iter().all(|k| {
            cluster.entry(a, k).map(|e| e.version) == cluster.entry(b, k).map(|e| e.version)
        })
    };
    cluster.wait_for(LONG, "enam and weur to agree", || same("enam", "weur")).await;
    for key in &names {
        let origin =
            |region: &str| cluster.entry(region, key).map(|e| e.version.origin.to_string());
        assert!(origin("wnam").is_none_or(|o| o == "wnam"), "{key} crossed into wnam");
        assert!(origin("enam").is_none_or(|o| o != "wnam"), "{key} crossed out of wnam");
    }
    cluster.heal();
    let converged = cluster.wait_for_convergence(&names, LONG).await;
    for (key, version) in names.iter().zip(converged) {
        let greatest = acked[key].iter().max().copied();
        assert_eq!(version, greatest, "{key}");
    }
}

/// With a one-way fault wnam -> enam, enam misses wnam's writes while weur gets them, and wnam
/// still gets enam's. After the heal everyone converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_way_link_fault_cuts_one_direction_only() {
    let cluster = TestCluster::builder().delay("50ms").start().await;
    cluster.must_fault(Fault::OneWay { from: "wnam".into(), to: "enam".into() });
    cluster.must_put("wnam", "from_wnam", "1");
    cluster.must_put("enam", "from_enam", "2");
    cluster.wait_for_value("weur", "from_wnam", Some("1"), LONG).await;
    cluster.wait_for_value("wnam", "from_enam", Some("2"), LONG).await;
    assert_eq!(cluster.get("enam", "from_wnam"), None);
    cluster.heal();
    cluster.wait_for_value("enam", "from_wnam", Some("1"), LONG).await;
}

/// Half of all deliveries are lost and a quarter duplicated; anti-entropy repairs what was
/// lost, and duplicates change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anti_entropy_repairs_lost_deliveries_and_duplicates_are_harmless() {
    let cluster =
        TestCluster::builder().anti_entropy_interval(Duration::from_millis(300)).start().await;
    cluster.must_fault(Fault::Loss { from: "*".into(), to: "*".into(), rate: 0.5 });
    cluster.must_fault(Fault::Duplicate { from: "*".into(), to: "*".into(), rate: 0.25 });
    let mut acked: HashMap<String, Version> = HashMap::new();
    for i in 0..60 {
        let key = format!("k{i}");
        let region = ["wnam", "enam", "weur"][i % 3];
        acked.insert(key.clone(), cluster.must_put(region, &key, &format!("v{i}")));
        // Loss is decided per delivered batch: spacing the writes makes each its own batch,
        // so some are all but certain to be lost (1 in 2^120 runs would lose none).
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let names: Vec<String> = acked.keys().cloned().collect();
    let converged = cluster.wait_for_convergence(&names, LONG).await;
    for (key, version) in names.iter().zip(converged) {
        assert_eq!(version, Some(acked[key]), "{key}");
    }
    let total = |prefix: &str, containing: &str| -> u64 {
        cluster
            .regions
            .iter()
            .flat_map(|r| r.registry.render().lines().map(str::to_owned).collect::<Vec<_>>())
            .filter(|l| l.starts_with(prefix) && l.contains(containing))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let lost = total("edgekv_fault_effects_total", "effect=\"lost\"");
    assert!(lost > 0, "no delivery was lost, so this run shows nothing");
    // Every key is written once, so a lost write can only have arrived by anti-entropy.
    assert!(
        total("edgekv_anti_entropy_repaired_total", "") > 0,
        "lost deliveries were not repaired"
    );
}

/// A tombstone is not forgotten while a region that lacks the delete is cut off, even past its
/// grace period; once that region has it, the key stays deleted everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstone_outlives_its_grace_while_a_region_lacks_the_delete() {
    let cluster = TestCluster::builder()
        .delay("20ms")
        .tombstone_grace(Duration::from_millis(200))
        .start()
        .await;
    cluster.must_put("wnam", "k", "old");
    for name in cluster.names() {
        cluster.wait_for_value(&name, "k", Some("old"), LONG).await;
    }
    cluster.must_fault(Fault::Partition {
        a: vec!["weur".into()],
        b: vec!["wnam".into(), "enam".into()],
    });
    cluster.must_delete("wnam", "k");
    cluster.wait_for_value("enam", "k", None, LONG).await;
    // Well past the grace period, purges have run: the tombstone must still be there.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        cluster.entry("wnam", "k").is_some_and(|e| e.is_tombstone()),
        "tombstone collected too early"
    );
    assert_eq!(cluster.get("weur", "k").as_deref(), Some(&b"old"[..]));
    cluster.heal();
    cluster.wait_for_value("weur", "k", None, LONG).await;
    // Now every region has it, so it may be forgotten, and the key never comes back.
    cluster
        .wait_for(LONG, "the tombstone to be collected everywhere", || {
            cluster.names().iter().all(|n| cluster.entry(n, "k").is_none())
        })
        .await;
    for name in cluster.names() {
        assert_eq!(cluster.get(&name, "k"), None, "{name}");
    }
}

/// A region whose clock runs ahead sends writes its peers refuse (counted, retried later) rather
/// than let them drag their clocks forward.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_from_a_clock_too_far_ahead_are_refused_until_real_time_catches_up() {
    let cluster = TestCluster::builder().start().await;
    let id = cluster.must_fault(Fault::ClockOffset { region: "wnam".into(), offset_ms: 2_000 });
    let version = cluster.must_put("wnam", "k", "from the future");
    assert!(version.ts.physical_ms() >= wall_ms() + 1_500);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cluster.get("enam", "k"), None, "refused while 2 s ahead");
    let enam_clock = cluster.store("enam").hlc().now().physical_ms();
    assert!(enam_clock < wall_ms() + 500, "enam's clock was dragged forward");
    let rejected = cluster.region("enam").registry.render();
    assert!(rejected.contains("edgekv_replication_rejected_total{reason=\"skew\"}"), "{rejected}");
    cluster.faults.remove(id);
    // Once real time is within the bound of the write's timestamp, the retry succeeds.
    cluster.wait_for_value("enam", "k", Some("from the future"), LONG).await;
    assert!(wall_ms() + 500 >= version.ts.physical_ms());
}

/// While replication to a peer is paused, its writes wait in the outbox; resuming delivers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_replication_holds_writes_in_the_outbox() {
    let cluster = TestCluster::builder().start().await;
    let id = cluster.must_fault(Fault::Pause { from: "wnam".into(), to: "enam".into() });
    cluster.must_put("wnam", "k", "v");
    cluster.wait_for_value("weur", "k", Some("v"), LONG).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(cluster.get("enam", "k"), None);
    assert!(cluster.store("wnam").outbox_len() >= 1, "the write is kept for enam");
    cluster.faults.remove(id);
    cluster.wait_for_value("enam", "k", Some("v"), LONG).await;
}
