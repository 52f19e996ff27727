//! The Workers KV API over HTTP, in process: every endpoint, each limit at the limit and one
//! past it, and each error with its status and Cloudflare code.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use bytes::Bytes;
use edgekv_api::{app, ApiMetrics, AppState, Auth};
use edgekv_core::limits::{MAX_BULK_BODY_BYTES, MAX_VALUE_BYTES};
use edgekv_core::{Hlc, ManualClock};
use edgekv_metrics::Registry;
use edgekv_store::{Store, StoreConfig};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "test-token";
/// 2023-11-14T22:13:20Z, a fixed "now" so expiry arithmetic is exact.
const NOW_SECS: u64 = 1_700_000_000;

struct Api {
    app: edgekv_api::App,
    clock: ManualClock,
    store: Arc<Store>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a Cloudflare failure envelope with this status and code.
    #[track_caller]
    fn must_fail(&self, status: u16, code: u64) -> String {
        let body = self.json();
        assert_eq!(
            (self.status.as_u16(), body["errors"][0]["code"].as_u64()),
            (status, Some(code)),
            "{body}"
        );
        assert_eq!(body["success"], false);
        assert_eq!(body["result"], Value::Null);
        assert_eq!(body["messages"], json!([]));
        body["errors"][0]["message"].as_str().unwrap_or_default().to_owned()
    }

    /// Asserts a success envelope and returns its result.
    #[track_caller]
    fn must_succeed(&self) -> Value {
        let body = self.json();
        assert_eq!(self.status, StatusCode::OK, "{body}");
        assert_eq!(body["success"], true, "{body}");
        assert_eq!(body["errors"], json!([]));
        body["result"].clone()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn api() -> Api {
    let clock = ManualClock::new(NOW_SECS * 1000);
    let hlc = Arc::new(Hlc::new(Arc::new(clock.clone()), Hlc::DEFAULT_MAX_DELTA));
    let config = StoreConfig {
        region: "wnam".parse().unwrap(),
        tombstone_grace: Duration::from_secs(60),
        digest_horizon: Duration::from_secs(60),
        reserve: Default::default(),
        engine_memory: edgekv_store::DEFAULT_ENGINE_MEMORY,
    };
    let store = Arc::new(Store::new(config, hlc));
    let state = Arc::new(AppState {
        store: Arc::clone(&store),
        auth: Auth::new([TOKEN.to_string()]),
        metrics: ApiMetrics::register(&Registry::default()),
        budget: edgekv_api::BodyBudget::new(256 << 20),
        // Today's behaviour, stated: no edge cache, no write rate limit.
        edge: edgekv_api::Edge::new(edgekv_api::EdgeConfig::OFF, &Registry::default()),
    });
    Api { app: app(state), clock, store }
}

fn base(account: &str) -> String {
    format!("/client/v4/accounts/{account}/storage/kv/namespaces")
}

impl Api {
    async fn call(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Reply { status: parts.status, headers: parts.headers, body }
    }

    async fn send(&self, method: Method, path: &str, body: impl Into<Body>) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(body.into())
            .unwrap();
        self.call(request).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, Body::empty()).await
    }

    async fn create_namespace(&self, account: &str, title: &str) -> String {
        let reply =
            self.send(Method::POST, &base(account), json!({ "title": title }).to_string()).await;
        reply.must_succeed()["id"].as_str().unwrap().to_owned()
    }

    /// A fresh namespace in account `acct`, returning its base path.
    async fn namespace(&self) -> String {
        let id = self.create_namespace("acct", "ns").await;
        format!("{}/{id}", base("acct"))
    }

    async fn put(&self, path: &str, body: impl Into<Body>) -> Reply {
        self.send(Method::PUT, path, body).await
    }
}

// ---- namespaces -----------------------------------------------------------------------------

