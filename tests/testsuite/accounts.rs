//! Accounts and permissions (SPEC section 7): scoped, expiring, revocable
//! tokens; owners; yank; export and erasure; the admin listener; the audit
//! log; rate limits; and no plaintext token anywhere on disk. Web accounts
//! and device login (SPEC section 12): signup, sessions and their CSRF
//! rule, logout, the device flow and `cairn login --device`.

use crate::support;

use cairn::archive::builder::TarballBuilder;
use reqwest::blocking::Response;
use reqwest::Method;
use serde_json::{json, Value};
use support::{api, client, Server};

const GZ: &str = "application/gzip";

fn publish(server: &Server, token: &str, name: &str, version: &str) -> Response {
    server.put(name, version, token, TarballBuilder::new(name, version).gzip(), GZ)
}

fn new_token(server: &Server, token: &str, scopes: &[&str], packages: &[&str]) -> (i64, String) {
    let body = json!({ "label": "test", "scopes": scopes, "packages": packages, "expiresAt": null });
    let resp = api(server, Method::POST, "/tokens", token, Some(body));
    assert_eq!(resp.status(), 201);
    let doc: Value = resp.json().unwrap();
    (doc["id"].as_i64().unwrap(), doc["key"].as_str().unwrap().to_string())
}

#[test]
fn every_scope_against_every_write_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let root = server.token.clone().unwrap();
    let _bob = server.add_user("bob");
    let scopes = ["publish-new", "publish-update", "yank", "change-owners", "tokens"];
    // Each endpoint and the one scope that opens it.
    let endpoints = [
        "publish-new-name",
        "publish-new-version",
        "register",
        "yank",
        "unyank",
        "owner-add",
        "owner-remove",
        "token-create",
    ];
    let needs = |endpoint: &str| match endpoint {
        "publish-new-name" | "register" => "publish-new",
        "publish-new-version" => "publish-update",
        "yank" | "unyank" => "yank",
        "owner-add" | "owner-remove" => "change-owners",
        "token-create" => "tokens",
        _ => unreachable!(),
    };
    for (i, scope) in scopes.iter().enumerate() {
        let (_, token) = new_token(&server, &root, &[scope], &[]);
        for (j, endpoint) in endpoints.iter().enumerate() {
            // Fresh state per pair, prepared with the all-scopes token.
            let pkg = format!("pkg-{i}-{j}");
            assert_eq!(publish(&server, &root, &pkg, "1.0.0").status(), 201);
            assert_eq!(
                api(&server, Method::DELETE, &format!("/packages/{pkg}/1.0.0"), &root, None).status(),
                200
            );
            let owners = json!({ "users": ["bob"] });
            let resp = match *endpoint {
                "publish-new-name" => publish(&server, &token, &format!("new-{i}-{j}"), "1.0.0"),
                "publish-new-version" => publish(&server, &token, &pkg, "2.0.0"),
                "register" => api(
                    &server,
                    Method::POST,
                    "/packages",
                    &token,
                    Some(json!({ "name": format!("reg-{i}-{j}") })),
                ),
                "yank" => {
                    assert_eq!(publish(&server, &root, &pkg, "1.1.0").status(), 201);
                    api(&server, Method::DELETE, &format!("/packages/{pkg}/1.1.0"), &token, None)
                }
                "unyank" => {
                    api(&server, Method::POST, &format!("/packages/{pkg}/1.0.0/unyank"), &token, None)
                }
                "owner-add" => {
                    api(&server, Method::PUT, &format!("/packages/{pkg}/owners"), &token, Some(owners))
                }
                "owner-remove" => {
                    api(
                        &server,
                        Method::PUT,
                        &format!("/packages/{pkg}/owners"),
                        &root,
                        Some(owners.clone()),
                    );
                    api(&server, Method::DELETE, &format!("/packages/{pkg}/owners"), &token, Some(owners))
                }
                "token-create" => api(
                    &server,
                    Method::POST,
                    "/tokens",
                    &token,
                    Some(json!({ "label": "child", "scopes": [scope] })),
                ),
                _ => unreachable!(),
            };
            let expected = if needs(endpoint) == *scope {
                if matches!(
                    *endpoint,
                    "publish-new-name" | "publish-new-version" | "register" | "token-create"
                ) {
                    201
                } else {
                    200
                }
            } else {
                403
            };
            let status = resp.status().as_u16();
            let text = resp.text().unwrap();
            assert_eq!(status, expected, "scope {scope} on {endpoint}: {text}");
            if status == 403 {
                assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["error"], "forbidden");
            }
        }
    }
}

