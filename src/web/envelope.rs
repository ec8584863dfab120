//! The response envelope of every answer (`{"success": true, "data": ...}`
//! or `{"success": false, "error": {...}}`, see docs/WEBHOOKS.md), and the
//! one error type of the HTTP layer. A 5xx body never carries internals.

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

/// `{"success": true, "data": ...}`
pub fn ok<T: Serialize>(status: StatusCode, data: &T) -> Response {
    let body = serde_json::json!({"success": true, "data": data});
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

/// Pagination block of list answers.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub page: i64,
    pub limit: i64,
    pub total: i64,
    pub total_pages: i64,
}

impl Pagination {
    pub fn new(page: i64, limit: i64, total: i64) -> Pagination {
        let total_pages = if limit > 0 {
            (total + limit - 1) / limit
        } else {
            0
        };
        Pagination {
            page,
            limit,
            total,
            total_pages,
        }
    }
}

/// `{"success": true, "data": [...], "pagination": {...}}`
pub fn list<T: Serialize>(data: &[T], pagination: Pagination) -> Response {
    let body = serde_json::json!({"success": true, "data": data, "pagination": pagination});
    warp::reply::json(&body).into_response()
}

/// Every error the API answers with.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable: VALIDATION_ERROR, NOT_FOUND, UNAUTHORIZED, ...
    pub code: &'static str,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> ApiError {
        self.details = Some(details);
        self
    }

    /// 400 naming the field and the rule it breaks.
    pub fn validation(field: &str, rule: impl Into<String>) -> ApiError {
        let rule = rule.into();
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("{field}: {rule}"),
        )
        .with_details(serde_json::json!([{"field": field, "message": rule}]))
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("{what} not found"),
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    /// 500 with a generic message; the cause goes to the log only.
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "internal error",
        )
    }

    /// 503 for a dependency that is down or a feature that is not configured.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            message,
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let mut error = serde_json::json!({"code": self.code, "message": self.message});
        if let Some(d) = self.details {
            error["details"] = d;
        }
        let body = serde_json::json!({"success": false, "error": error});
        warp::reply::with_status(warp::reply::json(&body), self.status).into_response()
    }
}

impl warp::reject::Reject for ApiError {}
