//! Bulk write, bulk delete and bulk get.
//!
//! A bulk request is validated whole before anything is written: one bad item refuses the
//! request with a 4xx naming that item, and no item of it is stored. That is stricter than
//! partial success, and it is what lets a client retry a refused bulk request as is.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use edgekv_core::limits::{
    MAX_BULK_BODY_BYTES, MAX_BULK_GET_KEYS, MAX_BULK_GET_TOTAL_BYTES, MAX_BULK_ITEMS,
    MAX_VALUE_BYTES,
};
use edgekv_core::{canonical_metadata_value, resolve_expiration, validate_key};
use edgekv_core::{AccountId, Entry, NamespaceId};
use edgekv_store::{Cause, WriteOp};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::body::{read_limited, value_too_large, Reading};
use crate::budget::Held;
use crate::cache::DEFAULT_CACHE_TTL;
use crate::edge;
use crate::handlers::{raw_json, require_namespace, small_json};
use crate::{envelope, ApiError, AppState};

/// The result of a bulk write or delete.
#[derive(Serialize)]
struct BulkResult {
    successful_key_count: usize,
    unsuccessful_keys: [String; 0],
}

/// One pair of a bulk write.
#[derive(Deserialize)]
struct BulkItem {
    key: String,
    value: String,
    #[serde(default)]
    base64: bool,
    #[serde(default)]
    expiration: Option<Value>,
    #[serde(default)]
    expiration_ttl: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
}

/// Budget bytes per byte of a bulk body: its JSON, the items parsed from it and their decoded
/// values are all held at once (a 96 MiB bulk write peaked at 233 MB before it was bounded).
const BULK_COST: usize = 3;

async fn read_bulk_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Bytes, Held), ApiError> {
    let too_large = |len| {
        ApiError::TooLarge(format!(
            "Request body of {len} bytes exceeds the bulk limit of {MAX_BULK_BODY_BYTES}."
        ))
    };
    let reading =
        Reading { limit: MAX_BULK_BODY_BYTES, too_large, budget: &state.budget, cost: BULK_COST };
    read_limited(headers, body, reading).await
}

fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8], shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|err| ApiError::BadRequest(format!("request body must be {shape}: {err}")))
}

fn check_item_count(n: usize) -> Result<(), ApiError> {
    if n > MAX_BULK_ITEMS {
        return Err(ApiError::BadRequest(format!(
            "A bulk request may hold at most {MAX_BULK_ITEMS} items, got {n}."
        )));
    }
    Ok(())
}

/// An expiration field of a bulk item as the text [`resolve_expiration`] parses.
fn number_text(value: &Option<Value>) -> Option<String> {
    match value.as_ref()? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// `PUT .../bulk`.
pub(crate) async fn write(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_namespace(state, account, ns, "bulk put")?;
    let (bytes, _held) = read_bulk_body(state, headers, body).await?;
    let items: Vec<BulkItem> = parse_json(&bytes, "an array of {key, value, ...} objects")?;
    check_item_count(items.len())?;
    let now_ms = state.store.hlc().physical_now_ms();
    let ops =
        items.into_iter().map(|item| to_write_op(item, now_ms)).collect::<Result<Vec<_>, _>>()?;
    let count = ops.len();
    edge::write(state, account, ns, ops, "bulk put").await?;
    Ok(envelope::ok(BulkResult { successful_key_count: count, unsuccessful_keys: [] }))
}

fn to_write_op(item: BulkItem, now_ms: u64) -> Result<WriteOp, ApiError> {
    let in_item = |err: ApiError| -> ApiError {
        let message = format!("{err} (key {:?})", item.key);
        match err {
            ApiError::TooLarge(_) => ApiError::TooLarge(message),
            ApiError::Key(edgekv_core::KeyError::TooLong(_)) => err,
            ApiError::Validation(edgekv_core::ValidationError::MetadataTooLarge(_)) => err,
            _ => ApiError::BadRequest(message),
        }
    };
    validate_key(&item.key).map_err(|e| in_item(e.into()))?;
    let value = if item.base64 {
        STANDARD.decode(item.value.as_bytes()).map(Bytes::from).map_err(|err| {
            in_item(ApiError::BadRequest(format!("value is not valid base64: {err}")))
        })?
    } else {
        Bytes::from(item.value.clone())
    };
    if value.len() > MAX_VALUE_BYTES {
        return Err(in_item(value_too_large(value.len())));
    }
    let expiration = resolve_expiration(
        number_text(&item.expiration).as_deref(),
        number_text(&item.expiration_ttl).as_deref(),
        now_ms,
    )
    .map_err(|e| in_item(e.into()))?;
    let metadata = match &item.metadata {
        Some(m) => canonical_metadata_value(m).map_err(|e| in_item(e.into()))?,
        None => None,
    };
    Ok(WriteOp {
        key: item.key,
        value: Some(value),
        metadata: metadata.map(Bytes::from),
        expiration,
    })
}

/// `POST .../bulk/delete` and the deprecated `DELETE .../bulk`.
pub(crate) async fn delete(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_namespace(state, account, ns, "bulk remove keys")?;
    let (bytes, _held) = read_bulk_body(state, headers, body).await?;
    let keys: Vec<String> = parse_json(&bytes, "an array of key names")?;
    check_item_count(keys.len())?;
    for key in &keys {
        validate_key(key)?;
    }
    let count = keys.len();
    let ops = keys
        .into_iter()
        .map(|key| WriteOp { key, value: None, metadata: None, expiration: None })
        .collect();
    edge::write(state, account, ns, ops, "bulk remove keys").await?;
    Ok(envelope::ok(BulkResult { successful_key_count: count, unsuccessful_keys: [] }))
}

/// The body of a bulk get.
#[derive(Deserialize)]
struct BulkGetRequest {
    keys: Vec<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, rename = "withMetadata")]
    with_metadata: Option<bool>,
}