#[test]
fn tokens_expire_revoke_and_are_limited_to_their_packages() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let root = server.token.clone().unwrap();

    // Listing shows metadata, never the key.
    let (id, key) = new_token(&server, &root, &["publish-new", "publish-update"], &["web-*"]);
    let list: Value = api(&server, Method::GET, "/tokens", &root, None).json().unwrap();
    let text = list.to_string();
    assert!(!text.contains(&key));
    let listed = list["tokens"].as_array().unwrap().iter().find(|t| t["id"] == id).unwrap().clone();
    assert_eq!(listed["packages"], json!(["web-*"]));
    assert_eq!(listed["label"], "test");

    // Package patterns.
    assert_eq!(publish(&server, &key, "web-server", "1.0.0").status(), 201);
    assert_eq!(publish(&server, &key, "db-server", "1.0.0").status(), 403);
    // A token cannot mint a broader one.
    let resp = api(&server, Method::POST, "/tokens", &key, Some(json!({ "label": "x", "scopes": ["yank"] })));
    assert_eq!(resp.status(), 403, "lacks the tokens scope");
    let (_, minter) = new_token(&server, &root, &["tokens", "yank"], &[]);
    let resp = api(
        &server,
        Method::POST,
        "/tokens",
        &minter,
        Some(json!({ "label": "x", "scopes": ["publish-new"] })),
    );
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().unwrap()["error"], "invalid");

    // Revocation takes effect on the very next request.
    assert_eq!(api(&server, Method::GET, "/whoami", &key, None).status(), 200);
    let resp = api(&server, Method::DELETE, &format!("/tokens/{id}"), &root, None);
    assert_eq!(resp.json::<Value>().unwrap(), json!({ "revoked": true }));
    let resp = api(&server, Method::GET, "/whoami", &key, None);
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().unwrap()["error"], "unauthorized");
    assert_eq!(publish(&server, &key, "web-other", "1.0.0").status(), 401);

    // Expiry.
    let at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let body = json!({ "label": "short", "scopes": ["publish-new"], "expiresAt": at.to_rfc3339() });
    let resp = api(&server, Method::POST, "/tokens", &root, Some(body));
    assert_eq!(resp.status(), 201);
    let short = resp.json::<Value>().unwrap()["key"].as_str().unwrap().to_string();
    assert_eq!(api(&server, Method::GET, "/whoami", &short, None).status(), 200);
    std::thread::sleep(std::time::Duration::from_millis(3200));
    assert_eq!(api(&server, Method::GET, "/whoami", &short, None).status(), 401);
    let past = json!({ "label": "past", "scopes": ["yank"], "expiresAt": "2001-01-01T00:00:00Z" });
    assert_eq!(api(&server, Method::POST, "/tokens", &root, Some(past)).status(), 400);

    // whoami.
    let me: Value = api(&server, Method::GET, "/whoami", &root, None).json().unwrap();
    assert_eq!(me["login"], "admin");
}

#[test]
fn owners_change_and_the_last_owner_stays() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let alice = server.add_user("alice");
    let bob = server.add_user("bob");
    assert_eq!(publish(&server, &alice, "shared", "1.0.0").status(), 201);
    let owners =
        |t: &str| -> Value { api(&server, Method::GET, "/packages/shared/owners", t, None).json().unwrap() };
    assert_eq!(owners(&alice)["users"], json!(["alice"]));
    // Bob is no owner: he can neither publish nor change owners.
    assert_eq!(publish(&server, &bob, "shared", "1.1.0").status(), 403);
    let add_bob = json!({ "users": ["bob"] });
    assert_eq!(
        api(&server, Method::PUT, "/packages/shared/owners", &bob, Some(add_bob.clone())).status(),
        403
    );
    assert_eq!(api(&server, Method::PUT, "/packages/shared/owners", &alice, Some(add_bob)).status(), 200);
    assert_eq!(owners(&bob)["users"], json!(["alice", "bob"]));
    assert_eq!(publish(&server, &bob, "shared", "1.1.0").status(), 201);
    let static_owners: Value = server.get("/api/v1/packages/shared/owners.json").json().unwrap();
    assert_eq!(static_owners["owners"], json!([{ "login": "alice" }, { "login": "bob" }]));
    // Unknown users and removing everyone are refused.
    let ghost = json!({ "users": ["ghost"] });
    assert_eq!(api(&server, Method::PUT, "/packages/shared/owners", &alice, Some(ghost)).status(), 404);
    let everyone = json!({ "users": ["alice", "bob"] });
    let resp = api(&server, Method::DELETE, "/packages/shared/owners", &alice, Some(everyone));
    assert_eq!(resp.status(), 409);
    assert_eq!(owners(&alice)["users"], json!(["alice", "bob"]), "a refused change changes nothing");
    let alice_out = json!({ "users": ["alice"] });
    assert_eq!(api(&server, Method::DELETE, "/packages/shared/owners", &bob, Some(alice_out)).status(), 200);
    assert_eq!(publish(&server, &alice, "shared", "1.2.0").status(), 403);
}

#[test]
fn yank_and_unyank_move_latest_and_keep_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    for v in ["1.0.0", "1.1.0"] {
        assert_eq!(publish(&server, &token, "yanky", v).status(), 201);
    }
    let head =
        |s: &Server| std::fs::read_to_string(s.static_root().join("index.git/refs/heads/main")).unwrap();
    let before = head(&server);
    let resp = api(&server, Method::DELETE, "/packages/yanky/1.1.0", &token, None);
    assert_eq!(resp.json::<Value>().unwrap(), json!({ "yanked": true }));
    assert_ne!(head(&server), before, "one index commit");
    let lines: Vec<Value> = server
        .get("/index/ya/nk/yanky")
        .text()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!((lines[0]["yanked"].clone(), lines[1]["yanked"].clone()), (json!(false), json!(true)));
    let doc: Value = server.get("/api/v1/packages/yanky.json").json().unwrap();
    assert_eq!(doc["latestVersion"], "1.0.0");
    let vdoc: Value = server.get("/api/v1/packages/yanky/1.1.0.json").json().unwrap();
    assert_eq!(vdoc["yanked"], true);
    // Pins keep resolving: the bytes stay.
    let sha = lines[1]["cksum"].as_str().unwrap();
    assert_eq!(server.get(&format!("/blobs/sha256/{sha}")).status(), 200);
    // A yanked version is never replaced.
    assert_eq!(publish(&server, &token, "yanky", "1.1.0").status(), 409);
    // Yanking again changes nothing; unyank moves latest back.
    let again = head(&server);
    assert_eq!(api(&server, Method::DELETE, "/packages/yanky/1.1.0", &token, None).status(), 200);
    assert_eq!(head(&server), again);
    let resp = api(&server, Method::POST, "/packages/yanky/1.1.0/unyank", &token, None);
    assert_eq!(resp.json::<Value>().unwrap(), json!({ "yanked": false }));
    let doc: Value = server.get("/api/v1/packages/yanky.json").json().unwrap();
    assert_eq!(doc["latestVersion"], "1.1.0");
    assert_eq!(api(&server, Method::DELETE, "/packages/yanky/9.9.9", &token, None).status(), 404);
    let out =
        support::git(&server.static_root(), &["--git-dir", "index.git", "log", "--format=%s", "-n", "2"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "unyank yanky 1.1.0\nyank yanky 1.1.0\n");
}

