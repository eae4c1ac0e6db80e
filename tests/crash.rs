//! Durability: kill -9 of the server in the middle of a stream of publishes,
//! 20 times over. After each restart every acknowledged version is present
//! with its blob and a valid signature, and no index line points at a
//! missing blob.

mod support;

use cairn::archive::builder::TarballBuilder;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use support::Server;

#[test]
fn acknowledged_publishes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    // (name, version) -> sha256 of every 201 ever received.
    let acked: Mutex<BTreeMap<(String, String), String>> = Mutex::new(BTreeMap::new());
    for round in 0..20u32 {
        let stop = AtomicBool::new(false);
        let url = server.url.clone();
        std::thread::scope(|s| {
            for client in 0..4 {
                let (stop, acked, token, url) = (&stop, &acked, &token, &url);
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
            std::thread::sleep(Duration::from_millis(150 + (round as u64 * 37) % 250));
            kill_9(&mut server);
            stop.store(true, Ordering::Relaxed);
        });
        server = Server::start(dir.path());
        check_consistent(&server, &acked.lock().unwrap());
    }
    assert!(acked.lock().unwrap().len() > 20, "the stream published something before each kill");
}

fn kill_9(server: &mut Server) {
    // Child::kill sends SIGKILL on Unix.
    server.kill();
}

