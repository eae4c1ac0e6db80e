//! `GET /api/v1/events`: the event log as Server-Sent Events (SPEC section
//! 13), anonymous and public, spending the anonymous bucket of the
//! caller's address once per connection. Each event is
//! `id: {id}\nevent: {kind}\ndata: {json}\n\n`; the stream starts after the
//! `Last-Event-ID` header's id (what an EventSource sends when it
//! reconnects) or else the `?after=` query's (0: from the first event),
//! replays the table from there, then follows new events: woken by the
//! writer's bell, and looking at the table again at least every
//! [`KEEP_ALIVE`], when a comment line keeps idle proxies from closing it.
//!
//! The one read of the public API that touches the database: catching up
//! from an id is a query of the events table, and so is each wake.
//! Every event is public while there are no organisations; when private
//! ones exist (issue 17), this stream shows only public events
//! (`db::events::after` reads only those).

use bytes::Bytes;
use http::{header, HeaderMap, Response, StatusCode};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::body::{self, Body};
use super::{render_error, with_rate_headers, ApiError, State};
use crate::db::events::{self, Event};

/// The longest a stream stays silent: a comment is sent, and the table read.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Events read per query.
const PAGE: usize = 500;
/// Streams open at once, at most; more are answered 503 (each holds a
/// connection and wakes with every write).
const MAX_STREAMS: usize = 1024;
static OPEN: AtomicUsize = AtomicUsize::new(0);

pub async fn stream(state: &State, headers: &HeaderMap, query: &str, ip: IpAddr) -> Response<Body> {
    let decision = state.limits.anonymous(ip);
    if !decision.allowed {
        let e = ApiError::too_many_requests();
        return body::boxed(render_error(&e, Some(decision), super::Shape::Api));
    }
    let after = match start_after(headers, query) {
        Ok(after) => after,
        Err(e) => return body::boxed(render_error(&e, Some(decision), super::Shape::Api)),
    };
    if OPEN.fetch_add(1, Ordering::SeqCst) >= MAX_STREAMS {
        OPEN.fetch_sub(1, Ordering::SeqCst);
        let e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "too many event streams open");
        return body::boxed(render_error(&e, Some(decision), super::Shape::Api));
    }
    let (tx, stream) = body::channel();
    let pool = state.pool.clone();
    let mut bell = state.reg.events.subscribe();
    tokio::spawn(async move {
        let _open = Open;
        let mut last = after;
        loop {
            bell.borrow_and_update();
            let p = pool.clone();
            let page =
                tokio::task::spawn_blocking(move || p.run(move |c| events::after(c, last, PAGE))).await;
            let Ok(Ok(page)) = page else { return }; // the client reconnects from its last id
            for e in &page {
                if tx.send(Ok(frame(e))).await.is_err() {
                    return; // gone
                }
                last = e.id;
            }
            if page.len() == PAGE {
                continue;
            }
            tokio::select! {
                changed = bell.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(KEEP_ALIVE) => {
                    if tx.send(Ok(Bytes::from_static(b": keep-alive\n\n"))).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    with_rate_headers(Response::builder(), Some(decision))
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
        // nginx in front: pass each event on at once.
        .header("X-Accel-Buffering", "no")
        .body(stream)
        .unwrap()
}

/// Counts an open stream while its task lives.
struct Open;

impl Drop for Open {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Where the stream starts: after `Last-Event-ID` (a reconnect's, newer
/// than the query it first came with), else after `?after=`, else from the start.
fn start_after(headers: &HeaderMap, query: &str) -> Result<i64, ApiError> {
    let from_query = query.split('&').find_map(|kv| kv.strip_prefix("after="));
    let given = match headers.get("last-event-id") {
        Some(v) => Some(v.to_str().unwrap_or("").trim()),
        None => from_query,
    };
    match given {
        None | Some("") => Ok(0),
        Some(id) => id
            .parse::<i64>()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| ApiError::invalid(format!("`{id}` is not an event id"))),
    }
}

/// One event in the stream's text form; its JSON is one line.
fn frame(e: &Event) -> Bytes {
    let data = serde_json::to_string(e).expect("an event serializes");
    Bytes::from(format!("id: {}\nevent: {}\ndata: {data}\n\n", e.id, e.event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_wins_over_the_query() {
        let mut h = HeaderMap::new();
        assert_eq!(start_after(&h, "").unwrap(), 0);
        assert_eq!(start_after(&h, "x=1&after=7").unwrap(), 7);
        h.insert("last-event-id", "9".parse().unwrap());
        assert_eq!(start_after(&h, "after=7").unwrap(), 9);
        h.insert("last-event-id", "nine".parse().unwrap());
        assert!(start_after(&h, "").is_err());
    }
}
