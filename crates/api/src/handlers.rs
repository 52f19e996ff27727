//! One function per Workers KV operation (bulk operations are in `bulk`).

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use edgekv_core::limits::{
    DEFAULT_NAMESPACES_PER_PAGE, MAX_NAMESPACES_PER_PAGE, MAX_SMALL_JSON_BYTES,
};
use edgekv_core::{resolve_expiration, validate_list_limit, validate_title, Entry, Version};
use edgekv_core::{AccountId, NamespaceId, NamespaceOrder, NamespaceRecord};
use edgekv_store::WriteOp;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::body::{read_limited, read_value_body, Reading};
use crate::cache::{CacheStatus, DEFAULT_CACHE_TTL};
use crate::edge::{self, Via};
use crate::query::Query;
use crate::route::{KeyPath, Route};
use crate::{bulk, envelope, ApiError, AppState, VERSION_HEADER};

/// Runs the operation `route` names.
pub(crate) async fn handle(
    state: &AppState,
    route: Route,
    headers: &HeaderMap,
    query: &Query,
    body: Body,
) -> Result<Response, ApiError> {
    let (op, writes) = (route.op(), route.writes());
    let response = match route {
        Route::ListNamespaces(account) => list_namespaces(state, &account, query),
        Route::CreateNamespace(account) => create_namespace(state, &account, headers, body).await,
        Route::GetNamespace(account, ns) => get_namespace(state, &account, &ns),
        Route::RenameNamespace(account, ns) => {
            rename_namespace(state, &account, &ns, headers, body).await
        }
        Route::DeleteNamespace(account, ns) => delete_namespace(state, &account, &ns),
        Route::ListKeys(account, ns) => list_keys(state, &account, &ns, query),
        Route::GetValue(account, ns, key) => get_value(state, &account, &ns, &key),
        Route::PutValue(account, ns, key) => {
            put_value(state, &account, &ns, &key, headers, query, body).await
        }
        Route::DeleteValue(account, ns, key) => delete_value(state, &account, &ns, &key).await,
        Route::GetMetadata(account, ns, key) => get_metadata(state, &account, &ns, &key),
        Route::BulkWrite(account, ns) => bulk::write(state, &account, &ns, headers, body).await,
        Route::BulkDelete(account, ns) => bulk::delete(state, &account, &ns, headers, body).await,
        Route::BulkGet(account, ns) => bulk::get(state, &account, &ns, headers, body).await,
    }?;
    if writes {
        // The ack follows the group commit's fsync (in the durable store's default mode).
        state.store.flushed().await.map_err(|err| ApiError::from_store(op, err))?;
    }
    Ok(response)
}

// ---- namespaces -----------------------------------------------------------------------------

/// The live namespace `ns` of `account`, or the not-found error of operation `op`.
pub(crate) fn require_namespace(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
    op: &'static str,
) -> Result<NamespaceRecord, ApiError> {
    state.store.get_namespace(account, ns).map_err(|err| ApiError::from_store(op, err))
}

/// The namespace object of the API.
#[derive(Serialize)]
struct NamespaceJson<'a> {
    id: &'a str,
    title: &'a str,
    /// Keys in the URL are always percent-decoded before storing.
    supports_url_encoding: bool,
}

impl<'a> From<&'a NamespaceRecord> for NamespaceJson<'a> {
    fn from(record: &'a NamespaceRecord) -> Self {
        NamespaceJson { id: record.id.as_str(), title: &record.title, supports_url_encoding: true }
    }
}

#[derive(Serialize)]
struct PageInfo {
    page: u64,
    per_page: u64,
    count: usize,
    total_count: usize,
}

fn list_namespaces(
    state: &AppState,
    account: &AccountId,
    query: &Query,
) -> Result<Response, ApiError> {
    let page = query.number("page", 1, u32::MAX as u64, 1)?;
    let per_page = query.number(
        "per_page",
        1,
        MAX_NAMESPACES_PER_PAGE as u64,
        DEFAULT_NAMESPACES_PER_PAGE as u64,
    )?;
    let order = match query.choice("order", &["id", "title"])? {
        Some("title") => NamespaceOrder::Title,
        _ => NamespaceOrder::Id,
    };
    let descending = query.choice("direction", &["asc", "desc"])? == Some("desc");
    let all = state
        .store
        .list_namespaces(account, order, descending)
        .map_err(|err| ApiError::from_store("list namespaces", err))?;
    // A page past the end is an empty list, not an error: the SDK pages until it sees one.
    let start = ((page - 1) * per_page).min(all.len() as u64) as usize;
    let items: Vec<NamespaceJson<'_>> =
        all[start..].iter().take(per_page as usize).map(NamespaceJson::from).collect();
    let info = PageInfo { page, per_page, count: items.len(), total_count: all.len() };
    Ok(envelope::ok_with_info(items, &info))
}

