//! Identity (SPEC section 17) against a real OpenID provider
//! (oauth2-mock-server, `support::oidc`): trusted publishing's exchange of
//! GitHub- and GitLab-shaped CI tokens and its refusals, provenance in the
//! line, the document, the page and the log, and sign-in with the
//! authorization code flow, bound to (issuer, sub), with group roles.

use crate::support;

use cairn::archive::builder::TarballBuilder;
use reqwest::blocking::Response;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Digest;
use std::path::Path;
use support::oidc::Provider;
use support::{api, client, Server};

/// A registry whose registry.toml `toml` makes from a new provider's
/// issuer URL: (the directory of its data, the provider, the server).
/// Bind the directory to a name (`_dir`), so it outlives the server.
fn registry(toml: impl FnOnce(&str) -> String) -> (tempfile::TempDir, Provider, Server) {
    let dir = tempfile::tempdir().unwrap();
    let idp = Provider::start();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("registry.toml"), toml(&idp.url)).unwrap();
    let server = Server::start(&data);
    (dir, idp, server)
}

/// `[[trusted_publishing]]` for `issuer`, with the tests' audience.
fn trusting(issuer: &str) -> String {
    format!("[[trusted_publishing]]\nissuer = \"{issuer}\"\naudience = \"cairn-test\"\n")
}

fn tarball(name: &str, version: &str) -> Vec<u8> {
    let manifest = format!("[package]\nname = \"{name}\"\nversion = \"{version}\"\n");
    TarballBuilder::new(name, version).manifest(manifest).file("README.md", b"hi").gzip()
}

fn publish(server: &Server, token: &str, name: &str, version: &str) -> Response {
    server.put(name, version, token, tarball(name, version), "application/gzip")
}

/// The claims GitHub Actions puts in an identity token for `repository`'s `workflow`.
fn github(jti: &str, repository: &str, workflow: &str, aud: &str) -> Value {
    json!({
        "jti": jti, "aud": aud, "sub": format!("repo:{repository}:ref:refs/tags/v1"),
        "repository": repository, "repository_owner": repository.split('/').next().unwrap(),
        "ref": "refs/tags/v0.2.0", "sha": "3f2a1c9e0b7d4f5a6c8e9d0b1a2c3d4e5f6a7b8c",
        "run_id": "4242", "environment": "release",
        "job_workflow_ref": format!("{repository}/.github/workflows/{workflow}@refs/tags/v0.2.0"),
    })
}

fn exchange(server: &Server, jwt: &str) -> Response {
    client()
        .post(format!("{}/api/v1/trusted_publishing/tokens", server.url))
        .json(&json!({ "jwt": jwt }))
        .send()
        .unwrap()
}

fn error_of(resp: Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().unwrap();
    (status, body["message"].as_str().unwrap_or_default().to_string())
}

/// The leaves of the log, read from its entry bundles (2-byte lengths).
fn log_leaves(server: &Server) -> Vec<String> {
    let mut leaves = Vec::new();
    let dir = server.static_root().join("log/tile/entries");
    let mut files: Vec<_> =
        walkdir::WalkDir::new(&dir).into_iter().flatten().filter(|e| e.file_type().is_file()).collect();
    files.sort_by_key(|e| e.path().to_path_buf());
    for f in files {
        let bytes = std::fs::read(f.path()).unwrap();
        let mut at = 0;
        while at + 2 <= bytes.len() {
            let n = u16::from_be_bytes([bytes[at], bytes[at + 1]]) as usize;
            leaves.push(String::from_utf8_lossy(&bytes[at + 2..at + 2 + n]).into_owned());
            at += 2 + n;
        }
    }
    leaves
}

