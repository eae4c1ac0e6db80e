//! The one response body of the server (hyper 1 takes any `http_body::Body`):
//! boxed, so a file held in memory, a file streamed from disk, the event
//! stream and an answer of the warp filters are all one type.

use bytes::Bytes;
use http::Response;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub type Body = BoxBody<Bytes, BoxError>;

/// A body of bytes in hand.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// An answer rendered whole (the API's, which the warp filters reply with).
pub fn boxed(resp: Response<Bytes>) -> Response<Body> {
    resp.map(full)
}

/// A body fed by a task, chunk by chunk; an `Err` sent cuts the response
/// short (the client sees a broken transfer, not a short file). Sending
/// fails once the client is gone.
pub fn channel() -> (tokio::sync::mpsc::Sender<Result<Bytes, BoxError>>, Body) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, BoxError>>(1);
    let frames =
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|c| c.map(|c| c.map(Frame::data))));
    (tx, StreamBody::new(frames).boxed())
}

/// The warp filters' answer as this server's.
pub fn of_warp(resp: warp::reply::Response) -> Response<Body> {
    resp.map(|b| b.map_err(BoxError::from).boxed())
}
