//! `POST /add-checkpoint` (C2SP tlog-witness) over HTTP: for `cairn
//! witness`, and for a mirror that witnesses its source (`cairn mirror
//! --witness NAME`, then `cairn serve` on the mirror).

use std::sync::Arc;
use warp::http::{header, Response, StatusCode};
use warp::hyper::Body;

use crate::log::witness::Witness;

pub async fn add_checkpoint(witness: Arc<Witness>, body: Body) -> Response<Body> {
    let reply = |status: StatusCode, content_type: &str, body: Vec<u8>| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    };
    // A checkpoint with its proof is a few kilobytes.
    let body = match warp::hyper::body::to_bytes(body).await {
        Ok(b) if b.len() <= 64 << 10 => b,
        _ => return reply(StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", b"bad body\n".to_vec()),
    };
    match tokio::task::spawn_blocking(move || witness.add_checkpoint(&body)).await {
        Ok(a) => reply(StatusCode::from_u16(a.status).expect("a status"), a.content_type, a.body),
        Err(_) => reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8", Vec::new()),
    }
}