#[derive(Serialize)]
struct BulkGetResult {
    values: Map<String, Value>,
}

/// `POST .../bulk/get`.
pub(crate) async fn get(
    state: &AppState,
    account: &AccountId,
    ns: &NamespaceId,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (bytes, _held) = read_limited(headers, body, small_json(state)).await?;
    let request: BulkGetRequest =
        parse_json(&bytes, "{\"keys\": [...], \"type\"?, \"withMetadata\"?}")?;
    let as_json = check_get_request(&request)?;
    let entries =
        edge::read_many(state, account, ns, &request.keys, DEFAULT_CACHE_TTL, edge::Via::Rest)?;
    let total: usize =
        entries.iter().flatten().map(|e| e.value.as_ref().map_or(0, Bytes::len)).sum();
    if total > MAX_BULK_GET_TOTAL_BYTES {
        return Err(ApiError::TooLarge("Total size of request exceeds the limit of 25MB".into()));
    }
    let with_metadata = request.with_metadata.unwrap_or(false);
    let mut values = Map::new();
    for (key, entry) in request.keys.into_iter().zip(entries) {
        let value = match entry {
            None => Value::Null,
            Some(entry) => bulk_value(entry, as_json, with_metadata, true)
                .map_err(|NotJson| ApiError::BadRequest(NOT_JSON.into()))?,
        };
        values.insert(key, value);
    }
    // The answer holds up to 25 MiB of values until it is sent.
    let response = envelope::ok(BulkGetResult { values });
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.map_err(|err| ApiError::Storage {
        message: "could not render the bulk get answer".into(),
        cause: Some(Cause::new(err)),
    })?;
    Ok(Response::from_parts(parts, state.budget.response(bytes)?))
}

/// Checks a bulk get's type and keys before anything is read; whether values are JSON.
fn check_get_request(request: &BulkGetRequest) -> Result<bool, ApiError> {
    let as_json = match request.kind.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "\"{other}\" is not a valid type. Use \"json\" or \"text\""
            )))
        }
    };
    match request.keys.len() {
        0 => return Err(ApiError::BadRequest("You must request a minimum of 1 key".into())),
        n if n > MAX_BULK_GET_KEYS => {
            return Err(ApiError::BadRequest(format!(
                "You can request a maximum of {MAX_BULK_GET_KEYS} keys"
            )))
        }
        _ => {}
    }
    for key in &request.keys {
        validate_key(key)?;
    }
    Ok(as_json)
}

/// What a bulk get answers when JSON was asked for and a value is not JSON.
pub(crate) const NOT_JSON: &str =
    "At least one of the requested keys corresponds to a non-json value";

/// A found value that is not JSON, in a bulk get that asked for JSON.
pub(crate) struct NotJson;

/// One found key's value in a bulk get answer: parsed JSON or text, and with its metadata (and
/// its expiration, where the API gives it) when asked for. Shared by the REST API and the
/// Workers binding, which answer the same shape and refuse a non-JSON value each in their
/// own way ([`NOT_JSON`]).
pub(crate) fn bulk_value(
    entry: Entry,
    as_json: bool,
    with_metadata: bool,
    with_expiration: bool,
) -> Result<Value, NotJson> {
    let raw = entry.value.unwrap_or_default();
    let value = if as_json {
        serde_json::from_slice(&raw).map_err(|_| NotJson)?
    } else {
        // Bulk get serves text; bytes that are not UTF-8 are replaced, as a text decoder would.
        Value::String(String::from_utf8_lossy(&raw).into_owned())
    };
    if !with_metadata {
        return Ok(value);
    }
    let metadata = entry
        .metadata
        .as_ref()
        .and_then(raw_json)
        .and_then(|m: &RawValue| serde_json::from_str(m.get()).ok())
        .unwrap_or(Value::Null);
    let mut object = Map::new();
    object.insert("value".into(), value);
    object.insert("metadata".into(), metadata);
    if let Some(expiration) = entry.expiration.filter(|_| with_expiration) {
        object.insert("expiration".into(), expiration.into());
    }
    Ok(Value::Object(object))
}
