//! The npm protocol (SPEC section 18) with the real npm client: publish,
//! install of a two-level graph with its lock's integrity, `npm ci` from a
//! lock after a yank, dist-tags, deprecations, owners, whoami, search,
//! `npm audit` and `npm audit signatures`, web login, a private
//! organisation's scope, and hostile tarballs through npm's door.

use crate::support;

use base64::prelude::{Engine, BASE64_STANDARD};
use cairn::archive::builder::TarballBuilder;
use cairn::archive::ManifestKind;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use support::npm::{package, project, Npm};
use support::{api, Nginx, Server};

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn get_json(url: &str) -> Value {
    let resp = support::client().get(url).send().unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    resp.json().unwrap()
}

fn lock(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("package-lock.json")).unwrap()).unwrap()
}

fn installed_version(dir: &Path, name: &str) -> String {
    let p: Value = serde_json::from_slice(
        &std::fs::read(dir.join("node_modules").join(name).join("package.json")).unwrap(),
    )
    .unwrap();
    p["version"].as_str().unwrap().to_string()
}

#[test]
fn npm_publishes_installs_a_two_level_graph_and_installs_its_lock_after_a_yank() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Through the shipped nginx configuration: packuments, keys and tarballs are its files.
    let (server, nginx) = Nginx::in_front(&data);
    let door = format!("{}/npm/", nginx.url);
    let npm = Npm::new(&door, server.token.as_deref(), &[]);
    let work = dir.path().join("work");
    for (name, version, deps) in [
        ("alpha", "1.0.0", json!({})),
        ("alpha", "1.1.0", json!({})),
        ("beta", "2.0.0", json!({"alpha": "^1.0.0"})),
    ] {
        let pkg = package(
            &work,
            json!({"name": name, "version": version, "main": "index.js", "dependencies": deps}),
        );
        npm.ok(&pkg, &["publish"]);
    }
    let resp = support::client().get(format!("{door}alpha")).send().unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let alpha: Value = resp.json().unwrap();
    assert_eq!(alpha["dist-tags"]["latest"], "1.1.0");
    let dist = &alpha["versions"]["1.1.0"]["dist"];
    assert!(dist["tarball"].as_str().unwrap().starts_with(&nginx.url), "{dist}");
    // The index line says npm and keeps npm's ranges.
    let beta_line = std::fs::read_to_string(data.join("static/index/be/ta/beta")).unwrap();
    let beta_line: Value = serde_json::from_str(beta_line.trim()).unwrap();
    assert_eq!((&beta_line["fmt"], &beta_line["deps"][0]["req"]), (&json!("npm"), &json!("^1.0.0")));

    let app = project(&work, "app");
    npm.ok(&app, &["install", "beta"]);
    assert_eq!(
        (installed_version(&app, "alpha"), installed_version(&app, "beta")),
        ("1.1.0".into(), "2.0.0".into())
    );
    let locked = lock(&app);
    assert_eq!(locked["packages"]["node_modules/alpha"]["integrity"], dist["integrity"]);
    assert_eq!(locked["packages"]["node_modules/alpha"]["resolved"], dist["tarball"]);
    let beta: Value = get_json(&format!("{door}beta"));
    assert_eq!(
        locked["packages"]["node_modules/beta"]["integrity"],
        beta["versions"]["2.0.0"]["dist"]["integrity"]
    );

    // npm's own check of the registry's signatures, with the key at /npm/-/npm/v1/keys.
    let signed = npm.audit_signatures(&app);
    assert!(signed.status.success(), "{}", text(&signed));
    assert!(text(&signed).contains("2 packages have verified registry signatures"), "{}", text(&signed));

    // `npm unpublish name@version` yanks: the packument drops it, the lock still installs.
    npm.ok(&work, &["unpublish", "alpha@1.1.0"]);
    let alpha: Value = get_json(&format!("{door}alpha"));
    assert!(alpha["versions"].get("1.1.0").is_none(), "{alpha}");
    assert_eq!(alpha["dist-tags"]["latest"], "1.0.0");
    let line = std::fs::read_to_string(data.join("static/index/al/ph/alpha")).unwrap();
    assert!(line.lines().any(|l| l.contains("\"1.1.0\"") && l.contains("\"yanked\":true")), "{line}");
    std::fs::remove_dir_all(app.join("node_modules")).unwrap();
    let fresh = Npm::new(&door, None, &[]);
    fresh.ok(&app, &["ci"]);
    assert_eq!(installed_version(&app, "alpha"), "1.1.0");
    // Downloads are counted from nginx's access log of the tarball URLs
    // (npm ci's: the publisher's npm had the tarballs in its cache).
    let stats = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["rebuild", "stats", "--data"])
        .arg(&data)
        .arg("--access-log")
        .arg(nginx.run_dir.join("access.log"))
        .output()
        .unwrap();
    assert!(stats.status.success(), "{}", text(&stats));
    let counted = get_json(&format!("{}/api/v1/packages/alpha/stats.json", nginx.url));
    assert_eq!(counted["total"], 1, "{counted}");

    // The whole-package form is refused, and nothing goes.
    let refused = npm.run(&work, &["unpublish", "alpha", "--force"]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("403") && text(&refused).contains("never deletes"), "{}", text(&refused));
    assert!(get_json(&format!("{door}alpha"))["versions"].get("1.0.0").is_some());
    // A scoped name at the public door: 400, naming the door to use.
    let scoped = support::client().get(format!("{door}@acme%2fthing")).send().unwrap();
    assert_eq!(scoped.status(), 400);
    assert!(scoped.text().unwrap().contains("/orgs/acme/npm/"));
    drop(server);
}