#[test]
fn export_and_erasure() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let carol = server.add_user("carol");
    let dave = server.add_user("dave");
    assert_eq!(publish(&server, &carol, "carols", "1.0.0").status(), 201);
    let add = json!({ "users": ["dave"] });
    assert_eq!(api(&server, Method::PUT, "/packages/carols/owners", &carol, Some(add)).status(), 200);
    assert_eq!(publish(&server, &dave, "carols", "9.9.9-forbidden").status(), 201);
    let (_, second) = new_token(&server, &carol, &["yank"], &[]);

    let export: Value = api(&server, Method::GET, "/me/export", &carol, None).json().unwrap();
    assert_eq!(export["user"]["login"], "carol");
    assert_eq!(export["tokens"].as_array().unwrap().len(), 2);
    let hash = cairn::db::token::hash(&carol);
    assert!(export["tokens"].as_array().unwrap().iter().any(|t| t["sha256"] == hash));
    let text = export.to_string();
    assert!(!text.contains(&carol) && !text.contains(&second), "no plaintext token in the export");
    assert_eq!(export["packages"][0]["name"], "carols");
    assert_eq!(export["packages"][0]["versions"].as_array().unwrap().len(), 2);
    assert!(export["audit"].as_array().unwrap().iter().any(|e| e["action"] == "publish"));

    let wrong = json!({ "confirm": "dave" });
    assert_eq!(api(&server, Method::POST, "/me/delete", &carol, Some(wrong)).status(), 400);
    let resp = api(&server, Method::POST, "/me/delete", &carol, Some(json!({ "confirm": "carol" })));
    assert_eq!(resp.status(), 200);
    let done: Value = resp.json().unwrap();
    assert_eq!(done["packages"], json!(["carols"]));
    // Every token fails at once; the package stays and loses that owner.
    assert_eq!(api(&server, Method::GET, "/whoami", &carol, None).status(), 401);
    assert_eq!(api(&server, Method::GET, "/whoami", &second, None).status(), 401);
    let owners: Value = server.get("/api/v1/packages/carols/owners.json").json().unwrap();
    assert_eq!(owners["owners"], json!([{ "login": "dave" }]));
    assert_eq!(server.get("/index/ca/ro/carols").status(), 200);

    // Purge erases the account once its grace period has passed (moved
    // into the past here rather than waiting 30 days).
    let purge = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["admin", "purge", "--data"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(purge(), "", "nothing is due before the grace period ends");
    let conn = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    let after: String =
        conn.query_row("SELECT delete_after FROM users WHERE login = 'carol'", [], |r| r.get(0)).unwrap();
    assert!(after > (chrono::Utc::now() + chrono::Duration::days(29)).to_rfc3339());
    conn.execute("UPDATE users SET delete_after = '2000-01-01T00:00:00Z' WHERE login = 'carol'", []).unwrap();
    assert_eq!(purge(), "carol\n");
    let (login, email): (String, Option<String>) = conn
        .query_row("SELECT login, email FROM users WHERE id = 2", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!((login.as_str(), email), ("deleted-2", None));
    let tokens: i64 =
        conn.query_row("SELECT COUNT(*) FROM tokens WHERE user_id = 2", [], |r| r.get(0)).unwrap();
    assert_eq!(tokens, 0);
}

#[test]
fn admin_listener_is_loopback_only_and_hard_deletes() {
    let dir = tempfile::tempdir().unwrap();
    // Any address but loopback is refused at start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "0.0.0.0:0", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));

    let server =
        Server::start_with(dir.path(), &[("CAIRN_RATE_LIMIT", "off")], &["--admin-listen", "127.0.0.1:0"]);
    let admin = server.admin_url.clone().expect("the admin address is printed");
    let resp = client()
        .post(format!("{admin}/admin/users"))
        .json(&json!({ "login": "erin", "email": "e@x" }))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let erin = resp.json::<Value>().unwrap()["token"].as_str().unwrap().to_string();
    assert_eq!(publish(&server, &erin, "gone", "1.0.0").status(), 201);
    assert_eq!(publish(&server, &erin, "gone", "1.1.0").status(), 201);
    let sha = server.get("/api/v1/packages/gone/1.0.0.json").json::<Value>().unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_string();

    let resp = client().delete(format!("{admin}/admin/packages/gone/1.0.0")).send().unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().unwrap());
    assert_eq!(server.get(&format!("/blobs/sha256/{sha}")).status(), 404);
    assert_eq!(server.get(&format!("/blobs/sha256/{sha}.minisig")).status(), 404);
    assert_eq!(server.get("/api/v1/packages/gone/1.0.0.json").status(), 404);
    let index = server.get("/index/go/ne/gone").text().unwrap();
    assert_eq!(index.lines().count(), 1);
    assert!(!index.contains("\"1.0.0\""));
    // The number stays burned.
    assert_eq!(publish(&server, &erin, "gone", "1.0.0").status(), 409);

    // The CLI works on the same directory while the server runs.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["admin", "delete", "gone@1.1.0", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(server.get("/index/go/ne/gone").status(), 404);

    // Disabling a user stops their tokens at once.
    let resp = client().post(format!("{admin}/admin/users/erin/disable")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(api(&server, Method::GET, "/whoami", &erin, None).status(), 401);
    let users: Value = client().get(format!("{admin}/admin/users")).send().unwrap().json().unwrap();
    assert!(users["users"].as_array().unwrap().iter().any(|u| u["login"] == "erin" && u["disabled"] == true));
}

#[test]
fn refusals_are_in_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    let mallory = server.add_user("mallory");
    assert_eq!(publish(&server, &token, "guarded", "1.0.0").status(), 201);
    assert_eq!(publish(&server, &mallory, "guarded", "1.1.0").status(), 403);
    assert_eq!(publish(&server, "cairn_forged", "guarded", "1.1.0").status(), 401);
    let conn = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    let rows: Vec<(Option<i64>, String, String, Option<String>)> = conn
        .prepare("SELECT user_id, action, outcome, addr FROM audit ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(rows.iter().any(|r| r.1 == "publish" && r.2 == "ok" && r.3.as_deref() == Some("127.0.0.1")));
    assert!(rows.iter().any(|r| r.0.is_some() && r.2.starts_with("refused 403")), "{rows:?}");
    assert!(rows.iter().any(|r| r.0.is_none() && r.2.starts_with("refused 401")), "{rows:?}");
}

#[test]
fn token_creation_is_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(dir.path(), &[]);
    let token = server.token.clone().unwrap();
    let body = json!({ "label": "x", "scopes": ["yank"] });
    let statuses: Vec<u16> = (0..6)
        .map(|_| api(&server, Method::POST, "/tokens", &token, Some(body.clone())).status().as_u16())
        .collect();
    assert_eq!(statuses, vec![201, 201, 201, 201, 201, 429]);
    let resp = api(&server, Method::POST, "/tokens", &token, Some(body));
    assert_eq!(resp.headers()["ratelimit-limit"], "5");
    assert_eq!(resp.headers()["ratelimit-remaining"], "0");
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry));
    // Other classes have their own buckets.
    assert_eq!(api(&server, Method::GET, "/whoami", &token, None).status(), 200);
}