#[tokio::test]
async fn namespace_lifecycle() {
    let api = api();
    let id = api.create_namespace("acct", "first").await;
    assert_eq!(id.len(), 32);
    let path = format!("{}/{id}", base("acct"));
    let got = api.get(&path).await.must_succeed();
    assert_eq!(got, json!({ "id": id, "title": "first", "supports_url_encoding": true }));

    let renamed = api.put(&path, r#"{"title":"second"}"#).await.must_succeed();
    assert_eq!(renamed["title"], "second");
    assert_eq!(api.get(&path).await.must_succeed()["title"], "second");

    assert_eq!(api.send(Method::DELETE, &path, Body::empty()).await.must_succeed(), Value::Null);
    let msg = api.get(&path).await.must_fail(404, 10013);
    assert_eq!(msg, "get namespace: 'namespace not found'");
    api.send(Method::DELETE, &path, Body::empty()).await.must_fail(404, 10013);
    api.put(&path, r#"{"title":"x"}"#).await.must_fail(404, 10013);
}

#[tokio::test]
async fn namespace_titles_are_unique_and_bounded() {
    let api = api();
    api.create_namespace("acct", "t").await;
    let reply = api.send(Method::POST, &base("acct"), r#"{"title":"t"}"#).await;
    assert_eq!(
        reply.must_fail(400, 10014),
        "a namespace with this account ID and title already exists"
    );
    // Another account may use the same title.
    api.create_namespace("other", "t").await;

    let title = |n: usize| json!({ "title": "é".repeat(n) }).to_string();
    api.send(Method::POST, &base("acct"), title(512)).await.must_succeed();
    api.send(Method::POST, &base("acct"), title(513)).await.must_fail(400, 10001);
    api.send(Method::POST, &base("acct"), r#"{"title":""}"#).await.must_fail(400, 10001);
    api.send(Method::POST, &base("acct"), r#"{"name":"t"}"#).await.must_fail(400, 10001);
    api.send(Method::POST, &base("acct"), "not json").await.must_fail(400, 10001);
}

#[tokio::test]
async fn namespace_listing_pages_sorts_and_ends_with_an_empty_page() {
    let api = api();
    for title in ["c", "a", "e", "b", "d"] {
        api.create_namespace("acct", title).await;
    }
    let list = |query: &'static str| {
        let api = &api;
        async move { api.get(&format!("{}?{query}", base("acct"))).await }
    };
    let titles = |reply: &Reply| -> Vec<String> {
        reply
            .must_succeed()
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let page = list("order=title&per_page=2&page=2").await;
    assert_eq!(titles(&page), ["c", "d"]);
    assert_eq!(
        page.json()["result_info"],
        json!({ "page": 2, "per_page": 2, "count": 2, "total_count": 5 })
    );
    assert_eq!(titles(&list("order=title&direction=desc&per_page=2").await), ["e", "d"]);
    assert_eq!(titles(&list("order=title&per_page=2&page=3").await), ["e"]);
    assert!(titles(&list("order=title&per_page=2&page=4").await).is_empty());
    assert_eq!(titles(&list("").await).len(), 5, "default per_page is 20");
    let ids: Vec<String> = list("order=id")
        .await
        .must_succeed()
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    list("per_page=1000").await.must_succeed();
    for bad in ["per_page=0", "per_page=1001", "page=0", "page=x", "order=size", "direction=up"] {
        api.get(&format!("{}?{bad}", base("acct"))).await.must_fail(400, 10001);
    }
    // Other accounts see none of them.
    assert!(api.get(&base("other")).await.must_succeed().as_array().unwrap().is_empty());
}

// ---- authentication and routing -------------------------------------------------------------

#[tokio::test]
async fn missing_or_wrong_credentials_get_403_with_code_10000() {
    let api = api();
    let path = base("acct");
    let anonymous = Request::get(&path).body(Body::empty()).unwrap();
    assert_eq!(api.call(anonymous).await.must_fail(403, 10000), "Authentication error");
    let wrong =
        Request::get(&path).header("authorization", "Bearer nope").body(Body::empty()).unwrap();
    api.call(wrong).await.must_fail(403, 10000);
    let pair = Request::get(&path)
        .header("x-auth-email", "dev@example.com")
        .header("x-auth-key", TOKEN)
        .body(Body::empty())
        .unwrap();
    api.call(pair).await.must_succeed();
}

#[tokio::test]
async fn unknown_routes_get_404_with_code_7003_and_every_response_names_the_region() {
    let api = api();
    let ns = api.namespace().await;
    for (method, path) in [
        (Method::GET, "/client/v4/zones".to_string()),
        (Method::PATCH, base("acct")),
        (Method::GET, format!("{}/not-a-namespace-id", base("acct"))),
        (Method::GET, format!("{ns}/unknown")),
        (Method::POST, format!("{ns}/values/k")),
    ] {
        let reply = api.send(method, &path, Body::empty()).await;
        assert_eq!(reply.must_fail(404, 7003), "No route for the URI");
        assert_eq!(reply.header("edgekv-region"), Some("wnam"));
    }
    let health = api.call(Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!((health.status, health.header("edgekv-region")), (StatusCode::OK, Some("wnam")));
    let ready = api.call(Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(ready.status, StatusCode::OK);
}

#[tokio::test]
async fn a_well_formed_but_unknown_namespace_is_10013_for_every_key_operation() {
    let api = api();
    let ns = format!("{}/{}", base("acct"), "0f2ac74b498b48028cb68387c421e279");
    api.get(&format!("{ns}/keys")).await.must_fail(404, 10013);
    assert_eq!(
        api.get(&format!("{ns}/values/k")).await.must_fail(404, 10013),
        "get: 'namespace not found'"
    );
    api.put(&format!("{ns}/values/k"), "v").await.must_fail(404, 10013);
    api.send(Method::DELETE, &format!("{ns}/values/k"), Body::empty()).await.must_fail(404, 10013);
    api.get(&format!("{ns}/metadata/k")).await.must_fail(404, 10013);
    api.put(&format!("{ns}/bulk"), "[]").await.must_fail(404, 10013);
    api.send(Method::POST, &format!("{ns}/bulk/delete"), "[]").await.must_fail(404, 10013);
    api.send(Method::POST, &format!("{ns}/bulk/get"), r#"{"keys":["k"]}"#)
        .await
        .must_fail(404, 10013);
}

#[tokio::test]
async fn one_account_never_sees_another_accounts_namespace() {
    let api = api();
    let ns = api.namespace().await;
    api.put(&format!("{ns}/values/k"), "v").await.must_succeed();
    let foreign = ns.replace("/accounts/acct/", "/accounts/intruder/");
    api.get(&format!("{foreign}/values/k")).await.must_fail(404, 10013);
    api.get(&foreign).await.must_fail(404, 10013);
    api.send(Method::DELETE, &foreign, Body::empty()).await.must_fail(404, 10013);
    assert_eq!(&api.get(&format!("{ns}/values/k")).await.body[..], b"v");
}

// ---- values ---------------------------------------------------------------------------------

#[tokio::test]
async fn raw_values_round_trip_verbatim_with_version_headers() {
    let api = api();
    let ns = api.namespace().await;
    let binary: Vec<u8> = (0..=255u8).collect();
    let put = api.put(&format!("{ns}/values/bin"), binary.clone()).await;
    assert_eq!(put.must_succeed(), Value::Null);
    let written = put.header("edgekv-version").unwrap().to_owned();
    assert!(written.ends_with("-wnam"), "{written}");

    let got = api.get(&format!("{ns}/values/bin")).await;
    assert_eq!((got.status, &got.body[..]), (StatusCode::OK, &binary[..]));
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    assert_eq!(got.header("edgekv-version"), Some(written.as_str()));
    assert_eq!(got.header("expiration"), None);

    // A JSON body with a JSON content type is a value like any other: stored as sent.
    let request = Request::put(format!("{ns}/values/json"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(r#"{"metadata":"m","value":"v"}"#))
        .unwrap();
    api.call(request).await.must_succeed();
    assert_eq!(
        &api.get(&format!("{ns}/values/json")).await.body[..],
        br#"{"metadata":"m","value":"v"}"#
    );

    // Empty values are values.
    api.put(&format!("{ns}/values/empty"), "").await.must_succeed();
    let empty = api.get(&format!("{ns}/values/empty")).await;
    assert_eq!((empty.status, empty.body.len()), (StatusCode::OK, 0));
}

#[tokio::test]
async fn overwrite_and_delete() {
    let api = api();
    let ns = api.namespace().await;
    let key = format!("{ns}/values/k");
    let v1 = api.put(&key, "one").await.header("edgekv-version").unwrap().to_owned();
    let v2 = api.put(&key, "two").await.header("edgekv-version").unwrap().to_owned();
    assert!(v2 > v1, "{v2} > {v1}");
    assert_eq!(&api.get(&key).await.body[..], b"two");
    api.send(Method::DELETE, &key, Body::empty()).await.must_succeed();
    assert_eq!(api.get(&key).await.must_fail(404, 10009), "get: 'key not found'");
    // Deleting what is not there succeeds.
    api.send(Method::DELETE, &key, Body::empty()).await.must_succeed();
    api.send(Method::DELETE, &format!("{ns}/values/never"), Body::empty()).await.must_succeed();
}

#[tokio::test]
async fn keys_are_decoded_after_routing_whether_or_not_slashes_are_encoded() {
    let api = api();
    let ns = api.namespace().await;
    api.put(&format!("{ns}/values/dir%2Fsub%2Ffile"), "encoded").await.must_succeed();
    assert_eq!(&api.get(&format!("{ns}/values/dir/sub/file")).await.body[..], b"encoded");
    api.put(&format!("{ns}/values/a/b"), "raw").await.must_succeed();
    assert_eq!(&api.get(&format!("{ns}/values/a%2Fb")).await.body[..], b"raw");
    let odd = "sp ace:!%✓+";
    let encoded = "sp%20ace:!%25%E2%9C%93+";
    api.put(&format!("{ns}/values/{encoded}"), "odd").await.must_succeed();
    let names = api.get(&format!("{ns}/keys")).await.must_succeed();
    let names: Vec<&str> =
        names.as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a/b", "dir/sub/file", odd]);
}

#[tokio::test]
async fn malformed_and_illegal_keys_are_refused_and_nothing_is_stored() {
    let api = api();
    let ns = api.namespace().await;
    for (raw, status) in
        [("%zz", 400), ("%FF", 400), ("", 400), (".", 400), ("..", 400), ("%2E%2E", 400)]
    {
        let path = format!("{ns}/values/{raw}");
        api.put(&path, "v").await.must_fail(status, 10001);
        api.get(&path).await.must_fail(status, 10001);
        api.send(Method::DELETE, &path, Body::empty()).await.must_fail(status, 10001);
        api.get(&format!("{ns}/metadata/{raw}")).await.must_fail(status, 10001);
    }
    let at_limit = "k".repeat(512);
    api.put(&format!("{ns}/values/{at_limit}"), "v").await.must_succeed();
    let over = "k".repeat(513);
    let msg = api.put(&format!("{ns}/values/{over}"), "v").await.must_fail(414, 10001);
    assert_eq!(msg, "UTF-8 encoded length of 513 exceeds key length limit of 512.");
    // Measured after decoding: 171 escaped three-byte characters are 513 bytes.
    api.put(&format!("{ns}/values/{}", "%E2%9C%93".repeat(171)), "v").await.must_fail(414, 10001);
    let keys = api.get(&format!("{ns}/keys")).await.must_succeed();
    assert_eq!(keys.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_value_of_25_mib_is_stored_and_one_byte_more_is_refused() {
    let api = api();
    let ns = api.namespace().await;
    let at_limit = Bytes::from(vec![b'x'; MAX_VALUE_BYTES]);
    api.put(&format!("{ns}/values/big"), at_limit).await.must_succeed();
    assert_eq!(api.get(&format!("{ns}/values/big")).await.body.len(), MAX_VALUE_BYTES);

    let over = Bytes::from(vec![b'y'; MAX_VALUE_BYTES + 1]);
    let msg = api.put(&format!("{ns}/values/big"), over).await.must_fail(413, 10001);
    assert_eq!(msg, "Value length of 26214401 exceeds limit of 26214400.");
    let kept = api.get(&format!("{ns}/values/big")).await;
    assert!(kept.body.iter().all(|b| *b == b'x'), "the refused write changed nothing");
}

/// A body with no Content-Length that grows past the limit is cut off while it streams: the
/// server stops reading, answers 413, and stores nothing. The stream here would be 1 GiB if
/// read to the end.
#[tokio::test]
async fn an_oversized_streamed_body_is_refused_without_reading_it_all() {
    let api = api();
    let ns = api.namespace().await;
    let chunk = Bytes::from(vec![b'z'; 1024 * 1024]);
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&sent);
    let stream = futures_util::stream::iter((0..1024).map(move |_| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok::<_, std::io::Error>(chunk.clone())
    }));
    let reply = api.put(&format!("{ns}/values/stream"), Body::from_stream(stream)).await;
    reply.must_fail(413, 10001);
    let chunks = sent.load(std::sync::atomic::Ordering::SeqCst);
    assert!(chunks <= 27, "read {chunks} MiB of a body that was over the limit at 26");
    api.get(&format!("{ns}/values/stream")).await.must_fail(404, 10009);

    // Declared too large: refused before reading anything.
    let request = Request::put(format!("{ns}/values/declared"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-length", (MAX_VALUE_BYTES + 1).to_string())
        .body(Body::empty())
        .unwrap();
    api.call(request).await.must_fail(413, 10001);
}

fn multipart(parts: &[(&str, Option<&str>, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "edgekv-test-boundary";
    let mut body = Vec::new();
    for (name, filename, content_type, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let disposition = match filename {
            Some(f) => {
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n")
            }
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n"),
        };
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(format!("Content-Type: {content_type}\r\n\r\n").as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

impl Api {
    async fn put_form(&self, path: &str, form: (String, Vec<u8>)) -> Reply {
        let request = Request::put(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", form.0)
            .body(Body::from(form.1))
            .unwrap();
        self.call(request).await
    }
}

#[tokio::test]
async fn multipart_values_carry_metadata_as_the_python_sdk_sends_them() {
    let api = api();
    let ns = api.namespace().await;
    // cloudflare==5.9.0: value as a file part, metadata as a JSON part with spaces.
    let form = multipart(&[
        ("value", Some("upload"), "application/octet-stream", b"\x00bytes\xff"),
        ("metadata", None, "application/json", br#"{"owner": "me", "n": [1, 2]}"#),
    ]);
    api.put_form(&format!("{ns}/values/f"), form).await.must_succeed();
    assert_eq!(&api.get(&format!("{ns}/values/f")).await.body[..], b"\x00bytes\xff");
    let metadata = api.get(&format!("{ns}/metadata/f")).await;
    assert_eq!(metadata.must_succeed(), json!({ "owner": "me", "n": [1, 2] }));
    assert!(metadata.header("edgekv-version").is_some());

    // The TypeScript SDK sends the value as a plain text field.
    let form = multipart(&[("value", None, "text/plain", b"text value")]);
    api.put_form(&format!("{ns}/values/t"), form).await.must_succeed();
    assert_eq!(&api.get(&format!("{ns}/values/t")).await.body[..], b"text value");
    assert_eq!(api.get(&format!("{ns}/metadata/t")).await.must_succeed(), Value::Null);

    // The Python SDK sends metadata=None as an empty part.
    let form =
        multipart(&[("value", None, "text/plain", b"v"), ("metadata", None, "text/plain", b"")]);
    api.put_form(&format!("{ns}/values/empty-meta"), form).await.must_succeed();
    assert_eq!(api.get(&format!("{ns}/metadata/empty-meta")).await.must_succeed(), Value::Null);
    // Metadata keeps the writer's key order, as JSON.stringify would.
    let form = multipart(&[
        ("value", None, "text/plain", b"v"),
        ("metadata", None, "application/json", br#"{"z": 1, "a": 2}"#),
    ]);
    api.put_form(&format!("{ns}/values/ordered"), form).await.must_succeed();
    assert_eq!(
        &api.get(&format!("{ns}/metadata/ordered")).await.body[..],
        br#"{"success":true,"errors":[],"messages":[],"result":{"z":1,"a":2}}"#
    );

    let form = multipart(&[("metadata", None, "application/json", b"{}")]);
    api.put_form(&format!("{ns}/values/none"), form).await.must_fail(400, 10001);
    let form = multipart(&[
        ("value", None, "text/plain", b"v"),
        ("metadata", None, "application/json", b"{oops"),
    ]);
    api.put_form(&format!("{ns}/values/none"), form).await.must_fail(400, 10001);
    api.get(&format!("{ns}/values/none")).await.must_fail(404, 10009);
}

#[tokio::test]
async fn metadata_of_1024_bytes_is_stored_and_1025_is_refused() {
    let api = api();
    let ns = api.namespace().await;
    let sized = |n: usize| format!("\"{}\"", "m".repeat(n - 2)).into_bytes();
    let form = multipart(&[
        ("value", None, "text/plain", b"v"),
        ("metadata", None, "application/json", &sized(1024)),
    ]);
    api.put_form(&format!("{ns}/values/k"), form).await.must_succeed();
    let form = multipart(&[
        ("value", None, "text/plain", b"w"),
        ("metadata", None, "application/json", &sized(1025)),
    ]);
    let msg = api.put_form(&format!("{ns}/values/k"), form).await.must_fail(413, 10001);
    assert_eq!(msg, "Metadata length of 1025 exceeds limit of 1024.");
    assert_eq!(&api.get(&format!("{ns}/values/k")).await.body[..], b"v");
}

/// A `multipart/form-data` body whose boundary cannot be used is refused as malformed, not
/// stored verbatim as if it were the value.
#[tokio::test]
async fn a_form_without_a_usable_boundary_is_refused_and_not_stored() {
    let api = api();
    let ns = api.namespace().await;
    let (_, body) = multipart(&[("value", None, "text/plain", b"v")]);
    let content_types: [&[u8]; 6] = [
        b"multipart/form-data",
        b"Multipart/Form-Data; charset=utf-8",
        b"multipart/form-data; boundary=",
        b"multipart/form-data; boundary=\"\"",
        b"multipart/form-data; boundary=\xc3\xa9t\xc3\xa9",
        b"multipart/form-data; boundary=edgekv-test-boundary\xff",
    ];
    for content_type in content_types {
        let request = Request::put(format!("{ns}/values/k"))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", HeaderValue::from_bytes(content_type).unwrap())
            .body(Body::from(body.clone()))
            .unwrap();
        let msg = api.call(request).await.must_fail(400, 10001);
        let shown = String::from_utf8_lossy(content_type);
        assert!(msg.starts_with("malformed multipart body"), "{shown}: {msg}");
        api.get(&format!("{ns}/values/k")).await.must_fail(404, 10009);
    }
    // Any other content type is still the value itself, verbatim.
    let request = Request::put(format!("{ns}/values/k"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "multipart/mixed")
        .body(Body::from("raw"))
        .unwrap();
    api.call(request).await.must_succeed();
    assert_eq!(&api.get(&format!("{ns}/values/k")).await.body[..], b"raw");
}

/// A second `value` or `metadata` part would silently replace the first: refused, and the key
/// keeps what it held.
#[tokio::test]
async fn a_form_with_two_value_or_metadata_parts_is_refused() {
    let api = api();
    let ns = api.namespace().await;
    let form = multipart(&[
        ("value", None, "text/plain", b"old"),
        ("metadata", None, "application/json", br#"{"v":1}"#),
    ]);
    api.put_form(&format!("{ns}/values/k"), form).await.must_succeed();
    let forms = [
        multipart(&[("value", None, "text/plain", b"a"), ("value", Some("f"), "text/plain", b"b")]),
        multipart(&[
            ("value", None, "text/plain", b"new"),
            ("metadata", None, "application/json", br#"{"v":2}"#),
            ("metadata", None, "application/json", br#"{"v":3}"#),
        ]),
        // An empty metadata part is no metadata, but still a part.
        multipart(&[
            ("metadata", None, "text/plain", b""),
            ("value", None, "text/plain", b"new"),
            ("metadata", None, "application/json", br#"{"v":4}"#),
        ]),
    ];
    for form in forms {
        let msg = api.put_form(&format!("{ns}/values/k"), form).await.must_fail(400, 10001);
        assert!(msg.contains("more than one"), "{msg}");
    }
    assert_eq!(&api.get(&format!("{ns}/values/k")).await.body[..], b"old");
    assert_eq!(api.get(&format!("{ns}/metadata/k")).await.must_succeed(), json!({ "v": 1 }));
}

#[tokio::test]
async fn expiration_limits_and_ttl_precedence() {
    let api = api();
    let ns = api.namespace().await;
    let put = |query: String| {
        let api = &api;
        let ns = ns.clone();
        async move { api.put(&format!("{ns}/values/k?{query}"), "v").await }
    };
    put("expiration_ttl=60".into()).await.must_succeed();
    assert_eq!(api.get(&format!("{ns}/values/k")).await.header("expiration"), Some("1700000060"));
    let msg = put("expiration_ttl=59".into()).await.must_fail(400, 10001);
    assert_eq!(msg, "Invalid expiration_ttl of 59. Expiration TTL must be at least 60.");
    put("expiration_ttl=0".into()).await.must_fail(400, 10001);
    put("expiration_ttl=abc".into()).await.must_fail(400, 10001);

    put(format!("expiration={}", NOW_SECS + 60)).await.must_succeed();
    let msg = put(format!("expiration={}", NOW_SECS + 59)).await.must_fail(400, 10001);
    assert!(msg.contains("at least 60 seconds in the future"), "{msg}");
    put(format!("expiration={NOW_SECS}")).await.must_fail(400, 10001);

    // Both given: the TTL wins, even when the absolute time alone would be refused.
    put(format!("expiration={}&expiration_ttl=120", NOW_SECS - 5)).await.must_succeed();
    assert_eq!(api.get(&format!("{ns}/values/k")).await.header("expiration"), Some("1700000120"));
}

/// Expirations are JSON numbers: the latest one a JavaScript client reads back exactly,
/// 2^53 - 1, is accepted, and one past it refused, from the query and in a bulk item alike.
#[tokio::test]
async fn expiration_is_at_most_2_pow_53_minus_1() {
    let api = api();
    let ns = api.namespace().await;
    let max: u64 = (1 << 53) - 1;
    api.put(&format!("{ns}/values/max?expiration={max}"), "v").await.must_succeed();
    let listed = api.get(&format!("{ns}/keys")).await.must_succeed();
    assert_eq!(listed, json!([{ "name": "max", "expiration": max }]));
    for query in [
        format!("expiration={}", max + 1),
        "expiration=18446744073709551615".to_owned(),
        format!("expiration_ttl={}", max - NOW_SECS + 1),
        "expiration_ttl=18446744073709551615".to_owned(),
    ] {
        let msg = api.put(&format!("{ns}/values/past?{query}"), "v").await.must_fail(400, 10001);
        assert!(msg.contains("9007199254740991"), "{query}: {msg}");
    }
    api.put(&format!("{ns}/values/ttl?expiration_ttl={}", max - NOW_SECS), "v")
        .await
        .must_succeed();
    assert_eq!(
        api.get(&format!("{ns}/values/ttl")).await.header("expiration"),
        Some("9007199254740991")
    );

    for bad in [
        json!({ "key": "b", "value": "v", "expiration": max + 1 }),
        json!({ "key": "b", "value": "v", "expiration": u64::MAX }),
        json!({ "key": "b", "value": "v", "expiration_ttl": u64::MAX }),
    ] {
        let body = json!([{ "key": "good", "value": "v" }, bad]);
        let msg = api.put(&format!("{ns}/bulk"), body.to_string()).await.must_fail(400, 10001);
        assert!(msg.contains("9007199254740991") && msg.contains("\"b\""), "{msg}");
    }
    let body = json!([{ "key": "b", "value": "v", "expiration": max }]);
    api.put(&format!("{ns}/bulk"), body.to_string()).await.must_succeed();
    let listed = api.get(&format!("{ns}/keys")).await.must_succeed();
    let names: Vec<&str> =
        listed.as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["b", "max", "ttl"], "nothing of a refused request was stored");
}

#[tokio::test]
async fn expired_keys_are_absent_everywhere_and_then_purged() {
    let api = api();
    let ns = api.namespace().await;
    api.put(&format!("{ns}/values/short?expiration_ttl=60"), "gone soon").await.must_succeed();
    api.put(&format!("{ns}/values/long"), "stays").await.must_succeed();
    let listed = api.get(&format!("{ns}/keys")).await.must_succeed();
    assert_eq!(listed[1], json!({ "name": "short", "expiration": NOW_SECS + 60 }));

    api.clock.advance(Duration::from_secs(60));
    api.get(&format!("{ns}/values/short")).await.must_fail(404, 10009);
    api.get(&format!("{ns}/metadata/short")).await.must_fail(404, 10009);
    let listed = api.get(&format!("{ns}/keys")).await.must_succeed();
    assert_eq!(listed, json!([{ "name": "long" }]));
    let bulk =
        api.send(Method::POST, &format!("{ns}/bulk/get"), r#"{"keys":["short","long"]}"#).await;
    assert_eq!(bulk.must_succeed(), json!({ "values": { "short": null, "long": "stays" } }));

    let stats = api.store.purge(100);
    assert_eq!(stats.expired, 1);
}

// ---- listing --------------------------------------------------------------------------------

#[tokio::test]
async fn key_listing_pages_with_a_cursor_in_byte_order() {
    let api = api();
    let ns = api.namespace().await;
    let names: Vec<String> = (0..25).map(|i| format!("key-{i:02}")).collect();
    let items: Vec<Value> = names.iter().map(|k| json!({ "key": k, "value": "v" })).collect();
    api.put(&format!("{ns}/bulk"), Value::from(items).to_string()).await.must_succeed();
    api.put(&format!("{ns}/values/other"), "v").await.must_succeed();

    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let reply = api.get(&format!("{ns}/keys?prefix=key-&limit=10&cursor={cursor}")).await;
        let result = reply.must_succeed();
        let info = reply.json()["result_info"].clone();
        assert_eq!(info["count"].as_u64(), Some(result.as_array().unwrap().len() as u64));
        seen.extend(
            result.as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        cursor = info["cursor"].as_str().unwrap().to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!((pages, seen), (3, names));
}

#[tokio::test]
async fn key_listing_limits_and_bad_cursors() {
    let api = api();
    let ns = api.namespace().await;
    for ok in ["limit=10", "limit=1000", ""] {
        api.get(&format!("{ns}/keys?{ok}")).await.must_succeed();
    }
    for bad in ["limit=9", "limit=1001", "limit=ten", "cursor=%%%", "cursor=__8"] {
        api.get(&format!("{ns}/keys?{bad}")).await.must_fail(400, 10001);
    }
}

// ---- bulk -----------------------------------------------------------------------------------

#[tokio::test]
async fn bulk_write_stores_every_item_kind() {
    let api = api();
    let ns = api.namespace().await;
    let body = json!([
        { "key": "plain", "value": "text" },
        { "key": "b64", "value": "AAEC/w==", "base64": true },
        { "key": "meta", "value": "m", "metadata": { "a": 1 }, "expiration_ttl": 300 },
        { "key": "abs", "value": "x", "expiration": NOW_SECS + 120 },
    ]);
    let result = api.put(&format!("{ns}/bulk"), body.to_string()).await.must_succeed();
    assert_eq!(result, json!({ "successful_key_count": 4, "unsuccessful_keys": [] }));
    assert_eq!(&api.get(&format!("{ns}/values/b64")).await.body[..], &[0, 1, 2, 255]);
    assert_eq!(api.get(&format!("{ns}/metadata/meta")).await.must_succeed(), json!({ "a": 1 }));
    let listed = api.get(&format!("{ns}/keys")).await.must_succeed();
    assert_eq!(listed[1], json!({ "name": "b64" }));
    assert_eq!(
        listed[2],
        json!({ "name": "meta", "expiration": NOW_SECS + 300, "metadata": { "a": 1 } })
    );
    assert_eq!(listed[0], json!({ "name": "abs", "expiration": NOW_SECS + 120 }));
}

#[tokio::test]
async fn a_bulk_write_with_one_bad_item_stores_nothing() {
    let api = api();
    let ns = api.namespace().await;
    let cases = [
        (json!({ "key": "", "value": "v" }), 400),
        (json!({ "key": "k".repeat(513), "value": "v" }), 414),
        (json!({ "key": "k", "value": "%%%", "base64": true }), 400),
        (json!({ "key": "k", "value": "v", "expiration_ttl": 30 }), 400),
        (json!({ "key": "k", "value": "v", "metadata": "m".repeat(1030) }), 413),
        (json!({ "key": "k" }), 400),
    ];
    for (bad, status) in cases {
        let body = json!([{ "key": "good", "value": "v" }, bad]);
        api.put(&format!("{ns}/bulk"), body.to_string()).await.must_fail(status, 10001);
    }
    api.put(&format!("{ns}/bulk"), "{}").await.must_fail(400, 10001);
    api.get(&format!("{ns}/values/good")).await.must_fail(404, 10009);
}

#[tokio::test]
async fn bulk_write_takes_10000_items_and_refuses_10001() {
    let api = api();
    let ns = api.namespace().await;
    let items = |n: usize| {
        Value::from(
            (0..n).map(|i| json!({ "key": format!("k{i}"), "value": "v" })).collect::<Vec<_>>(),
        )
        .to_string()
    };
    api.put(&format!("{ns}/bulk"), items(10_001)).await.must_fail(400, 10001);
    api.get(&format!("{ns}/values/k0")).await.must_fail(404, 10009);
    let result = api.put(&format!("{ns}/bulk"), items(10_000)).await.must_succeed();
    assert_eq!(result["successful_key_count"], 10_000);
    assert_eq!(&api.get(&format!("{ns}/values/k9999")).await.body[..], b"v");
}

/// The 100 MiB bulk limit, at the byte: a body of exactly the limit is accepted, one byte more
/// is refused while streaming and nothing is stored.
#[tokio::test]
async fn bulk_body_of_100_mib_is_accepted_and_one_byte_more_refused() {
    let api = api();
    let ns = api.namespace().await;
    let body_of = |total: usize| -> Vec<u8> {
        // Five items of about 20 MiB each (under the 25 MiB value limit), `total` bytes in all.
        let mut body = Vec::with_capacity(total);
        body.push(b'[');
        for i in 0..5 {
            let head = format!("{}{{\"key\":\"k{i}\",\"value\":\"", if i > 0 { "," } else { "" });
            body.extend_from_slice(head.as_bytes());
            // Four items of a fifth of the body each; the last takes the rest but the `"}]`.
            let fill = if i < 4 { total / 5 } else { total - body.len() - 3 };
            body.extend(std::iter::repeat_n(b'v', fill));
            body.extend_from_slice(b"\"}");
        }
        body.push(b']');
        body
    };
    let exact = body_of(MAX_BULK_BODY_BYTES);
    assert_eq!(exact.len(), MAX_BULK_BODY_BYTES);
    serde_json::from_slice::<Value>(&exact).expect("the test body is valid JSON");
    let result = api.put(&format!("{ns}/bulk"), exact).await.must_succeed();
    assert_eq!(result["successful_key_count"], 5);

    api.send(Method::POST, &format!("{ns}/bulk/delete"), r#"["k0","k1","k2","k3","k4"]"#)
        .await
        .must_succeed();
    let over = body_of(MAX_BULK_BODY_BYTES + 1);
    assert_eq!(over.len(), MAX_BULK_BODY_BYTES + 1);
    api.put(&format!("{ns}/bulk"), over).await.must_fail(413, 10001);
    api.get(&format!("{ns}/values/k0")).await.must_fail(404, 10009);
}

#[tokio::test]
async fn bulk_delete_both_routes_and_limits() {
    let api = api();
    let ns = api.namespace().await;
    let items: Vec<Value> =
        (0..4).map(|i| json!({ "key": format!("k{i}"), "value": "v" })).collect();
    api.put(&format!("{ns}/bulk"), Value::from(items).to_string()).await.must_succeed();

    let result = api
        .send(Method::POST, &format!("{ns}/bulk/delete"), r#"["k0","k1","missing"]"#)
        .await
        .must_succeed();
    assert_eq!(result, json!({ "successful_key_count": 3, "unsuccessful_keys": [] }));
    // The deprecated route wrangler still uses.
    api.send(Method::DELETE, &format!("{ns}/bulk"), r#"["k2"]"#).await.must_succeed();
    let listed = api.get(&format!("{ns}/keys")).await.must_succeed();
    assert_eq!(listed, json!([{ "name": "k3" }]));

    let keys =
        |n: usize| Value::from((0..n).map(|i| format!("x{i}")).collect::<Vec<_>>()).to_string();
    api.send(Method::POST, &format!("{ns}/bulk/delete"), keys(10_000)).await.must_succeed();
    api.send(Method::POST, &format!("{ns}/bulk/delete"), keys(10_001)).await.must_fail(400, 10001);
    api.send(Method::POST, &format!("{ns}/bulk/delete"), r#"["k3",".."]"#)
        .await
        .must_fail(400, 10001);
    api.send(Method::POST, &format!("{ns}/bulk/delete"), r#"[1]"#).await.must_fail(400, 10001);
    assert_eq!(
        &api.get(&format!("{ns}/values/k3")).await.body[..],
        b"v",
        "refused deletes delete nothing"
    );
}

#[tokio::test]
async fn bulk_get_text_json_and_metadata() {
    let api = api();
    let ns = api.namespace().await;
    let body = json!([
        { "key": "t", "value": "plain" },
        { "key": "j", "value": "{\"n\":1}", "metadata": { "m": true }, "expiration_ttl": 600 },
    ]);
    api.put(&format!("{ns}/bulk"), body.to_string()).await.must_succeed();
    let get = |body: Value| {
        let api = &api;
        let ns = ns.clone();
        async move { api.send(Method::POST, &format!("{ns}/bulk/get"), body.to_string()).await }
    };
    let text = get(json!({ "keys": ["t", "j", "nope"] })).await.must_succeed();
    assert_eq!(text, json!({ "values": { "t": "plain", "j": "{\"n\":1}", "nope": null } }));
    let parsed = get(json!({ "keys": ["j"], "type": "json" })).await.must_succeed();
    assert_eq!(parsed, json!({ "values": { "j": { "n": 1 } } }));
    let with_meta =
        get(json!({ "keys": ["t", "j", "nope"], "withMetadata": true })).await.must_succeed();
    assert_eq!(
        with_meta,
        json!({ "values": {
            "t": { "value": "plain", "metadata": null },
            "j": { "value": "{\"n\":1}", "metadata": { "m": true }, "expiration": NOW_SECS + 600 },
            "nope": null,
        } })
    );
    let msg = get(json!({ "keys": ["t"], "type": "json" })).await.must_fail(400, 10001);
    assert_eq!(msg, "At least one of the requested keys corresponds to a non-json value");
    let msg = get(json!({ "keys": ["t"], "type": "yaml" })).await.must_fail(400, 10001);
    assert_eq!(msg, "\"yaml\" is not a valid type. Use \"json\" or \"text\"");
}

#[tokio::test]
async fn bulk_get_takes_1_to_100_keys_and_at_most_25_mib() {
    let api = api();
    let ns = api.namespace().await;
    let keys = |n: usize| {
        json!({ "keys": (0..n).map(|i| format!("k{i}")).collect::<Vec<_>>() }).to_string()
    };
    let url = format!("{ns}/bulk/get");
    assert_eq!(
        api.send(Method::POST, &url, keys(0)).await.must_fail(400, 10001),
        "You must request a minimum of 1 key"
    );
    api.send(Method::POST, &url, keys(1)).await.must_succeed();
    let hundred = api.send(Method::POST, &url, keys(100)).await.must_succeed();
    assert_eq!(hundred["values"].as_object().unwrap().len(), 100);
    let msg = api.send(Method::POST, &url, keys(101)).await.must_fail(400, 10001);
    assert_eq!(msg, "You can request a maximum of 100 keys");
    api.send(Method::POST, &url, r#"{"keys":[""]}"#).await.must_fail(400, 10001);
    api.send(Method::POST, &url, r#"{"nokeys":[]}"#).await.must_fail(400, 10001);

    let half = Bytes::from(vec![b'h'; MAX_VALUE_BYTES / 2]);
    api.put(&format!("{ns}/values/a"), half.clone()).await.must_succeed();
    api.put(&format!("{ns}/values/b"), half).await.must_succeed();
    let both = api.send(Method::POST, &url, r#"{"keys":["a","b"]}"#).await.must_succeed();
    assert_eq!(both["values"]["b"].as_str().unwrap().len(), MAX_VALUE_BYTES / 2);
    api.put(&format!("{ns}/values/c"), "1").await.must_succeed();
    let msg = api.send(Method::POST, &url, r#"{"keys":["a","b","c"]}"#).await.must_fail(413, 10001);
    assert_eq!(msg, "Total size of request exceeds the limit of 25MB");
}