#[test]
fn dist_tags_deprecations_owners_whoami_and_search() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let door = format!("{}/npm/", server.url);
    let npm = Npm::new(&door, server.token.as_deref(), &[]);
    let work = dir.path().join("work");
    npm.ok(
        &package(&work, json!({"name": "gamma", "version": "1.0.0", "keywords": ["colour"]})),
        &["publish"],
    );
    npm.ok(&package(&work, json!({"name": "gamma", "version": "1.1.0"})), &["publish"]);
    npm.ok(
        &package(&work, json!({"name": "gamma", "version": "2.0.0-beta.1"})),
        &["publish", "--tag", "beta"],
    );

    let tags = npm.ok(&work, &["dist-tag", "ls", "gamma"]);
    assert!(tags.contains("beta: 2.0.0-beta.1") && tags.contains("latest: 1.1.0"), "{tags}");
    npm.ok(&work, &["dist-tag", "add", "gamma@1.0.0", "old"]);
    assert_eq!(get_json(&format!("{door}gamma"))["dist-tags"]["old"], "1.0.0");
    npm.ok(&work, &["dist-tag", "rm", "gamma", "old"]);
    assert!(get_json(&format!("{door}gamma"))["dist-tags"].get("old").is_none());
    let latest = npm.run(&work, &["dist-tag", "add", "gamma@1.0.0", "latest"]);
    assert!(!latest.status.success() && text(&latest).contains("newest version"), "{}", text(&latest));

    // One version deprecated: npm warns at its install.
    npm.ok(&work, &["deprecate", "gamma@1.0.0", "use 1.1 instead"]);
    let packument = get_json(&format!("{door}gamma"));
    assert_eq!(packument["versions"]["1.0.0"]["deprecated"], "use 1.1 instead");
    assert!(packument["versions"]["1.1.0"].get("deprecated").is_none());
    let app = project(&work, "app");
    let out = npm.run(&app, &["install", "gamma@1.0.0"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("deprecated") && text(&out).contains("use 1.1 instead"), "{}", text(&out));
    // Every version deprecated is the package's deprecation; "" undoes it.
    npm.ok(&work, &["deprecate", "gamma", "gone"]);
    assert_eq!(get_json(&format!("{}/api/v1/packages/gamma.json", server.url))["deprecated"], "gone");
    npm.ok(&work, &["deprecate", "gamma", ""]);
    let doc = get_json(&format!("{}/api/v1/packages/gamma.json", server.url));
    assert_eq!(doc["deprecated"], Value::Null);
    assert!(get_json(&format!("{door}gamma"))["versions"]["1.0.0"].get("deprecated").is_none());

    // Owners: npm's PUT of the maintainers list.
    server.add_user("bob");
    npm.ok(&work, &["owner", "add", "bob", "gamma"]);
    let owners = get_json(&format!("{}/api/v1/packages/gamma/owners.json", server.url));
    assert!(owners.to_string().contains("\"bob\""), "{owners}");
    assert!(npm.ok(&work, &["owner", "ls", "gamma"]).contains("bob"));
    npm.ok(&work, &["owner", "rm", "bob", "gamma"]);
    assert!(!npm.ok(&work, &["owner", "ls", "gamma"]).contains("bob"));

    assert_eq!(npm.ok(&work, &["whoami"]).trim(), "admin");
    let found = npm.ok(&work, &["search", "gamma", "--json"]);
    let found: Value = serde_json::from_str(&found).unwrap();
    assert_eq!(found[0]["name"], "gamma", "{found}");

    // cairn's own client: `info` says npm, `install` leaves it to npm.
    let user = support::user::User::new();
    let reg = ["--registry", server.url.as_str()];
    let info = user.ok(&work, &[&["info", "gamma"][..], &reg].concat());
    assert!(info.contains("npm install gamma"), "{info}");
    let refused = user.fails(&project(&work, "cairn-app"), &[&["install", "gamma"][..], &reg].concat());
    assert!(refused.contains("npm package") && refused.contains("npm install gamma"), "{refused}");
    // The page's install snippet is npm's.
    let page = support::client().get(format!("{}/p/gamma", server.url)).send().unwrap().text().unwrap();
    assert!(page.contains("npm install gamma@1.1.0"), "{page}");

    // The packument is a derived file like any other: fsck checks it and repairs it byte for byte.
    let packument = server.data.join("static/npm/gamma");
    let made = std::fs::read(&packument).unwrap();
    let fsck = |repair: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.arg("fsck").arg("--data").arg(&server.data);
        if repair {
            cmd.arg("--repair");
        }
        cmd.output().unwrap()
    };
    assert!(fsck(false).status.success(), "{}", text(&fsck(false)));
    std::fs::write(&packument, b"{}").unwrap();
    let found = fsck(false);
    assert!(!found.status.success() && text(&found).contains("npm/gamma"), "{}", text(&found));
    assert!(fsck(true).status.success());
    assert_eq!(std::fs::read(&packument).unwrap(), made);
}

