//! A cache in front, kept current by purges (SPEC section 13, `[cdn]`):
//! the shipped Varnish configuration (tools/deploy/varnish/) in front of
//! `cairn serve` on 127.0.0.1, which purges a write group's URLs before
//! its replies. Each publish is fresh through Varnish at once; cargo
//! publishes a crate and a dependent on its new version through it; while
//! Varnish is down publishes succeed, health says degraded, and the purge
//! goes through once it is back. Cloudflare's form with its token, and
//! the configurations refused at start.

use crate::cargo::{write_crate, CargoEnv};
use crate::support;

use cairn::archive::builder::TarballBuilder;
use reqwest::blocking::Response;
use serde_json::Value;
use std::time::{Duration, Instant};
use support::hook::Receiver;
use support::varnish::Varnish;
use support::{client, eventually, Server};

fn publish(base: &str, token: &str, name: &str, version: &str) -> Response {
    let manifest =
        format!("[package]\nname = \"{name}\"\nversion = \"{version}\"\ndescription = \"cached\"\n");
    let tarball = TarballBuilder::new(name, version).manifest(manifest).gzip();
    client()
        .put(format!("{base}/api/v1/packages/{name}/{version}"))
        .bearer_auth(token)
        .header("Content-Type", "application/gzip")
        .body(tarball)
        .send()
        .unwrap()
}

/// The versions of the last line of `name`'s index file as `base` serves
/// it, and whether Varnish answered from its cache.
fn newest(base: &str, name: &str) -> (String, bool) {
    let r = client().get(format!("{base}/index/{}", cairn::index::package_path(name))).send().unwrap();
    assert_eq!(r.status(), 200, "{name}'s index file");
    let hit = r.headers().get("x-cache").is_some_and(|v| v == "HIT");
    let text = r.text().unwrap();
    let line: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    (line["vers"].as_str().unwrap().to_string(), hit)
}

fn health(server: &Server) -> Value {
    server.get("/api/v1/health").json().unwrap()
}

#[test]
fn each_of_50_publishes_is_fresh_through_varnish_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (server, varnish) = Varnish::in_front(&dir.path().join("data"));
    let token = server.add_user("pat");
    assert_eq!(publish(&varnish.url, &token, "fresh", "1.0.0").status(), 201);

    // Varnish keeps the index file and the documents (s-maxage), and
    // hands clients their own max-age with no age of its copy.
    let path = format!("/index/{}", cairn::index::package_path("fresh"));
    for url in [path.as_str(), "/api/v1/packages/fresh.json"] {
        let r = client().get(format!("{}{url}", varnish.url)).send().unwrap();
        assert_eq!(r.headers()["cache-control"], "public, max-age=60, s-maxage=86400", "{url}");
        let again = client().get(format!("{}{url}", varnish.url)).send().unwrap();
        assert_eq!(again.headers()["x-cache"], "HIT", "{url}");
        assert!(again.headers().get("age").is_none(), "{url}");
        assert_eq!(again.headers()["vary"], "Accept-Encoding", "{url}");
    }
    let (mut stale, mut hits) = (Vec::new(), 0);
    for i in 1..=50 {
        let version = format!("1.0.{i}");
        assert_eq!(publish(&varnish.url, &token, "fresh", &version).status(), 201, "{version}");
        // The first read after the 201 fetches from cairn; the next is
        // the cache's (a hit): the freshness of both is the purge's.
        for read in 0..2 {
            let (seen, hit) = newest(&varnish.url, "fresh");
            if seen != version {
                stale.push((version.clone(), read, seen));
            }
            hits += usize::from(read == 1 && hit);
        }
    }
    assert!(stale.is_empty(), "stale answers right after a publish: {stale:?}");
    assert_eq!(hits, 50, "each second read was a hit");
    let doc: Value =
        client().get(format!("{}/api/v1/packages/fresh.json", varnish.url)).send().unwrap().json().unwrap();
    assert_eq!(doc["latestVersion"], "1.0.50");
    // The API is never cached, and a private read never shared.
    for _ in 0..2 {
        let me = client().get(format!("{}/api/v1/whoami", varnish.url)).bearer_auth(&token).send().unwrap();
        assert_eq!(me.headers()["x-cache"], "MISS");
        assert_eq!(me.json::<Value>().unwrap()["login"], "pat");
    }
    // Only this host may purge (the ACL): cairn's purges all went through.
    assert_eq!(health(&server)["status"], "ok");
    assert_eq!(health(&server)["cdn"]["pending"], 0);
}