#[test]
fn guessing_tokens_is_throttled() {
    let dir = tempfile::tempdir().unwrap();
    drop(Server::start_with_env(dir.path(), &[]));
    support::slow_anonymous_refill(dir.path());
    let server = Server::start_with_env(dir.path(), &[]);
    let statuses: Vec<u16> = (0..40)
        .map(|_| {
            let guess = cairn::db::token::generate();
            api(&server, Method::GET, "/whoami", &guess, None).status().as_u16()
        })
        .collect();
    // The start-up health probe used a request or two of the same bucket.
    assert!(statuses[..25].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[32..].iter().all(|s| *s == 429), "the guesser's address runs dry: {statuses:?}");
}

#[test]
fn no_plaintext_token_is_stored_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let root = server.token.clone().unwrap();
    let user = server.add_user("frank");
    let (_, scoped) = new_token(&server, &root, &["yank"], &[]);
    assert_eq!(publish(&server, &user, "frankly", "1.0.0").status(), 201);
    assert_eq!(api(&server, Method::GET, "/whoami", &scoped, None).status(), 200);
    drop(server); // kill -9: whatever is on disk now is what an attacker would find
    let mut scanned = 0;
    for entry in walkdir::WalkDir::new(dir.path()).into_iter().flatten().filter(|e| e.file_type().is_file()) {
        let bytes = std::fs::read(entry.path()).unwrap();
        scanned += 1;
        for token in [&root, &user, &scoped] {
            let found = bytes.windows(token.len()).any(|w| w == token.as_bytes());
            assert!(!found, "a plaintext token in {}", entry.path().display());
        }
    }
    assert!(scanned > 10);
}

/// `--data` where operators type it: before or after the subcommand.
#[test]
fn data_is_accepted_before_and_after_the_admin_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cairn = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let d = data.to_str().unwrap();
    cairn(&["init", "--data", d]);
    assert!(cairn(&["admin", "--data", d, "user", "add", "alice"]).starts_with("cairn_"));
    assert!(cairn(&["admin", "user", "--data", d, "add", "bob"]).starts_with("cairn_"));
    assert!(cairn(&["admin", "user", "add", "carol", "--data", d]).starts_with("cairn_"));
    let list = cairn(&["admin", "--data", d, "user", "list"]);
    for login in ["alice", "bob", "carol"] {
        assert!(list.lines().any(|l| l.starts_with(&format!("{login}\t"))), "{list}");
    }
}

// Web accounts and device login (SPEC section 12).

/// A browser's view of a session: its cookie, its CSRF value, and the
/// origin its pages are served from.
struct Web {
    cookie: String,
    csrf: String,
    origin: String,
}

/// How a session request is dressed: the CSRF header and the Origin sent.
#[derive(Clone, Copy)]
struct Dress<'a> {
    csrf: bool,
    origin: Option<&'a str>,
}

const BROWSER: Dress = Dress { csrf: true, origin: None };

