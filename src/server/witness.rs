//! `POST /add-checkpoint` (C2SP tlog-witness) over HTTP: for `cairn
//! witness`, and for a mirror that witnesses its source (`cairn mirror
//! --witness NAME`, then `cairn serve` on the mirror).

use bytes::Bytes;
use http::{header, Response, StatusCode};
use std::sync::Arc;

use crate::log::witness::Witness;

/// A checkpoint with its proof is a few kilobytes: a larger body is refused.
pub const MAX_BODY: u64 = 64 << 10;

/// Answers the request body (`None`: it could not be read).
pub async fn add_checkpoint(witness: Arc<Witness>, body: Option<Bytes>) -> Response<Bytes> {
    let reply = |status: StatusCode, content_type: &str, body: Vec<u8>| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, content_type)
            .body(Bytes::from(body))
            .unwrap()
    };
    let body = match body {
        Some(b) if b.len() as u64 <= MAX_BODY => b,
        _ => return reply(StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", b"bad body\n".to_vec()),
    };
    match tokio::task::spawn_blocking(move || witness.add_checkpoint(&body)).await {
        Ok(a) => reply(StatusCode::from_u16(a.status).expect("a status"), a.content_type, a.body),
        Err(_) => reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8", Vec::new()),
    }
}