#[test]
fn trusted_publishing_gives_ci_a_scoped_token_and_its_versions_carry_provenance() {
    let (_dir, idp, server) = registry(trusting);
    let alice = server.add_user("alice");
    let bob = server.add_user("bob");
    for name in ["widgets", "gadgets"] {
        assert_eq!(publish(&server, &alice, name, "0.1.0").status(), 201);
    }

    // Only owners manage trust configurations; only configured issuers.
    let config = json!({ "issuer": idp.url, "repository": "acme/widgets", "workflow": "release.yml" });
    let path = "/packages/widgets/trusted-publishers";
    assert_eq!(api(&server, Method::POST, path, &bob, Some(config.clone())).status(), 403);
    let other = json!({ "issuer": "https://elsewhere.example", "repository": "acme/widgets", "workflow": "release.yml" });
    assert_eq!(error_of(api(&server, Method::POST, path, &alice, Some(other))).0, 400);
    let made = api(&server, Method::POST, path, &alice, Some(config));
    assert_eq!(made.status(), 201);
    let made: Value = made.json().unwrap();
    assert_eq!(made["createdBy"], "alice");
    let listed: Value = api(&server, Method::GET, path, &alice, None).json().unwrap();
    assert_eq!(listed["trustedPublishers"].as_array().unwrap().len(), 1);
    // Audit-logged, in the owner's own export.
    let export = api(&server, Method::GET, "/me/export", &alice, None).text().unwrap();
    assert!(export.contains("trusted-publisher add"), "{export}");

    // The exchange: a 30-minute publish-update token for widgets alone.
    let jwt = idp.mint(github("run-1", "acme/widgets", "release.yml", "cairn-test"), 300);
    let resp = exchange(&server, &jwt);
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().unwrap();
    let token = doc["token"].as_str().unwrap().to_string();
    let expires = chrono::DateTime::parse_from_rfc3339(doc["expiresAt"].as_str().unwrap()).unwrap();
    let minutes = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
    assert!((28..=30).contains(&minutes), "{minutes} minutes");
    assert_eq!(error_of(exchange(&server, &jwt)).0, 401, "a jti is accepted once");

    assert_eq!(publish(&server, &token, "widgets", "0.2.0").status(), 201);
    assert_eq!(
        publish(&server, &token, "gadgets", "0.2.0").status(),
        403,
        "not a package the run is trusted for"
    );
    assert_eq!(publish(&server, &token, "newname", "0.1.0").status(), 403, "no publish-new");

    // Provenance in the line (so the log binds it), the document and the page.
    let file = std::fs::read_to_string(server.static_root().join("index/wi/dg/widgets")).unwrap();
    let lines: Vec<&str> = file.lines().collect();
    let first: Value = serde_json::from_str(lines[0]).unwrap();
    assert!(first.get("provenance").is_none(), "a personal token's version has none");
    let line: Value = serde_json::from_str(lines[1]).unwrap();
    let p = &line["provenance"];
    assert_eq!(
        (p["issuer"].as_str(), p["repository"].as_str()),
        (Some(idp.url.as_str()), Some("acme/widgets"))
    );
    assert_eq!(
        (p["workflow"].as_str(), p["ref"].as_str(), p["runId"].as_str()),
        (Some("release.yml"), Some("refs/tags/v0.2.0"), Some("4242"))
    );
    assert_eq!(p["environment"], "release");
    let digest = cairn::store::hex(&sha2::Sha256::digest(lines[1].as_bytes()));
    let leaf = log_leaves(&server).into_iter().find(|l| l.starts_with("cairn-log-v1 publish widgets 0.2.0 "));
    assert!(
        leaf.as_deref().is_some_and(|l| l.contains(&digest)),
        "the log binds the line with its provenance: {leaf:?}"
    );
    let vdoc: Value = server.get("/api/v1/packages/widgets/0.2.0.json").json().unwrap();
    assert_eq!(vdoc["provenance"], *p);
    support::validate("index-line", &line);
    support::validate("version", &vdoc);
    let page = server.get("/p/widgets").text().unwrap();
    assert!(
        page.contains("Published from") && page.contains("acme/widgets@3f2a1c9 by release.yml"),
        "{page}"
    );

    // Early revocation.
    let revoke = client()
        .delete(format!("{}/api/v1/trusted_publishing/tokens", server.url))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(revoke.status(), 204);
    assert_eq!(publish(&server, &token, "widgets", "0.3.0").status(), 401);
    // A personal token is not revoked through this route.
    assert_eq!(
        client()
            .delete(format!("{}/api/v1/trusted_publishing/tokens", server.url))
            .bearer_auth(&alice)
            .send()
            .unwrap()
            .status(),
        403
    );
    let still = client()
        .delete(format!("{}/api/v1/packages/widgets/trusted-publishers/{}", server.url, made["id"]))
        .bearer_auth(&alice)
        .send()
        .unwrap();
    assert_eq!(still.status(), 200);
    let jwt = idp.mint(github("run-2", "acme/widgets", "release.yml", "cairn-test"), 300);
    assert_eq!(error_of(exchange(&server, &jwt)).0, 403, "the configuration is gone");
}

