//! The durable store when its disk fails it: a local write is shown only once its group
//! commit is durable, a write refused by a failed group commit is never shown nor sent, and
//! the store reopens with the refused writes undone even where the failed group reached the
//! disk after all.

use std::time::Duration;

use edgekv_core::ManualClock;

use super::*;
use edgekv_core::{AccountId, ItemId, NamespaceOrder};

const T0_MS: u64 = 1_700_000_000_000;

fn open_at(dir: &Path, clock: &ManualClock) -> Store {
    let hlc = Arc::new(Hlc::new(Arc::new(clock.clone()), Hlc::DEFAULT_MAX_DELTA));
    let config = StoreConfig {
        tombstone_grace: Duration::from_secs(3600),
        digest_horizon: Duration::from_secs(10),
        ..StoreConfig::for_test("wnam")
    };
    Store::open(config, hlc, dir, Durability::Fsync).expect("open the store").0
}

fn put(key: &str, value: &str) -> WriteOp {
    WriteOp {
        key: key.into(),
        value: Some(Bytes::from(value.to_owned())),
        metadata: Some(Bytes::from(format!(r#"{{"v":"{value}"}}"#))),
        expiration: None,
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
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

struct Fixture {
    _dir: tempfile::TempDir,
    clock: ManualClock,
    store: Store,
    account: AccountId,
    ns: NamespaceId,
}

/// A durable store with namespace `ns` holding `a = 1`, all of it durable.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0_MS);
    let store = open_at(dir.path(), &clock);
    let account = AccountId::parse("acct").unwrap();
    let ns = store.create_namespace(&account, "ns").unwrap().id;
    store.write(&account, &ns, vec![put("a", "1")]).unwrap();
    block_on(store.flushed()).unwrap();
    Fixture { _dir: dir, clock, store, account, ns }
}

impl Fixture {
    fn disk(&self) -> parking_lot::RwLockReadGuard<'_, Option<Disk>> {
        self.store.disk()
    }

    fn value(&self, key: &str) -> Option<String> {
        let entry = self.store.get(&self.account, &self.ns, key).unwrap()?;
        Some(String::from_utf8(entry.value.unwrap().to_vec()).unwrap())
    }

    fn listed(&self) -> Vec<(String, Option<Bytes>)> {
        let page = self.store.list_keys(&self.account, &self.ns, "", None, 100).unwrap();
        page.keys.into_iter().map(|k| (k.name, k.metadata)).collect()
    }

    fn outbox_versions(&self) -> Vec<Version> {
        self.store.outbox_after(Timestamp(0), 100).iter().map(ReplicatedWrite::version).collect()
    }

    fn current(&self, key: &str) -> Option<Version> {
        let item = ItemId {
            account: self.account.clone(),
            namespace: self.ns.clone(),
            key: Some(key.to_owned()),
        };
        self.store.current(&item).map(|w| w.version())
    }
}

#[test]
fn a_local_write_is_shown_only_once_its_group_commit_is_durable() {
    let f = fixture();
    f.disk().as_ref().unwrap().hold_groups(true);
    let v2 = f.store.write(&f.account, &f.ns, vec![put("a", "2"), put("new", "x")]).unwrap();
    assert_eq!(f.value("a").as_deref(), Some("1"), "not durable yet: the old value is read");
    assert_eq!(f.value("new"), None);
    let listed = f.listed();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].1.as_deref(), Some(&br#"{"v":"1"}"#[..]), "the durable metadata");
    assert!(!f.outbox_versions().contains(&v2[0].version), "not sent to peers yet");
    assert!(f.current("a").is_some_and(|v| v < v2[0].version), "nor to anti-entropy");
    f.disk().as_ref().unwrap().hold_groups(false);
    block_on(f.store.flushed()).unwrap();
    assert_eq!(f.value("a").as_deref(), Some("2"));
    assert_eq!(f.value("new").as_deref(), Some("x"));
    assert!(f.outbox_versions().contains(&v2[0].version));
    assert_eq!(f.current("a"), Some(v2[0].version));
}

#[test]
fn a_write_refused_by_a_failed_group_commit_is_never_shown_and_is_undone_on_reopen() {
    let f = fixture();
    let before = f.outbox_versions();
    f.disk().as_ref().unwrap().fail_next_group();
    let refused = f.store.write(&f.account, &f.ns, vec![put("a", "2"), put("b", "2")]).unwrap();
    let err = block_on(f.store.flushed()).unwrap_err();
    assert!(matches!(err, StoreError::Storage { .. }), "{err:?}");
    // Never shown: not to readers, listings, peers or anti-entropy.
    assert_eq!(f.value("a").as_deref(), Some("1"));
    assert_eq!(f.value("b"), None);
    assert_eq!(f.listed().len(), 1);
    assert_eq!(f.outbox_versions(), before);
    assert!(f.current("a").is_some_and(|v| v < refused[0].version));
    assert_eq!(f.current("b"), None);
    // Further writes are refused up front; readiness says why.
    let more = f.store.write(&f.account, &f.ns, vec![put("c", "3")]);
    assert!(matches!(more, Err(StoreError::Unavailable(_))), "{more:?}");
    assert!(f.store.create_namespace(&f.account, "other").is_err());
    let reason = f.store.health().unwrap_err();
    assert!(reason.contains("injected"), "{reason}");

    // The failed group did reach the disk (the failure came after its fsync): reopening must
    // put the durable state back rather than resurrect what was refused.
    assert!(f.store.recover_storage().unwrap());
    f.store.health().unwrap();
    assert_eq!(f.value("a").as_deref(), Some("1"));
    assert_eq!(f.value("b"), None);
    assert_eq!(f.outbox_versions(), before, "the refused writes' outbox records are gone");
    let v3 = f.store.write(&f.account, &f.ns, vec![put("a", "3")]).unwrap();
    block_on(f.store.flushed()).unwrap();
    assert!(v3[0].version > refused[1].version, "versions keep increasing");
    assert_eq!(f.value("a").as_deref(), Some("3"));

    // And so it stays across a restart.
    let dir = f.store.data_dir().unwrap().to_path_buf();
    f.store.close().unwrap();
    let Fixture { _dir, clock, account, ns, store } = f;
    drop(store);
    let store = open_at(&dir, &clock);
    let get = |key: &str| store.get(&account, &ns, key).unwrap().map(|e| e.value.unwrap());
    assert_eq!(get("a").as_deref(), Some(&b"3"[..]));
    assert_eq!(get("b"), None);
}

#[test]
fn a_refused_namespace_delete_keeps_the_namespace_and_its_keys() {
    let f = fixture();
    f.disk().as_ref().unwrap().fail_next_group();
    f.store.delete_namespace(&f.account, &f.ns).unwrap();
    assert!(block_on(f.store.flushed()).is_err());
    assert_eq!(f.value("a").as_deref(), Some("1"), "the delete was refused");
    f.store.purge(100);
    assert_eq!(f.value("a").as_deref(), Some("1"), "its keys are not dropped");
    assert!(f.store.recover_storage().unwrap());
    assert_eq!(f.store.get_namespace(&f.account, &f.ns).unwrap().title, "ns");
    assert_eq!(f.value("a").as_deref(), Some("1"));
}

#[test]
fn a_refused_namespace_create_never_appears() {
    let f = fixture();
    f.disk().as_ref().unwrap().fail_next_group();
    let refused = f.store.create_namespace(&f.account, "refused").unwrap();
    assert!(block_on(f.store.flushed()).is_err());
    let titles = |store: &Store| -> Vec<String> {
        let listed = store.list_namespaces(&f.account, NamespaceOrder::Title, false).unwrap();
        listed.into_iter().map(|r| r.title).collect()
    };
    assert_eq!(titles(&f.store), ["ns"]);
    assert!(f.store.get_namespace(&f.account, &refused.id).is_err());
    assert!(f.store.recover_storage().unwrap());
    assert_eq!(titles(&f.store), ["ns"]);
    assert!(f.store.get_namespace(&f.account, &refused.id).is_err());
    // Its title is free again.
    f.store.create_namespace(&f.account, "refused").unwrap();
    block_on(f.store.flushed()).unwrap();
    assert_eq!(titles(&f.store), ["ns", "refused"]);
    let _ = f.clock;
}

#[test]
fn a_durable_local_delete_drops_its_keys() {
    let f = fixture();
    f.store.delete_namespace(&f.account, &f.ns).unwrap();
    block_on(f.store.flushed()).unwrap();
    assert!(f.store.get(&f.account, &f.ns, "a").is_err());
    f.store.purge(100);
    assert!(!f.store.has_state(&f.ns, "a"), "dropped once the delete is durable");
}

#[test]
fn an_apply_event_of_a_local_write_carries_the_time_it_was_shown() {
    let f = fixture();
    f.store.enable_apply_log(100, Arc::new(edgekv_core::SystemClock));
    f.disk().as_ref().unwrap().hold_groups(true);
    let written = f.store.write(&f.account, &f.ns, vec![put("a", "2")]).unwrap()[0].version;
    let page = f.store.applies_after(0, 100).unwrap();
    assert!(page.events.is_empty(), "not readable yet, so not reported yet: {page:?}");
    assert_eq!(page.next, 0, "asked again from the same place");
    let released = crate::applies::system_now_us();
    f.disk().as_ref().unwrap().hold_groups(false);
    block_on(f.store.flushed()).unwrap();
    let page = f.store.applies_after(0, 100).unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].version, written);
    assert!(page.events[0].system_us >= released, "stamped when shown, not when logged");
    assert_eq!(page.next, 1);
    // A write its store's failure refused is left out: it was never shown.
    f.disk().as_ref().unwrap().fail_next_group();
    f.store.write(&f.account, &f.ns, vec![put("a", "3")]).unwrap();
    assert!(block_on(f.store.flushed()).is_err());
    let page = f.store.applies_after(1, 100).unwrap();
    assert!(page.events.is_empty() && page.next == 2, "{page:?}");
}
