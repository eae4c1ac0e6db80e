//! Events (SPEC section 13) over real HTTP on 127.0.0.1: webhooks signed
//! with HMAC-SHA256 over `{timestamp}.{body}`, delivered in id order and
//! retried, with a cursor that survives a restart; and `GET /api/v1/events`
//! as Server-Sent Events, resumed with `Last-Event-ID` or `?after=`.

use crate::support;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};
use support::hook::{check_signed, Delivery, Receiver, SECRET};
use support::user::publish;
use support::{client, Server};

/// A registry whose registry.toml names `hook` (after `before` ran on it
/// without); returns the server (with the bootstrap token) over `data`.
fn serve_with_webhook(data: &Path, hook: &str, before: impl FnOnce(&Server)) -> Server {
    let mut first = Server::start(data);
    before(&first);
    let token = first.token.clone();
    first.kill();
    let mut toml = std::fs::read_to_string(data.join("registry.toml")).unwrap();
    toml.push_str(&format!("\n[[webhooks]]\nurl = {hook:?}\nsecret_env = \"TEST_HOOK_SECRET\"\n"));
    std::fs::write(data.join("registry.toml"), toml).unwrap();
    restart(data, token)
}

fn restart(data: &Path, token: Option<String>) -> Server {
    let mut server =
        Server::start_with_env(data, &[("CAIRN_RATE_LIMIT", "off"), ("TEST_HOOK_SECRET", SECRET)]);
    server.token = token;
    server
}

fn put_owners(server: &Server, name: &str, users: &[&str]) {
    let resp = client()
        .put(format!("{}/api/v1/packages/{name}/owners", server.url))
        .bearer_auth(server.token.as_ref().unwrap())
        .json(&json!({ "users": users }))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().unwrap());
}

fn yank(server: &Server, name: &str, version: &str, yanked: bool) {
    let token = server.token.as_ref().unwrap();
    let url = format!("{}/api/v1/packages/{name}/{version}", server.url);
    let resp = match yanked {
        true => client().delete(url).bearer_auth(token).send().unwrap(),
        false => client().post(format!("{url}/unyank")).bearer_auth(token).send().unwrap(),
    };
    assert_eq!(resp.status(), 200, "{}", resp.text().unwrap());
}

fn deprecate(server: &Server, name: &str) {
    let resp = client()
        .patch(format!("{}/api/v1/packages/{name}", server.url))
        .bearer_auth(server.token.as_ref().unwrap())
        .json(&json!({ "deprecated": "use something else" }))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().unwrap());
}

fn head(data: &Path) -> String {
    let out = support::git(&data.join("static/index.git"), &["rev-parse", "refs/heads/main"]);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn webhooks_get_every_change_signed_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hook = Receiver::start(0);
    // A change from before the webhook existed is not sent to it.
    let server = serve_with_webhook(&data, &hook.url, |s| {
        publish(s, "early", "1.0.0", &[]);
    });
    server.add_user("bob");

    publish(&server, "hooked", "1.0.0", &[]);
    let after_publish = head(&data);
    publish(&server, "hooked", "1.1.0", &[]);
    yank(&server, "hooked", "1.0.0", true);
    yank(&server, "hooked", "1.0.0", false);
    put_owners(&server, "hooked", &["bob"]);
    deprecate(&server, "hooked");

    let got = hook.wait_for(6);
    let events: Vec<Value> = got.iter().map(Delivery::event).collect();
    let kinds: Vec<(&str, Option<&str>)> =
        events.iter().map(|e| (e["event"].as_str().unwrap(), e["version"].as_str())).collect();
    assert_eq!(
        kinds,
        [
            ("publish", Some("1.0.0")),
            ("publish", Some("1.1.0")),
            ("yank", Some("1.0.0")),
            ("unyank", Some("1.0.0")),
            ("owners", None),
            ("deprecate", None),
        ]
    );
    for d in &got {
        check_signed(d);
    }
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    assert!(events.iter().all(|e| e["name"] == "hooked"));
    assert_eq!(events[0]["indexCommit"], after_publish.as_str(), "the commit of the publish");
    assert!(events[4]["indexCommit"].is_null(), "an owner change commits nothing: {}", events[4]);
    assert_eq!(events[5]["indexCommit"], head(&data).as_str());
    for e in &events {
        let at = e["at"].as_str().unwrap();
        assert!(at.len() == 20 && at.ends_with('Z'), "{at}");
        let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 6, "{e}");
    }
    // Each event once, and none of before the webhook: nothing more arrives.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(hook.all().len(), 6);
    assert!(ids[0] > 1, "the early publish had an event too: {ids:?}");
}

#[test]
fn a_failing_webhook_gets_its_events_later_in_order_and_a_restart_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hook = Receiver::start(3);
    let mut server = serve_with_webhook(&data, &hook.url, |_| {});
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        publish(&server, "flaky", v, &[]);
    }
    let got = hook.wait_for(3);
    // The first event was refused three times and nothing after it was
    // sent meanwhile; then each once, in order.
    let all = hook.all();
    assert!(all[..3].iter().all(|d| !d.accepted && d.event()["version"] == "1.0.0"));
    let versions: Vec<Value> = got.iter().map(|d| d.event()["version"].clone()).collect();
    assert_eq!(versions, [json!("1.0.0"), json!("1.1.0"), json!("1.2.0")]);
    for d in &all {
        check_signed(d);
    }
    // Retried with a fresh signature each time, never the same request again.
    assert!(all[3].header("Cairn-Timestamp") > all[0].header("Cairn-Timestamp"));

    // The cursor is durable: a restart sends nothing twice, and then the new event.
    let token = server.token.clone();
    server.kill();
    let server = restart(&data, token);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(hook.all().len(), 6, "nothing delivered again after the restart");
    publish(&server, "flaky", "2.0.0", &[]);
    let got = hook.wait_for(4);
    assert_eq!(got[3].event()["version"], "2.0.0");
    assert!(got[3].event()["id"].as_i64() > got[2].event()["id"].as_i64());
}

