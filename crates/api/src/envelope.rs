//! The Cloudflare success envelope.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Serialize)]
struct Envelope<'a, T: Serialize, I: Serialize> {
    success: bool,
    errors: [(); 0],
    messages: [(); 0],
    result: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_info: Option<&'a I>,
}

/// `{success: true, errors: [], messages: [], result}`.
pub(crate) fn ok<T: Serialize>(result: T) -> Response {
    render(&Envelope::<T, ()> {
        success: true,
        errors: [],
        messages: [],
        result,
        result_info: None,
    })
}

/// The success envelope with a `result_info` (pagination).
pub(crate) fn ok_with_info<T: Serialize, I: Serialize>(result: T, info: &I) -> Response {
    render(&Envelope { success: true, errors: [], messages: [], result, result_info: Some(info) })
}

fn render<T: Serialize, I: Serialize>(envelope: &Envelope<'_, T, I>) -> Response {
    match serde_json::to_vec(envelope) {
        Ok(body) => {
            let mut response = (StatusCode::OK, body).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        // Only a non-string map key or a failing Serialize impl can get here; ours have neither.
        Err(err) => {
            tracing::error!(error = %err, "failed to serialize a response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
