use std::time::Duration;

use edgekv_core::{ManualClock, Timestamp};

use super::*;
use edgekv_core::limits::MAX_NAMESPACES_PER_ACCOUNT;
use edgekv_core::Entry;
use edgekv_core::{AccountId, ItemId, NamespaceOrder};

const T0_MS: u64 = 1_700_000_000_000;

struct Fixture {
    clock: ManualClock,
    store: Store,
    account: AccountId,
    ns: NamespaceId,
}

fn fixture() -> Fixture {
    let clock = ManualClock::new(T0_MS);
    let hlc = Arc::new(Hlc::new(Arc::new(clock.clone()), Hlc::DEFAULT_MAX_DELTA));
    let config = StoreConfig {
        tombstone_grace: Duration::from_secs(3600),
        digest_horizon: Duration::from_secs(10),
        ..StoreConfig::for_test("wnam")
    };
    let store = Store::new(config, hlc);
    let account = AccountId::parse("acct").unwrap();
    let ns = store.create_namespace(&account, "ns").unwrap().id;
    Fixture { clock, store, account, ns }
}

fn put(key: &str, value: &str) -> WriteOp {
    WriteOp {
        key: key.into(),
        value: Some(Bytes::from(value.to_owned())),
        metadata: None,
        expiration: None,
    }
}

fn del(key: &str) -> WriteOp {
    WriteOp { key: key.into(), value: None, metadata: None, expiration: None }
}

impl Fixture {
    fn write(&self, ops: Vec<WriteOp>) -> Vec<WriteResult> {
        self.store.write(&self.account, &self.ns, ops).unwrap()
    }

    fn value(&self, key: &str) -> Option<Bytes> {
        self.store.get(&self.account, &self.ns, key).unwrap().and_then(|e| e.value)
    }

    fn names(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<String>, Option<String>) {
        let page = self.store.list_keys(&self.account, &self.ns, prefix, after, limit).unwrap();
        (page.keys.into_iter().map(|k| k.name).collect(), page.resume_after)
    }

    fn remote(&self, key: &str, value: Option<&str>, ts_ms: u64, region: &str) -> bool {
        let version = Version::new(Timestamp::from_physical_ms(ts_ms), region.parse().unwrap());
        let entry = Entry {
            value: value.map(|v| Bytes::from(v.to_owned())),
            metadata: None,
            expiration: None,
            version,
        };
        let write = ReplicatedWrite::Key {
            account: self.account.clone(),
            namespace: self.ns.clone(),
            key: key.into(),
            entry,
        };
        self.store.apply_replicated(write).unwrap()
    }
}

#[test]
fn local_writes_are_visible_at_once_and_get_increasing_versions() {
    let f = fixture();
    let v1 = f.write(vec![put("k", "one")])[0].version;
    let v2 = f.write(vec![put("k", "two")])[0].version;
    assert!(v2 > v1);
    assert_eq!(v1.origin.as_str(), "wnam");
    assert_eq!(f.value("k").as_deref(), Some(&b"two"[..]));
    f.write(vec![del("k")]);
    assert_eq!(f.value("k"), None);
}

#[test]
fn an_older_write_never_overwrites_a_newer_one() {
    let f = fixture();
    assert!(f.remote("k", Some("new"), T0_MS + 100, "enam"));
    assert!(!f.remote("k", Some("old"), T0_MS + 50, "weur"));
    assert!(!f.remote("k", Some("dup"), T0_MS + 100, "enam"), "an equal version is the same write");
    assert_eq!(f.value("k").as_deref(), Some(&b"new"[..]));
    // Same timestamp, greater region name wins.
    assert!(f.remote("k", Some("tie"), T0_MS + 100, "weur"));
    assert_eq!(f.value("k").as_deref(), Some(&b"tie"[..]));
}

#[test]
fn a_tombstone_beats_a_late_older_put() {
    let f = fixture();
    assert!(f.remote("k", None, T0_MS + 100, "enam"));
    assert!(!f.remote("k", Some("stale"), T0_MS + 10, "weur"));
    assert_eq!(f.value("k"), None);
    assert!(f.store.has_state(&f.ns, "k"), "the tombstone is kept");
}

