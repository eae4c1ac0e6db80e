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

/// TLS to Postgres as the URL's `sslmode` says (SPEC section 13), against
/// a cluster that refuses plain connections and whose certificate, made
/// by the test's own CA, names `localhost` only: `verify-full` with the CA
/// serves and every session of cairn's is encrypted; a wrong name, an
/// unknown CA or no TLS at all is refused with the reason.
#[test]
fn tls_to_postgres_is_verified_as_the_url_says() {
    let pg = Postgres::start_tls();
    let db = pg.create_database().rsplit('/').next().unwrap().to_string();
    let ca = pg.ca_file();
    let url = |host: &str, params: &str| format!("postgres://postgres@{host}:{}/{db}?{params}", pg.port);
    let full = url("localhost", &format!("sslmode=verify-full&sslrootcert={}", ca.display()));

    // `cairn init` connects, migrates, or says why not; nothing is created on a refusal.
    let init = |url: &str| {
        let dir = tempfile::tempdir().unwrap();
        configure(dir.path(), url);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["init", "--data"])
            .arg(dir.path())
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned(), dir)
    };
    for (url, why) in [
        (url("localhost", "sslmode=disable"), "no encryption"),
        (
            url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={}", ca.display())),
            "not valid for name",
        ),
        (url("localhost", "sslmode=verify-full&sslrootcert=system"), "UnknownIssuer"),
        (url("localhost", "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"), "reading sslrootcert"),
        (url("localhost", "sslmode=sometimes"), "sslmode `sometimes`"),
    ] {
        let (ok, stderr, dir) = init(&url);
        assert!(!ok, "{url} connected");
        assert!(stderr.contains(why), "{url}: {stderr}");
        assert!(!dir.path().join("minisign.key").exists(), "{url}: a registry was made");
    }
    // Encrypted without checks (`require`), and the chain without the name (`verify-ca`).
    for params in ["sslmode=require".to_string(), format!("sslmode=verify-ca&sslrootcert={}", ca.display())] {
        let (ok, stderr, _dir) = init(&url("127.0.0.1", &params));
        assert!(ok, "{params}: {stderr}");
    }

    let dir = tempfile::tempdir().unwrap();
    configure(dir.path(), &full);
    let server = Server::start(dir.path());
    let root = server.token.clone().unwrap();
    assert_eq!(publish(&server, &root, "tls-kit", "1.0.0"), 201);
    let health: Value = server.get("/api/v1/health").json().unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    let mut admin = pg.client(&db);
    let mut sessions = |ssl: bool| {
        let sql = format!(
            "SELECT COUNT(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = '{db}' AND a.client_addr IS NOT NULL AND s.ssl = {ssl}"
        );
        count(&mut admin, &sql)
    };
    assert!(sessions(true) >= 1, "cairn's sessions are encrypted");
    assert_eq!(sessions(false), 0);
}

/// `cairn backup` of a registry on Postgres holds everything but the
/// database and says so; after the database is lost and brought back
/// with pg_dump/pg_restore, `cairn restore` makes a registry that passes
/// fsck, has the same index head and serves the same package files.
#[test]
fn a_backup_on_postgres_with_pg_dump_restores_whole() {
    let pg = Postgres::shared();
    let url = pg.create_database();
    let db = url.rsplit('/').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    configure(&data, &url);
    let server = Server::start(&data);
    let root = server.token.clone().unwrap();
    for name in ["pg-one", "pg-two", "pg-three"] {
        assert_eq!(publish(&server, &root, name, "1.0.0"), 201);
    }
    assert_eq!(api(&server, Method::DELETE, "/packages/pg-two/1.0.0", &root, None).status(), 200);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["backup", "--data"])
        .arg(&data)
        .arg(dir.path().join("backup"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("Postgres") && said.contains("pg_dump"),
        "the backup says what it leaves out: {said}"
    );
    let manifest: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(manifest["database"], "postgres");
    assert!(!dir.path().join("backup/state.db").exists());

    // The database's own tools, then the loss of it.
    let (bin, port) = (support::pg::bin_dir(), pg.port.to_string());
    let dump = dir.path().join("state.dump");
    let pg_tool = |tool: &str, args: &[&str]| {
        let out = std::process::Command::new(bin.join(tool))
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
    };
    pg_tool("pg_dump", &["-Fc", "-f", dump.to_str().unwrap(), &db]);
    // Lost under the running server (which keeps serving its static files).
    let mut admin = pg.client("postgres");
    admin.batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)")).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
    pg_tool("pg_restore", &["-d", &db, dump.to_str().unwrap()]);

    let restored = dir.path().join("restored");
    crate::ops::restore(&dir.path().join("backup"), &restored);
    crate::ops::fsck_clean(&restored);
    assert_eq!(crate::ops::head(&restored), crate::ops::head(&data));
    crate::ops::same_package_files(&server, &restored);
}
