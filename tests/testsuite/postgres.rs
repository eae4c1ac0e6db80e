//! A registry whose state database is Postgres (`[database] url`, SPEC
//! section 13): `registry.toml` written in the data directory first, then
//! `cairn serve` (or `cairn init`) creates the schema there; every write of
//! the HTTP API lands in Postgres and nothing in a `state.db`. Postgres is a
//! real cluster the test starts (tests/testsuite/support/pg.rs).

use crate::support;

use cairn::archive::builder::TarballBuilder;
use reqwest::Method;
use serde_json::{json, Value};
use support::pg::Postgres;
use support::{api, client, Server};

const GZ: &str = "application/gzip";

fn configure(dir: &std::path::Path, url: &str) {
    let toml = format!("[database]\nurl = \"{url}\"\n\n[accounts]\nsignup = \"open\"\n");
    std::fs::write(dir.join("registry.toml"), toml).unwrap();
}

fn publish(server: &Server, token: &str, name: &str, version: &str) -> u16 {
    let body = TarballBuilder::new(name, version).file("README.md", b"# hi\n").gzip();
    server.put(name, version, token, body, GZ).status().as_u16()
}

fn strings(db: &mut postgres::Client, sql: &str) -> Vec<String> {
    db.query(sql, &[]).unwrap().iter().map(|r| r.get::<_, String>(0)).collect()
}

