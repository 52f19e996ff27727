//! The durable store across reopenings: what survives, the clock floor, the outbox and
//! delivery positions, and the errors a damaged or foreign directory gives.

use std::time::Duration;

use edgekv_core::{ManualClock, Timestamp};

use super::*;
use edgekv_core::AccountId;
use edgekv_core::Entry;

const T0_MS: u64 = 1_700_000_000_000;

fn config() -> StoreConfig {
    StoreConfig {
        tombstone_grace: Duration::from_secs(3600),
        digest_horizon: Duration::from_secs(10),
        ..StoreConfig::for_test("wnam")
    }
}

fn open_at(dir: &Path, clock: &ManualClock) -> (Store, Recovered) {
    let hlc = Arc::new(Hlc::new(Arc::new(clock.clone()), Hlc::DEFAULT_MAX_DELTA));
    Store::open(config(), hlc, dir, Durability::Fsync).expect("open the store")
}

fn put(key: &str, value: &str) -> WriteOp {
    WriteOp {
        key: key.into(),
        value: Some(Bytes::from(value.to_owned())),
        metadata: Some(Bytes::from_static(br#"{"m":1}"#)),
        expiration: None,
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    // The flush future needs no runtime: the syncer thread wakes it.
    struct Thread(std::thread::Thread);
    impl std::task::Wake for Thread {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Thread(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => return out,
            std::task::Poll::Pending => std::thread::park_timeout(Duration::from_millis(50)),
        }
    }
}

#[test]
fn entries_tombstones_and_namespaces_survive_a_reopen_with_the_clock_set_back() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0_MS);
    let account = AccountId::parse("acct").unwrap();
    let (ns, last) = {
        let (store, _) = open_at(dir.path(), &clock);
        let ns = store.create_namespace(&account, "ns").unwrap().id;
        store.write(&account, &ns, vec![put("a", "1"), put("b", "2")]).unwrap();
        let del = WriteOp { key: "b".into(), value: None, metadata: None, expiration: None };
        let last = store.write(&account, &ns, vec![del]).unwrap()[0].version;
        block_on(store.flushed()).unwrap();
        // Dropped without close(): as after a crash, only what was committed counts.
        (ns, last)
    };
    clock.set_ms(T0_MS - 3_600_000);
    let (store, recovered) = open_at(dir.path(), &clock);
    assert_eq!((recovered.namespaces, recovered.keys), (1, 2));
    assert!(recovered.clock_floor >= last.ts);
    let a = store.get(&account, &ns, "a").unwrap().expect("a survives");
    assert_eq!(a.value.as_deref(), Some(&b"1"[..]));
    assert_eq!(a.metadata.as_deref(), Some(&br#"{"m":1}"#[..]));
    assert_eq!(store.get(&account, &ns, "b").unwrap(), None);
    assert!(store.has_state(&ns, "b"), "the delete is kept as a tombstone");
    let next = store.write(&account, &ns, vec![put("a", "2")]).unwrap()[0].version;
    assert!(next > last, "{next} must follow {last} although the clock went back an hour");
    // A late older write from another region still loses to the recovered tombstone.
    let stale = ReplicatedWrite::Key {
        account: account.clone(),
        namespace: ns.clone(),
        key: "b".into(),
        entry: Entry {
            value: Some(Bytes::from_static(b"old")),
            metadata: None,
            expiration: None,
            version: Version::new(Timestamp(last.ts.0 - 1), "enam".parse().unwrap()),
        },
    };
    assert!(!store.apply_replicated(stale).unwrap());
    assert_eq!(store.get(&account, &ns, "b").unwrap(), None);
}

#[test]
fn the_outbox_and_delivery_positions_survive_and_the_digest_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0_MS);
    let account = AccountId::parse("acct").unwrap();
    let (first, root) = {
        let (store, _) = open_at(dir.path(), &clock);
        let ns = store.create_namespace(&account, "ns").unwrap().id;
        let first = store.write(&account, &ns, vec![put("a", "1")]).unwrap()[0].version;
        store.write(&account, &ns, vec![put("b", "2"), put("c", "3")]).unwrap();
        store.save_delivery_position("enam", first.ts);
        // Local writes are shown (and so digested) once durable.
        block_on(store.flushed()).unwrap();
        clock.advance(Duration::from_secs(11));
        store.mature();
        assert_eq!(store.digest_len(), 4);
        store.close().unwrap();
        (first, store.digest_root())
    };
    let (store, recovered) = open_at(dir.path(), &clock);
    assert!(recovered.outbox_last.is_some());
    assert_eq!(store.delivery_position("enam"), first.ts);
    let pending: Vec<String> = store
        .outbox_after(store.delivery_position("enam"), 100)
        .iter()
        .filter_map(|w| match w {
            ReplicatedWrite::Key { key, .. } => Some(key.clone()),
            ReplicatedWrite::Namespace(_) => None,
        })
        .collect();
    assert_eq!(pending, ["b", "c"], "delivery resumes after the saved position");
    assert_eq!(store.digest_root(), root, "the rebuilt digest equals the one before");
    assert_eq!(store.digest_root(), store.rebuilt_digest_root());
    // Compaction removes delivered records for good.
    store.compact_outbox(Timestamp(u64::MAX - 1));
    store.close().unwrap();
    drop(store);
    let (store, _) = open_at(dir.path(), &clock);
    assert!(store.outbox_after(Timestamp(0), 100).is_empty());
}

#[test]
fn a_namespace_delete_removes_its_keys_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0_MS);
    let account = AccountId::parse("acct").unwrap();
    {
        let (store, _) = open_at(dir.path(), &clock);
        let ns = store.create_namespace(&account, "ns").unwrap().id;
        store.write(&account, &ns, vec![put("a", "1")]).unwrap();
        store.delete_namespace(&account, &ns).unwrap();
        store.close().unwrap();
    }
    let (_store, recovered) = open_at(dir.path(), &clock);
    assert_eq!((recovered.namespaces, recovered.keys), (1, 0));
}

