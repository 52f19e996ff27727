//! The protocol workerd speaks to a KV service, so a Worker's `kvNamespace` binding can be
//! pointed at a region.
//!
//! workerd turns each binding call into plain HTTP to the service's address (`Host:
//! fake-host`). The paths are fixed, so the namespace and the credentials come from headers the
//! binding's config injects: `edgekv-namespace` and `Authorization: Bearer`.
//!
//! | call | request |
//! |---|---|
//! | get | `GET /<key>?urlencoded=true[&cache_ttl=N]` |
//! | put | `PUT /<key>?urlencoded=true[&expiration=S][&expiration_ttl=S]`, `CF-KV-Metadata` |
//! | delete | `DELETE /<key>?urlencoded=true` |
//! | list | `GET /?key_count_limit=N&prefix=P&cursor=C` |
//! | bulk get | `POST /bulk/get`, JSON `{keys, type?, withMetadata?, cacheTtl?}` |
//!
//! A key is one percent-encoded path segment (`encodeURIComponent`). A get answers the raw
//! value with `CF-KV-Metadata`, `CF-Expiration` and `CF-Cache-Status`; 404 means missing.
//! workerd makes any other non-2xx status an exception, `KV <OP> failed: <status> <reason>`,
//! so a refusal's message travels as the HTTP reason phrase (and again as a text body), as
//! Miniflare's KV service does.
//!
//! Reads go through the region's edge cache with the call's cacheTtl (default 60 s); writes
//! take the per-key write rate and replace what the region has cached.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use edgekv_core::limits::{MAX_BULK_GET_KEYS, MAX_BULK_GET_TOTAL_BYTES, MAX_VALUE_BYTES};
use edgekv_core::{
    canonical_metadata, percent_decode, resolve_expiration, validate_key, AccountId, Entry,
    KeyError, NamespaceId,
};
use edgekv_store::WriteOp;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::body::{read_limited, value_too_large, Reading};
use crate::bulk::{bulk_value, NotJson, NOT_JSON};
use crate::cache::{CacheStatus, DEFAULT_CACHE_TTL, MIN_CACHE_TTL};
use crate::edge::{self, Via};
use crate::handlers::{raw_json, small_json};
use crate::query::Query;
use crate::App;
use crate::{ApiError, AppState, VERSION_HEADER};

/// The header naming the namespace a binding is bound to.
pub const NAMESPACE_HEADER: HeaderName = HeaderName::from_static("edgekv-namespace");
/// A value's metadata (JSON), on a get's answer and a put's request.
pub const METADATA_HEADER: HeaderName = HeaderName::from_static("cf-kv-metadata");
/// A value's expiration, epoch seconds.
pub const EXPIRATION_HEADER: HeaderName = HeaderName::from_static("cf-expiration");
/// Whether the edge cache answered: `HIT` or `MISS`.
pub const CACHE_STATUS_HEADER: HeaderName = HeaderName::from_static("cf-cache-status");

/// Most keys a binding list returns, and the default.
const MAX_LIST_KEYS: usize = 1000;

/// The binding listener's application: every path is the protocol's.
pub fn app(state: Arc<AppState>) -> App {
    let region = HeaderValue::from_str(state.store.region().as_str())
        .expect("region names are ASCII and valid header values");
    let api = crate::app::Api {
        state,
        region,
        prefix: "",
        dispatch: |state, request| Box::pin(async move { Ok(dispatch(state, request).await) }),
    };
    App::new(api, Router::new())
}

/// A refusal as the binding sees it: a status and the message workerd puts in its exception.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal { status, message: message.into() }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Refusal::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<ApiError> for Refusal {
    fn from(err: ApiError) -> Self {
        let message = match &err {
            ApiError::KeyNotFound(_) => "Not Found".to_owned(),
            ApiError::NamespaceNotFound(_) => return Refusal::bad_request(
                "the namespace of this binding does not exist (check its edgekv-namespace header)",
            ),
            ApiError::RateLimited => "Too Many Requests".to_owned(),
            ApiError::Unauthorized => {
                return Refusal::new(StatusCode::UNAUTHORIZED, "Unauthorized");
            }
            ApiError::Storage { message, .. } => format!("Internal Server Error: {message}"),
            other => other.to_string(),
        };
        Refusal::new(err.status(), message)
    }
}