fn count(db: &mut postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn a_registry_on_postgres_keeps_its_state_there() {
    let pg = Postgres::start();
    let url = pg.create_database();
    let dir = tempfile::tempdir().unwrap();
    configure(dir.path(), &url);
    let mut server = Server::start(dir.path());
    let root = server.token.clone().expect("serve created the registry and printed a token");

    // Publish, a refused duplicate, yank.
    assert_eq!(publish(&server, &root, "Pg_Kit", "1.0.0"), 201);
    assert_eq!(publish(&server, &root, "Pg_Kit", "1.0.0"), 409, "a version is burned");
    assert_eq!(publish(&server, &root, "pg-kit", "1.0.0+build"), 409, "build metadata is no new version");
    assert_eq!(publish(&server, &root, "Pg_Kit", "1.1.0"), 201);
    assert_eq!(api(&server, Method::DELETE, "/packages/Pg_Kit/1.1.0", &root, None).status(), 200);
    let index = server.get("/index/pg/_k/pg_kit").text().unwrap();
    assert!(index.lines().last().unwrap().contains(r#""yanked":true"#), "{index}");

    // Owners, with a user the admin CLI added (through Postgres too).
    let bob = server.add_user("bob");
    let resp = api(&server, Method::PUT, "/packages/Pg_Kit/owners", &root, Some(json!({ "users": ["bob"] })));
    assert_eq!(resp.status(), 200);
    let owners: Value = api(&server, Method::GET, "/crates/pg_kit/owners", &root, None).json().unwrap();
    let logins: Vec<&str> =
        owners["users"].as_array().unwrap().iter().map(|u| u["login"].as_str().unwrap()).collect();
    assert_eq!(logins, ["admin", "bob"]);
    assert_eq!(publish(&server, &bob, "Pg_Kit", "1.2.0"), 201, "an owner now");

    // Tokens: made, listed, revoked.
    let body = json!({ "label": "ci", "scopes": ["yank"], "packages": ["pg-*"], "expiresAt": null });
    let made: Value = api(&server, Method::POST, "/tokens", &root, Some(body)).json().unwrap();
    let id = made["id"].as_i64().unwrap();
    let listed: Value = api(&server, Method::GET, "/tokens", &root, None).json().unwrap();
    assert!(listed.to_string().contains(r#""label":"ci""#), "{listed}");
    assert_eq!(api(&server, Method::DELETE, &format!("/tokens/{id}"), &root, None).status(), 200);
    let key = made["key"].as_str().unwrap();
    assert_eq!(api(&server, Method::DELETE, "/packages/Pg_Kit/1.0.0", key, None).status(), 401);

    // Web accounts: signup, then a password login.
    let signup =
        json!({ "login": "carol", "email": "carol@example.org", "password": "a long enough password" });
    let resp = client().post(format!("{}/api/v1/auth/signup", server.url)).json(&signup).send().unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
    let login = json!({ "login": "Carol", "password": "a long enough password" });
    let resp = client().post(format!("{}/api/v1/auth/login", server.url)).json(&login).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["set-cookie"].to_str().unwrap().starts_with("cairn_session="));

    // The rows are in Postgres.
    let mut db = pg.client(url.rsplit('/').next().unwrap());
    let versions = strings(&mut db, "SELECT vers FROM versions WHERE package = 'pg-kit' ORDER BY seq");
    assert_eq!(versions, ["1.0.0", "1.1.0", "1.2.0"]);
    assert_eq!(strings(&mut db, "SELECT name FROM packages"), ["Pg_Kit"]);
    let owners = "SELECT u.login FROM owners o JOIN users u ON u.id = o.user_id ORDER BY u.login";
    assert_eq!(strings(&mut db, owners), ["admin", "bob"]);
    let revoked = db.query_one("SELECT revoked_at FROM tokens WHERE id = $1", &[&id]).unwrap();
    assert!(revoked.get::<_, Option<String>>(0).is_some());
    let hash = strings(&mut db, "SELECT password_hash FROM users WHERE login = 'carol'");
    assert!(hash[0].starts_with("$argon2id$"), "{hash:?}");
    assert!(count(&mut db, "SELECT COUNT(*) FROM sessions") >= 2, "signup's and login's sessions");
    let actions = strings(&mut db, "SELECT DISTINCT action FROM audit ORDER BY action");
    for action in ["login", "owners", "publish", "signup", "yank"] {
        assert!(actions.iter().any(|a| a == action), "{action} audited: {actions:?}");
    }
    let latest = cairn::db::migrate::latest(cairn::db::Engine::Postgres);
    assert_eq!(count(&mut db, "SELECT MAX(version) FROM schema_migrations"), latest);
    let health: Value = server.get("/api/v1/health").json().unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert!(!dir.path().join("state.db").exists(), "nothing in an embedded database");

    // A restart (recovery reads the rows back from Postgres): the burned
    // number stays burned, the next one is taken.
    server.kill();
    let server = Server::start(dir.path());
    assert_eq!(publish(&server, &root, "Pg_Kit", "1.1.0"), 409);
    assert_eq!(publish(&server, &root, "Pg_Kit", "1.3.0"), 201);
    assert_eq!(count(&mut db, "SELECT value FROM counters WHERE name = 'versions'"), 4);
    assert!(!dir.path().join("state.db").exists());
}

/// Two servers on one database (two data directories, one `registry.toml`):
/// publishes of one version at once on both are taken once; the writers'
/// transactions take turns across the processes.
#[test]
fn two_servers_on_one_postgres_burn_a_version_once() {
    let pg = Postgres::start();
    let url = pg.create_database();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    configure(a_dir.path(), &url);
    // The second data directory is made with `cairn init`: the database has
    // the account already, and the new directory gets a token of its own.
    configure(b_dir.path(), &url);
    let a = Server::start(a_dir.path());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["init", "--data"])
        .arg(b_dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let b = Server::start(b_dir.path());
    let b_token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let a_token = a.token.clone().unwrap();
    assert_ne!(a_token, b_token);
    assert_eq!(publish(&a, &a_token, "shared", "0.1.0"), 201);
    for round in 0..4 {
        let version = format!("1.0.{round}");
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let one = s.spawn(|| publish(&a, &a_token, "shared", &version));
            let two = s.spawn(|| publish(&b, &b_token, "shared", &version));
            vec![one.join().unwrap(), two.join().unwrap()]
        });
        let mut sorted = statuses.clone();
        sorted.sort();
        assert_eq!(sorted, [201, 409], "round {round}: {statuses:?}");
    }
    let mut db = pg.client(url.rsplit('/').next().unwrap());
    assert_eq!(count(&mut db, "SELECT COUNT(*) FROM versions WHERE package = 'shared'"), 5);
    assert_eq!(count(&mut db, "SELECT COUNT(*) FROM users WHERE login = 'admin'"), 1);
    assert!(!a_dir.path().join("state.db").exists() && !b_dir.path().join("state.db").exists());
}