fn web(server: &Server, method: Method, path: &str, w: &Web, dress: Dress, body: Option<Value>) -> Response {
    let mut req = client()
        .request(method, format!("{}/api/v1{path}", server.url))
        .header("Cookie", format!("cairn_session={}", w.cookie))
        .header("Origin", dress.origin.unwrap_or(&w.origin));
    if dress.csrf {
        req = req.header("X-Cairn-Csrf", &w.csrf);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().unwrap()
}

/// POSTs JSON without credentials (curl: no Origin unless given).
fn anonymous(server: &Server, path: &str, body: Value, origin: Option<&str>) -> Response {
    let mut req = client().post(format!("{}/api/v1{path}", server.url)).json(&body);
    if let Some(origin) = origin {
        req = req.header("Origin", origin);
    }
    req.send().unwrap()
}

/// The response's status and body, asserting the error shape when it is an error.
fn answer(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let doc: Value = resp.json().unwrap();
    if status >= 400 {
        assert!(doc["error"].is_string() && doc["message"].is_string(), "{status}: {doc}");
    }
    (status, doc)
}

/// The session cookie a sign-in answer sets: its value and the whole header.
fn set_cookie(resp: &Response) -> (String, String) {
    let header = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    let value = header.strip_prefix("cairn_session=").unwrap().split(';').next().unwrap().to_string();
    (value, header)
}

fn sign_in(server: &Server, body: Value) -> Web {
    let resp = anonymous(server, "/auth/login", body, None);
    assert_eq!(resp.status(), 200);
    let (cookie, _) = set_cookie(&resp);
    let doc: Value = resp.json().unwrap();
    Web { cookie, csrf: doc["csrf"].as_str().unwrap().to_string(), origin: server.url.clone() }
}

fn count(server: &Server, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(server.data.join("state.db")).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// A registry with `[accounts] signup = "open"`.
fn open_signup(dir: &std::path::Path) -> Server {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["init", "--data"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    support::set_config(dir, &[(r#"signup = "closed""#, r#"signup = "open""#)]);
    Server::start(dir)
}

#[test]
fn signup_is_closed_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let users = count(&server, "SELECT COUNT(*) FROM users");
    let body = json!({ "login": "eve", "email": "eve@example.org", "password": "a long enough password" });
    let (status, doc) = answer(anonymous(&server, "/auth/signup", body, None));
    assert_eq!((status, doc["error"].as_str()), (403, Some("forbidden")), "{doc}");
    assert_eq!(count(&server, "SELECT COUNT(*) FROM users"), users, "nothing written");
}

#[test]
fn open_signup_checks_its_input_and_signs_the_browser_in() {
    let dir = tempfile::tempdir().unwrap();
    let server = open_signup(dir.path());
    let signup = |login: &str, email: &str, password: &str, origin: Option<&str>| {
        let body = json!({ "login": login, "email": email, "password": password });
        anonymous(&server, "/auth/signup", body, origin)
    };
    for (login, email, password) in [
        ("ann", "ann@example.org", "eleven char"),
        ("a nn", "ann@example.org", "long enough password"),
        ("ann", "not an address", "long enough password"),
    ] {
        let (status, doc) = answer(signup(login, email, password, None));
        assert_eq!(
            (status, doc["error"].as_str()),
            (400, Some("invalid")),
            "{login} {email} {password}: {doc}"
        );
    }
    let (status, _) =
        answer(signup("ann", "ann@example.org", "long enough password", Some("https://evil.example")));
    assert_eq!(status, 403, "a foreign page cannot sign up");
    assert_eq!(count(&server, "SELECT COUNT(*) FROM users WHERE login = 'ann'"), 0);

    // Twelve characters are enough; the answer signs the browser in.
    let resp = signup("ann", "ann@example.org", "twelve chars", Some(&server.url));
    assert_eq!(resp.status(), 201);
    let (cookie, header) = set_cookie(&resp);
    let doc: Value = resp.json().unwrap();
    assert_eq!(doc["login"], "ann");
    assert_eq!(header, format!("cairn_session={cookie}; HttpOnly; SameSite=Strict; Path=/"));
    let w = Web { cookie, csrf: doc["csrf"].as_str().unwrap().to_string(), origin: server.url.clone() };
    let (status, me) = answer(web(&server, Method::GET, "/auth/session", &w, BROWSER, None));
    assert_eq!((status, &me["login"], &me["csrf"]), (200, &json!("ann"), &doc["csrf"]));
    assert_eq!(me["scopes"], json!(["publish-new", "publish-update", "yank", "change-owners", "tokens"]));
    // No token was issued, and the password is stored as argon2id only.
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM tokens t JOIN users u ON u.id = t.user_id WHERE u.login = 'ann'"
        ),
        0
    );
    assert_eq!(count(&server, "SELECT COUNT(*) FROM users WHERE password_hash LIKE '$argon2id$v=19$%'"), 1);

    let (_, export) = answer(web(&server, Method::GET, "/me/export", &w, BROWSER, None));
    assert_eq!(export["sessions"].as_array().unwrap().len(), 1, "{export}");
    assert_eq!(export["sessions"][0]["tokenId"], Value::Null);

    let (status, doc) = answer(signup("ANN", "other@example.org", "long enough password", None));
    assert_eq!((status, doc["error"].as_str()), (409, Some("conflict")), "{doc}");
}

#[test]
fn password_login_and_its_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let server = open_signup(dir.path());
    let body = json!({ "login": "bea", "email": "bea@example.org", "password": "correct horse battery" });
    assert_eq!(anonymous(&server, "/auth/signup", body, None).status(), 201);
    let sessions = count(&server, "SELECT COUNT(*) FROM sessions");
    for body in [
        json!({ "login": "bea", "password": "wrong horse battery" }),
        json!({ "login": "nobody", "password": "correct horse battery" }),
        json!({ "token": cairn::db::token::generate() }),
        json!({ "token": "cairn_malformed" }),
    ] {
        let (status, doc) = answer(anonymous(&server, "/auth/login", body.clone(), None));
        assert_eq!((status, doc["error"].as_str()), (401, Some("unauthorized")), "{body}: {doc}");
    }
    let (status, _) = answer(anonymous(&server, "/auth/login", json!({ "login": "bea" }), None));
    assert_eq!(status, 400);
    let good = json!({ "login": "bea", "password": "correct horse battery" });
    let (status, doc) = answer(anonymous(&server, "/auth/login", good.clone(), Some("http://127.0.0.1:1")));
    assert_eq!((status, doc["error"].as_str()), (403, Some("forbidden")), "another origin: {doc}");
    assert_eq!(count(&server, "SELECT COUNT(*) FROM sessions"), sessions, "no refusal opened a session");

    let resp = anonymous(&server, "/auth/login", good, Some(&server.url));
    assert_eq!(resp.status(), 200);
    let (cookie, header) = set_cookie(&resp);
    assert_eq!(header, format!("cairn_session={cookie}; HttpOnly; SameSite=Strict; Path=/"));
    assert!(cookie.len() >= 22, "at least 128 bits: {cookie}");
    let doc: Value = resp.json().unwrap();
    assert_eq!(doc["login"], "bea");
    // The database has the secret's SHA-256, never the secret.
    use sha2::Digest;
    let hash = cairn::store::hex(&sha2::Sha256::digest(cookie.as_bytes()));
    assert_eq!(count(&server, &format!("SELECT COUNT(*) FROM sessions WHERE hash = '{hash}'")), 1);
    let bytes = std::fs::read(server.data.join("state.db")).unwrap();
    let wal = std::fs::read(server.data.join("state.db-wal")).unwrap_or_default();
    assert!(![bytes, wal].iter().any(|b| b.windows(cookie.len()).any(|w| w == cookie.as_bytes())));
}

#[test]
fn failed_logins_spend_the_addresss_anonymous_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(dir.path(), &[]);
    let started = std::time::Instant::now();
    let statuses: Vec<u16> = (0..40)
        .map(|_| {
            let guess = json!({ "token": cairn::db::token::generate() });
            anonymous(&server, "/auth/login", guess, None).status().as_u16()
        })
        .collect();
    assert!(statuses[..25].iter().all(|s| *s == 401), "{statuses:?}");
    // The bucket (30, one more every 2 s) ran dry: after that a guess
    // passes only as often as it refills while the loop runs.
    let dry = statuses.iter().position(|s| *s == 429).expect("the bucket ran dry");
    assert!(dry <= 31 + started.elapsed().as_secs() as usize / 2, "{statuses:?}");
    let later = statuses[dry..].iter().filter(|s| **s == 401).count();
    assert!(later <= 1 + started.elapsed().as_secs() as usize / 2, "{statuses:?}");
}

#[test]
fn the_cookie_is_secure_behind_https() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[("CAIRN_RATE_LIMIT", "off")],
        &["--public-url", "https://reg.example"],
    );
    let token = server.token.clone().unwrap();
    let resp = anonymous(&server, "/auth/login", json!({ "token": token }), Some("https://reg.example"));
    assert_eq!(resp.status(), 200);
    let (cookie, header) = set_cookie(&resp);
    assert_eq!(header, format!("cairn_session={cookie}; HttpOnly; SameSite=Strict; Path=/; Secure"));
    let (status, _) = answer(anonymous(&server, "/auth/login", json!({ "token": token }), Some(&server.url)));
    assert_eq!(status, 403, "the origin is the public URL's, not the listener's");
}

