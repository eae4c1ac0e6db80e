//! The fault suite's mixed stream of writes, shared by the kill -9 tests
//! of one server (tests/testsuite/crash.rs) and of two writers on one bucket and one
//! database (tests/testsuite/writers.rs): 8 concurrent clients' publishes, yanks,
//! unyanks, owner changes (users and organisations), deprecations and their
//! undo, token creation, organisations and their memberships, advisories,
//! hard deletes of versions and of whole packages (the last three on the
//! admin listener), with a model of what each acknowledged write left;
//! [`check_model`] reads everything back through a server. One client's
//! packages live in a private organisation's registry (its publishes,
//! yanks, unyanks and deprecations go below `/orgs/mix-private/`).

use cairn::archive::builder::TarballBuilder;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Server;

/// Where a client sends its writes: the API's base URL and the admin listener's.
#[derive(Clone)]
pub struct Node {
    pub url: String,
    pub admin: String,
}

/// The stream across rounds: the model, and each client's next step
/// (steps go on across rounds, so every kind of write comes up).
pub struct Stream {
    pub model: Mutex<Model>,
    steps: Vec<AtomicU32>,
    token: String,
}

impl Stream {
    /// A stream writing with `token` (an administrator's: every scope; the
    /// registry needs a user `bob`).
    pub fn new(token: &str) -> Stream {
        // Staggered, so the rarer kinds come up early even in a slow run.
        let steps = (0..8).map(|c| (c * 5).into()).collect();
        Stream { model: Mutex::default(), steps, token: token.to_string() }
    }

