//! The client's retries against a flaky network: a proxy on 127.0.0.1
//! between the CLI and a real `cairn serve` fails the first N requests to
//! each path, in turn dropping the connection, answering 503 and answering
//! 429 with `Retry-After`. Within the retry budget (3 retries, 4 attempts)
//! an install succeeds; beyond it, it fails naming the URL and the last error.

use crate::support;

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use support::user::{publish, User};
use support::Server;

struct Flaky {
    url: String,
    upstream: Arc<Mutex<String>>,
    /// How many requests to each path fail before one passes.
    failures: Arc<Mutex<usize>>,
    seen: Arc<Mutex<HashMap<String, usize>>>,
}

impl Flaky {
    fn start() -> Flaky {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let f = Flaky {
            url: format!("http://{}", listener.local_addr().unwrap()),
            upstream: Arc::new(Mutex::new(String::new())),
            failures: Arc::new(Mutex::new(0)),
            seen: Arc::new(Mutex::new(HashMap::new())),
        };
        let (up, failures, seen) = (f.upstream.clone(), f.failures.clone(), f.seen.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (up, failures, seen) = (up.clone(), failures.clone(), seen.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &up, &failures, &seen);
                });
            }
        });
        f
    }

    /// Fail the first `n` requests to each path from now on.
    fn fail_first(&self, n: usize) {
        *self.failures.lock().unwrap() = n;
        self.seen.lock().unwrap().clear();
    }
}

fn serve(
    conn: TcpStream,
    upstream: &Mutex<String>,
    failures: &Mutex<usize>,
    seen: &Mutex<HashMap<String, usize>>,
) -> std::io::Result<()> {
    let http = support::client();
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn;
    while let Some(support::Request { path, headers, .. }) = support::read_request(&mut reader)? {
        let n = {
            let mut seen = seen.lock().unwrap();
            let n = seen.entry(path.clone()).or_default();
            *n += 1;
            *n - 1
        };
        if n < *failures.lock().unwrap() {
            let reply = match n % 3 {
                // Dropped: the connection closes with no answer.
                0 => return Ok(()),
                1 => "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n",
                _ => "HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n",
            };
            writer.write_all(reply.as_bytes())?;
            continue;
        }
        let mut req = http.get(format!("{}{path}", upstream.lock().unwrap()));
        for (k, v) in &headers {
            if k.eq_ignore_ascii_case("if-none-match") {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        let resp = req.send().unwrap();
        let status = resp.status();
        let etag = resp.headers().get("etag").map(|v| format!("etag: {}\r\n", v.to_str().unwrap()));
        let body = resp.bytes().unwrap();
        let head = format!(
            "HTTP/1.1 {} {}\r\ncontent-length: {}\r\n{}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len(),
            etag.unwrap_or_default()
        );
        writer.write_all(head.as_bytes())?;
        writer.write_all(&body)?;
    }
    Ok(())
}

#[test]
fn installs_ride_out_a_flaky_network_within_the_retry_budget() {
    let flaky = Flaky::start();
    let data = tempfile::tempdir().unwrap();
    // Blobs are downloaded from the public URL: the proxy's.
    let server =
        Server::start_with_env(data.path(), &[("CAIRN_RATE_LIMIT", "off"), ("CAIRN_PUBLIC_URL", &flaky.url)]);
    *flaky.upstream.lock().unwrap() = server.url.clone();
    publish(&server, "base", "1.0.0", &[]);
    publish(&server, "app", "1.0.0", &[("base", "^1")]);
    let user = User::new();
    let project = tempfile::tempdir().unwrap();
    let p = project.path();
    let reg = ["--registry", flaky.url.as_str()];

    // Every path fails three times (dropped, 503, 429 + Retry-After), then answers.
    flaky.fail_first(3);
    let out = user.run(p, &[&["add", "app"][..], &reg].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(p.join("cairn_packages/base/README.md").is_file());
    let seen = flaky.seen.lock().unwrap().clone();
    for path in ["/index/config.json", "/index/3/a/app", "/log/checkpoint"] {
        // Three failures, then the answer (an index file is asked again, revalidated, for the log's check).
        assert!(seen.get(path).is_some_and(|&n| n >= 4), "{path}: {seen:?}");
    }
    assert!(seen.keys().any(|k| k.starts_with("/blobs/sha256/") && k.ends_with(".minisig")), "{seen:?}");

    // One failure more than the budget: a clear error, nothing installed.
    std::fs::remove_dir_all(p.join("cairn_packages")).unwrap();
    std::fs::remove_file(p.join("cairn.lock")).unwrap();
    flaky.fail_first(4);
    let err = user.fails(p, &[&["install"][..], &reg].concat());
    assert!(
        err.contains(&format!("fetching {}/index/config.json failed after 4 attempts", flaky.url)),
        "{err}"
    );
    // The fourth attempt was dropped: the last error is the connection's.
    assert!(err.contains("connection closed") && err.contains("CAIRN_NET_RETRY"), "{err}");
    assert!(!p.join("cairn_packages").exists() && !p.join("cairn.lock").exists());

    // A smaller budget is one variable away.
    flaky.fail_first(2);
    let out =
        user.command(p, &[&["install"][..], &reg].concat()).env("CAIRN_NET_RETRY", "1").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("failed after 2 attempts: it answered 503"), "{err}");
}