#[test]
fn session_writes_need_the_csrf_header_and_the_public_origin() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let root = server.token.clone().unwrap();
    let w = sign_in(&server, json!({ "token": root }));
    // Reads need neither.
    let plain = Dress { csrf: false, origin: None };
    assert_eq!(web(&server, Method::GET, "/whoami", &w, plain, None).status(), 200);
    assert_eq!(web(&server, Method::GET, "/tokens", &w, plain, None).status(), 200);

    let tokens = count(&server, "SELECT COUNT(*) FROM tokens");
    let new = json!({ "label": "from the web", "scopes": ["yank"] });
    for (dress, why) in [
        (Dress { csrf: false, origin: None }, "no X-Cairn-Csrf"),
        (Dress { csrf: true, origin: Some("https://evil.example") }, "a foreign Origin"),
        (Dress { csrf: true, origin: Some("null") }, "an opaque Origin"),
    ] {
        let (status, doc) = answer(web(&server, Method::POST, "/tokens", &w, dress, Some(new.clone())));
        assert_eq!((status, doc["error"].as_str()), (403, Some("forbidden")), "{why}: {doc}");
    }
    let wrong = Web { csrf: "0".repeat(64), ..sign_in(&server, json!({ "token": root })) };
    assert_eq!(web(&server, Method::POST, "/tokens", &wrong, BROWSER, Some(new.clone())).status(), 403);
    // A session write without any Origin (what no browser sends) is refused too.
    let resp = client()
        .post(format!("{}/api/v1/tokens", server.url))
        .header("Cookie", format!("cairn_session={}", w.cookie))
        .header("X-Cairn-Csrf", &w.csrf)
        .json(&new)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(count(&server, "SELECT COUNT(*) FROM tokens"), tokens, "no refusal wrote a token");

    let (status, doc) = answer(web(&server, Method::POST, "/tokens", &w, BROWSER, Some(new)));
    assert_eq!(status, 201, "{doc}");
    assert!(doc["key"].as_str().unwrap().starts_with("cairn_"));

    // Authorization wins over the cookie: a bad token is not rescued by it.
    let resp = client()
        .get(format!("{}/api/v1/whoami", server.url))
        .header("Cookie", format!("cairn_session={}", w.cookie))
        .bearer_auth(cairn::db::token::generate())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[test]
