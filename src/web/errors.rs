//! Where errors become answers: store errors (by SQLSTATE) and warp's own
//! rejections map to the envelope here, and nowhere else. A 5xx never
//! carries internals; client mistakes are always 4xx.

use warp::http::StatusCode;

use super::envelope::ApiError;
use crate::store::StoreError;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let message = e.db_message().unwrap_or("invalid input").to_string();
        match e.sql_state() {
            // Raised by postbox's own checks: unknown type, payload not an object, ...
            // 22P05/22021: text or JSON with a NUL character, which Postgres cannot store.
            // 22003: a JSON number beyond Postgres's numeric range (about 1e131072).
            Some("22023") | Some("22P02") | Some("22001") | Some("23514") | Some("23502")
            | Some("22P05") | Some("22021") | Some("22003") => {
                ApiError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
            }
            // Deadlock or serialization failure: a concurrent change won; try again.
            Some("40P01") | Some("40001") => {
                ApiError::unavailable("the request collided with a concurrent change; retry it")
            }
            Some("54000") => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", message)
            }
            Some("23505") => ApiError::new(StatusCode::CONFLICT, "CONFLICT", message),
            Some("23503") => ApiError::not_found("referenced row"),
            _ => ApiError::internal(&e),
        }
    }
}

/// The envelope for any rejection that reached the end of the router.
pub fn from_rejection(rej: &warp::Rejection) -> ApiError {
    use warp::reject;
    if let Some(e) = rej.find::<ApiError>() {
        return e.clone();
    }
    if rej.is_not_found() {
        return route_not_found();
    }
    if rej.find::<reject::MethodNotAllowed>().is_some() {
        return method_not_allowed(&[]);
    }
    if rej.find::<reject::PayloadTooLarge>().is_some() {
        return payload_too_large();
    }
    if rej.find::<reject::UnsupportedMediaType>().is_some() {
        return unsupported_media_type();
    }
    if rej.find::<reject::LengthRequired>().is_some() {
        return ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "LENGTH_REQUIRED",
            "a Content-Length header is required",
        );
    }
    if let Some(e) = rej.find::<reject::MissingHeader>() {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "MISSING_HEADER",
            format!("missing header {}", e.name()),
        );
    }
    if let Some(e) = rej.find::<reject::InvalidHeader>() {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_HEADER",
            format!("invalid header {}", e.name()),
        );
    }
    if rej.find::<reject::InvalidQuery>().is_some() {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY",
            "invalid query string",
        );
    }
    if let Some(e) = rej.find::<warp::filters::body::BodyDeserializeError>() {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            format!("request body: {e}"),
        );
    }
    // Anything left is a filter that failed on the server's side.
    ApiError::internal(&format!("unhandled rejection: {rej:?}"))
}

/// 404 for a path no route serves.
pub fn route_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route")
}

/// 405 naming the methods the path accepts (the caller sets `Allow`).
pub fn method_not_allowed(allowed: &[&str]) -> ApiError {
    let message = if allowed.is_empty() {
        "method not allowed".to_string()
    } else {
        format!(
            "method not allowed; this route accepts {}",
            allowed.join(", ")
        )
    };
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        message,
    )
}

/// 413 for an API body over the cap.
pub fn payload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        format!(
            "request body is larger than {} bytes",
            super::body::MAX_BODY
        ),
    )
}

/// 415 for a non-empty API body that is not sent as JSON.
pub fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
        "request body must be JSON: send Content-Type: application/json",
    )
}