#[test]
fn listing_is_in_utf8_byte_order_with_prefix_and_resume() {
    let f = fixture();
    let names = ["b", "a", "ab", "a/b", "Z", "é", "aa", "a:1"];
    f.write(names.iter().map(|n| put(n, "v")).collect());
    let (all, resume) = f.names("", None, 100);
    let mut expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    expected.sort(); // String order is byte order.
    assert_eq!(all, expected);
    assert_eq!(resume, None);

    assert_eq!(f.names("a", None, 100).0, ["a", "a/b", "a:1", "aa", "ab"]);
    let (first, resume) = f.names("a", None, 2);
    assert_eq!(
        (first.as_slice(), resume.as_deref()),
        (&["a".to_string(), "a/b".into()][..], Some("a/b"))
    );
    let (second, resume) = f.names("a", resume.as_deref(), 2);
    assert_eq!((second, resume.as_deref()), (vec!["a:1".to_string(), "aa".into()], Some("aa")));
    let (third, resume) = f.names("a", resume.as_deref(), 2);
    assert_eq!((third, resume), (vec!["ab".to_string()], None));
}

#[test]
fn a_full_last_page_reports_no_further_page() {
    let f = fixture();
    f.write(vec![put("a", "v"), put("b", "v"), put("c", "v"), del("c")]);
    assert_eq!(f.names("", None, 2), (vec!["a".to_string(), "b".into()], None));
}

#[test]
fn listing_skips_tombstones_and_expired_keys() {
    let f = fixture();
    let expiring = WriteOp { expiration: Some(T0_MS / 1000 + 60), ..put("c", "v") };
    f.write(vec![put("a", "v"), put("b", "v"), expiring, put("d", "v"), del("b")]);
    assert_eq!(f.names("", None, 10).0, ["a", "c", "d"]);
    f.clock.advance(Duration::from_secs(60));
    assert_eq!(f.names("", None, 10).0, ["a", "d"]);
    assert_eq!(f.value("c"), None, "expired keys are absent before they are purged");
}

#[test]
fn the_resume_point_is_stable_when_keys_change_between_pages() {
    let f = fixture();
    f.write(["a", "b", "c", "d"].iter().map(|n| put(n, "v")).collect());
    let (first, resume) = f.names("", None, 2);
    assert_eq!(first, ["a", "b"]);
    // A key inserted before the resume point and one deleted after it.
    f.write(vec![put("aa", "v"), del("c")]);
    assert_eq!(f.names("", resume.as_deref(), 2), (vec!["d".to_string()], None));
}

#[test]
fn expiry_leaves_a_tombstone_that_is_collected_after_the_grace_period() {
    let f = fixture();
    let expires_at = T0_MS / 1000 + 60;
    let v = f.write(vec![WriteOp { expiration: Some(expires_at), ..put("k", "v") }])[0].version;
    assert_eq!(f.store.purge(100), PurgeStats::default(), "nothing is due yet");

    f.clock.set_ms(expires_at * 1000);
    assert_eq!(f.store.purge(100), PurgeStats { expired: 1, collected: 0 });
    assert!(f.store.has_state(&f.ns, "k"));
    // A write older than the expired one must not bring an older value back.
    assert!(!f.remote("k", Some("older"), v.ts.physical_ms() - 1, "enam"));
    assert_eq!(f.value("k"), None);

    f.clock.advance(Duration::from_secs(3600));
    f.store.raise_watermark(v.origin, v.ts);
    assert_eq!(f.store.purge(100), PurgeStats { expired: 0, collected: 1 });
    assert!(!f.store.has_state(&f.ns, "k"));
    assert_eq!(f.store.pending_purges(), 0);
}

#[test]
fn a_rewritten_key_is_not_purged_by_its_old_schedule() {
    let f = fixture();
    let expires_at = T0_MS / 1000 + 60;
    f.write(vec![WriteOp { expiration: Some(expires_at), ..put("k", "old") }]);
    f.write(vec![put("k", "new")]);
    f.clock.set_ms(expires_at * 1000 + 1);
    assert_eq!(f.store.purge(100), PurgeStats::default());
    assert_eq!(f.value("k").as_deref(), Some(&b"new"[..]));
}