#[derive(Deserialize)]
struct TitleBody {
    title: String,
}

/// The error for a small JSON body over its 1 MiB limit.
pub(crate) fn small_json_too_large(len: usize) -> ApiError {
    ApiError::TooLarge(format!(
        "request body of {len} bytes exceeds limit of {MAX_SMALL_JSON_BYTES}"
    ))
}

/// How a small JSON body (a title, the keys of a bulk get) is read.
pub(crate) fn small_json(state: &AppState) -> Reading<'_> {
    Reading {
        limit: MAX_SMALL_JSON_BYTES,
        too_large: small_json_too_large,
        budget: &state.budget,
        cost: 2,
    }
}

async fn read_title(state: &AppState, headers: &HeaderMap, body: Body) -> Result<String, ApiError> {
    let (bytes, _held) = read_limited(headers, body, small_json(state)).await?;
    let parsed: TitleBody = serde_json::from_slice(&bytes).map_err(|err| {
        ApiError::BadRequest(format!("request body must be {{\"title\": string}}: {err}"))
    })?;
    validate_title(&parsed.title)?;
    Ok(parsed.title)
}

async fn create_namespace(
    state: &AppState,
    account: &AccountId,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let title = read_title(state, headers, body).await?;
    let record = state
        .store
        .create_namespace(account, &title)
        .map_err(|err| ApiError::from_store("create namespace", err))?;
    tracing::info!(account = %account, namespace = %record.id, title = %record.title, "namespace created");
    Ok(envelope::ok(NamespaceJson::from(&record)))
}

fn get_namespace(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
) -> Result<Response, ApiError> {
    let record = require_namespace(state, account, ns, "get namespace")?;
    Ok(envelope::ok(NamespaceJson::from(&record)))
}

async fn rename_namespace(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Check the namespace first so a missing one is a 404 whatever the body holds.
    require_namespace(state, account, ns, "rename namespace")?;
    let title = read_title(state, headers, body).await?;
    let record = state
        .store
        .rename_namespace(account, ns, &title)
        .map_err(|err| ApiError::from_store("rename namespace", err))?;
    Ok(envelope::ok(NamespaceJson::from(&record)))
}

fn delete_namespace(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
) -> Result<Response, ApiError> {
    state
        .store
        .delete_namespace(account, ns)
        .map_err(|err| ApiError::from_store("remove namespace", err))?;
    tracing::info!(account = %account, namespace = %ns, "namespace deleted");
    Ok(envelope::ok(()))
}

// ---- keys -----------------------------------------------------------------------------------

/// One entry of a key listing.
#[derive(Serialize)]
struct KeyJson<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct CursorInfo {
    count: usize,
    cursor: String,
}

/// Stored metadata as raw JSON, spliced into responses without re-parsing into a tree.
pub(crate) fn raw_json(metadata: &Bytes) -> Option<&RawValue> {
    // Stored metadata was produced by serde_json, so this only fails on a corrupt store; then
    // the key is listed without it rather than failing the whole page.
    std::str::from_utf8(metadata).ok().and_then(|s| serde_json::from_str(s).ok())
}

fn list_keys(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
    query: &Query,
) -> Result<Response, ApiError> {
    let limit = validate_list_limit(query.get("limit"))?;
    let prefix = query.get("prefix").unwrap_or("");
    let resume_after = match query.get("cursor").filter(|c| !c.is_empty()) {
        Some(cursor) => Some(decode_cursor(cursor)?),
        None => None,
    };
    let cursor = (query.get("cursor").unwrap_or(""), resume_after.as_deref());
    let read = edge::list(state, account, ns, prefix, cursor, limit, DEFAULT_CACHE_TTL, Via::Rest)?;
    let (page, status) = (read.found, read.status);
    let keys: Vec<KeyJson<'_>> = page
        .keys
        .iter()
        .map(|k| KeyJson {
            name: &k.name,
            expiration: k.expiration,
            metadata: k.metadata.as_ref().and_then(raw_json),
        })
        .collect();
    let cursor = page.resume_after.as_deref().map(encode_cursor).unwrap_or_default();
    let info = CursorInfo { count: keys.len(), cursor };
    let mut response = envelope::ok_with_info(keys, &info);
    cache_status(&mut response, status);
    Ok(response)
}