#[test]
fn npm_audit_reports_an_osv_advisory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let door = format!("{}/npm/", server.url);
    let npm = Npm::new(&door, server.token.as_deref(), &[]);
    let work = dir.path().join("work");
    for v in ["1.0.0", "1.2.0"] {
        npm.ok(&package(&work, json!({"name": "vulnlib", "version": v})), &["publish"]);
    }
    let osv = json!({
        "id": "CAIRN-2026-0077", "modified": "2026-11-01T00:00:00Z", "summary": "A flaw in vulnlib",
        "database_specific": { "severity": "CRITICAL" },
        "affected": [{ "package": { "name": "vulnlib" },
                       "ranges": [{ "type": "SEMVER", "events": [{ "introduced": "0" }, { "fixed": "1.2.0" }] }] }],
    });
    let file = dir.path().join("osv.json");
    std::fs::write(&file, osv.to_string()).unwrap();
    let cairn = |args: &[&str]| {
        let out =
            Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).arg("--data").arg(&data).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    };
    cairn(&["admin", "advisory", "add", file.to_str().unwrap()]);
    cairn(&["rebuild", "advisories"]);

    let app = project(&work, "app");
    npm.ok(&app, &["install", "vulnlib@1.0.0"]);
    let out = npm.run(&app, &["audit", "--json"]);
    assert!(!out.status.success(), "a finding fails the audit");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = &report["vulnerabilities"]["vulnlib"];
    assert_eq!(found["severity"], "critical", "{report}");
    assert_eq!(found["via"][0]["title"], "A flaw in vulnlib");
    npm.ok(&app, &["install", "vulnlib@1.2.0"]);
    let clean = npm.run(&app, &["audit", "--json"]);
    assert!(clean.status.success(), "{}", text(&clean));
}