#[test]
fn namespace_titles_are_unique_per_account_and_accounts_are_isolated() {
    let f = fixture();
    assert_eq!(f.store.create_namespace(&f.account, "ns"), Err(StoreError::DuplicateTitle));
    let other = AccountId::parse("other").unwrap();
    let theirs = f.store.create_namespace(&other, "ns").unwrap();
    assert_eq!(f.store.get_namespace(&f.account, &theirs.id), Err(StoreError::NamespaceNotFound));
    assert_eq!(f.store.get(&f.account, &theirs.id, "k"), Err(StoreError::NamespaceNotFound));
    let titles = |a: &AccountId| -> Vec<String> {
        f.store
            .list_namespaces(a, NamespaceOrder::Title, false)
            .unwrap()
            .into_iter()
            .map(|r| r.title)
            .collect()
    };
    assert_eq!(titles(&f.account), ["ns"]);
    assert_eq!(titles(&other), ["ns"]);

    let second = f.store.create_namespace(&f.account, "second").unwrap();
    assert_eq!(
        f.store.rename_namespace(&f.account, &second.id, "ns"),
        Err(StoreError::DuplicateTitle)
    );
    let renamed = f.store.rename_namespace(&f.account, &second.id, "second").unwrap();
    assert!(renamed.version > second.version);
}

#[test]
fn deleting_a_namespace_removes_its_keys_and_frees_its_title() {
    let f = fixture();
    f.write(vec![put("k", "v")]);
    f.store.delete_namespace(&f.account, &f.ns).unwrap();
    assert_eq!(f.store.get(&f.account, &f.ns, "k"), Err(StoreError::NamespaceNotFound));
    assert_eq!(f.store.delete_namespace(&f.account, &f.ns), Err(StoreError::NamespaceNotFound));
    assert!(!f.store.has_state(&f.ns, "k"));
    let again = f.store.create_namespace(&f.account, "ns").unwrap();
    assert_ne!(again.id, f.ns);
}

#[test]
fn an_account_holds_at_most_1000_namespaces() {
    let f = fixture();
    for i in 1..MAX_NAMESPACES_PER_ACCOUNT {
        f.store.create_namespace(&f.account, &format!("n{i}")).unwrap();
    }
    assert_eq!(
        f.store.create_namespace(&f.account, "one more"),
        Err(StoreError::TooManyNamespaces)
    );
}

// ---- replication state ------------------------------------------------------------------------

fn store_at(region: &str, clock: &ManualClock) -> Store {
    let hlc = Arc::new(Hlc::new(Arc::new(clock.clone()), Hlc::DEFAULT_MAX_DELTA));
    let config = StoreConfig {
        tombstone_grace: Duration::from_secs(3600),
        digest_horizon: Duration::from_secs(10),
        ..StoreConfig::for_test(region)
    };
    Store::new(config, hlc)
}

#[test]
fn local_writes_enter_the_outbox_in_timestamp_order_until_compacted() {
    let f = fixture();
    f.write(vec![put("a", "1"), del("b")]);
    f.store.rename_namespace(&f.account, &f.ns, "renamed").unwrap();
    let log = f.store.outbox_after(Timestamp(0), 100);
    assert_eq!(log.len(), 4, "create, put, delete, rename");
    assert!(log.windows(2).all(|w| w[0].version() < w[1].version()));
    assert!(
        matches!(&log[1], ReplicatedWrite::Key { key, entry, .. } if key == "a" && entry.value.is_some())
    );
    assert!(
        matches!(&log[2], ReplicatedWrite::Key { key, entry, .. } if key == "b" && entry.is_tombstone())
    );
    assert!(matches!(&log[3], ReplicatedWrite::Namespace(r) if r.title == "renamed"));
    // Reading after a position only returns what follows it.
    assert_eq!(f.store.outbox_after(log[1].version().ts, 100), log[2..].to_vec());
    f.store.compact_outbox(log[2].version().ts);
    assert_eq!(f.store.outbox_len(), 1);
    // Replicated writes from elsewhere are not ours to send on.
    f.remote("z", Some("theirs"), T0_MS + 1_000, "enam");
    assert_eq!(f.store.outbox_len(), 1);
}

