//! Operating cairn (SPEC section 20): the Prometheus scrape checked by
//! promtool, the JSON log (request ids, no credential ever), backups and
//! their restore, quotas (retention: `retention.rs`).

use crate::support;

use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use support::{api, client, Server};

const ADMIN: [&str; 2] = ["--admin-listen", "127.0.0.1:0"];

/// `GET /metrics` on the admin listener.
fn scrape(server: &Server) -> String {
    let resp = client().get(format!("{}/metrics", server.admin_url.as_ref().unwrap())).send().unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().unwrap()
}

/// The value of one sample line (`name{labels} value`), if there.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn the_metrics_scrape_passes_promtool_and_counts_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("CAIRN_RATE_LIMIT", "off")], &ADMIN);
    support::user::publish(&server, "metered", "1.0.0", &[]);
    for _ in 0..3 {
        assert_eq!(server.get("/index/me/te/metered").status(), 200);
    }
    assert_eq!(server.get("/index/no/ne/nonesuch").status(), 404);
    let text = scrape(&server);

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (tools/test.sh installs Debian's prometheus)");
    use std::io::Write;
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let count = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series}:\n{text}"));
    assert!(count(r#"cairn_http_requests_total{class="static",status="200"}"#) >= 3.0);
    assert_eq!(count(r#"cairn_http_requests_total{class="static",status="404"}"#), 1.0);
    assert_eq!(count(r#"cairn_http_requests_total{class="publish",status="201"}"#), 1.0);
    assert!(count(r#"cairn_http_request_duration_seconds_count{class="static"}"#) >= 4.0);
    assert_eq!(count(r#"cairn_writes_total{kind="publish",result="ok"}"#), 1.0);
    assert_eq!(count("cairn_write_groups_total"), 1.0);
    assert_eq!(count("cairn_write_group_size_count"), 1.0);
    assert!(count("cairn_hot_cache_hits_total") >= 1.0, "a repeated read is a hit");
    assert!(count("cairn_hot_cache_misses_total") >= 1.0);
    assert_eq!(count("cairn_packages"), 1.0);
    assert_eq!(count("cairn_versions"), 1.0);
    assert_eq!(count("cairn_log_entries"), 1.0);
    assert_eq!(count("cairn_pending_effects"), 0.0);
    assert_eq!(count("cairn_writer_lease_held"), 0.0, "no shared storage: no lease");
    assert!(count("process_resident_memory_bytes") > 1e6);
    assert!(count("process_open_fds") > 3.0);
    // A refused write is counted by its error's code.
    let resp = server.put("metered", "1.0.0", server.token.as_ref().unwrap(), Vec::new(), "application/gzip");
    assert_eq!(resp.status(), 400);
    let body = cairn::archive::builder::TarballBuilder::new("metered", "1.0.0").gzip();
    assert_eq!(
        server.put("metered", "1.0.0", server.token.as_ref().unwrap(), body, "application/gzip").status(),
        409
    );
    let text = scrape(&server);
    assert_eq!(sample(&text, r#"cairn_writes_total{kind="publish",result="conflict"}"#), Some(1.0), "{text}");
}

#[test]
fn metrics_off_records_nothing_and_the_endpoint_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("CAIRN_RATE_LIMIT", "off"), ("CAIRN_METRICS", "off")];
    let server = Server::start_with(dir.path(), &env, &ADMIN);
    let resp = client().get(format!("{}/metrics", server.admin_url.as_ref().unwrap())).send().unwrap();
    assert_eq!(resp.status(), 404);
    let doc: Value = resp.json().unwrap();
    assert_eq!(doc["error"], "not-found", "{doc}");
}

/// The parsed lines of a JSON log; panics on a line that is not JSON.
fn json_lines(log: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(log).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// A registry that takes signups, so a password and a session exist;
/// returns its bootstrap token.
fn open_signup(data: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn")).args(["init", "--data"]).arg(data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    support::set_config(data, &[(r#"signup = "closed""#, r#"signup = "open""#)]);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn the_json_log_has_request_ids_and_logins_and_never_a_credential() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let bootstrap = open_signup(&data);
    let env = [("CAIRN_RATE_LIMIT", "off"), ("CAIRN_LOG_FORMAT", "json"), ("CAIRN_LOG", "info")];
    // 127.0.0.1 is a trusted proxy here: its X-Request-Id is kept.
    support::set_config(&data, &[("trusted_proxies = []", r#"trusted_proxies = ["127.0.0.1"]"#)]);
    let server = Server::start_logged(&data, &env, &[], &log);
    let mut secrets = vec![bootstrap.clone()];

    // A token's publish, with the proxy's request id.
    let body = cairn::archive::builder::TarballBuilder::new("logged", "1.0.0").gzip();
    let resp = client()
        .put(format!("{}/api/v1/packages/logged/1.0.0", server.url))
        .bearer_auth(&bootstrap)
        .header("Content-Type", "application/gzip")
        .header("X-Request-Id", "proxy-abc-123")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["x-request-id"], "proxy-abc-123");

    // A signup and a password login: the password, the cookie, the CSRF value.
    let password = "correct horse battery staple 42";
    secrets.push(password.to_string());
    let body = json!({ "login": "ann", "email": "ann@example.org", "password": password });
    let resp = client().post(format!("{}/api/v1/auth/signup", server.url)).json(&body).send().unwrap();
    assert_eq!(resp.status(), 201);
    let first = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    secrets.push(first.strip_prefix("cairn_session=").unwrap().split(';').next().unwrap().to_string());
    let body = json!({ "login": "ann", "password": password });
    let resp = client().post(format!("{}/api/v1/auth/login", server.url)).json(&body).send().unwrap();
    assert_eq!(resp.status(), 200);
    let own_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(own_id.len(), 16, "an id of its own: {own_id}");
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie = set_cookie.strip_prefix("cairn_session=").unwrap().split(';').next().unwrap().to_string();
    let doc: Value = resp.json().unwrap();
    let csrf = doc["csrf"].as_str().unwrap().to_string();
    secrets.extend([cookie.clone(), csrf.clone()]);
    // A token made through the session: its key is a secret too.
    let resp = client()
        .post(format!("{}/api/v1/tokens", server.url))
        .header("Cookie", format!("cairn_session={cookie}"))
        .header("Origin", &server.url)
        .header("X-Cairn-Csrf", &csrf)
        .json(&json!({ "label": "ci", "scopes": ["publish-new"], "expiresAt": null }))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let made: Value = resp.json().unwrap();
    secrets.push(made["key"].as_str().unwrap().to_string());

    // The device flow: both codes and the token it hands out.
    let resp = client().post(format!("{}/api/v1/auth/device", server.url)).json(&json!({})).send().unwrap();
    let doc: Value = resp.json().unwrap();
    let (device, user_code) = (doc["deviceCode"].as_str().unwrap(), doc["userCode"].as_str().unwrap());
    secrets.extend([device.to_string(), user_code.to_string()]);
    let resp = client()
        .post(format!("{}/api/v1/auth/device/approve", server.url))
        .header("Cookie", format!("cairn_session={cookie}"))
        .header("Origin", &server.url)
        .header("X-Cairn-Csrf", &csrf)
        .json(&json!({ "userCode": user_code, "approve": true }))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text());
    let resp = client()
        .post(format!("{}/api/v1/auth/device/token", server.url))
        .json(&json!({ "deviceCode": device }))
        .send()
        .unwrap();
    let doc: Value = resp.json().unwrap();
    let device_token = doc["token"].as_str().unwrap_or_else(|| panic!("{doc}")).to_string();
    secrets.push(device_token.clone());
    assert_eq!(api(&server, Method::GET, "/whoami", &device_token, None).status(), 200);
    // A wrong token is a credential too.
    let forged = format!("{}x", &bootstrap[..bootstrap.len() - 1]);
    secrets.push(forged.clone());
    assert_eq!(api(&server, Method::GET, "/whoami", &forged, None).status(), 401);
    drop(server);

    let lines = json_lines(&log);
    let requests: Vec<&Value> = lines.iter().filter(|l| l["target"] == "cairn::request").collect();
    let publish = requests
        .iter()
        .find(|l| l["request_id"] == "proxy-abc-123")
        .unwrap_or_else(|| panic!("the proxy's id is logged: {requests:#?}"));
    assert_eq!(publish["class"], "publish");
    assert_eq!(publish["status"], 201);
    assert_eq!(publish["login"], "admin");
    assert!(publish["duration_ms"].as_f64().unwrap() > 0.0);
    let login = requests.iter().find(|l| l["request_id"] == own_id.as_str()).expect("the login's line");
    assert_eq!((login["class"].as_str(), login["status"].as_u64()), (Some("auth"), Some(200)));
    assert!(
        requests.iter().any(|l| l["login"] == "ann" && l["path"] == "/api/v1/tokens"),
        "the session's login is logged"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "the log holds a secret ({secret}):\n{text}");
    }
}

/// `cairn ARGS…` to success; its stdout.
pub(crate) fn cairn(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).env("CAIRN_LOG", "warn").output().unwrap();
    assert!(out.status.success(), "cairn {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

pub(crate) fn backup(data: &Path, out: &Path, since: Option<&Path>) -> Value {
    let mut args = vec!["backup".as_ref(), "--data".as_ref(), data.as_os_str(), out.as_os_str()];
    if let Some(prev) = since {
        args.extend(["--since".as_ref(), prev.as_os_str()]);
    }
    serde_json::from_str(&cairn(&args)).unwrap()
}

pub(crate) fn restore(backup: &Path, data: &Path) {
    cairn(&["restore".as_ref(), backup.as_os_str(), "--data".as_ref(), data.as_os_str()]);
}

pub(crate) fn fsck_clean(data: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn")).arg("fsck").arg("--data").arg(data).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("no findings"), "fsck of the restored registry: {text}");
}

/// The commit `main` names in a registry's index.
pub(crate) fn head(data: &Path) -> String {
    let out = support::git(&data.join("static/index.git"), &["rev-parse", "main"]);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Each package file of `restored` (index files, documents, pages, blobs
/// and signatures) is byte for byte the one `original` serves.
pub(crate) fn same_package_files(original: &Server, restored: &Path) {
    let root = restored.join("static");
    let mut compared = 0;
    for entry in walkdir::WalkDir::new(&root).into_iter().flatten().filter(|e| e.file_type().is_file()) {
        let rel = entry.path().strip_prefix(&root).unwrap().to_string_lossy().into_owned();
        let package_file = ["index/", "api/v1/packages/", "blobs/", "p/"].iter().any(|p| rel.starts_with(p));
        if !package_file || rel.starts_with("index.git/") {
            continue;
        }
        let served = original.get(&format!("/{rel}"));
        assert_eq!(served.status(), 200, "{rel} is not served by the original");
        assert!(served.bytes().unwrap() == std::fs::read(entry.path()).unwrap(), "{rel} differs");
        compared += 1;
    }
    assert!(compared > 10, "only {compared} files compared");
}

#[test]
fn a_backup_taken_during_publishes_restores_whole_and_an_incremental_one_too() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    for i in 0..5 {
        support::user::publish(&server, &format!("before-{i}"), "1.0.0", &[]);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let (url, token, stop) = (server.url.clone(), server.token.clone().unwrap(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("during-{n}");
                let body = cairn::archive::builder::TarballBuilder::new(&name, "1.0.0").gzip();
                let resp = client()
                    .put(format!("{url}/api/v1/packages/{name}/1.0.0"))
                    .bearer_auth(&token)
                    .header("Content-Type", "application/gzip")
                    .body(body)
                    .send()
                    .unwrap();
                assert_eq!(resp.status(), 201);
                n += 1;
            }
            n
        })
    };
    // Publishes are under way while the backup runs.
    support::eventually(|| server.get("/index/du/ri/during-1").status() == 200, || "no publish".into());
    let first = dir.path().join("first");
    let manifest = backup(&data, &first, None);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let published = publisher.join().unwrap();
    assert!(published >= 2, "{published} publishes");
    assert!(!first.join("static/api").exists(), "derived documents are not backed up");

    let restored = dir.path().join("restored");
    restore(&first, &restored);
    fsck_clean(&restored);
    assert_eq!(head(&restored), manifest["commits"][""].as_str().unwrap(), "the backup's commit");
    same_package_files(&server, &restored);

    // An incremental backup holds only the blobs the first did not.
    let incremental = dir.path().join("second");
    let manifest = backup(&data, &incremental, Some(&first));
    let blobs_first = walkdir::WalkDir::new(first.join("static/blobs"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .count();
    let all = walkdir::WalkDir::new(data.join("static/blobs"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .count();
    assert_eq!(manifest["blobFiles"].as_u64().unwrap() as usize, all - blobs_first, "{manifest}");
    let again = dir.path().join("again");
    restore(&incremental, &again);
    fsck_clean(&again);
    assert_eq!(head(&again), head(&data));
    let checkpoint = std::fs::read(data.join("static/log/checkpoint")).unwrap();
    assert_eq!(
        std::fs::read(again.join("static/log/checkpoint")).unwrap(),
        checkpoint,
        "the same checkpoint"
    );
    same_package_files(&server, &again);
    // The restored registry serves the same bytes over HTTP.
    drop(server);
    let original = Server::start(&data);
    let server = Server::start(&again);
    for path in ["/log/checkpoint", "/index/be/fo/before-0", "/api/v1/packages/during-0.json"] {
        assert!(server.get(path).bytes().unwrap() == original.get(path).bytes().unwrap(), "{path}");
    }
}

#[test]
fn a_backup_killed_midway_leaves_no_backup_and_the_next_one_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    for i in 0..20 {
        support::user::publish(&server, &format!("pkg-{i}"), "1.0.0", &[]);
    }
    let out = dir.path().join("backup");
    let mut midway = 0;
    for _ in 0..20 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .arg("backup")
            .arg("--data")
            .arg(&data)
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Killed as soon as its temporary directory is there.
        let started = || {
            std::fs::read_dir(dir.path())
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("backup.tmp-"))
        };
        while !started() && child.try_wait().unwrap().is_none() {}
        child.kill().unwrap();
        let status = child.wait().unwrap();
        if status.success() {
            // It finished first: whole.
            assert!(out.join("manifest.json").is_file());
            std::fs::remove_dir_all(&out).unwrap();
        } else {
            assert!(!out.exists(), "a killed backup left {}", out.display());
            midway += 1;
        }
    }
    assert!(midway > 0, "no backup was killed midway");
    backup(&data, &out, None);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "the killed backups' leftovers stay: {leftovers:?}");
    let restored = dir.path().join("restored");
    restore(&out, &restored);
    fsck_clean(&restored);
    same_package_files(&server, &restored);
}

/// A publish of `name` `version` with `token` (a README of `pad` bytes
/// makes it as large as the test needs).
fn publish_sized(
    server: &Server,
    token: &str,
    name: &str,
    version: &str,
    pad: usize,
) -> reqwest::blocking::Response {
    // Random bytes: gzip cannot shrink them, so the archive's size follows `pad`.
    let noise: Vec<u8> = (0..pad).map(|_| rand::random::<u8>()).collect();
    let body = cairn::archive::builder::TarballBuilder::new(name, version).file("noise.bin", &noise).gzip();
    server.put(name, version, token, body, "application/gzip")
}

fn usage(server: &Server, token: &str, path: &str) -> Value {
    let resp = api(server, Method::GET, path, token, None);
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().unwrap()["usage"].clone()
}

#[test]
fn quotas_refuse_a_publish_past_them_with_413_and_show_usage() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let admin = server.token.clone().unwrap();
    assert_eq!(publish_sized(&server, &admin, "first", "1.0.0", 20_000).status(), 201);
    let used = usage(&server, &admin, "/whoami");
    assert_eq!(used["limit"], Value::Null, "no quota by default: {used}");
    let first = used["bytes"].as_u64().unwrap();
    assert!(first > 20_000, "{used}");
    // An organisation that owns a package through its token.
    assert_eq!(api(&server, Method::POST, "/orgs", &admin, Some(json!({ "slug": "acme" }))).status(), 201);
    let body = json!({ "label": "ci", "scopes": ["publish-new", "publish-update"] });
    let resp = api(&server, Method::POST, "/orgs/acme/tokens", &admin, Some(body));
    let ci = resp.json::<Value>().unwrap()["key"].as_str().unwrap().to_string();
    assert_eq!(publish_sized(&server, &ci, "acme-kit", "1.0.0", 20_000).status(), 201);
    let org_used = usage(&server, &admin, "/orgs/acme")["bytes"].as_u64().unwrap();
    assert!(org_used > 20_000);
    drop(server);
    // Versions recorded before sizes were get theirs from their index lines at start.
    let conn = rusqlite::Connection::open(data.join("state.db")).unwrap();
    conn.execute("UPDATE versions SET size = NULL", []).unwrap();
    drop(conn);

    let (user_limit, org_limit) =
        (format!("user_bytes = {}", first + 10_000), format!("org_bytes = {}", org_used + 10_000));
    support::set_config(&data, &[("user_bytes = 0", &user_limit), ("org_bytes = 0", &org_limit)]);
    let server = Server::start(&data);
    let used = usage(&server, &admin, "/whoami");
    assert_eq!((used["bytes"].as_u64(), used["limit"].as_u64()), (Some(first), Some(first + 10_000)));
    assert_eq!(usage(&server, &ci, "/whoami")["limit"].as_u64(), Some(org_used + 10_000), "the org token's");
    let versions = |server: &Server| -> i64 {
        let conn = rusqlite::Connection::open(server.data.join("state.db")).unwrap();
        conn.query_row("SELECT COUNT(*) FROM versions", [], |r| r.get(0)).unwrap()
    };
    let before = (versions(&server), server.static_files());

    for (token, name, usage, limit) in
        [(&admin, "second", first, first + 10_000), (&ci, "acme-kit", org_used, org_used + 10_000)]
    {
        let version = if name == "acme-kit" { "1.1.0" } else { "1.0.0" };
        let resp = publish_sized(&server, token, name, version, 20_000);
        assert_eq!(resp.status(), 413);
        let doc: Value = resp.json().unwrap();
        assert_eq!(doc["error"], "quota-exceeded", "{doc}");
        assert_eq!((doc["usage"].as_u64(), doc["limit"].as_u64()), (Some(usage), Some(limit)), "{doc}");
        let message = doc["message"].as_str().unwrap();
        assert!(message.contains(&usage.to_string()) && message.contains(&limit.to_string()), "{message}");
    }
    assert_eq!((versions(&server), server.static_files()), before, "a refused publish writes nothing");
    // Within the quota it goes through, and the version was never burned.
    assert_eq!(publish_sized(&server, &admin, "second", "1.0.0", 100).status(), 201);
}