#[test]
fn a_private_organisations_scope_needs_its_token() {
    let dir = tempfile::tempdir().unwrap();
    // Through nginx: its auth_request guards the scope's door and its tarballs.
    let (server, nginx) = Nginx::in_front(&dir.path().join("data"));
    let token = server.token.clone().unwrap();
    let made =
        api(&server, Method::POST, "/orgs", &token, Some(json!({"slug": "acme", "visibility": "private"})));
    assert_eq!(made.status(), 201);
    let scope_door = format!("{}/orgs/acme/npm/", nginx.url);
    let public_door = format!("{}/npm/", nginx.url);
    let member = Npm::new(
        &public_door,
        None,
        &[format!("@acme:registry={scope_door}"), {
            let nerf = scope_door.trim_start_matches("http:");
            format!("{nerf}:_authToken={token}")
        }],
    );
    let work = dir.path().join("work");
    let widget = package(&work, json!({"name": "@acme/widget", "version": "1.0.0"}));
    member.ok(&widget, &["publish"]);
    // It is the package `widget` of acme's registry, and only there.
    let index = server.data.join("static/orgs/acme/index/wi/dg/widget");
    assert!(index.is_file());
    assert!(!server.data.join("static/index/wi/dg/widget").exists());
    let app = project(&work, "app");
    member.ok(&app, &["install", "@acme/widget"]);
    assert_eq!(installed_version(&app, "@acme/widget"), "1.0.0");
    let locked = lock(&app);
    let resolved = locked["packages"]["node_modules/@acme/widget"]["resolved"].as_str().unwrap();
    assert!(resolved.starts_with(&format!("{scope_door}-/blobs/sha256/")), "{resolved}");

    // Both of npm's URL forms of a scoped name are the one packument.
    let read = |url: String| support::client().get(url).bearer_auth(&token).send().unwrap();
    let encoded = read(format!("{scope_door}@acme%2fwidget"));
    assert_eq!(
        (encoded.status().as_u16(), encoded.headers()["content-type"].to_str().unwrap()),
        (200, "application/json")
    );
    let encoded = encoded.bytes().unwrap();
    assert_eq!(read(format!("{scope_door}@acme/widget")).bytes().unwrap(), encoded);
    assert_eq!(serde_json::from_slice::<Value>(&encoded).unwrap()["name"], "@acme/widget");

    // Without a token: refused, and nothing is disclosed.
    let stranger = Npm::new(&public_door, None, &[format!("@acme:registry={scope_door}")]);
    let other = project(&work, "other");
    let refused = stranger.run(&other, &["install", "@acme/widget"]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("401") || text(&refused).contains("404"), "{}", text(&refused));
    assert!(!other.join("node_modules/@acme/widget").exists());
    // The public door refuses the scope, naming the organisation's.
    let public = Npm::new(&public_door, Some(&token), &[]);
    let wrong = public.run(&widget, &["publish"]);
    assert!(!wrong.status.success());
    assert!(text(&wrong).contains("400") && text(&wrong).contains("/orgs/acme/npm/"), "{}", text(&wrong));
}