impl From<KeyError> for Refusal {
    fn from(err: KeyError) -> Self {
        ApiError::Key(err).into()
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.message.clone()).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain;charset=UTF-8"));
        // workerd shows the reason phrase, so it carries the message (HTTP/1.1 only: HTTP/2
        // has no reason phrase). One that cannot be a reason phrase keeps the standard one.
        let phrase: String = self.message.chars().take(512).collect();
        if let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(phrase.into_bytes()) {
            response.extensions_mut().insert(phrase);
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
        }
        response
    }
}

/// One call of the protocol, routed.
enum Call {
    Get(String),
    Put(String),
    Delete(String),
    List,
    BulkGet,
}

impl Call {
    fn op(&self) -> &'static str {
        match self {
            Call::Get(_) => "binding_get",
            Call::Put(_) => "binding_put",
            Call::Delete(_) => "binding_delete",
            Call::List => "binding_list",
            Call::BulkGet => "binding_bulk_get",
        }
    }
}

async fn dispatch(state: Arc<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let routed = route(&parts.method, parts.uri.path(), parts.uri.query());
    let op = routed.as_ref().map_or("binding_no_route", |(call, _)| call.op());
    let response = match routed {
        Err(refusal) => refusal.into_response(),
        Ok((call, query)) => match serve(&state, call, &query, &parts.headers, body).await {
            Ok(response) => response,
            Err(refusal) => {
                tracing::debug!(method = %parts.method, path = parts.uri.path(), status = refusal.status.as_u16(), message = %refusal.message, "binding call refused");
                refusal.into_response()
            }
        },
    };
    state.metrics.requests.with(&[op, response.status().as_str()]).inc();
    response
}

