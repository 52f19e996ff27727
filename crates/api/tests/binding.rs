//! The Workers binding protocol, pinned by golden transcripts: each `tests/binding/*.script`
//! is a sequence of requests as workerd sends them, and its `.golden` beside it is what the
//! region answered, status line, reason phrase (which workerd turns into the exception's text),
//! the headers workerd reads, and the body.
//!
//! A script is made of blocks separated by blank lines:
//! - a request: `METHOD /path?query`, then `name: value` header lines, then optionally
//!   `body: TEXT`, `body-bytes: N` (N bytes of `x`) or `body-json: JSON`. Every request gets the
//!   binding's `Authorization` and `edgekv-namespace` headers unless it says `no-auth` or
//!   `no-namespace`.
//! - `clock +DURATION`: the region's clock moves on (expirations, cacheTtl, the write rate).
//! - `replicate KEY VALUE`: a newer version of KEY arrives from region enam, straight into the
//!   store as replication delivers it (so it bypasses this region's cache).
//! - `# ...`: a comment, copied to the output.
//!
//! Run with `UPDATE_GOLDEN=1` to rewrite the golden files after a deliberate change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
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

const TOKEN: &str = "binding-token";
/// 2023-11-14T22:13:20Z: a fixed start, so expirations in the transcripts are exact.
const NOW_MS: u64 = 1_700_000_000_000;

struct Region {
    app: edgekv_api::App,
    clock: ManualClock,
    store: Arc<Store>,
    account: AccountId,
    namespace: NamespaceId,
    replicated: std::sync::atomic::AtomicU64,
}

fn region() -> Region {
    let clock = ManualClock::new(NOW_MS);
    let hlc = Arc::new(Hlc::new(Arc::new(clock.clone()), Hlc::DEFAULT_MAX_DELTA));
    let store = Arc::new(Store::new(StoreConfig::for_test("wnam"), hlc));
    store.disable_outbox();
    let account = AccountId::parse("acct").expect("a valid account");
    let namespace = store.create_namespace(&account, "binding").expect("a namespace").id;
    let registry = Registry::default();
    let state = Arc::new(AppState {
        store: Arc::clone(&store),
        auth: Auth::new([TOKEN.to_owned()]),
        metrics: ApiMetrics::register(&registry),
        budget: edgekv_api::BodyBudget::new(256 << 20),
        edge: Edge::new(EdgeConfig::WORKERS_KV, &registry),
    });
    let replicated = Default::default();
    Region { app: edgekv_api::binding::app(state), clock, store, account, namespace, replicated }
}

/// The headers of an answer that the transcript shows: the ones workerd reads, and the version.
const SHOWN: &[&str] =
    &["cf-cache-status", "cf-expiration", "cf-kv-metadata", "content-type", "retry-after"];

impl Region {
    async fn run(&self, script: &str) -> String {
        let mut out = String::new();
        for block in script.split("\n\n") {
            let block = block.trim_matches('\n');
            if block.is_empty() {
                continue;
            }
            let mut lines = block.lines().peekable();
            while let Some(line) = lines.peek().filter(|l| l.starts_with('#')) {
                out.push_str(line);
                out.push('\n');
                lines.next();
            }
            let rest: Vec<&str> = lines.collect();
            let Some(first) = rest.first() else { continue };
            out.push_str(&rest.iter().map(|l| format!("> {l}\n")).collect::<String>());
            if let Some(d) = first.strip_prefix("clock +") {
                let d = edgekv_core::parse_duration(d).expect("a duration in the script");
                self.clock.advance(d);
            } else if let Some(args) = first.strip_prefix("replicate ") {
                let (key, value) = args.split_once(' ').expect("replicate KEY VALUE");
                self.replicate(key, value);
            } else {
                let request = request(&rest, &self.namespace.to_string());
                let response = self.app.clone().oneshot(request).await.expect("answered");
                out.push_str(&render(response).await);
            }
            out.push('\n');
        }
        out
    }

    fn replicate(&self, key: &str, value: &str) {
        // A millisecond ahead of the region's clock, and later than the previous replicated
        // write even within one millisecond (the logical part counts them).
        let n = self.replicated.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ts = Timestamp(Timestamp::from_physical_ms(self.clock.now_ms() + 1).0 + n);
        let version = Version::new(ts, "enam".parse().expect("a region"));
        let write = ReplicatedWrite::Key {
            account: self.account.clone(),
            namespace: self.namespace.clone(),
            key: key.to_owned(),
            entry: Entry {
                value: Some(Bytes::from(value.to_owned())),
                metadata: None,
                expiration: None,
                version,
            },
        };
        assert!(self.store.apply_replicated(write).expect("applied"), "{key}: a newer version");
    }
}

/// Builds a request from a script block, bound to `namespace`.
fn request(lines: &[&str], namespace_id: &str) -> Request<Body> {
    let (method, target) = lines[0].split_once(' ').expect("METHOD /path");
    let mut builder = Request::builder().method(method).uri(expand(target));
    let mut body = Vec::new();
    let (mut auth, mut namespace) = (true, true);
    for line in &lines[1..] {
        if *line == "no-auth" {
            auth = false;
        } else if *line == "no-namespace" {
            namespace = false;
        } else if let Some(text) = line.strip_prefix("body: ") {
            body = text.as_bytes().to_vec();
        } else if let Some(n) = line.strip_prefix("body-bytes: ") {
            body = vec![b'x'; n.trim().parse().expect("a byte count")];
        } else if let Some(json) = line.strip_prefix("body-json: ") {
            body = expand(json).into_bytes();
        } else {
            let (name, value) = line.split_once(": ").expect("a header line");
            builder = builder.header(name, expand(value));
        }
    }
    if auth {
        builder = builder.header("authorization", format!("Bearer {TOKEN}"));
    }
    if namespace {
        builder = builder.header("edgekv-namespace", namespace_id);
    }
    builder = builder.header("host", "fake-host").header("content-length", body.len());
    builder.body(Body::from(body)).expect("a valid request")
}