/// A Server-Sent Events client on a raw connection (HTTP/1.0: the body runs
/// until the server closes it), with a bound on every read.
struct Stream {
    reader: BufReader<TcpStream>,
}

#[derive(Debug, PartialEq)]
struct Sse {
    id: i64,
    event: String,
    data: Value,
}

impl Stream {
    fn open(server: &Server, query: &str, last_id: Option<i64>) -> Stream {
        let addr = server.url.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut req =
            format!("GET /api/v1/events{query} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        if let Some(id) = last_id {
            req.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut reader = BufReader::new(s);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "{status}");
        let mut content_type = String::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            if h.trim().is_empty() {
                break;
            }
            if h.to_ascii_lowercase().starts_with("content-type:") {
                content_type = h;
            }
        }
        assert!(content_type.contains("text/event-stream"), "{content_type}");
        Stream { reader }
    }

    /// The next event (comments skipped).
    fn next(&mut self) -> Sse {
        let (mut id, mut event, mut data) = (None, None, None);
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("an event within 20 s");
            assert!(n > 0, "the stream ended");
            let line = line.trim_end_matches('\n');
            if line.is_empty() {
                if let (Some(id), Some(event), Some(data)) = (id, event.take(), data.take()) {
                    return Sse { id, event, data };
                }
                continue;
            }
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.parse().unwrap());
            } else if let Some(v) = line.strip_prefix("event: ") {
                event = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str(v).unwrap());
            } else {
                assert!(line.starts_with(':'), "unexpected line {line:?}");
            }
        }
    }
}

#[test]
fn the_event_stream_resumes_without_gaps_or_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        publish(&server, "streamed", v, &[]);
    }

    // Two of the three, then away.
    let mut s = Stream::open(&server, "", None);
    let mut seen = vec![s.next(), s.next()];
    drop(s);
    // Made while the client was away.
    publish(&server, "streamed", "1.3.0", &[]);
    yank(&server, "streamed", "1.0.0", true);

    let mut s = Stream::open(&server, "", Some(seen[1].id));
    for _ in 0..3 {
        seen.push(s.next());
    }
    // Live: a change made while it listens arrives without a reconnect.
    let asked = Instant::now();
    yank(&server, "streamed", "1.0.0", false);
    seen.push(s.next());
    assert!(asked.elapsed() < Duration::from_secs(5), "woken by the write, not the keep-alive");

    let ids: Vec<i64> = seen.iter().map(|e| e.id).collect();
    assert_eq!(ids, (ids[0]..ids[0] + 6).collect::<Vec<_>>(), "every event once, in order");
    let kinds: Vec<(&str, &str)> =
        seen.iter().map(|e| (e.event.as_str(), e.data["version"].as_str().unwrap())).collect();
    assert_eq!(
        kinds,
        [
            ("publish", "1.0.0"),
            ("publish", "1.1.0"),
            ("publish", "1.2.0"),
            ("publish", "1.3.0"),
            ("yank", "1.0.0"),
            ("unyank", "1.0.0")
        ]
    );
    for e in &seen {
        assert_eq!(e.data["id"], e.id);
        assert_eq!(e.data["event"], e.event.as_str());
        assert_eq!(e.data["name"], "streamed");
    }

    // `?after=` for clients that cannot set the header.
    let mut s = Stream::open(&server, &format!("?after={}", ids[4]), None);
    assert_eq!(s.next().id, ids[5]);

    // A bad id is refused, with the API's error shape.
    let resp = client().get(format!("{}/api/v1/events?after=soon", server.url)).send().unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().unwrap()["error"], "invalid");
}

/// The events a stream replays from the start, read until `n` arrived.
fn replay(server: &Server, n: usize) -> Vec<Sse> {
    let mut s = Stream::open(server, "?after=0", None);
    (0..n).map(|_| s.next()).collect()
}

#[test]
fn a_restart_makes_the_events_a_crash_lost_and_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data);
    let token = server.token.clone();
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        publish(&server, "recovered", v, &[]);
    }
    assert_eq!(replay(&server, 3).len(), 3);
    server.kill();
    // As if the writer died after the last two commits and before their
    // events: the index has them, the table does not.
    let conn = rusqlite::Connection::open(data.join("state.db")).unwrap();
    let gone = conn.execute("DELETE FROM events WHERE version IN ('1.1.0', '1.2.0')", []).unwrap();
    assert_eq!(gone, 2);
    drop(conn);

    let mut server = restart(&data, token);
    publish(&server, "recovered", "2.0.0", &[]);
    let got = replay(&server, 4);
    let versions: Vec<&str> = got.iter().map(|e| e.data["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["1.0.0", "1.1.0", "1.2.0", "2.0.0"], "the lost ones again, in history order");
    assert!(got.windows(2).all(|w| w[0].id < w[1].id));
    // Another restart has nothing to add.
    server.kill();
    let server = restart(&data, server.token.clone());
    let conn = rusqlite::Connection::open(data.join("state.db")).unwrap();
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0)).unwrap();
    assert_eq!(count, 4);
    drop(server);
}