#[test]
fn web_login_goes_through_the_device_page() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let npm = Npm::new(&format!("{}/npm/", server.url), None, &[]);
    let mut login = npm
        .command(dir.path(), &["login", "--auth-type=web"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // npm prints the page's URL, the code in it, and polls the done URL.
    let mut out = std::io::BufReader::new(login.stdout.take().unwrap());
    let code = loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0, "npm printed no login URL");
        if let Some(at) = line.find("/device?code=") {
            break line[at + "/device?code=".len()..].trim().to_string();
        }
    };
    let approve = json!({"userCode": code, "approve": true});
    let resp =
        api(&server, Method::POST, "/auth/device/approve", server.token.as_deref().unwrap(), Some(approve));
    assert_eq!(resp.status(), 200);
    assert!(login.wait().unwrap().success());
    let rc = std::fs::read_to_string(npm.home.path().join(".npmrc")).unwrap();
    assert!(rc.contains(":_authToken=cairn_"), "{rc}");
    assert_eq!(npm.ok(dir.path(), &["whoami"]).trim(), "admin");
}

/// A publish body as npm sends it, around `tarball`.
fn npm_body(name: &str, version: &str, tarball: &[u8]) -> Value {
    json!({
        "_id": name, "name": name, "dist-tags": {"latest": version},
        "versions": { version: { "name": name, "version": version } },
        "_attachments": { format!("{name}-{version}.tgz"): {
            "content_type": "application/octet-stream", "data": BASE64_STANDARD.encode(tarball), "length": tarball.len() } },
    })
}

#[test]
fn hostile_tarballs_through_the_npm_door_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let token = server.token.clone().unwrap();
    let npm = |name: &str| TarballBuilder::new(name, "1.0.0").manifest_kind(ManifestKind::Npm);
    let before = server.static_files();
    let two_versions = {
        let mut body = npm_body("evil", "1.0.0", &npm("evil").gzip());
        body["versions"]["1.0.1"] = json!({});
        body
    };
    let mut not_base64 = npm_body("evil", "1.0.0", b"");
    not_base64["_attachments"]["evil-1.0.0.tgz"]["data"] = json!("%%%");
    let cases: Vec<(&str, Value, u16)> = vec![
        (
            "traversal",
            npm_body("evil", "1.0.0", &npm("evil").raw_file("package/../../etc/x", b"x").gzip()),
            400,
        ),
        ("symlink", npm_body("evil", "1.0.0", &npm("evil").symlink("link", "/etc/passwd").gzip()), 400),
        ("outside package/", npm_body("evil", "1.0.0", &npm("evil").raw_file("other/x", b"x").gzip()), 400),
        (
            "another name inside",
            npm_body("evil", "1.0.0", &npm("evil").manifest(r#"{"name":"good","version":"1.0.0"}"#).gzip()),
            400,
        ),
        (
            "another version inside",
            npm_body("evil", "1.0.0", &npm("evil").manifest(r#"{"name":"evil","version":"9.0.0"}"#).gzip()),
            400,
        ),
        (
            "a git dependency",
            npm_body(
                "evil",
                "1.0.0",
                &npm("evil")
                    .manifest(r#"{"name":"evil","version":"1.0.0","dependencies":{"x":"git://h/x"}}"#)
                    .gzip(),
            ),
            400,
        ),
        ("zstd", npm_body("evil", "1.0.0", &npm("evil").zstd()), 400),
        ("trailing bytes", npm_body("evil", "1.0.0", &npm("evil").trailing(b"junk").gzip()), 400),
        ("two versions", two_versions, 400),
        ("not base64", not_base64, 400),
        ("a bomb", npm_body("evil", "1.0.0", &npm("evil").file("zeros", &vec![0u8; 64 << 20]).gzip()), 413),
    ];
    for (what, body, status) in cases {
        let resp = support::client()
            .put(format!("{}/npm/evil", server.url))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{what}");
        let err: Value = resp.json().unwrap();
        assert!(err["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: {err}");
    }
    // Without a token: 401.
    let body = npm_body("evil", "1.0.0", &npm("evil").gzip());
    let resp = support::client().put(format!("{}/npm/evil", server.url)).json(&body).send().unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(server.static_files(), before, "a refused publish writes nothing");
}
