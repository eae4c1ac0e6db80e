//! cargo's registry web API (SPEC section 8), answered in cargo's error shape.

use super::{ApiError, ApiResult, Request};

pub async fn route(req: &Request<'_>, segs: &[&str]) -> ApiResult {
    Err(ApiError::not_found(format!(
        "no cargo API endpoint {} /api/v1/crates/{}",
        req.method,
        segs.join("/")
    )))
}