/// `{keys:N}` in a JSON body stands for N distinct key names; `{key:N}` for a key of N bytes.
fn expand(text: &str) -> String {
    let mut out = text.to_owned();
    while let Some(start) = out.find("{keys:") {
        let end = start + out[start..].find('}').expect("a closing brace");
        let n: usize = out[start + 6..end].parse().expect("a key count");
        let keys: Vec<String> = (0..n).map(|i| format!("\"k{i}\"")).collect();
        out.replace_range(start..=end, &keys.join(","));
    }
    while let Some(start) = out.find("{key:") {
        let end = start + out[start..].find('}').expect("a closing brace");
        let n: usize = out[start + 5..end].parse().expect("a key length");
        out.replace_range(start..=end, &"k".repeat(n));
    }
    out
}

async fn render(response: Response<Body>) -> String {
    let (parts, body) = response.into_parts();
    let reason = parts
        .extensions
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
        .unwrap_or_else(|| parts.status.canonical_reason().unwrap_or("").to_owned());
    let mut out = format!("< {} {reason}\n", parts.status.as_u16());
    for name in SHOWN {
        if let Some(value) = parts.headers.get(*name) {
            out.push_str(&format!("< {name}: {}\n", String::from_utf8_lossy(value.as_bytes())));
        }
    }
    let body = body.collect().await.expect("a body").to_bytes();
    match std::str::from_utf8(&body) {
        Ok(text) if body.len() <= 400 => {
            if !text.is_empty() {
                out.push_str(&format!("< body: {text}\n"));
            }
        }
        _ => out.push_str(&format!("< body: {} bytes\n", body.len())),
    }
    out
}

fn scripts() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/binding");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the binding scripts directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "script"))
        .collect();
    scripts.sort();
    scripts
}

#[tokio::test]
async fn binding_transcripts_match_their_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let scripts = scripts();
    assert!(scripts.len() >= 5, "the scripts are missing: {scripts:?}");
    let mut failed = Vec::new();
    for script in scripts {
        let region = region();
        // The namespace id is random: the transcripts name it {namespace}.
        let namespace = region.namespace.to_string();
        let text = std::fs::read_to_string(&script).expect("a readable script");
        let output = region.run(&text.replace("{namespace}", &namespace)).await;
        let output = output.replace(&namespace, "{namespace}");
        let golden = script.with_extension("golden");
        if update {
            std::fs::write(&golden, &output).expect("write the golden file");
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        if expected != output {
            failed.push(format!("{}:\n{output}", golden.display()));
        }
    }
    assert!(
        failed.is_empty(),
        "transcripts differ (UPDATE_GOLDEN=1 rewrites):\n{}",
        failed.join("\n")
    );
}

#[test]
fn keys_expand_in_bodies() {
    assert_eq!(expand(r#"{"keys":[{keys:2}]}"#), r#"{"keys":["k0","k1"]}"#);
    assert_eq!(expand("/{key:3}"), "/kkk");
}

/// What a transcript cannot show well: a value of exactly 25 MiB is taken, one byte more is
/// refused with the length in the reason, and nothing of it is stored; a bulk get answers at
/// most 25 MiB of values.
#[tokio::test]
async fn a_value_of_25_mib_is_taken_and_one_byte_more_is_refused() {
    let region = region();
    let limit = edgekv_core::limits::MAX_VALUE_BYTES;
    for (key, len, status) in [("at", limit, 200), ("past", limit + 1, 413)] {
        let mut request =
            request(&[&format!("PUT /{key}?urlencoded=true")], &region.namespace.to_string());
        *request.body_mut() = Body::from(vec![b'v'; len]);
        request.headers_mut().insert("content-length", len.into());
        let response = region.app.clone().oneshot(request).await.expect("answered");
        assert_eq!(response.status().as_u16(), status, "{key}");
        region.clock.advance(Duration::from_secs(1));
    }
    assert!(region.store.get(&region.account, &region.namespace, "at").expect("read").is_some());
    assert!(region.store.get(&region.account, &region.namespace, "past").expect("read").is_none());
    // A bulk get may answer 25 MiB of values at most.
    let ns = region.namespace.to_string();
    let one = request(&["PUT /one?urlencoded=true", "body: 1"], &ns);
    assert_eq!(region.app.clone().oneshot(one).await.expect("answered").status(), 200);
    for (keys, status) in [(r#"["at"]"#, 200), (r#"["at","one"]"#, 413)] {
        let body = format!("body-json: {{\"keys\":{keys}}}");
        let bulk = request(&["POST /bulk/get", "content-type: application/json", &body], &ns);
        let response = region.app.clone().oneshot(bulk).await.expect("answered");
        assert_eq!(response.status().as_u16(), status, "{keys}");
    }
}