fn a_token_session_has_exactly_the_tokens_rights() {
    let dir = tempfile::tempdir().unwrap();
    let server = open_signup(dir.path());
    let body = json!({ "login": "cat", "email": "cat@example.org", "password": "correct horse battery" });
    assert_eq!(anonymous(&server, "/auth/signup", body, None).status(), 201);
    let by_password = sign_in(&server, json!({ "login": "cat", "password": "correct horse battery" }));
    let (status, doc) = answer(web(
        &server,
        Method::POST,
        "/tokens",
        &by_password,
        BROWSER,
        Some(json!({ "label": "ci", "scopes": ["publish-update"], "packages": ["cat-*"] })),
    ));
    assert_eq!(status, 201, "a password session manages tokens: {doc}");
    let (id, key) = (doc["id"].as_i64().unwrap(), doc["key"].as_str().unwrap().to_string());

    let by_token = sign_in(&server, json!({ "token": key }));
    let (_, me) = answer(web(&server, Method::GET, "/auth/session", &by_token, BROWSER, None));
    assert_eq!((&me["login"], &me["scopes"]), (&json!("cat"), &json!(["publish-update"])));
    let new = json!({ "label": "more", "scopes": ["publish-update"], "packages": ["cat-*"] });
    let (status, doc) = answer(web(&server, Method::POST, "/tokens", &by_token, BROWSER, Some(new)));
    assert_eq!((status, doc["error"].as_str()), (403, Some("forbidden")), "{doc}");

    // Revoking the token ends the session opened with it.
    let (status, _) =
        answer(web(&server, Method::DELETE, &format!("/tokens/{id}"), &by_password, BROWSER, None));
    assert_eq!(status, 200);
    let (status, _) = answer(web(&server, Method::GET, "/auth/session", &by_token, BROWSER, None));
    assert_eq!(status, 401);
    let (status, _) = answer(web(&server, Method::GET, "/auth/session", &by_password, BROWSER, None));
    assert_eq!(status, 200);
    // A bearer token has no session to show.
    let new = json!({ "label": "bearer", "scopes": ["yank"] });
    let (_, doc) = answer(web(&server, Method::POST, "/tokens", &by_password, BROWSER, Some(new)));
    let bearer = doc["key"].as_str().unwrap();
    assert_eq!(api(&server, Method::GET, "/whoami", bearer, None).status(), 200);
    let (status, _) = answer(api(&server, Method::GET, "/auth/session", bearer, None));
    assert_eq!(status, 401);
}

#[test]
fn logout_ends_the_session_on_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let w = sign_in(&server, json!({ "token": server.token.clone().unwrap() }));
    let (status, _) =
        answer(web(&server, Method::POST, "/auth/logout", &w, Dress { csrf: false, origin: None }, None));
    assert_eq!(status, 403, "logout is a write: CSRF applies");
    assert_eq!(web(&server, Method::GET, "/whoami", &w, BROWSER, None).status(), 200);

    let resp = web(&server, Method::POST, "/auth/logout", &w, BROWSER, None);
    assert_eq!(resp.status(), 200);
    let header = resp.headers()["set-cookie"].to_str().unwrap();
    assert_eq!(header, "cairn_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    for path in ["/auth/session", "/whoami"] {
        let (status, doc) = answer(web(&server, Method::GET, path, &w, BROWSER, None));
        assert_eq!((status, doc["error"].as_str()), (401, Some("unauthorized")), "{path}: {doc}");
    }
    assert_eq!(count(&server, "SELECT COUNT(*) FROM sessions"), 0);
}

/// Starts a device login; returns (deviceCode, userCode).
fn device_start(server: &Server, scopes: Value) -> (String, String) {
    let (status, doc) = answer(anonymous(server, "/auth/device", json!({ "scopes": scopes }), None));
    assert_eq!(status, 200, "{doc}");
    (doc["deviceCode"].as_str().unwrap().to_string(), doc["userCode"].as_str().unwrap().to_string())
}

fn device_poll(server: &Server, device_code: &str) -> (u16, Value) {
    answer(anonymous(server, "/auth/device/token", json!({ "deviceCode": device_code }), None))
}

fn approve(server: &Server, w: &Web, user_code: &str, yes: bool) -> (u16, Value) {
    answer(web(
        server,
        Method::POST,
        "/auth/device/approve",
        w,
        BROWSER,
        Some(json!({ "userCode": user_code, "approve": yes })),
    ))
}