/// The call a request makes, with its decoded query.
fn route(method: &Method, path: &str, query: Option<&str>) -> Result<(Call, Query), Refusal> {
    let query = Query::parse(query).map_err(Refusal::from)?;
    let raw = path.strip_prefix('/').unwrap_or(path);
    let call = match (method, raw) {
        (&Method::GET, "") => Call::List,
        (&Method::POST, "bulk/get") => Call::BulkGet,
        (&Method::GET | &Method::PUT | &Method::DELETE, _) => {
            let key = decode(raw, &query)?;
            match *method {
                Method::GET => Call::Get(key),
                Method::PUT => Call::Put(key),
                _ => Call::Delete(key),
            }
        }
        _ => return Err(Refusal::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")),
    };
    Ok((call, query))
}

/// The key a path names: percent-decoded when the binding says it encoded it (workerd always
/// does), as sent otherwise.
fn decode(raw: &str, query: &Query) -> Result<String, Refusal> {
    let encoded = query.get("urlencoded").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let key = match encoded {
        true => percent_decode(raw, false).ok_or(KeyError::BadEncoding)?,
        false => raw.to_owned(),
    };
    validate_key(&key)?;
    Ok(key)
}

async fn serve(
    state: &AppState,
    call: Call,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    if !state.auth.allows(headers) {
        return Err(ApiError::Unauthorized.into());
    }
    let (account, ns) = bound_namespace(state, headers)?;
    match call {
        Call::Get(key) => get(state, &account, &ns, &key, query),
        Call::Put(key) => put(state, &account, &ns, key, query, headers, body).await,
        Call::Delete(key) => {
            let op = WriteOp { key, value: None, metadata: None, expiration: None };
            edge::write(state, &account, &ns, vec![op], "delete").await?;
            Ok(StatusCode::OK.into_response())
        }
        Call::List => list(state, &account, &ns, query),
        Call::BulkGet => bulk_get(state, &account, &ns, headers, body).await,
    }
}

/// The namespace the binding is bound to, and its account.
fn bound_namespace(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(AccountId, NamespaceId), Refusal> {
    let raw = headers.get(NAMESPACE_HEADER).and_then(|v| v.to_str().ok()).ok_or_else(|| {
        Refusal::bad_request(
            "the binding sent no edgekv-namespace header: add it to the binding's injectRequestHeaders",
        )
    })?;
    let ns = NamespaceId::parse(raw.trim()).ok_or_else(|| {
        Refusal::bad_request(format!(
            "edgekv-namespace {raw:?} is not a namespace id (32 hex digits)"
        ))
    })?;
    let account = state.store.namespace_owner(&ns).ok_or_else(|| {
        Refusal::bad_request(format!("namespace {ns} does not exist in this region"))
    })?;
    Ok((account, ns))
}

/// The cacheTtl of a read, in seconds: Workers KV's default, or at least its minimum.
fn cache_ttl(raw: Option<&str>) -> Result<u64, Refusal> {
    let Some(raw) = raw else { return Ok(DEFAULT_CACHE_TTL) };
    raw.trim().parse::<u64>().ok().filter(|ttl| *ttl >= MIN_CACHE_TTL).ok_or_else(|| {
        Refusal::bad_request(format!(
            "Invalid cache_ttl of {raw}. Cache TTL must be at least {MIN_CACHE_TTL}."
        ))
    })
}

fn get(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
    key: &str,
    query: &Query,
) -> Result<Response, Refusal> {
    let ttl = cache_ttl(query.get("cache_ttl"))?;
    let read = edge::read(state, account, ns, key, ttl, Via::Binding)?;
    let Some(entry) = read.found else {
        let mut response = Refusal::new(StatusCode::NOT_FOUND, "Not Found").into_response();
        cache_status(response.headers_mut(), read.status);
        return Ok(response);
    };
    let value = state.budget.response(entry.value.clone().unwrap_or_default())?;
    let mut response = (StatusCode::OK, value).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    describe(headers, &entry);
    cache_status(headers, read.status);
    Ok(response)
}

/// The headers that describe an entry: metadata, expiration, version.
fn describe(headers: &mut HeaderMap, entry: &Entry) {
    if let Some(value) = entry.metadata.as_ref().and_then(|m| metadata_header(m)) {
        headers.insert(METADATA_HEADER, value);
    }
    if let Some(expiration) = entry.expiration {
        headers.insert(EXPIRATION_HEADER, HeaderValue::from(expiration));
    }
    if let Ok(version) = HeaderValue::from_str(entry.version.rendered().as_str()) {
        headers.insert(VERSION_HEADER, version);
    }
}

/// Stored metadata as a header value. Compact JSON may hold DEL (0x7F) raw inside a string,
/// which a header may not; it is written as the JSON escape instead, which means the same. No
/// other byte of JSON can be refused: control characters are escaped already, and the bytes of
/// multi-byte UTF-8 are all 0x80 or above, which a header value allows.
fn metadata_header(metadata: &[u8]) -> Option<HeaderValue> {
    if !metadata.contains(&0x7f) {
        return HeaderValue::from_bytes(metadata).ok();
    }
    let mut escaped = Vec::with_capacity(metadata.len() + 8);
    for &byte in metadata {
        match byte {
            0x7f => escaped.extend_from_slice(b"\\u007f"),
            b => escaped.push(b),
        }
    }
    HeaderValue::from_bytes(&escaped).ok()
}

fn cache_status(headers: &mut HeaderMap, status: Option<CacheStatus>) {
    if let Some(status) = status {
        headers.insert(CACHE_STATUS_HEADER, HeaderValue::from_static(status.as_str()));
    }
}

async fn put(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
    key: String,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let now_ms = state.store.hlc().physical_now_ms();
    let expiration =
        resolve_expiration(query.get("expiration"), query.get("expiration_ttl"), now_ms)
            .map_err(ApiError::from)?;
    let metadata = match headers.get(METADATA_HEADER) {
        Some(raw) => canonical_metadata(raw.as_bytes()).map_err(ApiError::from)?,
        None => None,
    };
    let reading = Reading {
        limit: MAX_VALUE_BYTES,
        too_large: value_too_large,
        budget: &state.budget,
        cost: 1,
    };
    let (value, _held) = read_limited(headers, body, reading).await?;
    let op = WriteOp { key, value: Some(value), metadata: metadata.map(Bytes::from), expiration };
    let results = edge::write(state, account, ns, vec![op], "put").await?;
    let mut response = StatusCode::OK.into_response();
    if let Some(version) =
        results.first().and_then(|r| HeaderValue::from_str(r.version.rendered().as_str()).ok())
    {
        response.headers_mut().insert(VERSION_HEADER, version);
    }
    Ok(response)
}

fn list(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
    query: &Query,
) -> Result<Response, Refusal> {
    let limit = list_limit(query.get("key_count_limit"))?;
    let prefix = query.get("prefix").unwrap_or("");
    if prefix.len() > edgekv_core::limits::MAX_KEY_BYTES {
        return Err(KeyError::TooLong(prefix.len()).into());
    }
    let cursor = query.get("cursor").unwrap_or("");
    let resume_after = match cursor {
        "" => None,
        c => Some(
            URL_SAFE_NO_PAD
                .decode(c.trim_end_matches('='))
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| Refusal::bad_request(format!("Invalid cursor {c:?}")))?,
        ),
    };
    let read = edge::list(
        state,
        account,
        ns,
        prefix,
        (cursor, resume_after.as_deref()),
        limit,
        DEFAULT_CACHE_TTL,
        Via::Binding,
    )?;
    let keys: Vec<Value> = read
        .found
        .keys
        .iter()
        .map(|k| {
            let mut key = Map::new();
            key.insert("name".into(), Value::String(k.name.clone()));
            if let Some(expiration) = k.expiration {
                key.insert("expiration".into(), expiration.into());
            }
            // workerd parses each key's metadata from a JSON string.
            if let Some(metadata) = k.metadata.as_ref().and_then(raw_json) {
                key.insert("metadata".into(), Value::String(metadata.get().to_owned()));
            }
            Value::Object(key)
        })
        .collect();
    let mut body = Map::new();
    body.insert("keys".into(), Value::Array(keys));
    body.insert("list_complete".into(), Value::Bool(read.found.resume_after.is_none()));
    if let Some(after) = &read.found.resume_after {
        body.insert("cursor".into(), Value::String(URL_SAFE_NO_PAD.encode(after)));
    }
    let mut response = json(Value::Object(body));
    cache_status(response.headers_mut(), read.status);
    Ok(response)
}

fn list_limit(raw: Option<&str>) -> Result<usize, Refusal> {
    let Some(raw) = raw else { return Ok(MAX_LIST_KEYS) };
    match raw.trim().parse::<i64>() {
        Ok(n) if n < 1 => Err(Refusal::bad_request(format!(
            "Invalid key_count_limit of {raw}. Please specify an integer greater than 0."
        ))),
        Ok(n) if n as u64 > MAX_LIST_KEYS as u64 => Err(Refusal::bad_request(format!(
            "Invalid key_count_limit of {raw}. Please specify an integer less than {MAX_LIST_KEYS}."
        ))),
        Ok(n) => Ok(n as usize),
        Err(_) => Err(Refusal::bad_request(format!(
            "Invalid key_count_limit of {raw}. Please specify an integer greater than 0."
        ))),
    }
}

/// The body of a bulk get, as workerd forms it (`cacheTtl` as a string).
#[derive(Deserialize)]
struct BulkGet {
    keys: Vec<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, rename = "withMetadata")]
    with_metadata: bool,
    #[serde(default, rename = "cacheTtl")]
    cache_ttl: Option<Value>,
}