/// A cursor is the last key of the previous page, base64url-encoded: opaque to clients, and
/// stable while keys come and go because the next page starts strictly after that key.
fn encode_cursor(resume_after: &str) -> String {
    URL_SAFE_NO_PAD.encode(resume_after)
}

fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor.trim_end_matches('='))
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| ApiError::BadRequest(format!("Invalid cursor {cursor:?}")))
}

fn version_header(version: Version) -> HeaderValue {
    HeaderValue::from_str(version.rendered().as_str()).expect("a rendered version is ASCII")
}

fn get_value(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
    key: &KeyPath,
) -> Result<Response, ApiError> {
    let key = key.decode()?;
    let (entry, status) = live_entry(state, account, ns, &key, "get")?;
    let value = state.budget.response(entry.value.unwrap_or_default())?;
    let mut response = (StatusCode::OK, value).into_response();
    cache_status(&mut response, status);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if let Some(expiration) = entry.expiration {
        headers.insert("expiration", HeaderValue::from(expiration));
    }
    headers.insert(VERSION_HEADER, version_header(entry.version));
    Ok(response)
}

/// The live entry of `key` (through the cache if the region caches REST reads: then also
/// whether it answered), or the not-found error of operation `op`.
fn live_entry(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
    key: &str,
    op: &'static str,
) -> Result<(Entry, Option<CacheStatus>), ApiError> {
    let renamed = |err: ApiError| match err {
        ApiError::NamespaceNotFound(_) => ApiError::NamespaceNotFound(op),
        other => other,
    };
    let read =
        edge::read(state, account, ns, key, DEFAULT_CACHE_TTL, Via::Rest).map_err(renamed)?;
    let entry = read.found.ok_or(ApiError::KeyNotFound(op))?;
    Ok((entry, read.status))
}

/// Says whether the edge cache answered, on a region that caches REST reads.
fn cache_status(response: &mut Response, status: Option<CacheStatus>) {
    if let Some(status) = status {
        let value = HeaderValue::from_static(status.as_str());
        response.headers_mut().insert(crate::binding::CACHE_STATUS_HEADER, value);
    }
}

async fn put_value(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
    key: &KeyPath,
    headers: &HeaderMap,
    query: &Query,
    body: Body,
) -> Result<Response, ApiError> {
    let key = key.decode()?;
    let now_ms = state.store.hlc().physical_now_ms();
    let expiration =
        resolve_expiration(query.get("expiration"), query.get("expiration_ttl"), now_ms)?;
    // Refuse a write to a missing namespace before reading up to 25 MiB of body.
    require_namespace(state, account, ns, "put")?;
    let body = read_value_body(headers, body, &state.budget).await?;
    let op = WriteOp {
        key,
        value: Some(body.value),
        metadata: body.metadata.map(Bytes::from),
        expiration,
    };
    write_one(state, account, ns, op, "put").await
}

async fn delete_value(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
    key: &KeyPath,
) -> Result<Response, ApiError> {
    let key = key.decode()?;
    let op = WriteOp { key, value: None, metadata: None, expiration: None };
    write_one(state, account, ns, op, "remove key").await
}

async fn write_one(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
    op: WriteOp,
    name: &'static str,
) -> Result<Response, ApiError> {
    let results = edge::write(state, account, ns, vec![op], name).await?;
    let mut response = envelope::ok(());
    if let Some(result) = results.first() {
        response.headers_mut().insert(VERSION_HEADER, version_header(result.version));
    }
    Ok(response)
}

fn get_metadata(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
    key: &KeyPath,
) -> Result<Response, ApiError> {
    let key = key.decode()?;
    let (entry, status) = live_entry(state, account, ns, &key, "get metadata")?;
    let mut response = envelope::ok(entry.metadata.as_ref().and_then(raw_json));
    cache_status(&mut response, status);
    response.headers_mut().insert(VERSION_HEADER, version_header(entry.version));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        for key in ["a", "a/b ✓", "k=="] {
            assert_eq!(decode_cursor(&encode_cursor(key)).unwrap(), key);
        }
        assert!(decode_cursor("!!!").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode([0xff, 0xfe])).is_err());
    }
}