#[test]
fn device_codes_are_shaped_and_answered_by_rfc_8628() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let root = server.token.clone().unwrap();
    let w = sign_in(&server, json!({ "token": root }));

    let (status, doc) = answer(anonymous(&server, "/auth/device", json!({ "scopes": ["admin"] }), None));
    assert_eq!((status, doc["error"].as_str()), (400, Some("invalid")), "{doc}");
    let (status, doc) = answer(anonymous(&server, "/auth/device", json!({}), None));
    assert_eq!(status, 200);
    let user_code = doc["userCode"].as_str().unwrap();
    let (letters, digits) = user_code.split_once('-').unwrap();
    assert!(
        letters.len() == 4 && letters.bytes().all(|b| b"BCDFGHJKLMNPQRSTVWXZ".contains(&b)),
        "{user_code}"
    );
    assert!(digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()), "{user_code}");
    assert_eq!(doc["verificationUrl"], format!("{}/device", server.url));
    assert_eq!(doc["interval"], 5);
    let expires = chrono::DateTime::parse_from_rfc3339(doc["expiresAt"].as_str().unwrap()).unwrap();
    let left = expires.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!((590..=600).contains(&left), "{left}");
    assert!(doc["deviceCode"].as_str().unwrap().len() >= 22);

    // Pending, then polled too soon.
    let pending = doc["deviceCode"].as_str().unwrap().to_string();
    let (status, doc) = device_poll(&server, &pending);
    assert_eq!((status, doc["error"].as_str()), (400, Some("authorization-pending")), "{doc}");
    let (status, doc) = device_poll(&server, &pending);
    assert_eq!((status, doc["error"].as_str()), (400, Some("slow-down")), "{doc}");

    // Denied.
    let (denied, code) = device_start(&server, json!([]));
    assert_eq!(approve(&server, &w, &code, false).0, 200);
    let (status, doc) = device_poll(&server, &denied);
    assert_eq!((status, doc["error"].as_str()), (400, Some("access-denied")), "{doc}");
    let (status, doc) = approve(&server, &w, &code, true);
    assert_eq!((status, doc["error"].as_str()), (409, Some("conflict")), "answered once: {doc}");

    // Approved: the first poll gets the token, once, with the scopes asked for.
    let (approved, code) = device_start(&server, json!(["publish-new", "yank"]));
    let (status, doc) = approve(&server, &w, &code.to_lowercase().replace('-', ""), true);
    assert_eq!((status, &doc["scopes"]), (200, &json!(["publish-new", "yank"])), "typed loosely: {doc}");
    let (status, doc) = device_poll(&server, &approved);
    assert_eq!(status, 200, "{doc}");
    let token = doc["token"].as_str().unwrap();
    assert_eq!(api(&server, Method::GET, "/whoami", token, None).status(), 200);
    let (status, doc) = device_poll(&server, &approved);
    assert_eq!((status, doc["error"].as_str()), (400, Some("invalid")), "delivered once: {doc}");
    let list: Value = api(&server, Method::GET, "/tokens", &root, None).json().unwrap();
    let made = list["tokens"].as_array().unwrap().iter().find(|t| t["label"] == "device login").unwrap();
    assert_eq!(made["scopes"], json!(["publish-new", "yank"]));

    // Expired: neither approved nor delivered.
    let (expired, code) = device_start(&server, json!([]));
    let conn = rusqlite::Connection::open(server.data.join("state.db")).unwrap();
    conn.execute("UPDATE device_codes SET expires = 0 WHERE state = 'pending'", []).unwrap();
    let (status, doc) = approve(&server, &w, &code, true);
    assert_eq!((status, doc["error"].as_str()), (400, Some("invalid")), "{doc}");
    let (status, doc) = device_poll(&server, &expired);
    assert_eq!((status, doc["error"].as_str()), (400, Some("expired-token")), "{doc}");
    let (status, doc) = approve(&server, &w, "BCDF-0000", true);
    assert_eq!((status, doc["error"].as_str()), (404, Some("not-found")), "{doc}");

    // The device codes are stored hashed.
    let stored =
        count(&server, &format!("SELECT COUNT(*) FROM device_codes WHERE device_hash = '{expired}'"));
    assert_eq!(stored, 0);
}

#[test]
fn device_approval_needs_a_session_with_the_rights_it_grants() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let root = server.token.clone().unwrap();
    let (_, code) = device_start(&server, json!([]));
    let body = json!({ "userCode": code, "approve": true });
    let (status, _) = answer(anonymous(&server, "/auth/device/approve", body.clone(), None));
    assert_eq!(status, 401, "nobody signed in");

    let (_, publish_only) = new_token(&server, &root, &["publish-update"], &[]);
    let w = sign_in(&server, json!({ "token": publish_only }));
    let (status, doc) = approve(&server, &w, &code, true);
    assert_eq!((status, doc["error"].as_str()), (403, Some("forbidden")), "no `tokens` scope: {doc}");

    let (_, narrow) = new_token(&server, &root, &["tokens", "yank"], &["web-*"]);
    let w = sign_in(&server, json!({ "token": narrow }));
    let (status, doc) = approve(&server, &w, &code, true);
    assert_eq!((status, doc["error"].as_str()), (403, Some("forbidden")), "more than it has: {doc}");
    let (device, code) = device_start(&server, json!(["yank"]));
    assert_eq!(approve(&server, &w, &code, true).0, 200);
    let (status, doc) = device_poll(&server, &device);
    assert_eq!(status, 200, "{doc}");
    let list: Value = api(&server, Method::GET, "/tokens", &root, None).json().unwrap();
    let made = list["tokens"].as_array().unwrap().iter().find(|t| t["label"] == "device login").unwrap();
    assert_eq!(
        (&made["scopes"], &made["packages"]),
        (&json!(["yank"]), &json!(["web-*"])),
        "within the approver's"
    );
}

#[test]
fn cairn_login_device_stores_a_token_that_whoami_uses() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let dana = server.add_user("dana");
    let w = sign_in(&server, json!({ "token": dana }));

    let user = support::user::User::new();
    let cwd = user.home.path();
    let mut child = user
        .command(cwd, &["login", "--device", "--registry", &server.url])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut page, mut code) = (None, None);
    while code.is_none() {
        let line = lines.next().expect("the CLI shows a code").unwrap();
        if line.trim_start().starts_with("http") {
            page = Some(line.trim().to_string());
        }
        code = line.strip_prefix("and enter the code: ").map(str::to_string);
    }
    assert_eq!(page.unwrap(), format!("{}/device", server.url));
    let (status, doc) = approve(&server, &w, &code.unwrap(), true);
    assert_eq!(status, 200, "{doc}");
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("as dana")), "{rest:?}");

    // Stored as `cairn login` stores a token: with the registry's key pinned.
    let creds = std::fs::read_to_string(user.credentials()).unwrap();
    assert!(creds.contains("token = \"cairn_") && creds.contains(&server.pubkey), "{creds}");
    assert_eq!(user.ok(cwd, &["whoami"]).trim(), "dana");
}
