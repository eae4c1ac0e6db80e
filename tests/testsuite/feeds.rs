//! What SPEC section 19 adds to reading a registry: the Atom feeds (the
//! latest publishes, each package's versions), read with a real feed
//! parser, each package's dependents, and the seeds' search routes (pakx's `GET /api/v1/packages`,
//! skillreg's `GET /api/v1/search`), answered with the one ranking.

use crate::support;

use cairn::archive::builder::TarballBuilder;
use reqwest::Method;
use serde_json::{json, Value};
use support::{api, Server};

fn publish(server: &Server, token: &str, name: &str, version: &str, kind: &str, description: &str) {
    let toml = format!(
        "[package]\nname = \"{name}\"\nversion = \"{version}\"\nkind = \"{kind}\"\ndescription = \"{description}\"\n"
    );
    let body = TarballBuilder::new(name, version).manifest(toml).gzip();
    assert_eq!(server.put(name, version, token, body, "application/gzip").status(), 201, "{name} {version}");
}

/// The feed at `path` as Python's feedparser reads it: its title, and its
/// entries' titles and links, or the parser's complaint.
fn parsed(server: &Server, path: &str) -> Value {
    let resp = server.get(path);
    assert_eq!(resp.status(), 200, "{path}");
    assert_eq!(resp.headers()["content-type"], "application/atom+xml");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), resp.bytes().unwrap()).unwrap();
    let script = "import feedparser, json, sys\n\
        d = feedparser.parse(open(sys.argv[1], 'rb').read(), response_headers={'content-location': sys.argv[2], 'content-type': 'application/atom+xml'})\n\
        assert not d.bozo, d.bozo_exception\n\
        assert d.version == 'atom10', d.version\n\
        print(json.dumps({'title': d.feed.title, 'updated': d.feed.updated,\n\
          'entries': [{'title': e.title, 'link': e.link, 'updated': e.updated} for e in d.entries]}))\n";
    let url = format!("{}{path}", server.url);
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(file.path())
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{path}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn atom_feeds_follow_every_publish_and_yank() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    publish(&server, &token, "feedme", "1.0.0", "skill", "A <fine> & 'quoted' skill");
    publish(&server, &token, "other", "0.1.0", "library", "something else");
    publish(&server, &token, "feedme", "1.1.0", "skill", "A <fine> & 'quoted' skill");

    let updates = parsed(&server, "/feeds/updates.xml");
    let titles: Vec<&str> =
        updates["entries"].as_array().unwrap().iter().map(|e| e["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["feedme 1.1.0", "other 0.1.0", "feedme 1.0.0"]);
    let one = parsed(&server, "/feeds/packages/feedme.xml");
    assert_eq!(one["entries"][0]["link"], format!("{}/p/feedme/1.1.0", server.url));
    assert_eq!(one["entries"].as_array().unwrap().len(), 2);
    assert_eq!(one["updated"], one["entries"][0]["updated"]);
    // The package page links its feed.
    let page = server.get("/p/feedme").text().unwrap();
    assert!(page.contains("href=\"/feeds/packages/feedme.xml\""), "{page}");

    // A yank leaves the package's feed at once (the writer rewrites it with the pages).
    let yank = api(&server, Method::DELETE, "/packages/feedme/1.1.0", &token, None);
    assert_eq!(yank.status(), 200);
    let one = parsed(&server, "/feeds/packages/feedme.xml");
    let titles: Vec<&str> =
        one["entries"].as_array().unwrap().iter().map(|e| e["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["feedme 1.0.0"]);
}

#[test]
fn the_seeds_search_routes_answer_with_the_one_ranking() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    publish(&server, &token, "weather-skill", "1.0.0", "skill", "Forecasts for agents");
    publish(&server, &token, "weather-lib", "2.0.0", "library", "Weather data parsing");
    publish(&server, &token, "unrelated", "0.3.0", "mcp", "Nothing to see");
    let get = |path: &str, token: Option<&str>| {
        let mut req = support::client().get(format!("{}/api/v1{path}", server.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().unwrap();
        (resp.status().as_u16(), resp.json::<Value>().unwrap())
    };

    // pakx's shape; the same order as cargo's search (the one ranking).
    let (status, found) = get("/packages?q=weather&limit=10", None);
    assert_eq!(status, 200);
    let cargo: Value = server.get("/api/v1/crates?q=weather").json().unwrap();
    let names: Vec<&Value> = found["packages"].as_array().unwrap().iter().map(|p| &p["id"]).collect();
    let cargo_names: Vec<&Value> = cargo["crates"].as_array().unwrap().iter().map(|c| &c["name"]).collect();
    assert_eq!(names, cargo_names);
    let skill = found["packages"].as_array().unwrap().iter().find(|p| p["id"] == "weather-skill").unwrap();
    assert_eq!(
        skill,
        &json!({"id": "weather-skill", "kind": "skill", "description": "Forecasts for agents", "latestVersion": "1.0.0"})
    );
    // An empty query: the packages published last, newest first.
    let (_, recent) = get("/packages?q=&limit=2", None);
    assert_eq!(
        recent["packages"].as_array().unwrap().iter().map(|p| &p["id"]).collect::<Vec<_>>(),
        ["unrelated", "weather-lib"]
    );
    let (status, bad) = get("/packages?q=x&limit=many", None);
    assert_eq!((status, bad["error"].as_str()), (400, Some("invalid")));

    // skillreg's, with `org`: a public organisation's packages; a private one's for members only.
    let made = api(&server, Method::POST, "/orgs", &token, Some(json!({"slug": "acme"})));
    assert_eq!(made.status(), 201);
    let add = json!({"users": ["org:acme"]});
    assert_eq!(api(&server, Method::PUT, "/packages/weather-lib/owners", &token, Some(add)).status(), 200);
    let (_, all) = get("/search?q=weather", None);
    assert_eq!(all["total"], 2);
    let (_, acme) = get("/search?q=weather&org=acme", None);
    let only: Vec<&Value> = acme["results"].as_array().unwrap().iter().map(|r| &r["name"]).collect();
    assert_eq!(only, ["weather-lib"]);
    assert_eq!(acme["results"][0]["org"], "acme");

    let hidden =
        api(&server, Method::POST, "/orgs", &token, Some(json!({"slug": "hidden", "visibility": "private"})));
    assert_eq!(hidden.status(), 201);
    let body = TarballBuilder::new("secret-weather", "1.0.0").gzip();
    let put = support::client()
        .put(format!("{}/orgs/hidden/api/v1/packages/secret-weather/1.0.0", server.url))
        .bearer_auth(&token)
        .header("Content-Type", "application/gzip")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(put.status(), 201);
    let (status, member) = get("/search?q=weather&org=hidden", Some(&token));
    assert_eq!(status, 200);
    assert_eq!(member["results"][0]["name"], "secret-weather", "{member}");
    let (status, _) = get("/search?q=weather&org=hidden", None);
    assert_eq!(status, 401);
    let stranger = server.add_user("stranger");
    let (status, refused) = get("/search?q=weather&org=hidden", Some(&stranger));
    assert_eq!(status, 404, "{refused}");
    let (status, _) = get("/search?q=weather&org=nosuch", None);
    assert_eq!(status, 404);
}

#[test]
fn dependents_follow_every_publish_and_yank() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    let put = |name: &str, version: &str, deps: &str| {
        let toml = format!("[package]\nname = \"{name}\"\nversion = \"{version}\"\n\n[dependencies]\n{deps}");
        let body = TarballBuilder::new(name, version).manifest(toml).gzip();
        assert_eq!(
            server.put(name, version, &token, body, "application/gzip").status(),
            201,
            "{name} {version}"
        );
    };
    let dependents = || -> Value { server.get("/api/v1/packages/base/dependents.json").json().unwrap() };
    let names = |doc: &Value| -> Vec<String> {
        doc["dependents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect()
    };
    put("base", "1.0.0", "");
    assert_eq!(dependents(), json!({"name": "base", "total": 0, "dependents": []}));
    put("app", "1.0.0", "base = \"^1\"\n");
    put("tool", "1.0.0", "base = \"^1\"\nother = \"*\"\n");
    let doc = dependents();
    assert_eq!((doc["total"].as_u64(), names(&doc)), (Some(2), vec!["app".to_string(), "tool".to_string()]));
    support::validate("dependents", &doc);
    let page = server.get("/p/base").text().unwrap();
    assert!(page.contains("Dependents (2)") && page.contains("href=\"/p/tool\""), "{page}");

    // The newest version counts: app 2 no longer depends on base; tool's
    // only version yanked leaves nothing that depends.
    put("app", "2.0.0", "");
    assert_eq!(names(&dependents()), ["tool"]);
    let yank = api(&server, Method::DELETE, "/packages/tool/1.0.0", &token, None);
    assert_eq!(yank.status(), 200);
    assert_eq!(dependents()["total"], 0);
    assert!(!server.get("/p/base").text().unwrap().contains("Dependents ("));
    let unyank = api(&server, Method::POST, "/packages/tool/1.0.0/unyank", &token, None);
    assert_eq!(unyank.status(), 200);
    put("app", "3.0.0", "base = \"^1\"\n");

    // Most downloaded first, as of the static job's run after the stats.
    let tool = server.get("/api/v1/packages/tool/1.0.0.json").json::<Value>().unwrap();
    let sha = tool["sha256"].as_str().unwrap();
    let log = dir.path().join("access.log");
    let line = format!("203.0.113.9 - - [01/Dec/2026:10:00:00 +0000] \"GET /blobs/sha256/{sha} HTTP/1.1\" 200 99 \"-\" \"cairn/0.1\"\n");
    std::fs::write(&log, line.repeat(3)).unwrap();
    for job in [&["rebuild", "stats", "--access-log", log.to_str().unwrap()][..], &["rebuild", "static"][..]]
    {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(job)
            .arg("--data")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let doc = dependents();
    assert_eq!(names(&doc), ["tool", "app"], "{doc}");
    assert_eq!(doc["dependents"][0]["downloads"], 3);
    // fsck finds the dependents documents as the derivation makes them.
    let fsck = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["fsck", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stdout));
}
