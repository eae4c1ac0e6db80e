//! Durability: kill -9 of the server in the middle of a stream of publishes,
//! 20 times over. After each restart every acknowledged version is present
//! with its blob and a valid signature, and no index line points at a
//! missing blob.

use crate::support;

use cairn::archive::builder::TarballBuilder;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use support::mixed::{await_writes, check_model, Node, Stream};
use support::Server;

/// Then the same into a private organisation's registry (SPEC section
/// 15), whose writer, index and log are its own and recovered at start:
/// one after the other, so the mixed stream beside them keeps its pace.
#[test]
fn acknowledged_publishes_survive_kill_9() {
    publishes_survive_kill_9(None, 20);
    publishes_survive_kill_9(Some("zq-crash"), 8);
}

/// kill -9 of a stream of publishes, `rounds` times, to the public
/// registry or to the private organisation `org`'s.
fn publishes_survive_kill_9(org: Option<&str>, rounds: u32) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    let prefix = org.map(|slug| format!("/orgs/{slug}")).unwrap_or_default();
    if let Some(slug) = org {
        let body = serde_json::json!({ "slug": slug, "visibility": "private" });
        let made = support::api(&server, reqwest::Method::POST, "/orgs", &token, Some(body));
        assert_eq!(made.status(), 201);
    }
    // (name, version) -> sha256 of every 201 ever received.
    let acked: Mutex<BTreeMap<(String, String), String>> = Mutex::new(BTreeMap::new());
    for round in 0..rounds {
        let stop = AtomicBool::new(false);
        let published = AtomicUsize::new(0);
        let url = format!("{}{prefix}", server.url);
        std::thread::scope(|s| {
            for client in 0..4 {
                let (stop, acked, token, url, published) = (&stop, &acked, &token, &url, &published);
                let base = round + client * 10_000;
                s.spawn(move || {
                    let http = support::client();
                    for i in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let name = format!("crash{}", (base + i) % 7);
                        let version = format!("{round}.{client}.{i}");
                        let body = TarballBuilder::new(&name, &version).gzip();
                        let resp = http
                            .put(format!("{url}/api/v1/packages/{name}/{version}"))
                            .bearer_auth(token)
                            .header("Content-Type", "application/gzip")
                            .body(body.clone())
                            .send();
                        match resp {
                            Ok(r) if r.status() == 201 => {
                                let (sha, _) = cairn::store::digests(&body);
                                acked.lock().unwrap().insert((name, version), sha);
                                published.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) if r.status().is_server_error() => {
                                panic!("server error: {}", r.text().unwrap())
                            }
                            _ => {}
                        }
                    }
                });
            }
            // Let a few publishes through, then pull the plug mid-stream.
            await_writes(&published, 2);
            std::thread::sleep(Duration::from_millis((round as u64 * 37) % 250));
            kill_9(&mut server);
            stop.store(true, Ordering::Relaxed);
        });
        server = Server::start(dir.path());
        check_consistent(&server, &prefix, &token, &acked.lock().unwrap());
    }
    assert!(acked.lock().unwrap().len() > rounds as usize, "the stream published something before each kill");
}

fn kill_9(server: &mut Server) {
    // Child::kill sends SIGKILL on Unix.
    server.kill();
}

/// Every acknowledged version is in the index below `prefix` (read with
/// `token`), and every line there has its blob and a valid signature.
fn check_consistent(server: &Server, prefix: &str, token: &str, acked: &BTreeMap<(String, String), String>) {
    let root = server.static_root().join(prefix.trim_start_matches('/'));
    let mut lines_by_pkg = BTreeMap::new();
    for (name, _) in acked.keys() {
        if lines_by_pkg.contains_key(name) {
            continue;
        }
        let url = format!("{}{prefix}/index/{}", server.url, cairn::index::package_path(name));
        let resp = support::client().get(url).bearer_auth(token).send().unwrap();
        assert_eq!(resp.status(), 200, "index file of {name}");
        let lines = cairn::index::IndexLine::parse_file(&resp.bytes().unwrap()).unwrap();
        lines_by_pkg.insert(name.clone(), lines);
    }
    for ((name, version), sha) in acked {
        let line = lines_by_pkg[name]
            .iter()
            .find(|l| &l.vers == version)
            .unwrap_or_else(|| panic!("acknowledged {name} {version} missing from the index"));
        assert_eq!(&line.cksum, sha);
    }
    for lines in lines_by_pkg.values() {
        for line in lines {
            let blob = std::fs::read(root.join("blobs/sha256").join(&line.cksum))
                .unwrap_or_else(|_| panic!("{} {} points at a missing blob", line.name, line.vers));
            let sig =
                std::fs::read_to_string(root.join(format!("blobs/sha256/{}.minisig", line.cksum))).unwrap();
            let att = cairn::sign::verify(&server.pubkey, &blob, &sig).unwrap();
            assert_eq!((att.name.as_str(), att.version.as_str()), (line.name.as_str(), line.vers.as_str()));
        }
    }
}

/// kill -9 at random moments of the fault suite's mixed stream from 8
/// concurrent clients (tests/testsuite/support/mixed.rs), CAIRN_CRASH_ROUNDS rounds
/// (12 by default; tools/faults/kill9.sh runs 100). After each restart
/// fsck is clean, every acknowledged write is there exactly once, every
/// line has its signed blob, and a write cut off by the kill is either
/// whole or absent.
#[test]
fn a_mixed_stream_of_writes_survives_kill_9() {
    let rounds: u32 = std::env::var("CAIRN_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    let dir = tempfile::tempdir().unwrap();
    let start =
        || Server::start_with(dir.path(), &[("CAIRN_RATE_LIMIT", "off")], &["--admin-listen", "127.0.0.1:0"]);
    let mut server = start();
    let token = server.token.clone().unwrap();
    server.add_user("bob");
    let stream = Stream::new(&token);
    let mut acked = 0usize;
    for round in 0..rounds {
        let node = Node { url: server.url.clone(), admin: server.admin_url.clone().unwrap() };
        acked += stream.round(&[node], round, |count| {
            // Some writes through, then a moment that varies by round; the
            // last round also waits for every kind of write to have come up.
            await_writes(count, 5);
            if round + 1 == rounds {
                stream.await_every_kind(Duration::from_secs(60));
            }
            std::thread::sleep(Duration::from_millis((round as u64 * 53) % 300));
            kill_9(&mut server);
        });
        server = start();
        check_model(&server, &token, &stream.model.lock().unwrap(), round);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["fsck", "--data"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "round {round}: fsck after restart:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!("{}", stream.summary(rounds, acked));
    assert!(acked > rounds as usize * 4, "the stream wrote something each round: {acked}");
    stream.assert_every_kind();
}