async fn bulk_get(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let (bytes, _held) = read_limited(headers, body, small_json(state)).await?;
    let request: BulkGet = serde_json::from_slice(&bytes).map_err(|err| {
        Refusal::bad_request(format!("the bulk get body is not {{\"keys\": [...], ...}}: {err}"))
    })?;
    let as_json = match request.kind.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            return Err(Refusal::bad_request(format!(
                "\"{other}\" is not a valid type. Use \"json\" or \"text\""
            )))
        }
    };
    if request.keys.len() > MAX_BULK_GET_KEYS {
        return Err(Refusal::bad_request(format!(
            "You can request a maximum of {MAX_BULK_GET_KEYS} keys"
        )));
    }
    if request.keys.is_empty() {
        return Err(Refusal::bad_request("You must request a minimum of 1 key"));
    }
    let ttl_text = request.cache_ttl.as_ref().map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let ttl = cache_ttl(ttl_text.as_deref())?;
    for key in &request.keys {
        validate_key(key)?;
    }
    let entries = edge::read_many(state, account, ns, &request.keys, ttl, Via::Binding)?;
    let total: usize =
        entries.iter().flatten().map(|e| e.value.as_ref().map_or(0, Bytes::len)).sum();
    if total > MAX_BULK_GET_TOTAL_BYTES {
        return Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Total size of request exceeds the limit of 25MB",
        ));
    }
    let mut out = Map::new();
    for (key, entry) in request.keys.into_iter().zip(entries) {
        let value = match entry {
            None => Value::Null,
            // The binding's answer carries no expirations.
            Some(entry) => bulk_value(entry, as_json, request.with_metadata, false)
                .map_err(|NotJson| Refusal::bad_request(NOT_JSON))?,
        };
        out.insert(key, value);
    }
    Ok(json(Value::Object(out)))
}

fn json(value: Value) -> Response {
    let mut response = (StatusCode::OK, value.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