#[test]
fn the_exchange_refuses_what_it_cannot_trust_and_follows_a_key_rotation() {
    let (_dir, idp, server) = registry(trusting);
    let alice = server.add_user("alice");
    assert_eq!(publish(&server, &alice, "widgets", "0.1.0").status(), 201);
    let path = "/packages/widgets/trusted-publishers";
    let gh = json!({ "issuer": idp.url, "repository": "acme/widgets", "workflow": "release.yml", "environment": "release" });
    assert_eq!(api(&server, Method::POST, path, &alice, Some(gh)).status(), 201);
    let gl = json!({ "issuer": idp.url, "repository": "acme/widgets-gl", "workflow": ".gitlab-ci.yml" });
    assert_eq!(api(&server, Method::POST, path, &alice, Some(gl)).status(), 201);

    let refused = |claims: Value, expires_in: i64, why: &str| {
        let (status, message) = error_of(exchange(&server, &idp.mint(claims, expires_in)));
        assert_eq!(status, 401, "{why}: {message}");
        message
    };
    let m = refused(github("a", "acme/widgets", "release.yml", "cairn-test"), -120, "expired");
    assert!(m.contains("expired"), "{m}");
    let m = refused(github("b", "acme/widgets", "release.yml", "someone-else"), 300, "wrong audience");
    assert!(m.contains("aud"), "{m}");
    let mut foreign = github("c", "acme/widgets", "release.yml", "cairn-test");
    foreign["iss"] = json!("http://127.0.0.1:9/");
    let m = refused(foreign, 300, "wrong issuer");
    assert!(m.contains("not trusted"), "{m}");
    let mut no_jti = github("d", "acme/widgets", "release.yml", "cairn-test");
    no_jti.as_object_mut().unwrap().remove("jti");
    refused(no_jti, 300, "no jti");
    // A signature that does not verify.
    let jwt = idp.mint(github("e", "acme/widgets", "release.yml", "cairn-test"), 300);
    let (head, sig) = jwt.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let (status, m) = error_of(exchange(&server, &format!("{head}.{flipped}{}", &sig[1..])));
    assert_eq!(status, 401);
    assert!(m.contains("signature"), "{m}");
    // Not matching: another repository, workflow or environment.
    for (claims, why) in [
        (github("f", "acme/other", "release.yml", "cairn-test"), "repository"),
        (github("g", "acme/widgets", "ci.yml", "cairn-test"), "workflow"),
        (
            {
                let mut c = github("h", "acme/widgets", "release.yml", "cairn-test");
                c["environment"] = json!("staging");
                c
            },
            "environment",
        ),
    ] {
        let (status, m) = error_of(exchange(&server, &idp.mint(claims, 300)));
        assert_eq!(status, 403, "{why}: {m}");
    }

    // A key rotated in after cairn fetched the keys: fetched again.
    assert_eq!(
        exchange(&server, &idp.mint(github("i", "acme/widgets", "release.yml", "cairn-test"), 300)).status(),
        200
    );
    idp.rotate();
    let after = exchange(&server, &idp.mint(github("j", "acme/widgets", "release.yml", "cairn-test"), 300));
    assert_eq!(after.status(), 200, "{}", after.text().unwrap());

    // GitLab's claim set.
    let gitlab = json!({
        "jti": "k", "aud": "cairn-test", "sub": "project_path:acme/widgets-gl:ref_type:tag:ref:v0.2.0",
        "project_path": "acme/widgets-gl", "ref": "v0.2.0", "ref_path": "refs/tags/v0.2.0", "sha": "abcdef0123456789",
        "pipeline_id": 77, "ci_config_ref_uri": "gitlab.example/acme/widgets-gl//.gitlab-ci.yml@refs/tags/v0.2.0",
    });
    let resp = exchange(&server, &idp.mint(gitlab, 300));
    assert_eq!(resp.status(), 200);
    let token = resp.json::<Value>().unwrap()["token"].as_str().unwrap().to_string();
    assert_eq!(publish(&server, &token, "widgets", "0.2.0").status(), 201);
    let vdoc: Value = server.get("/api/v1/packages/widgets/0.2.0.json").json().unwrap();
    assert_eq!(vdoc["provenance"]["repository"], "acme/widgets-gl");
    assert_eq!(vdoc["provenance"]["runId"], "77");

    // A token acts as the configuration's maker: once alice is disabled,
    // her configurations admit no run.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["admin", "user", "disable", "alice", "--data"])
        .arg(&server.data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, m) =
        error_of(exchange(&server, &idp.mint(github("l", "acme/widgets", "release.yml", "cairn-test"), 300)));
    assert_eq!(status, 403, "{m}");
}