    /// One round: 8 clients (client `c` on `nodes[c % nodes.len()]`) write
    /// until `cut` returns, which kills a node (it sees the round's count
    /// of acknowledged writes); returns the writes acknowledged.
    pub fn round(&self, nodes: &[Node], round: u32, cut: impl FnOnce(&AtomicUsize)) -> usize {
        let stop = AtomicBool::new(false);
        let count = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for client in 0..8u32 {
                let (stop, count) = (&stop, &count);
                let node = &nodes[client as usize % nodes.len()];
                let step = &self.steps[client as usize];
                s.spawn(move || {
                    let http = super::client();
                    while !stop.load(Ordering::Relaxed) {
                        let i = step.fetch_add(1, Ordering::Relaxed);
                        let pkg = format!("mix{client}x{}", i % 3);
                        let (url, admin) = (&node.url, &node.admin);
                        if mixed_step(&http, url, admin, &self.token, &self.model, &pkg, round, client, i) {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
            cut(&count);
            stop.store(true, Ordering::Relaxed);
        });
        count.into_inner()
    }

    /// Asserts that every kind of write came up (and was acknowledged):
    /// for a run long enough that each surely did.
    pub fn assert_every_kind(&self) {
        if let Some(missing) = self.missing_kind() {
            panic!("{missing}");
        }
    }

    /// Waits (up to `at_most`) until every kind of write came up, so a
    /// run's last round makes the kinds a slow machine had not reached.
    pub fn await_every_kind(&self, at_most: Duration) {
        let until = Instant::now() + at_most;
        while self.missing_kind().is_some() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first kind of write that has not come up yet.
    fn missing_kind(&self) -> Option<&'static str> {
        let m = self.model.lock().unwrap();
        let private = m.versions.iter().any(|((p, _), k)| !registry_of(p).is_empty() && !k.in_flight);
        let checks = [
            (m.advisories.iter().any(|a| a.2), "the stream added advisories"),
            (!m.deprecated.is_empty(), "the stream deprecated packages"),
            (m.packages_deleted > 0, "the stream deleted whole packages"),
            (!m.orgs.is_empty() && !m.tokens.is_empty(), "the stream made organisations and tokens"),
            (m.owns.keys().any(|(_, who)| who.starts_with("org:")), "organisations were made owners"),
            (private, "versions were published to the private registry"),
        ];
        checks.into_iter().find(|(done, _)| !done).map(|(_, what)| what)
    }

    /// The public registry's versions known live (their publish was
    /// acknowledged, nothing since was cut off, not deleted), as
    /// `{package} {version}`: each is a commit.
    pub fn public_versions_live(&self) -> Vec<String> {
        let m = self.model.lock().unwrap();
        let live = |k: &Known<VersionState>| !k.in_flight && matches!(k.state, VersionState::Live { .. });
        let known = m.versions.iter().filter(|((p, _), k)| registry_of(p).is_empty() && live(k));
        known.map(|((p, v), _)| format!("{p} {v}")).collect()
    }

    /// What the stream did over its rounds.
    pub fn summary(&self, rounds: u32, acked: usize) -> String {
        let m = self.model.lock().unwrap();
        let advisories = m.advisories.iter().filter(|a| a.2).count();
        let deprecations = m.deprecated.len();
        let org_owned = m.owns.iter().filter(|((_, who), k)| who.starts_with("org:") && k.state).count();
        let private = m.versions.keys().filter(|(p, _)| !registry_of(p).is_empty()).count();
        format!(
            "{rounds} rounds of kill -9, {acked} writes acknowledged ({advisories} advisories, {deprecations} packages deprecated or undone, {} whole packages deleted, {} organisations, {org_owned} packages an organisation owns, {} tokens, {private} versions in a private registry), none lost",
            m.packages_deleted,
            m.orgs.len(),
            m.tokens.len()
        )
    }
}

/// What a client last knew of a thing it changed: the state its last
/// acknowledged write left, and whether a write sent since was cut off (its
/// effect unknown: either state is right).
#[derive(Clone, Debug)]
pub struct Known<T> {
    pub state: T,
    pub in_flight: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VersionState {
    Live { yanked: bool },
    Deleted,
}

#[derive(Default)]
pub struct Model {
    pub versions: BTreeMap<(String, String), Known<VersionState>>,
    /// Whether an owner (`bob`, or a client's organisation `org:…`)
    /// co-owns the package: (package, owner).
    pub owns: BTreeMap<(String, String), Known<bool>>,
    /// Each client's organisation, once its creation was acknowledged,
    /// and bob's role in it (`None`: not a member).
    pub orgs: BTreeMap<String, Known<Option<String>>>,
    /// Tokens whose creation was acknowledged.
    pub tokens: Vec<String>,
    /// Advisories sent: id, OSV bytes, whether the 201 came.
    pub advisories: Vec<(String, Vec<u8>, bool)>,
    /// A package's deprecation message (`None`: not deprecated).
    pub deprecated: BTreeMap<String, Known<Option<String>>>,
    /// Whole-package deletes acknowledged.
    pub packages_deleted: usize,
    /// The private organisation exists (its creation was answered).
    pub private_made: bool,
}

/// The private organisation whose registry holds one client's packages.
const PRIVATE: &str = "mix-private";

/// Where a package's registry is below a server's URL: the private
/// organisation's for client 7's packages, else the public one.
fn registry_of(pkg: &str) -> String {
    match pkg.starts_with("mix7x") {
        true => format!("/orgs/{PRIVATE}"),
        false => String::new(),
    }
}

/// One write of client `client`'s stream; returns whether it was acknowledged.
/// Waits (up to 30 s) until `count` reaches `at_least`: a kill then cuts a
/// stream that is under way, however slow the machine.
pub fn await_writes(count: &AtomicUsize, at_least: usize) {
    let until = Instant::now() + Duration::from_secs(30);
    while count.load(Ordering::Relaxed) < at_least && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
}

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
    let below = registry_of(pkg);
    let private = !below.is_empty();
    if private && !model.lock().unwrap().private_made {
        let body = serde_json::json!({ "slug": PRIVATE, "visibility": "private" });
        let s = http.post(format!("{url}/api/v1/orgs")).bearer_auth(token).json(&body).send();
        let s = s.ok().map(|r| r.status().as_u16());
        assert_ne!(s, Some(500), "creating org:{PRIVATE}");
        model.lock().unwrap().private_made = matches!(s, Some(201 | 409));
        return s == Some(201);
    }
    // Package writes go to the package's registry; the rest to the public one.
    let (public, url) = (url, &format!("{url}{below}"));
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
        5 if i % 20 == 5 => org_step(http, public, token, model, client, i),
        // The administrator's deletes and owner changes are the public registry's.
        7 | 8 if private => false,
        _ if private && i % 40 == 39 => false,
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
            let r = http.post(format!("{public}/api/v1/tokens")).bearer_auth(token).body(body).send();
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
        assert_ne!(s, Some(500), "creating org:{slug}");
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
    let answer =
        req.bearer_auth(token).send().ok().map(|r| (r.status().as_u16(), r.text().unwrap_or_default()));
    // Cut off by the kill, or answered: never an internal error.
    assert!(answer.as_ref().is_none_or(|(s, _)| *s != 500), "org:{slug}: {answer:?}");
    let s = answer.map(|(s, _)| s);
    let done = matches!(s, Some(200 | 201));
    if done {
        let state = after.map(str::to_string);
        model.lock().unwrap().orgs.insert(slug, Known { state, in_flight: false });
    }
    done
}

/// Every write the model knows the outcome of is exactly so on the server.
pub fn check_model(server: &Server, token: &str, m: &Model, round: u32) {
    let mut lines_of: BTreeMap<String, Vec<cairn::index::IndexLine>> = BTreeMap::new();
    for (pkg, _) in m.versions.keys() {
        if lines_of.contains_key(pkg) {
            continue;
        }
        let path = format!("{}/index/{}", registry_of(pkg), cairn::index::package_path(pkg));
        let lines = match read(server, token, &path) {
            Some(bytes) => cairn::index::IndexLine::parse_file(&bytes).unwrap(),
            None => Vec::new(),
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
    let read = |path: String| read(server, token, &path);
    for (pkg, lines) in &lines_of {
        let below = registry_of(pkg);
        for line in lines {
            let blob = read(format!("{below}/blobs/sha256/{}", line.cksum)).unwrap_or_else(|| {
                panic!("round {round}: {} {} points at a missing blob", line.name, line.vers)
            });
            let sig = read(format!("{below}/blobs/sha256/{}.minisig", line.cksum)).unwrap();
            cairn::sign::verify(&server.pubkey, &blob, &String::from_utf8(sig).unwrap()).unwrap();
        }
    }
    for ((pkg, who), known) in &m.owns {
        if known.in_flight {
            continue;
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&read(format!("/api/v1/packages/{pkg}/owners.json")).unwrap()).unwrap();
        let owns = doc["owners"].as_array().unwrap().iter().any(|o| o["login"] == who.as_str());
        assert_eq!(owns, known.state, "round {round}: {who} owns {pkg}");
    }
    for (slug, known) in &m.orgs {
        let r = super::client().get(format!("{}/api/v1/orgs/{slug}", server.url)).bearer_auth(token).send();
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
        match read(format!("/index/advisories/{id}.json")) {
            Some(held) => assert_eq!(&held, bytes, "round {round}: advisory {id} is not whole"),
            None => assert!(!acked, "round {round}: acknowledged advisory {id} is gone"),
        }
    }
    for (pkg, known) in &m.deprecated {
        if known.in_flight {
            continue;
        }
        let below = registry_of(pkg);
        let meta = read(format!("{below}/index/{}", cairn::index::meta::path(pkg)));
        let held = meta.map(|b| cairn::index::Meta::parse(&b).unwrap().deprecated.unwrap());
        assert_eq!(held, known.state, "round {round}: {pkg}'s deprecation");
        if let Some(doc) = read(format!("{below}/api/v1/packages/{pkg}.json")) {
            let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
            assert_eq!(doc["deprecated"].as_str(), known.state.as_deref(), "round {round}: {pkg}'s document");
        }
    }
    for t in &m.tokens {
        let r = super::client().get(format!("{}/api/v1/whoami", server.url)).bearer_auth(t).send().unwrap();
        assert_eq!(r.status(), 200, "round {round}: an acknowledged token was lost");
    }
}

/// A static file as the server serves it to `token` (a private
/// registry's needs one); `None` when it answers 404.
fn read(server: &Server, token: &str, path: &str) -> Option<Vec<u8>> {
    let resp = super::client().get(format!("{}{path}", server.url)).bearer_auth(token).send().unwrap();
    match resp.status().as_u16() {
        200 => Some(resp.bytes().unwrap().to_vec()),
        404 => None,
        s => panic!("{path}: {s}"),
    }
}