#[test]
fn cargo_publishes_a_crate_then_its_dependent_and_builds_through_varnish() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, varnish) = Varnish::in_front(&tmp.path().join("data"));
    let cargo = CargoEnv::at(tmp.path(), &varnish.url, server.token.as_deref().unwrap());
    let src = tmp.path().join("src");
    let lib = |v: &str, n: u8| {
        write_crate(&src, "koala", v, "", "lib.rs", &format!("pub fn leaves() -> u8 {{ {n} }}\n"))
    };
    cargo.ok(&lib("1.0.0", 1), &["publish", "--registry", "cairn", "--allow-dirty", "--no-verify"]);
    // A project on 1.0.0 through Varnish: koala's index file is in its cache.
    let old = write_crate(
        &src,
        "old-user",
        "0.1.0",
        "publish = false\n[dependencies]\nkoala = { version = \"1\", registry = \"cairn\" }\n",
        "main.rs",
        "fn main() { println!(\"{}\", koala::leaves()); }\n",
    );
    cargo.ok(&old, &["generate-lockfile"]);
    let cached = client()
        .get(format!("{}/index/{}", varnish.url, cairn::index::package_path("koala")))
        .send()
        .unwrap();
    assert_eq!(cached.headers()["x-cache"], "HIT");

    // The new version, then at once a crate that needs it (cargo resolves
    // koala ^1.1 through Varnish before it uploads), then a project on that.
    cargo.ok(&lib("1.1.0", 2), &["publish", "--registry", "cairn", "--allow-dirty", "--no-verify"]);
    let gum = write_crate(
        &src,
        "gum-tree",
        "0.1.0",
        "[dependencies]\nkoala = { version = \"1.1\", registry = \"cairn\" }\n",
        "lib.rs",
        "pub fn leaves() -> u8 { koala::leaves() * 10 }\n",
    );
    cargo.ok(&gum, &["publish", "--registry", "cairn", "--allow-dirty", "--no-verify"]);
    let app = write_crate(
        &src,
        "eucalyptus",
        "0.1.0",
        "publish = false\n[dependencies]\ngum-tree = { version = \"0.1\", registry = \"cairn\" }\n",
        "main.rs",
        "fn main() { println!(\"{}\", gum_tree::leaves()); }\n",
    );
    cargo.ok(&app, &["generate-lockfile"]);
    assert_eq!(cargo.ok(&app, &["run", "--quiet"]).trim(), "20");
    let lock = std::fs::read_to_string(app.join("Cargo.lock")).unwrap();
    assert!(lock.contains("name = \"koala\"\nversion = \"1.1.0\""), "{lock}");
    assert!(varnish.stat("MAIN.n_purges") > 0);
}

#[test]
fn while_varnish_is_down_publishes_succeed_and_the_purge_follows() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut varnish) = Varnish::in_front(&dir.path().join("data"));
    let token = server.add_user("pat");
    assert_eq!(publish(&server.url, &token, "patient", "1.0.0").status(), 201);
    assert_eq!(newest(&varnish.url, "patient").0, "1.0.0");

    varnish.stop();
    for version in ["1.1.0", "1.2.0"] {
        let asked = Instant::now();
        assert_eq!(publish(&server.url, &token, "patient", version).status(), 201, "{version}");
        assert!(asked.elapsed() < Duration::from_secs(10), "a publish took {:?}", asked.elapsed());
    }
    let h = health(&server);
    assert_eq!(h["status"], "degraded", "{h:#}");
    assert!(h["cdn"]["pending"].as_u64().unwrap() > 0, "{h:#}");
    assert!(h["cdn"]["error"].as_str().unwrap().contains("CDN purge"), "{h:#}");
    assert_eq!(h["pending"], serde_json::json!([]), "no derived file is owed: {h:#}");

    varnish.start();
    let purged_before = varnish.stat("MAIN.n_purges");
    eventually(
        || health(&server)["status"] == "ok",
        || format!("the owed purge never went through: {:#}", health(&server)),
    );
    assert!(varnish.stat("MAIN.n_purges") > purged_before, "the owed purge reached Varnish");
    assert_eq!(health(&server)["cdn"]["pending"], 0);
    assert_eq!(newest(&varnish.url, "patient").0, "1.2.0");
    assert_eq!(publish(&server.url, &token, "patient", "1.3.0").status(), 201);
    assert_eq!(newest(&varnish.url, "patient").0, "1.3.0");
}

