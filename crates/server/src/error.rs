//! The one place errors become HTTP responses: RFC 9457 problem details.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error as the caller sees it. `detail` is written for the caller: it never
/// carries internal paths, SQL or anything about data the caller may not see.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub title: &'static str,
    /// A stable name of the problem the web pages translate; when `None`,
    /// one derived from the status (`not_found`, `bad_request`...).
    pub code: Option<&'static str>,
    pub detail: String,
}

impl ApiError {
    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            title: "Not Found",
            code: None,
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            title: "Bad Request",
            code: None,
            detail: detail.into(),
        }
    }

    /// A failure of ours: logged in full, answered without internals.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!("{context}: {error}");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "Internal Server Error",
            code: None,
            detail: "the server could not answer this request; the error has been logged".into(),
        }
    }

    /// The answer for a layer that does not exist for this caller.
    pub fn unknown_layer(id: &str) -> Self {
        // Echo only what the caller sent, shortened, so the body cannot be used
        // to tell hidden layers from missing ones.
        let shown: String = id.chars().take(64).collect();
        ApiError::not_found(format!("no layer `{shown}`"))
    }
}

/// A store that could not answer a read while a request was being served.
impl From<chizu_store::StoreError> for ApiError {
    fn from(e: chizu_store::StoreError) -> Self {
        match e {
            // The next answer comes from the new version, a moment later.
            chizu_store::StoreError::Replaced(_) => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                title: "Service Unavailable",
                code: None,
                detail: "the layer is being replaced by a new version; try again".into(),
            },
            e => ApiError::internal("reading the store", e),
        }
    }
}

/// The code of a problem nothing more specific was said about.
pub fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        408 => "timeout",
        413 => "too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        422 => "over_budget",
        429 => "too_many_requests",
        503 => "unavailable",
        _ if status.is_server_error() => "internal",
        _ => "error",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "type": "about:blank",
            "title": self.title,
            "code": self.code.unwrap_or_else(|| code_of(self.status)),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    }
}
