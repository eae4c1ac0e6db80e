//! A webhook receiver on 127.0.0.1 (tests/testsuite/events.rs, tests/testsuite/writers.rs):
//! it records every request and answers 500 to the first few, 200 after;
//! and the check a receiver makes of a delivery's signature.

use hmac::{Hmac, Mac};
use serde_json::Value;
use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::eventually;

pub const SECRET: &str = "a webhook secret";

/// One request the receiver saw, and whether it acknowledged it.
#[derive(Clone)]
pub struct Delivery {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub accepted: bool,
}

impl Delivery {
    pub fn header(&self, name: &str) -> &str {
        let h = self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name));
        h.map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no {name} header"))
    }

    pub fn event(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A webhook receiver on 127.0.0.1 that answers 500 to its first
/// `fail_first` requests and 200 after.
pub struct Receiver {
    pub url: String,
    seen: Arc<Mutex<Vec<Delivery>>>,
}

impl Receiver {
    pub fn start(fail_first: usize) -> Receiver {
        Receiver::start_slow(fail_first, std::time::Duration::ZERO)
    }

    /// A receiver that takes `delay` over each answer.
    pub fn start_slow(fail_first: usize, delay: std::time::Duration) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = shared.clone();
                std::thread::spawn(move || {
                    let mut out = stream.try_clone().unwrap();
                    let mut reader = BufReader::new(stream);
                    while let Ok(Some(req)) = super::read_request(&mut reader) {
                        let accepted = {
                            let mut seen = seen.lock().unwrap();
                            let accepted = seen.len() >= fail_first;
                            seen.push(Delivery { headers: req.headers, body: req.body, accepted });
                            accepted
                        };
                        std::thread::sleep(delay);
                        let status = if accepted { "200 OK" } else { "500 Internal Server Error" };
                        let resp = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                        if out.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Receiver { url, seen }
    }

    pub fn accepted(&self) -> Vec<Delivery> {
        self.seen.lock().unwrap().iter().filter(|d| d.accepted).cloned().collect()
    }

    pub fn all(&self) -> Vec<Delivery> {
        self.seen.lock().unwrap().clone()
    }

    pub fn wait_for(&self, n: usize) -> Vec<Delivery> {
        eventually(|| self.accepted().len() >= n, || format!("{} of {n} deliveries", self.accepted().len()));
        self.accepted()
    }
}

/// Checks the signature and the timestamp of a delivery, as a receiver must.
pub fn check_signed(d: &Delivery) {
    let ts = d.header("Cairn-Timestamp");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&d.body);
    let want: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        d.header("Cairn-Signature"),
        format!("sha256={want}"),
        "signature of {}",
        d.header("Cairn-Event-Id")
    );
    let age = chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap();
    assert!((-5..120).contains(&age), "timestamp {ts} is {age} s old");
    assert_eq!(d.header("Cairn-Event-Id"), d.event()["id"].to_string());
    assert!(d.header("Content-Type").starts_with("application/json"));
}