/// One sign-in through the provider, redirect by redirect, with the
/// provider's user set to `claims`: where cairn sends the browser at the
/// end, and the session cookie it set.
fn sign_in(server: &Server, idp: &Provider, claims: Value) -> (String, Option<String>) {
    idp.user(claims);
    let c = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let start = c.get(format!("{}/api/v1/auth/oidc/corp/start", server.url)).send().unwrap();
    assert_eq!(start.status(), 302);
    let to_provider = start.headers()["location"].to_str().unwrap().to_string();
    for part in ["code_challenge_method=S256", "code_challenge=", "state=", "nonce=", "client_id=cairn"] {
        assert!(to_provider.contains(part), "{to_provider} lacks {part}");
    }
    let back = c.get(&to_provider).send().unwrap();
    let callback = back.headers()["location"].to_str().unwrap().to_string();
    let done = c.get(&callback).send().unwrap();
    assert_eq!(done.status(), 302);
    let cookie =
        done.headers().get("set-cookie").map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
    let location = done.headers()["location"].to_str().unwrap().to_string();
    // The same callback again: its state was taken.
    let replay = c.get(&callback).send().unwrap();
    assert!(
        replay.headers()["location"].to_str().unwrap().starts_with("/login?error="),
        "a replayed callback is refused"
    );
    (location, cookie)
}

