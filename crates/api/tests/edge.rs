//! The edge seen from both APIs of one region: the REST API reads the store and so sees a
//! replicated write the binding's cache still hides (unless the region caches REST reads
//! too), the write rate applies to both, and a write through either replaces the region's
//! cached copy.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use bytes::Bytes;
use edgekv_api::{ApiMetrics, AppState, Auth, Edge, EdgeConfig};
use edgekv_core::{
    AccountId, Entry, Hlc, ManualClock, NamespaceId, PhysicalClock, ReplicatedWrite, Timestamp,
    Version,
};
use edgekv_metrics::Registry;
use edgekv_store::{Store, StoreConfig};
use http_body_util::BodyExt;
use tower::ServiceExt;

const TOKEN: &str = "edge-token";

struct Region {
    rest: edgekv_api::App,
    binding: edgekv_api::App,
    clock: ManualClock,
    store: Arc<Store>,
    account: AccountId,
    ns: NamespaceId,
    registry: Registry,
}

fn region(edge: EdgeConfig) -> Region {
    let clock = ManualClock::new(1_700_000_000_000);
    let hlc = Arc::new(Hlc::new(Arc::new(clock.clone()), Hlc::DEFAULT_MAX_DELTA));
    let store = Arc::new(Store::new(StoreConfig::for_test("wnam"), hlc));
    store.disable_outbox();
    let account = AccountId::parse("acct").expect("an account");
    let ns = store.create_namespace(&account, "edge").expect("a namespace").id;
    let registry = Registry::default();
    let state = Arc::new(AppState {
        store: Arc::clone(&store),
        auth: Auth::new([TOKEN.to_owned()]),
        metrics: ApiMetrics::register(&registry),
        budget: edgekv_api::BodyBudget::new(64 << 20),
        edge: Edge::new(edge, &registry),
    });
    Region {
        rest: edgekv_api::app(Arc::clone(&state)),
        binding: edgekv_api::binding::app(state),
        clock,
        store,
        account,
        ns,
        registry,
    }
}

struct Reply {
    status: u16,
    headers: axum::http::HeaderMap,
    body: Bytes,
}

impl Region {
    async fn call(&self, app: &edgekv_api::App, method: &str, uri: &str, body: &str) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("edgekv-namespace", self.ns.to_string())
            .body(Body::from(body.to_owned()))
            .expect("a request");
        let response = app.clone().oneshot(request).await.expect("answered");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("a body").to_bytes();
        Reply { status: parts.status.as_u16(), headers: parts.headers, body }
    }

    fn rest_value(&self, key: &str) -> String {
        format!(
            "/client/v4/accounts/{}/storage/kv/namespaces/{}/values/{key}",
            self.account, self.ns
        )
    }

    async fn rest_get(&self, key: &str) -> Reply {
        self.call(&self.rest, "GET", &self.rest_value(key), "").await
    }

    async fn rest_put(&self, key: &str, value: &str) -> Reply {
        self.call(&self.rest, "PUT", &self.rest_value(key), value).await
    }

    async fn binding_get(&self, key: &str) -> Reply {
        self.call(&self.binding, "GET", &format!("/{key}?urlencoded=true"), "").await
    }

    fn replicate(&self, key: &str, value: &str) {
        let ts = Timestamp::from_physical_ms(self.clock.now_ms() + 1);
        let write = ReplicatedWrite::Key {
            account: self.account.clone(),
            namespace: self.ns.clone(),
            key: key.to_owned(),
            entry: Entry {
                value: Some(Bytes::from(value.to_owned())),
                metadata: None,
                expiration: None,
                version: Version::new(ts, "enam".parse().expect("a region")),
            },
        };
        assert!(self.store.apply_replicated(write).expect("applied"));
    }
}