/// Writes replayed into another region in any order, duplicated, produce the same state.
#[test]
fn a_region_replaying_anothers_outbox_in_any_order_converges_to_it() {
    let clock = ManualClock::new(T0_MS);
    let origin = store_at("wnam", &clock);
    let account = AccountId::parse("acct").unwrap();
    let ns = origin.create_namespace(&account, "ns").unwrap();
    origin
        .write(&account, &ns.id, vec![put("a", "1"), put("b", "2"), put("a", "3"), del("b")])
        .unwrap();
    origin.write(&account, &ns.id, vec![put("c", "4")]).unwrap();
    let mut log = origin.outbox_after(Timestamp(0), 100);

    let replica = store_at("enam", &clock);
    log.reverse(); // The namespace create arrives last: its keys wait in a placeholder.
    log.push(log[0].clone());
    for (i, write) in log.iter().enumerate() {
        replica.apply_replicated(write.clone()).unwrap();
        if i == 0 {
            assert_eq!(replica.get_namespace(&account, &ns.id), Err(StoreError::NamespaceNotFound));
        }
    }
    assert_eq!(replica.get_namespace(&account, &ns.id).unwrap(), ns);
    for key in ["a", "b", "c"] {
        let mine = origin.get(&account, &ns.id, key).unwrap();
        assert_eq!(replica.get(&account, &ns.id, key).unwrap(), mine, "{key}");
    }
    assert!(!replica.apply_replicated(log[1].clone()).unwrap(), "a replay changes nothing");

    clock.advance(Duration::from_secs(10));
    origin.mature();
    replica.mature();
    assert_eq!(origin.digest_len(), 3, "the namespace record and the live keys a and c");
    assert_eq!(replica.digest_root(), origin.digest_root());
}

#[test]
fn a_replicated_namespace_delete_removes_its_keys_and_refuses_late_ones() {
    let clock = ManualClock::new(T0_MS);
    let origin = store_at("wnam", &clock);
    let replica = store_at("enam", &clock);
    let account = AccountId::parse("acct").unwrap();
    let ns = origin.create_namespace(&account, "ns").unwrap();
    origin.write(&account, &ns.id, vec![put("a", "1")]).unwrap();
    let early = origin.outbox_after(Timestamp(0), 100);
    origin.delete_namespace(&account, &ns.id).unwrap();
    let delete = origin.outbox_after(early[1].version().ts, 100);

    replica.apply_replicated(early[0].clone()).unwrap();
    replica.apply_replicated(delete[0].clone()).unwrap();
    assert_eq!(replica.get_namespace(&account, &ns.id), Err(StoreError::NamespaceNotFound));
    assert!(!replica.apply_replicated(early[1].clone()).unwrap(), "the put predates the delete");
    assert!(!replica.has_state(&ns.id, "a"));
    // A replicated write may not move a namespace into another account.
    let ReplicatedWrite::Key { namespace, key, entry, .. } = early[1].clone() else { panic!() };
    let hijack =
        ReplicatedWrite::Key { account: AccountId::parse("other").unwrap(), namespace, key, entry };
    assert!(matches!(replica.apply_replicated(hijack), Err(StoreError::AccountMismatch(_))));
}