fn session(server: &Server, cookie: &str) -> Value {
    client()
        .get(format!("{}/api/v1/auth/session", server.url))
        .header("cookie", cookie)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

fn role_of(server: &Server, admin: &str, login: &str) -> Option<String> {
    let doc: Value = api(server, Method::GET, "/orgs/acme/members", admin, None).json().unwrap();
    let members = doc["members"].as_array().unwrap();
    members.iter().find(|m| m["login"] == login).map(|m| m["role"].as_str().unwrap().to_string())
}

#[test]
fn sign_in_binds_the_provider_identity_and_follows_its_groups() {
    let (_dir, idp, server) = registry(|issuer| {
        format!(
            "[[oidc]]\nname = \"corp\"\nissuer = \"{issuer}\"\nclient_id = \"cairn\"\n\n[oidc.groups]\n\"acme-dev\" = \"acme:member\"\n\"acme-leads\" = \"acme:admin\"\n"
        )
    });
    let admin = server.token.clone().unwrap();
    let alice = server.add_user("alice");
    let org = api(&server, Method::POST, "/orgs", &admin, Some(json!({ "slug": "acme" })));
    assert_eq!(org.status(), 201, "{}", org.text().unwrap());
    let login_page = server.get("/login").text().unwrap();
    assert!(login_page.contains("/api/v1/auth/oidc/corp/start") && login_page.contains("Sign in with corp"));

    // A first sign-in makes the account and grants the group's role.
    let (to, cookie) = sign_in(
        &server,
        &idp,
        json!({ "sub": "u-1", "preferred_username": "carol", "groups": ["acme-leads"] }),
    );
    assert_eq!(to, "/dashboard");
    let cookie = cookie.expect("a session cookie");
    assert_eq!(session(&server, &cookie)["login"], "carol");
    assert_eq!(role_of(&server, &admin, "carol").as_deref(), Some("admin"));

    // The groups are applied at every sign-in: changed, then withdrawn;
    // a renamed user keeps their account (bound to the sub).
    let (_, cookie) = sign_in(
        &server,
        &idp,
        json!({ "sub": "u-1", "preferred_username": "carol-renamed", "groups": ["acme-dev"] }),
    );
    assert_eq!(session(&server, &cookie.unwrap())["login"], "carol");
    assert_eq!(role_of(&server, &admin, "carol").as_deref(), Some("member"));
    sign_in(&server, &idp, json!({ "sub": "u-1", "preferred_username": "carol", "groups": [] }));
    assert_eq!(role_of(&server, &admin, "carol"), None);

    // A role given by hand stays whatever the groups say.
    let invite = api(
        &server,
        Method::POST,
        "/orgs/acme/members",
        &admin,
        Some(json!({ "login": "alice", "role": "member" })),
    );
    assert!(invite.status().is_success(), "{}", invite.text().unwrap());
    let _ = alice;

    // A login naming a local account is refused, never merged.
    let (to, cookie) = sign_in(
        &server,
        &idp,
        json!({ "sub": "u-2", "preferred_username": "alice", "groups": ["acme-leads"] }),
    );
    assert!(cookie.is_none());
    assert!(to.starts_with("/login?error=") && to.contains("merged"), "{to}");
    assert_eq!(role_of(&server, &admin, "alice").as_deref(), Some("member"));
}

/// In chromium: the sign-in page's provider button, the provider, back on
/// the dashboard signed in, which lists the packages' trust configurations.
#[test]
fn a_browser_signs_in_through_the_provider_and_sees_trusted_publishing() {
    let (_dir, idp, server) = registry(|issuer| {
        format!("[[oidc]]\nname = \"corp\"\nissuer = \"{issuer}\"\nclient_id = \"cairn\"\n\n[[trusted_publishing]]\nissuer = \"{issuer}\"\n")
    });
    let admin = server.token.clone().unwrap();
    let dave = json!({ "sub": "u-9", "preferred_username": "dave" });
    assert!(sign_in(&server, &idp, dave.clone()).1.is_some(), "the account is made at the first sign-in");
    assert_eq!(publish(&server, &admin, "widgets", "0.1.0").status(), 201);
    let owners =
        api(&server, Method::PUT, "/packages/widgets/owners", &admin, Some(json!({ "users": ["dave"] })));
    assert_eq!(owners.status(), 200, "{}", owners.text().unwrap());
    let trust = json!({ "issuer": idp.url, "repository": "acme/widgets", "workflow": "release.yml", "environment": "release" });
    assert_eq!(
        api(&server, Method::POST, "/packages/widgets/trusted-publishers", &admin, Some(trust)).status(),
        201
    );
    // With no audience configured, the public URL is one, with or without
    // its scheme (crates.io's action asks for the bare host).
    for aud in [server.url.clone(), server.url.trim_start_matches("http://").to_string()] {
        let resp = exchange(
            &server,
            &idp.mint(github(&format!("aud-{aud}"), "acme/widgets", "release.yml", &aud), 300),
        );
        assert_eq!(resp.status(), 200, "aud {aud}: {}", resp.text().unwrap());
    }

    idp.user(dave);
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("site-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = std::process::Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/site-test/oidc.mjs"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/site-test"))
        .env("CAIRN_URL", &server.url)
        .env("EXPECT_LOGIN", "dave")
        .env("EXPECT_TRUST", "acme/widgets release.yml (release)")
        .env("SCREENSHOT", shots.join("dashboard-oidc.png"))
        .output()
        .expect("node runs (tools/test.sh installs it, chromium and tools/site-test's packages)");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser sign-in failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("signed in through the provider"), "{stdout}");
}

/// `cairn install --require-provenance` and `--min-age` (and `[install]`
/// in cairn.toml), and `cairn verify --require-provenance`.
#[test]
fn consumers_require_provenance_and_a_cooldown() {
    let (_dir, idp, server) = registry(trusting);
    let alice = server.add_user("alice");
    assert_eq!(publish(&server, &alice, "widgets", "0.1.0").status(), 201);
    assert_eq!(publish(&server, &alice, "gadgets", "0.1.0").status(), 201);
    let trust = json!({ "issuer": idp.url, "repository": "acme/widgets", "workflow": "release.yml" });
    assert_eq!(
        api(&server, Method::POST, "/packages/widgets/trusted-publishers", &alice, Some(trust)).status(),
        201
    );
    let resp = exchange(&server, &idp.mint(github("ci-1", "acme/widgets", "release.yml", "cairn-test"), 300));
    let token = resp.json::<Value>().unwrap()["token"].as_str().unwrap().to_string();
    assert_eq!(publish(&server, &token, "widgets", "0.2.0").status(), 201);

    let user = support::user::User::new();
    let w = tempfile::tempdir().unwrap();
    user.ok(w.path(), &["login", "--registry", &server.url, "--token", &alice]);
    let project = w.path().join("p");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("cairn.toml"), "[dependencies]\n").unwrap();
    let nothing_unpacked = |p: &Path| support::user::installed(p).is_empty();

    // 0.1.0 has none: refused before anything is unpacked.
    let err = user.fails(&project, &["install", "widgets@=0.1.0", "--require-provenance", "widgets"]);
    assert!(err.contains("widgets 0.1.0 has no provenance"), "{err}");
    assert!(nothing_unpacked(&project));
    let err = user.fails(&project, &["install", "widgets@0.2", "--require-provenance", "widgets=other/*"]);
    assert!(err.contains("published from acme/widgets, not other/*"), "{err}");
    assert!(nothing_unpacked(&project));
    user.ok(&project, &["install", "widgets@0.2", "--require-provenance", "widg*=acme/*"]);
    assert_eq!(support::user::installed(&project), ["widgets"]);

    // From cairn.toml's [install], and also on an install from the lock.
    let toml = std::fs::read_to_string(project.join("cairn.toml")).unwrap();
    std::fs::write(
        project.join("cairn.toml"),
        format!("{toml}\n[install]\nrequire_provenance = [\"gadgets\"]\n"),
    )
    .unwrap();
    let err = user.fails(&project, &["add", "gadgets"]);
    assert!(err.contains("gadgets 0.1.0 has no provenance"), "{err}");
    std::fs::write(
        project.join("cairn.toml"),
        format!("{toml}\n[install]\nrequire_provenance = [\"widgets=evil/*\"]\n"),
    )
    .unwrap();
    std::fs::remove_dir_all(project.join("cairn_packages")).unwrap();
    let err = user.fails(&project, &["install"]);
    assert!(err.contains("not evil/*"), "{err}");
    assert!(nothing_unpacked(&project));
    std::fs::write(project.join("cairn.toml"), &toml).unwrap();

    // The cooldown: every version here is minutes old. The lock's pin is
    // kept (also by a resolution again); released by `cairn update`, nothing
    // is old enough.
    user.ok(&project, &["install", "--min-age", "1d"]);
    assert_eq!(support::user::installed(&project), ["widgets"]);
    let err = user.fails(&project, &["add", "gadgets", "--min-age", "1d"]);
    assert!(err.contains("--min-age"), "{err}");
    std::fs::write(project.join("cairn.toml"), format!("{toml}\n[install]\nmin_age = \"3d\"\n")).unwrap();
    user.ok(&project, &["install", "--update"]);
    let err = user.fails(&project, &["update"]);
    assert!(err.contains("--min-age"), "{err}");
    user.ok(&project, &["update", "--min-age", "0"]);

    // cairn verify: the provenance is said, and can be required.
    let file = w.path().join("widgets-0.2.0.tar.gz");
    std::fs::write(&file, tarball("widgets", "0.2.0")).unwrap();
    let out = user
        .ok(w.path(), &["verify", file.to_str().unwrap(), "--require-provenance", "widgets=acme/widgets"]);
    assert!(out.contains("published from acme/widgets@3f2a1c9 by release.yml"), "{out}");
    let old = w.path().join("widgets-0.1.0.tar.gz");
    std::fs::write(&old, tarball("widgets", "0.1.0")).unwrap();
    let err = user.fails(w.path(), &["verify", old.to_str().unwrap(), "--require-provenance", "widgets"]);
    assert!(err.contains("no provenance"), "{err}");
}
