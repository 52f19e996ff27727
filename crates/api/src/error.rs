//! `ApiError`: every way a request can fail, with its HTTP status and Cloudflare error code, and
//! the Cloudflare failure envelope it renders to.
//!
//! The official SDKs decide what exception to raise from the HTTP status alone, so the status is
//! the part that must match Workers KV exactly; the codes follow Cloudflare where Cloudflare
//! documents them (docs/api.md lists each one and its source) and use 10001, the local
//! simulator's validation code, for validation failures whose real code is not published.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use edgekv_core::{KeyError, ValidationError};
use edgekv_store::{Cause, StoreError};
use serde_json::json;

/// The error code used for request validation failures whose Cloudflare code is unpublished.
const VALIDATION_CODE: u32 = 10001;

/// A failed API request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// No endpoint matches the method and path, or an id in the path is malformed.
    #[error("No route for the URI")]
    NoRoute,
    /// Missing or wrong credentials.
    #[error("Authentication error")]
    Unauthorized,
    /// The key does not exist (or is deleted or expired). The string names the operation.
    #[error("{0}: 'key not found'")]
    KeyNotFound(&'static str),
    /// The namespace does not exist in this account. The string names the operation.
    #[error("{0}: 'namespace not found'")]
    NamespaceNotFound(&'static str),
    /// A namespace with that title already exists in the account.
    #[error("a namespace with this account ID and title already exists")]
    DuplicateTitle,
    /// The account is at its namespace limit.
    #[error("{0}")]
    TooManyNamespaces(String),
    /// A key name is malformed or too long.
    #[error("{0}")]
    Key(#[from] KeyError),
    /// A value, TTL, metadata or listing parameter is out of bounds.
    #[error("{0}")]
    Validation(#[from] ValidationError),
    /// Some other malformed request: bad JSON, a bad query parameter, a bad cursor.
    #[error("{0}")]
    BadRequest(String),
    /// A body or part of one is over its limit. Nothing of it was stored.
    #[error("{0}")]
    TooLarge(String),
    /// The client's body stream failed before it was complete. Nothing of it was stored.
    #[error("failed to read request body: {0}")]
    BodyRead(String),
    /// The store could not commit or make the write durable. It was not acknowledged and is
    /// never shown; a client may retry it.
    #[error("internal storage error: {message}")]
    Storage {
        /// What failed, in words the client sees.
        message: String,
        /// The error underneath, for the log line (never sent to the client).
        #[source]
        cause: Option<Cause>,
    },
    /// The key was written less than a second ago in this region: Workers KV takes at most one
    /// write per second per key. Nothing of the request was stored; retry after a second.
    #[error("Too Many Requests: a key takes at most one write per second")]
    RateLimited,
    /// The store takes no writes for now (its disk is nearly full, or it is recovering from a
    /// storage failure). Nothing of the request was stored; retry after `Retry-After`.
    #[error("service unavailable: {0}")]
    Unavailable(String),
}

/// How long a client is told to wait before retrying a write the store could not take.
const RETRY_AFTER_SECS: u32 = 5;
/// How long a client is told to wait before writing a rate-limited key again.
const RATE_RETRY_AFTER_SECS: u32 = 1;

impl ApiError {
    /// The HTTP status Workers KV answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NoRoute | ApiError::KeyNotFound(_) | ApiError::NamespaceNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            ApiError::Unauthorized => StatusCode::FORBIDDEN,
            ApiError::Key(KeyError::TooLong(_)) => StatusCode::URI_TOO_LONG,
            ApiError::Validation(ValidationError::MetadataTooLarge(_)) | ApiError::TooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::DuplicateTitle
            | ApiError::TooManyNamespaces(_)
            | ApiError::Key(_)
            | ApiError::Validation(_)
            | ApiError::BadRequest(_)
            | ApiError::BodyRead(_) => StatusCode::BAD_REQUEST,
            ApiError::Storage { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The Cloudflare error code in the envelope.
    pub fn cf_code(&self) -> u32 {
        match self {
            ApiError::NoRoute => 7003,
            ApiError::Unauthorized => 10000,
            ApiError::KeyNotFound(_) => 10009,
            ApiError::NamespaceNotFound(_) => 10013,
            ApiError::DuplicateTitle => 10014,
            ApiError::TooManyNamespaces(_)
            | ApiError::Key(_)
            | ApiError::Validation(_)
            | ApiError::BadRequest(_)
            | ApiError::TooLarge(_)
            | ApiError::BodyRead(_) => VALIDATION_CODE,
            // The local simulator's internal error code (docs/api.md): Workers KV does not
            // publish its code for a busy key, and Cloudflare's general rate-limit code (971)
            // is below the minimum of 1000 the KV API's schema sets for error codes.
            ApiError::Storage { .. } | ApiError::Unavailable(_) | ApiError::RateLimited => 10000,
        }
    }

    /// Maps a store failure for the operation named `op` (used in the not-found message).
    pub fn from_store(op: &'static str, err: StoreError) -> Self {
        match err {
            // A namespace of another account is, for this account, a namespace that is not there.
            StoreError::NamespaceNotFound | StoreError::AccountMismatch(_) => {
                ApiError::NamespaceNotFound(op)
            }
            StoreError::DuplicateTitle => ApiError::DuplicateTitle,
            StoreError::TooManyNamespaces => ApiError::TooManyNamespaces(err.to_string()),
            StoreError::Storage { context, cause } => ApiError::Storage { message: context, cause },
            StoreError::Unavailable(message) => ApiError::Unavailable(message),
        }
    }
}

/// The envelope of a refusal made before any route saw the request: by the HTTP layer (a head
/// it cannot parse, 400; a URI over its limit, 414; headers too large, 431) or by a listener at
/// its connection limit (503). Rendered as Cloudflare renders its errors, so clients that parse
/// every error body get one here too.
pub fn refusal_envelope(status: u16) -> bytes::Bytes {
    let (code, message) = match status {
        400 => (
            VALIDATION_CODE,
            "Bad Request: the request line, a header or the message framing is malformed",
        ),
        414 => (VALIDATION_CODE, "URI Too Long: the request line is over 64 KB"),
        431 => (VALIDATION_CODE, "Request Header Fields Too Large"),
        503 => (10000, "Service Unavailable: the node is at its connection limit; retry shortly"),
        _ => (10000, "the request was refused"),
    };
    let body = json!({
        "success": false,
        "errors": [{ "code": code, "message": message }],
        "messages": [],
        "result": null,
    });
    bytes::Bytes::from(body.to_string())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "success": false,
            "errors": [{ "code": self.cf_code(), "message": self.to_string() }],
            "messages": [],
            "result": null,
        });
        let mut response = (self.status(), body.to_string()).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // The Python SDK retries some statuses; only a storage failure or a busy key may get
        // better by retrying.
        let retry = matches!(
            self,
            ApiError::Storage { .. } | ApiError::Unavailable(_) | ApiError::RateLimited
        );
        let should = HeaderValue::from_static(if retry { "true" } else { "false" });
        response.headers_mut().insert("x-should-retry", should);
        let retry_after = match self {
            ApiError::Unavailable(_) => Some(RETRY_AFTER_SECS),
            ApiError::RateLimited => Some(RATE_RETRY_AFTER_SECS),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes_follow_workers_kv() {
        let cases = [
            (ApiError::NoRoute, 404, 7003),
            (ApiError::Unauthorized, 403, 10000),
            (ApiError::KeyNotFound("get"), 404, 10009),
            (ApiError::NamespaceNotFound("get"), 404, 10013),
            (ApiError::DuplicateTitle, 400, 10014),
            (ApiError::Key(KeyError::TooLong(513)), 414, 10001),
            (ApiError::Key(KeyError::Empty), 400, 10001),
            (ApiError::Validation(ValidationError::MetadataTooLarge(1025)), 413, 10001),
            (ApiError::Validation(ValidationError::TtlTooShort("5".into())), 400, 10001),
            (ApiError::TooLarge("big".into()), 413, 10001),
        ];
        for (err, status, code) in cases {
            assert_eq!((err.status().as_u16(), err.cf_code()), (status, code), "{err:?}");
        }
        assert_eq!(ApiError::KeyNotFound("get").to_string(), "get: 'key not found'");
    }

    #[test]
    fn a_storage_failure_tells_the_client_what_failed_and_keeps_the_cause_for_the_log() {
        let io = std::io::Error::other("Input/output error (os error 5)");
        let err = ApiError::from_store("get", StoreError::storage("could not read a key", io));
        assert_eq!((err.status().as_u16(), err.cf_code()), (500, 10000));
        assert_eq!(err.to_string(), "internal storage error: could not read a key");
        assert_eq!(
            edgekv_store::chain(&err),
            "internal storage error: could not read a key: Input/output error (os error 5)"
        );
    }
}
