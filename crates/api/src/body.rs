//! Reading request bodies within limits, and the multipart form of a value write.
//!
//! A body over its limit is refused as soon as the limit is crossed, from `Content-Length` when
//! the client declares one, else while it streams in: nothing past the limit is buffered and
//! nothing of the request is stored. A body also takes its share of the body budget before it
//! is buffered (see `budget`), and holds it until the request is done. What a refusal leaves
//! unread is the server's to read and drop before it answers (the node's `serve::drain`), so
//! that a client sending its whole body first still reads the answer.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::{Bytes, BytesMut};
use edgekv_core::canonical_metadata;
use edgekv_core::limits::MAX_VALUE_BYTES;
use futures_util::StreamExt;

use crate::budget::{BodyBudget, Held};
use crate::ApiError;

/// Largest `metadata` part we will buffer before measuring it. Its compact form must still fit in
/// 1024 bytes, but pretty-printed JSON may be bigger on the wire.
const MAX_METADATA_PART_BYTES: usize = 64 * 1024;

/// Room for multipart boundaries and part headers around a maximal value and metadata.
const MULTIPART_OVERHEAD_BYTES: usize = 64 * 1024;

/// How a body is read: its limit, the error past it, and its cost in the body budget.
#[derive(Clone, Copy)]
pub(crate) struct Reading<'a> {
    /// The most bytes the body may have.
    pub(crate) limit: usize,
    /// The error for a longer body, from the length known so far.
    pub(crate) too_large: fn(usize) -> ApiError,
    pub(crate) budget: &'a BodyBudget,
    /// Budget bytes per body byte: more than one for a body that is parsed into owned data
    /// (a bulk request's items take as much again as its JSON, and more once decoded).
    pub(crate) cost: usize,
}

/// Reads a whole body within `reading`'s limit, holding its share of the budget.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    reading: Reading<'_>,
) -> Result<(Bytes, Held), ApiError> {
    let declared = content_length(headers);
    if let Some(len) = declared.filter(|len| *len > reading.limit) {
        return Err((reading.too_large)(len));
    }
    let mut held = Held::default();
    let mut paid = declared.unwrap_or(0).saturating_mul(reading.cost);
    reading.budget.take(&mut held, paid)?;
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(reading.limit));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| ApiError::BodyRead(err.to_string()))?;
        if buf.len() + chunk.len() > reading.limit {
            return Err((reading.too_large)(declared.unwrap_or(buf.len() + chunk.len())));
        }
        buf.extend_from_slice(&chunk);
        // A chunked body (or one longer than declared) pays as it arrives.
        let due = buf.len().saturating_mul(reading.cost);
        if due > paid {
            reading.budget.take(&mut held, due - paid)?;
            paid = due;
        }
    }
    Ok((buf.freeze(), held))
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
    /// Its share of the body budget, until the write is done.
    pub(crate) _held: Held,
}

/// The boundary of a `multipart/form-data` body, or `None` for any other content type, whose
/// body is the value itself. A form whose boundary is missing, empty or not ASCII cannot be split
/// into its parts; it is refused, because storing it verbatim would acknowledge a value the
/// client never meant to write.
pub(crate) fn multipart_boundary(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else { return Ok(None) };
    // Compared as bytes: a header that is not ASCII must still be recognized as a form.
    let mime = content_type.as_bytes().split(|b| *b == b';').next().unwrap_or_default();
    if !mime.trim_ascii().eq_ignore_ascii_case(b"multipart/form-data") {
        return Ok(None);
    }
    let text = content_type
        .to_str()
        .map_err(|_| malformed("the Content-Type header and its boundary must be ASCII"))?;
    match multer::parse_boundary(text) {
        Ok(boundary) if !boundary.is_empty() => Ok(Some(boundary)),
        Ok(_) => Err(malformed("the boundary is empty")),
        Err(err) => Err(malformed(&err.to_string())),
    }
}

fn malformed(why: &str) -> ApiError {
    ApiError::BadRequest(format!("malformed multipart body: {why}"))
}

