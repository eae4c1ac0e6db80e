//! The one error shape of the HTTP API: `{"error": code, "message": text}`.

use http::StatusCode;
use serde_json::json;

use crate::publish::WriteError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Fields the body carries beside `error` and `message`.
    pub extra: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), extra: None }
    }
    pub fn invalid(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", m)
    }
    pub fn unauthorized(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m)
    }
    pub fn forbidden(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", m)
    }
    pub fn not_found(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not-found", m)
    }
    pub fn conflict(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", m)
    }
    /// 429: the caller's (or the address's) bucket is empty.
    pub fn too_many_requests() -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too-many-requests", "rate limit exceeded; retry later")
    }
    pub fn too_large(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", m)
    }
    /// 503: the node cannot take this now (its storage is full or
    /// read-only); answered with `Retry-After`.
    pub fn unavailable(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m)
    }
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the operator's log has details",
        )
    }

    /// An archive rejection: 413 for the size limits, else 400.
    pub fn from_archive(e: crate::archive::ArchiveError) -> ApiError {
        if e.is_too_large() {
            ApiError::too_large(e.to_string())
        } else {
            ApiError::invalid(e.to_string())
        }
    }

    /// cargo's error shape, for its routes.
    pub fn cargo_body(&self) -> Vec<u8> {
        serde_json::to_vec(&json!({ "errors": [{ "detail": self.message }] })).unwrap()
    }

    /// npm's error shape: npm prints `error` after the status line.
    pub fn npm_body(&self) -> Vec<u8> {
        serde_json::to_vec(&json!({ "error": self.message, "code": self.code })).unwrap()
    }

    pub fn body(&self) -> Vec<u8> {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let Some(serde_json::Value::Object(extra)) = &self.extra {
            body.as_object_mut().expect("an object").extend(extra.clone());
        }
        serde_json::to_vec(&body).unwrap()
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> ApiError {
        match e {
            WriteError::Invalid(m) => ApiError::invalid(m),
            WriteError::Forbidden(m) => ApiError::forbidden(m),
            WriteError::NotFound(m) => ApiError::not_found(m),
            WriteError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            WriteError::UpstreamName(m) => ApiError::new(StatusCode::CONFLICT, "upstream-name", m),
            WriteError::QuotaExceeded(q) => ApiError {
                extra: Some(json!({ "usage": q.usage, "limit": q.limit, "size": q.size })),
                ..ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "quota-exceeded", q.to_string())
            },
            WriteError::Unavailable(m) => ApiError::unavailable(m),
            WriteError::Internal(e) => ApiError::internal(format!("{e:#}")),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    /// 503 when the storage under the request failed it (full, read-only),
    /// else 500.
    fn from(e: anyhow::Error) -> ApiError {
        ApiError::from(WriteError::of_storage(e))
    }
}