#[tokio::test]
async fn the_rest_api_reads_the_store_while_the_binding_serves_its_cache() {
    let region = region(EdgeConfig::WORKERS_KV);
    region.replicate("k", "v1");
    assert_eq!(region.binding_get("k").await.body, "v1");
    region.clock.advance(Duration::from_millis(1));
    region.replicate("k", "v2");
    let cached = region.binding_get("k").await;
    assert_eq!(cached.body, "v1");
    assert_eq!(cached.headers["cf-cache-status"], "HIT");
    let rest = region.rest_get("k").await;
    assert_eq!(rest.body, "v2", "the REST API reads the store");
    assert!(!rest.headers.contains_key("cf-cache-status"));
    let text = region.registry.render();
    assert!(text.contains("edgekv_edge_cache_hits_total{kind=\"get\"} 1"), "{text}");
    assert!(text.contains("edgekv_edge_cache_misses_total{kind=\"get\"} 1"), "{text}");
    assert!(text.contains("edgekv_edge_cache_entries 1"), "{text}");
}

#[tokio::test]
async fn a_region_set_to_cache_rest_reads_serves_them_stale_too() {
    let region = region(EdgeConfig { rest_cache: true, ..EdgeConfig::WORKERS_KV });
    assert_eq!(region.rest_put("k", "v1").await.status, 200);
    assert_eq!(region.rest_get("k").await.body, "v1");
    region.replicate("k", "v2");
    let cached = region.rest_get("k").await;
    assert_eq!(cached.body, "v1", "served from the cache");
    assert_eq!(cached.headers["cf-cache-status"], "HIT", "and says so");
    assert_eq!(region.binding_get("k").await.body, "v1", "one cache for both APIs");
    region.clock.advance(Duration::from_secs(60));
    assert_eq!(region.rest_get("k").await.body, "v2");
}

#[tokio::test]
async fn a_rest_write_replaces_what_the_binding_cached() {
    let region = region(EdgeConfig::WORKERS_KV);
    assert_eq!(region.binding_get("k").await.status, 404);
    assert_eq!(region.rest_put("k", "written").await.status, 200);
    let read = region.binding_get("k").await;
    assert_eq!((read.status, read.body.as_ref()), (200, &b"written"[..]));
}

#[tokio::test]
async fn the_write_rate_holds_on_the_rest_api_with_cloudflares_envelope() {
    let region = region(EdgeConfig::WORKERS_KV);
    assert_eq!(region.rest_put("k", "1").await.status, 200);
    let refused = region.rest_put("k", "2").await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(refused.headers["x-should-retry"], "true");
    let body: serde_json::Value = serde_json::from_slice(&refused.body).expect("JSON");
    assert_eq!(body["errors"][0]["code"], 10000, "{body}");
    // Through the binding the same key is taken too.
    let binding = region.call(&region.binding, "PUT", "/k?urlencoded=true", "3").await;
    assert_eq!(binding.status, 429);
    assert_eq!(region.rest_get("k").await.body, "1", "refused writes are never stored");
    // A bulk write that touches a taken key is refused whole.
    let bulk =
        format!("/client/v4/accounts/{}/storage/kv/namespaces/{}/bulk", region.account, region.ns);
    let items = r#"[{"key":"fresh","value":"a"},{"key":"k","value":"b"}]"#;
    assert_eq!(region.call(&region.rest, "PUT", &bulk, items).await.status, 429);
    assert_eq!(region.rest_get("fresh").await.status, 404);
    region.clock.advance(Duration::from_secs(1));
    assert_eq!(region.call(&region.rest, "PUT", &bulk, items).await.status, 200);
    assert_eq!(region.rest_get("k").await.body, "b");
    assert!(region.registry.render().contains("edgekv_write_rate_limited_total 3"));
}

#[tokio::test]
async fn with_the_edge_off_every_read_sees_the_store_and_writes_are_not_limited() {
    let region = region(EdgeConfig::OFF);
    assert_eq!(region.rest_put("k", "1").await.status, 200);
    assert_eq!(region.rest_put("k", "2").await.status, 200);
    assert_eq!(region.binding_get("k").await.body, "2");
    region.replicate("k", "3");
    let read = region.binding_get("k").await;
    assert_eq!(read.body, "3");
    assert!(!read.headers.contains_key("cf-cache-status"), "no cache, no cache status");
}
