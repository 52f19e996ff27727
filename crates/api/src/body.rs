//! Reading request bodies within limits, and the multipart form of a value write.
//!
//! A body over its limit is refused as soon as the limit is crossed, from `Content-Length` when
//! the client declares one, else while it streams in: nothing past the limit is buffered and
//! nothing of the request is stored.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::{Bytes, BytesMut};
use edgekv_core::canonical_metadata;
use edgekv_core::limits::MAX_VALUE_BYTES;
use futures_util::StreamExt;

use crate::ApiError;

/// Largest `metadata` part we will buffer before measuring it. Its compact form must still fit in
/// 1024 bytes, but pretty-printed JSON may be bigger on the wire.
const MAX_METADATA_PART_BYTES: usize = 64 * 1024;

/// Room for multipart boundaries and part headers around a maximal value and metadata.
const MULTIPART_OVERHEAD_BYTES: usize = 64 * 1024;

/// Reads a whole body of at most `limit` bytes; `too_large` builds the error for a longer one
/// from the length known so far.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    too_large: impl Fn(usize) -> ApiError,
) -> Result<Bytes, ApiError> {
    let declared = content_length(headers);
    if let Some(len) = declared.filter(|len| *len > limit) {
        return Err(too_large(len));
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| ApiError::BodyRead(err.to_string()))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large(declared.unwrap_or(buf.len() + chunk.len())));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// The error for a value over 25 MiB, with Workers KV's message.
pub(crate) fn value_too_large(len: usize) -> ApiError {
    ApiError::TooLarge(format!("Value length of {len} exceeds limit of {MAX_VALUE_BYTES}."))
}

/// The body of a value write: the value bytes and, from a multipart form, optional metadata.
pub(crate) struct ValueBody {
    pub(crate) value: Bytes,
    pub(crate) metadata: Option<String>,
}

/// The multipart boundary if the request is `multipart/form-data`.
pub(crate) fn multipart_boundary(headers: &HeaderMap) -> Option<String> {
    let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mime = content_type.split(';').next()?.trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    multer::parse_boundary(content_type).ok()
}

/// Reads a value write. A `multipart/form-data` body carries a `value` part (a file or a text
/// field) and an optional `metadata` part holding JSON; any other body, whatever its content
/// type, is the value itself, stored verbatim.
pub(crate) async fn read_value_body(
    headers: &HeaderMap,
    body: Body,
) -> Result<ValueBody, ApiError> {
    let Some(boundary) = multipart_boundary(headers) else {
        let value = read_limited(headers, body, MAX_VALUE_BYTES, value_too_large).await?;
        return Ok(ValueBody { value, metadata: None });
    };
    let whole_limit = MAX_VALUE_BYTES + MAX_METADATA_PART_BYTES + MULTIPART_OVERHEAD_BYTES;
    if let Some(len) = content_length(headers).filter(|len| *len > whole_limit) {
        return Err(value_too_large(len));
    }
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(whole_limit as u64));
    let mut form =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let mut value = None;
    let mut metadata = None;
    while let Some(mut field) = form.next_field().await.map_err(multipart_error)? {
        let limit = match field.name() {
            Some("value") => MAX_VALUE_BYTES,
            Some("metadata") => MAX_METADATA_PART_BYTES,
            _ => continue, // Unknown parts are skipped unread.
        };
        let mut buf = BytesMut::new();
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            if buf.len() + chunk.len() > limit {
                return Err(match field.name() {
                    Some("value") => value_too_large(buf.len() + chunk.len()),
                    _ => ApiError::Validation(edgekv_core::ValidationError::MetadataTooLarge(
                        buf.len() + chunk.len(),
                    )),
                });
            }
            buf.extend_from_slice(&chunk);
        }
        match field.name() {
            Some("value") => value = Some(buf.freeze()),
            // The Python SDK sends `metadata=None` as an empty part: no metadata.
            _ if buf.iter().all(u8::is_ascii_whitespace) => metadata = None,
            _ => metadata = canonical_metadata(&buf)?,
        }
    }
    let value = value
        .ok_or_else(|| ApiError::BadRequest("the multipart form has no 'value' part".into()))?;
    Ok(ValueBody { value, metadata })
}

fn multipart_error(err: multer::Error) -> ApiError {
    match err {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            value_too_large(MAX_VALUE_BYTES + 1)
        }
        multer::Error::StreamReadFailed(err) => ApiError::BodyRead(err.to_string()),
        other => ApiError::BadRequest(format!("malformed multipart body: {other}")),
    }
}