#[test]
fn cloudflare_purges_full_urls_with_the_token_and_retries() {
    // The first answer is a 500: the purge is owed, then retried.
    let hook = Receiver::start(1);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cdn = format!(
        "[cdn]\nkind = \"cloudflare\"\npurge_url = \"{}\"\ntoken_env = \"CF_PURGE_TOKEN\"\nedge_max_age = 3600\n",
        hook.url
    );
    std::fs::write(data.join("registry.toml"), cdn).unwrap();
    let env = [("CAIRN_RATE_LIMIT", "off"), ("CF_PURGE_TOKEN", "cf-secret")];
    let server = Server::start_with(&data, &env, &["--public-url", "https://registry.example"]);
    let token = server.add_user("pat");
    assert_eq!(publish(&server.url, &token, "flare", "1.0.0").status(), 201);
    let r = server.get("/index/fl/ar/flare");
    assert_eq!(r.headers()["cache-control"], "public, max-age=60, s-maxage=3600");
    eventually(|| health(&server)["status"] == "ok", || format!("{:#}", health(&server)));
    let all = hook.all();
    assert!(all.len() >= 2, "a failed purge, then its retry");
    let retried = all.iter().find(|d| d.accepted).expect("an accepted purge");
    assert_eq!(retried.header("authorization"), "Bearer cf-secret");
    let files: Vec<String> = all
        .iter()
        .flat_map(|d| d.event()["files"].as_array().unwrap().clone())
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    for want in ["/index/fl/ar/flare", "/api/v1/packages/flare.json", "/p/flare"] {
        let want = format!("https://registry.example{want}");
        assert!(files.contains(&want), "{want} not in {files:?}");
    }
    assert!(all.iter().all(|d| d.event()["files"].as_array().unwrap().len() <= 30));

    // A private organisation's registry purges nothing: its files are
    // never in a shared cache (a purge would come before the 201).
    let admin = server.token.clone().unwrap();
    let made = client()
        .post(format!("{}/api/v1/orgs", server.url))
        .bearer_auth(&admin)
        .json(&serde_json::json!({ "slug": "zq-corp", "visibility": "private" }))
        .send()
        .unwrap();
    assert_eq!(made.status(), 201);
    assert_eq!(publish(&format!("{}/orgs/zq-corp", server.url), &admin, "hidden", "1.0.0").status(), 201);
    let r = server.get("/orgs/zq-corp/index/hi/dd/hidden");
    assert_eq!(r.status(), 401, "a private read needs a token");
    let purged = hook.all().len();
    assert_eq!(purged, all.len(), "no purge for the private publish");
}

#[test]
fn a_cdn_table_that_cannot_purge_is_refused_at_start() {
    for (table, says) in [
        ("[cdn]\nkind = \"fastly\"\npurge_url = \"http://127.0.0.1:1/\"\n", "unknown variant `fastly`"),
        ("[cdn]\nkind = \"cloudflare\"\npurge_url = \"https://api.example/purge\"\n", "needs token_env"),
        ("[cdn]\npurge_url = \"not a url\"\n", "purge_url"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("registry.toml"), table).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{table}: {err}");
    }
    // Cloudflare's token must be in the environment.
    let dir = tempfile::tempdir().unwrap();
    let table = "[cdn]\nkind = \"cloudflare\"\npurge_url = \"https://api.example/purge\"\ntoken_env = \"CAIRN_TEST_NO_SUCH_TOKEN\"\n";
    std::fs::write(dir.path().join("registry.toml"), table).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .env_remove("CAIRN_TEST_NO_SUCH_TOKEN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("CAIRN_TEST_NO_SUCH_TOKEN"), "{err}");
}