#[test]
fn a_directory_of_another_region_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0_MS);
    drop(open_at(dir.path(), &clock));
    let hlc = Arc::new(Hlc::new(Arc::new(clock), Hlc::DEFAULT_MAX_DELTA));
    let other = StoreConfig { region: "enam".parse().unwrap(), ..config() };
    let err = Store::open(other, hlc, dir.path(), Durability::Fsync).unwrap_err().to_string();
    assert!(err.contains("wnam") && err.contains("enam"), "{err}");
}

#[test]
fn an_undecodable_record_is_an_error_naming_its_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (disk, _) = Disk::open(
            dir.path(),
            "wnam".parse().unwrap(),
            Durability::Fsync,
            Reserve::default(),
            crate::DEFAULT_ENGINE_MEMORY,
        )
        .unwrap();
        let key = Disk::item_key(&NamespaceId::random(), "k");
        disk.items.insert(key, b"\x01garbage".as_slice()).unwrap();
        disk.close().unwrap();
    }
    let clock = ManualClock::new(T0_MS);
    let hlc = Arc::new(Hlc::new(Arc::new(clock), Hlc::DEFAULT_MAX_DELTA));
    let err = Store::open(config(), hlc, dir.path(), Durability::Fsync).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, OpenError::Corrupt { .. }), "{text}");
    assert!(text.contains(&dir.path().display().to_string()) && text.contains("items"), "{text}");
}

#[test]
fn concurrent_writers_share_group_commits_and_every_acknowledged_write_survives() {
    const WRITERS: usize = 8;
    const EACH: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0_MS);
    let account = AccountId::parse("acct").unwrap();
    let ns = {
        let (store, _) = open_at(dir.path(), &clock);
        let ns = store.create_namespace(&account, "ns").unwrap().id;
        block_on(store.flushed()).unwrap();
        let before = store.fsyncs();
        std::thread::scope(|s| {
            for w in 0..WRITERS {
                let (store, account, ns) = (&store, &account, &ns);
                s.spawn(move || {
                    for i in 0..EACH {
                        store.write(account, ns, vec![put(&format!("w{w}-{i}"), "v")]).unwrap();
                        block_on(store.flushed()).unwrap();
                    }
                });
            }
        });
        let (writes, fsyncs) = ((WRITERS * EACH) as u64, store.fsyncs() - before);
        // One fsync per write would mean no group ever held two writers.
        assert!(fsyncs < writes, "{fsyncs} fsyncs for {writes} concurrent writes");
        // Dropped without close(): only what the group commits made durable counts.
        ns
    };
    let (store, _) = open_at(dir.path(), &clock);
    for w in 0..WRITERS {
        for i in 0..EACH {
            let key = format!("w{w}-{i}");
            let entry = store.get(&account, &ns, &key).unwrap();
            assert_eq!(entry.and_then(|e| e.value), Some(Bytes::from_static(b"v")), "{key}");
        }
    }
}

/// A region that lost its disk gets its own earlier writes back from its peers. They carry its
/// name and were stamped by the process that died, so none of them is a local write still in
/// its group commit: the new store shows them, logs their applies and digests them at once,
/// even if it never writes anything itself (its group commits then never pass them).
#[test]
fn a_wiped_regions_own_earlier_writes_from_a_peer_are_shown_logged_and_digested() {
    let account = AccountId::parse("acct").unwrap();
    let clock = ManualClock::new(T0_MS);
    let lost = tempfile::tempdir().unwrap();
    let (old, _) = open_at(lost.path(), &clock);
    let record = old.create_namespace(&account, "ns").unwrap();
    let version = old.write(&account, &record.id, vec![put("a", "1")]).unwrap()[0].version;
    block_on(old.flushed()).unwrap();
    clock.advance(Duration::from_secs(5));

    let fresh = tempfile::tempdir().unwrap();
    let (store, _) = open_at(fresh.path(), &clock);
    store.enable_apply_log(100, Arc::new(clock.clone()));
    let entry = Entry {
        value: Some(Bytes::from_static(b"1")),
        metadata: Some(Bytes::from_static(br#"{"m":1}"#)),
        expiration: None,
        version,
    };
    let key = ReplicatedWrite::Key {
        account: account.clone(),
        namespace: record.id.clone(),
        key: "a".into(),
        entry,
    };
    assert!(store.apply_replicated(ReplicatedWrite::Namespace(record.clone())).unwrap());
    assert!(store.apply_replicated(key).unwrap());
    block_on(store.flushed()).unwrap();

    let a = store.get(&account, &record.id, "a").unwrap().expect("the region's own write shows");
    assert_eq!(a.value.as_deref(), Some(&b"1"[..]));
    let listed = store.list_namespaces(&account, edgekv_core::NamespaceOrder::Id, false).unwrap();
    assert_eq!(listed, [record], "the namespace it created before shows too");
    let page = store.applies_after(0, 10).unwrap();
    let logged: Vec<(&str, Version)> = page.events.iter().map(|e| (&*e.key, e.version)).collect();
    assert_eq!(logged, [("a", version)], "the apply is logged and the log goes on past it");
    clock.advance(Duration::from_secs(11));
    old.mature();
    store.mature();
    assert_eq!(store.digest_root(), old.digest_root(), "both hold the same, digested");
}