fn check_consistent(server: &Server, acked: &BTreeMap<(String, String), String>) {
    let root = server.static_root();
    let mut lines_by_pkg = BTreeMap::new();
    for (name, _) in acked.keys() {
        if lines_by_pkg.contains_key(name) {
            continue;
        }
        let resp = server.get(&format!("/index/{}", cairn::index::package_path(name)));
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

/// What a client last knew of a thing it changed: the state its last
/// acknowledged write left, and whether a write sent since was cut off (its
/// effect unknown: either state is right).
#[derive(Clone, Debug)]
struct Known<T> {
    state: T,
    in_flight: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum VersionState {
    Live { yanked: bool },
    Deleted,
}

#[derive(Default)]
struct Model {
    versions: BTreeMap<(String, String), Known<VersionState>>,
    /// Whether an owner (`bob`, or a client's organisation `org:…`)
    /// co-owns the package: (package, owner).
    owns: BTreeMap<(String, String), Known<bool>>,
    /// Each client's organisation, once its creation was acknowledged,
    /// and bob's role in it (`None`: not a member).
    orgs: BTreeMap<String, Known<Option<String>>>,
    /// Tokens whose creation was acknowledged.
    tokens: Vec<String>,
    /// Advisories sent: id, OSV bytes, whether the 201 came.
    advisories: Vec<(String, Vec<u8>, bool)>,
    /// A package's deprecation message (`None`: not deprecated).
    deprecated: BTreeMap<String, Known<Option<String>>>,
    /// Whole-package deletes acknowledged.
    packages_deleted: usize,
}

/// kill -9 at random moments of a mixed stream from 8 concurrent clients:
/// publishes, yanks, unyanks, owner changes (users and organisations),
/// deprecations and their undo, token creation, organisations and their
/// memberships, advisories, hard deletes of versions and of whole
/// packages (the last three on the admin listener), CAIRN_CRASH_ROUNDS rounds (12 by default;
/// tools/faults/kill9.sh runs 100). After each restart fsck is clean, every
/// acknowledged write is there exactly once, every line has its signed blob,
/// and a write cut off by the kill is either whole or absent.
#[test]
fn a_mixed_stream_of_writes_survives_kill_9() {
    let rounds: u32 = std::env::var("CAIRN_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    let dir = tempfile::tempdir().unwrap();
    let start =
        || Server::start_with(dir.path(), &[("CAIRN_RATE_LIMIT", "off")], &["--admin-listen", "127.0.0.1:0"]);
    let mut server = start();
    let token = server.token.clone().unwrap();
    server.add_user("bob");
    let model = Mutex::new(Model::default());
    let mut acked = 0usize;
    // Staggered, so the rarer kinds come up early even in a slow run.
    let steps: Vec<std::sync::atomic::AtomicU32> = (0..8).map(|c| (c * 5).into()).collect();
    for round in 0..rounds {
        let stop = AtomicBool::new(false);
        let (url, admin) = (server.url.clone(), server.admin_url.clone().unwrap());
        let count = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for client in 0..8u32 {
                let (stop, model, token, url, admin, count) = (&stop, &model, &token, &url, &admin, &count);
                let step = &steps[client as usize];
                s.spawn(move || {
                    let http = support::client();
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        // Each client's steps go on across rounds, so every kind of write comes up.
                        let i = step.fetch_add(1, Ordering::Relaxed);
                        let pkg = format!("mix{client}x{}", i % 3);
                        if mixed_step(&http, url, admin, token, model, &pkg, round, client, i) {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
            std::thread::sleep(Duration::from_millis(120 + (round as u64 * 53) % 300));
            kill_9(&mut server);
            stop.store(true, Ordering::Relaxed);
        });
        acked += count.into_inner();
        server = start();
        check_model(&server, &token, &model.lock().unwrap(), round);
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
    let m = model.lock().unwrap();
    let advisories = m.advisories.iter().filter(|a| a.2).count();
    let deprecations = m.deprecated.len();
    let org_owned = m.owns.iter().filter(|((_, who), k)| who.starts_with("org:") && k.state).count();
    eprintln!(
        "{rounds} rounds of kill -9, {acked} writes acknowledged ({advisories} advisories, {deprecations} packages deprecated or undone, {} whole packages deleted, {} organisations, {org_owned} packages an organisation owns, {} tokens), none lost",
        m.packages_deleted,
        m.orgs.len(),
        m.tokens.len()
    );
    assert!(acked > rounds as usize * 4, "the stream wrote something each round: {acked}");
    assert!(advisories > 0, "the stream added advisories");
    assert!(deprecations > 0, "the stream deprecated packages");
    assert!(m.packages_deleted > 0, "the stream deleted whole packages");
    assert!(!m.orgs.is_empty() && !m.tokens.is_empty(), "the stream made organisations and tokens");
}

/// One write of client `client`'s stream; returns whether it was acknowledged.
#[allow(clippy::too_many_arguments)]
fn mixed_step(
    http: &reqwest::blocking::Client,
    url: &str,
    admin: &str,
    token: &str,
    model: &Mutex<Model>,
    pkg: &str,
    round: u32,
    client: u32,
    i: u32,
) -> bool {
    let live = |yanked: bool| {
        let m = model.lock().unwrap();
        let mine = m.versions.iter().filter(|((p, _), k)| p == pkg && !k.in_flight);
        let found: Vec<String> = mine
            .filter(|(_, k)| k.state == VersionState::Live { yanked })
            .map(|((_, v), _)| v.clone())
            .collect();
        found.get(i as usize % found.len().max(1)).cloned()
    };
    // Marks `key` in flight, sends, and records the new state on success.
    let version_write = |version: String, send: &dyn Fn() -> Option<u16>, ok: u16, after: VersionState| {
        let key = (pkg.to_string(), version);
        let before = model.lock().unwrap().versions.get(&key).map(|k| k.state);
        let entry = Known { state: before.unwrap_or(after), in_flight: true };
        model.lock().unwrap().versions.insert(key.clone(), entry);
        let status = send();
        let done = status == Some(ok);
        if done || status.is_some_and(|s| s < 500) && before.is_some() {
            // Acknowledged, or refused (nothing changed): known again.
            let state = if done { after } else { before.unwrap() };
            model.lock().unwrap().versions.insert(key, Known { state, in_flight: false });
        }
        done
    };
    let status = |r: reqwest::Result<reqwest::blocking::Response>| r.ok().map(|r| r.status().as_u16());
    match i % 10 {
        0..=3 => {
            let version = format!("{round}.{client}.{i}");
            let body = TarballBuilder::new(pkg, &version).gzip();
            let send = || {
                status(
                    http.put(format!("{url}/api/v1/packages/{pkg}/{version}"))
                        .bearer_auth(token)
                        .header("Content-Type", "application/gzip")
                        .body(body.clone())
                        .send(),
                )
            };
            version_write(version.clone(), &send, 201, VersionState::Live { yanked: false })
        }
        4 => {
            let Some(version) = live(false) else { return false };
            let send = || {
                status(
                    http.delete(format!("{url}/api/v1/packages/{pkg}/{version}")).bearer_auth(token).send(),
                )
            };
            version_write(version.clone(), &send, 200, VersionState::Live { yanked: true })
        }
        5 if i % 20 == 5 => org_step(http, url, token, model, client, i),
        6 => {
            let Some(version) = live(true) else { return false };
            let send = || {
                status(
                    http.post(format!("{url}/api/v1/packages/{pkg}/{version}/unyank"))
                        .bearer_auth(token)
                        .send(),
                )
            };
            version_write(version.clone(), &send, 200, VersionState::Live { yanked: false })
        }
        7 => {
            let Some(version) = live(true).or_else(|| live(false)) else { return false };
            let send = || status(http.delete(format!("{admin}/admin/packages/{pkg}/{version}")).send());
            version_write(version.clone(), &send, 200, VersionState::Deleted)
        }
        8 => {
            let add = i % 20 < 10;
            // bob in two of four owner changes, the client's organisation in the others.
            let who = if i % 40 < 20 { "bob".to_string() } else { format!("org:{}", org_of(client)) };
            let key = (pkg.to_string(), who.clone());
            let before = model.lock().unwrap().owns.get(&key).map(|k| k.state);
            if before.is_none() && !model.lock().unwrap().versions.keys().any(|(p, _)| p == pkg) {
                return false; // the package may not exist yet
            }
            model
                .lock()
                .unwrap()
                .owns
                .insert(key.clone(), Known { state: before.unwrap_or(false), in_flight: true });
            let req = if add {
                http.put(format!("{url}/api/v1/packages/{pkg}/owners"))
            } else {
                http.delete(format!("{url}/api/v1/packages/{pkg}/owners"))
            };
            let s = status(req.bearer_auth(token).json(&serde_json::json!({ "users": [who] })).send());
            if s == Some(200) {
                model.lock().unwrap().owns.insert(key, Known { state: add, in_flight: false });
            }
            s == Some(200)
        }
        // The rarer kinds, one in forty steps each.
        _ if i % 40 == 19 => {
            let before = model.lock().unwrap().deprecated.get(pkg).map(|k| k.state.clone());
            if !model.lock().unwrap().versions.keys().any(|(p, _)| p == pkg) {
                return false; // the package may not exist yet
            }
            let after = match before.clone().flatten() {
                Some(_) => None,
                None => Some(format!("deprecated at {round}-{client}-{i}")),
            };
            let state = before.clone().flatten();
            model.lock().unwrap().deprecated.insert(pkg.into(), Known { state, in_flight: true });
            let body = serde_json::json!({ "deprecated": after });
            let s = status(
                http.patch(format!("{url}/api/v1/packages/{pkg}")).bearer_auth(token).json(&body).send(),
            );
            if s == Some(200) {
                model.lock().unwrap().deprecated.insert(pkg.into(), Known { state: after, in_flight: false });
            }
            s == Some(200)
        }
        _ if i % 40 == 39 => {
            let mine: Vec<String> = {
                let m = model.lock().unwrap();
                m.versions
                    .iter()
                    .filter(|((p, _), k)| p == pkg && k.state != VersionState::Deleted)
                    .map(|((_, v), _)| v.clone())
                    .collect()
            };
            if mine.is_empty() {
                return false;
            }
            // In flight until the answer: the versions and the deprecation.
            {
                let mut m = model.lock().unwrap();
                for v in &mine {
                    m.versions.get_mut(&(pkg.to_string(), v.clone())).unwrap().in_flight = true;
                }
                if let Some(d) = m.deprecated.get_mut(pkg) {
                    d.in_flight = true;
                }
            }
            let s = status(http.delete(format!("{admin}/admin/packages/{pkg}")).send());
            if s == Some(200) {
                let mut m = model.lock().unwrap();
                for v in &mine {
                    m.versions.insert(
                        (pkg.to_string(), v.clone()),
                        Known { state: VersionState::Deleted, in_flight: false },
                    );
                }
                m.deprecated.insert(pkg.into(), Known { state: None, in_flight: false });
                m.packages_deleted += 1;
            }
            s == Some(200)
        }
        _ if i % 20 == 9 => {
            let id = format!("CAIRN-{round}-{client}-{i}");
            let osv = serde_json::json!({
                "id": id,
                "modified": "2026-05-01T00:00:00Z",
                "affected": [{"package": {"name": pkg}, "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}]
            });
            let bytes = serde_json::to_vec(&osv).unwrap();
            let s = status(http.post(format!("{admin}/admin/advisories")).body(bytes.clone()).send());
            model.lock().unwrap().advisories.push((id, bytes, s == Some(201)));
            s == Some(201)
        }
        _ => {
            let body = format!(r#"{{"label":"t{round}-{client}-{i}","scopes":["yank"]}}"#);
            let r = http.post(format!("{url}/api/v1/tokens")).bearer_auth(token).body(body).send();
            let Ok(r) = r else { return false };
            if r.status() != 201 {
                return false;
            }
            let Ok(doc) = r.json::<serde_json::Value>() else { return false };
            model.lock().unwrap().tokens.push(doc["key"].as_str().unwrap().to_string());
            true
        }
    }
}

fn org_of(client: u32) -> String {
    format!("mix-org-{client}")
}

/// An organisation write of the client's stream: its creation, then bob's
/// membership going member → admin → gone, round and round.
fn org_step(
    http: &reqwest::blocking::Client,
    url: &str,
    token: &str,
    model: &Mutex<Model>,
    client: u32,
    i: u32,
) -> bool {
    let slug = org_of(client);
    let before = model.lock().unwrap().orgs.get(&slug).cloned();
    let Some(before) = before.filter(|k| !k.in_flight) else {
        // Created, or created by a try whose answer the kill cut off (409).
        let r = http
            .post(format!("{url}/api/v1/orgs"))
            .bearer_auth(token)
            .json(&serde_json::json!({ "slug": slug }))
            .send();
        let s = r.ok().map(|r| r.status().as_u16());
        if matches!(s, Some(201 | 409)) && !model.lock().unwrap().orgs.contains_key(&slug) {
            model.lock().unwrap().orgs.insert(slug, Known { state: None, in_flight: false });
        }
        return s == Some(201);
    };
    let after = match (i / 2) % 3 {
        0 => Some("member"),
        1 => Some("admin"),
        _ => None,
    };
    let base = format!("{url}/api/v1/orgs/{slug}/members");
    let req = match (&before.state, after) {
        (None, Some(role)) => http.post(&base).json(&serde_json::json!({ "login": "bob", "role": role })),
        (Some(_), Some(role)) => http.patch(format!("{base}/bob")).json(&serde_json::json!({ "role": role })),
        (Some(_), None) => http.delete(format!("{base}/bob")),
        (None, None) => return false,
    };
    model.lock().unwrap().orgs.insert(slug.clone(), Known { state: before.state.clone(), in_flight: true });
    let s = req.bearer_auth(token).send().ok().map(|r| r.status().as_u16());
    let done = matches!(s, Some(200 | 201));
    if done {
        let state = after.map(str::to_string);
        model.lock().unwrap().orgs.insert(slug, Known { state, in_flight: false });
    }
    done
}

/// Every write the model knows the outcome of is exactly so on the server.
fn check_model(server: &Server, token: &str, m: &Model, round: u32) {
    let mut lines_of: BTreeMap<String, Vec<cairn::index::IndexLine>> = BTreeMap::new();
    for (pkg, _) in m.versions.keys() {
        if lines_of.contains_key(pkg) {
            continue;
        }
        let resp = server.get(&format!("/index/{}", cairn::index::package_path(pkg)));
        let lines = match resp.status().as_u16() {
            200 => cairn::index::IndexLine::parse_file(&resp.bytes().unwrap()).unwrap(),
            _ => Vec::new(),
        };
        let mut seen = std::collections::BTreeSet::new();
        for l in &lines {
            assert!(seen.insert(l.vers.clone()), "round {round}: {pkg} {} twice in the index", l.vers);
        }
        lines_of.insert(pkg.clone(), lines);
    }
    for ((pkg, version), known) in &m.versions {
        if known.in_flight {
            continue;
        }
        let line = lines_of[pkg].iter().find(|l| &l.vers == version);
        match known.state {
            VersionState::Live { yanked } => {
                let line =
                    line.unwrap_or_else(|| panic!("round {round}: acknowledged {pkg} {version} is gone"));
                assert_eq!(line.yanked, yanked, "round {round}: {pkg} {version} yanked");
            }
            VersionState::Deleted => {
                assert!(line.is_none(), "round {round}: deleted {pkg} {version} is back")
            }
        }
    }
    let root = server.static_root();
    for lines in lines_of.values() {
        for line in lines {
            let blob = std::fs::read(root.join("blobs/sha256").join(&line.cksum)).unwrap_or_else(|_| {
                panic!("round {round}: {} {} points at a missing blob", line.name, line.vers)
            });
            let sig =
                std::fs::read_to_string(root.join(format!("blobs/sha256/{}.minisig", line.cksum))).unwrap();
            cairn::sign::verify(&server.pubkey, &blob, &sig).unwrap();
        }
    }
    for ((pkg, who), known) in &m.owns {
        if known.in_flight {
            continue;
        }
        let doc = support::read_json(root.join(format!("api/v1/packages/{pkg}/owners.json")));
        let owns = doc["owners"].as_array().unwrap().iter().any(|o| o["login"] == who.as_str());
        assert_eq!(owns, known.state, "round {round}: {who} owns {pkg}");
    }
    for (slug, known) in &m.orgs {
        let r = support::client().get(format!("{}/api/v1/orgs/{slug}", server.url)).bearer_auth(token).send();
        let doc: serde_json::Value = r.unwrap().json().unwrap();
        assert_eq!(doc["slug"], slug.as_str(), "round {round}: the acknowledged org:{slug} is gone: {doc}");
        if known.in_flight {
            continue;
        }
        let bob = doc["members"].as_array().unwrap().iter().find(|m| m["login"] == "bob");
        let role = bob.map(|b| b["role"].as_str().unwrap().to_string());
        assert_eq!(role, known.state, "round {round}: bob's role in org:{slug}");
    }
    for (id, bytes, acked) in &m.advisories {
        // Acknowledged: committed whole; cut off: whole or absent.
        match std::fs::read(root.join(format!("index/advisories/{id}.json"))) {
            Ok(held) => assert_eq!(&held, bytes, "round {round}: advisory {id} is not whole"),
            Err(_) => assert!(!acked, "round {round}: acknowledged advisory {id} is gone"),
        }
    }
    for (pkg, known) in &m.deprecated {
        if known.in_flight {
            continue;
        }
        let meta = root.join("index").join(cairn::index::meta::path(pkg));
        let held =
            std::fs::read(&meta).ok().map(|b| cairn::index::Meta::parse(&b).unwrap().deprecated.unwrap());
        assert_eq!(held, known.state, "round {round}: {pkg}'s deprecation");
        if let Ok(doc) = std::fs::read(root.join(format!("api/v1/packages/{pkg}.json"))) {
            let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
            assert_eq!(doc["deprecated"].as_str(), known.state.as_deref(), "round {round}: {pkg}'s document");
        }
    }
    for t in &m.tokens {
        let r = support::client().get(format!("{}/api/v1/whoami", server.url)).bearer_auth(t).send().unwrap();
        assert_eq!(r.status(), 200, "round {round}: an acknowledged token was lost");
    }
}
