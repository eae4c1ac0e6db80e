//! `npm login --auth-type=web` through section 12's device approval:
//! `POST {door}/-/v1/login` starts a device login and answers its page
//! (`loginUrl`, the code filled in) and `doneUrl`, which npm polls: 202
//! with `Retry-After` (and a JSON body, which npm parses) until a signed-in
//! user approves the code, then `{"token"}` once.

use bytes::Bytes;
use http::{header, Response, StatusCode};
use serde_json::json;

use super::{ApiError, ApiResult, Request};
use crate::db::device::{self, Poll};
use crate::server::{render_error, render_json, Shape, State};

const DONE: &str = "-/v1/login/done/";

pub async fn start(req: &Request<'_>) -> ApiResult {
    let scopes: Vec<String> = crate::db::ALL_SCOPES.iter().map(|s| s.to_string()).collect();
    let started = req.state.db(move |conn| device::start(conn, &scopes)).await?;
    let reg = req.reg();
    let url = reg.config.public_url();
    let door = crate::layout::url(&reg.root.layout().npm_dir());
    Ok((
        StatusCode::OK,
        json!({
            "loginUrl": format!("{url}/device?code={}", started.user_code),
            "doneUrl": format!("{url}{door}/{DONE}{}", started.device_code),
        }),
    ))
}

/// The device code a done URL's path carries.
pub fn code_of(path: &str) -> Option<String> {
    let (_, rest) = crate::npm::door_of(path)?;
    rest.strip_prefix(DONE).filter(|c| !c.is_empty() && !c.contains('/')).map(str::to_string)
}

/// One poll of a done URL.
pub async fn poll(state: &State, code: String) -> Response<Bytes> {
    let wait = |secs: i64| {
        let mut resp = render_json(StatusCode::ACCEPTED, &json!({}), None);
        resp.headers_mut().insert(header::RETRY_AFTER, secs.into());
        resp
    };
    let refuse = |e: ApiError| render_error(&e, None, Shape::Npm);
    match state.db(move |conn| device::poll(conn, &code)).await {
        Ok(Poll::Token(token)) => render_json(StatusCode::OK, &json!({ "token": token }), None),
        Ok(Poll::Pending) => wait(device::INTERVAL_SECS),
        Ok(Poll::SlowDown) => wait(2 * device::INTERVAL_SECS),
        Ok(Poll::Expired) => refuse(ApiError::invalid("the login has expired: run `npm login` again")),
        Ok(Poll::Denied) => refuse(ApiError::forbidden("the login was denied")),
        Ok(Poll::Unknown | Poll::Delivered) => refuse(ApiError::not_found("no such login")),
        Err(e) => refuse(e),
    }
}