/// Reads a value write. A `multipart/form-data` body carries a `value` part (a file or a text
/// field) and an optional `metadata` part holding JSON; any other body, whatever its content
/// type, is the value itself, stored verbatim.
pub(crate) async fn read_value_body(
    headers: &HeaderMap,
    body: Body,
    budget: &BodyBudget,
) -> Result<ValueBody, ApiError> {
    let Some(boundary) = multipart_boundary(headers)? else {
        let reading =
            Reading { limit: MAX_VALUE_BYTES, too_large: value_too_large, budget, cost: 1 };
        let (value, held) = read_limited(headers, body, reading).await?;
        return Ok(ValueBody { value, metadata: None, _held: held });
    };
    let whole_limit = MAX_VALUE_BYTES + MAX_METADATA_PART_BYTES + MULTIPART_OVERHEAD_BYTES;
    let declared = content_length(headers);
    if let Some(len) = declared.filter(|len| *len > whole_limit) {
        return Err(value_too_large(len));
    }
    // The form is parsed as it streams; it pays for what it may hold up front.
    let mut held = Held::default();
    budget.take(&mut held, declared.unwrap_or(whole_limit))?;
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(whole_limit as u64));
    let form = multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let (value, metadata) = read_form(form).await?;
    Ok(ValueBody { value, metadata, _held: held })
}

/// The `value` and `metadata` parts of a form; other parts are skipped unread. A second `value`
/// or `metadata` part is refused: keeping either one would silently drop the other.
async fn read_form(
    mut form: multer::Multipart<'static>,
) -> Result<(Bytes, Option<String>), ApiError> {
    let mut value = None;
    let mut metadata = None;
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("value") => {
                only_once(value.is_some(), "value")?;
                value = Some(read_part(field, MAX_VALUE_BYTES, value_too_large).await?);
            }
            Some("metadata") => {
                only_once(metadata.is_some(), "metadata")?;
                let raw = read_part(field, MAX_METADATA_PART_BYTES, metadata_too_large).await?;
                metadata = Some(metadata_part(&raw)?);
            }
            _ => {}
        }
    }
    let value = value
        .ok_or_else(|| ApiError::BadRequest("the multipart form has no 'value' part".into()))?;
    Ok((value, metadata.flatten()))
}

fn only_once(seen: bool, name: &str) -> Result<(), ApiError> {
    if seen {
        return Err(malformed(&format!("the form has more than one '{name}' part")));
    }
    Ok(())
}

/// Reads one part of at most `limit` bytes.
async fn read_part(
    mut field: multer::Field<'static>,
    limit: usize,
    too_large: fn(usize) -> ApiError,
) -> Result<Bytes, ApiError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if buf.len() + chunk.len() > limit {
            return Err(too_large(buf.len() + chunk.len()));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn metadata_too_large(len: usize) -> ApiError {
    ApiError::Validation(edgekv_core::ValidationError::MetadataTooLarge(len))
}

/// The metadata a `metadata` part holds, compact. The Python SDK sends `metadata=None` as an
/// empty part: no metadata.
fn metadata_part(raw: &[u8]) -> Result<Option<String>, ApiError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    Ok(canonical_metadata(raw)?)
}

fn multipart_error(err: multer::Error) -> ApiError {
    match err {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            value_too_large(MAX_VALUE_BYTES + 1)
        }
        multer::Error::StreamReadFailed(err) => ApiError::BodyRead(err.to_string()),
        other => malformed(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn boundary_of(content_type: &[u8]) -> Result<Option<String>, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_bytes(content_type).unwrap());
        multipart_boundary(&headers)
    }

    #[test]
    fn only_a_form_has_a_boundary_and_a_form_must_have_a_usable_one() {
        assert_eq!(multipart_boundary(&HeaderMap::new()), Ok(None));
        assert_eq!(boundary_of(b"application/octet-stream"), Ok(None));
        assert_eq!(boundary_of(b"text/plain; boundary=x"), Ok(None));
        assert_eq!(boundary_of(b"text/plain; charset=\xff"), Ok(None));
        assert_eq!(boundary_of(b"multipart/form-data; boundary=ab-1"), Ok(Some("ab-1".into())));
        assert_eq!(boundary_of(b"Multipart/Form-Data; boundary=\"a b\""), Ok(Some("a b".into())));
        for bad in [
            &b"multipart/form-data"[..],
            b"multipart/form-data;",
            b"multipart/form-data; boundary=",
            b"multipart/form-data; boundary=\"\"",
            b"multipart/form-data; boundary=\xc3\xa9",
        ] {
            let err = boundary_of(bad).unwrap_err();
            assert_eq!((err.status().as_u16(), err.cf_code()), (400, 10001), "{bad:?}");
            assert!(err.to_string().starts_with("malformed multipart body: "), "{err}");
        }
    }
}