#[test]
fn versions_enter_the_digest_only_after_the_horizon_and_tombstones_never() {
    let f = fixture();
    f.write(vec![put("a", "1"), put("b", "2")]);
    f.store.mature();
    assert_eq!(f.store.digest_len(), 0, "younger than the horizon");
    f.clock.advance(Duration::from_secs(10));
    f.store.mature();
    assert_eq!(f.store.digest_len(), 3, "namespace record, a, b");
    let root = f.store.digest_root();
    f.write(vec![del("a")]);
    assert_eq!(f.store.digest_len(), 2, "a delete takes the key out at once");
    assert_ne!(f.store.digest_root(), root);
    // A write that arrives already older than the horizon enters at once.
    f.remote("late", Some("v"), T0_MS - 1_000, "enam");
    assert_eq!(f.store.digest_len(), 3);
    let members = f.store.digest_members(&[edgekv_core::digest::leaf_of(
        "acct",
        f.ns.as_str(),
        Some("late"),
    )]);
    assert!(members.iter().any(|(item, _)| item.key.as_deref() == Some("late")));
}

#[test]
fn a_tombstone_is_collected_only_once_every_region_has_its_delete() {
    let f = fixture();
    let v = f.write(vec![del("k")])[0].version;
    f.clock.advance(Duration::from_secs(3600));
    assert_eq!(f.store.purge(100).collected, 0, "no watermark yet");
    assert!(f.store.has_state(&f.ns, "k"));
    f.store.raise_watermark(v.origin, Timestamp(v.ts.0 - 1));
    f.clock.advance(Duration::from_secs(10));
    assert_eq!(f.store.purge(100).collected, 0, "the watermark is below the delete");
    f.store.raise_watermark(v.origin, v.ts);
    f.clock.advance(Duration::from_secs(10));
    assert_eq!(f.store.purge(100).collected, 1);
    assert!(!f.store.has_state(&f.ns, "k"));
}

#[test]
fn current_returns_tombstones_and_records() {
    let f = fixture();
    f.write(vec![put("a", "1"), del("b")]);
    let item = |key: Option<&str>| ItemId {
        account: f.account.clone(),
        namespace: f.ns.clone(),
        key: key.map(String::from),
    };
    assert!(
        matches!(f.store.current(&item(Some("b"))), Some(ReplicatedWrite::Key { entry, .. }) if entry.is_tombstone())
    );
    assert!(
        matches!(f.store.current(&item(None)), Some(ReplicatedWrite::Namespace(r)) if r.title == "ns")
    );
    assert_eq!(f.store.current(&item(Some("missing"))), None);
}

/// More tombstones than the skip budget before the first live key: the page still holds that
/// key, because an empty page with a cursor would end an SDK's pagination early.
#[test]
fn a_listing_never_returns_an_empty_page_before_the_end() {
    let f = fixture();
    let dead: Vec<WriteOp> = (0..LIST_SKIP_BUDGET + 5).map(|i| del(&format!("a{i:07}"))).collect();
    f.write(dead);
    f.write(vec![put("b-live", "v"), put("c-live", "v")]);
    assert_eq!(f.names("", None, 10), (vec!["b-live".to_string(), "c-live".into()], None));
}

/// The incremental digest always equals one rebuilt from scratch, also while writers, deletes
/// and the maturing tick run at the same time over the same few keys.
#[test]
fn the_incremental_digest_matches_a_rebuild_under_concurrent_writes() {
    let f = fixture();
    let store = Arc::new(f.store);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..3u32)
        .map(|t| {
            let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
            let (account, ns) = (f.account.clone(), f.ns.clone());
            std::thread::spawn(move || {
                let mut i = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let key = format!("k{}", (i * 7 + t) % 20);
                    let op = if i.is_multiple_of(3) { del(&key) } else { put(&key, "v") };
                    store.write(&account, &ns, vec![op]).unwrap();
                    i += 1;
                }
            })
        })
        .collect();
    // Every write matures 10 s (the horizon) after it is made; advancing 5 ms per tick keeps a
    // stream of versions maturing while they are being replaced.
    for _ in 0..20_000 {
        f.clock.advance(Duration::from_millis(5));
        store.mature();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    f.clock.advance(Duration::from_secs(60));
    store.mature();
    assert_eq!(store.digest_root(), store.rebuilt_digest_root());
    let live = store.list_keys(&f.account, &f.ns, "", None, 1000).unwrap().keys.len() as u64;
    assert_eq!(store.digest_len(), live + 1, "the live keys and the namespace record");
}
